#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Install what the VM test tier (tests/vm/, docs/vm-testbed.md) needs on Debian 12 (bookworm),
# on top of scripts/setup.sh: only the packages that are missing, and "apt-get update" only when
# something must be installed. Run as root, or as a user with sudo. Safe to run again.
#
# Newer parts come from bookworm-backports. The suite is added, when no APT source has it yet,
# as /etc/apt/sources.list.d/iovaq-bookworm-backports.sources, reusing the archive URI that
# /etc/apt/sources.list.d/debian.sources (or /etc/apt/sources.list) already configures for
# "bookworm": this script names no host.
#
#   from bookworm-backports:
#     linux-libc-dev (>= 6.2)   linux/iommufd.h for src/backend/iommufd.c (6.12 in backports)
#     qemu-system-x86 (>= 10)   q35 + intel-iommu + edu, TCG (DESIGN.md §7)
#   from bookworm:
#     busybox-static            the guest's userland (tests/vm/mkinitramfs.sh)
#     cpio xz-utils kmod        initramfs, Debian's .ko.xz modules, depmod
#     flex bison bc libelf-dev libssl-dev
#                               building the minimal kernel (tests/vm/build-kernel.sh)
#     debootstrap libmemcached-tools redis-tools wrk linux-perf
#                               the application testbed (bench/apps/, docs/apps.md): the guest's
#                               root filesystem, the load generators, perf on the QEMU process
#
# Kernel packages are never installed on this host: tests/vm/fetch-kernel.sh fetches them with
# "apt-get download" and unpacks them with "dpkg -x" into the VM cache.
#
# Environment:
#   IOVAQ_VM_SETUP_DRY_RUN=1   only print what would be done

set -euo pipefail

log() { echo "setup-vm.sh: $*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	log "this script needs a Debian system (dpkg-query and apt-get not found)"
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	as_root=(false)
fi
dry=${IOVAQ_VM_SETUP_DRY_RUN:-0}
run_root() {
	if [ "$dry" = 1 ]; then
		log "would run: $*"
		return 0
	fi
	if [ "${as_root[*]}" = false ]; then
		log "cannot run '$*': run this script as root, or install sudo"
		exit 1
	fi
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "$@"
}

main_pkgs=(busybox-static cpio xz-utils kmod flex bison bc libelf-dev libssl-dev debootstrap libmemcached-tools redis-tools wrk linux-perf)
# package:minimum upstream version (compared with dpkg --compare-versions)
bpo_pkgs=(linux-libc-dev:6.2 qemu-system-x86:1:10)

installed_version() {
	dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "install" && $3 == "installed" { print $4 }' || true
}

# --- bookworm-backports ------------------------------------------------------------------------
backports_configured() {
	grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list \
		/etc/apt/sources.list.d/ 2>/dev/null
}

# The first URI of a deb822 stanza (or one-line entry) whose suites include plain "bookworm".
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

added_suite=0
if ! backports_configured; then
	uri=$(archive_uri)
	if [ -z "$uri" ]; then
		log "no APT source for bookworm found in /etc/apt/sources.list.d/debian.sources" \
			"or /etc/apt/sources.list: cannot add bookworm-backports"
		exit 1
	fi
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	log "adding bookworm-backports (same archive as bookworm)"
	stanza="Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $keyring
"
	if [ "$dry" = 1 ]; then
		log "would write /etc/apt/sources.list.d/iovaq-bookworm-backports.sources:"
		printf '%s' "$stanza" >&2
	else
		printf '%s' "$stanza" | run_root tee /etc/apt/sources.list.d/iovaq-bookworm-backports.sources \
			>/dev/null
	fi
	added_suite=1
fi

# --- packages ----------------------------------------------------------------------------------
missing_main=()
for p in "${main_pkgs[@]}"; do
	[ -n "$(installed_version "$p")" ] || missing_main+=("$p")
done
missing_bpo=()
for pv in "${bpo_pkgs[@]}"; do
	p=${pv%%:*}
	min=${pv#*:}
	v=$(installed_version "$p")
	if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$min"; then
		missing_bpo+=("$p")
	fi
done

if [ ${#missing_main[@]} -eq 0 ] && [ ${#missing_bpo[@]} -eq 0 ] && [ $added_suite = 0 ]; then
	log "all $((${#main_pkgs[@]} + ${#bpo_pkgs[@]})) VM-tier packages are installed"
	exit 0
fi

run_root apt-get update -q >&2
if [ ${#missing_main[@]} -gt 0 ]; then
	log "installing from bookworm: ${missing_main[*]}"
	run_root apt-get install -y -q --no-install-recommends "${missing_main[@]}" >&2
fi
if [ ${#missing_bpo[@]} -gt 0 ]; then
	log "installing from bookworm-backports: ${missing_bpo[*]}"
	run_root apt-get install -y -q --no-install-recommends -t bookworm-backports \
		"${missing_bpo[@]}" >&2
fi
log "done"
