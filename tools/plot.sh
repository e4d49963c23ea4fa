#!/usr/bin/env bash
# plot.sh -- the benchmarks' JSON drawn as PNG charts with gnuplot.
#
# Every chart of the project is drawn here, from a JSON document alone, so
# a saved run can be drawn again later or elsewhere: tools/bench.sh calls
# this on what it just wrote, and a person on a file they kept.  What a
# file holds decides its charts:
#
#   tw-bench (the peer comparison)   one chart per N: ns per operation,
#                                    grouped bars per workload, a bar per
#                                    implementation, the median with the
#                                    min-max of the runs as error bars
#   tw-bench --loop                  the lateness percentiles of each
#                                    subject (p50, p90, p99, p99.9, max),
#                                    the median with the min-max of the runs
#   hyperfine --export-json          wall time per command, the mean with
#                                    the min-max of the runs
#
# A scale becomes logarithmic when the largest figure is more than 20
# times the smallest.  The titles name the machine and the date the
# figures were taken, as tw-bench records them; hyperfine records neither,
# so its chart gives the file's date.
#
# Uses: gnuplot (pngcairo), jq.  Without them nothing is drawn, and the
# exit status says so.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/plot.sh [--out DIR] FILE.json...

Draws each FILE, a JSON document of tw-bench, tw-bench --loop or
hyperfine --export-json, as PNG, named after FILE without .json (STEM):

  tw-bench          STEM-N.png for each N it holds (STEM-1k.png, STEM-1M.png):
                    ns per operation per workload and implementation
  tw-bench --loop   STEM-lateness.png: lateness percentiles per subject
  hyperfine         STEM.png: wall time per command

  --out DIR     write the PNGs into DIR (default: beside each FILE)
  -h, --help    print this and exit

Prints the path of each PNG it writes.

Exit status: 0 when every chart was drawn; 1 when a FILE could not be read
or holds nothing to draw; 2 for a bad command line; 3 when gnuplot or jq is
missing, and nothing was drawn.
EOF
}

die() {
    echo "plot.sh: $*" >&2
    exit 2
}

out=
files=()
while [ $# -gt 0 ]; do
    case $1 in
    --out)
        [ $# -ge 2 ] || die "--out needs a value"
        out=$2
        shift 2
        ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1; try --help" ;;
    *) files+=("$1"); shift ;;
    esac
done
[ ${#files[@]} -gt 0 ] || die "no JSON file given; try --help"

missing=()
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
    echo "plot.sh: no charts drawn: gnuplot and jq are needed" \
        "(on Debian: apt-get install ${missing[*]})" >&2
    exit 3
fi
if ! gnuplot -e 'set terminal pngcairo' 2>/dev/null; then
    echo "plot.sh: no charts drawn: this gnuplot has no pngcairo terminal" >&2
    exit 3
fi
[ -z "$out" ] || mkdir -p "$out"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same colour for an implementation or subject in every chart; the
# Okabe-Ito palette, which stays apart for the common colour blindnesses.
colour() {
    case $1 in
    tickwheel | tw_loop) echo '#D55E00' ;;
    libevent-heap | tw_loop-by-hand) echo '#56B4E9' ;;
    libevent-common | tw_loop-slack-1ms) echo '#E69F00' ;;
    libev | libevent-precise) echo '#009E73' ;;
    libuv | libevent-default) echo '#0072B2' ;;
    multimap) echo '#CC79A7' ;;
    *) echo '#555555' ;;
    esac
}

display_name() {
    case $1 in
    libevent-heap) echo 'libevent heap' ;;
    libevent-common) echo 'libevent common timeouts' ;;
    multimap) echo 'std::multimap' ;;
    tw_loop-by-hand) echo 'tw_loop, by hand' ;;
    tw_loop-slack-1ms) echo 'tw_loop, 1 ms slack' ;;
    libevent-precise) echo 'libevent, precise timer' ;;
    libevent-default) echo 'libevent, default base' ;;
    *) echo "$1" ;;
    esac
}

# A string as a gnuplot string literal, a line break as \n.
quote() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "${s//$'\n'/\\n}"
}

