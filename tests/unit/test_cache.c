// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of the magazine cache (include/iovaq/cache.h). Most behaviours run in three
 * modes: the default per-thread front, IOVAQ_CACHE_NO_FRONT (per-CPU slots only) and
 * IOVAQ_CACHE_BYPASS (straight to the space). Each test pins itself to one CPU so that which
 * per-CPU slot a free lands in, and which one the next alloc looks at, is deterministic.
 * After every failing call the cache must pass iovaq_cache_check() and its counters must not
 * move (EXPECT_CACHE_FAIL).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>

#include "testutil.h"

#define G ((uint64_t)IOVAQ_DEFAULT_GRANULE)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

struct mode {
	const char *name;
	uint32_t flags;
};

static const struct mode modes[] = {
	{ "front", 0 },
	{ "no-front", IOVAQ_CACHE_NO_FRONT },
	{ "bypass", IOVAQ_CACHE_BYPASS },
};
#define N_MODES (sizeof(modes) / sizeof(modes[0]))

struct env {
	struct iovaq_space *sp;
	struct iovaq_cache *c;
	uint64_t total, reserved;
	const char *mode;
	uint32_t flags;
};

struct copts {
	uint64_t max;
	uint32_t depot_max, front_cap, n_cpus;
};

static struct env mk_env(iovaq_iova_t start, iovaq_iova_t last, uint32_t flags,
			 const struct copts *co, const char *mode)
{
	struct env e;
	struct iovaq_range ap = { start, last };
	IOVAQ_OPTS(iovaq_space_opts, so, .apertures = &ap, .n_apertures = 1);
	IOVAQ_OPTS(iovaq_cache_opts, o, .flags = flags);
	int err;

	memset(&e, 0, sizeof(e));
	if (co) {
		o.max_cached_granules = co->max;
		o.depot_max = co->depot_max;
		o.front_cap = co->front_cap;
		o.n_cpus = co->n_cpus;
	}
	err = iovaq_space_create(&so, &e.sp);
	cr_assert_eq(err, 0, "space create: %d", err);
	err = iovaq_cache_create(e.sp, &o, &e.c);
	cr_assert_eq(err, 0, "[%s] cache create: %d (%s)", mode, err, iovaq_strerror(err));
	struct iovaq_stats st = tu_cache_stats(e.c);
	e.total = st.total_granules;
	e.reserved = st.reserved_granules;
	e.mode = mode;
	e.flags = flags;
	return e;
}

static void rm_env(struct env *e)
{
	iovaq_cache_destroy(e->c);
	iovaq_space_destroy(e->sp);
}

static iovaq_iova_t calloc_ok(struct env *e, uint64_t n, iovaq_iova_t limit)
{
	iovaq_iova_t iova = 0;
	int err = iovaq_cache_alloc(e->c, n, limit, &iova);

	cr_assert_eq(err, 0, "[%s] iovaq_cache_alloc(%" PRIu64 ", 0x%" PRIx64 "): %d (%s)", e->mode,
		     n, limit, err, iovaq_strerror(err));
	return iova;
}

static void cfree_ok(struct env *e, iovaq_iova_t iova, uint64_t n)
{
	int err = iovaq_cache_free(e->c, iova, n);

	cr_assert_eq(err, 0, "[%s] iovaq_cache_free(0x%" PRIx64 ", %" PRIu64 "): %d (%s)", e->mode,
		     iova, n, err, iovaq_strerror(err));
}

static const struct iovaq_class_stats *cls(const struct iovaq_stats *st, uint64_t granules)
{
	for (uint32_t i = 0; i < st->n_classes; i++)
		if (st->classes[i].granules == granules)
			return &st->classes[i];
	cr_assert_fail("no size class of %" PRIu64 " granules (n_classes %u)", granules,
		       st->n_classes);
	return NULL;
}

/*
 * The accounting every quiescent single-threaded state must satisfy: what the space handed
 * out is what the cache holds plus what the test holds; the rest is free.
 */
static void expect_accounting(struct env *e, uint64_t held, const char *where)
{
	struct iovaq_stats st = tu_cache_stats(e->c);
	uint64_t sum = 0;
	int err = iovaq_cache_check(e->c);

	cr_assert_eq(err, 0, "[%s] %s: iovaq_cache_check = %d", e->mode, where, err);
	for (uint32_t i = 0; i < st.n_classes; i++)
		sum += st.classes[i].cached * st.classes[i].granules;
	cr_assert_eq(sum, st.cached_granules,
		     "[%s] %s: classes hold %" PRIu64 " granules, cached_granules %" PRIu64,
		     e->mode, where, sum, st.cached_granules);
	cr_assert_eq(st.allocated_granules, st.cached_granules + held,
		     "[%s] %s: space allocated %" PRIu64 " != cached %" PRIu64 " + held %" PRIu64,
		     e->mode, where, st.allocated_granules, st.cached_granules, held);
	cr_assert_eq(st.free_granules, e->total - e->reserved - st.allocated_granules,
		     "[%s] %s: free %" PRIu64 " does not add up", e->mode, where,
		     st.free_granules);
	if (e->flags & IOVAQ_CACHE_BYPASS)
		cr_assert_eq(st.cached_granules, 0, "[%s] %s: bypass cache holds %" PRIu64,
			     e->mode, where, st.cached_granules);
}

static int create_rc(struct iovaq_space *sp, const struct iovaq_cache_opts *o)
{
	struct iovaq_cache *c = (struct iovaq_cache *)(uintptr_t)0x1;
	int err = iovaq_cache_create(sp, o, &c);

	if (err == 0)
		iovaq_cache_destroy(c);
	else
		cr_assert_eq((uintptr_t)c, (uintptr_t)0x1, "create touched *out on failure %d",
			     err);
	return err;
}

/* ------------------------------------------------------------------------------------ */
/* Creation                                                                             */
/* ------------------------------------------------------------------------------------ */

