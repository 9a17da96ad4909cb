#!/usr/bin/env python3
"""Builds the conformance rig's servers into the cache (never into the repository).

Downloads the llama-cpp-python sdist from PyPI and builds llama.cpp once from the
`vendor/llama.cpp` it ships: `llama-server` and the shared libraries (`libllama.so`,
`libggml*.so`). Then installs the sdist with its server extra into a venv in the cache without
compiling llama.cpp a second time (`-DLLAMA_BUILD=OFF`): its bindings load the same libraries
through `LLAMA_CPP_LIB_PATH`, which they read for exactly this. Both servers so run the same
llama.cpp, built once, which halves a cold build on two cores. Last, it installs that tree's
`gguf-py` for the model generator.

Each step leaves a stamp naming its inputs (version, flags, CPU features for the native build),
so a kept cache is reused and a changed one rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = os.environ.get("AGENT_CONFORMANCE_LLAMA_CPP_PYTHON", "0.3.36")
# The package's own llama.cpp build is off: it loads the libraries built with llama-server.
# (-DLLAVA_BUILD=OFF: the multimodal library is loaded only for image chats, which the rig never
# sends.)
PYTHON_CMAKE_ARGS = "-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF"
SERVER_CMAKE_ARGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
]
JOBS = str(os.cpu_count() or 2)


def cache_dir() -> Path:
    root = os.environ.get("AGENT_CONFORMANCE_CACHE") or str(
        Path.home() / ".cache" / "agent-conformance"
    )
    return Path(root)


def cpu_fingerprint() -> str:
    """The CPU's feature flags: a -march=native build is only reused on the same kind of CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    return "unknown"


def log(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Runs a build command with its output in a log file; on failure shows the log's tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        sys.stderr.write("\n".join(tail) + "\n")
        raise SystemExit(f"[build] failed ({result.returncode}): {' '.join(cmd)}; log: {log_file}")


class Stamp:
    """A file recording what a finished step was built from."""

    def __init__(self, path: Path, key: str):
        self.path = path
        self.key = key

    def fresh(self) -> bool:
        return self.path.is_file() and self.path.read_text() == self.key

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.key)
        tmp.replace(self.path)


def fetch_sdist(cache: Path, python: str) -> Path:
    sdist_dir = cache / "sdist"
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    sdist = sdist_dir / name
    if sdist.is_file():
        return sdist
    log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist from PyPI")
    sdist_dir.mkdir(parents=True, exist_ok=True)
    # --no-binary for this package only: its build requirements (cmake, ninja,
    # scikit-build-core) come as wheels; `--no-binary :all:` would compile cmake from source.
    run(
        [python, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
         "-d", str(sdist_dir), f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
        cache / "logs" / "download.log",
    )
    if not sdist.is_file():
        raise SystemExit(f"[build] pip download did not produce {sdist}")
    return sdist


def unpack(cache: Path, sdist: Path) -> Path:
    src_root = cache / "src"
    src = src_root / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"
    stamp = Stamp(src_root / "unpacked.stamp", sdist.name)
    if stamp.fresh() and src.is_dir():
        return src
    log(f"unpacking {sdist.name}")
    shutil.rmtree(src_root, ignore_errors=True)
    src_root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(src_root, filter="data")
    stamp.write()
    return src


def venv(cache: Path) -> Path:
    env_dir = cache / "venv"
    python = env_dir / "bin" / "python"
    if not python.exists():
        log("creating the venv")
        run([sys.executable, "-m", "venv", str(env_dir)], cache / "logs" / "venv.log")
    return python


def install_python_server(cache: Path, python: Path, sdist: Path, src: Path) -> None:
    stamp = Stamp(cache / "llama-cpp-python.stamp", f"{sdist.name} {PYTHON_CMAKE_ARGS}\n")
    if stamp.fresh():
        return
    log(f"installing llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} with its server")
    started = time.monotonic()
    env = dict(os.environ, CMAKE_ARGS=PYTHON_CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=JOBS)
    logf = cache / "logs" / "llama-cpp-python.log"
    run([str(python), "-m", "pip", "install", f"{sdist}[server]"], logf, env=env)
    # gguf-py from the same llama.cpp tree writes the rig's tiny models.
    run([str(python), "-m", "pip", "install", str(src / "vendor" / "llama.cpp" / "gguf-py")], logf)
    stamp.write()
    log(f"llama-cpp-python installed in {time.monotonic() - started:.0f} s")


def install_build_tools(cache: Path, python: Path) -> None:
    """cmake and ninja from PyPI: the machine needs no C build tools beyond a compiler."""
    stamp = Stamp(cache / "build-tools.stamp", "cmake ninja\n")
    if stamp.fresh():
        return
    log("installing cmake and ninja from PyPI")
    run([str(python), "-m", "pip", "install", "--upgrade", "pip", "cmake", "ninja"], cache / "logs" / "build-tools.log")
    stamp.write()


def build_llama_server(cache: Path, python: Path, src: Path) -> Path:
    build = cache / "llama-server"
    binary = build / "bin" / "llama-server"
    stamp = Stamp(cache / "llama-server.stamp", f"{src.name} {' '.join(SERVER_CMAKE_ARGS)} {cpu_fingerprint()}\n")
    if stamp.fresh() and binary.is_file():
        return binary
    log("building llama.cpp (llama-server and its shared libraries) from the sdist's vendor/llama.cpp; 10-20 minutes on 2 cores")
    started = time.monotonic()
    bindir = python.parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    logf = cache / "logs" / "llama-server.log"
    run(
        [str(bindir / "cmake"), "-S", str(src / "vendor" / "llama.cpp"), "-B", str(build), "-G", "Ninja",
         *SERVER_CMAKE_ARGS],
        logf, env=env,
    )
    run([str(bindir / "cmake"), "--build", str(build), "--target", "llama-server", "-j", JOBS], logf, env=env)
    if not (binary.parent / "libllama.so").exists():
        raise SystemExit(f"[build] no libllama.so beside {binary}; log: {logf}")
    if not binary.is_file():
        raise SystemExit(f"[build] no {binary} after the build; log: {logf}")
    stamp.write()
    log(f"llama-server built in {time.monotonic() - started:.0f} s")
    return binary


def build_all(cache: Path) -> tuple[Path, Path, Path]:
    """Everything the rig needs: (the venv's python, the unpacked sdist, llama-server)."""
    cache.mkdir(parents=True, exist_ok=True)
    python = venv(cache)
    sdist = fetch_sdist(cache, str(python))
    src = unpack(cache, sdist)
    install_build_tools(cache, python)
    server = build_llama_server(cache, python, src)
    install_python_server(cache, python, sdist, src)
    return python, src, server


def library_env(server: Path) -> dict[str, str]:
    """What llama-cpp-python needs to load the libraries built beside `server`."""
    return {"LLAMA_CPP_LIB_PATH": str(server.parent)}


def main() -> int:
    cache = cache_dir()
    build_all(cache)
    log(f"ready in {cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
