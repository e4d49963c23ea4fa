#!/usr/bin/env bash
# The shared library exports exactly the symbols of its version script,
# every one at the script's version, and no C++ (_Z) symbol.
set -eu
lib=$1 sym=$2
want=$(sed -n 's/^[[:space:]]*\(tw_[a-z0-9_]*\);.*/\1/p' "$sym" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRBVW]$/ {print $3}' | sed 's/@.*//' | grep -v '^TICKWHEEL_' | sort)
if [ "$want" != "$have" ]; then
    echo "exported symbols differ from $sym:"
    diff <(echo "$want") <(echo "$have") || true
    exit 1
fi
if nm -D --defined-only "$lib" | awk '{print $3}' | grep -q '^_Z'; then
    echo "C++ symbols leak:"
    nm -D --defined-only "$lib" | awk '{print $3}' | grep '^_Z'
    exit 1
fi
unversioned=$(objdump -T "$lib" | awk '/ tw_/ && !/TICKWHEEL_0/' || true)
if [ -n "$unversioned" ]; then
    echo "symbols without the TICKWHEEL_0 version:"
    echo "$unversioned"
    exit 1
fi
echo "$(echo "$want" | wc -l) symbols exported, all versioned, no C++ symbol"
