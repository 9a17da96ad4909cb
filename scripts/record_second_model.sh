#!/usr/bin/env bash
# Record every shipped case as a second model, `fixture-model-b`, answers it, into one
# recording kept apart from the cases' own (which `agent record` must still make again byte
# for byte): `agent eval --model fixture-model --model fixture-model-b --recording
# fixtures/matrix/fixture-model-b.json` then replays a two-model matrix offline.
#
# fixture-model-b answers as the case's scripted replies say, except in
# deployment-plan/parcelpoint, where its first reply misses a section and the re-ask fixes
# it: the case expects one attempt, so that model fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
agent=${AGENT:-target/debug/agent}
recording=fixtures/matrix/fixture-model-b.json
rm -f "$recording"
for case_dir in fixtures/*/*/; do
  [ -f "$case_dir/case.yaml" ] || continue
  case_id=$(basename "$(dirname "$case_dir")")/$(basename "$case_dir")
  replies=()
  if [ "$case_id" = deployment-plan/parcelpoint ]; then
    replies=(fixtures/deployment-plan/replies/missing-section.md fixtures/deployment-plan/replies/valid.md)
  fi
  # The case deployment-plan/parcelpoint fails for this model by design (exit 1).
  status=0
  "$agent" record "$case_id" --model fixture-model-b --recording "$recording" "${replies[@]}" >/dev/null || status=$?
  if [ "$status" -ne 0 ] && [ "$case_id" != deployment-plan/parcelpoint ]; then
    exit "$status"
  fi
done
echo "recorded $recording"
