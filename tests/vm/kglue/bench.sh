#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Issue 7 part 7, the batching bench (not a ctest tier; docs/kernel-glue.md): on the testbed's
# minimal 6.12 kernel (it has iommufd), once with caching-mode on and once off, the guest runs
# PAIRS x (map + unmap) of 4 KiB pages in a FIFO ring of 64, REPS times each: kernel-side
# strict (iommu_map + iommu_unmap per page), the library's IOMMU calls without the library
# (groups of 1, 64 and 256 pages), the module's in-kernel domain under strict, deferred,
# safe-deferred and safe-deferred with 64-page arenas (and 256-page ones, in a ring of 256),
# the same four through the kshim backend from userspace, and iommufd strict (and with arenas). Two boots per caching mode: one with
# QEMU's VT-d trace, which gives the invalidation descriptors of each run (bench-summary.py), in
# TREPS repetitions; one without it, whose REPS repetitions give the times (the trace writes a
# log line per descriptor, which costs the emulator several µs each and so inflates every
# invalidation's time). OUTDIR/summary.md has the tables, the commands, the kernel, QEMU and
# the machine.
#
#   tests/vm/kglue/bench.sh [-o OUTDIR] [-n PAIRS] [-r REPS] [-R TREPS] [-c "on off"] [-t]
#
# -t loads iovaq.ko with timing=1: the kernel backend times its ops and the IOMMU calls in them
# (two clock reads each, which cost time of their own: a diagnostic run, not the figures), and
# the summary splits the in-kernel domain's time into the core, the backend and the IOMMU.
#
# Under TCG absolute times measure the emulator: compare ratios within one guest run.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/vm/lib.sh"
. "$here/lib.sh"

out=$root/build/kglue-bench pairs=10000 reps=3 treps=3 cms="on off" timing= topt=
while getopts o:n:r:R:c:t opt; do
	case $opt in
	t) timing=timing topt=" -t" ;;
	o) out=$(realpath -m "$OPTARG") ;;
	n) pairs=$OPTARG ;;
	r) reps=$OPTARG ;;
	R) treps=$OPTARG ;;
	c) cms=$OPTARG ;;
	*) exit 2 ;;
	esac
done
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
mkdir -p "$out"
kglue_build_user "$out"
read -r flavor rel dir < <("$root/scripts/kernel-glue-build.sh" -o "$out" minimal)
kernel=$("$root/tests/vm/build-kernel.sh")
sum=$out/summary.md
{
	echo "# kernel-glue batching bench ($(date -u +%Y-%m-%d))"
	echo
	echo "Command: \`tests/vm/kglue/bench.sh -o $out -n $pairs -r $reps -R $treps -c \"$cms\"$topt\`"
	echo
	echo "- guest kernel: $rel (tests/vm/build-kernel.sh), iovaq.ko from this tree ($(git -C "$root" rev-parse --short HEAD), $(git -C "$root" diff --quiet HEAD && echo clean || echo modified))"
	echo "- QEMU: $(qemu-system-x86_64 --version | head -n1), TCG, -smp 1, intel-iommu (intremap=on), edu"
	echo "- host: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs, $(uname -r)"
	echo "- $pairs map+unmap pairs of 4 KiB per run, ring of 64 pages (256 for 256-page arenas); times: $reps runs per configuration without QEMU's trace (medians); descriptors: $treps runs with it"
	echo
	echo "Under TCG absolute times measure the emulator: compare ratios within one guest run."
	echo
} >"$sum"
rc=0
for cm in $cms; do
	kglue_pack "$out" "$dir" "$out/bench-$cm.cpio.gz" "bench $pairs $cm $treps $timing"
	kglue_pack "$out" "$dir" "$out/bench-$cm-timed.cpio.gz" "bench $pairs $cm $reps $timing"
	vm_log "caching-mode=$cm: booting with QEMU's trace ($treps repetitions: descriptors)"
	IOVAQ_VM_CM=$cm IOVAQ_VM_TIMEOUT=${IOVAQ_VM_TIMEOUT:-1800} \
		"$root/tests/vm/run-vm.sh" "$kernel" "$out/bench-$cm.cpio.gz" "$out/logs" "bench-cm-$cm" || rc=1
	vm_log "caching-mode=$cm: booting without the trace ($reps repetitions: times)"
	IOVAQ_VM_CM=$cm IOVAQ_VM_TRACE=0 IOVAQ_VM_TIMEOUT=${IOVAQ_VM_TIMEOUT:-1800} \
		"$root/tests/vm/run-vm.sh" "$kernel" "$out/bench-$cm-timed.cpio.gz" "$out/logs" \
		"bench-cm-$cm-timed" || rc=1
	python3 "$here/bench-summary.py" "$out/logs/bench-cm-$cm.console" "$out/logs/bench-cm-$cm.trace" \
		--times "$out/logs/bench-cm-$cm-timed.console" \
		--title "caching-mode=$cm" --json "$out/bench-cm-$cm.jsonl" >>"$sum" || rc=1
	echo >>"$sum"
done
cat "$sum"
exit $rc
