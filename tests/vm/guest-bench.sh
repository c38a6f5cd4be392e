#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# In the guest (/iovaq/bench.sh, run by tests/vm/init): nic-rx through a libiovaq domain under
# every policy on every real backend this kernel has, with iovaq-bench, each run between two
# markers in QEMU's VT-d trace (vm-mark: a DMA fault at a numbered IOVA) so that the host can
# count the invalidation descriptors QEMU saw during that run (tests/vm/bench-summary.py).
#
# Every configuration runs twice, with --ops N and with --ops 1: the difference of the two
# runs' descriptor counts, divided by (N - 1) and by the executions (--reps + 1: iovaq-bench
# runs one more repetition for its breakdown), is the descriptors per op, free of the ring fill
# and teardown and of opening the device, which both runs share.
#
# Kernel command line: iovaq.bench_ops=N (default 2000), iovaq.bench_reps=N (default 1),
# iovaq.bench_backends=LIST (default: iommufd if /dev/iommu exists, and vfio-type1).
# Environment: IOVAQ_TEST_EDU (the edu device, set by init: the markers' DMA engine, and the
# device the runs map for unless init set IOVAQ_BENCH_DEVICE from iovaq.device=).
#
# Output, one line per run (the host reads them from the console):
#   iovaq-bench: seg=K backend=B policy=P ops=N reps=R rc=C json={...}
# and, last, "iovaq-bench: N passed, N failed". A run passes when iovaq-bench exits 0 and its
# JSON shows unmapped pages, no flush error (it would have exited 1) and, under strict and
# safe-deferred, no unsafe reuse; a marker passes when its fault was seen. Bound violations
# (a window above the 10 ms bound) are reported, not judged: windows are wall-clock times, and
# a TCG guest on a loaded 2-CPU host stretches them past the bound (seen: deferred, and arenas,
# whose window runs until the workload's arena sync after 64 ops).

arg() {
	sed -n "s/.*iovaq\.$1=\([^ ]*\).*/\1/p" /proc/cmdline
}
ops=$(arg bench_ops)
reps=$(arg bench_reps)
backends=$(arg bench_backends | tr , ' ')
ops=${ops:-2000}
reps=${reps:-1}
if [ -z "$backends" ]; then
	[ -e /dev/iommu ] && backends=iommufd
	backends="$backends vfio-type1"
fi
policies="strict deferred safe-deferred safe-deferred+arenas passthrough"
bin=/iovaq/bin
passed=0 failed=0 seg=0

bad() {
	echo "iovaq-bench: FAIL: $*"
	failed=$((failed + 1))
}
mark() {
	if $bin/vm_mark "$1"; then
		passed=$((passed + 1))
	else
		bad "marker $1"
	fi
}
field() { # field NAME JSON: the number after "NAME":
	echo "$2" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"
}

echo "iovaq-bench: nic-rx, --ops $ops and 1, --reps $reps, backends:$backends," \
	"device ${IOVAQ_BENCH_DEVICE:-$IOVAQ_TEST_EDU}"
for b in $backends; do
	for p in $policies; do
		for n in 1 $ops; do
			mark $((2 * seg))
			out=$($bin/iovaq-bench run --backend "$b" \
				--device "${IOVAQ_BENCH_DEVICE:-$IOVAQ_TEST_EDU}" \
				--policy "$p" --workload nic-rx --ops "$n" --reps "$reps" --json \
				2>/tmp/bench.err)
			rc=$?
			mark $((2 * seg + 1))
			json=$(echo "$out" | tr -d '\n')
			echo "iovaq-bench: seg=$seg backend=$b policy=$p ops=$n reps=$reps rc=$rc json=$json"
			seg=$((seg + 1))
			if [ $rc -ne 0 ]; then
				bad "$b $p --ops $n exited $rc: $(grep -v warning /tmp/bench.err | tail -n 3)"
				continue
			fi
			unmapped=$(field unmapped_pages "$json")
			unsafe=$(field unsafe_reuse "$json")
			if [ "${unmapped:-0}" -lt "$n" ] && [ "$p" != passthrough ]; then
				bad "$b $p --ops $n: $unmapped pages unmapped in the timed ops"
			elif [ "$p" != deferred ] && [ "$p" != passthrough ] && [ "${unsafe:-1}" -ne 0 ]; then
				bad "$b $p --ops $n: $unsafe unsafe reuses"
			else
				passed=$((passed + 1))
			fi
		done
	done
done
echo "iovaq-bench: $passed passed, $failed failed"
