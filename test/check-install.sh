#!/usr/bin/env bash
# Installs a build into a temporary DESTDIR and uses the result the way a
# program outside this tree would:
#
#   - the header, the shared library and its links, the archive, the
#     pkg-config file and the CMake package file are where they belong;
#   - every name in the NAME section of every installed manual page answers
#     `man NAME`: a page or a link of that name exists;
#   - examples/own-loop.c builds and runs against the install, through
#     pkg-config (shared, and --static with the archive) and through CMake's
#     find_package (tickwheel::tickwheel and tickwheel::tickwheel-static);
#   - each tool the build made is installed, and runs from the install on
#     the library installed beside it (its rpath), not on another.
#
#   check-install.sh --meson MESON --build DIR --source DIR --prefix P
#       --libdir D --includedir D --bindir D --mandir D --cc "CC ..."
#
# TW_INSTALL_DROP=PATH (relative to the prefix) removes that file after the
# install, to see the checks that need it fail.  Ends with "N passed, N
# failed"; exit status 1 when a check failed.
set -u

while [ $# -gt 1 ]; do
    case $1 in
        --meson) meson=$2 ;;
        --build) build=$2 ;;
        --source) src=$2 ;;
        --prefix) prefix=$2 ;;
        --libdir) libdir=$2 ;;
        --includedir) includedir=$2 ;;
        --bindir) bindir=$2 ;;
        --mandir) mandir=$2 ;;
        --cc) cc=$2 ;;
        *) echo "check-install: unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done
for v in meson build src prefix libdir includedir bindir mandir cc; do
    if [ -z "${!v:-}" ]; then
        echo "check-install: --$v missing" >&2
        exit 2
    fi
done
unset LD_LIBRARY_PATH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
passed=0 failed=0

ok() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
# check WHAT COMMAND...: runs COMMAND, its output shown when it fails.
check() {
    local what=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        ok "$what"
    else
        fail "$what"
        tail -n 25 "$tmp/out" | sed 's/^/    /'
    fi
}
# A directory option as installed under DESTDIR.
at() {
    case $1 in
        /*) printf '%s\n' "$dest$1" ;;
        *) printf '%s\n' "$dest$prefix/$1" ;;
    esac
}
# The library a program resolves, as the dynamic linker would.
resolves_to() {  # PROGRAM DIR
    local got
    got=$(ldd "$1" | sed -n 's/^[[:space:]]*libtickwheel\.so\.0 => \(.*\) (0x[0-9a-f]*)$/\1/p')
    if [ -z "$got" ] || [ "$(realpath "$got")" != "$(realpath "$2/libtickwheel.so.0")" ]; then
        echo "$1 resolves libtickwheel.so.0 to '$got', not to $2"
        ldd "$1"
        return 1
    fi
}
# The names a page documents: the arguments of its .Nm lines in NAME.
page_names() {
    sed -n '/^\.Sh NAME/,/^\.Sh /s/^\.Nm[[:space:]]\{1,\}\([^[:space:],]*\).*/\1/p' "$1"
}

if ! "$meson" install -C "$build" --no-rebuild --destdir "$dest" --quiet >"$tmp/out" 2>&1; then
    cat "$tmp/out"
    echo "check-install: meson install failed"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ -n "${TW_INSTALL_DROP:-}" ]; then
    rm -f "$dest$prefix/$TW_INSTALL_DROP"
fi

lib=$(at "$libdir")
inc=$(at "$includedir")
bin=$(at "$bindir")
man=$(at "$mandir")

# The files a user of the library needs.
for f in "$inc/tickwheel.h" "$inc/tickwheel-version.h" "$lib/libtickwheel.so" \
    "$lib/libtickwheel.so.0" "$lib/libtickwheel.a" "$lib/pkgconfig/tickwheel.pc" \
    "$lib/cmake/tickwheel/tickwheelConfig.cmake"; do
    check "installed ${f#"$dest"}" test -f "$f"
done
cmake=$(command -v cmake || true)
if [ -n "$cmake" ]; then
    check "installed ${lib#"$dest"}/cmake/tickwheel/tickwheelConfigVersion.cmake" \
        test -f "$lib/cmake/tickwheel/tickwheelConfigVersion.cmake"
fi