Test(cache_create, defaults)
{
	struct env e = mk_env(GiB, 2 * GiB - 1, 0, NULL, "defaults");
	struct iovaq_cache *c = NULL;
	struct iovaq_stats st;

	cr_assert_eq(iovaq_cache_create(e.sp, NULL, &c), 0, "NULL opts must mean defaults");
	cr_assert_eq(iovaq_cache_space(c), e.sp);
	st = tu_cache_stats(c);
	cr_assert_eq(st.version, IOVAQ_STATS_VERSION);
	cr_assert_eq(st.granule, G);
	cr_assert_eq(st.n_classes, 10, "default max 512 granules means 10 classes, got %u",
		     st.n_classes);
	for (uint32_t i = 0; i < st.n_classes; i++) {
		cr_assert_eq(st.classes[i].granules, (uint64_t)1 << i, "class %u is %" PRIu64, i,
			     st.classes[i].granules);
		cr_assert_eq(st.classes[i].cached, 0);
	}
	cr_assert_eq(st.cached_granules, 0);
	cr_assert_eq(st.allocated_granules, 0);
	cr_assert_eq(iovaq_cache_check(c), 0);
	iovaq_cache_destroy(c);
	iovaq_cache_destroy(NULL);
	rm_env(&e);
}

Test(cache_create, options)
{
	struct env e = mk_env(GiB, 2 * GiB - 1, 0, NULL, "options");
	IOVAQ_OPTS(iovaq_cache_opts, o, .max_cached_granules = 64, .depot_max = 4, .front_cap = 8,
		   .flags = IOVAQ_CACHE_NO_FRONT, .n_cpus = 3);
	static const uint32_t flag_sets[] = {
		0,
		IOVAQ_CACHE_NO_FRONT,
		IOVAQ_CACHE_CHECKED,
		IOVAQ_CACHE_BYPASS,
		IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_NO_FRONT,
		IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_BYPASS,
		IOVAQ_CACHE_NO_FRONT | IOVAQ_CACHE_BYPASS,
	};
	struct iovaq_cache *c = NULL;

	cr_assert_eq(iovaq_cache_create(e.sp, &o, &c), 0);
	struct iovaq_stats st = tu_cache_stats(c);
	cr_assert_eq(st.n_classes, 7, "max 64 means 7 classes, got %u", st.n_classes);
	cr_assert_eq(st.classes[6].granules, 64);
	iovaq_cache_destroy(c);

	o.max_cached_granules = 1;
	cr_assert_eq(iovaq_cache_create(e.sp, &o, &c), 0);
	st = tu_cache_stats(c);
	cr_assert_eq(st.n_classes, 1);
	iovaq_iova_t x = 0;
	cr_assert_eq(iovaq_cache_alloc(c, 2, IOVAQ_LIMIT_NONE, &x), 0);
	cr_assert_eq(tu_cache_stats(c).allocated_granules, 2,
		     "2 > max class 1 must go to the space unrounded");
	cr_assert_eq(iovaq_cache_free(c, x, 2), 0);
	iovaq_cache_destroy(c);

	/* the largest class needs a space of at least 2^20 granules to be meaningful */
	struct env big = mk_env(4 * GiB, 12 * GiB - 1, 0, NULL, "big");
	o.max_cached_granules = (uint64_t)1 << (IOVAQ_CACHE_MAX_CLASSES - 1);
	o.front_cap = IOVAQ_CACHE_MAX_FRONT_CAP;
	cr_assert_eq(iovaq_cache_create(big.sp, &o, &c), 0, "the largest max class must work");
	st = tu_cache_stats(c);
	cr_assert_eq(st.n_classes, IOVAQ_CACHE_MAX_CLASSES, "n_classes %u", st.n_classes);
	x = 0;
	cr_assert_eq(iovaq_cache_alloc(c, ((uint64_t)1 << 19) + 1, IOVAQ_LIMIT_NONE, &x), 0);
	cr_assert_eq(x % (((uint64_t)1 << 20) * G), 0, "2^19 + 1 rounds to the 2^20 class");
	cr_assert_eq(tu_cache_stats(c).allocated_granules, (uint64_t)1 << 20);
	cr_assert_eq(iovaq_cache_free(c, x, ((uint64_t)1 << 19) + 1), 0);
	iovaq_cache_destroy(c);
	rm_env(&big);

	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		IOVAQ_OPTS(iovaq_cache_opts, f, .flags = flag_sets[i]);
		cr_assert_eq(create_rc(e.sp, &f), 0, "flags 0x%x must be accepted", flag_sets[i]);
	}
	cr_assert_eq(iovaq_space_check(e.sp), 0);
	cr_assert_eq(tu_space_stats(e.sp).allocated_granules, 0);
	rm_env(&e);
}

Test(cache_create, errors)
{
	struct env e = mk_env(GiB, 2 * GiB - 1, 0, NULL, "errors");
	IOVAQ_OPTS(iovaq_cache_opts, o);
	struct iovaq_cache *c = NULL;

	cr_assert_eq(iovaq_cache_create(NULL, &o, &c), -EINVAL);
	cr_assert_eq(iovaq_cache_create(e.sp, &o, NULL), -EINVAL);
	o.sz = 0;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "sz 0");
	o.sz = sizeof(size_t) / 2;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "sz smaller than the sz field");
	o.sz = sizeof(o);

	static const uint64_t bad_max[] = { 3, 5, 6, 100, 513, (uint64_t)1 << 21,
					    ((uint64_t)1 << 21) + 1, (uint64_t)1 << 40,
					    (uint64_t)1 << 63, UINT64_MAX };
	for (size_t i = 0; i < sizeof(bad_max) / sizeof(bad_max[0]); i++) {
		o.max_cached_granules = bad_max[i];
		cr_assert_eq(create_rc(e.sp, &o), -EINVAL,
			     "max_cached_granules %" PRIu64 " must be -EINVAL", bad_max[i]);
	}
	o.max_cached_granules = 0;
	o.front_cap = IOVAQ_CACHE_MAX_FRONT_CAP + 1;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "front_cap above the maximum");
	o.front_cap = UINT32_MAX;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "front_cap UINT32_MAX");
	o.front_cap = 0;
	o.flags = 1u << 3;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "unknown flag 1<<3");
	o.flags = 1u << 31;
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "unknown flag 1<<31");
	o.flags = IOVAQ_CACHE_NO_FRONT | (1u << 9);
	cr_assert_eq(create_rc(e.sp, &o), -EINVAL, "known plus unknown flag");
	o.flags = 0;

	/* a newer caller's bigger struct: zero tail accepted, non-zero tail -E2BIG */
	size_t big = sizeof(o) + 8;
	unsigned char *buf = calloc(1, big);
	cr_assert_not_null(buf);
	memcpy(buf, &o, sizeof(o));
	((struct iovaq_cache_opts *)(void *)buf)->sz = big;
	cr_assert_eq(create_rc(e.sp, (const struct iovaq_cache_opts *)(void *)buf), 0,
		     "bigger opts with a zero tail must be accepted");
	for (size_t i = sizeof(o); i < big; i++) {
		memset(buf + sizeof(o), 0, 8);
		buf[i] = 1;
		cr_assert_eq(create_rc(e.sp, (const struct iovaq_cache_opts *)(void *)buf), -E2BIG,
			     "non-zero trailing byte at %zu must be -E2BIG", i);
	}
	free(buf);
	cr_assert_eq(iovaq_space_check(e.sp), 0);
	cr_assert_eq(tu_space_stats(e.sp).allocated_granules, 0, "failed creates leaked IOVAs");
	rm_env(&e);
}

