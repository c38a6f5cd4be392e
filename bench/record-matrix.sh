#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Record the default matrix ("iovaq-bench matrix") in bench/results/ and redraw the plots that
# README.md shows, so that its table and images always come from one recorded run:
#   bench/results/DATE-COMMIT-matrix.md    the command, commit, machine and the table
#   bench/results/DATE-COMMIT-matrix.json  the same matrix as JSON (a second run: measured
#                                          figures differ by run noise, modeled ones do not)
#   docs/img/matrix-*.png                  the plots of the first run
#
# Usage: bench/record-matrix.sh [-b IOVAQ_BENCH] [-o DIR]
#   -b PATH  the iovaq-bench binary (default: build/release/bench/iovaq-bench, as
#            scripts/bench.sh builds it)
#   -o DIR   where the results go (default: bench/results)
# About a minute on 2 CPUs; run it on an otherwise idle machine.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bench=${IOVAQ_BENCH:-}
outdir=$root/bench/results

while getopts b:o:h opt; do
	case $opt in
	b) bench=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) sed -n '4,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "record-matrix.sh: error: see 'bench/record-matrix.sh -h'" >&2; exit 2 ;;
	esac
done

. "$(dirname "$0")/find-bench.sh"
bench_find record-matrix.sh

commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo uncommitted)
if [ "$commit" != uncommitted ] && [ -n "$(git -C "$root" status --porcelain -- src include bench 2>/dev/null)" ]; then
	commit=$commit-dirty
fi
stamp=$(date -u +%Y-%m-%d)
mkdir -p "$outdir" "$root/docs/img"
md=$outdir/$stamp-$commit-matrix.md
json=$outdir/$stamp-$commit-matrix.json
plots=$(mktemp -d)
trap 'rm -rf "$plots"' EXIT

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "# iovaq-bench matrix, $stamp"
	echo
	echo "- command: \`iovaq-bench matrix --plot DIR\` (\`bench/record-matrix.sh\`)"
	echo "- commit: $commit"
	echo "- binary: $("$bench" --version)"
	echo "- machine: $cpu, $(nproc) CPUs, Linux $(uname -r)"
	echo "- load average at start: $load"
	echo "- plots: docs/img/matrix-*.png"
	echo
	echo '```'
	"$bench" matrix --plot "$plots" >"$plots/out.txt" 2>"$plots/err.txt"
	cat "$plots/out.txt" "$plots/err.txt" | sed "s|$plots|DIR|g"
	echo '```'
} >"$md"
for p in throughput breakdown window-cdf inval-per-page; do
	cp "$plots/$p.png" "$root/docs/img/matrix-$p.png"
done
"$bench" matrix --json >"$json"
echo "wrote $md, $json and docs/img/matrix-*.png"
