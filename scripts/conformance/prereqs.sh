#!/usr/bin/env bash
# What the rig needs from the machine before build.py runs: a C and C++ compiler (llama.cpp)
# and Python's venv module. cmake and ninja come from PyPI into the rig's own venv (build.py).
# Whatever is missing is installed with apt-get (through `sudo -n` when not root); a machine
# without apt-get must provide them itself.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "[prereqs] installing ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
    echo "[prereqs] no apt-get: install ${missing[*]} yourself" >&2
    exit 2
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
