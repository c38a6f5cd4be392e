# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Sourced by tests/vm/kglue/init in bench mode (/iovaq/mode: "bench PAIRS CM REPS [timing]"; by
# tests/vm/kglue/bench.sh). Each configuration runs between two markers in QEMU's trace
# (kshim_edu mark 2K and 2K + 1: a DMAR fault at IOVA 0x40000000 + M * 4096), so that the
# host counts the invalidation descriptors of run K alone (bench-summary.py). Uses init's ok,
# fail and $edu.
set -- $(cat /iovaq/mode)
pairs=${2:-10000} cm=${3:-on} reps=${4:-3} timing=0
cm01=1
[ "$cm" = off ] && cm01=0
[ "${5:-}" = timing ] && timing=1	# bench.sh -t: the backend times its ops
if ! insmod /iovaq/iovaq.ko caching_mode=$cm01 timing=$timing; then
	fail "insmod iovaq.ko caching_mode=$cm01 timing=$timing"
	return
fi
echo "kglue-bench: pairs=$pairs caching_mode=$cm reps=$reps kernel=$(uname -r)" \
	"clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
k=0
vfio_bind() {
	echo vfio-pci >/sys/bus/pci/devices/$edu/driver_override
	echo "$edu" >/sys/bus/pci/drivers_probe
}
vfio_unbind() {
	echo "$edu" >/sys/bus/pci/devices/$edu/driver/unbind
	echo >/sys/bus/pci/devices/$edu/driver_override
}
# run WHAT POLICY ARENA_PAGES; WHAT idle: nothing between the markers (the descriptors the
# markers' own bind and release leave in an interval, which bench-summary.py subtracts).
run() {
	/iovaq/kshim_edu "$edu" mark $((2 * k)) || fail "mark $((2 * k))"
	echo "kglue-bench-k: $k"
	[ "$1" = iommufd ] && vfio_bind
	if [ "$1" = idle ]; then
		echo "kglue-bench-idle: $k"
	elif timeout 300 /iovaq/kshim_edu "$edu" bench "$1" "$2" "$pairs" "$3"; then
		ok "bench $1 $2 arena=$3"
	else
		fail "bench $1 $2 arena=$3"
	fi
	[ "$1" = iommufd ] && vfio_unbind
	/iovaq/kshim_edu "$edu" mark $((2 * k + 1)) || fail "mark $((2 * k + 1))"
	k=$((k + 1))
}
r=0
while [ $r -lt "$reps" ]; do
	run idle - 0
	run kernel-raw strict 0
	for g in 1 64 256; do
		run kernel-raw-sg strict $g
		run kernel-raw-sg-build strict $g
	done
	for p in strict deferred safe-deferred; do run kernel $p 0; done
	run kernel safe-deferred 64
	run kernel safe-deferred 256	# a ring of 256 (one arena), FACTS.md's larger prototype
	for p in strict deferred safe-deferred; do run kshim $p 0; done
	run kshim safe-deferred 64
	if [ -e /dev/iommu ]; then
		run iommufd strict 0
		run iommufd safe-deferred 64
	fi
	r=$((r + 1))
done
rmmod iovaq || fail "rmmod iovaq"
