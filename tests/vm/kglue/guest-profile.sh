# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Sourced by tests/vm/kglue/init in profile mode (/iovaq/mode: "profile CM CONFIG ..."; by
# tests/vm/kglue/profile.sh): one in-kernel bench run per CONFIG (WHAT:POLICY:PAIRS:ARENA)
# under `perf record -e cpu-clock -a`, and its report by symbol as "kglue-prof: " lines.
set -- $(cat /iovaq/mode)
cm01=1
[ "$2" = off ] && cm01=0
shift 2
insmod /iovaq/iovaq.ko caching_mode=$cm01 || { fail "insmod iovaq.ko"; return; }
echo 0 >/proc/sys/kernel/kptr_restrict
echo -1 >/proc/sys/kernel/perf_event_paranoid
for c in "$@"; do
	IFS=: read -r what pol pairs arena <<EOC
$c
EOC
	echo "kglue-prof: ## $what $pol, $pairs pairs, arena $arena"
	echo "kglue-prof: "
	if /iovaq/perf record -q -e cpu-clock -a -o /tmp/perf.data -- \
		/iovaq/kshim_edu "$edu" bench "$what" "$pol" "$pairs" "$arena" >/tmp/run.txt 2>&1; then
		ok "profile $c"
	else
		fail "profile $c"
	fi
	sed 's/^/kglue-prof:     /' /tmp/run.txt
	echo "kglue-prof: "
	/iovaq/perf report -i /tmp/perf.data --stdio --sort sym --percent-limit 0.7 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n 45 | sed 's/^/kglue-prof:     /'
	echo "kglue-prof: "
	rm -f /tmp/perf.data
done
rmmod iovaq || fail "rmmod iovaq"
