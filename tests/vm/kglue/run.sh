#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The kernel-glue tier (docs/kernel-glue.md): build iovaq.ko for each testbed kernel
# (scripts/kernel-glue-build.sh) and libiovaq with the contract suite (OUTDIR/user, a
# RelWithDebInfo -Werror build), pack an initramfs with tests/vm/kglue/init, kglue_test and
# kshim_edu (static), contract_contract with the shared libraries it loads, and the modules,
# boot it with tests/vm/run-vm.sh, and exit with the guests' result.
#
#   tests/vm/kglue/run.sh [-o OUTDIR] [minimal|debian|all]
#
# Needs what the VM tier needs (scripts/setup-vm.sh); exits 77 with a reason when QEMU or
# busybox-static is missing. tests/vm/kglue/bench.sh boots the same image in bench mode.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
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
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
[ -x /bin/busybox ] && /bin/busybox --list | grep -x poweroff >/dev/null ||
	{ echo "SKIP: no busybox-static"; exit 77; }
mkdir -p "$out"
. "$here/lib.sh"
kglue_build_user "$out"

# Build and pack for every kernel, then boot the guests side by side (one TCG vCPU each).
flavors=() pids=()
while read -r flavor rel dir; do
	case $flavor in
	minimal) kernel=$("$root/tests/vm/build-kernel.sh") ;;
	debian) kernel=$("$root/tests/vm/fetch-kernel.sh")/boot/vmlinuz-$rel ;;
	esac
	kglue_pack "$out" "$dir" "$out/$flavor.cpio.gz"
	vm_log "$flavor ($rel): booting"
	IOVAQ_VM_TIMEOUT=${IOVAQ_VM_TIMEOUT:-900} \
		"$root/tests/vm/run-vm.sh" "$kernel" "$out/$flavor.cpio.gz" "$out/logs" \
		"kglue-$flavor" </dev/null &
	flavors+=("$flavor")
	pids+=($!)
done < <("$root/scripts/kernel-glue-build.sh" -o "$out" "$which")
rc=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || rc=1
	grep -aE 'kglue-bench|kshim_edu: [a-z]|iovaq-vm: (ok|FAIL)|FAIL|iovaq_example|Synthesis' \
		"$out/logs/kglue-${flavors[$i]}.console" >&2 || true
done
exit $rc
