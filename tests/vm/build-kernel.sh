#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Build (once per machine) the minimal 6.12 guest kernel with IOMMUFD and VFIO_DEVICE_CDEV from
# Debian's linux-source-6.12, and print the path of its bzImage.
#
#   tests/vm/build-kernel.sh            build unless cached; prints .../bzImage
#   tests/vm/build-kernel.sh --path     print the path the current inputs map to, build nothing
#                                       (exit 1 if it is not built yet)
#
# The kernel is cached in $IOVAQ_VM_CACHE/kernel/minimal-<upstream version>-<hash>/, where the
# hash covers the config fragment (tests/vm/kernel.config), the base config's name and the
# compiler's version: change any of them and the next run builds a new kernel. The build tree lives in the
# cache too, and is removed once the bzImage is saved. About 14 minutes on 2 cores.
#
# Environment: IOVAQ_VM_CACHE (tests/vm/lib.sh), IOVAQ_VM_DEBIAN_ABI (which 6.12 release),
# IOVAQ_VM_JOBS (make -j, default: number of CPUs + 1).

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

abi=$(vm_debian_abi)
[ -n "$abi" ] || vm_die "APT knows no linux-image-6.12.*+deb12-amd64-unsigned:" \
	"run scripts/setup-vm.sh (it adds bookworm-backports)"
up=${abi%+deb12}
hash=$( {
	cat "$vm_dir/kernel.config"
	echo "$up x86_64_defconfig"
	${CC:-gcc} --version | head -n1
} | sha256sum | cut -c1-16)
out=$vm_cache/kernel/minimal-$up-$hash

if [ "${1:-}" = --path ]; then
	echo "$out/bzImage"
	[ -f "$out/bzImage" ]
	exit
fi
if [ -f "$out/bzImage" ]; then
	echo "$out/bzImage"
	exit 0
fi

mkdir -p "$vm_cache/kernel"
exec 9>"$vm_cache/kernel/.lock"
flock -w 3600 9 || vm_die "another build of the kernel holds $vm_cache/kernel/.lock"
if [ -f "$out/bzImage" ]; then # built by whoever held the lock
	echo "$out/bzImage"
	exit 0
fi

t0=$SECONDS
version=$(apt-cache madison linux-source-6.12 | awk -v u="$up" '$3 ~ "^" u "-" { print $3; exit }')
[ -n "$version" ] || vm_die "APT has no linux-source-6.12 for $up"
deb=$(vm_download "linux-source-6.12=$version" "linux-source-6.12_${up}-*_all.deb")

src=$vm_cache/src/linux-source-$up
if [ ! -f "$src/.iovaq-unpacked" ]; then
	vm_log "unpacking $(basename "$deb")"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$src.tmp" --wildcards './usr/src/linux-source-6.12.tar.xz'
	tar -xJf "$src.tmp/usr/src/linux-source-6.12.tar.xz" -C "$src.tmp"
	mv "$src.tmp/linux-source-6.12" "$src"
	rm -rf "$src.tmp"
	touch "$src/.iovaq-unpacked"
fi

kb=$vm_cache/kbuild-$hash
rm -rf "$kb"
mkdir -p "$kb"
jobs=${IOVAQ_VM_JOBS:-$(($(nproc) + 1))}
vm_log "building $up with tests/vm/kernel.config in $kb (-j$jobs)"
make -s -C "$src" O="$kb" x86_64_defconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$kb" "$kb/.config" "$vm_dir/kernel.config" >&2
make -s -C "$src" O="$kb" olddefconfig >&2
# merge_config.sh only warns when Kconfig drops a requested option; a kernel without them is
# useless here, so check the ones that matter.
for opt in IOMMUFD VFIO_DEVICE_CDEV VFIO_IOMMU_TYPE1 VFIO_PCI INTEL_IOMMU IRQ_REMAP; do
	grep -qx "CONFIG_$opt=y" "$kb/.config" || vm_die "CONFIG_$opt=y did not survive olddefconfig"
done
make -s -C "$src" O="$kb" -j"$jobs" bzImage >&2
mkdir -p "$out.tmp"
cp "$kb/arch/x86/boot/bzImage" "$kb/.config" "$out.tmp/"
echo "$abi" >"$out.tmp/debian-abi"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$kb"
vm_log "built $out/bzImage in $((SECONDS - t0)) s"
echo "$out/bzImage"
