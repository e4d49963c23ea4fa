#!/usr/bin/env bash
# run-fuzz.sh TARGET SEEDS: replays every file of the seed corpus SEEDS
# through the libFuzzer program TARGET, then fuzzes it for FUZZ_SECONDS
# (default 30) starting from those seeds.  The inputs the fuzzer finds
# interesting go to FUZZ_CORPUS/NAME when FUZZ_CORPUS is set (kept across
# runs), else to a temporary folder removed at the end; SEEDS is only read.
# A crash, a leak or a failed model check exits non-zero and leaves the
# input as FUZZ_ARTIFACTS/NAME-crash-* (default: the current directory).
set -u
target=$1 seeds=$2
name=$(basename "$target")
seconds=${FUZZ_SECONDS:-30}
artifacts=${FUZZ_ARTIFACTS:-$PWD}
mkdir -p "$artifacts"
opts=(-timeout=25 -rss_limit_mb=2048 -max_len=4096 "-artifact_prefix=$artifacts/$name-")
log=$(mktemp)
scratch=
cleanup() { rm -f "$log"; [ -z "${FUZZ_CORPUS:-}" ] && [ -n "$scratch" ] && rm -rf "$scratch"; }
trap cleanup EXIT

# Runs the target with the log of its output; on failure, shows the report.
run() {
    "$target" "${opts[@]}" "$@" >"$log" 2>&1
    local status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 100 "$log"
        echo "$name: FAILED (exit $status)"
        exit "$status"
    fi
}

shopt -s nullglob
files=("$seeds"/*)
if [ ${#files[@]} -eq 0 ]; then
    echo "$name: no seed in $seeds"
    exit 1
fi
run "${files[@]}"
echo "$name: replayed ${#files[@]} seeds"
if [ -n "${FUZZ_CORPUS:-}" ]; then
    scratch=$FUZZ_CORPUS/$name
    mkdir -p "$scratch"
else
    scratch=$(mktemp -d)
fi
run -max_total_time="$seconds" -print_final_stats=1 "$scratch" "$seeds"
grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$log"
echo "$name: fuzzed $seconds s without a finding; new inputs in $scratch"
