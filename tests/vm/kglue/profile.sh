#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Where the in-kernel bench's time goes (docs/kernel-glue.md, "Profiling the glue"): boots the
# testbed's minimal 6.12 kernel with perf (linux-perf) in the initramfs and runs
# `perf record -e cpu-clock -a` around one in-kernel bench run per configuration, then prints
# `perf report` by symbol (kernel and iovaq.ko) for each, as "kglue-prof: " lines of the
# console, gathered in OUTDIR/profile.md. A measuring tool, not a test.
#
#   tests/vm/kglue/profile.sh [-o OUTDIR] [-c on|off] [CONFIG ...]
#
# CONFIG is WHAT:POLICY:PAIRS:ARENA_PAGES as kshim_edu's bench takes them (kernel,
# kernel-raw, kernel-raw-sg, kernel-raw-sg-build); default: the in-kernel domain under strict
# (30000 pairs) and with arenas of 64 (10^6 pairs), and their raw baselines.
#
# TCG has no PMU: cpu-clock samples the guest's own clock (hrtimer, about 4 kHz), so percentages
# are shares of emulated CPU time, with the emulator's costs (softmmu loads and stores, helper
# calls for atomics and clock reads) weighing in.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/tests/vm/lib.sh"
. "$here/lib.sh"

out=$root/build/kglue-profile cm=on
while getopts o:c: opt; do
	case $opt in
	o) out=$(realpath -m "$OPTARG") ;;
	c) cm=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(kernel:strict:30000:0 kernel-raw-sg:strict:30000:1
	kernel:safe-deferred:1000000:64 kernel-raw-sg-build:strict:1000000:64)
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
perf=$(command -v perf) || { echo "profile.sh: perf missing (linux-perf)" >&2; exit 1; }
mkdir -p "$out"
kglue_build_user "$out"
read -r _ rel dir < <("$root/scripts/kernel-glue-build.sh" -o "$out" minimal)
kernel=$("$root/tests/vm/build-kernel.sh")
KGLUE_EXTRA=("$perf")
kglue_pack "$out" "$dir" "$out/profile.cpio.gz" "profile $cm ${configs[*]}"
IOVAQ_VM_CM=$cm IOVAQ_VM_TRACE=0 IOVAQ_VM_TIMEOUT=${IOVAQ_VM_TIMEOUT:-1800} \
	"$root/tests/vm/run-vm.sh" "$kernel" "$out/profile.cpio.gz" "$out/logs" "profile-cm-$cm"
{
	echo "# kernel-glue profile ($(date -u +%Y-%m-%d), caching-mode=$cm)"
	echo
	echo "Command: \`tests/vm/kglue/profile.sh -o $out -c $cm ${configs[*]}\`"
	echo "- guest kernel: $rel, iovaq.ko from $(git -C "$root" rev-parse --short HEAD)" \
		"(tree $(git -C "$root" diff --quiet HEAD && echo clean || echo modified))"
	echo
	sed -n 's/^kglue-prof: //p' "$out/logs/profile-cm-$cm.console"
} >"$out/profile.md"
cat "$out/profile.md"
