#!/usr/bin/env bash
# The real-server conformance rig: builds `agent` (debug, as the test suite does), then runs the
# checks against llama-cpp-python's server and llama-server on 127.0.0.1. The servers and models
# are built into ${AGENT_CONFORMANCE_CACHE:-$HOME/.cache/agent-conformance}, never into the
# repository; a kept cache makes the next run take a minute or two.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/conformance/prereqs.sh
cargo build --locked --quiet
exec python3 scripts/conformance/rig.py --agent target/debug/agent "$@"
