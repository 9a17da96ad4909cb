"""Real servers for the conformance rig: start on 127.0.0.1 with a bounded wait, stop on exit,
and a counting proxy in front of each that records every exchange.

Standard library only: the rig's driver runs on the machine's Python 3.11; the servers run from
the venv and binaries that `build.py` made in the cache.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
READY_TIMEOUT_SECS = 90.0
STOP_TIMEOUT_SECS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment for a server: none of llama.cpp's `LLAMA_ARG_*` settings (or a key) from
    the caller's shell, so every server runs with exactly the flags the rig gives it."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLAMA_", "OPENAI_", "AGENT_"))
    }


class Server:
    """One server process on 127.0.0.1, its log in a file."""

    kind = "server"

    def __init__(self, name: str, model: Path, log_dir: Path, env: dict[str, str] | None = None):
        self.env = env or {}
        self.name = name
        self.model = model
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_path(self) -> str:
        return "/v1/models"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        # A process group of its own, so stop() ends the server and anything it spawned.
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**clean_env(), **self.env}, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + self.ready_path(), timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {READY_TIMEOUT_SECS:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_SECS)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class LlamaCppPythonServer(Server):
    """`python -m llama_cpp.server` (FastAPI + uvicorn) from the venv."""

    kind = "llama-cpp-python"

    def __init__(self, name: str, model: Path, log_dir: Path, python: Path, env: dict[str, str], n_ctx: int = 4096):
        super().__init__(name, model, log_dir, env)
        self.python = python
        self.n_ctx = n_ctx

    def command(self) -> list[str]:
        # Defaults read from llama_cpp/server/settings.py: host `localhost`, port 8000,
        # n_ctx 2048, chat_format from the GGUF's template; no API key. We bind 127.0.0.1
        # explicitly and give the context the model was made for.
        return [
            str(self.python), "-m", "llama_cpp.server",
            "--model", str(self.model), "--model_alias", self.model.stem,
            "--host", HOST, "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", "2", "--n_threads_batch", "2",
            "--seed", "7", "--verbose", "False",
        ]


class LlamaServer(Server):
    """llama.cpp's own `llama-server`."""

    kind = "llama-server"

    def __init__(self, name: str, model: Path, log_dir: Path, binary: Path, n_ctx: int = 4096, extra: list[str] | None = None):
        super().__init__(name, model, log_dir)
        self.binary = binary
        self.n_ctx = n_ctx
        self.extra = extra or []

    def ready_path(self) -> str:
        return "/health"

    def command(self) -> list[str]:
        # Defaults read from tools/server/README.md: host 127.0.0.1, port 8080, context from the
        # model, slots auto, jinja templates on, reasoning format auto, no tools, no MCP proxy,
        # no API key, CORS `*`. We pin host, port, one slot of the whole context, two threads,
        # and CORS to localhost; `--no-webui` because the build has no UI.
        return [
            str(self.binary), "--model", str(self.model), "--alias", self.model.stem,
            "--host", HOST, "--port", str(self.port),
            "--ctx-size", str(self.n_ctx), "--parallel", "1", "--threads", "2",
            "--cors-origins", "localhost", "--no-webui", "--log-colors", "off",
            *self.extra,
        ]


class Exchange(dict):
    """One request and its response, as the proxy saw them."""


class CountingProxy:
    """An HTTP proxy on 127.0.0.1 in front of one server: forwards each request unchanged,
    streams the response back as it arrives (so SSE stays SSE), and records every exchange with
    its raw response body. The rig counts requests from it, whatever the server logs."""

    def __init__(self, upstream_port: int, record_path: Path):
        self.upstream_port = upstream_port
        self.record_path = record_path
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.forward()

            def do_POST(self) -> None:  # noqa: N802
                self.forward()

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                started = time.monotonic()
                headers = {
                    name: value for name, value in self.headers.items()
                    if name.lower() not in ("host", "connection", "content-length", "accept-encoding")
                }
                upstream = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=600)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                except OSError as error:
                    self.send_error(502, f"upstream: {error}")
                    proxy.record(self.command, self.path, body, 502, {}, str(error).encode(), started)
                    return
                self.send_response(response.status)
                passed = {}
                for name, value in response.getheaders():
                    if name.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        continue
                    self.send_header(name, value)
                    passed[name.lower()] = value
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                captured = bytearray()
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    captured += chunk
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                upstream.close()
                proxy.record(self.command, self.path, body, response.status, passed, bytes(captured), started)

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, method: str, path: str, body: bytes, status: int, headers: dict, response: bytes, started: float) -> None:
        exchange = Exchange(
            method=method, path=path, status=status, headers=headers,
            request=_json_or_text(body), response=_json_or_text(response),
            elapsed_ms=round((time.monotonic() - started) * 1000),
        )
        with self.lock:
            exchange["n"] = len(self.exchanges) + 1
            self.exchanges.append(exchange)
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            with self.record_path.open("a") as out:
                out.write(json.dumps(exchange) + "\n")

    def completions(self) -> int:
        with self.lock:
            return sum(1 for e in self.exchanges if e["method"] == "POST" and e["path"].endswith("/chat/completions"))

    def since(self, count: int) -> list[Exchange]:
        with self.lock:
            chats = [e for e in self.exchanges if e["method"] == "POST" and e["path"].endswith("/chat/completions")]
        return chats[count:]


def _json_or_text(raw: bytes) -> object:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
