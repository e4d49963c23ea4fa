#!/usr/bin/env bash
# bench.sh -- tw-bench through hyperfine, then tw-bench's own table.
#
# hyperfine runs one command per implementation, each a single tw-bench run
# of one workload (W5 churn at N = 100000 by default), with warm-up runs and
# several timed runs, and exports JSON and Markdown.  It times whole
# processes: drawing the random numbers, arming the first N timers and
# tw-bench's warm-up pass are included, so its figures compare end-to-end
# cost; an SVG bar chart of them is rendered with awk alone.  The
# per-operation figures are tw-bench's own table, printed last and exported
# as JSON beside hyperfine's.  Nothing here uses the network.
#
# Uses: a built tw-bench, hyperfine, awk.
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
  --quick           the table run gets --quick (N = 1000, 100000)
  --no-table        skip the table run
  -h, --help        print this and exit

Writes into DIR: hyperfine-W-N.json, .md, .csv and .svg (a bar chart of the
means with min-max whiskers), tw-bench.json and tw-bench.md.
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

while [ $# -gt 0 ]; do
    case $1 in
    --out | --impl | --workload | --n | --warmup | --runs | --seed | --cpu)
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
        esac
        shift 2
        ;;
    --quick) quick=1; shift ;;
    --no-table) table=; shift ;;
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

# A horizontal bar per command: the mean, with a whisker from min to max.
plot_svg() {
    awk -F, -v title="$1" -v q="'" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        {
            n++
            name[n] = $col["command"]
            mean[n] = $col["mean"] * 1000
            lo[n] = $col["min"] * 1000
            hi[n] = $col["max"] * 1000
            if (hi[n] > top) top = hi[n]
        }
        function x(ms) { return 150 + ms / top * 420 }
        function attr(key, value) { return " " key "=" q value q }
        END {
            printf "<svg%s%s", attr("xmlns", "http://www.w3.org/2000/svg"), attr("width", 660)
            printf "%s%s%s>\n", attr("height", 50 + 28 * n), attr("font-family", "sans-serif"),
                attr("font-size", 13)
            printf "<text%s%s>%s</text>\n", attr("x", 10), attr("y", 20), title
            for (i = 1; i <= n; i++) {
                y = 35 + 28 * (i - 1)
                printf "<text%s%s%s>%s</text>\n", attr("x", 142), attr("y", y + 17),
                    attr("text-anchor", "end"), name[i]
                printf "<rect%s%s%s%s%s/>\n", attr("x", 150), attr("y", y + 3),
                    attr("width", x(mean[i]) - 150), attr("height", 20), attr("fill", "#4c78a8")
                printf "<line%s%s%s%s%s/>\n", attr("x1", x(lo[i])), attr("x2", x(hi[i])),
                    attr("y1", y + 13), attr("y2", y + 13), attr("stroke", "black")
                printf "<text%s%s>%.1f ms</text>\n", attr("x", 578), attr("y", y + 17), mean[i]
            }
            print "</svg>"
        }'
}

stem=$out/hyperfine-$workload-$n
hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$stem.json" \
    --export-markdown "$stem.md" --export-csv "$stem.csv" "${commands[@]}"
plot_svg "tw-bench $workload at N = $n: wall time per process, mean and min-max" \
    <"$stem.csv" >"$stem.svg"
echo
echo "hyperfine, $workload at N = $n, whole process per run (plot: $stem.svg):"
cat "$stem.md"

if [ -n "$table" ]; then
    table_args=("${common[@]}" --export-json "$out/tw-bench.json")
    [ -z "$quick" ] || table_args+=(--quick)
    echo
    "$bin" "${table_args[@]}" | tee "$out/tw-bench.md"
fi
