#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The USDT probes fire, as often and with the arguments docs/tracing.md says: bpftrace attaches
# to every probe of LIBIOVAQ.so (the file itself, so any process that loads it), then
# tests/usdt/usdt_driver.c runs a known sequence of domain calls and prints what the probes
# must have seen ("expect KEY VALUE"); the probes' counts and sums ("got KEY VALUE") must
# match exactly. Only the driver's events count (filtered by its command name).
#
#   fire-probes.sh LIBIOVAQ.so USDT_DRIVER HAVE_SDT
#
# Exit 77 (skip) when the library has no probes, bpftrace is missing, or this machine does not
# let bpftrace attach uprobes (not root, no BPF, no uprobes): then the reason is printed.
set -euo pipefail
lib=$(realpath "$1") driver=$(realpath "$2") have=$3
case ${have^^} in
ON | 1 | TRUE | YES) ;;
*)
	echo "SKIP: built without <sys/sdt.h> (install systemtap-sdt-dev)"
	exit 77
	;;
esac
command -v bpftrace >/dev/null || { echo "SKIP: no bpftrace (Debian package bpftrace)"; exit 77; }
# bpftrace resolves USDT probes in a shared library through its soname-less real file.
lib=$(realpath "$lib")
scratch=$(mktemp -d)
bt_pid=""
cleanup() {
	[ -z "$bt_pid" ] || kill "$bt_pid" 2>/dev/null || true
	rm -rf "$scratch"
}
trap cleanup EXIT

# Can this machine attach a uprobe at all? (a libc function of the shell's own libc)
libc=$(ldd "$driver" | awk '/libc\.so/ { print $3 }')
if ! probe_err=$(timeout 60 bpftrace -e "uprobe:$libc:getpid { } BEGIN { exit(); }" 2>&1) ||
	grep -qE '^ERROR: (Error attaching|Could not|.*not permitted|.*[Pp]ermission)' <<<"$probe_err"; then
	echo "SKIP: bpftrace cannot attach uprobes here:"
	grep -E 'ERROR' <<<"$probe_err" | head -3
	exit 77
fi

comm=$(basename "$driver" | cut -c1-15)
f="/comm == \"$comm\"/"
prog="
usdt:$lib:iovaq:map $f { if (arg2 == 0) { @map_ok++; } else { @map_err++; @map_err_code = (int64)arg2; } }
usdt:$lib:iovaq:unmap $f { @unmap++; @unmap_pages += arg1; }
usdt:$lib:iovaq:safe $f { @safe++; @safe_pages += arg0; }
usdt:$lib:iovaq:complete $f { @complete++; @complete_sum += arg0; }
usdt:$lib:iovaq:violation $f { @violation++; if (arg1 > arg2) { @violation_over_bound++; } }
usdt:$lib:iovaq:backend_error $f { if (arg0 == 0) { @backend_error_map++; } @backend_error_code = (int64)arg1; }
usdt:$lib:iovaq:cache_miss $f { @cache_miss++; }
usdt:$lib:iovaq:flush_start $f { @flush_start++; }
usdt:$lib:iovaq:flush_done $f { @flush_done++; }
BEGIN { printf(\"READY\\n\"); }
END {
	printf(\"got map_ok %d\\n\", @map_ok); printf(\"got map_err %d\\n\", @map_err);
	printf(\"got map_err_code %d\\n\", @map_err_code);
	printf(\"got unmap %d\\n\", @unmap); printf(\"got unmap_pages %d\\n\", @unmap_pages);
	printf(\"got safe %d\\n\", @safe); printf(\"got safe_pages %d\\n\", @safe_pages);
	printf(\"got complete %d\\n\", @complete); printf(\"got complete_sum %d\\n\", @complete_sum);
	printf(\"got violation %d\\n\", @violation);
	printf(\"got violation_over_bound %d\\n\", @violation_over_bound);
	printf(\"got backend_error_map %d\\n\", @backend_error_map);
	printf(\"got backend_error_code %d\\n\", @backend_error_code);
	printf(\"got cache_miss %d\\n\", @cache_miss);
	printf(\"got flush_start %d\\n\", @flush_start); printf(\"got flush_done %d\\n\", @flush_done);
	clear(@map_ok); clear(@map_err); clear(@map_err_code); clear(@unmap); clear(@unmap_pages);
	clear(@safe); clear(@safe_pages); clear(@complete); clear(@complete_sum);
	clear(@violation); clear(@violation_over_bound); clear(@backend_error_map);
	clear(@backend_error_code); clear(@cache_miss); clear(@flush_start); clear(@flush_done);
}"
bpftrace -e "$prog" >"$scratch/bt.out" 2>"$scratch/bt.err" &
bt_pid=$!
for _ in $(seq 600); do
	grep -q READY "$scratch/bt.out" 2>/dev/null && break
	kill -0 "$bt_pid" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q READY "$scratch/bt.out"; then
	echo "FAIL: bpftrace did not attach to the probes of $lib within 60 s:"
	cat "$scratch/bt.err"
	exit 1
fi
"$driver" >"$scratch/expect"
kill -INT "$bt_pid"
wait "$bt_pid" || true
bt_pid=""

declare -A got=()
while read -r _ k v; do got[$k]=$v; done < <(grep '^got ' "$scratch/bt.out")
if [ ${#got[@]} -eq 0 ]; then
	echo "FAIL: bpftrace printed no counts:"
	cat "$scratch/bt.out" "$scratch/bt.err"
	exit 1
fi
status=0
while read -r _ k v; do
	if [ "${got[$k]:-missing}" != "$v" ]; then
		echo "FAIL: probe figure $k: expected $v, the probes saw ${got[$k]:-nothing}"
		status=1
	fi
done <"$scratch/expect"
# No exact expectation, but each must have fired: the first allocations reach the tree, and
# the safe-deferred and deferred syncs flush.
for k in cache_miss flush_start flush_done; do
	if [ "${got[$k]:-0}" -lt 1 ]; then
		echo "FAIL: probe $k never fired"
		status=1
	fi
done
if [ "${got[flush_start]:-0}" != "${got[flush_done]:-0}" ]; then
	echo "FAIL: flush_start fired ${got[flush_start]} times, flush_done ${got[flush_done]}"
	status=1
fi
[ $status -ne 0 ] || echo "ok: $(grep -c . "$scratch/expect") figures agree;" \
	"cache_miss ${got[cache_miss]}, flushes ${got[flush_start]}"
exit $status