# "1 run", "3 runs".
runs_of() {
    if [ "$1" = 1 ]; then echo "1 run"; else echo "$1 runs"; fi
}

# 1000 as 1k, 1000000 as 1M, as tw-bench labels N.
n_label() {
    local n=$1
    if [ $((n % 1000000)) -eq 0 ]; then echo "$((n / 1000000))M"
    elif [ $((n % 1000)) -eq 0 ]; then echo "$((n / 1000))k"
    else echo "$n"; fi
}

# "AMD EPYC, 2 CPUs, Linux 6.1.0 x86_64; 2026-05-04 17:12 UTC", from the
# members tw-bench writes; what the file lacks is said to be unknown.
provenance() {
    jq -r '
        (if .machine then
            "\(.machine.cpu), \(.machine.cpus) CPU\(if .machine.cpus == 1 then "" else "s" end), \(.machine.system)"
         else "machine not recorded" end) + "; " +
        (if .date then (.date | sub("T"; " ") | sub(":[0-9]+Z$"; " UTC")) else "date not recorded" end)
    ' "$1"
}

# The terminal and the look every chart shares.  Enhanced text is off:
# names such as tw_loop hold underscores.
preamble() {
    cat <<EOF
set encoding utf8
set terminal pngcairo size 1280,720 noenhanced font "DejaVu Sans,11"
set output $(quote "$1")
set datafile separator "\t"
set datafile missing "NaN"
set border 3
set tics nomirror
set grid ytics back lc rgb "#e3e3e3" lw 1 dt solid
set key outside right top vertical Left reverse noautotitle
EOF
}

# The y axis, as gnuplot commands, for the figures of data file $1, in
# triples of columns from column $2 (median, min, max; NaN when none),
# labelled $3: logarithmic when $4 is "log" or the largest figure is more
# than 20 times the smallest, with tics at 1, 2 and 5 of each decade, and
# room above the highest error bar for the figures written there; the
# bottom of the axis in the gnuplot variable ybottom.
# Runs the gnuplot script $1, which writes $2; says which chart ($3)
# failed, and marks the run failed, when gnuplot does.
draw() {
    if gnuplot "$1"; then
        echo "$2"
    else
        echo "plot.sh: $3: gnuplot failed" >&2
        failed=1
    fi
}

y_axis() {
    awk -F'\t' -v first="$2" -v label="$3" -v force="${4:-}" -v q='"' '
        {
            for (i = first; i + 2 <= NF; i += 3) {
                if ($i == "NaN")
                    continue
                if ($(i + 1) > 0 && (min == "" || $(i + 1) < min))
                    min = $(i + 1)
                if ($(i + 2) > max)
                    max = $(i + 2)
            }
        }
        END {
            if (max <= 0) {
                print "set ylabel " q label q
                print "set yrange [0:1]"
                print "ybottom = 0"
                exit
            }
            if (force != "log" && (min == "" || max / min <= 20)) {
                print "set ylabel " q label q
                printf "set yrange [0:%g]\n", max * 1.15
                print "ybottom = 0"
                exit
            }
            lo = min / 1.6
            hi = max * 2
            print "set logscale y"
            print "set ylabel " q label " (log scale)" q
            printf "set yrange [%g:%g]\n", lo, hi
            printf "ybottom = %g\n", lo
            tics = ""
            for (e = int(log(lo) / log(10)) - 1; e <= int(log(hi) / log(10)) + 1; e++)
                for (k = 1; k <= 3; k++) {
                    v = (k == 1 ? 1 : k == 2 ? 2 : 5) * 10 ^ e
                    if (v >= lo && v <= hi)
                        tics = tics (tics == "" ? "" : ", ") sprintf("%s%g%s %.10g", q, v, q, v)
                }
            print "set ytics (" tics ")"
            print "set mytics 1"
        }' "$1"
}

failed=0

