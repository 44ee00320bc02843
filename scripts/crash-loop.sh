#!/usr/bin/env bash
# The long crash loop: the real server under concurrent writes, SIGKILLed at random moments,
# restarted and checked (acknowledged writes present, no half-applied transition, every chain
# and every jurisdiction log verified against the checkpoint of the cycle before), on both
# backends at once: the data folder's redb file and a PostgreSQL database (`serve --store`).
#   CRASH_SECONDS  time budget (default 600); CRASH_CYCLES  upper bound on cycles (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
export XUEJI_CRASH_SECONDS="${CRASH_SECONDS:-600}"
export XUEJI_CRASH_CYCLES="${CRASH_CYCLES:-100000}"
cargo test --release --test it crash::acknowledged_writes_survive_sigkill -- --nocapture 2>&1 \
  | tee target/crash-loop.log | grep -E "crash loop|test result|panicked|cycle"
