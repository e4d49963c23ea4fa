#!/usr/bin/env bash
# Runs the tests of each build directory given and ends with one line:
# "N passed, N failed" over all of them.  Exit status 1 if any failed.
# DIR runs every test of DIR; DIR:a,b runs only the tests named a and b.
set -u
passed=0 failed=0 skipped=0
for spec in "$@"; do
    dir=${spec%%:*}
    names=()
    [ "$spec" != "$dir" ] && IFS=, read -r -a names <<< "${spec#*:}"
    echo "== $spec"
    log=$(mktemp)
    ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        TSAN_OPTIONS=halt_on_error=1 \
        meson test -C "$dir" --no-rebuild --print-errorlogs "${names[@]}" 2>&1 | tee "$log"
    count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); n += $2 } END { print n + 0 }' "$log"; }
    ok=$(count Ok) xfail=$(count "Expected Fail") fail=$(count Fail)
    xpass=$(count "Unexpected Pass") timeout=$(count Timeout) skip=$(count Skipped)
    if [ $((ok + xfail + fail + xpass + timeout + skip)) -eq 0 ]; then
        echo "no test ran in $dir"
        fail=1
    fi
    passed=$((passed + ok + xfail))
    failed=$((failed + fail + xpass + timeout))
    skipped=$((skipped + skip))
    rm -f "$log"
done
echo
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
