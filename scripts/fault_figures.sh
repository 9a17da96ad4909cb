#!/usr/bin/env bash
# Peak memory and stderr size of `agent run` against hostile endpoints: the fault server of
# the tests (tests/support/faults.rs, as examples/fault_server.rs) on 127.0.0.1, and a
# one-agent project in a temp dir. One line per case: the exit code, the peak RSS (from
# /usr/bin/time -v), the bytes on stderr, the wall time.
#
#   scripts/fault_figures.sh                 # release build
#   PROFILE=dev scripts/fault_figures.sh     # the debug build
#
# Measured (release build, 2 shared cores, 2026-12-05):
#   endless 200 body (default limit)          exit 3  peak RSS  35 MB  stderr 352 B
#   50 MB junk body (default limit)           exit 3  peak RSS  18 MB  stderr 374 B
#   50 MB junk body read whole (limit 60 MB)  exit 3  peak RSS 114 MB  stderr 349 B (-q 277 B, -v 454 B)
# Before issue 9: the endless body grew to 4.25 GB in 10 s; the junk body put 52 MB on stderr.
set -euo pipefail

profile=${PROFILE:-release}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --locked --profile "$profile" --bin agent --example fault_server >&2
case "$profile" in
    dev) out=target/debug ;;
    *) out=target/$profile ;;
esac
agent=$root/$out/agent
fault_server=$root/$out/examples/fault_server
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time)" >&2; exit 2; }

work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/project/prompts" "$work/project/schemas"
printf -- '---\nagent:\n  description: Answers one question\n  dialect: double-brace\n  inputs:\n    - name: QUESTION\n  contract: answer.schema.json\n---\nAnswer {{QUESTION}} with one JSON object: {"answer": "..."}.\n' \
    > "$work/project/prompts/answer.md"
echo '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false}' \
    > "$work/project/schemas/answer.schema.json"

# measure LABEL FAULT [AGENT FLAGS...]
measure() {
    local label=$1 fault=$2
    shift 2
    rm -f "$work/url"
    "$fault_server" "$fault" > "$work/url" &
    server=$!
    for _ in $(seq 50); do [ -s "$work/url" ] && break; sleep 0.1; done
    local url
    url=$(head -n1 "$work/url")
    rm -rf "$work/project/out"
    local code=0
    (cd "$work/project" && env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u AGENT_MODEL -u RUST_LOG \
        AGENT_TEST_NO_RETRY_DELAY=1 /usr/bin/time -v -o "$work/time" \
        "$agent" run answer --var QUESTION=status --base-url "$url" --model m --out out "$@" \
        > /dev/null 2> "$work/stderr") || code=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
    local rss wall stderr_bytes error
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    stderr_bytes=$(wc -c < "$work/stderr")
    # The error's code (agent::model::…), which says how the run ended.
    error=$(grep -o -m1 'agent::[a-z_:]*' "$work/stderr" || true)
    printf '%-44s exit %-3s peak RSS %7.1f MB  stderr %8d B  wall %-8s %s\n' \
        "$label" "$code" "$(echo "$rss / 1024" | bc -l)" "$stderr_bytes" "$wall" "$error"
}

echo "profile: $profile"
measure "endless 200 body (default limit)" endless
measure "endless 200 body, --max-reply-bytes 1000000" endless --max-reply-bytes 1000000
measure "endless 500 body" endless-error --max-retries 0
measure "50 MB junk body (default limit)" junk
measure "50 MB junk body, -q" junk -q
measure "50 MB junk body read whole (limit 60 MB)" junk --max-reply-bytes 60000000
measure "50 MB junk body read whole, -q" junk --max-reply-bytes 60000000 -q
measure "50 MB junk body read whole, -v" junk --max-reply-bytes 60000000 -v
measure "Retry-After: 99999999999999999999" huge-retry-after
measure "reset mid-body (2 retries)" reset
measure "event stream for stream: false" event-stream
measure "trickle, --timeout 2 --max-retries 0" trickle --timeout 2 --max-retries 0
