#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The ctest test "install": install a build tree into a temporary prefix, then check from the
# outside that it is usable and that the shared library's ABI surface is what we intend:
#  1. every public header and both libraries are installed;
#  2. tests/install/consumer.c builds and runs through `pkg-config --cflags --libs iovaq`;
#  3. it builds and runs through find_package(iovaq CONFIG) (targets iovaq::iovaq and
#     iovaq::iovaq_static), see tests/install/cmake-consumer/;
#  4. libiovaq.so has SONAME libiovaq.so.<major>;
#  5. it exports only iovaq_* symbols (no iovaq__ internals) plus its version nodes, and every
#     function declared IOVAQ_API in the installed headers.
#
# usage: check-install.sh BUILD_DIR CMAKE C_COMPILER SOVERSION [SANITIZE]
# Exit status: 0 pass, 1 fail, 77 skipped (with the reason on stderr).

set -euo pipefail
export LC_ALL=C

if [ $# -lt 4 ]; then
	echo "usage: $0 BUILD_DIR CMAKE C_COMPILER SOVERSION [SANITIZE]" >&2
	exit 2
fi
build=$1
cmake=$2
cc=$3
major=$4
sanitize=${5:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

skip() { echo "check-install: SKIP: $*" >&2; exit 77; }
fail() { echo "check-install: FAIL: $*" >&2; exit 1; }
step() { echo "check-install: $*"; }

if [ -n "$sanitize" ]; then
	# A sanitized libiovaq.so needs the sanitizer runtime loaded first by every program that
	# uses it; that is not what an installed library looks like.
	skip "sanitized build (IOVAQ_SANITIZE=$sanitize); the plain build runs this test"
fi
command -v pkg-config >/dev/null 2>&1 || skip "pkg-config is not installed"
for tool in readelf nm ldd; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (binutils, libc-bin)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iovaq-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step "installing $build into $prefix"
if ! "$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	fail "cmake --install failed"
fi

# --- 1. files ------------------------------------------------------------------------------------
so=$(find "$prefix" -name "libiovaq.so.$major" \( -type l -o -type f \) | head -n 1)
[ -n "$so" ] || fail "libiovaq.so.$major not installed"
libdir=$(dirname "$so")
[ -e "$libdir/libiovaq.so" ] || fail "development link $libdir/libiovaq.so not installed"
[ -f "$libdir/libiovaq.a" ] || fail "static library $libdir/libiovaq.a not installed"
pc=$(find "$prefix" -name iovaq.pc | head -n 1)
[ -n "$pc" ] || fail "iovaq.pc not installed"
[ -n "$(find "$prefix" -name iovaqConfig.cmake)" ] || fail "iovaqConfig.cmake not installed"
for h in "$srcdir"/include/iovaq/*.h; do
	[ -n "$(find "$prefix" -path "*/include/iovaq/$(basename "$h")")" ] ||
		fail "header iovaq/$(basename "$h") not installed"
done

# --- 2. pkg-config consumer ----------------------------------------------------------------------
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
pc_flags=$(pkg-config --cflags --libs iovaq) || fail "pkg-config --cflags --libs iovaq failed"
step "pkg-config iovaq $(pkg-config --modversion iovaq): $pc_flags"
inc=$(pkg-config --variable=includedir iovaq)
[ -f "$inc/iovaq/iovaq.h" ] || fail "pkg-config includedir $inc has no iovaq/iovaq.h"
# shellcheck disable=SC2086 # pkg-config output is a list of words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$here/consumer.c" $pc_flags ||
	fail "consumer does not build with pkg-config flags"
# Whole outputs, then grep: "cmd | grep -q" under pipefail fails at random when grep's early
# exit makes cmd die of SIGPIPE.
deps=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer-pc")
grep -q "$libdir/libiovaq.so.$major" <<<"$deps" ||
	fail "consumer-pc does not load libiovaq.so.$major from $libdir: $deps"
LD_LIBRARY_PATH=$libdir "$tmp/consumer-pc" || fail "consumer (pkg-config) failed"

# --- 3. CMake package consumer -------------------------------------------------------------------
step "building tests/install/cmake-consumer with find_package(iovaq CONFIG)"
if ! "$cmake" -S "$here/cmake-consumer" -B "$tmp/cmake-build" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
	-DIOVAQ_EXPECT_PREFIX="$prefix" -DIOVAQ_EXPECT_MAJOR="$major" \
	>"$tmp/cmake-consumer.log" 2>&1 ||
	! "$cmake" --build "$tmp/cmake-build" >>"$tmp/cmake-consumer.log" 2>&1; then
	cat "$tmp/cmake-consumer.log" >&2
	fail "cmake consumer does not configure or build"
fi
LD_LIBRARY_PATH=$libdir "$tmp/cmake-build/consumer" || fail "consumer (iovaq::iovaq) failed"
"$tmp/cmake-build/consumer_static" || fail "consumer (iovaq::iovaq_static) failed"
if grep -q libiovaq <<<"$(ldd "$tmp/cmake-build/consumer_static")"; then
	fail "consumer_static is linked against the shared libiovaq"
fi

# --- 4. SONAME -----------------------------------------------------------------------------------
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = "libiovaq.so.$major" ] || fail "SONAME is '$soname', expected libiovaq.so.$major"
step "SONAME $soname"

# --- 5. exported symbols -------------------------------------------------------------------------
nm -D --defined-only "$so" | awk 'NF >= 2 { print $NF }' | sed 's/@.*//' | sort -u >"$tmp/exported"
bad=$(grep -Ev '^(iovaq_[A-Za-z0-9_]+|IOVAQ_[0-9]+\.[0-9]+)$' "$tmp/exported" || true)
internal=$(grep -E '^iovaq__' "$tmp/exported" || true)
[ -z "$bad" ] || fail "libiovaq.so exports symbols outside the iovaq_ namespace:
$bad"
[ -z "$internal" ] || fail "libiovaq.so exports internal iovaq__ symbols:
$internal"
grep -Eq '^IOVAQ_[0-9]+\.[0-9]+$' "$tmp/exported" || fail "no version node in libiovaq.so"
unversioned=$(nm -D --defined-only "$so" | awk '$NF ~ /^iovaq_/ && $NF !~ /@@?IOVAQ_/ { print $NF }')
if grep -q '@' <<<"$(nm -D --defined-only "$so")"; then
	[ -z "$unversioned" ] || fail "symbols without a version node: $unversioned"
fi

# Every function the installed headers declare IOVAQ_API must be exported.
grep -h 'IOVAQ_API' "$inc"/iovaq/*.h | grep -v '#define' |
	grep -o 'iovaq_[A-Za-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' | sort -u >"$tmp/declared"
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
[ -z "$missing" ] || fail "declared IOVAQ_API but not exported by libiovaq.so:
$missing"
step "$(grep -c '^iovaq_' "$tmp/exported") exported functions, all iovaq_*, all declared ones present"

echo "check-install: PASS"
