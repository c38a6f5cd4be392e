# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Shared by tests/vm/kglue/run.sh and bench.sh (sourced; needs $root and $here).

# kglue_build_user OUTDIR: libiovaq, the contract suite and iovaq-bench in OUTDIR/user
# (RelWithDebInfo, -Werror), and the static guest programs kglue_test and kshim_edu in OUTDIR.
kglue_build_user() {
	local out=$1 b=$1/user
	cmake -S "$root" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOVAQ_WERROR=ON \
		-DIOVAQ_SANITIZE= -DIOVAQ_DEBUG=OFF -DIOVAQ_BUILD_BENCH=ON >"$out/user-cmake.log" ||
		{ cat "$out/user-cmake.log" >&2; return 1; }
	cmake --build "$b" -j"$(nproc)" --target contract_contract iovaq_static iovaq-bench \
		>"$out/user-build.log" 2>&1 || { tail -n 40 "$out/user-build.log" >&2; return 1; }
	gcc -O2 -Wall -Wextra -Werror -static -I"$root/include" -o "$out/kglue_test" \
		"$here/kglue_test.c"
	gcc -O2 -Wall -Wextra -Werror -static -I"$root/include" -o "$out/kshim_edu" \
		"$here/kshim_edu.c" "$b/libiovaq.a" -lpthread
}

# kglue_pack OUTDIR MODDIR IMAGE [MODE]: the initramfs: busybox, tests/vm/kglue/init, the
# modules of MODDIR, the guest programs and the shared libraries they load (ldd), and the
# programs of the array KGLUE_EXTRA (profile.sh: perf) with theirs. MODE (a word in
# /iovaq/mode) selects what init runs: "test" (default), "bench" (bench.sh) or "profile"
# (profile.sh).
kglue_pack() {
	local out=$1 dir=$2 image=$3 mode=${4:-test} img p lib
	img=$(mktemp -d)
	mkdir -p "$img"/{bin,proc,sys,dev,tmp,iovaq}
	cp /bin/busybox "$img/bin/"
	cp "$here/init" "$img/init"
	chmod 755 "$img/init"
	cp "$here/guest-bench.sh" "$here/guest-profile.sh" "$img/iovaq/"
	echo "$mode" >"$img/iovaq/mode"
	cp "$out/kglue_test" "$out/kshim_edu" "$dir/iovaq.ko" "$dir/iovaq_example.ko" "$img/iovaq/"
	for p in "$out/user/tests/contract_contract" "$out/user/bench/iovaq-bench" \
		${KGLUE_EXTRA[@]+"${KGLUE_EXTRA[@]}"}; do
		cp "$p" "$img/iovaq/"
		for lib in $(ldd "$p" 2>/dev/null | grep -oE '/[^ ]+' || true); do
			[ -e "$img$lib" ] && continue
			mkdir -p "$img$(dirname "$lib")"
			cp -L "$lib" "$img$lib"
		done
	done
	(cd "$img" && find . | cpio -o -H newc --quiet | gzip -1) >"$image"
	rm -rf "$img"
}
