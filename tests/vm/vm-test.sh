#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# One ctest test of the vm label (tests/CMakeLists.txt): boot one kernel with the given test
# programs in its initramfs and report what the guest reports.
#
#   tests/vm/vm-test.sh debian|minimal LOGDIR PROGRAM...
#
#   debian   Debian's stock 6.12 (VFIO type1 as modules; no iommufd: those tests skip in the
#            guest with that reason). Fetched on first use (tests/vm/fetch-kernel.sh). Booted
#            twice: the second time with edu behind a pcie-root-port, for a QMP device_del
#            while the device is open (run-vm.sh's IOVAQ_VM_HOTPLUG).
#   minimal  the 6.12 kernel of tests/vm/kernel.config, with iommufd and the VFIO cdev; it must
#            have been built (tests/vm/build-kernel.sh, about 14 minutes; scripts/vm-test.sh
#            does it), else this test skips.
#
# Exit 77 (skipped) when the tier is not set up here: no QEMU, no busybox-static, no kernel.

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kind=$1 logdir=$2
shift 2
skip() {
	echo "vm-test.sh: SKIP: $*" >&2
	exit 77
}
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (scripts/setup-vm.sh)"
[ -x /bin/busybox ] || skip "busybox-static missing (scripts/setup-vm.sh)"

mods=()
case $kind in
debian)
	kdir=$(bash "$vm_dir/fetch-kernel.sh") ||
		skip "cannot fetch Debian's 6.12 kernel (scripts/setup-vm.sh adds bookworm-backports)"
	kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
	mods=(--modules "$kdir")
	;;
minimal)
	kernel=$(bash "$vm_dir/build-kernel.sh" --path) ||
		skip "the minimal kernel is not built here ($kernel): run tests/vm/build-kernel.sh"
	;;
*)
	vm_die "unknown kernel '$kind' (debian, minimal)"
	;;
esac

mkdir -p "$logdir"
initrd=$logdir/initrd-$kind.cpio.gz
bash "$vm_dir/mkinitramfs.sh" "$initrd" "${mods[@]}" "$@"
echo "vm-test.sh: $kind kernel $kernel"
rc=0
bash "$vm_dir/run-vm.sh" "$kernel" "$initrd" "$logdir" "$kind" || rc=$?
# One more boot on Debian's kernel (it has PCI hotplug; the minimal one has none): edu behind
# a pcie-root-port, unplugged with QMP device_del while open (vm_domain's hotplug test).
# About 10-20 s. IOVAQ_VM_HOTPLUG_BOOT=0 leaves it out.
if [ "$kind" = debian ] && [ "${IOVAQ_VM_HOTPLUG_BOOT:-1}" != 0 ]; then
	if command -v python3 >/dev/null; then
		echo "vm-test.sh: $kind-hotplug: edu behind a pcie-root-port, device_del while open"
		IOVAQ_VM_HOTPLUG=1 IOVAQ_VM_TRACE=0 IOVAQ_VM_TIMEOUT=300 \
			bash "$vm_dir/run-vm.sh" "$kernel" "$initrd" "$logdir" "$kind-hotplug" || rc=1
	else
		echo "vm-test.sh: $kind-hotplug: not run: no python3 for the QMP client"
	fi
fi
exit $rc
