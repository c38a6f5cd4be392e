#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Build the application guest's initramfs (docs/apps-testbed.md) and print its path.
#
#   bench/apps/mkimage.sh            build unless cached; print the image's path
#   bench/apps/mkimage.sh --path     print the path; exit 1 if it is not built yet
#
# The image is a Debian bookworm root filesystem made with debootstrap (variant minbase, plus
# memcached, redis-server, nginx and what the guest's init needs), with bench/apps/guest-init
# as /init, bench/apps/nginx.conf, and the NIC drivers (virtio_net, e1000e and their
# dependencies) of the stock Debian 6.12 kernel that tests/vm/fetch-kernel.sh fetches. It runs
# wholly from RAM: no disk, so no block-device DMA mixes with the NIC's.
#
# Two cached stages, outside the repository, under $IOVAQ_VM_CACHE/apps/
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/iovaq/vm/apps):
#   rootfs-<hash>/         the debootstrap tree; <hash> covers the suite, the package list,
#                          the debootstrap version and this script's ROOTFS_REV.
#   initrd-<hash>.cpio.gz  the packed image; <hash> covers the rootfs hash, the kernel ABI and
#                          the contents of this script, guest-init and nginx.conf.
#   initrd-<hash>.manifest the packages and versions in the image, the kernel, the inputs.
# The archive is the URI that /etc/apt/sources.list.d/debian.sources (or
# /etc/apt/sources.list) configures for "bookworm": this script names no host. It is not part
# of the hash: the same suite from another mirror is the same input.
#
# Needs root (debootstrap, and files owned by the guest's users), debootstrap, cpio, gzip, xz,
# kmod (depmod): scripts/setup-vm.sh installs them.
#
# Environment: IOVAQ_VM_CACHE, IOVAQ_VM_DEBIAN_ABI (tests/vm/lib.sh); IOVAQ_APPS_CACHE, the
# image's cache (default $IOVAQ_VM_CACHE/apps: a fresh directory there times a build from
# scratch while the kernel stays cached).

set -euo pipefail
apps_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$apps_dir/../.." && pwd)
. "$repo/tests/vm/lib.sh"

# Bump when the rootfs stage below changes in a way the package list does not show.
ROOTFS_REV=1
SUITE=bookworm
# kmod: modprobe for the NIC drivers; iproute2: the guest's address; procps: pidof, ps.
PACKAGES=memcached,redis-server,nginx,iproute2,kmod,procps
# The NIC drivers init loads, with what they depend on (modprobe --show-depends finds those).
MODULES=(virtio_net e1000e)

apps_cache=${IOVAQ_APPS_CACHE:-$vm_cache/apps}

archive_uri() {
	local f=/etc/apt/sources.list.d/debian.sources
	if [ -r "$f" ]; then
		awk '
			/^[[:space:]]*$/ { if (uri != "" && suite) { print uri; exit } uri = ""; suite = 0; next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
			END { if (uri != "" && suite) print uri }
		' "$f" | head -n1
		return
	fi
	if [ -r /etc/apt/sources.list ]; then
		awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list
	fi
}

need() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ||
		vm_die "step 'tools': $1 missing: run scripts/setup-vm.sh"
}

abi=$(vm_debian_abi)
[ -n "$abi" ] || vm_die "step 'kernel': APT knows no linux-image-6.12.*+deb12-amd64-unsigned:" \
	"run scripts/setup-vm.sh (it adds bookworm-backports)"
dbs_ver=$(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo none)
rootfs_hash=$(printf '%s\n' "$SUITE" "$PACKAGES" "$dbs_ver" "$ROOTFS_REV" | sha256sum | cut -c1-16)
image_hash=$( (printf '%s\n' "$rootfs_hash" "$abi" "${MODULES[*]}"
	cat "${BASH_SOURCE[0]}" "$apps_dir/guest-init" "$apps_dir/nginx.conf") | sha256sum | cut -c1-16)
rootfs=$apps_cache/rootfs-$rootfs_hash
image=$apps_cache/initrd-$image_hash.cpio.gz

if [ "${1:-}" = --path ]; then
	echo "$image"
	[ -f "$image" ]
	exit
