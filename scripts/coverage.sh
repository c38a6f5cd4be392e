#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Line and branch coverage of the library by the test suite (unit, contract and stress tiers),
# measured with GCC's --coverage and summarised by gcovr: a text summary per file on stdout
# and an HTML report in build/ci-coverage/coverage/index.html. Fails (exit 1) when the line
# coverage of src/core/ falls below IOVAQ_COVERAGE_MIN percent (default 90).
#
# Usage: scripts/coverage.sh          (sets the machine up first: scripts/setup.sh)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh

min=${IOVAQ_COVERAGE_MIN:-90}
bdir=build/ci-coverage
# CMake's compiler checks leave .gcno files without sources: not searched.
skip=(--exclude-directories "$bdir/CMakeFiles/[0-9.]+")
cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=Debug -DIOVAQ_WERROR=ON -DIOVAQ_SANITIZE= \
	-DIOVAQ_DEBUG=OFF -DIOVAQ_TEST_SCALE=0.2 -DIOVAQ_BUILD_BENCH=OFF \
	-DCMAKE_C_FLAGS="--coverage -O0 -fprofile-update=atomic" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
	-DCMAKE_SHARED_LINKER_FLAGS=--coverage >/dev/null
cmake --build "$bdir" -j2
find "$bdir" -name '*.gcda' -delete
ctest --test-dir "$bdir" -L 'unit|contract|stress' -E '^install$' --output-on-failure

mkdir -p "$bdir/coverage"
echo "==== coverage of src/core/ (every file of the library below it)"
gcovr --root "$top" "${skip[@]}" --filter 'src/core/' --object-directory "$bdir" \
	--exclude-unreachable-branches \
	--print-summary --html-details "$bdir/coverage/index.html" --txt "$bdir/coverage/core.txt" \
	"$bdir" | tail -3
cat "$bdir/coverage/core.txt"
echo "==== coverage of src/backend/ and src/lib/"
gcovr --root "$top" "${skip[@]}" --filter 'src/backend/' --filter 'src/lib/' \
	--object-directory "$bdir" \
	--exclude-unreachable-branches "$bdir" | tail -12
lines=$(gcovr --root "$top" "${skip[@]}" --filter 'src/core/' --object-directory "$bdir" \
	--json-summary \
	"$bdir/coverage/core.json" "$bdir" >/dev/null &&
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["line_percent"])' \
		"$bdir/coverage/core.json")
echo "coverage.sh: src/core/ line coverage ${lines}% (minimum ${min}%)"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' \
	"$lines" "$min" || {
	echo "coverage.sh: below the minimum" >&2
	exit 1
}