/* ------------------------------------------------------------------------------------ */
/* Size classes and hits                                                                */
/* ------------------------------------------------------------------------------------ */

Test(cache_alloc, rounding)
{
	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		int bypass = !!(modes[m].flags & IOVAQ_CACHE_BYPASS);
		iovaq_iova_t a, b, c5, one;

		a = calloc_ok(&e, 3, IOVAQ_LIMIT_NONE);
		cr_assert_eq(a % (4 * G), 0, "[%s] 3 granules at 0x%" PRIx64 " not 4-aligned",
			     e.mode, a);
		cr_assert_eq(a, 2 * GiB - 4 * G, "[%s] rounded 3 -> 4 at the top", e.mode);
		cr_assert_eq(tu_cache_stats(e.c).allocated_granules, 4,
			     "[%s] the space must hold the rounded size", e.mode);
		expect_accounting(&e, 4, "after alloc(3)");
		cfree_ok(&e, a, 3);
		expect_accounting(&e, 0, "after free(3)");
		if (!bypass) {
			struct iovaq_stats st = tu_cache_stats(e.c);

			cr_assert_eq(cls(&st, 4)->cached, 1, "[%s] freed 3 must sit in class 4",
				     e.mode);
			cr_assert_eq(cls(&st, 4)->frees, 1);
			cr_assert_eq(st.cached_granules, 4);
		}
		b = calloc_ok(&e, 4, IOVAQ_LIMIT_NONE);
		cr_assert_eq(b, a, "[%s] a freed 3 must serve a 4 (same class)", e.mode);
		cfree_ok(&e, b, 4);
		b = calloc_ok(&e, 3, IOVAQ_LIMIT_NONE);
		cr_assert_eq(b, a, "[%s] and a later 3", e.mode);
		c5 = calloc_ok(&e, 5, IOVAQ_LIMIT_NONE);
		cr_assert_eq(c5 % (8 * G), 0, "[%s] 5 -> 8 must be 8-aligned", e.mode);
		one = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		expect_accounting(&e, 4 + 8 + 1, "3 + 5 + 1 held");
		cfree_ok(&e, c5, 5);
		cfree_ok(&e, b, 3);
		cfree_ok(&e, one, 1);
		expect_accounting(&e, 0, "all freed");
		rm_env(&e);
	}
}

Test(cache_alloc, lifo_hits_and_class_stats)
{
	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		int bypass = !!(modes[m].flags & IOVAQ_CACHE_BYPASS);
		iovaq_iova_t a, b, x, y, two;
		struct iovaq_stats st;

		a = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		b = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		cr_assert_neq(a, b);
		st = tu_cache_stats(e.c);
		cr_assert_eq(cls(&st, 1)->hits, 0, "[%s] empty cache cannot hit", e.mode);
		if (!bypass)
			cr_assert_eq(cls(&st, 1)->misses, 2, "[%s] two misses expected, got %" PRIu64,
				     e.mode, cls(&st, 1)->misses);
		cfree_ok(&e, a, 1);
		cfree_ok(&e, b, 1);
		st = tu_cache_stats(e.c);
		if (!bypass) {
			cr_assert_eq(cls(&st, 1)->frees, 2, "[%s]", e.mode);
			cr_assert_eq(cls(&st, 1)->cached, 2, "[%s]", e.mode);
		}
		x = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		y = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		st = tu_cache_stats(e.c);
		if (!bypass) {
			cr_assert_eq(x, b, "[%s] LIFO: last freed (0x%" PRIx64 ") first, got 0x%" PRIx64,
				     e.mode, b, x);
			cr_assert_eq(y, a, "[%s] LIFO: then 0x%" PRIx64 ", got 0x%" PRIx64, e.mode, a,
				     y);
			cr_assert_eq(cls(&st, 1)->hits, 2, "[%s] hits %" PRIu64, e.mode,
				     cls(&st, 1)->hits);
			cr_assert_eq(cls(&st, 1)->misses, 2, "[%s] misses %" PRIu64, e.mode,
				     cls(&st, 1)->misses);
			cr_assert_eq(cls(&st, 1)->cached, 0);
		} else {
			cr_assert(x == a && y == b, "[%s] top-down space order expected", e.mode);
			cr_assert_eq(cls(&st, 1)->hits, 0, "[%s] bypass must never hit", e.mode);
			cr_assert_eq(cls(&st, 1)->cached, 0);
		}
		cr_assert_eq(st.cache_allocs, 4, "[%s] cache_allocs %" PRIu64, e.mode,
			     st.cache_allocs);
		cr_assert_eq(st.cache_frees, 2, "[%s] cache_frees %" PRIu64, e.mode, st.cache_frees);

		/* another class is counted separately */
		uint64_t h1 = cls(&st, 1)->hits, m1 = cls(&st, 1)->misses;
		two = calloc_ok(&e, 2, IOVAQ_LIMIT_NONE);
		cr_assert_eq(two % (2 * G), 0);
		st = tu_cache_stats(e.c);
		if (!bypass)
			cr_assert_eq(cls(&st, 2)->misses, 1, "[%s] class 2 misses", e.mode);
		cr_assert_eq(cls(&st, 2)->hits, 0);
		cr_assert_eq(cls(&st, 1)->hits, h1, "[%s] class 1 hits moved", e.mode);
		cr_assert_eq(cls(&st, 1)->misses, m1, "[%s] class 1 misses moved", e.mode);
		expect_accounting(&e, 4, "x, y, two held");
		cfree_ok(&e, x, 1);
		cfree_ok(&e, y, 1);
		cfree_ok(&e, two, 2);
		expect_accounting(&e, 0, "all freed");
		rm_env(&e);
	}
}

