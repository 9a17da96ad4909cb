#!/usr/bin/env python3
"""Record a fixture conversation without a live model.

Serves the given reply files, in order, from a fake OpenAI-compatible endpoint on
127.0.0.1 and runs `agent run ... --record RECORDING` against it, so the recording holds the
exact requests `agent` sends (rendered prompt, re-asks) and the hand-written replies.

    scripts/record_fixture.py release-plan fixtures/release-plan/parcelpoint \\
        fixtures/release-plan/replies/missing-section.md fixtures/release-plan/replies/valid.md

writes fixtures/release-plan/parcelpoint/recording.json. Re-run it whenever the prompt or the
inputs change (a stale recording makes `--replay` fail and says what differs).
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
            content = queue.pop(0)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agent")
    parser.add_argument("case", help="a case folder holding inputs/ (the recording is written beside it)")
    parser.add_argument("replies", nargs="+", help="reply files, served in order, one per attempt")
    parser.add_argument("--recording", help="default: CASE/recording.json")
    parser.add_argument("--agent-bin", default=os.environ.get("AGENT_BIN", "target/debug/agent"))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `agent run` flags")
    args = parser.parse_args()

    case = pathlib.Path(args.case)
    recording = pathlib.Path(args.recording) if args.recording else case / "recording.json"
    if recording.exists():
        recording.unlink()
    replies = [pathlib.Path(r).read_text(encoding="utf-8") for r in args.replies]
    server, left = serve(replies)
    port = server.server_address[1]
    inputs = case / "inputs"
    with tempfile.TemporaryDirectory() as out:
        command = [
            args.agent_bin, "run", args.agent,
            "--inputs", str(inputs),
            "--record", str(recording),
            "--base-url", f"http://127.0.0.1:{port}/v1",
            "--model", MODEL,
            "--attempts", str(max(len(replies), 1)),
            "--out", out,
            *args.extra,
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_MODEL")}
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    server.shutdown()
    if left:
        print(f"warning: {len(left)} scripted repl(ies) were not used", file=sys.stderr)
    print(f"{recording}: agent exited {result.returncode}", file=sys.stderr)
    return 0 if result.returncode in (0, 1, 4) else result.returncode


if __name__ == "__main__":
    sys.exit(main())