fi
[ $# -eq 0 ] || vm_die "usage: mkimage.sh [--path]"
if [ -f "$image" ]; then
	echo "$image"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || vm_die "step 'rootfs': needs root (debootstrap, chown to the guest's users)"
for t in debootstrap cpio gzip xz depmod modprobe; do need "$t"; done
mkdir -p "$apps_cache"
exec 9>"$apps_cache/.build.lock"
flock -w 3600 9 || vm_die "another build holds $apps_cache/.build.lock"
if [ -f "$image" ]; then
	echo "$image"
	exit 0
fi

# --- stage 1: the root filesystem ------------------------------------------------------------
if [ ! -f "$rootfs/.iovaq-done" ]; then
	uri=$(archive_uri)
	[ -n "$uri" ] || vm_die "step 'rootfs': no APT source for bookworm in" \
		"/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	rm -rf "$rootfs.tmp"
	vm_log "debootstrap $SUITE (minbase + $PACKAGES) into $rootfs (a few minutes)"
	if ! timeout 3600 debootstrap --variant=minbase --include="$PACKAGES" \
		--keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
		"$SUITE" "$rootfs.tmp" "$uri" >"$apps_cache/debootstrap.log" 2>&1; then
		tail -n 20 "$apps_cache/debootstrap.log" >&2
		vm_die "step 'rootfs': debootstrap failed (log: $apps_cache/debootstrap.log)"
	fi
	# What a RAM-only guest never reads: package caches, docs, man pages, locales.
	rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* \
		"$rootfs.tmp"/usr/share/doc/* "$rootfs.tmp"/usr/share/man/* \
		"$rootfs.tmp"/usr/share/info/* "$rootfs.tmp"/usr/share/locale/*
	chroot "$rootfs.tmp" dpkg-query -W -f='${Package} ${Version}\n' >"$rootfs.tmp/.iovaq-packages"
	touch "$rootfs.tmp/.iovaq-done"
	rm -rf "$rootfs"
	mv "$rootfs.tmp" "$rootfs"
fi

# --- stage 2: the image ----------------------------------------------------------------------
kdir=$("$repo/tests/vm/fetch-kernel.sh") || vm_die "step 'kernel': tests/vm/fetch-kernel.sh failed"
kver=$abi-amd64
[ -d "$kdir/lib/modules/$kver" ] || vm_die "step 'kernel': $kdir/lib/modules/$kver missing"

work=$(mktemp -d "${TMPDIR:-/tmp}/iovaq-apps-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
ov=$work/overlay
mkdir -p "$ov/etc/nginx" "$ov/srv/www" "$ov/usr/lib/modules"
install -m 0755 "$apps_dir/guest-init" "$ov/init"
install -m 0644 "$apps_dir/nginx.conf" "$ov/etc/nginx/iovaq-apps.conf"
# The files nginx serves: incompressible, so that the NIC carries every byte.
head -c 1024 /dev/urandom >"$ov/srv/www/1k.bin"
head -c 1048576 /dev/urandom >"$ov/srv/www/1m.bin"
chmod 0644 "$ov"/srv/www/*.bin

# Modules, decompressed (one less thing for the guest's kmod and kernel to agree on), in the
# tree layout modprobe expects, with a fresh modules.dep. They go to usr/lib/modules: bookworm
# is merged-/usr, and a real lib/ directory in the overlay would replace the rootfs's
# lib -> usr/lib link (and with it the C library).
mods=$(for m in "${MODULES[@]}"; do
	/sbin/modprobe -d "$kdir" -S "$kver" --show-depends "$m" || echo "missing $m"
done | awk '$1 == "insmod" { print $2 } $1 == "missing" { print "MISSING:" $2 }' | sort -u)
case $mods in *MISSING:*) vm_die "step 'modules': not in $kdir: $(echo "$mods" | grep MISSING:)" ;; esac
mt=$work/modtree
mkdir -p "$mt/lib/modules/$kver"
for m in $mods; do
	rel=${m#"$kdir"/lib/modules/"$kver"/}
	mkdir -p "$mt/lib/modules/$kver/$(dirname "$rel")"
	case $m in
	*.xz) xz -dc "$m" >"$mt/lib/modules/$kver/${rel%.xz}" ;;
	*) cp "$m" "$mt/lib/modules/$kver/$rel" ;;
	esac
done
cp "$kdir/lib/modules/$kver/modules.order" "$kdir/lib/modules/$kver/modules.builtin"* \
	"$mt/lib/modules/$kver/" 2>/dev/null || true
/sbin/depmod -b "$mt" "$kver" || vm_die "step 'modules': depmod failed"
mv "$mt/lib/modules/$kver" "$ov/usr/lib/modules/"

# Two concatenated cpio archives: the kernel unpacks both, the second over the first.
(cd "$rootfs" && find . -path ./.iovaq-done -prune -o -print | cpio -o -H newc --quiet | gzip -1) \
	>"$work/image.cpio.gz" || vm_die "step 'pack': cpio of $rootfs failed"
(cd "$ov" && find . | cpio -o -H newc --quiet | gzip -1) >>"$work/image.cpio.gz" ||
	vm_die "step 'pack': cpio of the overlay failed"
{
	echo "# iovaq apps guest image $image_hash"
	echo "kernel: linux-image-$kver-unsigned ($kdir)"
	echo "rootfs: $SUITE minbase + $PACKAGES (debootstrap $dbs_ver, rootfs-$rootfs_hash)"
	echo "modules: $(for m in $mods; do basename "$m"; done | tr '\n' ' ')"
	echo "packages:"
	sed 's/^/  /' "$rootfs/.iovaq-packages"
} >"$work/manifest"
mv "$work/manifest" "${image%.cpio.gz}.manifest"
mv "$work/image.cpio.gz" "$image"
vm_log "built $image ($(du -h "$image" | cut -f1))"
echo "$image"
