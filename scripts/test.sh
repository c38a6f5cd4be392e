#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The one test command (README.md; .ci/run runs it): set up the machine, then build and run the
# whole test suite in each configuration, each in its own build directory:
#
#   plain     build/ci-plain  RelWithDebInfo, -Werror; ctest, every label
#   asan      build/ci-asan   ASan+UBSan, IOVAQ_DEBUG; ctest, every label but the install test
#   tsan      build/ci-tsan   TSan, IOVAQ_DEBUG, IOVAQ_TEST_SCALE=0.1; ctest -L 'unit|stress|contract'
#   valgrind  build/ci-plain  the unit tier of the plain build under valgrind memcheck
#   analyze   build/ci-analyze  cppcheck and clang-tidy over src/ and bench/, no findings
#                             (scripts/analyze.sh; disabled checks explained in .clang-tidy)
#   abi       build/ci-abi    the version script agrees with the version, and abidiff finds no
#                             incompatible change against extras/abi/ (scripts/abi-check.sh)
#   coverage  build/ci-coverage gcovr line coverage of src/core/ by the unit, contract and
#                             stress tiers, at least 90% (scripts/coverage.sh)
#   fuzz      build/ci-fuzz   Clang, ASan+UBSan: every libFuzzer target for a bounded time on
#                             its seed corpus (scripts/fuzz.sh; IOVAQ_FUZZ_SECONDS, default 60)
#   vm        build/ci-vm     the VM tier: contract suite for iommufd and vfio-type1 in QEMU
#                             guests with emulated VT-d, on Debian's 6.12 and a minimal 6.12
#                             kernel built once and cached (scripts/vm-test.sh); then the
#                             kernel module (kernel-glue/) built for both kernels and tested
#                             in their guests (tests/vm/kglue/run.sh); then the application
#                             testbed's smoke run and its runner's bad input (ctest
#                             vm_apps_smoke, vm_apps_bad_input: bench/apps/)
#
# Environment:
#   IOVAQ_TEST_CONFIGS   configurations to run, in order
#                        (default "plain asan tsan valgrind analyze abi coverage fuzz vm")
#   IOVAQ_VALGRIND_TEST_SCALE  IOVAQ_TEST_SCALE under valgrind (default 0.1)
#   (the tsan and valgrind runs set IOVAQ_TEST_SLOW=1: tests then skip wall-clock judgements)
#   CI                   accepted (CI=true); the script behaves the same either way
#
# Stops at the first configuration that fails (exit status 1) and always ends with one summary
# line per configuration.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

configs=${IOVAQ_TEST_CONFIGS:-plain asan tsan valgrind analyze abi coverage fuzz vm}
for c in $configs; do
	case $c in
	plain | asan | tsan | valgrind | analyze | abi | coverage | fuzz | vm) ;;
	*)
		echo "test.sh: unknown configuration '$c' in IOVAQ_TEST_CONFIGS" \
			"(known: plain asan tsan valgrind analyze abi coverage fuzz vm)" >&2
		exit 2
		;;
	esac
done

declare -A result=()
current=""
t_start=$SECONDS

summary() {
	local rc=$? c
	if [ -n "$current" ] && [ -z "${result[$current]:-}" ]; then
		result[$current]="FAILED"
	fi
	echo
	echo "==== test.sh summary ($((SECONDS - t_start)) s) ===="
	for c in $configs; do
		printf '  %-9s %s\n' "$c" "${result[$c]:-not run}"
	done
	if [ "$rc" -eq 0 ]; then
		echo "  all configurations passed"
	fi
	exit "$rc"
}
trap summary EXIT

section() {
	echo
	echo "================================================================================"
	echo "==== $*"
	echo "================================================================================"
}

# configure_and_build NAME [cmake -D options...]
configure_and_build() {
	local dir=build/ci-$1
	shift
	cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_WERROR=ON "$@"
	cmake --build "$dir" -j2
}

run_plain() {
	configure_and_build plain -DIOVAQ_SANITIZE= -DIOVAQ_DEBUG=OFF -DIOVAQ_TEST_SCALE=1
	ctest --test-dir build/ci-plain --output-on-failure
}

