#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Boot a kernel and initramfs under QEMU (TCG) with an emulated VT-d and the edu device, wait
# for the guest's result line, and exit with it.
#
#   tests/vm/run-vm.sh KERNEL INITRD LOGDIR TAG
#
# The machine (DESIGN.md §7): q35 with a split irqchip, -cpu max, intel-iommu with interrupt
# remapping and caching mode (so that VFIO works in the guest, and every invalidation traps),
# edu with a full 64-bit DMA mask (its default clamps DMA addresses to 28 bits). No network, no
# disk. The serial console goes to LOGDIR/TAG.console; QEMU's VT-d invalidation trace events to
# LOGDIR/TAG.trace (-D), summarised on stdout (descriptors by type).
#
# Exit: 0 when the guest printed "iovaq-vm: N passed, 0 failed, ..." with N > 0; 1 when it
# printed failures, printed no result, or did not power off within IOVAQ_VM_TIMEOUT seconds
# (default 900; the guest is killed then).
#
# When the guest ran tests/vm/guest-bench.sh, its runs are joined with the trace
# (tests/vm/bench-summary.py): a table of descriptors per unmapped page per policy, also in
# LOGDIR/TAG.bench.md and, one JSON object per configuration, LOGDIR/TAG.bench.jsonl.
#
# IOVAQ_VM_HOTPLUG=1: edu sits behind a pcie-root-port (hot-pluggable) and QEMU listens for
# QMP on LOGDIR/TAG.qmp; tests/vm/qmp-unplug.py sends device_del when the guest asks for it and
# waits for DEVICE_DELETED; the guest (iovaq.hotplug=1 on its command line) runs only the
# hotplug test (tests/vm/init). Exit 1 also when the unplug did not complete.
#
# Environment: IOVAQ_VM_TIMEOUT, IOVAQ_VM_ACCEL (default tcg: /dev/kvm on the project's machines
# cannot boot these kernels), IOVAQ_VM_CM (caching-mode, default on), IOVAQ_VM_TRACE (0: no
# trace file), IOVAQ_VM_APPEND (more kernel command line, e.g. "iovaq.tests=off
# iovaq.bench_ops=20000": tests/vm/init, tests/vm/guest-bench.sh), IOVAQ_VM_QEMU_ARGS (more
# QEMU arguments, split at spaces, e.g. "-device vfio-pci,host=0000:3b:00.2" to pass a host
# device through: docs/hardware.md).

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 4 ] || vm_die "usage: run-vm.sh KERNEL INITRD LOGDIR TAG"
kernel=$1 initrd=$2 logdir=$3 tag=$4
limit=${IOVAQ_VM_TIMEOUT:-900}
accel=${IOVAQ_VM_ACCEL:-tcg}
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || vm_die "qemu-system-x86_64 missing: run scripts/setup-vm.sh"
mkdir -p "$logdir"
console=$logdir/$tag.console
trace=$logdir/$tag.trace
rm -f "$console" "$trace"

trace_args=()
if [ "${IOVAQ_VM_TRACE:-1}" != 0 ]; then
	trace_args=(-trace 'enable=vtd_inv_desc*' -trace 'enable=vtd_dmar_fault' -D "$trace")
fi
cpu=max
[ "$accel" = tcg ] || cpu=host
# shellcheck disable=SC2054 # the commas are QEMU's
edu_args=(-device edu,dma_mask=0xffffffffffffffff)
hotplug=${IOVAQ_VM_HOTPLUG:-0}
qmp=$logdir/$tag.qmp
if [ "$hotplug" = 1 ]; then
	command -v python3 >/dev/null || vm_die "IOVAQ_VM_HOTPLUG=1 needs python3 (QMP client)"
	rm -f "$qmp"
	# shellcheck disable=SC2054
	edu_args=(-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1
		-device edu,id=edu0,bus=rp0,dma_mask=0xffffffffffffffff
		-qmp "unix:$qmp,server=on,wait=off")
	python3 "$vm_dir/qmp-unplug.py" "$console" "$qmp" edu0 "$((limit - 10))" \
		>"$logdir/$tag.qmp.log" 2>&1 &
	qmp_pid=$!
