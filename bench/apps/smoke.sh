#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The application testbed's smoke run (issue 9; docs/apps.md): the whole chain once, small and
# bounded. One boot of the apps guest (virtio-net, caching-mode=off, iommu.strict=1), one load
# (redis-benchmark GET, 3,000 requests, hard timeout 62 s) with QEMU's invalidation trace and
# the guest's iommu trace on, then:
#   1. the NIC is behind the IOMMU: it has an IOMMU group whose default domain is DMA (strict),
#      and QEMU processed page-selective IOTLB invalidation descriptors during the load;
#   2. the guest's DMA trace was captured: nothing lost, every line parses
#      (bench/apps/trace-stats.py), maps and unmaps in it;
#   3. iovaq-bench replay TRACE --json reads it and prints every key that the "replay --json"
#      section of docs/bench-schema.md documents, with the trace's counts
#      (bench/apps/check-replay.py).
#
#   bench/apps/smoke.sh [--bench IOVAQ_BENCH] [--out DIR]
#
# --bench: the iovaq-bench binary to test (default: iovaq-bench on PATH). --out: where runs and
# logs go (default a mktemp -d, removed when every check passed). A ctest test of the vm label
# runs it (vm_apps_smoke, tests/vm/CMakeLists.txt), and scripts/test.sh's vm configuration runs
# that test.
#
# Exit 0 when every check passed; 77 (skipped) when this machine cannot run it: not root and no
# cached image, no QEMU or redis-benchmark (scripts/setup-vm.sh installs them); 1 when a step
# failed, named on stderr. The image is cached by content hash (bench/apps/mkimage.sh): the
# first run on a machine builds it (about 35 s), later runs only boot it.

set -euo pipefail
apps_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$apps_dir/../.." && pwd)
. "$repo/tests/vm/lib.sh"

bench=
out=
while [ $# -gt 0 ]; do
	case $1 in
	--bench) bench=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) vm_die "usage: smoke.sh [--bench IOVAQ_BENCH] [--out DIR]" ;;
	esac
done
skip() {
	echo "smoke.sh: SKIP: $*" >&2
	exit 77
}
fail() {
	echo "smoke.sh: FAIL: $*" >&2
	exit 1
}
step() { echo "smoke.sh: [$((SECONDS - t0)) s] $*" >&2; }
t0=$SECONDS

for t in qemu-system-x86_64 redis-benchmark python3; do
	command -v "$t" >/dev/null || skip "$t missing (scripts/setup-vm.sh installs it)"
done
if [ -z "$bench" ]; then
	bench=$(command -v iovaq-bench || true)
fi
if [ -z "$bench" ] || [ ! -x "$bench" ]; then
	fail "step 'bench': no iovaq-bench (pass --bench PATH)"
fi

step "kernel (tests/vm/fetch-kernel.sh)"
kdir=$(bash "$repo/tests/vm/fetch-kernel.sh") ||
	skip "cannot fetch Debian's 6.12 kernel (scripts/setup-vm.sh adds bookworm-backports)"
kernel=$(ls "$kdir"/boot/vmlinuz-* | head -n1)

step "image (bench/apps/mkimage.sh)"
if ! initrd=$(bash "$apps_dir/mkimage.sh" --path 2>/dev/null); then
	[ "$(id -u)" -eq 0 ] || skip "the apps image is not built and building it needs root"
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] ||
		skip "debootstrap missing (scripts/setup-vm.sh installs it)"
	initrd=$(timeout 1200 nice -n 10 bash "$apps_dir/mkimage.sh") ||
		fail "step 'image': bench/apps/mkimage.sh failed"
fi

keep=1
if [ -z "$out" ]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/iovaq-apps-smoke.XXXXXX")
	keep=0
fi
rm -rf "$out/runs"
mkdir -p "$out"

