#!/usr/bin/env python3
"""Record a fixture case's conversation without a live model.

Serves the case's hand-written replies (its `scripted_replies`, or the files given), in order,
from a fake OpenAI-compatible endpoint on 127.0.0.1, and runs
`agent eval AGENT --filter AGENT/CASE --record --concurrency 1` against it, so the recording
holds exactly the requests `agent` sends (rendered prompt, re-asks, judge requests) and the
hand-written replies. One reply per request, in the order they are made: each dataset row in
turn, each attempt in turn, then any llm-rubric judge reply.

    scripts/record_fixture.py release-plan fixtures/release-plan/parcelpoint

A pipeline is recorded the same way, its steps served in the order they run (a chain runs
one step at a time):

    scripts/record_fixture.py --pipeline pipelines/release.yaml \
        --recording pipelines/release.recording.json REPLY...

Re-run it whenever the prompt or the case's inputs change: a stale recording makes the case
fail and says what differs.
"""

import argparse
import http.server
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

MODEL = "fixture-model"


def serve(replies):
    """Serve `replies` in order. A reply given as (match, text) goes to the first request whose
    prompt contains `match`, so steps that run at once still get their own replies."""
    queue = list(replies)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", 0))
            request = json.loads(self.rfile.read(length))
            if not queue:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"no scripted reply left")
                return
            prompt = request["messages"][0]["content"]
            chosen = next((i for i, r in enumerate(queue) if isinstance(r, tuple) and r[0] in prompt), None)
            if chosen is None:
                chosen = next((i for i, r in enumerate(queue) if not isinstance(r, tuple)), 0)
            content = queue.pop(chosen)
            if isinstance(content, tuple):
                content = content[1]
            prompt_chars = sum(len(m["content"]) for m in request["messages"])
            body = {
                "id": f"chatcmpl-fixture-{len(replies) - len(queue)}",
                "object": "chat.completion",
                "created": 1764000000,
                "model": request["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_chars // 4 + len(content) // 4,
                },
            }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, queue


def scripted_replies(case):
    """The `scripted_replies` list of a case.yaml, read without a YAML library."""
    lines = (case / "case.yaml").read_text(encoding="utf-8").splitlines()
    replies, inside = [], False
    for line in lines:
        if line.startswith("scripted_replies:"):
            rest = line.split(":", 1)[1].strip()
            if rest.startswith("["):
                return [case / item.strip().strip("'\"") for item in rest.strip("[]").split(",") if item.strip()]
            inside = True
            continue
        if inside:
            if line.startswith("  - "):
                replies.append(case / line[4:].strip().strip("'\""))
            elif line.strip():
                break
    return replies


def main():
    if "--pipeline" in sys.argv:
        return record_pipeline()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agent")
    parser.add_argument("case", help="the case folder, fixtures/<agent>/<case>")
    parser.add_argument("replies", nargs="*", help="reply files [default: the case's scripted_replies]")
    parser.add_argument("--agent-bin", default=os.environ.get("AGENT_BIN", "target/debug/agent"))
    args = parser.parse_args()

    case = pathlib.Path(args.case)
    files = [pathlib.Path(r) for r in args.replies] or scripted_replies(case)
    if not files:
        sys.exit(f"{case}: no replies given and no scripted_replies in case.yaml")
    replies = [f.read_text(encoding="utf-8") for f in files]
    server, left = serve(replies)
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as out:
        command = [
            args.agent_bin, "eval", args.agent,
            "--filter", f"{args.agent}/{case.name}",
            "--record", "--concurrency", "1", "--quiet",
            "--base-url", f"http://127.0.0.1:{port}/v1",
            "--model", MODEL,
            "--out", out,
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_MODEL", "AGENT_PROFILE")}
        result = subprocess.run(command, env=env)
    server.shutdown()
    if left:
        print(f"warning: {len(left)} scripted repl(ies) were not used", file=sys.stderr)
    print(f"{case / 'recording.json'}: agent eval exited {result.returncode}", file=sys.stderr)
    return 0 if result.returncode in (0, 1) else result.returncode


def record_pipeline():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--recording", required=True)
    parser.add_argument("replies", nargs="+", help="reply files, one per step in the order the steps run; `TEXT=FILE` routes FILE to the request whose prompt holds TEXT, for steps that run at once")
    parser.add_argument("--agent-bin", default=os.environ.get("AGENT_BIN", "target/debug/agent"))
    parser.add_argument("--inputs", help="the pipeline's inputs directory")
    args = parser.parse_args()
    recording = pathlib.Path(args.recording)
    if recording.exists():
        recording.unlink()
    def load(spec):
        match, sep, path = spec.rpartition("=")
        text = pathlib.Path(path).read_text(encoding="utf-8")
        return (match, text) if sep else text
    replies = [load(r) for r in args.replies]
    server, left = serve(replies)
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as out:
        command = [
            args.agent_bin, "pipeline", "run", args.pipeline,
            "--record", str(recording), "--quiet",
            "--base-url", f"http://127.0.0.1:{port}/v1",
            "--model", MODEL,
            "--out", out,
        ]
        if args.inputs:
            command += ["--inputs", args.inputs]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_MODEL", "AGENT_PROFILE")}
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    server.shutdown()
    if left:
        print(f"warning: {len(left)} scripted repl(ies) were not used", file=sys.stderr)
    print(f"{recording}: agent pipeline run exited {result.returncode}", file=sys.stderr)
    return 0 if result.returncode in (0, 1, 4) else result.returncode


if __name__ == "__main__":
    sys.exit(main())
