#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The policy x workload matrix of 2026-11-21-policies.md (issue 4's benchmark), rerunnable:
#   bench/results/2026-11-21-policies.sh [BENCH] [OUT.jsonl]
# BENCH defaults to build/runbench/bench/iovaq-bench (a Release build:
#   cmake -S . -B build/runbench -DCMAKE_BUILD_TYPE=Release -DIOVAQ_BUILD_TESTS=OFF
#   cmake --build build/runbench -j2).
# Every run is one line of JSON in OUT (default /tmp/iovaq-policies.jsonl); the table is
# printed by bench/results/2026-11-21-policies-table.py OUT.
set -eu
BENCH=${1:-build/runbench/bench/iovaq-bench}
OUT=${2:-/tmp/iovaq-policies.jsonl}
: > "$OUT"
for bg in 0 4096; do
	for model in "" "--nested --caching-mode"; do
		for wl in nic-rx nic-tx memcached nginx; do
			for pol in strict deferred safe-deferred safe-deferred+arenas passthrough; do
				# shellcheck disable=SC2086 # $model is two words or none
				"$BENCH" run --policy "$pol" --workload "$wl" $model \
					--background "$bg" --json >> "$OUT"
			done
		done
	done
done
# Two threads on one domain, nic-rx, the batching policies.
for model in "" "--nested --caching-mode"; do
	for pol in strict deferred safe-deferred safe-deferred+arenas; do
		# shellcheck disable=SC2086
		"$BENCH" run --policy "$pol" --workload nic-rx --threads 2 $model --json >> "$OUT"
	done
done
echo "wrote $(wc -l < "$OUT") runs to $OUT" >&2