# run-apps.py kills its QEMU on every exit path; the outer timeout bounds a boot that hangs
# before the runner's own timeouts would (boot 300 s, load 2 + 60 s, trace fetch 300 s).
step "boot and load (bench/apps/run-apps.py, log $out/run.log)"
rc=0
timeout --signal=TERM --kill-after=30 600 python3 "$apps_dir/run-apps.py" "$out/runs" \
	--kernel "$kernel" --initrd "$initrd" --modes strict --nics virtio --cm off --reps 1 \
	--dur 2 --loads redis_get --qemu-trace --guest-trace --boot-timeout 240 \
	--tag-prefix smoke- >"$out/run.log" 2>&1 || rc=$?
tail -n 5 "$out/run.log" >&2
tag=smoke-virtio-cmoff-strict-r0
[ -f "$out/runs/$tag.json" ] || fail "step 'boot': no $tag.json (exit $rc; log $out/run.log)"

step "checks: IOMMU group, domain type, QEMU's descriptors, the guest's trace"
python3 - "$out/runs/$tag.json" <<'EOF' || fail "step 'checks': see above (runs in $out/runs)"
import json, re, sys
r = json.load(open(sys.argv[1]))
bad = []
if r.get('error'):
    bad.append('run: ' + r['error'])
nic = r.get('nic_info', {})
if nic.get('iommu_group', 'none') == 'none':
    bad.append('the NIC has no IOMMU group: not behind the IOMMU')
if nic.get('group_type') != 'DMA':
    bad.append(f'the NIC\'s domain type is {nic.get("group_type")}, not DMA (strict)')
ld = r.get('loads', {}).get('redis_get', {})
if ld.get('rps') is None:
    bad.append(f'redis_get gave no figure (exit {ld.get("rc")})')
pages = ld.get('inv', {}).get('vtd_inv_desc_iotlb_pages', 0)
if pages <= 0:
    bad.append('QEMU saw no page-selective IOTLB invalidation during the load')
st = ' '.join(ld.get('guest_trace_stat', []))
m = re.search(r'events=(\d+) lost=(\d+)', st)
if not m or int(m.group(1)) == 0:
    bad.append(f'the guest traced no iommu event ({st!r})')
elif int(m.group(2)) != 0:
    bad.append(f'the guest trace lost events ({st!r})')
if not ld.get('guest_trace'):
    bad.append('no guest trace file')
for b in bad:
    print('smoke.sh: FAIL:', b, file=sys.stderr)
per_req = ld.get('inv_per_req', {}).get('vtd_inv_desc_iotlb_pages')
print(f'smoke.sh: NIC {nic.get("pci")} {nic.get("driver")} group {nic.get("iommu_group")} '
      f'type {nic.get("group_type")}; redis GET {ld.get("rps")} req/s; {pages} page-selective '
      f'invalidations ({per_req} per request); guest {st}', file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
trace=$out/runs/$tag.redis_get.iommu.trace
python3 "$apps_dir/trace-stats.py" "$trace" >"$out/trace-stats.json" ||
	fail "step 'trace': $trace does not parse (trace-stats.py above)"
python3 - "$out/trace-stats.json" <<'EOF' || fail "step 'trace': no maps or unmaps in $trace"
import json, sys
s = json.load(open(sys.argv[1]))
print(f'smoke.sh: trace {s["events"]} events, {s["maps"]} maps, {s["unmaps"]} unmaps, '
      f'{s["max_live_mappings"]} live at most', file=sys.stderr)
sys.exit(0 if s['maps'] > 0 and s['unmaps'] > 0 else 1)
EOF

step "replay ($bench replay TRACE --json)"
timeout 300 "$bench" replay "$trace" --json >"$out/replay.json" 2>"$out/replay.err" ||
	{ tail -n 20 "$out/replay.err" >&2; fail "step 'replay': iovaq-bench replay exited non-zero"; }
python3 "$apps_dir/check-replay.py" "$out/replay.json" "$out/trace-stats.json" ||
	fail "step 'replay': the output lacks documented keys (check-replay.py above)"

step "passed"
[ $keep = 1 ] || rm -rf "$out"
