# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Shared by the tests/vm/*.sh scripts (sourced, not run). See docs/vm-testbed.md.
#
# IOVAQ_VM_CACHE   where fetched Debian packages, unpacked kernels and built kernels live
#                  (default ${XDG_CACHE_HOME:-$HOME/.cache}/iovaq/vm). Outside the build tree so
#                  that a machine builds the minimal kernel once, whatever build directory asks.

vm_cache=${IOVAQ_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iovaq/vm}
vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vm_log() { echo "${0##*/}: $*" >&2; }
vm_die() {
	vm_log "$*"
	exit 1
}

# The Debian 6.12 kernel ABI name to use, e.g. "6.12.95+deb12": $IOVAQ_VM_DEBIAN_ABI, else the
# newest linux-image-6.12.*+deb12-amd64-unsigned that APT knows (stable-security or backports).
vm_debian_abi() {
	if [ -n "${IOVAQ_VM_DEBIAN_ABI:-}" ]; then
		echo "$IOVAQ_VM_DEBIAN_ABI"
		return
	fi
	apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' |
		sed -E 's/^linux-image-(6\.12\.[0-9]+\+deb12)-amd64-unsigned .*/\1/' | sort -V | tail -n1
}

# Download one package (name[=version] or name/suite) into $vm_cache/debs unless a matching
# .deb is there already; prints the .deb's path.
vm_download() {
	local pkg=$1 pattern=$2 f
	mkdir -p "$vm_cache/debs"
	f=$(ls "$vm_cache"/debs/$pattern 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$f" ]; then
		(cd "$vm_cache/debs" && timeout 900 apt-get download -q "$pkg" >&2) ||
			vm_die "apt-get download $pkg failed (run scripts/setup-vm.sh, then apt-get update)"
		f=$(ls "$vm_cache"/debs/$pattern 2>/dev/null | sort -V | tail -n1 || true)
		[ -n "$f" ] || vm_die "apt-get download $pkg left no $pattern in $vm_cache/debs"
	fi
	echo "$f"
}
