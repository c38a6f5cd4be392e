/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Lets Criterion 2.4 start under ThreadSanitizer. Linked into the Criterion tests of
 * IOVAQ_SANITIZE=thread builds only (tests/CMakeLists.txt).
 *
 * Criterion's sandbox (BoxFort) maps its shared "inheritable arena" with MAP_FIXED at
 * 0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB. TSan accepts fixed mappings only inside its
 * application ranges, and on x86-64 the only one in that window is [0x550000000000,
 * 0x568000000000) (PIE binaries), so the runner nearly always dies with "Could not initialize
 * inheritable arena" (Snaipe/Criterion issue #274, open). This rand_r() answers calls made
 * from libcriterion with offsets that land the arena at 0x550000000000 + k * 16 MiB, below
 * where a PIE binary is loaded (0x555555554000 and up); every other caller gets glibc's rand_r.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* (0x550000000000 - 0x200000000000) / 16 MiB: BoxFort's random offset for 0x550000000000. */
#define ARENA_OFFSET_BASE 0x350000u

static int called_from_criterion(void *ret)
{
	Dl_info info;

	return dladdr(ret, &info) && info.dli_fname && strstr(info.dli_fname, "libcriterion");
}

typedef int (*rand_r_fn)(unsigned int *);

int rand_r(unsigned int *seed)
{
	static rand_r_fn real_rand_r; /* atomic: tests may call rand_r() from several threads */
	static unsigned int next;
	rand_r_fn fn;
	unsigned int k;

	if (called_from_criterion(__builtin_return_address(0))) {
		k = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
		return (int)(ARENA_OFFSET_BASE + (k & 0xffu));
	}
	fn = __atomic_load_n(&real_rand_r, __ATOMIC_ACQUIRE);
	if (!fn) {
		fn = (rand_r_fn)dlsym(RTLD_NEXT, "rand_r");
		__atomic_store_n(&real_rand_r, fn, __ATOMIC_RELEASE);
	}
	return fn(seed);
}