Test(cache_alloc, above_max_class_goes_to_space)
{
	struct copts co = { .max = 64 };

	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, &co, modes[m].name);
		iovaq_iova_t a, b, x;
		struct iovaq_stats st0 = tu_cache_stats(e.c), st;

		a = calloc_ok(&e, 65, IOVAQ_LIMIT_NONE);
		cr_assert_eq(a % G, 0);
		st = tu_cache_stats(e.c);
		cr_assert_eq(st.allocated_granules, 65, "[%s] 65 > max 64 must not be rounded (%" PRIu64
			     " allocated)", e.mode, st.allocated_granules);
		for (uint32_t i = 0; i < st.n_classes; i++)
			cr_assert_eq(st.classes[i].misses + st.classes[i].hits,
				     st0.classes[i].misses + st0.classes[i].hits,
				     "[%s] an above-max alloc was counted in class %" PRIu64, e.mode,
				     st.classes[i].granules);
		cfree_ok(&e, a, 65);
		st = tu_cache_stats(e.c);
		cr_assert_eq(st.allocated_granules, 0, "[%s] above-max free must reach the space",
			     e.mode);
		cr_assert_eq(st.cached_granules, 0);

		b = calloc_ok(&e, 128, IOVAQ_LIMIT_NONE);
		cr_assert_eq(b % (128 * G), 0, "[%s] the space aligns 128 to its size", e.mode);
		cr_assert_eq(tu_cache_stats(e.c).allocated_granules, 128);
		/* the space validates sizes above the largest class fully */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 129), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 127), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 256), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b - 128 * G, 128), -EINVAL);
		cfree_ok(&e, b, 128);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 128), -EINVAL);
		x = calloc_ok(&e, 64, IOVAQ_LIMIT_NONE);
		cr_assert_eq(x % (64 * G), 0);
		cfree_ok(&e, x, 64);
		expect_accounting(&e, 0, "after above-max traffic");
		rm_env(&e);
	}
}

Test(cache_alloc, limit_respected_on_hits)
{
	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		/* [2 GiB, 6 GiB): the cache's favourite IOVAs are above 4 GiB */
		struct env e = mk_env(2 * GiB, 6 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		static const uint64_t sizes[] = { 1, 3, 8, 512 };

		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			uint64_t n = sizes[k], r = tu_roundup_pow2(n);
			iovaq_iova_t hi, lo, lo2, again;

			hi = calloc_ok(&e, n, IOVAQ_LIMIT_NONE);
			cr_assert_gt(hi, 0xffffffffULL);
			cfree_ok(&e, hi, n);
			lo = calloc_ok(&e, n, 0xffffffff);
			cr_assert_leq(lo + r * G - 1, 0xffffffffULL,
				      "[%s] cached 0x%" PRIx64 " handed to a 32-bit request of %" PRIu64,
				      e.mode, lo, n);
			cr_assert_eq(lo % (r * G), 0);
			/* a cached low IOVA may serve a low request, never a high one wrongly */
			cfree_ok(&e, lo, n);
			lo2 = calloc_ok(&e, n, 0xffffffff);
			cr_assert_leq(lo2 + r * G - 1, 0xffffffffULL);
			again = calloc_ok(&e, n, IOVAQ_LIMIT_NONE);
			cr_assert(again >= 2 * GiB && again + r * G - 1 < 6 * GiB);
			cr_assert_neq(again, lo2);
			/* a limit inside the aperture but below every cached IOVA */
			iovaq_iova_t tiny = calloc_ok(&e, n, 2 * GiB + 2 * r * G - 1);
			cr_assert_leq(tiny + r * G - 1, 2 * GiB + 2 * r * G - 1);
			expect_accounting(&e, 3 * r, "three held");
			cfree_ok(&e, tiny, n);
			cfree_ok(&e, lo2, n);
			cfree_ok(&e, again, n);
		}
		expect_accounting(&e, 0, "all freed");
		rm_env(&e);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Drain, exhaustion                                                                    */
/* ------------------------------------------------------------------------------------ */

Test(cache_drain, returns_everything)
{
	static const uint64_t sizes[] = { 1, 1, 2, 3, 4, 8, 16, 100, 600, 1, 5, 32, 2, 1, 7, 64 };
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);

	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		iovaq_iova_t iova[16];
		uint64_t held = 0;

		for (int round = 0; round < 3; round++) {
			held = 0;
			for (size_t i = 0; i < n; i++) {
				iova[i] = calloc_ok(&e, sizes[i], IOVAQ_LIMIT_NONE);
				held += sizes[i] <= 512 ? tu_roundup_pow2(sizes[i]) : sizes[i];
			}
			expect_accounting(&e, held, "all held");
			for (size_t i = 0; i < n; i += 2) {
				cfree_ok(&e, iova[i], sizes[i]);
				held -= sizes[i] <= 512 ? tu_roundup_pow2(sizes[i]) : sizes[i];
			}
			expect_accounting(&e, held, "half freed");
			iovaq_cache_drain(e.c);
			struct iovaq_stats st = tu_cache_stats(e.c);
			cr_assert_eq(st.cached_granules, 0, "[%s] drain left %" PRIu64 " cached",
				     e.mode, st.cached_granules);
			for (uint32_t k = 0; k < st.n_classes; k++) {
				cr_assert_eq(st.classes[k].cached, 0, "[%s] class %" PRIu64 " cached",
					     e.mode, st.classes[k].granules);
				cr_assert_eq(st.classes[k].depot_mags, 0);
			}
			cr_assert_eq(st.allocated_granules, held,
				     "[%s] after drain the space holds %" PRIu64 ", test holds %" PRIu64,
				     e.mode, st.allocated_granules, held);
			expect_accounting(&e, held, "after drain");
			for (size_t i = 1; i < n; i += 2)
				cfree_ok(&e, iova[i], sizes[i]);
			iovaq_cache_drain(e.c);
			expect_accounting(&e, 0, "all freed and drained");
			cr_assert_eq(tu_cache_stats(e.c).allocated_granules, 0);
		}
		rm_env(&e);
	}
}

