"""Transcripts of real server replies: each request form the rig cares about, sent straight to a
server, non-streaming and streaming, saved byte for byte.

For each exchange `NAME`: `NAME.request.json` (the body sent), then `NAME.response.json` (a
non-streaming body, exactly as received) or `NAME.response.sse` (the raw event stream, `[DONE]`
included); `index.json` lists every exchange with its status, content type and what it shows.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["verdict", "checks"],
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "checks": {"type": "integer", "minimum": 0},
    },
}
URI_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["link"],
    "properties": {"link": {"type": "string", "format": "uri"}},
}
PROMPT = "Judge the subject: the chat completions endpoint. Reply with one JSON object."


def _body(model: str, **extra: object) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": 64}
    body.update(extra)
    return body


def exchanges(model: str, thinking: bool) -> list[tuple[str, str, dict]]:
    """(name, what it shows, request body) for one model."""
    stream = {"stream": True, "stream_options": {"include_usage": True}}
    json_schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": False}}
    if thinking:
        return [
            ("reasoning", "a reply that opens with reasoning (the template opens `<think>`)", _body(model)),
            ("reasoning-stream", "the same, streamed with usage", _body(model, **stream)),
            ("reasoning-json-schema", "reasoning plus `response_format: json_schema`", _body(model, response_format=json_schema)),
            ("reasoning-json-schema-stream", "the same, streamed", _body(model, response_format=json_schema, **stream)),
            ("reasoning-length", "`max_tokens: 4` spent inside the reasoning", _body(model, max_tokens=4)),
        ]
    return [
        ("chat", "plain chat completion, no response_format", _body(model)),
        ("chat-stream", "streamed, `stream_options.include_usage`", _body(model, **stream)),
        ("chat-stream-no-usage", "streamed without stream_options", _body(model, stream=True)),
        ("json-object", "`response_format: {type: json_object}`", _body(model, response_format={"type": "json_object"})),
        ("json-object-stream", "the same, streamed", _body(model, response_format={"type": "json_object"}, **stream)),
        ("json-object-schema", "llama-cpp-python's form `{type: json_object, schema}`",
         _body(model, response_format={"type": "json_object", "schema": SCHEMA})),
        ("json-schema", "the OpenAI form `{type: json_schema, json_schema: {name, schema, strict}}`", _body(model, response_format=json_schema)),
        ("json-schema-stream", "the same, streamed", _body(model, response_format=json_schema, **stream)),
        ("json-schema-no-name", "the OpenAI form without `json_schema.name` (vLLM requires it)",
         _body(model, response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}})),
        ("json-schema-format-uri", "a schema with `format: uri` on a string", _body(
            model, response_format={"type": "json_schema", "json_schema": {"name": "link", "schema": URI_SCHEMA}})),
        ("length", "`max_tokens: 2`: finish_reason `length`", _body(model, max_tokens=2)),
        ("length-stream", "the same, streamed", _body(model, max_tokens=2, **stream)),
        ("stream-options-without-stream", "`stream_options` with `stream: false` (vLLM rejects it)",
         _body(model, stream=False, stream_options={"include_usage": True})),
        ("error-no-messages", "a body without `messages`", {"model": model}),
        ("error-bad-response-format", "`response_format: {type: xml}`", _body(model, response_format={"type": "xml"})),
    ]


def send(base_url: str, body: dict, timeout: float = 120) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        base_url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def capture(base_url: str, model: str, thinking: bool, out: Path, scrub: dict[str, str]) -> list[dict]:
    """Sends each exchange and writes it under `out`; returns the index entries. Each key of
    `scrub` (the cache's path, which llama-cpp-python's tracebacks print) is replaced by its
    value, so a transcript reads the same on every machine."""
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []
    index = [entry for entry in index if entry["model"] != model]
    for name, shows, body in exchanges(model, thinking):
        status, content_type, raw = send(base_url, body)
        for secret, stand_in in scrub.items():
            raw = raw.replace(secret.encode(), stand_in.encode())
        streamed = "text/event-stream" in content_type
        (out / f"{name}.request.json").write_text(json.dumps(body, indent=2) + "\n")
        for stale in out.glob(f"{name}.response.*"):
            stale.unlink()
        (out / f"{name}.response.{'sse' if streamed else 'json'}").write_bytes(raw)
        index.append({"name": name, "model": model, "shows": shows, "status": status, "content_type": content_type})
    index.sort(key=lambda entry: entry["name"])
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return index


def shape(value: object, prefix: str = "") -> set[str]:
    """The key paths of a JSON value (array items merged), to compare shapes, not contents."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}"
            paths.add(path)
            paths |= shape(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= shape(item, prefix + "[]")
    return paths


def body_shape(path: Path) -> set[str]:
    """The shape of a saved response: a JSON body, or the union over an SSE stream's events."""
    raw = path.read_text(errors="replace")
    if path.suffix == ".json":
        try:
            return shape(json.loads(raw))
        except ValueError:
            return {"<not json>"}
    paths: set[str] = set()
    for line in raw.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                paths.add("[DONE]")
                continue
            try:
                paths |= shape(json.loads(data))
            except ValueError:
                paths.add("<not json>")
    return paths


def compare_subset(recorded: Path, fresh: Path, model: str) -> list[str]:
    """Differences in status and shape between the committed transcripts of `model` and a fresh
    capture: the same exchanges, statuses and fields (values differ: ids, times)."""
    problems = []
    old_index = {e["name"]: e for e in json.loads((recorded / "index.json").read_text()) if e["model"] == model}
    new_index = {e["name"]: e for e in json.loads((fresh / "index.json").read_text()) if e["model"] == model}
    for name, old in sorted(old_index.items()):
        new = new_index.get(name)
        if new is None:
            problems.append(f"{name}: not captured")
            continue
        if old["status"] != new["status"]:
            problems.append(f"{name}: status {new['status']}, recorded {old['status']}")
            continue
        old_files = sorted(recorded.glob(f"{name}.response.*"))
        new_files = sorted(fresh.glob(f"{name}.response.*"))
        if [f.suffix for f in old_files] != [f.suffix for f in new_files]:
            problems.append(f"{name}: {[f.name for f in new_files]}, recorded {[f.name for f in old_files]}")
            continue
        for old_file, new_file in zip(old_files, new_files):
            added = body_shape(new_file) - body_shape(old_file)
            dropped = body_shape(old_file) - body_shape(new_file)
            if added or dropped:
                problems.append(f"{name}: fields added {sorted(added)}, dropped {sorted(dropped)}")
    return problems
