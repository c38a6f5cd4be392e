#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Record a benchmark run in bench/results/: the default suite, the tree sweep and the
# callgrind instruction counts, with the commit, the machine and the exact commands, so that
# every figure quoted in README.md can be traced to a file and regenerated.
#
# Usage: bench/record.sh [-b IOVAQ_BENCH] [-o DIR]
#   -b PATH  the iovaq-bench binary (default: as bench/callgrind.sh finds it)
#   -o DIR   where to write (default: bench/results)
# Writes DIR/DATE-COMMIT.md (tables) and DIR/DATE-COMMIT.jsonl (the same runs as JSON).
# Takes about two minutes on 2 cores; run it on an otherwise idle machine (the load average
# at the start is recorded, because a busy second core distorts the two-thread rows).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bench=${IOVAQ_BENCH:-}
outdir=$root/bench/results

while getopts b:o:h opt; do
	case $opt in
	b) bench=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) sed -n '4,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "record.sh: error: see 'bench/record.sh -h'" >&2; exit 2 ;;
	esac
done

. "$(dirname "$0")/find-bench.sh"
bench_find record.sh

commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo uncommitted)
if [ "$commit" != uncommitted ] && [ -n "$(git -C "$root" status --porcelain -- src include bench 2>/dev/null)" ]; then
	commit=$commit-dirty
fi
stamp=$(date -u +%Y-%m-%d)
mkdir -p "$outdir"
md=$outdir/$stamp-$commit.md
jsonl=$outdir/$stamp-$commit.jsonl

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
load=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "# iovaq-bench results, $stamp"
	echo
	echo "- commit: $commit"
	echo "- binary: $("$bench" --version)"
	echo "- machine: $cpu, $(nproc) CPUs, Linux $(uname -r)"
	echo "- load average at start: $load"
	echo
	echo "## Default suite: \`iovaq-bench\`"
	echo
	echo '```'
	"$bench" 2>&1
	echo '```'
	echo
	echo "## Tree path vs outstanding: \`iovaq-bench alloc --workload tree-sweep\`"
	echo
	echo '```'
	"$bench" alloc --workload tree-sweep 2>&1
	echo '```'
	echo
	echo "## Instructions per pair: \`bench/callgrind.sh nic-rx \"nic-rx --cache-mode percpu\" mixed tree-only\`"
	echo
	echo '```'
	"$root/bench/callgrind.sh" -b "$bench" nic-rx "nic-rx --cache-mode percpu" mixed tree-only
	echo '```'
} >"$md"

# A separate run of the same suite, for tools (figures differ from the table by run noise).
"$bench" --json >"$jsonl"

echo "wrote $md and $jsonl"
