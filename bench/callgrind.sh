#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Instructions per alloc+free pair, counted by callgrind: repeatable where times on a shared
# 2-core VM are not (DESIGN.md section 8: quote them beside times).
#
# Usage: bench/callgrind.sh [-b IOVAQ_BENCH] [-n OPS] [WORKLOAD ["WORKLOAD EXTRA-ARGS"]...]
#   -b PATH  the iovaq-bench binary (default: $IOVAQ_BENCH, build/release/bench/iovaq-bench,
#            build/bench/iovaq-bench, or iovaq-bench on PATH)
#   -n OPS   pairs of the longer run (default 1000000; the shorter run does OPS/2)
#   WORKLOAD a workload name, optionally with more alloc options in the same word:
#            bench/callgrind.sh nic-rx "nic-rx --cache-mode percpu" mixed
#            (default: nic-rx mixed)
#
# Method. Each workload runs twice under
#   valgrind --tool=callgrind --toggle-collect='bench_timed_ops*'
#   iovaq-bench alloc --workload W --ops N --warmup 100000 --reps 1
# with N = OPS/2 and N = OPS. --toggle-collect counts only instructions executed inside
# bench_timed_ops() (the timed loop, kept out of line under that name) and its callees, so
# the fill, the warm-up, the op-table generation and set-up are never counted. The fixed cost
# left inside the function (two clock_gettime calls, loop entry) cancels in the difference:
#   Ir per pair = (Ir(OPS) - Ir(OPS/2)) / (pairs(OPS) - pairs(OPS/2))
# where pairs counts every thread's pairs (total_ops in the JSON record; --ops is per thread).
# The warm-up is fixed (not OPS/10) so both runs start their timed loop from the same state,
# and the shorter run's pairs are exactly the first half of the longer run's.
#
# Two figures per workload:
#   loop     everything in the timed loop: the library calls, their PLT stubs and the
#            harness's few instructions per pair (ring index, table load, slot store)
#   library  inclusive cost of the two public calls only (iovaq_cache_alloc + _free, or
#            iovaq_space_alloc + _free with --no-cache / tree-only), from callgrind_annotate
# Hold targets against the library figure; the loop figure also depends on the harness.
set -eu

ops=1000000
bench=${IOVAQ_BENCH:-}

while getopts b:n:h opt; do
	case $opt in
	b) bench=$OPTARG ;;
	n) ops=$OPTARG ;;
	h) sed -n '4,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "callgrind.sh: error: see 'bench/callgrind.sh -h'" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- nic-rx mixed

case $ops in
'' | *[!0-9]*) echo "callgrind.sh: error: invalid -n '$ops': not a number" >&2; exit 2 ;;
esac
if [ "$ops" -lt 2 ]; then
	echo "callgrind.sh: error: invalid -n '$ops': at least 2" >&2
	exit 2
fi

. "$(dirname "$0")/find-bench.sh"
bench_find callgrind.sh
for tool in valgrind callgrind_annotate awk; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "callgrind.sh: error: $tool not found (apt-get install valgrind)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

half=$((ops / 2))

# The script owns the run length and the output format: a spec that sets them would be
# silently overridden (the last option wins), so refuse it.
for spec in "$@"; do
	for word in $spec; do
		case $word in
		--ops* | --warmup* | --reps* | --json | --csv)
			echo "callgrind.sh: error: '$word' in '$spec': the script sets --ops (use -n)," \
				"--warmup, --reps and the output format itself" >&2
			exit 2 ;;
		esac
	done
done

# run N SPEC OUT: one collected run; prints "loop_Ir library_Ir"
run() {
	n=$1 spec=$2 out=$3
	# shellcheck disable=SC2086 # SPEC is a workload name plus options, split on purpose
	if ! valgrind --tool=callgrind --toggle-collect='bench_timed_ops*' \
		--callgrind-out-file="$out" \
		"$bench" alloc --workload $spec --ops "$n" --warmup 100000 --reps 1 --json \
		>"$out.stdout" 2>"$out.stderr"; then
		echo "callgrind.sh: error: iovaq-bench alloc --workload $spec failed:" >&2
		grep -v '^==' "$out.stderr" >&2 || true
		exit 1
	fi
	loop=$(awk '/^(totals|summary):/ { print $2; exit }' "$out")
	lib=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
		awk '
		function count(s) { gsub(/,/, "", s); return s + 0 }
		# "  1,234 (12.3%)  file:iovaq_cache_alloc [lib]": the function follows the last ":"
		/iovaq_(cache|space)_(alloc|free)( |$)/ {
			f = $0
			sub(/ \[.*$/, "", f)
			sub(/^.*:/, "", f)
			c[f] = count($1)
		}
		END {
			if (c["iovaq_cache_alloc"] + c["iovaq_cache_free"] > 0)
				print c["iovaq_cache_alloc"] + c["iovaq_cache_free"]
			else
				print c["iovaq_space_alloc"] + c["iovaq_space_free"] + 0
		}')
	# Pairs of all threads: --ops counts per thread.
	pairs=$(sed -n 's/.*"total_ops":\([0-9]*\).*/\1/p' "$out.stdout" | head -n 1)
	echo "${loop:-0} ${lib:-0} ${pairs:-0}"
}

echo "instructions per alloc+free pair: callgrind, (Ir(--ops $ops) - Ir(--ops $half)) / pairs between"
echo "binary: $bench ($("$bench" --version)); $(valgrind --version)"
printf '%-36s %12s %12s\n' "workload" "loop Ir" "library Ir"
i=0
for spec in "$@"; do
	i=$((i + 1))
	r=$(run "$half" "$spec" "$tmp/a$i.out") || exit 1
	# shellcheck disable=SC2086 # three numbers, split on purpose
	set -- $r
	a_loop=$1 a_lib=$2 a_pairs=$3
	r=$(run "$ops" "$spec" "$tmp/b$i.out") || exit 1
	# shellcheck disable=SC2086
	set -- $r
	b_loop=$1 b_lib=$2 b_pairs=$3
	if [ "$b_pairs" -le "$a_pairs" ]; then
		echo "callgrind.sh: error: could not read total_ops for '$spec'" >&2
		exit 1
	fi
	awk -v s="$spec" -v al="$a_loop" -v bl="$b_loop" -v ai="$a_lib" -v bi="$b_lib" \
		-v d=$((b_pairs - a_pairs)) \
		'BEGIN { printf "%-36s %12.1f %12.1f\n", s, (bl - al) / d, (bi - ai) / d }'
done