run_asan() {
	configure_and_build asan -DIOVAQ_SANITIZE=address,undefined -DIOVAQ_DEBUG=ON \
		-DIOVAQ_TEST_SCALE=1
	# The install test skips itself in sanitized builds; exclude it so that no SKIP shows.
	# Criterion ignores how a worker exits after its test has finished, so a leak that LSan
	# reports at worker exit would pass unnoticed: abort_on_error=1 turns it into a crash that
	# Criterion does report.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir build/ci-asan --output-on-failure -E '^install$'
}

run_tsan() {
	local -a wrap=()
	# TSan slows threads 5-15x: tests skip wall-clock judgements (window bounds) under it.
	export IOVAQ_TEST_SLOW=1
	configure_and_build tsan -DIOVAQ_SANITIZE=thread -DIOVAQ_DEBUG=ON -DIOVAQ_TEST_SCALE=0.1
	# TSan's shadow memory layout (GCC 12) does not fit kernels that randomise mmap with more
	# than 28 bits ("unexpected memory mapping"); run without ASLR there.
	if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ] &&
		command -v setarch >/dev/null 2>&1; then
		echo "test.sh: vm.mmap_rnd_bits > 28: running TSan tests under setarch -R" >&2
		wrap=(setarch "$(uname -m)" -R)
	fi
	# halt_on_error: stop the worker at the first report, which fails its test; abort_on_error:
	# a report made after the test returned (thread exit, destructors) crashes the worker
	# instead of exiting 66, which Criterion would ignore. Criterion itself only starts under
	# TSan thanks to tests/support/criterion-tsan.c.
	TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 second_deadlock_stack=1" \
		"${wrap[@]}" ctest --test-dir build/ci-tsan --output-on-failure -L 'unit|stress|contract' \
		-E '^install$'
}