# tw-bench's peer comparison: a chart per N.
plot_peers() {
    local file=$1 stem=$2 prov dir
    dir=$(mktemp -d "$tmp/peers.XXXXXX")
    prov=$(provenance "$file")
    local version runs
    version=$(jq -r '.tickwheel_version // "?"' "$file")
    runs=$(jq -r '.runs // "?"' "$file")
    local impls=() ns=()
    mapfile -t impls < <(jq -r '[.results[] | select(.workload != "mem") | .implementation]
        | reduce .[] as $i ([]; if index([$i]) then . else . + [$i] end) | .[]' "$file")
    mapfile -t ns < <(jq -r '[.results[] | select(.workload != "mem") | .n] | unique | .[]' "$file")
    if [ ${#impls[@]} -eq 0 ] || [ ${#ns[@]} -eq 0 ]; then
        echo "plot.sh: $file: no timed results to draw" >&2
        failed=1
        return
    fi
    local nimpl=${#impls[@]} impls_json n
    impls_json=$(printf '%s\n' "${impls[@]}" | jq -R . | jq -s -c .)
    for n in "${ns[@]}"; do
        local label png data
        label=$(n_label "$n")
        png=$stem-$label.png
        data=$dir/$label.tsv
        # A row per workload: its name, then median, min and max of each
        # implementation, NaN where it has none.
        jq -r --argjson n "$n" --argjson impls "$impls_json" '
            def names: {"W1": "W1 add", "W2": "W2 cancel", "W3": "W3 reschedule",
                        "W4": "W4 expire", "W5": "W5 churn"};
            .results as $r
            | [$r[] | select(.n == $n and .workload != "mem") | .workload]
            | reduce .[] as $w ([]; if index([$w]) then . else . + [$w] end)
            | .[] as $w
            | [names[$w] // $w] + ($impls | map(. as $i
                | ([$r[] | select(.n == $n and .workload == $w and .implementation == $i)][0]) as $c
                | if $c == null or $c.median_ns == null then ["NaN", "NaN", "NaN"]
                  else [$c.median_ns, $c.min_ns, $c.max_ns] end) | add)
            | @tsv' "$file" >"$data"
        local gap=1.5 script=$dir/$label.gp nworkloads fails=$dir/$label-fails.tsv
        nworkloads=$(wc -l <"$data")
        # Where a bar is missing: no run of it succeeded.
        awk -F'\t' -v n="$nimpl" -v gap="$gap" '{
                for (j = 0; j < n; j++)
                    if ($(2 + 3 * j) == "NaN")
                        printf "%.4f\n", NR - 1 + (j - n / 2 + 0.5) / (n + gap)
            }' "$data" >"$fails"
        {
            preamble "$png"
            echo "set title $(quote "tw-bench: nanoseconds per operation at N = $label (W4: per timer, W5: per step)
median of $(runs_of "$runs"), error bars from min to max; tickwheel $version
$prov")"
            echo 'set style data histogram'
            echo "set style histogram errorbars gap $gap lw 1.2"
            echo 'set style fill solid 0.9 border rgb "#333333"'
            echo 'set boxwidth 1'
            echo 'set xtics scale 0 font ",12"'
            echo "set xrange [-0.6:$nworkloads - 0.4]"
            y_axis "$data" 2 "ns per operation"
            printf 'plot '
            local j
            for ((j = 0; j < nimpl; j++)); do
                local c=$((2 + 3 * j))
                [ $j -eq 0 ] || printf ', \\\n     '
                local xtic=
                [ $j -ne 0 ] || xtic=':xtic(1)'
                printf "%s using %d:%d:%d%s lc rgb %s title %s" "$(quote "$data")" \
                    "$c" $((c + 1)) $((c + 2)) "$xtic" \
                    "$(quote "$(colour "${impls[j]}")")" "$(quote "$(display_name "${impls[j]}")")"
            done
            # The median above each bar's error bar.
            for ((j = 0; j < nimpl; j++)); do
                local c=$((2 + 3 * j))
                # shellcheck disable=SC2016 # gnuplot's $0
                printf ', \\\n     %s using ($0 + (%d - %d/2.0 + 0.5)/(%d + %s)):(column(%d)):(sprintf(column(%d) < 100 ? "%%.3g" : "%%.0f", column(%d))) with labels rotate by 90 left offset 0,0.4 font ",8" tc rgb "#333333"' \
                    "$(quote "$data")" "$j" "$nimpl" "$nimpl" "$gap" $((c + 2)) "$c" "$c"
            done
            [ ! -s "$fails" ] || printf ', \\\n     %s using 1:(ybottom):("no result") with labels rotate by 90 left offset 0,0.5 font ",9" tc rgb "#333333"' \
                "$(quote "$fails")"
            echo
        } >"$script"
        draw "$script" "$png" "$file: N = $label"
    done
}

# tw-bench --loop: the lateness percentiles of each subject.
plot_loop() {
    local file=$1 stem=$2 prov dir
    dir=$(mktemp -d "$tmp/loop.XXXXXX")
    prov=$(provenance "$file")
    local png=$stem-lateness.png script=$dir/lateness.gp
    local subjects=()
    mapfile -t subjects < <(jq -r '
        ["tw_loop", "tw_loop-by-hand", "tw_loop-slack-1ms", "libevent-precise",
         "libevent-default"] as $order
        | [.results[] | select(.benchmark == "lateness" and .runs > 0) | .subject]
        | (map(select(. as $s | $order | index([$s]))) | sort_by(. as $s | $order | index([$s])))
          + map(select(. as $s | $order | index([$s]) | not))
        | .[]' "$file")
    if [ ${#subjects[@]} -eq 0 ]; then
        echo "plot.sh: $file: no lateness results to draw" >&2
        failed=1
        return
    fi
    local timers seconds runs version libevent
    timers=$(n_label "$(jq -r '.loop_timers' "$file")")
    seconds=$(jq -r '.loop_seconds' "$file")
    runs=$(jq -r '.runs' "$file")
    version=$(jq -r '.tickwheel_version // "?"' "$file")
    libevent=$(jq -r '.libevent_version // "?"' "$file")
    # A block per subject, a row per percentile: its place on the x axis,
    # then median, min and max in microseconds, at least 0.1 (a log scale
    # has no 0; a timer on time or early is drawn at its floor).
    local s i=0 clamped=0 plots=()
    for s in "${subjects[@]}"; do
        local data=$dir/subject-$i.tsv
        jq -r --arg s "$s" '
            def floor_us: if . == null then "NaN" else ([. / 1000, 0.1] | max) end;
            [.results[] | select(.benchmark == "lateness" and .subject == $s)][0].metrics as $m
            | ["late_p50_ns", "late_p90_ns", "late_p99_ns", "late_p999_ns", "late_max_ns"]
            | to_entries[]
            | [.key, ($m[.value].median | floor_us), ($m[.value].min | floor_us),
               ($m[.value].max | floor_us)]
            | @tsv' "$file" >"$data"
        if jq -e --arg s "$s" '[.results[] | select(.benchmark == "lateness" and .subject == $s)][0]
                | (.metrics.late_p50_ns.min // 1000) <= 100' "$file" >/dev/null; then
            clamped=1
        fi
        local early title
        early=$(jq -r --arg s "$s" '[.results[] | select(.benchmark == "lateness" and .subject == $s)][0]
            .metrics.early.median // 0 | floor' "$file")
        title=$(display_name "$s")
        [ "$early" = 0 ] || title="$title ($early of $timers early)"
        plots+=("$(printf '%s using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.2 lc rgb %s title %s' \
            "$(quote "$data")" "$(quote "$(colour "$s")")" "$(quote "$title")")")
        i=$((i + 1))
    done
    local note=
    [ $clamped -eq 0 ] || note=" A lateness of 0.1 µs or less, early included, is drawn at 0.1 µs."
    {
        preamble "$png"
        echo "set title $(quote "tw-bench --loop: how late $timers timers fire, deadlines uniform over $seconds s
median of $(runs_of "$runs"), error bars from min to max; tickwheel $version, libevent $libevent
$prov")"
        echo 'set xtics ("p50" 0, "p90" 1, "p99" 2, "p99.9" 3, "max" 4) scale 0 font ",12"'
        echo 'set xrange [-0.3:4.3]'
        echo 'set xlabel "percentile of the timers'"'"' lateness"'
        cat "$dir"/subject-*.tsv >"$dir/all.tsv"
        y_axis "$dir/all.tsv" 2 "lateness, µs" log
        echo "set label 1 $(quote "Lateness: CLOCK_MONOTONIC in the callback minus the deadline.$note") at graph 0, graph -0.12 font \",9\""
        echo 'set bmargin 6'
        printf 'plot %s' "${plots[0]}"
        for ((i = 1; i < ${#plots[@]}; i++)); do printf ', \\\n     %s' "${plots[i]}"; done
        echo
    } >"$script"
    draw "$script" "$png" "$file"
}

# hyperfine --export-json: wall time per command.
plot_hyperfine() {
    local file=$1 stem=$2 dir
    dir=$(mktemp -d "$tmp/hyperfine.XXXXXX")
    local png=$stem.png data=$dir/commands.tsv script=$dir/wall.gp
    # A row per command: its place, its name, then mean, min and max in
    # milliseconds, and the number of runs.
    local place command rest colours=()
    while IFS=$'\t' read -r place command rest; do
        printf '%s\t%s\t%s\n' "$place" "$(display_name "$command")" "$rest"
        colours+=("$(colour "$command")")
    done < <(jq -r '.results | to_entries[]
        | [.key, .value.command, .value.mean * 1000, .value.min * 1000, .value.max * 1000,
           (.value.times | length)] | @tsv' "$file") >"$data"
    local base what date runs
    base=$(basename "$stem")
    # bench.sh names its files hyperfine-W-N.json.
    if [[ $base =~ ^hyperfine-(W[0-9])-([0-9]+)$ ]]; then
        what="tw-bench ${BASH_REMATCH[1]} at N = $(n_label "${BASH_REMATCH[2]}"), a process per run"
    else
        what=$base
    fi
    date=$(date -u -r "$file" '+%Y-%m-%d %H:%M UTC')
    runs=$(awk -F'\t' 'NR == 1 { print $6 }' "$data")
    {
        preamble "$png"
        echo "set title $(quote "hyperfine: wall time of $what
mean of $(runs_of "$runs"), error bars from min to max
file written $date")"
        echo 'set style fill solid 0.9 border rgb "#333333"'
        echo 'set boxwidth 0.7'
        echo 'set xtics scale 0 font ",12"'
        echo 'set key off'
        echo "set xrange [-0.6:$(($(wc -l <"$data") - 1)).6]"
        y_axis "$data" 3 "milliseconds per process"
        printf 'colours = "%s"\n' "${colours[*]}"
        # shellcheck disable=SC2016 # gnuplot's $1
        printf 'plot %s using 1:3:4:5:(0.7):(int(sprintf("0x%%s", word(colours, int($1) + 1)[2:]))):xtic(2) with boxerrorbars lc rgb variable, \\\n' \
            "$(quote "$data")"
        printf '     %s using 1:5:(sprintf("%%.1f ms", column(3))) with labels offset 0,0.8 font ",10"\n' \
            "$(quote "$data")"
    } >"$script"
    draw "$script" "$png" "$file"
}

for file in "${files[@]}"; do
    if [ ! -r "$file" ] || ! kind=$(jq -r '
            if .tool == "tw-bench" and .mode == "loop" then "loop"
            elif .tool == "tw-bench" and (has("mode") | not) then "peers"
            elif (.results | type) == "array" and (.results[0] | has("command") and has("mean"))
                then "hyperfine"
            else "\(.tool // "unknown") \(.mode // "")" end' "$file" 2>/dev/null); then
        echo "plot.sh: $file: not a JSON document it can read" >&2
        failed=1
        continue
    fi
    name=$(basename "$file" .json)
    stem=${out:-$(dirname "$file")}/$name
    case $kind in
    peers) plot_peers "$file" "$stem" ;;
    loop) plot_loop "$file" "$stem" ;;
    hyperfine) plot_hyperfine "$file" "$stem" ;;
    *)
        echo "plot.sh: $file: nothing to draw for $kind" >&2
        failed=1
        ;;
    esac
done
exit $failed
