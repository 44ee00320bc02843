#!/usr/bin/env bash
# Runs every cargo-fuzz target for a time budget each and prints one summary line per target.
# Exits 1 when any target finds something (a crash, panic, timeout or OOM input is saved under
# fuzz/artifacts/<target>/), 2 when the targets do not build. See docs/fuzzing.md.
#
#   FUZZ_SECONDS=60        seconds per target (libFuzzer -max_total_time)
#   FUZZ_TARGETS="a b"     which targets (default: all of them)
#   FUZZ_RSS_MB=2048       libFuzzer -rss_limit_mb
#   FUZZ_TIMEOUT=10        seconds one input may take before it counts as a finding
#   FUZZ_TOOLCHAIN=nightly toolchain for cargo-fuzz
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-identity request_json policy event_decode}
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
LOGS=fuzz/target/logs
# No sanitizer: the crate forbids unsafe code, so a finding is a panic, an abort, a hang or
# runaway memory, all of which libFuzzer sees without ASan; the targets run several times faster.
FUZZ=(cargo "+$TOOLCHAIN" fuzz)
BUILD_FLAGS=(--sanitizer none)

if ! "${FUZZ[@]}" build "${BUILD_FLAGS[@]}"; then
    echo "fuzz: targets did not build" >&2
    exit 2
fi
mkdir -p "$LOGS"

status=0
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    extra=()
    [ -f "fuzz/dict/$t.dict" ] && extra+=("-dict=fuzz/dict/$t.dict")
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds+=("fuzz/seeds/$t")
    before=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    log="$LOGS/$t.log"
    start=$(date +%s)
    "${FUZZ[@]}" run "${BUILD_FLAGS[@]}" "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" \
        -print_final_stats=1 "${extra[@]}" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    after=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$runs" ]; then
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    findings=$(( after - before ))
    if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then
        findings=1
    fi
    printf 'fuzz %-13s runs=%-9s seconds=%-4s cov=%-6s ft=%-6s corpus=%-5s findings=%s\n' \
        "$t" "${runs:-?}" "$elapsed" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings"
    if [ "$findings" -ne 0 ]; then
        status=1
        echo "  see $log; reproduce with: cargo +$TOOLCHAIN fuzz run --sanitizer none $t <artifact>" >&2
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/  /' >&2
    fi
done
exit "$status"
