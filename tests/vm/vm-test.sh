#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# One ctest test of the vm label (tests/CMakeLists.txt): boot one kernel with the given test
# programs in its initramfs and report what the guest reports.
#
#   tests/vm/vm-test.sh debian|minimal LOGDIR PROGRAM...
#
#   debian   Debian's stock 6.12 (VFIO type1 as modules; no iommufd: those tests skip in the
#            guest with that reason). Fetched on first use (tests/vm/fetch-kernel.sh).
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
exec bash "$vm_dir/run-vm.sh" "$kernel" "$initrd" "$logdir" "$kind"
