#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Install what libiovaq needs to build, test and benchmark on Debian 12 (bookworm): only the
# packages that are missing, and "apt-get update" only when something must be installed.
# Run as root, or as a user with sudo. Safe to run again: it changes nothing when all is there.
#
#   build-essential cmake pkg-config   compiler, build system, pkg-config (iovaq.pc, Criterion)
#   liburcu-dev                        userspace RCU (DESIGN.md §6)
#   libjemalloc-dev                    IOVAQ_WITH_JEMALLOC=ON
#   libcriterion-dev                   unit and stress tests
#   libcmocka-dev                      unit tests of kernel-glue/ in userspace (tests/kglue-unit/)
#   valgrind                           memcheck tier of scripts/test.sh, callgrind counts
#   gnuplot-nox                        plots of benchmark results
#   clang libclang-rt-14-dev           fuzzing: libFuzzer and Clang's sanitizer runtimes
#                                      (scripts/fuzz.sh)
#   python3                            scripts/test.sh (valgrind runner)
#   gcovr                              coverage report (scripts/coverage.sh)
#   systemtap-sdt-dev                  <sys/sdt.h>: the USDT trace points (docs/tracing.md)
#   bpftrace                           the test that the probes fire (tests/usdt/fire-probes.sh)
#   abigail-tools                      abidw/abidiff: ABI check (scripts/abi-check.sh)
#   python3-pytest python3-matplotlib  Python bindings' tests and example plot (bindings/)

set -euo pipefail

packages=(
	build-essential cmake pkg-config
	liburcu-dev libjemalloc-dev libcriterion-dev libcmocka-dev
	valgrind gnuplot-nox clang libclang-rt-14-dev python3 gcovr systemtap-sdt-dev
	bpftrace abigail-tools
	python3-pytest python3-matplotlib
)

log() { echo "setup.sh: $*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	log "this script needs a Debian system (dpkg-query and apt-get not found)"
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	log "all ${#packages[@]} required packages are installed"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	log "missing packages: ${missing[*]}"
	log "run this script as root, or install sudo"
	exit 1
fi

log "installing missing packages: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
log "done"
