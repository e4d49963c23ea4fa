#!/bin/bash
# tw-sim in simulated time: a small population for a simulated minute.
# Every connection timer fires exactly at its deadline (the clock jumps from
# deadline to deadline, so any lateness is a bug), the protocol really ran
# (handshakes, losses recovered, idle closes, path validations), and two
# runs with one seed agree on every count.
set -u
sim=$1
fail=0
run() { "$sim" --conns 2000 --sim-seconds 60 --loss 0.05 --seed "$1" --json; }
a=$(run 7) || { echo "check-sim: tw-sim failed"; exit 1; }
b=$(run 7) || { echo "check-sim: tw-sim failed"; exit 1; }
field() { printf '%s\n' "$1" | sed -n "s/^  \"$2\": \([-0-9.e+]*\),\{0,1\}$/\1/p"; }
expect() {  # name op value
    v=$(field "$a" "$1")
    if [ -z "$v" ] || ! awk -v v="$v" -v w="$3" "BEGIN { exit !(v $2 w) }"; then
        echo "check-sim: $1 = '${v}', expected $2 $3"
        fail=1
    fi
}
expect connections_opened '>' 2000
expect handshakes '>' 2000
expect idle_closes '>' 0
expect timers_fired '>' 0
expect timers_lazily_skipped '>' 0
expect retransmissions '>' 0
expect pto_events '>' 0
expect path_validations_ok '>' 0
expect late_max_us '==' 0
strip() { printf '%s\n' "$1" | grep -v '"wall_s"\|"longest_turn_us"\|"cpu_percent"\|"rss_max_mib"\|"wheel_ops_per_s"\|"wakeups_per_s"'; }
if [ "$(strip "$a")" != "$(strip "$b")" ]; then
    echo "check-sim: two runs with one seed differ:"
    diff <(strip "$a") <(strip "$b")
    fail=1
fi
c=$("$sim" --conns 0 2>&1); [ $? -eq 2 ] || { echo "check-sim: --conns 0 must exit 2 ($c)"; fail=1; }
c=$("$sim" --loss 2 2>&1); [ $? -eq 2 ] || { echo "check-sim: --loss 2 must exit 2 ($c)"; fail=1; }
[ $fail -eq 0 ] && echo "check-sim: ok"
exit $fail
