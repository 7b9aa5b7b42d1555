#!/bin/sh
# check_lib.sh - checks the built libraries as a user gets them (make check-lib, run by
# make test): the shared library exports exactly the DS_API functions of include/deepsky.h
# (all ds_), has its soname, and runs a program linked against it; make install (PREFIX and
# DESTDIR) puts every file in place, and its deepsky.pc builds a program against the shared
# and against the static library.
# Usage: tests/check_lib.sh BUILD_DIR   (after make; BUILD_DIR/config holds the options)
set -u
B=${1:?usage: tests/check_lib.sh BUILD_DIR}
CC=${CC:-cc}
MAKE=${MAKE:-make}
pass=0
fail=0
skip=0
ok() { pass=$((pass + 1)); printf 'ok    %-12s %s\n' check_lib "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %-12s %s\n' check_lib "$1"; }
skipped() { skip=$((skip + 1)); printf 'skip  %-12s %s\n' check_lib "$1"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/deepsky-check-lib.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
VERSION=$(sed -n 's/^#define DS_VERSION "\(.*\)"/\1/p' include/deepsky.h)
SONAME=libdeepsky.so.${VERSION%%.*}

# ---- exported symbols ----
if ! command -v nm >/dev/null 2>&1; then
    skipped "exports: nm not found"
else
    nm -D --defined-only "$B/libdeepsky.so" | awk '{print $NF}' | sort -u > "$T/exported"
    grep -v '^ds_' "$T/exported" > "$T/stray"
    if [ -s "$T/stray" ]; then
        bad "exports: symbols without the ds_ prefix: $(tr '\n' ' ' < "$T/stray" | cut -c1-300)"
    else
        ok "exports: $(wc -l < "$T/exported") symbols, all ds_"
    fi
    # The header's DS_API functions (the name before the first parenthesis).
    grep '^DS_API' include/deepsky.h | sed 's/(.*//' | grep -o 'ds_[a-z0-9_]*$' | sort -u \
        > "$T/declared"
    missing=$(comm -23 "$T/declared" "$T/exported" | tr '\n' ' ')
    extra=$(comm -13 "$T/declared" "$T/exported" | tr '\n' ' ')
    if [ -n "$missing$extra" ]; then
        bad "exports = DS_API declarations: not exported: ${missing:-none}; not declared: ${extra:-none}"
    else
        ok "exports = the $(wc -l < "$T/declared") DS_API declarations of deepsky.h"
    fi
fi

# ---- soname ----
if ! command -v readelf >/dev/null 2>&1; then
    skipped "soname: readelf not found"
elif readelf -d "$B/libdeepsky.so" | grep -q "SONAME.*\[$SONAME\]"; then
    ok "soname $SONAME"
else
    bad "soname: expected $SONAME, got: $(readelf -d "$B/libdeepsky.so" | grep SONAME)"
fi

# ---- a program linked against the shared library ----
if ! $CC -std=c11 -O2 -Iinclude examples/xor_and_regression.c -o "$T/xor" -L"$B" -ldeepsky \
        -lm -Wl,-rpath,"$(cd "$B" && pwd)" 2> "$T/err"; then
    bad "shared link: $(head -c 600 "$T/err")"
elif ! readelf -d "$T/xor" 2>/dev/null | grep -q "NEEDED.*\[$SONAME\]"; then
    bad "shared link: the program does not load $SONAME"
elif ! "$T/xor" > "$T/out" 2>&1; then
    bad "shared link: examples/xor_and_regression against $SONAME failed: $(tail -c 400 "$T/out")"
else
    ok "examples/xor_and_regression linked against $SONAME runs"
fi

# ---- make install, then pkg-config ----
P="$T/prefix"
# shellcheck disable=SC2046  # the options, word by word
if ! $MAKE --no-print-directory install $(cat "$B/config") BUILD="$B" PREFIX="$P" \
        > "$T/install.log" 2>&1; then
    bad "make install PREFIX=...: $(tail -c 600 "$T/install.log")"
else
    for f in include/deepsky.h lib/libdeepsky.a "lib/libdeepsky.so.$VERSION" "lib/$SONAME" \
             lib/libdeepsky.so bin/deepsky lib/pkgconfig/deepsky.pc; do
        [ -e "$P/$f" ] || bad "make install: $P/$f is missing"
    done
    [ "$(readlink "$P/lib/libdeepsky.so")" = "$SONAME" ] &&
        [ "$(readlink "$P/lib/$SONAME")" = "libdeepsky.so.$VERSION" ] &&
        ok "make install PREFIX: header, libraries, links, tool, deepsky.pc" ||
        bad "make install: wrong links libdeepsky.so -> $(readlink "$P/lib/libdeepsky.so"), $SONAME -> $(readlink "$P/lib/$SONAME")"
    if "$P/bin/deepsky" --version > "$T/ver" 2>&1 && grep -q "$VERSION" "$T/ver"; then
        ok "installed deepsky --version: $(head -1 "$T/ver")"
    else
        bad "installed deepsky --version: $(cat "$T/ver")"
    fi
    if ! command -v pkg-config >/dev/null 2>&1; then
        skipped "pkg-config: not found"
    else
        export PKG_CONFIG_PATH="$P/lib/pkgconfig"
        # shellcheck disable=SC2046
        if $CC -std=c11 tests/lib/pkg_hello.c -o "$T/hello" $(pkg-config --cflags --libs deepsky) \
                -Wl,-rpath,"$P/lib" 2> "$T/err" && "$T/hello" > "$T/out" 2>&1 &&
                readelf -d "$T/hello" | grep -q "NEEDED.*\[$SONAME\]"; then
            ok "pkg-config --cflags --libs: shared build runs: $(cat "$T/out")"
        else
            bad "pkg-config shared: $(head -c 600 "$T/err") $(cat "$T/out" 2>/dev/null)"
        fi
        # Static: the same flags with --static, and the archive picked by name.
        libs=$(pkg-config --static --libs deepsky | sed 's/-ldeepsky/-l:libdeepsky.a/')
        # shellcheck disable=SC2046,SC2086
        if $CC -std=c11 tests/lib/pkg_hello.c -o "$T/hello_static" $(pkg-config --cflags deepsky) \
                $libs 2> "$T/err" && "$T/hello_static" > "$T/out" 2>&1 &&
                ! readelf -d "$T/hello_static" | grep -q "NEEDED.*libdeepsky"; then
            ok "pkg-config --static --libs: static build runs"
        else
            bad "pkg-config static ($libs): $(head -c 600 "$T/err") $(cat "$T/out" 2>/dev/null)"
        fi
    fi
fi

# ---- DESTDIR: staged under DESTDIR, paths inside say PREFIX ----
S="$T/stage"
# shellcheck disable=SC2046
if $MAKE --no-print-directory install $(cat "$B/config") BUILD="$B" PREFIX=/opt/deepsky \
        DESTDIR="$S" > "$T/install.log" 2>&1 &&
        [ -e "$S/opt/deepsky/lib/libdeepsky.a" ] && [ -e "$S/opt/deepsky/include/deepsky.h" ] &&
        grep -q '^prefix=/opt/deepsky$' "$S/opt/deepsky/lib/pkgconfig/deepsky.pc"; then
    ok "make install DESTDIR=... PREFIX=/opt/deepsky"
else
    bad "make install DESTDIR: $(tail -c 600 "$T/install.log")"
fi

echo "check_lib: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
