#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# ABI stability of libiovaq.so (Debian's abigail-tools):
#  1. the linker version script (src/libiovaq.map) and the project version
#     (include/iovaq/version.h) agree: the newest version node is IOVAQ_<major>.<minor>;
#  2. abidiff compares the library built now with the baseline in extras/abi/, and fails on an
#     incompatible change (a symbol removed, a function's type changed incompatibly: abidiff's
#     exit bit 8). Compatible changes (symbols added; fields appended to the size-prefixed
#     structs, which the library accepts in either size) are printed, not fatal.
#
# Usage: scripts/abi-check.sh              check (sets the machine up first)
#        scripts/abi-check.sh --update     rewrite the baseline from this build (after a
#                                          reviewed, deliberate change; commit it)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh

update=0
case ${1:-} in
'') ;;
--update) update=1 ;;
*)
	echo "abi-check.sh: unknown argument '$1' (known: --update)" >&2
	exit 2
	;;
esac

ver=include/iovaq/version.h
major=$(sed -n 's/^#define IOVAQ_VERSION_MAJOR \([0-9]*\).*/\1/p' "$ver")
minor=$(sed -n 's/^#define IOVAQ_VERSION_MINOR \([0-9]*\).*/\1/p' "$ver")
# Version nodes are lines "IOVAQ_X.Y {" in the map; the newest is the last one.
node=$(sed -n 's/^\(IOVAQ_[0-9]*\.[0-9]*\) {.*/\1/p' src/libiovaq.map | tail -1)
if [ "$node" != "IOVAQ_$major.$minor" ]; then
	echo "abi-check.sh: the newest version node of src/libiovaq.map is '$node', but" \
		"$ver says $major.$minor: add a node IOVAQ_$major.$minor for the new symbols" >&2
	exit 1
fi
echo "abi-check.sh: version script node $node matches version $major.$minor"

# The reference build: the plain configuration's compiler and flags, debug info for abidw.
bdir=build/ci-abi
cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_SANITIZE= \
	-DIOVAQ_BUILD_TESTS=OFF -DIOVAQ_BUILD_BENCH=OFF -DIOVAQ_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$bdir" -j2 --target iovaq >/dev/null
lib=$(readlink -f "$bdir/libiovaq.so.$major")
base=extras/abi/libiovaq-$major.abi   # the ABI of libiovaq.so.$major
# Public headers only: abidiff then judges the types callers can see.
abidw --headers-dir include/iovaq --no-corpus-path --no-show-locs "$lib" >"$bdir/current.abi"
if [ $update -eq 1 ]; then
	mkdir -p extras/abi
	cp "$bdir/current.abi" "$base"
	echo "abi-check.sh: wrote $base"
	exit 0
fi
[ -f "$base" ] || { echo "abi-check.sh: no baseline $base (run with --update)" >&2; exit 1; }
set +e
abidiff --headers-dir2 include/iovaq --no-show-locs "$base" "$bdir/current.abi" \
	>"$bdir/abidiff.txt" 2>&1
rc=$?
set -e
cat "$bdir/abidiff.txt"
# abidiff's exit status is a bit field: 1 error, 2 usage, 4 ABI change, 8 incompatible change.
if [ $((rc & 3)) -ne 0 ]; then
	echo "abi-check.sh: abidiff failed (exit $rc)" >&2
	exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
	echo "abi-check.sh: INCOMPATIBLE ABI change against $base (above)" >&2
	exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
	echo "abi-check.sh: compatible ABI changes against $base (above); refresh the baseline" \
		"with --update when they are released"
else
	echo "abi-check.sh: no ABI change against $base"
fi
