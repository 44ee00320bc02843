#!/usr/bin/env bash
# The long reliability checks, each with a time budget (seconds):
#   CRASH_SECONDS (default 600)  scripts/crash-loop.sh   SIGKILL loop on the real server
#   FUZZ_SECONDS  (default 60)   scripts/fuzz.sh         every cargo-fuzz target, per target
#   SCHEMATHESIS_SECONDS (120)   scripts/schemathesis.sh API fuzzing against /v1/openapi.json
# The fast checks (faults, model, tamper, hostile input, access) run in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for step in crash-loop fuzz schemathesis; do
  echo "== $step"
  if ! "scripts/$step.sh"; then
    echo "!! $step failed"
    status=1
  fi
done
exit $status