Test(cache_exhaustion, drain_and_retry)
{
	/* depot_max large: nothing is trimmed, so all 16 freed IOVAs stay cached */
	struct copts co = { .depot_max = 64 };

	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(MiB, MiB + 16 * G - 1, modes[m].flags, &co, modes[m].name);
		int bypass = !!(modes[m].flags & IOVAQ_CACHE_BYPASS);
		iovaq_iova_t one[16], x = 0;
		struct iovaq_stats st;

		for (int i = 0; i < 16; i++)
			one[i] = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
		for (int i = 0; i < 16; i++)
			cfree_ok(&e, one[i], 1);
		st = tu_cache_stats(e.c);
		if (!bypass) {
			cr_assert_eq(st.free_granules, 0,
				     "[%s] precondition: all 16 must sit in the cache (free %" PRIu64
				     ", cached %" PRIu64 ")",
				     e.mode, st.free_granules, st.cached_granules);
		}
		uint64_t retries0 = st.cache_retries;
		int err = iovaq_cache_alloc(e.c, 2, IOVAQ_LIMIT_NONE, &x);
		cr_assert_eq(err, 0, "[%s] 2 granules with everything cached as 1s: %d (%s)",
			     e.mode, err, iovaq_strerror(err));
		cr_assert_eq(x % (2 * G), 0);
		st = tu_cache_stats(e.c);
		if (!bypass) {
			cr_assert_gt(st.cache_retries, retries0, "[%s] the drain-and-retry path was not"
				     " counted in cache_retries",
				     e.mode);
			cr_assert_eq(st.cached_granules, 0, "[%s] a retry drains everything reachable",
				     e.mode);
		}
		expect_accounting(&e, 2, "after retry");
		/* and a 16 fits once that 2 is back */
		cfree_ok(&e, x, 2);
		x = calloc_ok(&e, 16, IOVAQ_LIMIT_NONE);
		cr_assert_eq(x, MiB, "[%s] whole aperture", e.mode);
		cfree_ok(&e, x, 16);
		iovaq_cache_drain(e.c);
		expect_accounting(&e, 0, "end");
		rm_env(&e);
	}
}

Test(cache_exhaustion, true_enospc_then_recovers)
{
	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(MiB, MiB + 32 * G - 1, modes[m].flags, NULL, modes[m].name);
		iovaq_iova_t one[32], x = 0x77;
		struct iovaq_stats st;

		for (int i = 0; i < 32; i++)
			one[i] = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		uint64_t fail0 = tu_cache_stats(e.c).cache_alloc_fail;
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 4, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 600, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
		cr_assert_eq(x, 0x77, "[%s] *out written on -ENOSPC", e.mode);
		st = tu_cache_stats(e.c);
		cr_assert_eq(st.cache_alloc_fail, fail0 + 3, "[%s] cache_alloc_fail %" PRIu64,
			     e.mode, st.cache_alloc_fail);

		/* one granule back: exactly that one comes out again */
		cfree_ok(&e, one[7], 1);
		x = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		cr_assert_eq(x, one[7], "[%s] the only free granule is 0x%" PRIx64 ", got 0x%" PRIx64,
			     e.mode, one[7], x);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
		/* two scattered singles cached: a 2 still cannot fit anywhere */
		cfree_ok(&e, one[3], 1); /* granule 28 */
		cfree_ok(&e, one[10], 1); /* granule 21 */
		/* (not EXPECT_CACHE_FAIL: the drain before -ENOSPC legitimately moves them) */
		int err = iovaq_cache_alloc(e.c, 2, IOVAQ_LIMIT_NONE, &x);
		cr_assert_eq(err, -ENOSPC, "[%s] 2 with only 28 and 21 free: %d", e.mode, err);
		expect_accounting(&e, 30, "after -ENOSPC with two singles cached");
		/* granule 20 joins 21: after the drain-and-retry, [20, 21] fits */
		cfree_ok(&e, one[11], 1);
		x = calloc_ok(&e, 2, IOVAQ_LIMIT_NONE);
		cr_assert_eq(x, MiB + 20 * G, "[%s] got 0x%" PRIx64, e.mode, x);
		cfree_ok(&e, x, 2);
		for (int i = 0; i < 32; i++)
			if (i != 3 && i != 10 && i != 11)
				cfree_ok(&e, one[i], 1);
		iovaq_cache_drain(e.c);
		expect_accounting(&e, 0, "end");
		cr_assert_eq(tu_cache_stats(e.c).allocated_granules, 0);
		rm_env(&e);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Bad input                                                                            */
/* ------------------------------------------------------------------------------------ */

Test(cache_errors, checked_mode_bad_frees)
{
	static const struct mode cm[] = {
		{ "checked", IOVAQ_CACHE_CHECKED },
		{ "checked,no-front", IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_NO_FRONT },
		{ "checked,bypass", IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_BYPASS },
	};

	tu_pin_cpu();
	for (size_t m = 0; m < sizeof(cm) / sizeof(cm[0]); m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, cm[m].flags, NULL, cm[m].name);
		iovaq_iova_t a, b, c1, d, x, y;

		a = calloc_ok(&e, 4, IOVAQ_LIMIT_NONE);
		b = calloc_ok(&e, 2, IOVAQ_LIMIT_NONE);
		c1 = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		d = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		/* wrong size (class-aligned, so only the record can tell) */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a, 2), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + 2 * G, 2), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + 3 * G, 1), -EINVAL);
		/* never allocated: free, aligned IOVAs inside the aperture */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, GiB + 64 * G, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, GiB + 64 * G, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, GiB + 64 * G, 600), -EINVAL);
		/* double free: the second one finds the IOVA cached (or back in the space) */
		cfree_ok(&e, c1, 1);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, c1, 1), -EINVAL);
		cfree_ok(&e, a, 4);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a, 2), -EINVAL);
		/* had a double free been accepted, c1 would now come out twice */
		x = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		y = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		cr_assert_neq(x, y, "[%s] one IOVA handed out twice", e.mode);
		cr_assert_neq(x, d);
		cr_assert_neq(y, d);
		expect_accounting(&e, 2 + 1 + 1 + 1, "checked mode, after bad frees");
		cfree_ok(&e, x, 1);
		cfree_ok(&e, y, 1);
		cfree_ok(&e, b, 2);
		cfree_ok(&e, d, 1);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, d, 1), -EINVAL);
		iovaq_cache_drain(e.c);
		expect_accounting(&e, 0, "end");
		/* after a drain, the old IOVAs are free in the space: still not freeable */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, b, 2), -EINVAL);
		rm_env(&e);
	}
}

