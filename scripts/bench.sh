#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The main job: set up the machine, build an optimised libiovaq and iovaq-bench in
# build/release (Release at -O2, no sanitizers, no tests), and run iovaq-bench. Without
# arguments it runs "iovaq-bench matrix --plot build/release/plots": every policy x workload x
# sim cost model with the performance breakdown, as tables, and four PNG plots (it prints where
# they are). Arguments are passed to iovaq-bench unchanged instead.
#
#   bash scripts/bench.sh
#   bash scripts/bench.sh matrix --models native,nested+cm --json
#   bash scripts/bench.sh alloc --workload nic-rx --json

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

bash "$top/scripts/setup.sh"

echo "bench.sh: building build/release" >&2
cmake -S "$top" -B build/release \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
	-DIOVAQ_SANITIZE= -DIOVAQ_DEBUG=OFF \
	-DIOVAQ_BUILD_TESTS=OFF -DIOVAQ_BUILD_EXAMPLES=OFF -DIOVAQ_BUILD_BENCH=ON >&2
cmake --build build/release -j2 >&2

bench=build/release/bench/iovaq-bench
if [ ! -x "$bench" ]; then
	echo "bench.sh: $bench was not built (no bench/*.c?)" >&2
	exit 1
fi
if [ $# -eq 0 ]; then
	set -- matrix --plot build/release/plots
fi
exec "$bench" "$@"
