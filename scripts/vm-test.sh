#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The VM tier (docs/vm-testbed.md): set the machine up, fetch Debian's 6.12 kernel, build the
# minimal 6.12 kernel once (cached by config hash, ~14 min on 2 cores the first time), build
# libiovaq with the vm label and run it on both kernels, on QEMU's edu device behind an emulated
# VT-d: the contract suite's iommufd and vfio-type1 configurations, the domain tests
# (tests/vm/vm_domain.c) and a short nic-rx run per policy with QEMU's invalidation descriptors
# counted (tests/vm/guest-bench.sh). Longer benchmark runs: scripts/vm-bench.sh.
#
# Environment:
#   IOVAQ_VM_BUILD_DIR   build directory (default build/ci-vm)
#   IOVAQ_VM_KERNELS     which kernels (default "debian minimal"); "debian" alone skips the
#                        kernel build
#   IOVAQ_VM_CACHE       kernel cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/iovaq/vm)
#   IOVAQ_VM_TIMEOUT     seconds per guest before it is killed (default 900)

set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bdir=${IOVAQ_VM_BUILD_DIR:-build/ci-vm}
kernels=${IOVAQ_VM_KERNELS:-debian minimal}

t0=$SECONDS
bash scripts/setup.sh
bash scripts/setup-vm.sh
regex=""
for k in $kernels; do
	case $k in
	debian) bash tests/vm/fetch-kernel.sh >/dev/null ;;
	minimal) timeout 3600 bash tests/vm/build-kernel.sh >/dev/null ;;
	*)
		echo "vm-test.sh: unknown kernel '$k' in IOVAQ_VM_KERNELS (debian minimal)" >&2
		exit 2
		;;
	esac
	regex="${regex:+$regex|}^vm_$k\$"
done
echo "vm-test.sh: kernels ready after $((SECONDS - t0)) s"
cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_WERROR=ON \
	-DIOVAQ_SANITIZE= -DIOVAQ_DEBUG=OFF -DIOVAQ_VM_TESTS=ON -DIOVAQ_BUILD_BENCH=ON
cmake --build "$bdir" -j"$(nproc)" --target vm_programs
# One guest per kernel at a time, side by side: each guest is one TCG vCPU thread, so two
# guests on two cores take the time of the slower one.
ctest --test-dir "$bdir" -L vm -R "$regex" --output-on-failure -j"$(nproc)"
echo "vm-test.sh: done in $((SECONDS - t0)) s"