Test(cache_errors, cheap_checks)
{
	tu_pin_cpu();
	for (size_t m = 0; m < N_MODES; m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		iovaq_iova_t a = calloc_ok(&e, 4, IOVAQ_LIMIT_NONE), x = 0x99;

		/* misaligned for the class */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + G, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + 2 * G, 3), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + 1, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a + G / 2, 1), -EINVAL);
		/* outside the space */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, 2 * GiB, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, 4 * GiB, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, GiB - 4 * G, 4), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, 0, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, (uint64_t)1 << 62, 1), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, 2 * GiB - G, 2), -EINVAL);
		/* zero size, NULL */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(e.c, a, 0), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_free(NULL, a, 4), -EINVAL);
		/* bad allocations */
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 0, IOVAQ_LIMIT_NONE, &x), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, UINT64_MAX, IOVAQ_LIMIT_NONE, &x),
				  -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, (uint64_t)1 << 52, IOVAQ_LIMIT_NONE, &x),
				  -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, GiB - 1, &x), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, 0, &x), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, 1, IOVAQ_LIMIT_NONE, NULL), -EINVAL);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(NULL, 1, IOVAQ_LIMIT_NONE, &x), -EINVAL);
		cr_assert_eq(x, 0x99, "[%s] *out written by a failing alloc", e.mode);
		EXPECT_CACHE_FAIL(e.c, iovaq_cache_alloc(e.c, (uint64_t)1 << 30, IOVAQ_LIMIT_NONE, &x),
				  -ENOSPC);
		cfree_ok(&e, a, 4);
		/* and a cached IOVA with a NULL cache / stats misuse */
		cr_assert_eq(iovaq_cache_stats(NULL, NULL), -EINVAL);
		IOVAQ_OPTS(iovaq_stats, st);
		st.sz = 4;
		cr_assert_eq(iovaq_cache_stats(e.c, &st), -EINVAL);
		cr_assert_eq(iovaq_cache_check(NULL), -EINVAL);
		expect_accounting(&e, 0, "end");
		rm_env(&e);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Depot bound and trimming                                                             */
/* ------------------------------------------------------------------------------------ */

/*
 * With one slot, depot_max 1 and front_cap 2, the cache can hold at most the front, the
 * slot's loaded and previous magazines and one depot magazine: 2 + 3 * M IOVAs of a class.
 * The header does not publish M (the magazine size); Linux uses 127 (a 1 KiB magazine).
 * We allow M up to 340, i.e. at most 1022 IOVAs, and free 4096 at a time.
 */
#define MAX_BOUNDED_CACHED 1022

