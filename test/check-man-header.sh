#!/bin/sh
# Guard check: what the manual pages copy from the header matches it.
#
#   check-man-header.sh [--cc COMPILER] [--header HEADER] [PAGE...]
#
# Structures: every structure with a tw_ tag that a page defines in a
# literal display (.Bd -literal) is compiled against the header by
# man-structs.awk, and must be the header's structure of that tag member
# for member: the same names, in the same order, with the same types and
# offsets, none left out and none added.  The compiler's messages point at
# the page and line at fault.  Each structure the header defines must be
# shown by some page.
#
# Error codes: the ERRORS list of tickwheel(3) has an entry for every code
# of the header's TW__ERRNO_MAP, the table of tw_strerror(3) gives each its
# value, and no page names, with .Er or .Dv, a TW_E code the header lacks.
# The checks of those two pages are skipped when they are not given.
#
# Defaults: cc, include/tickwheel.h and the man3 pages of the source tree
# holding this script.  COMPILER is GCC or Clang (the generated file uses
# __typeof__) and may be several words (ccache cc).  The version header
# the public header includes is made from its .h.in when the header's
# directory has none, so no build is needed.
#
# Exit status 0 when the pages match the header, 1 when one does not.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
cc=cc
header=$srcdir/include/tickwheel.h

while [ $# -gt 0 ]; do
    case $1 in
        --cc)
            cc=$2
            shift 2
            ;;
        --header)
            header=$2
            shift 2
            ;;
        -h | --help)
            sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        --)
            shift
            break
            ;;
        -*)
            echo "usage: check-man-header.sh [--cc COMPILER] [--header HEADER] [PAGE...]" >&2
            exit 2
            ;;
        *)
            break
            ;;
    esac
done
if [ $# -eq 0 ]; then
    set -- "$srcdir"/man/man3/*.3
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man-header.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

fail=0

# ---- structures ----------------------------------------------------------

hdir=$(dirname "$header")
if [ ! -e "$hdir/tickwheel-version.h" ] && [ -e "$hdir/tickwheel-version.h.in" ]; then
    sed 's/@[a-z]*@/0/g' "$hdir/tickwheel-version.h.in" >"$tmp/tickwheel-version.h"
fi

: >"$tmp/shown"
if ! awk -v shown="$tmp/shown" -f "$srcdir/test/man-structs.awk" "$@" >"$tmp/structs.c"; then
    fail=1
fi
# Every assertion is checked and each failure reported; -Werror makes the
# initializers' missing and excess elements errors.
# shellcheck disable=SC2086
if ! $cc -std=c11 -fsyntax-only -fno-diagnostics-show-caret \
    -Wmissing-field-initializers -Werror \
    -I "$hdir" -I "$tmp" "$tmp/structs.c" 2>&1; then
    fail=1
fi

# The structures of the header that no page shows.
sed -n 's/^[[:space:]]*\(typedef[[:space:]]\{1,\}\)\{0,1\}struct[[:space:]]\{1,\}\(tw_[A-Za-z0-9_]*\)[[:space:]]*{.*/\2/p' \
    "$header" >"$tmp/defined"
if ! awk -v header="$(basename "$header")" '
    FILENAME == ARGV[1] { shown[$0] = 1; next }
    !($0 in shown) { print "man-header: " $0 " of " header " is shown in no page"; bad = 1 }
    END { exit bad }' "$tmp/shown" "$tmp/defined"; then
    fail=1
fi
nstructs=$(awk '!seen[$0]++' "$tmp/shown" | wc -l)
if [ "$nstructs" -eq 0 ]; then
    echo "man-header: no structure found in $# pages"
    fail=1
fi

# ---- error codes ---------------------------------------------------------

# NAME VALUE per code of the X-macro: XX(EINVAL, -22, "...").
sed -n 's/^[[:space:]]*XX(\(E[A-Z0-9]*\),[[:space:]]*\(-[0-9]*\),.*/TW_\1 \2/p' "$header" >"$tmp/codes"
ncodes=$(wc -l <"$tmp/codes")
if [ "$ncodes" -eq 0 ]; then
    echo "man-header: no TW__ERRNO_MAP entry found in $header"
    fail=1
fi

# tickwheel(3) and tw_strerror(3) are known by their .Dt lines.
if ! awk -v header="$(basename "$header")" '
    FILENAME == ARGV[1] { value[$1] = $2; next }
    FNR == 1 { page = ""; section = "" }
    /^\.Dt TICKWHEEL 3/ { page = "overview"; overview = FILENAME }
    /^\.Dt TW_STRERROR 3/ { page = "strerror"; strerror = FILENAME }
    /^\.Sh / { section = $2 }
    page == "overview" && section == "ERRORS" && /^\.It Bq Er TW_E/ { listed[$4] = 1 }
    page == "strerror" && /^\.It Dv TW_E[A-Z0-9]* Ta / {
        v = $5
        sub(/^\\/, "", v)
        table[$3] = v
    }
    {
        line = $0
        while (match(line, /(Er|Dv) TW_E[A-Z0-9]+/)) {
            name = substr(line, RSTART + 3, RLENGTH - 3)
            line = substr(line, RSTART + RLENGTH)
            if (!(name in value)) {
                print "man-header: " FILENAME " names " name ", which " header " does not define"
                bad = 1
            }
        }
    }
    END {
        for (name in value) {
            if (overview != "" && !(name in listed)) {
                print "man-header: " name " has no entry under ERRORS in " overview
                bad = 1
            }
            if (strerror != "" && table[name] != value[name]) {
                print "man-header: " name " is not in the table of " strerror " with the value " value[name]
                bad = 1
            }
        }
        exit bad
    }' "$tmp/codes" "$@"; then
    fail=1
fi

if [ $fail -ne 0 ]; then
    echo "man-header: $nstructs structures and $ncodes error codes against $# pages, FAILED"
    exit 1
fi
echo "man-header: $nstructs structures and $ncodes error codes in $# pages, each the header's"
exit 0
