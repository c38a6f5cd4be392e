#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Build the kernel glue (kernel-glue/: iovaq.ko and iovaq_example.ko, with src/core/*.c
# compiled unchanged) against the VM testbed's two 6.12 kernels, and print one line per kernel:
# "<flavor> <kernel release> <directory of the .ko files>".
#
#   scripts/kernel-glue-build.sh [-o OUTDIR] [minimal|debian|all]     (default: all)
#
#   minimal  the testbed's own kernel (tests/vm/build-kernel.sh; built once per machine): a
#            module build tree is prepared from its saved .config and Debian's
#            linux-source-6.12 (make modules_prepare, about a minute, cached beside it). The
#            kernel's Module.symvers is not kept by build-kernel.sh, so modpost is told to only
#            warn about the kernel's symbols (the kernel has no MODVERSIONS; the symbols are
#            resolved at load time).
#   debian   Debian's 6.12 headers for the testbed's Debian kernel
#            (linux-headers-<abi>-amd64, -common and linux-kbuild-<abi>, fetched with
#            apt-get download and unpacked with dpkg -x into the cache; nothing is installed).
#            BTF for the module needs pahole; without it the module is built without BTF.
#
# OUTDIR defaults to build/kernel-glue; each kernel gets OUTDIR/<flavor>/, a staging
# directory of symlinks to kernel-glue/ and src/core/, so that the source tree stays clean.
# -Werror: warnings in the glue or the core fail the build.
#
# Environment: IOVAQ_VM_CACHE (tests/vm/lib.sh), IOVAQ_VM_DEBIAN_ABI.

set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/tests/vm/lib.sh"

out=$root/build/kernel-glue
while getopts o: opt; do
	case $opt in
	o) out=$(realpath -m "$OPTARG") ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
which=${1:-all}
jobs=${IOVAQ_VM_JOBS:-$(($(nproc) + 1))}

stage() { # $1: directory
	local d=$1 f
	rm -rf "$d"
	mkdir -p "$d/core"
	for f in "$root"/kernel-glue/Kbuild "$root"/kernel-glue/*.c "$root"/kernel-glue/*.h; do
		ln -s "$f" "$d/"
	done
	for f in "$root"/src/core/*.c; do
		ln -s "$f" "$d/core/"
	done
}

# A prepared module build tree for the minimal kernel; prints its path.
minimal_tree() {
	local bz kdir name src tree
	bz=$("$root/tests/vm/build-kernel.sh") || vm_die "tests/vm/build-kernel.sh failed"
	kdir=$(dirname "$bz")
	name=$(basename "$kdir")
	src=$vm_cache/src/linux-source-${name#minimal-}
	src=${src%-*}
	[ -d "$src" ] || vm_die "no kernel source at $src (tests/vm/build-kernel.sh unpacks it)"
	tree=$vm_cache/kglue/$name
	if [ ! -f "$tree/.iovaq-prepared" ]; then
		mkdir -p "$vm_cache/kglue"
		exec 8>"$vm_cache/kglue/.lock"
		flock -w 1800 8 || vm_die "another build holds $vm_cache/kglue/.lock"
		if [ ! -f "$tree/.iovaq-prepared" ]; then
			vm_log "preparing a module build tree for $name"
			rm -rf "$tree" "$tree.tmp"
			mkdir -p "$tree.tmp"
			cp "$kdir/.config" "$tree.tmp/.config"
			make -s -C "$src" O="$tree.tmp" olddefconfig >&2
			cmp -s "$kdir/.config" "$tree.tmp/.config" ||
				vm_die "olddefconfig changed the saved .config of $name"
			make -s -C "$src" O="$tree.tmp" -j"$jobs" modules_prepare >&2
			mv "$tree.tmp" "$tree"
			touch "$tree/.iovaq-prepared"
		fi
		exec 8>&-
	fi
	echo "$tree"
}

# Debian's headers, unpacked; prints the directory to build against.
debian_tree() {
	local abi dir pkg deb
	abi=$(vm_debian_abi)
	[ -n "$abi" ] || vm_die "APT knows no Debian 6.12 kernel: run scripts/setup-vm.sh"
	dir=$vm_cache/headers-$abi
	if [ ! -f "$dir/.iovaq-unpacked" ]; then
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		for pkg in "linux-headers-$abi-amd64" "linux-headers-$abi-common" "linux-kbuild-$abi"; do
			deb=$(vm_download "$pkg" "${pkg}_*.deb")
			dpkg -x "$deb" "$dir.tmp"
		done
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		touch "$dir/.iovaq-unpacked"
	fi
	# The package's Makefile includes the -common tree by its installed absolute path.
	sed -i "s|^include /usr/src/|include $dir/usr/src/|" \
		"$dir/usr/src/linux-headers-$abi-amd64/Makefile"
	echo "$dir/usr/src/linux-headers-$abi-amd64"
}

build() { # $1 flavor, $2 kernel tree, extra make arguments...
	local flavor=$1 kdir=$2 d=$out/$1 rel
	shift 2
	stage "$d"
	make -s -C "$kdir" M="$d" IOVAQ_ROOT="$root" KCFLAGS=-Werror -j"$jobs" "$@" modules >&2 ||
		vm_die "$flavor: the module build failed"
	rel=$(cat "$kdir/include/config/kernel.release")
	for ko in iovaq.ko iovaq_example.ko; do
		[ -f "$d/$ko" ] || vm_die "$flavor: no $ko"
		grep -q "^$rel " <<<"$(modinfo -F vermagic "$d/$ko")" ||
			vm_die "$flavor: $ko is not for $rel"
	done
	echo "$flavor $rel $d"
}

case $which in
minimal | all) build minimal "$(minimal_tree)" KBUILD_MODPOST_WARN=1 ;;&
debian | all)
	btf=()
	command -v pahole >/dev/null || btf=(CONFIG_DEBUG_INFO_BTF_MODULES=)
	build debian "$(debian_tree)" "${btf[@]}"
	;;
minimal) ;;
*) vm_die "usage: $0 [-o OUTDIR] [minimal|debian|all]" ;;
esac
