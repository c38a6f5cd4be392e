#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The application testbed in one command (docs/apps.md, docs/apps-testbed.md): build the guest
# image, fetch Debian's kernel, run memcached, Redis and nginx loads in a QEMU TCG guest with an
# emulated VT-d under iommu.strict=1, iommu.strict=0 and iommu=pt, and write OUTDIR/summary.md
# with the tables and OUTDIR/plots/*.png.
#
#   bench/apps/run.sh OUTDIR              the full series (about 40 minutes on 2 cores):
#                                         virtio-net and e1000e, caching-mode=off, 3 interleaved
#                                         repetitions of every load; one run per policy with
#                                         QEMU's invalidation trace, caching-mode off and on;
#                                         one run per policy with perf on the QEMU process
#   bench/apps/run.sh OUTDIR -- ARGS...   one pass of bench/apps/run-apps.py with ARGS (see its
#                                         --help), e.g. -- --modes strict --reps 1 --dur 3
#
# The series' size (environment; the defaults make the full series):
#   IOVAQ_APPS_REPS=3            repetitions of the throughput pass
#   IOVAQ_APPS_DUR=8             seconds per load
#   IOVAQ_APPS_NICS=virtio,e1000e
#   IOVAQ_APPS_LOADS=mc,redis_set,redis_get,ng1k,ng1m
#   IOVAQ_APPS_TRACE_CM=off,on   caching modes of the traced pass ("" skips the pass)
#   IOVAQ_APPS_PERF=1            the perf pass (0 skips it; it needs perf: linux-perf)
# e.g. IOVAQ_APPS_REPS=1 IOVAQ_APPS_DUR=2 IOVAQ_APPS_NICS=virtio IOVAQ_APPS_TRACE_CM=off
# IOVAQ_APPS_LOADS=redis_get,ng1m bench/apps/run.sh OUT: every pass, table and plot, in about
# 4 minutes.
#
# Needs root (the image build) and what scripts/setup-vm.sh installs. One guest runs at a time;
# QEMU and the load generators run under nice -n 10. Every load is bounded in time and QEMU is
# killed by its PID when a run ends, fails or is interrupted. Exit 1 when a step failed (the
# step is named) or a run failed (summary.md lists it).

set -euo pipefail
apps_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$apps_dir/../.." && pwd)
. "$repo/tests/vm/lib.sh"

[ $# -ge 1 ] || vm_die "usage: run.sh OUTDIR [-- run-apps.py ARGS...]"
out=$1
shift
if [ $# -gt 0 ]; then
	[ "$1" = -- ] || vm_die "usage: run.sh OUTDIR [-- run-apps.py ARGS...]"
	shift
fi
for t in python3 qemu-system-x86_64 memcaslap redis-benchmark wrk; do
	command -v "$t" >/dev/null || vm_die "step 'tools': $t missing: run scripts/setup-vm.sh"
done
mkdir -p "$out"
kdir=$("$repo/tests/vm/fetch-kernel.sh") || vm_die "step 'kernel': tests/vm/fetch-kernel.sh failed"
kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
initrd=$(nice -n 10 "$apps_dir/mkimage.sh") || vm_die "step 'image': bench/apps/mkimage.sh failed"
cp "${initrd%.cpio.gz}.manifest" "$out/image.manifest"

rc=0
passes=()
if [ $# -gt 0 ]; then
	python3 "$apps_dir/run-apps.py" "$out/runs" --kernel "$kernel" --initrd "$initrd" "$@" || rc=1
	passes+=("bench/apps/run-apps.py OUTDIR/runs $*")
else
	size=(--nics "${IOVAQ_APPS_NICS:-virtio,e1000e}" --dur "${IOVAQ_APPS_DUR:-8}"
		--loads "${IOVAQ_APPS_LOADS:-mc,redis_set,redis_get,ng1k,ng1m}")
	pass_args=("--cm off --reps ${IOVAQ_APPS_REPS:-3}")
	trace_cm=${IOVAQ_APPS_TRACE_CM-off,on}
	[ -z "$trace_cm" ] || pass_args+=("--cm $trace_cm --reps 1 --qemu-trace --tag-prefix traced-")
	if [ "${IOVAQ_APPS_PERF:-1}" = 1 ]; then
		command -v perf >/dev/null ||
			vm_die "step 'tools': perf missing (linux-perf; scripts/setup-vm.sh), or IOVAQ_APPS_PERF=0"
		pass_args+=("--cm off --reps 1 --perf --tag-prefix perf-")
	fi
	for p in "${pass_args[@]}"; do
		# shellcheck disable=SC2086 # p holds several words on purpose
		python3 "$apps_dir/run-apps.py" "$out/runs" --kernel "$kernel" --initrd "$initrd" \
			"${size[@]}" $p || rc=1
		passes+=("bench/apps/run-apps.py OUTDIR/runs ${size[*]} $p")
	done
fi

{
	echo "# Application testbed: $(date -u +%Y-%m-%d)"
	echo
	echo "Commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)." \
		"Passes (kernel and image as below):"
	echo
	for p in "${passes[@]}"; do echo "    $p"; done
	echo
	echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
		"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
	echo "- $(qemu-system-x86_64 --version | head -n1)"
	echo "- load tools: memcaslap (libmemcached-tools $(dpkg-query -W -f='${Version}' libmemcached-tools))," \
		"redis-benchmark (redis-tools $(dpkg-query -W -f='${Version}' redis-tools))," \
		"wrk $(dpkg-query -W -f='${Version}' wrk)"
	echo "- guest: $(head -n3 "$out/image.manifest" | tail -n2 | tr '\n' ';' | sed 's/;$//')"
	echo "- guest servers: $(grep -E '^  (memcached|redis-server|nginx) ' "$out/image.manifest" | sed 's/^  //' | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
	python3 "$apps_dir/summarize.py" --plots "$out/plots" "$out/runs" || rc=1
} >"$out/summary.md"
cat "$out/summary.md"
exit $rc