fi
# The guest's own time limit per test program is a little under ours.
t0=$SECONDS
set +e
timeout --kill-after=10 "$limit" "$qemu" \
	-accel "$accel" -machine q35,kernel-irqchip=split -cpu "$cpu" -smp 1 -m 1G \
	-device intel-iommu,intremap=on,caching-mode="${IOVAQ_VM_CM:-on}" \
	"${edu_args[@]}" \
	-nodefaults -vga none -display none -no-reboot -net none \
	-serial "file:$console" -monitor none \
	"${trace_args[@]}" ${IOVAQ_VM_QEMU_ARGS:-} \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 no_timer_check intel_iommu=on iommu.strict=1 panic=-1 quiet loglevel=4 iovaq.timeout=$((limit - 60)) $([ "$hotplug" = 1 ] && echo iovaq.hotplug=1) ${IOVAQ_VM_APPEND:-}"
rc=$?
unplugged=0
if [ "$hotplug" = 1 ]; then
	# QEMU is gone, and with it the helper's socket; a helper still waiting for the guest's
	# request would wait for its deadline: it has 5 s, then it is stopped.
	for _ in $(seq 50); do
		kill -0 "$qmp_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$qmp_pid" 2>/dev/null
	wait "$qmp_pid" && unplugged=1
	cat "$logdir/$tag.qmp.log"
	rm -f "$qmp"
fi
set -e
secs=$((SECONDS - t0))

if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	vm_log "$tag: the guest did not finish within $limit s: killed (console: $console)"
	tail -n 20 "$console" >&2 || true
	exit 1
fi
result=$(grep -aE '^iovaq-vm: [0-9]+ passed, [0-9]+ failed' "$console" | tail -n1 || true)
if [ -f "$trace" ]; then
	# One line per descriptor type (vtd_inv_desc_iotlb_pages, ..._domain, ..._global, wait).
	summary=$(grep -aoE 'vtd_inv_desc[a-z_]*' "$trace" | sort | uniq -c |
		awk '{ printf "%s%s=%s", sep, $2, $1; sep = ", " }')
	echo "$tag: QEMU VT-d invalidation descriptors: ${summary:-none}"
fi
grep -a 'iovaq-vm: \(FAIL\|init at\|edu\)\|iovaq-bench: FAIL' "$console" || true
if [ -f "$trace" ] && grep -aq '^iovaq-bench: seg=' "$console"; then
	if command -v python3 >/dev/null; then
		python3 "$vm_dir/bench-summary.py" "$console" "$trace" --json "$logdir/$tag.bench.jsonl" \
			--title "$tag: nic-rx per policy, caching-mode=${IOVAQ_VM_CM:-on} (QEMU's descriptors per unmapped page, from the trace)" \
			>"$logdir/$tag.bench.md" || vm_log "$tag: bench-summary.py found problems"
		cat "$logdir/$tag.bench.md"
	else
		vm_log "$tag: no python3: the bench runs are not joined with the trace"
	fi
fi
if [ -z "$result" ]; then
	vm_log "$tag: no result line from the guest (QEMU exit $rc, $secs s); console tail:"
	tail -n 30 "$console" >&2 || true
	exit 1
fi
echo "$tag: ${result#iovaq-vm: } ($secs s)"
if [ "$hotplug" = 1 ] && [ "$unplugged" != 1 ]; then
	vm_log "$tag: QEMU reported no DEVICE_DELETED for edu (qmp-unplug.py above)"
	exit 1
fi
case $result in
*" 0 passed,"*) exit 1 ;;
*" 0 failed"*) exit 0 ;;
*) exit 1 ;;
esac
