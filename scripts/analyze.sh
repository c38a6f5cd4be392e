#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Static analysis of the library and the benchmark: cppcheck (warning, performance and
# portability checks) and clang-tidy (the Clang static analyzer and the bugprone checks; the
# disabled ones and why are listed in .clang-tidy). Any finding fails the run (exit 1).
#
# Suppressions are inline, next to the code, each with its reason:
#   /* cppcheck-suppress ID */    (cppcheck --inline-suppr)
#   NOLINT(check)                 (clang-tidy)
#
# Usage: scripts/analyze.sh            (sets the machine up first: scripts/setup.sh)
# The compile database comes from a configure-only CMake run in build/ci-analyze.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh

bdir=build/ci-analyze
cmake -S "$top" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_BUILD_TESTS=OFF \
	-DIOVAQ_BUILD_EXAMPLES=OFF >/dev/null

mapfile -t lib_sources < <(ls src/core/*.c src/lib/*.c src/backend/*.c)
mapfile -t bench_sources < <(ls bench/*.c)
status=0

# cppcheck 2.10 does not see C11's _Noreturn (bench_usage_error(), bad_file()): spelt as GNU's.
echo "==== cppcheck $(cppcheck --version | sed 's/^Cppcheck //') over src/ and bench/"
if ! cppcheck --enable=warning,performance,portability --std=c11 --inline-suppr --quiet \
	--error-exitcode=1 --suppress=missingIncludeSystem -D__GNUC__ -D_GNU_SOURCE \
	'-D_Noreturn=__attribute__((noreturn))' \
	-Iinclude -Isrc/core -Isrc/lib -Isrc/backend -Ibench \
	"${lib_sources[@]}" "${bench_sources[@]}"; then
	echo "analyze.sh: cppcheck has findings (above)"
	status=1
fi

echo "==== clang-tidy $(clang-tidy --version | sed -n 's/.*LLVM version //p') over src/ and bench/"
log=$bdir/clang-tidy.log
if ! clang-tidy -p "$bdir" --quiet "${lib_sources[@]}" "${bench_sources[@]}" >"$log" 2>&1; then
	grep -E '(warning|error):' "$log" | grep -v 'warnings generated' || tail -20 "$log"
	echo "analyze.sh: clang-tidy has findings (above; full log in $log)"
	status=1
fi
[ $status -eq 0 ] && echo "analyze.sh: no findings"
exit $status
