#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with Clang, ASan and UBSan into
# build/ci-fuzz, then run each one for a bounded time on a copy of its seed corpus
# (tests/fuzz/corpus/NAME/). Any crash, sanitizer report, leak, invariant or oracle failure
# fails the run (exit 1); the input that caused it is left in build/ci-fuzz/artifacts/ and its
# story can be replayed with FUZZ_TRACE=1 build/ci-fuzz/tests/fuzz/fuzz_NAME FILE.
#
# Usage: scripts/fuzz.sh [TARGET...]        (default: every target)
# Environment:
#   IOVAQ_FUZZ_SECONDS  run time per target (default 60)
#   IOVAQ_FUZZ_RUNS     also stop a target after this many executions (default: no limit)
#   IOVAQ_FUZZ_CMP      1 (default): instrument comparisons too (-fsanitize=fuzzer-no-link);
#                       0: edge coverage only, into build/fuzz-nocmp: ~2.7x the executions per
#                       second here (README's long run; same sanitizers)
#   IOVAQ_FUZZ_PARALLEL if set, run the targets at the same time (one process each)
#   IOVAQ_FUZZ_KEEP     if set, new corpus entries are kept in BUILD/corpus/NAME/
#
# Sets the machine up first (scripts/setup.sh installs clang and its sanitizer runtimes).

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh

secs=${IOVAQ_FUZZ_SECONDS:-60}
case $secs in
'' | *[!0-9]*)
	echo "fuzz.sh: IOVAQ_FUZZ_SECONDS must be a whole number of seconds" >&2
	exit 2
	;;
esac

runs=${IOVAQ_FUZZ_RUNS:--1}
case $runs in
-1) ;;
'' | *[!0-9]*)
	echo "fuzz.sh: IOVAQ_FUZZ_RUNS must be a whole number of executions" >&2
	exit 2
	;;
esac
case ${IOVAQ_FUZZ_CMP:-1} in
1)
	bdir=build/ci-fuzz
	cov=-fsanitize=fuzzer-no-link
	;;
0)
	bdir=build/fuzz-nocmp
	cov="-fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp"
	;;
*)
	echo "fuzz.sh: IOVAQ_FUZZ_CMP must be 0 or 1" >&2
	exit 2
	;;
esac
CC=clang cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_WERROR=ON \
	-DIOVAQ_SANITIZE=address,undefined -DIOVAQ_DEBUG=ON -DIOVAQ_BUILD_FUZZ=ON \
	-DIOVAQ_BUILD_TESTS=OFF -DIOVAQ_BUILD_BENCH=OFF -DIOVAQ_BUILD_EXAMPLES=OFF \
	"-DCMAKE_C_FLAGS=$cov"
cmake --build "$bdir" -j2

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		t=$(basename "$f" .c)
		targets+=("${t#fuzz_}")
	done
fi

mkdir -p "$bdir/artifacts"
for t in "${targets[@]}"; do
	if [ ! -x "$bdir/tests/fuzz/fuzz_$t" ]; then
		echo "fuzz.sh: no target '$t' (have: $(cd tests/fuzz && ls fuzz_*.c | sed 's/fuzz_//; s/\.c$//' | tr '\n' ' '))" >&2
		exit 2
	fi
done

# fuzz_one TARGET: run it on a copy of its seed corpus; status 1 on any finding.
fuzz_one() {
	local t=$1 exe=$bdir/tests/fuzz/fuzz_$1 corpus=$bdir/corpus/$1
	if [ -z "${IOVAQ_FUZZ_KEEP:-}" ]; then
		rm -rf "$corpus"
	fi
	mkdir -p "$corpus"
	cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
	echo "==== fuzz_$t: ${secs} s$([ "$runs" = -1 ] || echo " or $runs executions"), $(ls "$corpus" | wc -l) inputs to start from"
	# Every seed first (a regression input must pass), then new inputs for the time given.
	# abort_on_error: an ASan report is a crash; detect_leaks: a leak is one too.
	if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$exe" -max_total_time="$secs" -runs="$runs" -max_len=1024 -timeout=30 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$bdir/artifacts/$t-" "$corpus" >"$bdir/fuzz_$t.log" 2>&1; then
		echo "fuzz.sh: fuzz_$t FAILED; the last lines of its log ($bdir/fuzz_$t.log):"
		grep -v '^#' "$bdir/fuzz_$t.log" | tail -40
		ls -l "$bdir/artifacts/" | grep "$t-" || true
		return 1
	fi
	echo "fuzz_$t: $(grep -E '^Done' "$bdir/fuzz_$t.log" | tail -1)," \
		"$(grep -E '^stat::number_of_executed_units' "$bdir/fuzz_$t.log" | tail -1)"
}

status=0
if [ -n "${IOVAQ_FUZZ_PARALLEL:-}" ]; then
	pids=()
	for t in "${targets[@]}"; do
		fuzz_one "$t" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || status=1
	done
else
	for t in "${targets[@]}"; do
		fuzz_one "$t" || status=1
	done
fi
exit $status
