#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The application testbed's runner on bad input (issue 9): a missing load tool, a missing QEMU,
# a guest kernel that is no kernel, a guest that panics before its init. Each must end with a
# message naming the step, exit status 1, and leave no QEMU process and no socket directory
# behind. (A truncated or malformed trace is iovaq-bench replay's: tests bench_replay_bad.)
#
#   bench/apps/test-bad-input.sh
#
# Exit 0 when every case behaves, 1 otherwise, 77 when QEMU is not installed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
scratch=$(mktemp -d)
trap 'pkill -f -- "$scratch" 2>/dev/null || true; rm -rf "$scratch"' EXIT
: >"$scratch/empty"
status=0

# case NAME EXPECTED-MESSAGE-REGEX [ENV=VALUE...] -- RUNNER-ARGS...: run the runner, check.
case_() {
	local name=$1 want=$2 rc=0 before after
	shift 2
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	before=$(find /tmp -maxdepth 1 -name 'iovaq-apps-*' 2>/dev/null | wc -l)
	timeout 300 env "${envs[@]}" "$py" "$here/run-apps.py" --modes strict --nics virtio \
		--cm off --reps 1 --loads redis_get --dur 1 --boot-timeout 60 "$@" \
		"$scratch/out-$name" >"$scratch/$name.log" 2>&1 || rc=$?
	after=$(find /tmp -maxdepth 1 -name 'iovaq-apps-*' 2>/dev/null | wc -l)
	if [ "$rc" -ne 1 ]; then
		echo "FAIL: $name: exit status $rc, not 1"
		status=1
	elif ! grep -qE "$want" "$scratch/$name.log"; then
		echo "FAIL: $name: no message matching /$want/:"
		sed 's/^/  /' "$scratch/$name.log" | tail -5
		status=1
	elif pgrep -f -- "$scratch/out-$name" >/dev/null; then
		echo "FAIL: $name: a QEMU process is left behind"
		status=1
	elif [ "$after" -gt "$before" ]; then
		echo "FAIL: $name: a socket directory /tmp/iovaq-apps-* is left behind"
		status=1
	else
		echo "ok: $name: $(grep -E "$want" "$scratch/$name.log" | head -1)"
	fi
}

# A PATH with python3 and, for the second case, the load tool, but no QEMU.
# (the interpreter itself, not a wrapper script such as pyenv's shim, which needs bash)
py=$(python3 -c 'import sys; print(sys.executable)')
mkdir -p "$scratch/bin-none" "$scratch/bin-noqemu"
ln -s "$py" "$scratch/bin-none/python3"
ln -s "$py" "$scratch/bin-noqemu/python3"
if command -v redis-benchmark >/dev/null; then
	ln -s "$(command -v redis-benchmark)" "$scratch/bin-noqemu/redis-benchmark"
fi

case_ no_load_tool "step 'tools': redis-benchmark missing" PATH="$scratch/bin-none" -- \
	--kernel "$scratch/empty" --initrd "$scratch/empty"
if [ -e "$scratch/bin-noqemu/redis-benchmark" ]; then
	case_ no_qemu "step 'tools': qemu-system-x86_64 missing" PATH="$scratch/bin-noqemu" -- \
		--kernel "$scratch/empty" --initrd "$scratch/empty"
else
	echo "skipped: no_qemu (redis-benchmark not installed)"
fi
if command -v redis-benchmark >/dev/null; then
	case_ not_a_kernel "FAILED boot" -- --kernel "$scratch/empty" --initrd "$scratch/empty"
	# Debian's kernel with an empty initramfs: no init, the kernel panics, the guest ends.
	if kdir=$(bash "$root/tests/vm/fetch-kernel.sh" 2>/dev/null) &&
		kernel=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | head -n1) && [ -n "$kernel" ]; then
		case_ guest_panics "FAILED boot" -- --kernel "$kernel" --initrd "$scratch/empty"
	else
		echo "skipped: guest_panics (Debian's kernel not fetched: tests/vm/fetch-kernel.sh)"
	fi
else
	echo "skipped: not_a_kernel, guest_panics (redis-benchmark not installed)"
fi
exit $status
