#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The real backends' benchmark in a QEMU guest (docs/vm-testbed.md, "Benchmark"): iovaq-bench
# run --backend iommufd|vfio-type1 --workload nic-rx under every policy (strict, deferred,
# safe-deferred, safe-deferred+arenas, passthrough), with QEMU's VT-d invalidation descriptors
# counted per run from its trace, beside the library's own counts; caching-mode on and off.
# Longer than the vm test tier (scripts/vm-test.sh), which runs the same with few ops.
#
#   scripts/vm-bench.sh [OUTDIR]      (default: $IOVAQ_VM_BUILD_DIR/vm-bench)
#
# Writes, per kernel and caching mode, OUTDIR/<kernel>-cm<on|off>.{bench.md,bench.jsonl,
# console,trace} and OUTDIR/summary.md (the tables, the commands, the machine).
#
# Environment:
#   IOVAQ_VM_BUILD_DIR    build directory (default build/vm-bench; Release, bench on)
#   IOVAQ_VM_KERNELS      kernels (default "minimal": iommufd and vfio-type1; "debian" adds
#                         Debian's own 6.12, vfio-type1 only)
#   IOVAQ_VM_BENCH_CM     caching modes (default "on off")
#   IOVAQ_VM_BENCH_OPS    nic-rx ops per run (default 20000)
#   IOVAQ_VM_BENCH_REPS   repetitions per run (default 5; the median is reported)
#   IOVAQ_VM_BENCH_DEVICE a device passed through to the guest for the runs (its PCI address
#                         in the guest; with IOVAQ_VM_QEMU_ARGS="-device vfio-pci,host=..."):
#                         docs/hardware.md. Default: the edu device.
#   IOVAQ_VM_CACHE, IOVAQ_VM_TIMEOUT (default here 1800), IOVAQ_VM_QEMU_ARGS as for
#   scripts/vm-test.sh and tests/vm/run-vm.sh

set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bdir=${IOVAQ_VM_BUILD_DIR:-build/vm-bench}
out=${1:-$bdir/vm-bench}
kernels=${IOVAQ_VM_KERNELS:-minimal}
cms=${IOVAQ_VM_BENCH_CM:-on off}
ops=${IOVAQ_VM_BENCH_OPS:-20000}
reps=${IOVAQ_VM_BENCH_REPS:-5}
export IOVAQ_VM_TIMEOUT=${IOVAQ_VM_TIMEOUT:-1800}

t0=$SECONDS
bash scripts/setup.sh
bash scripts/setup-vm.sh
cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DIOVAQ_WERROR=ON -DIOVAQ_SANITIZE= \
	-DIOVAQ_DEBUG=OFF -DIOVAQ_VM_TESTS=ON -DIOVAQ_BUILD_BENCH=ON
cmake --build "$bdir" -j"$(nproc)" --target vm_programs
mkdir -p "$out"
summary=$out/summary.md
{
	echo "# iovaq-bench in a QEMU guest: nic-rx per policy on the real backends"
	echo
	echo "Recorded by \`scripts/vm-bench.sh\` (IOVAQ_VM_BENCH_OPS=$ops, IOVAQ_VM_BENCH_REPS=$reps," \
		"kernels: $kernels, caching modes: $cms) at commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with local changes)'), $(date -u +%Y-%m-%dT%H:%MZ)."
	echo "Host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs," \
		"load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; $(qemu-system-x86_64 --version | head -n1)."
	echo "Guest: QEMU TCG, q35, -cpu max, 1 vCPU, 1 GiB, intel-iommu (intremap=on), edu; every run is"
	echo "\`iovaq-bench run --backend B --device EDU --policy P --workload nic-rx --ops N --reps $reps --json\`"
	echo "with N = $ops and N = 1 (tests/vm/guest-bench.sh); descriptors per op are the difference"
	echo "of the two runs' counts over (N - 1) x (reps + 1) executions (tests/vm/bench-summary.py)."
	echo
} >"$summary"

for k in $kernels; do
	mods=()
	case $k in
	debian)
		kdir=$(bash tests/vm/fetch-kernel.sh)
		kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
		mods=(--modules "$kdir")
		;;
	minimal) kernel=$(timeout 3600 bash tests/vm/build-kernel.sh) ;;
	*)
		echo "vm-bench.sh: unknown kernel '$k' (debian, minimal)" >&2
		exit 2
		;;
	esac
	initrd=$out/initrd-$k.cpio.gz
	bash tests/vm/mkinitramfs.sh "$initrd" "${mods[@]}" --bin "$bdir/tests/vm/vm_mark" \
		--bin "$bdir/bench/iovaq-bench"
	for cm in $cms; do
		tag=$k-cm$cm
		echo "vm-bench.sh: $tag ($kernel)"
		rc=0
		IOVAQ_VM_CM=$cm IOVAQ_VM_APPEND="iovaq.tests=off iovaq.bench_ops=$ops iovaq.bench_reps=$reps${IOVAQ_VM_BENCH_DEVICE:+ iovaq.device=$IOVAQ_VM_BENCH_DEVICE}" \
			bash tests/vm/run-vm.sh "$kernel" "$initrd" "$out" "$tag" || rc=$?
		{
			echo "## $k kernel ($(grep -a -m1 'iovaq-vm: init at' "$out/$tag.console" | sed 's/.*kernel //')), caching-mode=$cm"
			echo
			if [ -f "$out/$tag.bench.md" ]; then
				tail -n +3 "$out/$tag.bench.md"
			else
				echo "(no table: the guest failed, see $out/$tag.console)"
			fi
			[ $rc -eq 0 ] || echo "(the guest reported failures: exit $rc)"
			echo
		} >>"$summary"
	done
done
echo "vm-bench.sh: done in $((SECONDS - t0)) s; tables in $summary"
cat "$summary"
