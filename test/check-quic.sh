#!/bin/bash
# tw-quic over loopback: 100 real QUIC connections for a few seconds with 5 %
# of the datagrams dropped at send, junk at the server and clients that
# vanish mid-handshake.  Every handshake completes, every echoed byte is the
# byte sent, the loss was recovered (probe timeouts and lost stream frames,
# and the clients that fell silent had all their bytes back before idling
# out), no expiry was handled before ngtcp2's deadline, and the junk was
# counted and dropped.  The same with per-connection libevent timers.
set -u
quic=$1
fail=0
field() { printf '%s\n' "$1" | sed -n "s/^  \"$2\": \([-0-9.e+]*\),\{0,1\}$/\1/p"; }
check() {  # json name op value
    local v
    v=$(field "$1" "$2")
    if [ -z "$v" ] || ! awk -v v="$v" -v w="$4" "BEGIN { exit !(v $3 w) }"; then
        echo "check-quic: $mode: $2 = '${v}', expected $3 $4"
        fail=1
    fi
}
for mode in tickwheel libevent; do
    out=$("$quic" --conns 100 --seconds 3 --loss 0.05 --rate 200 --size 1000 --interval 50 \
        --idle 0.3 --idle-timeout 1500 --vanish 5 --junk 200 --timers "$mode" --json)
    status=$?
    if [ $status -ne 0 ]; then
        echo "check-quic: $mode: tw-quic exited with $status"
        printf '%s\n' "$out"
        fail=1
        continue
    fi
    check "$out" client_opened '==' 105
    check "$out" client_handshakes '==' 100
    check "$out" server_handshakes '==' 100
    check "$out" vanished '==' 5
    check "$out" bytes_verified '>' 100000
    check "$out" bytes_mismatched '==' 0
    check "$out" datagrams_lost '>' 0
    check "$out" pto_fired '>' 0
    check "$out" stream_frames_lost '>' 0
    check "$out" client_idle_closes '>' 10
    check "$out" idle_incomplete '==' 0
    check "$out" closed_error '==' 0
    check "$out" expiries_handled '>' 0
    check "$out" junk_sent '>' 100
    check "$out" dropped_not_quic '>' 0
    check "$out" dropped_unknown_cid '>' 0
    if [ "$mode" = tickwheel ]; then
        check "$out" expiries_early '==' 0
    fi
done
c=$("$quic" --conns 0 2>&1); [ $? -eq 2 ] || { echo "check-quic: --conns 0 must exit 2 ($c)"; fail=1; }
c=$("$quic" --timers heap 2>&1); [ $? -eq 2 ] || { echo "check-quic: --timers heap must exit 2 ($c)"; fail=1; }
[ $fail -eq 0 ] && echo "check-quic: ok"
exit $fail
