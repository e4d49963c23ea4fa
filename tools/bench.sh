#!/usr/bin/env bash
# bench.sh -- tw-bench through hyperfine, then tw-bench's own tables, all
# kept as JSON and drawn as PNG charts.
#
# hyperfine runs one command per implementation, each a single tw-bench run
# of one workload (W5 churn at N = 100000 by default), with warm-up runs and
# several timed runs, and exports JSON and Markdown.  It times whole
# processes: drawing the random numbers, arming the first N timers and
# tw-bench's warm-up pass are included, so its figures compare end-to-end
# cost.  The per-operation figures are tw-bench's own table, then the loop
# benchmarks of tw-bench --loop (lateness beside libevent's timers, mass
# expiry, inbox, idle), each printed and exported as JSON beside
# hyperfine's.  tools/plot.sh draws the three JSON documents; without
# gnuplot the JSON stays, and the charts can be drawn later from it.
# Nothing here uses the network.
#
# Uses: a built tw-bench, hyperfine; tools/plot.sh (gnuplot, jq).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench.sh [options] [TW_BENCH]

TW_BENCH is the tw-bench binary; default: build/tools/tw-bench of this tree.

  --out DIR         results directory (default: bench-results)
  --impl LIST       implementations, one hyperfine command each (default: all)
  --workload W      workload hyperfine times (default: W5)
  --n N             live timers for hyperfine's workload (default: 100000)
  --warmup COUNT    hyperfine warm-up runs per command (default: 2)
  --runs COUNT      hyperfine timed runs per command (default: 10)
  --seed SEED       passed to every tw-bench run (default: 1)
  --cpu CPU         passed to every tw-bench run: pin it to one CPU
  --loop-seconds S  passed to the loop run: the span of its lateness run
  --loop-timers T   passed to the loop run: the timers of its lateness run
  --quick           the table run gets --quick (N = 1000, 100000); the loop
                    run, one run and --loop-seconds 1 unless given
  --no-table        skip the table run
  --no-loop         skip the loop run
  --no-plot         draw no chart, write the JSON only
  -h, --help        print this and exit

Writes into DIR: hyperfine-W-N.json, .md and .csv, tw-bench.json and .md
(the table), tw-bench-loop.json and .md (the loop run), and the charts
tools/plot.sh draws from them: hyperfine-W-N.png (wall time per process),
tw-bench-1k.png, tw-bench-100k.png and, without --quick, tw-bench-1M.png
(ns per operation at each N), and tw-bench-loop-lateness.png (lateness
percentiles).
EOF
}

die() {
    echo "bench.sh: $*" >&2
    exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=
out=bench-results
impls=tickwheel,libevent-heap,libevent-common,libev,libuv,multimap
workload=W5
n=100000
warmup=2
runs=10
seed=1
cpu=
quick=
table=1
loop=1
plot=1
loop_seconds=
loop_timers=

while [ $# -gt 0 ]; do
    case $1 in
    --out | --impl | --workload | --n | --warmup | --runs | --seed | --cpu | --loop-seconds | \
        --loop-timers)
        [ $# -ge 2 ] || die "$1 needs a value"
        case $1 in
        --out) out=$2 ;;
        --impl) impls=$2 ;;
        --workload) workload=$2 ;;
        --n) n=$2 ;;
        --warmup) warmup=$2 ;;
        --runs) runs=$2 ;;
        --seed) seed=$2 ;;
        --cpu) cpu=$2 ;;
        --loop-seconds) loop_seconds=$2 ;;
        --loop-timers) loop_timers=$2 ;;
        esac
        shift 2
        ;;
    --quick) quick=1; shift ;;
    --no-table) table=; shift ;;
    --no-loop) loop=; shift ;;
    --no-plot) plot=; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1; try --help" ;;
    *)
        [ -z "$bin" ] || die "one tw-bench binary, please"
        bin=$1
        shift
        ;;
    esac
done

[ -n "$bin" ] || bin=$root/build/tools/tw-bench
[ -x "$bin" ] || die "no tw-bench at $bin; build it with: ninja -C build tools/tw-bench"
command -v hyperfine >/dev/null || die "no hyperfine; on Debian: apt-get install hyperfine"
mkdir -p "$out"
if [ -n "$plot" ] && ! command -v gnuplot >/dev/null; then
    echo "bench.sh: no gnuplot: the results are kept as JSON, without charts" \
        "(on Debian: apt-get install gnuplot-nox)" >&2
fi

common=(--seed "$seed")
[ -z "$cpu" ] || common+=(--cpu "$cpu")

# hyperfine runs the commands without a shell (-N), splitting them into
# words itself: quote the binary's path for it.
quoted_bin=$(printf '%q' "$bin")
commands=()
IFS=, read -r -a impl_list <<<"$impls"
for impl in "${impl_list[@]}"; do
    commands+=(--command-name "$impl"
        "$quoted_bin --impl $impl --workload $workload --n $n --runs 1 ${common[*]}")
done

stem=$out/hyperfine-$workload-$n
hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$stem.json" \
    --export-markdown "$stem.md" --export-csv "$stem.csv" "${commands[@]}"
echo
echo "hyperfine, $workload at N = $n, whole process per run:"
cat "$stem.md"
documents=("$stem.json")

if [ -n "$table" ]; then
    table_args=("${common[@]}" --export-json "$out/tw-bench.json")
    [ -z "$quick" ] || table_args+=(--quick)
    echo
    "$bin" "${table_args[@]}" | tee "$out/tw-bench.md"
    documents+=("$out/tw-bench.json")
fi

if [ -n "$loop" ]; then
    loop_args=(--loop "${common[@]}" --export-json "$out/tw-bench-loop.json")
    if [ -n "$quick" ]; then
        loop_args+=(--runs 1)
        loop_seconds=${loop_seconds:-1}
    fi
    [ -z "$loop_seconds" ] || loop_args+=(--loop-seconds "$loop_seconds")
    [ -z "$loop_timers" ] || loop_args+=(--loop-timers "$loop_timers")
    echo
    "$bin" "${loop_args[@]}" | tee "$out/tw-bench-loop.md"
    documents+=("$out/tw-bench-loop.json")
fi

if [ -n "$plot" ]; then
    echo
    status=0
    "$root/tools/plot.sh" "${documents[@]}" || status=$?
    case $status in
    0) echo "bench.sh: the charts are in $out" ;;
    3) echo "bench.sh: the JSON in $out can be drawn later with: tools/plot.sh $out/*.json" >&2 ;;
    *) exit "$status" ;;
    esac
fi
