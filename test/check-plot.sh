#!/bin/bash
# tools/plot.sh on the saved runs of test/data: a tw-bench peer comparison
# at 1k and 1M, a tw-bench --loop run, a hyperfine export.  Each chart it
# names is there, a PNG of 1280x720 pixels (its signature and IHDR) and of
# more than 20 kB, as a chart with its bars, lines and labels is; a file
# it cannot draw and a bad option give their exit status, and without
# gnuplot it says so and exits 3.  Skipped (77) when gnuplot or jq is
# missing, after that last check.
set -u
plot=$1
data=$2
fail=0
bad() {
    echo "check-plot: $*"
    fail=1
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# No gnuplot, no jq: an empty PATH, bash named by its path.
msg=$(PATH=$out/none /bin/bash "$plot" "$data/tw-bench.json" 2>&1)
status=$?
[ $status -eq 3 ] || bad "without gnuplot: exit $status, not 3"
case $msg in
*gnuplot*) ;;
*) bad "without gnuplot, it does not say so: '$msg'" ;;
esac

if ! command -v gnuplot >/dev/null || ! command -v jq >/dev/null; then
    echo "check-plot: skipped: gnuplot or jq is not installed"
    exit 77
fi

"$plot" --out "$out" "$data/tw-bench.json" "$data/tw-bench-loop.json" \
    "$data/hyperfine-W5-10000.json" >"$out/drawn" || bad "plot.sh failed: exit $?"
expected="hyperfine-W5-10000.png tw-bench-1M.png tw-bench-1k.png tw-bench-loop-lateness.png"
drawn=$(xargs -n1 basename <"$out/drawn" | sort | xargs)
[ "$drawn" = "$expected" ] || bad "drew '$drawn', not '$expected'"

for png in $expected; do
    f=$out/$png
    if [ ! -f "$f" ]; then
        bad "$png: missing"
        continue
    fi
    # The signature, then the IHDR chunk: its length (13), type, width and
    # height, big-endian.
    head=$(od -An -tx1 -N24 "$f" | tr -d ' \n')
    [ "${head:0:16}" = 89504e470d0a1a0a ] || bad "$png: not a PNG (starts $head)"
    [ "${head:16:16}" = 0000000d49484452 ] || bad "$png: no IHDR first"
    [ "${head:32:16}" = 00000500000002d0 ] || bad "$png: not 1280x720 (IHDR ${head:32:16})"
    size=$(wc -c <"$f")
    [ "$size" -gt 20000 ] || bad "$png: $size bytes, too few for a chart"
done

# A document of another mode, and a file that is not JSON: exit 1, no chart.
printf '{"tool": "tw-bench", "mode": "conn", "results": []}\n' >"$out/conn.json"
printf 'not json\n' >"$out/text.json"
for f in conn text; do
    "$plot" "$out/$f.json" >/dev/null 2>&1
    status=$?
    [ $status -eq 1 ] || bad "$f.json: exit $status, not 1"
done
[ -z "$(find "$out" -name 'conn*.png' -o -name 'text*.png')" ] || bad "charts drawn from nothing"
"$plot" --no-such-option "$data/tw-bench.json" >/dev/null 2>&1
status=$?
[ $status -eq 2 ] || bad "a bad option: exit $status, not 2"

[ $fail -eq 0 ] && echo "check-plot: ok"
exit $fail