Test(cache_depot, bounded_and_trimmed)
{
	struct copts co = { .depot_max = 1, .front_cap = 2, .n_cpus = 1 };

	tu_pin_cpu();
	for (size_t m = 0; m < 2; m++) { /* front, no-front */
		struct env e = mk_env(GiB, GiB + 16384 * G - 1, modes[m].flags, &co, modes[m].name);
		static iovaq_iova_t iova[8192];
		struct iovaq_stats st;
		uint64_t trimmed1, cached1;

		for (int i = 0; i < 8192; i++)
			iova[i] = calloc_ok(&e, 1, IOVAQ_LIMIT_NONE);
		for (int i = 0; i < 4096; i++)
			cfree_ok(&e, iova[i], 1);
		st = tu_cache_stats(e.c);
		const struct iovaq_class_stats *k = cls(&st, 1);
		cr_assert_eq(k->frees, 4096, "[%s] frees %" PRIu64, e.mode, k->frees);
		cr_assert_gt(k->trimmed, 0, "[%s] 4096 frees with depot_max 1 trimmed nothing",
			     e.mode);
		cr_assert_leq(k->depot_mags, 1, "[%s] depot holds %" PRIu64 " magazines, bound 1",
			      e.mode, k->depot_mags);
		cr_assert_leq(k->cached, MAX_BOUNDED_CACHED, "[%s] %" PRIu64 " IOVAs cached",
			      e.mode, k->cached);
		cr_assert_eq(k->cached, k->frees - k->hits - k->trimmed,
			     "[%s] cached %" PRIu64 " != frees %" PRIu64 " - hits %" PRIu64
			     " - trimmed %" PRIu64,
			     e.mode, k->cached, k->frees, k->hits, k->trimmed);
		expect_accounting(&e, 4096, "half freed");
		trimmed1 = k->trimmed;
		cached1 = k->cached;

		for (int i = 4096; i < 8192; i++)
			cfree_ok(&e, iova[i], 1);
		st = tu_cache_stats(e.c);
		k = cls(&st, 1);
		cr_assert_geq(k->trimmed, trimmed1 + 4096 - MAX_BOUNDED_CACHED,
			      "[%s] the second 4096 frees were not trimmed", e.mode);
		cr_assert_leq(k->depot_mags, 1);
		cr_assert_leq(k->cached, MAX_BOUNDED_CACHED, "[%s] cached grew to %" PRIu64
			      " (was %" PRIu64 ")", e.mode, k->cached, cached1);
		cr_assert_eq(k->cached, k->frees - k->hits - k->trimmed);
		expect_accounting(&e, 0, "all freed");
		rm_env(&e);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Destroy, threads                                                                     */
/* ------------------------------------------------------------------------------------ */

Test(cache_destroy, returns_cached_keeps_held)
{
	static const struct mode dm[] = {
		{ "front", 0 },
		{ "no-front", IOVAQ_CACHE_NO_FRONT },
		{ "bypass", IOVAQ_CACHE_BYPASS },
		{ "checked", IOVAQ_CACHE_CHECKED },
	};
	static const uint64_t sizes[] = { 1, 1, 2, 3, 4, 8, 16, 600, 1, 2, 64, 5 };
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);

	tu_pin_cpu();
	for (size_t m = 0; m < sizeof(dm) / sizeof(dm[0]); m++) {
		struct env e = mk_env(GiB, 2 * GiB - 1, dm[m].flags, NULL, dm[m].name);
		iovaq_iova_t iova[12];
		uint64_t held = 0;

		for (size_t i = 0; i < n; i++)
			iova[i] = calloc_ok(&e, sizes[i], IOVAQ_LIMIT_NONE);
		for (size_t i = 0; i < n; i++) {
			if (i % 3 == 0)
				held += sizes[i] <= 512 ? tu_roundup_pow2(sizes[i]) : sizes[i];
			else
				cfree_ok(&e, iova[i], sizes[i]);
		}
		expect_accounting(&e, held, "before destroy");
		iovaq_cache_destroy(e.c);
		e.c = NULL;
		struct iovaq_stats st = tu_space_stats(e.sp);
		cr_assert_eq(st.allocated_granules, held,
			     "[%s] after destroy the space holds %" PRIu64 ", the test %" PRIu64,
			     e.mode, st.allocated_granules, held);
		cr_assert_eq(st.cached_granules, 0);
		cr_assert_eq(iovaq_space_check(e.sp), 0);
		/* what the test held is a plain space allocation of the rounded size now */
		for (size_t i = 0; i < n; i += 3) {
			uint64_t r = sizes[i] <= 512 ? tu_roundup_pow2(sizes[i]) : sizes[i];
			int err = iovaq_space_free(e.sp, iova[i], r);

			cr_assert_eq(err, 0, "[%s] space_free(0x%" PRIx64 ", %" PRIu64 "): %d", e.mode,
				     iova[i], r, err);
		}
		cr_assert_eq(tu_space_stats(e.sp).allocated_granules, 0);
		rm_env(&e);
	}
}

struct thr_arg {
	struct iovaq_cache *c;
	int ones, fours, err;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready, go;
};

static void *use_and_free(void *p)
{
	struct thr_arg *a = p;
	iovaq_iova_t o[64], f[64];
	int err = 0;

	for (int i = 0; i < a->ones && !err; i++)
		err = iovaq_cache_alloc(a->c, 1, IOVAQ_LIMIT_NONE, &o[i]);
	for (int i = 0; i < a->fours && !err; i++)
		err = iovaq_cache_alloc(a->c, 4, IOVAQ_LIMIT_NONE, &f[i]);
	for (int i = 0; i < a->ones && !err; i++)
		err = iovaq_cache_free(a->c, o[i], 1);
	for (int i = 0; i < a->fours && !err; i++)
		err = iovaq_cache_free(a->c, f[i], 4);
	pthread_mutex_lock(&a->mu);
	a->err = err;
	a->ready = 1;
	pthread_cond_broadcast(&a->cv);
	while (!a->go)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void thr_init(struct thr_arg *a, struct iovaq_cache *c, int ones, int fours)
{
	memset(a, 0, sizeof(*a));
	a->c = c;
	a->ones = ones;
	a->fours = fours;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
}

static void thr_wait_ready(struct thr_arg *a)
{
	pthread_mutex_lock(&a->mu);
	while (!a->ready)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
}

static void thr_release(struct thr_arg *a)
{
	pthread_mutex_lock(&a->mu);
	a->go = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

Test(cache_threads, exiting_thread_gives_its_front_back)
{
	for (size_t m = 0; m < 2; m++) { /* front, no-front */
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		struct thr_arg a;
		pthread_t t;

		thr_init(&a, e.c, 20, 10);
		a.go = 1;
		cr_assert_eq(pthread_create(&t, NULL, use_and_free, &a), 0);
		pthread_join(t, NULL);
		cr_assert_eq(a.err, 0, "[%s] thread's alloc/free failed: %d", e.mode, a.err);
		/* everything it freed is cached somewhere reachable, and accounted */
		expect_accounting(&e, 0, "after the thread exited");
		iovaq_cache_drain(e.c);
		struct iovaq_stats st = tu_cache_stats(e.c);
		cr_assert_eq(st.cached_granules, 0, "[%s] %" PRIu64 " granules still cached after"
			     " the owner exited and the cache was drained", e.mode, st.cached_granules);
		cr_assert_eq(st.allocated_granules, 0,
			     "[%s] %" PRIu64 " granules lost with an exited thread's front", e.mode,
			     st.allocated_granules);
		cr_assert_eq(st.free_granules, e.total - e.reserved);
		cr_assert_eq(iovaq_cache_check(e.c), 0);
		pthread_mutex_destroy(&a.mu);
		pthread_cond_destroy(&a.cv);
		rm_env(&e);
	}
}

Test(cache_threads, destroy_while_a_user_thread_lives)
{
	for (size_t m = 0; m < 2; m++) { /* front, no-front */
		struct env e = mk_env(GiB, 2 * GiB - 1, modes[m].flags, NULL, modes[m].name);
		struct thr_arg a;
		pthread_t t;

		thr_init(&a, e.c, 10, 3);
		cr_assert_eq(pthread_create(&t, NULL, use_and_free, &a), 0);
		thr_wait_ready(&a);
		cr_assert_eq(a.err, 0, "[%s] thread's alloc/free failed: %d", e.mode, a.err);
		/* the thread sits idle with a populated front; destroy must still take it all */
		iovaq_cache_destroy(e.c);
		e.c = NULL;
		struct iovaq_stats st = tu_space_stats(e.sp);
		cr_assert_eq(st.allocated_granules, 0,
			     "[%s] destroy left %" PRIu64 " granules in a live thread's front",
			     e.mode, st.allocated_granules);
		cr_assert_eq(iovaq_space_check(e.sp), 0);
		/* now the thread exits: its exit path must not touch the destroyed cache */
		thr_release(&a);
		pthread_join(t, NULL);
		cr_assert_eq(iovaq_space_check(e.sp), 0);
		cr_assert_eq(tu_space_stats(e.sp).allocated_granules, 0);
		pthread_mutex_destroy(&a.mu);
		pthread_cond_destroy(&a.cv);
		rm_env(&e);
	}
}

Test(cache_threads, recreated_cache_gets_no_stale_front)
{
	struct iovaq_range ap = { GiB, 2 * GiB - 1 };
	IOVAQ_OPTS(iovaq_space_opts, so, .apertures = &ap, .n_apertures = 1);
	struct iovaq_space *sp = NULL;

	tu_pin_cpu();
	EXPECT_OK(iovaq_space_create(&so, &sp));
	for (int round = 0; round < 8; round++) {
		struct iovaq_cache *c = NULL, *c2 = NULL;
		iovaq_iova_t x, y;

		EXPECT_OK(iovaq_cache_create(sp, NULL, &c));
		EXPECT_OK(iovaq_cache_alloc(c, 1, IOVAQ_LIMIT_NONE, &x));
		EXPECT_OK(iovaq_cache_free(c, x, 1)); /* x now in this thread's front */
		iovaq_cache_destroy(c);
		/* x is free in the space again; take it directly */
		EXPECT_OK(iovaq_space_alloc_fixed(sp, x, 1));
		/* a new cache (quite possibly at the same address) must not hand out x */
		EXPECT_OK(iovaq_cache_create(sp, NULL, &c2));
		EXPECT_OK(iovaq_cache_alloc(c2, 1, IOVAQ_LIMIT_NONE, &y));
		cr_assert_neq(y, x, "round %d: a new cache handed out 0x%" PRIx64
			      " from a destroyed cache's front",
			      round, x);
		EXPECT_OK(iovaq_cache_free(c2, y, 1));
		iovaq_cache_destroy(c2);
		EXPECT_OK(iovaq_space_free(sp, x, 1));
		cr_assert_eq(iovaq_space_check(sp), 0);
		cr_assert_eq(tu_space_stats(sp).allocated_granules, 0);
	}
	iovaq_space_destroy(sp);
}

Test(cache_threads, two_caches_one_thread)
{
	struct env e1 = mk_env(GiB, 2 * GiB - 1, 0, NULL, "cache1");
	struct env e2 = mk_env(4 * GiB, 5 * GiB - 1, 0, NULL, "cache2");
	iovaq_iova_t x1[8], x2[8];

	tu_pin_cpu();
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 8; i++) {
			x1[i] = calloc_ok(&e1, 1 + (uint64_t)(i & 1), IOVAQ_LIMIT_NONE);
			x2[i] = calloc_ok(&e2, 1 + (uint64_t)(i & 1), IOVAQ_LIMIT_NONE);
			cr_assert(x1[i] >= GiB && x1[i] < 2 * GiB, "cache1 gave 0x%" PRIx64, x1[i]);
			cr_assert(x2[i] >= 4 * GiB && x2[i] < 5 * GiB, "cache2 gave 0x%" PRIx64,
				  x2[i]);
		}
		for (int i = 0; i < 8; i++) {
			cfree_ok(&e1, x1[i], 1 + (uint64_t)(i & 1));
			cfree_ok(&e2, x2[i], 1 + (uint64_t)(i & 1));
		}
		expect_accounting(&e1, 0, "cache1");
		expect_accounting(&e2, 0, "cache2");
	}
	rm_env(&e1);
	/* the thread goes on with the second cache only */
	for (int i = 0; i < 100; i++) {
		iovaq_iova_t x = calloc_ok(&e2, 1, IOVAQ_LIMIT_NONE);

		cr_assert(x >= 4 * GiB && x < 5 * GiB);
		cfree_ok(&e2, x, 1);
	}
	expect_accounting(&e2, 0, "cache2 alone");
	rm_env(&e2);
}

/*
 * "Other threads' fronts hold at most front_cap IOVAs per class each": after a drain from
 * another thread, an idle thread's front is all that can still be cached, so the cache may
 * hold at most front_cap IOVAs of the class.
 */
Test(cache_threads, idle_front_bounded_by_front_cap)
{
	static const uint32_t caps[] = { 1, 3, 5, 32 };

	for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		uint32_t cap = caps[k];
		const int counts[] = { (int)cap, (int)cap + 1, 40 };

		for (size_t j = 0; j < 3; j++) {
			struct copts co = { .front_cap = cap };
			struct env e = mk_env(GiB, 2 * GiB - 1, 0, &co, "front");
			struct thr_arg a;
			pthread_t t;

			thr_init(&a, e.c, counts[j], 0);
			cr_assert_eq(pthread_create(&t, NULL, use_and_free, &a), 0);
			thr_wait_ready(&a);
			cr_assert_eq(a.err, 0);
			iovaq_cache_drain(e.c);
			struct iovaq_stats st = tu_cache_stats(e.c);
			cr_assert_leq(st.cached_granules, cap,
				      "front_cap %u, %d frees by an idle thread: %" PRIu64
				      " IOVAs still cached after a drain",
				      cap, counts[j], st.cached_granules);
			cr_assert_eq(st.allocated_granules, st.cached_granules);
			thr_release(&a);
			pthread_join(t, NULL);
			iovaq_cache_drain(e.c);
			cr_assert_eq(tu_cache_stats(e.c).allocated_granules, 0);
			pthread_mutex_destroy(&a.mu);
			pthread_cond_destroy(&a.cv);
			rm_env(&e);
		}
	}
}