# Manual pages: every page of a thing installed, every name of each.
man_names() {
    local page sec name n missing=0 count=0
    for page in "$src"/man/man1/*.1 "$src"/man/man3/*.3; do
        sec=${page##*.}
        name=$(basename "$page")
        if [ "$sec" = 1 ] && [ ! -x "$build/tools/${name%.1}" ]; then
            if [ -e "$man/man1/$name" ]; then
                echo "$name installed, but ${name%.1} was not built"
                missing=1
            fi
            continue
        fi
        for n in $(page_names "$page"); do
            count=$((count + 1))
            if [ ! -f "$man/man$sec/$n.$sec" ]; then
                echo "man $sec $n: no $n.$sec in ${man#"$dest"}/man$sec (from $name)"
                missing=1
            fi
        done
    done
    echo "$count names"
    [ "$count" -gt 0 ] && [ $missing -eq 0 ]
}
check "every name of every manual page installed" man_names

# A program built with pkg-config against the install.
export PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH=$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
example=$src/examples/own-loop.c
read -r -a ccv <<< "$cc"
build_pc() {
    local cflags libs
    cflags=$(pkg-config --cflags tickwheel) && libs=$(pkg-config --libs tickwheel) || return 1
    echo "pkg-config: $cflags $libs"
    # shellcheck disable=SC2086
    "${ccv[@]}" -o "$tmp/ex-shared" "$example" $cflags $libs -Wl,-rpath,"$lib" &&
        resolves_to "$tmp/ex-shared" "$lib" && "$tmp/ex-shared"
}
check "pkg-config: builds and runs against the shared library" build_pc

build_static() {
    local cflags libs
    cflags=$(pkg-config --cflags tickwheel) && libs=$(pkg-config --static --libs tickwheel) ||
        return 1
    echo "pkg-config --static: $cflags $libs"
    libs=${libs/-ltickwheel/-Wl,-Bstatic -ltickwheel -Wl,-Bdynamic}
    # shellcheck disable=SC2086
    "${ccv[@]}" -o "$tmp/ex-static" "$example" $cflags $libs || return 1
    if readelf -d "$tmp/ex-static" | grep -q 'NEEDED.*libtickwheel'; then
        echo "linked the shared library, not the archive"
        return 1
    fi
    "$tmp/ex-static"
}
check "pkg-config --static: builds and runs with the archive" build_static

# The same through CMake's find_package.
build_cmake() {
    mkdir -p "$tmp/cmake" &&
    cat >"$tmp/cmake/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.13)
project(tickwheel_consumer C)
find_package(tickwheel REQUIRED CONFIG)
if(NOT tickwheel_DIR MATCHES "^$dest/")
  message(FATAL_ERROR "found \${tickwheel_DIR}, not the install under $dest")
endif()
add_executable(ex-shared "$example")
target_link_libraries(ex-shared PRIVATE tickwheel::tickwheel)
add_executable(ex-static "$example")
target_link_libraries(ex-static PRIVATE tickwheel::tickwheel-static)
EOF
    "$cmake" -S "$tmp/cmake" -B "$tmp/cmake/build" -G Ninja \
        -DCMAKE_C_COMPILER="${ccv[0]}" -DCMAKE_PREFIX_PATH="$dest$prefix" &&
    "$cmake" --build "$tmp/cmake/build" &&
    resolves_to "$tmp/cmake/build/ex-shared" "$lib" &&
    "$tmp/cmake/build/ex-shared" && "$tmp/cmake/build/ex-static"
}
if [ -n "$cmake" ]; then
    check "cmake find_package: builds and runs, shared and static" build_cmake
else
    echo "skipped: the CMake build (no cmake)"
fi

# The tools the build made, run from the install.
for tool in tw-sim tw-bench; do
    [ -x "$build/tools/$tool" ] || continue
    case $tool in
        tw-sim) args=(--conns 100 --sim-seconds 1) ;;
        tw-bench) args=(--help) ;;
    esac
    run_tool() {
        [ -x "$bin/$tool" ] || { echo "no ${bin#"$dest"}/$tool"; return 1; }
        if [ "$prefix" != /usr ]; then
            resolves_to "$bin/$tool" "$lib" || return 1
        fi
        "$bin/$tool" "${args[@]}" >/dev/null
    }
    check "$tool: installed, runs on the installed library" run_tool
done

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
