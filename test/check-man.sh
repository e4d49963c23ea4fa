#!/usr/bin/env bash
# Guard checks for the hand-written manual pages.
#
#   check-man.sh lint [MANDOC [PAGE...]]
#       mandoc -Tlint -Wwarning over every page must print nothing, and every
#       .Xr to a page of this project must name a page that exists.
#   check-man.sh coverage [SYMFILE [PAGE...]]
#       every symbol in the global: list of the version script is the .Nm of
#       some section-3 page, and every tw_ .Nm is an exported symbol.
#   check-man.sh
#       both, with the defaults: mandoc from PATH, the pages under man/ and
#       lib/tickwheel.sym of the source tree holding this script.
#
# Exit status 0 when the checks pass, 1 when one fails, 77 (skipped, for
# meson) when mandoc is not available.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)

default_pages() {
    local sec=$1
    local f
    for f in "$srcdir"/man/man"$sec"/*."$sec"; do
        [ -e "$f" ] && printf '%s\n' "$f"
    done
}

# The names a page documents: the arguments of its .Nm lines in NAME.
page_names() {
    sed -n '/^\.Sh NAME/,/^\.Sh /s/^\.Nm[[:space:]]\{1,\}\([^[:space:],]*\).*/\1/p' "$1"
}

page_section() {
    sed -n 's/^\.Dt[[:space:]]\{1,\}[^[:space:]]\{1,\}[[:space:]]\{1,\}\([0-9]\).*/\1/p' "$1" | head -n 1
}

lint() {
    local mandoc=${1:-}
    [ $# -gt 0 ] && shift
    if [ -z "$mandoc" ]; then
        mandoc=$(command -v mandoc || true)
    fi
    if [ -z "$mandoc" ] || [ ! -x "$mandoc" ]; then
        echo "man-lint: mandoc not found, skipped"
        return 77
    fi
    local pages=("$@")
    if [ ${#pages[@]} -eq 0 ]; then
        mapfile -t pages < <(default_pages 1; default_pages 3)
    fi
    if [ ${#pages[@]} -eq 0 ]; then
        echo "man-lint: no pages given"
        return 1
    fi

    local fail=0 out
    # mandoc also reports problems of the system's own manual database
    # (an outdated mandoc.db) on stderr; those lines are not about the pages.
    out=$("$mandoc" -Tlint -Wwarning "${pages[@]}" 2>&1 | grep -v 'outdated mandoc.db')
    if [ -n "$out" ]; then
        printf '%s\n' "$out"
        fail=1
    fi

    # Cross references to this project's pages must resolve.
    local known="" p sec n
    for p in "${pages[@]}"; do
        sec=$(page_section "$p")
        for n in $(page_names "$p"); do
            known+=" $n($sec)"
        done
    done
    local ref
    for p in "${pages[@]}"; do
        while read -r ref; do
            case " $known " in
                *" $ref "*) ;;
                *)
                    echo "$p: .Xr $ref names no page given"
                    fail=1
                    ;;
            esac
        done < <(sed -n 's/^\.Xr[[:space:]]\{1,\}\(tw[_-][^[:space:]]*\|tickwheel\)[[:space:]]\{1,\}\([0-9]\).*/\1(\2)/p' "$p")
    done

    if [ $fail -ne 0 ]; then
        echo "man-lint: ${#pages[@]} pages, FAILED"
        return 1
    fi
    echo "man-lint: ${#pages[@]} pages, clean"
    return 0
}

coverage() {
    local sym=${1:-$srcdir/lib/tickwheel.sym}
    [ $# -gt 0 ] && shift
    local pages=("$@")
    if [ ${#pages[@]} -eq 0 ]; then
        mapfile -t pages < <(default_pages 3)
    fi
    if [ ! -r "$sym" ]; then
        echo "man-coverage: cannot read $sym"
        return 1
    fi
    if [ ${#pages[@]} -eq 0 ]; then
        echo "man-coverage: no pages given"
        return 1
    fi

    local symbols
    symbols=$(sed -n '/^[[:space:]]*global:/,/^[[:space:]]*local:/s/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\);.*/\1/p' "$sym" | sort -u)
    if [ -z "$symbols" ]; then
        echo "man-coverage: no global symbols found in $sym"
        return 1
    fi

    local names="" p
    for p in "${pages[@]}"; do
        names+=$(page_names "$p")$'\n'
    done
    names=$(printf '%s' "$names" | sed '/^$/d' | sort -u)

    local fail=0 s count
    count=$(printf '%s\n' "$symbols" | wc -l)
    for s in $symbols; do
        if ! printf '%s\n' "$names" | grep -qx -- "$s"; then
            echo "man-coverage: $s is exported but no man3 page has .Nm $s"
            fail=1
        fi
    done
    # The other direction: a documented tw_ name that is not exported is a
    # page left behind by a rename or a removal.
    for s in $(printf '%s\n' "$names" | grep '^tw_' || true); do
        if ! printf '%s\n' "$symbols" | grep -qx -- "$s"; then
            echo "man-coverage: .Nm $s documents a symbol that is not exported"
            fail=1
        fi
    done

    if [ $fail -ne 0 ]; then
        echo "man-coverage: $count symbols, FAILED"
        return 1
    fi
    echo "man-coverage: $count symbols, each the .Nm of a man3 page"
    return 0
}

mode=${1:-all}
[ $# -gt 0 ] && shift
case $mode in
    lint)
        lint "$@"
        ;;
    coverage)
        coverage "$@"
        ;;
    all)
        lint
        rl=$?
        coverage
        rc=$?
        if [ $rl -eq 77 ] && [ $rc -eq 0 ]; then
            exit 77
        fi
        [ $rl -eq 0 ] && [ $rc -eq 0 ]
        ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        ;;
    *)
        echo "usage: check-man.sh [lint [MANDOC [PAGE...]] | coverage [SYMFILE [PAGE...]]]" >&2
        exit 2
        ;;
esac
