#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Fetch Debian's stock 6.12 kernel (image and modules) for the VM tier and print the directory
# it is unpacked in: <dir>/boot/vmlinuz-<abi>-amd64 and <dir>/lib/modules/<abi>-amd64/.
#
#   tests/vm/fetch-kernel.sh           fetch unless cached
#   tests/vm/fetch-kernel.sh --path    print the directory; exit 1 if it is not fetched yet
#
# The package is fetched with "apt-get download" and unpacked with "dpkg -x" into
# $IOVAQ_VM_CACHE/debian-<abi>/: nothing is installed on this host. Which release:
# IOVAQ_VM_DEBIAN_ABI (e.g. 6.12.95+deb12), else the newest 6.12 that APT knows (tests/vm/lib.sh).

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

abi=$(vm_debian_abi)
[ -n "$abi" ] || vm_die "APT knows no linux-image-6.12.*+deb12-amd64-unsigned:" \
	"run scripts/setup-vm.sh (it adds bookworm-backports)"
out=$vm_cache/debian-$abi
if [ "${1:-}" = --path ]; then
	echo "$out"
	[ -f "$out/.iovaq-unpacked" ]
	exit
fi
if [ -f "$out/.iovaq-unpacked" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$vm_cache"
exec 9>"$vm_cache/.fetch.lock"
flock -w 1800 9 || vm_die "another fetch holds $vm_cache/.fetch.lock"
if [ ! -f "$out/.iovaq-unpacked" ]; then
	pkg=linux-image-$abi-amd64-unsigned
	deb=$(vm_download "$pkg" "${pkg}_*_amd64.deb")
	rm -rf "$out.tmp"
	dpkg -x "$deb" "$out.tmp"
	# modules.dep is generated at install time, not shipped; modprobe is not used in the
	# guest (init loads modules in order), but depmod keeps the tree usable for debugging.
	/sbin/depmod -b "$out.tmp" "$abi-amd64" 2>/dev/null || true
	rm -rf "$out"
	mv "$out.tmp" "$out"
	touch "$out/.iovaq-unpacked"
	vm_log "unpacked $(basename "$deb") into $out"
fi
echo "$out"
