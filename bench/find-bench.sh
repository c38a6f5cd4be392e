# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Sourced by bench/*.sh: set $bench to the iovaq-bench binary unless the caller chose one.
# Looks in the build trees scripts/bench.sh and a developer build make, then on PATH.
# Usage: bench_find NAME-OF-CALLING-SCRIPT
bench_find() {
	if [ -z "$bench" ]; then
		_root=$(cd "$(dirname "$0")/.." && pwd)
		for _b in "$_root/build/release/bench/iovaq-bench" "$_root/build/bench/iovaq-bench"; do
			if [ -x "$_b" ]; then
				bench=$_b
				break
			fi
		done
		[ -n "$bench" ] || bench=$(command -v iovaq-bench || true)
	fi
	if [ -z "$bench" ] || [ ! -x "$bench" ]; then
		echo "$1: error: iovaq-bench not found; run scripts/bench.sh or pass -b PATH" >&2
		exit 1
	fi
}
