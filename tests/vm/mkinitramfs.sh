#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Build the VM tier's initramfs: busybox-static, tests/vm/init, test programs and the shared
# libraries they need (the loader included, found with ldd), and optionally kernel modules.
#
#   tests/vm/mkinitramfs.sh OUT.cpio.gz [--modules DIR] [--bin FILE]... [PROGRAM...]
#
# PROGRAMs go to /iovaq/tests/ (init runs each as a Criterion test program); at least one
# PROGRAM or --bin.
# --modules DIR: a kernel tree unpacked by fetch-kernel.sh; the VFIO modules that init loads
# are taken from it (decompressed: busybox insmod does not read .ko.xz), and pci-stub if the
# tree has it (the bad-input test binds the device to it).
# --bin FILE: a tool for the guest, into /iovaq/bin/ (iovaq-bench, vm-mark); with any --bin,
# tests/vm/guest-bench.sh goes in as /iovaq/bench.sh, which init runs after the tests.

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out=$1
shift
mods=""
bins=()
while [ $# -gt 0 ]; do
	case $1 in
	--modules) mods=$2 ;;
	--bin) bins+=("$2") ;;
	*) break ;;
	esac
	shift 2
done
[ $# -gt 0 ] || [ ${#bins[@]} -gt 0 ] ||
	vm_die "usage: mkinitramfs.sh OUT.cpio.gz [--modules DIR] [--bin FILE]... PROGRAM..."
[ -x /bin/busybox ] || vm_die "/bin/busybox missing: run scripts/setup-vm.sh (busybox-static)"
grep -qx poweroff <<<"$(/bin/busybox --list)" || vm_die "/bin/busybox is not busybox-static"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root" # mktemp's 0700 would keep a non-root user in the guest out of everything
mkdir -p "$root"/{bin,proc,sys,dev,tmp,lib/modules,iovaq/tests,iovaq/bin}
cp /bin/busybox "$root/bin/busybox"
cp "$vm_dir/init" "$root/init"
chmod 755 "$root/init"

copy_lib() {
	local f=$1
	[ -e "$root$f" ] && return 0
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
}
copy_prog() {
	local p=$1 dir=$2 lib
	[ -x "$p" ] || vm_die "no program $p"
	cp "$p" "$root/iovaq/$dir/"
	# "libfoo.so => /path (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
	for lib in $(ldd "$p" 2>/dev/null | grep -oE '/[^ ]+' || true); do
		copy_lib "$lib"
	done
}
for p in "$@"; do
	copy_prog "$p" tests
done
for p in "${bins[@]}"; do
	copy_prog "$p" bin
done
if [ ${#bins[@]} -gt 0 ]; then
	cp "$vm_dir/guest-bench.sh" "$root/iovaq/bench.sh"
	chmod 755 "$root/iovaq/bench.sh"
fi

if [ -n "$mods" ]; then
	kdir=$(ls -d "$mods"/lib/modules/*/kernel | head -n1)
	for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 \
		drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci; do
		f=$kdir/$m.ko.xz
		[ -f "$f" ] || vm_die "module $m missing in $kdir"
		xz -dc "$f" >"$root/lib/modules/$(basename "$m").ko"
	done
	if [ -f "$kdir/drivers/pci/pci-stub.ko.xz" ]; then
		xz -dc "$kdir/drivers/pci/pci-stub.ko.xz" >"$root/lib/modules/pci-stub.ko"
	fi
fi

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