# Valgrind memcheck over the unit tier of the plain build (the install and USDT checks, shell
# scripts that look at the built files, excluded: memcheck would judge cmake, readelf and sort;
# header tests are not in the unit tier).
#
# Criterion 2.4.1 runs each test in a worker process that it starts with fork+exec (BoxFort),
# and it reports a test as passed even if the worker then exits non-zero, so valgrind's
# --error-exitcode cannot fail a test. Hence:
#  - --trace-children=yes puts every worker under memcheck too;
#  - --log-file=.../vg.%p.log gives each process its own log, and a test fails when its runner
#    exits non-zero or any log reports "ERROR SUMMARY: N errors" with N > 0;
#  - leaks count as errors only when definitely or indirectly lost (workers exit with memory
#    still reachable from globals, which is not a leak);
#  - CRITERION_JOBS=1 runs one worker at a time, so logs and timing stay readable.
# The tests, their commands, environments and working directories come from ctest itself
# (ctest --show-only=json-v1), so this follows tests/CMakeLists.txt without a second list.
run_valgrind() {
	# Configure with the plain options again: a no-op after "plain", and a full build when
	# only "valgrind" was selected.
	configure_and_build plain -DIOVAQ_SANITIZE= -DIOVAQ_DEBUG=OFF -DIOVAQ_TEST_SCALE=1
	python3 - build/ci-plain build/ci-plain/valgrind <<'EOF'
import glob, json, os, re, shutil, subprocess, sys

bdir, logroot = sys.argv[1], sys.argv[2]
scale = os.environ.get("IOVAQ_VALGRIND_TEST_SCALE", "0.1")
listing = subprocess.run(
    ["ctest", "--test-dir", bdir, "-L", "unit", "-E", "^(install|usdt_probes|usdt_fire)$",
     "--show-only=json-v1"],
    check=True, capture_output=True, text=True).stdout
tests = json.loads(listing).get("tests", [])
if not tests:
    sys.exit("valgrind: ctest lists no unit tests in " + bdir)

vg = ["valgrind", "--tool=memcheck", "--error-exitcode=1", "--leak-check=full",
      "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
      "--track-origins=yes", "--trace-children=yes", "--num-callers=30"]
summary_re = re.compile(r"ERROR SUMMARY: (\d+) errors")
shutil.rmtree(logroot, ignore_errors=True)
failed = []
for t in tests:
    name = t["name"]
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    if props.get("DISABLED"):
        continue
    env = dict(os.environ)
    for kv in props.get("ENVIRONMENT", []):
        k, _, v = kv.partition("=")
        env[k] = v
    env["IOVAQ_TEST_SCALE"] = scale
    env["IOVAQ_TEST_SLOW"] = "1"  # wall-clock bounds are not judged under valgrind
    env["CRITERION_JOBS"] = "1"
    logdir = os.path.abspath(os.path.join(logroot, name))
    os.makedirs(logdir)
    cmd = vg + ["--log-file=" + os.path.join(logdir, "vg.%p.log")] + t["command"]
    timeout = 3 * float(props.get("TIMEOUT", 600))
    with open(os.path.join(logdir, "output.txt"), "w") as out:
        try:
            rc = subprocess.run(cmd, env=env, cwd=props.get("WORKING_DIRECTORY", bdir),
                                stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout after %d s" % timeout
    bad_logs, n_logs = [], 0
    for log in sorted(glob.glob(os.path.join(logdir, "vg.*.log"))):
        n_logs += 1
        with open(log, errors="replace") as f:
            m = summary_re.findall(f.read())
        if m and int(m[-1]) > 0:
            bad_logs.append(log)
    skip = props.get("SKIP_RETURN_CODE")
    if skip is not None and rc == int(skip):
        print("valgrind: %-28s SKIP" % name, flush=True)
        continue
    if rc == 0 and not bad_logs:
        print("valgrind: %-28s ok (%d processes, 0 errors)" % (name, n_logs), flush=True)
        continue
    failed.append(name)
    print("valgrind: %-28s FAIL (exit %s, %d of %d process logs with errors)"
          % (name, rc, len(bad_logs), n_logs), flush=True)
    with open(os.path.join(logdir, "output.txt"), errors="replace") as f:
        sys.stdout.write(f.read()[-4000:])
    for log in bad_logs:
        print("---- " + log)
        with open(log, errors="replace") as f:
            sys.stdout.write(f.read()[-12000:])
    sys.stdout.flush()

if failed:
    sys.exit("valgrind: %d test(s) with memcheck errors: %s (logs in %s)"
             % (len(failed), " ".join(failed), logroot))
print("valgrind: %d tests, no memcheck errors" % len(tests))
EOF
}

run_analyze() {
	bash "$top/scripts/analyze.sh"
}

run_abi() {
	bash "$top/scripts/abi-check.sh"
}

run_coverage() {
	bash "$top/scripts/coverage.sh"
}

run_fuzz() {
	bash "$top/scripts/fuzz.sh"
}

run_vm() {
	bash "$top/scripts/vm-test.sh"
	bash "$top/tests/vm/kglue/run.sh" -o "$top/build/ci-kglue" all
	# One apps guest, one short load, its DMA trace replayed (about 30 s warm; docs/apps.md),
	# and the runner's bad input. vm-test.sh set the machine up and built iovaq-bench in the
	# same build directory.
	ctest --test-dir "${IOVAQ_VM_BUILD_DIR:-build/ci-vm}" -R '^vm_apps_(smoke|bad_input)$' \
		--no-tests=error \
		--output-on-failure
}

section "setup (scripts/setup.sh)"
bash "$top/scripts/setup.sh"

for c in $configs; do
	current=$c
	case $c in
	plain) section "plain: RelWithDebInfo, -Werror, every label (build/ci-plain)" ;;
	asan) section "asan: IOVAQ_SANITIZE=address,undefined, IOVAQ_DEBUG (build/ci-asan)" ;;
	tsan) section "tsan: IOVAQ_SANITIZE=thread, IOVAQ_DEBUG, scale 0.1 (build/ci-tsan)" ;;
	valgrind) section "valgrind: memcheck over the unit tier of build/ci-plain" ;;
	analyze) section "analyze: cppcheck and clang-tidy (build/ci-analyze)" ;;
	abi) section "abi: version script and abidiff against extras/abi/ (build/ci-abi)" ;;
	coverage) section "coverage: gcovr over src/core/ (build/ci-coverage)" ;;
	fuzz) section "fuzz: libFuzzer targets, Clang ASan+UBSan (build/ci-fuzz)" ;;
	vm) section "vm: iommufd and vfio-type1 in QEMU guests with emulated VT-d (build/ci-vm)" ;;
	esac
	t0=$SECONDS
	"run_$c"
	result[$c]="passed ($((SECONDS - t0)) s)"
done
current=""
