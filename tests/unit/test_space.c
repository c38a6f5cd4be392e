// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of the IOVA space allocator (include/iovaq/space.h), the stats JSON dump, the
 * version and the error strings. Everything is checked through the public API only; after
 * every failing call the space must pass iovaq_space_check() and its counters must not move
 * (EXPECT_SPACE_FAIL).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>

#include "testutil.h"

#define G ((uint64_t)IOVAQ_DEFAULT_GRANULE)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

static struct iovaq_space *mk_space_g(const struct iovaq_range *ap, size_t nap,
				      const struct iovaq_range *rs, size_t nrs, uint64_t granule)
{
	struct iovaq_space *sp = NULL;
	IOVAQ_OPTS(iovaq_space_opts, o, .granule = granule, .apertures = ap, .n_apertures = nap,
		   .reserved = rs, .n_reserved = nrs);
	int err = iovaq_space_create(&o, &sp);

	cr_assert_eq(err, 0, "iovaq_space_create: %d (%s)", err, iovaq_strerror(err));
	cr_assert_not_null(sp);
	cr_assert_eq(iovaq_space_check(sp), 0, "fresh space fails its check");
	return sp;
}

static struct iovaq_space *mk_space(const struct iovaq_range *ap, size_t nap,
				    const struct iovaq_range *rs, size_t nrs)
{
	return mk_space_g(ap, nap, rs, nrs, 0);
}

/* A one-aperture space [start, last] with no caller hole. */
static struct iovaq_space *mk_space1(iovaq_iova_t start, iovaq_iova_t last)
{
	struct iovaq_range ap = { start, last };

	return mk_space(&ap, 1, NULL, 0);
}

static int create_rc(const struct iovaq_space_opts *o)
{
	struct iovaq_space *sp = (struct iovaq_space *)(uintptr_t)0x1;
	int err = iovaq_space_create(o, &sp);

	if (err == 0) {
		iovaq_space_destroy(sp);
	} else {
		cr_assert_eq((uintptr_t)sp, (uintptr_t)0x1,
			     "iovaq_space_create touched *out although it failed (%d)", err);
	}
	return err;
}

static iovaq_iova_t alloc_ok(struct iovaq_space *sp, uint64_t n, iovaq_iova_t limit)
{
	iovaq_iova_t iova = 0;
	int err = iovaq_space_alloc(sp, n, limit, &iova);

	cr_assert_eq(err, 0, "iovaq_space_alloc(%" PRIu64 ", limit 0x%" PRIx64 "): %d (%s)", n,
		     limit, err, iovaq_strerror(err));
	return iova;
}

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ------------------------------------------------------------------------------------ */
/* Creation                                                                             */
/* ------------------------------------------------------------------------------------ */

Test(space_create, null_arguments)
{
	struct iovaq_range ap = { 0x100000, 0x1fffff };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);
	struct iovaq_space *sp = NULL;

	cr_assert_eq(create_rc(NULL), -EINVAL, "NULL opts must be -EINVAL");
	cr_assert_eq(iovaq_space_create(&o, NULL), -EINVAL, "NULL out must be -EINVAL");
	cr_assert_eq(iovaq_space_create(&o, &sp), 0);
	iovaq_space_destroy(sp);
	iovaq_space_destroy(NULL); /* must be a no-op */
}

Test(space_create, sz_too_small)
{
	struct iovaq_range ap = { 0x100000, 0x1fffff };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);

	o.sz = 0;
	cr_assert_eq(create_rc(&o), -EINVAL, "sz 0 must be -EINVAL");
	o.sz = sizeof(size_t);
	cr_assert_eq(create_rc(&o), -EINVAL, "sz covering only sz must be -EINVAL");
	o.sz = sizeof(o);
	cr_assert_eq(create_rc(&o), 0, "sz == sizeof must work");
}

Test(space_create, trailing_bytes_e2big)
{
	struct iovaq_range ap = { 0x100000, 0x1fffff };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);
	size_t big = sizeof(o) + 8;
	unsigned char *buf = calloc(1, big);

	cr_assert_not_null(buf);
	memcpy(buf, &o, sizeof(o));
	((struct iovaq_space_opts *)(void *)buf)->sz = big;
	cr_assert_eq(create_rc((const struct iovaq_space_opts *)(void *)buf), 0,
		     "a bigger opts struct with an all-zero tail must be accepted");
	for (size_t i = sizeof(o); i < big; i++) {
		memset(buf + sizeof(o), 0, 8);
		buf[i] = 0x5a;
		cr_assert_eq(create_rc((const struct iovaq_space_opts *)(void *)buf), -E2BIG,
			     "non-zero trailing byte at offset %zu must be -E2BIG", i);
	}
	free(buf);
}

Test(space_create, granule)
{
	struct iovaq_range ap = { 0, 4 * GiB - 1 };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);
	static const uint64_t bad[] = { 3, 100, 3000, 4097, 6144, 256, 1, 2, 2 * GiB, 1ULL << 63 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.granule = bad[i];
		cr_assert_eq(create_rc(&o), -EINVAL, "granule %" PRIu64 " must be -EINVAL",
			     bad[i]);
	}
	static const uint64_t good[] = { 512, 4096, 65536, 2 * MiB, GiB };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct iovaq_space *sp = NULL;

		o.granule = good[i];
		cr_assert_eq(iovaq_space_create(&o, &sp), 0, "granule %" PRIu64 " must work",
			     good[i]);
		cr_assert_eq(iovaq_space_granule(sp), good[i]);
		cr_assert_eq(iovaq_space_check(sp), 0);
		iovaq_space_destroy(sp);
	}
	o.granule = 0;
	struct iovaq_space *sp = NULL;
	cr_assert_eq(iovaq_space_create(&o, &sp), 0);
	cr_assert_eq(iovaq_space_granule(sp), IOVAQ_DEFAULT_GRANULE,
		     "granule 0 must mean the default");
	iovaq_space_destroy(sp);
}

Test(space_create, bad_apertures)
{
	IOVAQ_OPTS(iovaq_space_opts, o);
	struct iovaq_range ap[2];

	o.apertures = ap;
	o.n_apertures = 0;
	ap[0] = (struct iovaq_range){ 0x100000, 0x1fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "no aperture must be -EINVAL");
	o.apertures = NULL;
	o.n_apertures = 1;
	cr_assert_eq(create_rc(&o), -EINVAL, "NULL apertures must be -EINVAL");
	o.apertures = ap;

	/* empty: last < start */
	ap[0] = (struct iovaq_range){ 0x2000, 0x1fff };
	cr_assert_eq(create_rc(&o), -EINVAL, "empty aperture [0x2000, 0x1fff]");
	ap[0] = (struct iovaq_range){ 0x200000, 0x0fff };
	cr_assert_eq(create_rc(&o), -EINVAL, "inverted aperture");
	/* misaligned start, misaligned end */
	ap[0] = (struct iovaq_range){ 0x100800, 0x1fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "misaligned aperture start");
	ap[0] = (struct iovaq_range){ 0x100000, 0x1ffffe };
	cr_assert_eq(create_rc(&o), -EINVAL, "misaligned aperture last");
	ap[0] = (struct iovaq_range){ 0x100000, 0x1ff7ff };
	cr_assert_eq(create_rc(&o), -EINVAL, "aperture last + 1 not granule-aligned");

	/* overlapping, in both orders, and duplicates */
	o.n_apertures = 2;
	ap[0] = (struct iovaq_range){ 0x100000, 0x1fffff };
	ap[1] = (struct iovaq_range){ 0x180000, 0x27ffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "overlapping apertures");
	ap[0] = (struct iovaq_range){ 0x180000, 0x27ffff };
	ap[1] = (struct iovaq_range){ 0x100000, 0x1fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "overlapping apertures (reverse order)");
	ap[1] = ap[0];
	cr_assert_eq(create_rc(&o), -EINVAL, "duplicate apertures");
	ap[0] = (struct iovaq_range){ 0x100000, 0x4fffff };
	ap[1] = (struct iovaq_range){ 0x200000, 0x2fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "nested apertures");
	ap[0] = (struct iovaq_range){ 0x100000, 0x1fffff };
	ap[1] = (struct iovaq_range){ 0x1ff000, 0x2fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "apertures sharing one granule");
	ap[1] = (struct iovaq_range){ 0x100000, 0x1fffff };
	ap[0] = (struct iovaq_range){ 0x1, 0x2fffff };
	cr_assert_eq(create_rc(&o), -EINVAL, "one good, one misaligned aperture");

	/* valid: any order, adjacent but not overlapping */
	ap[0] = (struct iovaq_range){ 0x400000, 0x4fffff };
	ap[1] = (struct iovaq_range){ 0x100000, 0x1fffff };
	cr_assert_eq(create_rc(&o), 0, "apertures in descending order must work");
	ap[0] = (struct iovaq_range){ 0x100000, 0x1fffff };
	ap[1] = (struct iovaq_range){ 0x200000, 0x2fffff };
	cr_assert_eq(create_rc(&o), 0, "adjacent apertures do not overlap and must work");
}

Test(space_create, aperture_and_hole_counts)
{
	struct iovaq_range ap[IOVAQ_SPACE_MAX_APERTURES + 1];
	struct iovaq_range rs[IOVAQ_SPACE_MAX_RESERVED + 1];
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = ap);

	for (size_t i = 0; i <= IOVAQ_SPACE_MAX_APERTURES; i++)
		ap[i] = (struct iovaq_range){ (i + 1) * MiB, (i + 1) * MiB + 0xffff };
	o.n_apertures = IOVAQ_SPACE_MAX_APERTURES + 1;
	cr_assert_eq(create_rc(&o), -EINVAL, "%d apertures must be -EINVAL",
		     IOVAQ_SPACE_MAX_APERTURES + 1);
	o.n_apertures = IOVAQ_SPACE_MAX_APERTURES;
	cr_assert_eq(create_rc(&o), 0, "exactly IOVAQ_SPACE_MAX_APERTURES must work");

	o.n_apertures = 1;
	ap[0] = (struct iovaq_range){ 0, 4 * GiB - 1 };
	for (size_t i = 0; i <= IOVAQ_SPACE_MAX_RESERVED; i++)
		rs[i] = (struct iovaq_range){ (i + 1) * MiB, (i + 1) * MiB + 10 };
	o.reserved = rs;
	o.n_reserved = IOVAQ_SPACE_MAX_RESERVED + 1;
	cr_assert_eq(create_rc(&o), -EINVAL, "%d holes must be -EINVAL",
		     IOVAQ_SPACE_MAX_RESERVED + 1);
	o.n_reserved = IOVAQ_SPACE_MAX_RESERVED;
	cr_assert_eq(create_rc(&o), 0, "exactly IOVAQ_SPACE_MAX_RESERVED must work");
	o.reserved = NULL;
	o.n_reserved = 3;
	cr_assert_eq(create_rc(&o), -EINVAL, "NULL reserved with n_reserved > 0");
}

Test(space_create, everything_reserved)
{
	struct iovaq_range ap = { 0, G - 1 };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);

	cr_assert_eq(create_rc(&o), -EINVAL,
		     "an aperture holding only granule 0 (always reserved) must be -EINVAL");
	struct iovaq_range hole = { 0x100000 + 5, 0x1fffff - 5 };
	ap = (struct iovaq_range){ 0x100000, 0x1fffff };
	o.reserved = &hole;
	o.n_reserved = 1;
	cr_assert_eq(create_rc(&o), -EINVAL,
		     "a hole widened to cover the whole aperture must be -EINVAL");
	hole.start = 0x101000;
	cr_assert_eq(create_rc(&o), 0, "one granule left free must work");
}

/* ------------------------------------------------------------------------------------ */
/* Stats right after creation, holes                                                    */
/* ------------------------------------------------------------------------------------ */

Test(space_stats, fresh_counts)
{
	struct iovaq_range ap[2] = { { 0, 64 * MiB - 1 }, { 0xfe000000, 0xffffffff } };
	struct iovaq_range rs[4] = {
		{ IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST }, /* 256 granules in ap[1] */
		{ 0xfee80000, 0xfef00fff }, /* overlaps MSI, adds 1 granule past it */
		{ 0x10000001, 0x10000002 }, /* outside every aperture */
		{ 32 * MiB + 1, 32 * MiB + G }, /* widened to 2 granules in ap[0] */
	};
	struct iovaq_space *sp = mk_space(ap, 2, rs, 4);
	struct iovaq_stats st = tu_space_stats(sp);
	uint64_t total = (64 * MiB) / G + (32 * MiB) / G;
	uint64_t reserved = 1 /* IOVA 0 */ + 256 + 1 + 2;

	cr_assert_eq(st.version, IOVAQ_STATS_VERSION);
	cr_assert_eq(st.granule, G);
	cr_assert_eq(st.total_granules, total, "total %" PRIu64 " != %" PRIu64, st.total_granules,
		     total);
	cr_assert_eq(st.reserved_granules, reserved, "reserved %" PRIu64 " != %" PRIu64,
		     st.reserved_granules, reserved);
	cr_assert_eq(st.free_granules, total - reserved);
	cr_assert_eq(st.allocated_granules, 0);
	cr_assert_eq(st.cached_granules, 0);
	cr_assert_eq(st.cache_allocs, 0);
	cr_assert_eq(st.cache_frees, 0);
	cr_assert_eq(st.space_allocs, 0);
	cr_assert_eq(st.space_frees, 0);

	/* The widened holes really are reserved: fixed allocations there are -EBUSY. */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 32 * MiB, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 32 * MiB + G, 1), -EBUSY);
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 32 * MiB - G, 1));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 32 * MiB + 2 * G, 1));
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0xfef00000, 1), -EBUSY);
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0xfef01000, 1));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, IOVAQ_X86_MSI_START - G, 1));

	st = tu_space_stats(sp);
	cr_assert_eq(st.allocated_granules, 4);
	cr_assert_eq(st.free_granules, total - reserved - 4);
	cr_assert_eq(st.space_allocs, 4);
	cr_assert_eq(iovaq_space_check(sp), 0);

	IOVAQ_OPTS(iovaq_stats, small);
	small.sz = sizeof(size_t);
	cr_assert_eq(iovaq_space_stats(sp, &small), -EINVAL, "stats sz too small");
	cr_assert_eq(iovaq_space_stats(sp, NULL), -EINVAL);
	cr_assert_eq(iovaq_space_stats(NULL, &st), -EINVAL);
	iovaq_space_destroy(sp);
}

Test(space_stats, counters_move)
{
	struct iovaq_space *sp = mk_space1(MiB, MiB + 16 * G - 1);
	iovaq_iova_t a = alloc_ok(sp, 4, IOVAQ_LIMIT_NONE);
	iovaq_iova_t b = alloc_ok(sp, 8, IOVAQ_LIMIT_NONE);
	struct iovaq_stats st = tu_space_stats(sp);
	uint64_t nodes0;

	cr_assert_eq(st.space_allocs, 2);
	cr_assert_eq(st.allocated_granules, 12);
	cr_assert_eq(st.free_granules, 4);
	nodes0 = st.tree_nodes;
	cr_assert_geq(nodes0, 2, "two live allocations need at least two tree nodes");

	iovaq_iova_t x;
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 8, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	st = tu_space_stats(sp);
	cr_assert_eq(st.space_alloc_fail, 1, "-ENOSPC must count in space_alloc_fail");

	EXPECT_OK(iovaq_space_free(sp, a, 4));
	st = tu_space_stats(sp);
	cr_assert_eq(st.space_frees, 1);
	cr_assert_eq(st.tree_nodes, nodes0 - 1, "a free removes exactly one tree node");
	EXPECT_OK(iovaq_space_free(sp, b, 8));
	st = tu_space_stats(sp);
	cr_assert_eq(st.allocated_granules, 0);
	cr_assert_eq(st.free_granules, 16);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_stats, filled_only_up_to_sz)
{
	struct iovaq_space *sp = mk_space1(MiB, 2 * MiB - 1);
	union {
		struct iovaq_stats st;
		unsigned char b[sizeof(struct iovaq_stats) + 64];
	} u;
	size_t sz = offsetof(struct iovaq_stats, cache_allocs);

	(void)alloc_ok(sp, 2, IOVAQ_LIMIT_NONE);
	memset(&u, 0xaa, sizeof(u));
	u.st.sz = sz;
	cr_assert_eq(iovaq_space_stats(sp, &u.st), 0, "an older, shorter stats struct");
	cr_assert_eq(u.st.allocated_granules, 2);
	cr_assert_eq(u.st.free_granules, 254);
	for (size_t i = sz; i < sizeof(u); i++)
		cr_assert_eq(u.b[i], 0xaa, "byte %zu written beyond sz %zu", i, sz);

	/* a newer caller's bigger struct: the known part filled, the rest not trusted */
	memset(&u, 0, sizeof(u));
	u.st.sz = sizeof(u);
	cr_assert_eq(iovaq_space_stats(sp, &u.st), 0, "a bigger stats struct must be accepted");
	cr_assert_eq(u.st.allocated_granules, 2);
	cr_assert_eq(u.st.version, IOVAQ_STATS_VERSION);
	iovaq_space_destroy(sp);
}

/* ------------------------------------------------------------------------------------ */
/* Allocation policy                                                                    */
/* ------------------------------------------------------------------------------------ */

Test(space_alloc, iova_zero_never_returned)
{
	struct iovaq_space *sp = mk_space1(0, 64 * G - 1);
	iovaq_iova_t iova;
	int n = 0;

	while (iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &iova) == 0) {
		cr_assert_neq(iova, 0, "IOVA 0 was handed out");
		cr_assert_eq(iova % G, 0);
		n++;
		cr_assert_leq(n, 63, "more than 63 granules from a 64-granule aperture");
	}
	cr_assert_eq(n, 63, "only %d of the 63 usable granules handed out", n);
	struct iovaq_stats st = tu_space_stats(sp);
	cr_assert_eq(st.free_granules, 0);
	cr_assert_eq(st.reserved_granules, 1);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 0, 1), -EINVAL);
	iovaq_space_destroy(sp);
}

Test(space_alloc, msi_hole_never_returned)
{
	struct iovaq_range ap = { 0xfe000000, 0xffffffff }; /* 8192 granules */
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	static const uint64_t sizes[] = { 1, 3, 16, 256, 7, 64 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct iovaq_space *sp = mk_space(&ap, 1, &msi, 1);
		uint64_t n = sizes[k], got = 0;
		iovaq_iova_t iova;

		while (iovaq_space_alloc(sp, n, IOVAQ_LIMIT_NONE, &iova) == 0) {
			cr_assert(!ranges_overlap(iova, n * G, IOVAQ_X86_MSI_START, 256 * G),
				  "size %" PRIu64 ": 0x%" PRIx64 " overlaps the MSI window", n,
				  iova);
			cr_assert(iova >= ap.start && iova + n * G - 1 <= ap.last);
			got += n;
		}
		/* Aligned sizes dividing the 32-MiB aperture fill it exactly. */
		if (tu_is_pow2(n))
			cr_assert_eq(got, 8192 - 256, "size %" PRIu64 ": filled %" PRIu64, n,
				     got);
		cr_assert_eq(iovaq_space_check(sp), 0);
		iovaq_space_destroy(sp);
	}
}

Test(space_alloc, pow2_naturally_aligned)
{
	struct iovaq_range ap = { 0, 16 * GiB - 1 };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	struct iovaq_space *sp = mk_space(&ap, 1, &msi, 1);

	/* Misalign the top first so that alignment has to be searched for. */
	(void)alloc_ok(sp, 1, IOVAQ_LIMIT_NONE);
	(void)alloc_ok(sp, 3, IOVAQ_LIMIT_NONE);
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k <= 16; k++) {
			uint64_t n = 1ULL << k;
			iovaq_iova_t iova = alloc_ok(sp, n, IOVAQ_LIMIT_NONE);

			cr_assert_eq(iova % (n * G), 0,
				     "%" PRIu64 " granules at 0x%" PRIx64 " not size-aligned", n,
				     iova);
			iova = alloc_ok(sp, n, 0xffffffff);
			cr_assert_eq(iova % (n * G), 0,
				     "%" PRIu64 " granules at 0x%" PRIx64 " (32-bit) not aligned", n,
				     iova);
			cr_assert_leq(iova + n * G - 1, 0xffffffff);
		}
	}
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, non_pow2_sizes)
{
	struct iovaq_space *sp = mk_space1(MiB, 2 * MiB - 1); /* 256 granules */
	iovaq_iova_t a, b, c, d;

	a = alloc_ok(sp, 3, IOVAQ_LIMIT_NONE);
	cr_assert_eq(a, 2 * MiB - 3 * G, "3 granules top-down must end at the aperture end");
	b = alloc_ok(sp, 5, IOVAQ_LIMIT_NONE);
	cr_assert_eq(b, a - 5 * G, "non-pow2 sizes are granule-aligned only: 0x%" PRIx64, b);
	c = alloc_ok(sp, 100, IOVAQ_LIMIT_NONE);
	cr_assert_eq(c, b - 100 * G);
	d = alloc_ok(sp, 4, IOVAQ_LIMIT_NONE);
	cr_assert_eq(d % (4 * G), 0);
	cr_assert_eq(d, (c - 4 * G) & ~(4 * G - 1), "4 must go to the highest aligned spot");
	cr_assert_eq(iovaq_space_check(sp), 0);
	EXPECT_OK(iovaq_space_free(sp, b, 5));
	EXPECT_OK(iovaq_space_free(sp, a, 3));
	EXPECT_OK(iovaq_space_free(sp, c, 100));
	EXPECT_OK(iovaq_space_free(sp, d, 4));
	cr_assert_eq(tu_space_stats(sp).allocated_granules, 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, top_down_order)
{
	struct iovaq_space *sp = mk_space1(MiB, 2 * MiB - 1);
	iovaq_iova_t top = 2 * MiB;

	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), top - G, "first 1 must be the top granule");
	/* granules top-1 taken; the highest 4-aligned block is [top-8, top-5] */
	cr_assert_eq(alloc_ok(sp, 4, IOVAQ_LIMIT_NONE), top - 8 * G);
	/* free above it: top-4, top-3, top-2 -> the highest aligned pair is [top-4, top-3] */
	cr_assert_eq(alloc_ok(sp, 2, IOVAQ_LIMIT_NONE), top - 4 * G);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), top - 2 * G, "a 1 fills the last gap");
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), top - 9 * G);
	/* 3 granules (not pow2): highest free run of 3 is [top-12, top-10] */
	cr_assert_eq(alloc_ok(sp, 3, IOVAQ_LIMIT_NONE), top - 12 * G);
	/* a free low in the space does not attract allocations: still top-down */
	iovaq_iova_t low = alloc_ok(sp, 1, MiB + 8 * G - 1);
	cr_assert_eq(low, MiB + 7 * G);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), top - 13 * G);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, limit_32bit)
{
	struct iovaq_range ap = { 0, 64 * GiB - 1 };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	struct iovaq_space *sp = mk_space(&ap, 1, &msi, 1);
	iovaq_iova_t iova;

	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 0xfffff000ULL);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 64 * GiB - G);
	for (int i = 0; i < 2000; i++) {
		uint64_t n = 1 + (uint64_t)(i % 37);

		iova = alloc_ok(sp, n, 0xffffffff);
		cr_assert_leq(iova + n * G - 1, 0xffffffffULL,
			      "range 0x%" PRIx64 "+%" PRIu64 " crosses the 32-bit limit", iova, n);
		cr_assert(!ranges_overlap(iova, n * G, IOVAQ_X86_MSI_START, 256 * G));
	}
	/* an unaligned limit: the last byte must still be <= limit */
	cr_assert_eq(alloc_ok(sp, 1, 0x12345678), 0x12344000ULL);
	cr_assert_eq(alloc_ok(sp, 2, 0x12345678), 0x12342000ULL);
	/* a limit exactly at a granule end */
	cr_assert_eq(alloc_ok(sp, 1, 0x20000fff), 0x20000000ULL);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, limit_selects_apertures)
{
	struct iovaq_range ap[3] = {
		{ 0x200000000ULL, 0x2ffffffffULL },
		{ 0x10000000, 0x1fffffff },
		{ 0x80000000, 0x80000fff }, /* one granule */
	};
	struct iovaq_space *sp = mk_space(ap, 3, NULL, 0);
	iovaq_iova_t iova;

	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, 0x0fffffff, &iova), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, 0, &iova), -EINVAL);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 0x2fffff000ULL);
	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 0x80000000ULL, "the single granule first");
	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 0x1ffff000ULL, "then the lower aperture");
	cr_assert_eq(alloc_ok(sp, 1, 0x10000fff), 0x10000000ULL,
		     "a limit at the first granule's end gives exactly that granule");
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, 0x10000fff, &iova), -ENOSPC);
	/* too big for the low apertures, fits the high one */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 0x20000, 0xffffffff, &iova), -ENOSPC);
	iova = alloc_ok(sp, 0x20000, IOVAQ_LIMIT_NONE);
	cr_assert_geq(iova, 0x200000000ULL);
	cr_assert_eq(iova % (0x20000 * G), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, aperture_at_top_of_address_space)
{
	struct iovaq_range ap = { UINT64_MAX - 16 * G + 1, UINT64_MAX };
	struct iovaq_space *sp = mk_space(&ap, 1, NULL, 0);
	iovaq_iova_t iova;

	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), UINT64_MAX - G + 1);
	cr_assert_eq(alloc_ok(sp, 4, IOVAQ_LIMIT_NONE), UINT64_MAX - 8 * G + 1);
	cr_assert_eq(alloc_ok(sp, 3, IOVAQ_LIMIT_NONE), UINT64_MAX - 4 * G + 1);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, 0xffffffff, &iova), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, UINT64_MAX - G + 1, 2), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, UINT64_MAX - G + 1, 1), -EBUSY);
	EXPECT_OK(iovaq_space_free(sp, UINT64_MAX - G + 1, 1));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, UINT64_MAX - G + 1, 1));
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 16, IOVAQ_LIMIT_NONE, &iova), -ENOSPC);
	cr_assert_eq(alloc_ok(sp, 8, IOVAQ_LIMIT_NONE), UINT64_MAX - 16 * G + 1);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, multiple_apertures_fill_top_down)
{
	struct iovaq_range ap[3] = {
		{ 0x40000, 0x4ffff }, /* 16 granules */
		{ 0x10000, 0x17fff }, /* 8 granules */
		{ 0x100000, 0x103fff }, /* 4 granules */
	};
	struct iovaq_space *sp = mk_space(ap, 3, NULL, 0);
	iovaq_iova_t prev = UINT64_MAX, iova;
	int n = 0;

	while (iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &iova) == 0) {
		cr_assert_lt(iova, prev, "allocation %d at 0x%" PRIx64 " not below 0x%" PRIx64, n,
			     iova, prev);
		int in = 0;
		for (int k = 0; k < 3; k++)
			in |= iova >= ap[k].start && iova <= ap[k].last;
		cr_assert(in, "0x%" PRIx64 " outside every aperture", iova);
		prev = iova;
		n++;
	}
	cr_assert_eq(n, 28);
	cr_assert_eq(prev, 0x10000);
	cr_assert_eq(tu_space_stats(sp).free_granules, 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, adjacent_apertures_consistent)
{
	/*
	 * Adjacent apertures [1 MiB, +4 granules) and [+4, +8). The header does not say whether
	 * they stay two apertures (then nothing may span them: alloc_fixed says "not entirely
	 * inside one aperture" is -EINVAL) or merge into one; alloc and alloc_fixed must agree.
	 */
	struct iovaq_range ap[2] = { { 0x100000, 0x103fff }, { 0x104000, 0x107fff } };
	struct iovaq_space *sp = mk_space(ap, 2, NULL, 0);
	struct tu_snap before = tu_space_snap(sp);
	iovaq_iova_t iova;
	int err = iovaq_space_alloc_fixed(sp, 0x102000, 4);

	cr_assert_eq(tu_space_stats(sp).total_granules, 8);
	if (err == -EINVAL) {
		struct tu_snap after = tu_space_snap(sp);

		tu_snap_same(&before, &after, "alloc_fixed across apertures", __FILE__, __LINE__);
		EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 5, IOVAQ_LIMIT_NONE, &iova), -ENOSPC);
		EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 8, IOVAQ_LIMIT_NONE, &iova), -ENOSPC);
		cr_assert_eq(alloc_ok(sp, 4, IOVAQ_LIMIT_NONE), 0x104000);
		cr_assert_eq(alloc_ok(sp, 4, IOVAQ_LIMIT_NONE), 0x100000);
	} else {
		cr_assert_eq(err, 0, "alloc_fixed across adjacent apertures: %d", err);
		cr_assert_eq(iovaq_space_check(sp), 0);
		EXPECT_OK(iovaq_space_free(sp, 0x102000, 4));
		/* merged: a range across the seam is fine for alloc too */
		cr_assert_eq(alloc_ok(sp, 8, IOVAQ_LIMIT_NONE), 0x100000);
	}
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_alloc, granule_512_and_1g)
{
	struct iovaq_range ap = { 0, 64 * 512 - 1 };
	struct iovaq_space *sp = mk_space_g(&ap, 1, NULL, 0, 512);

	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 63 * 512);
	cr_assert_eq(alloc_ok(sp, 8, IOVAQ_LIMIT_NONE), 48 * 512);
	cr_assert_eq(tu_space_stats(sp).total_granules, 64);
	iovaq_space_destroy(sp);

	ap = (struct iovaq_range){ 0, 1024 * GiB - 1 };
	sp = mk_space_g(&ap, 1, NULL, 0, GiB);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 1023 * GiB);
	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 3 * GiB);
	iovaq_iova_t x;
	/* below 4 GiB: granule 0 reserved, 3 taken -> no aligned pair left */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 2, 0xffffffff, &x), -ENOSPC);
	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 2 * GiB);
	cr_assert_eq(alloc_ok(sp, 1, 0xffffffff), 1 * GiB);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, 0xffffffff, &x), -ENOSPC);
	iovaq_space_destroy(sp);
}

/* ------------------------------------------------------------------------------------ */
/* Fixed allocations                                                                    */
/* ------------------------------------------------------------------------------------ */

Test(space_fixed, success_and_conflicts)
{
	struct iovaq_range ap[2] = { { 0, 0x1ffffffff }, { 0x400000000, 0x4000fffff } };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	struct iovaq_space *sp = mk_space(ap, 2, &msi, 1);
	iovaq_iova_t a;

	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0x10000000, 16));
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x10000000, 16), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x1000f000, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x0ffff000, 2), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x0f000000, 0x2000), -EBUSY);
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0x0ffff000, 1)); /* adjacent below */
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0x10010000, 1)); /* adjacent above */
	/* fixed does not need natural alignment: 4 granules at an odd granule */
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0x20001000, 4));
	/* conflicts with an ordinary allocation */
	a = alloc_ok(sp, 8, IOVAQ_LIMIT_NONE);
	cr_assert_eq(a, 0x4000f8000ULL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, a + 7 * G, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, a - G, 2), -EBUSY);
	/* holes: MSI window, IOVA 0 */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, IOVAQ_X86_MSI_START, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, IOVAQ_X86_MSI_LAST - 0xfff, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, IOVAQ_X86_MSI_START - G, 2), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0, 1), -EBUSY);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0, 16), -EBUSY);
	EXPECT_OK(iovaq_space_alloc_fixed(sp, IOVAQ_X86_MSI_LAST + 1, 1));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, G, 1));
	/* outside, straddling, misaligned, zero, overflowing */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x300000000ULL, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x1fffff000ULL, 2), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x3fffff000ULL, 2), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x400100000ULL, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x1ff000000ULL, 0x3000000), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x30000800, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x30000001, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x30000000, 0), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x30000000, UINT64_MAX), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(sp, 0x30000000, (UINT64_MAX / G) + 1),
			  -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc_fixed(NULL, 0x30000000, 1), -EINVAL);

	/* fixed ranges are freed like any other, with their exact size */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 0x10000000, 8), -EINVAL);
	EXPECT_OK(iovaq_space_free(sp, 0x10000000, 16));
	EXPECT_OK(iovaq_space_free(sp, 0x20001000, 4));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 0x10000000, 16));
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_fixed, top_down_skips_fixed)
{
	struct iovaq_space *sp = mk_space1(MiB, 2 * MiB - 1);

	EXPECT_OK(iovaq_space_alloc_fixed(sp, 2 * MiB - G, 1));
	EXPECT_OK(iovaq_space_alloc_fixed(sp, 2 * MiB - 4 * G, 1));
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 2 * MiB - 2 * G);
	cr_assert_eq(alloc_ok(sp, 2, IOVAQ_LIMIT_NONE), 2 * MiB - 6 * G);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), 2 * MiB - 3 * G);
	iovaq_space_destroy(sp);
}

/* ------------------------------------------------------------------------------------ */
/* Exhaustion, bad frees, bad sizes                                                     */
/* ------------------------------------------------------------------------------------ */

Test(space_errors, exhaustion_and_recovery)
{
	const iovaq_iova_t base = MiB;
	struct iovaq_space *sp = mk_space1(base, base + 64 * G - 1);
	iovaq_iova_t iova[64], x;

	for (int i = 0; i < 64; i++) {
		iova[i] = alloc_ok(sp, 1, IOVAQ_LIMIT_NONE);
		cr_assert_eq(iova[i], base + (uint64_t)(63 - i) * G);
	}
	cr_assert_eq(tu_space_stats(sp).free_granules, 0);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 2, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, base + 10 * G - 1, &x), -ENOSPC);

	/* free granule 20: a 1 fits again, right there */
	EXPECT_OK(iovaq_space_free(sp, base + 20 * G, 1));
	cr_assert_eq(tu_space_stats(sp).free_granules, 1);
	cr_assert_eq(alloc_ok(sp, 1, IOVAQ_LIMIT_NONE), base + 20 * G);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);

	/* granules 5 and 6 free: contiguous but no 2-aligned pair -> 2 is -ENOSPC */
	EXPECT_OK(iovaq_space_free(sp, base + 5 * G, 1));
	EXPECT_OK(iovaq_space_free(sp, base + 6 * G, 1));
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 2, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 3, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	/* ... and limit: granule 6 is above base + 6G - 1 */
	cr_assert_eq(alloc_ok(sp, 1, base + 6 * G - 1), base + 5 * G);
	EXPECT_OK(iovaq_space_free(sp, base + 5 * G, 1));
	EXPECT_OK(iovaq_space_free(sp, base + 7 * G, 1));
	/* 5, 6, 7 free: 2 goes to [6, 7], 3 would go to [5, 7] */
	cr_assert_eq(alloc_ok(sp, 2, IOVAQ_LIMIT_NONE), base + 6 * G);
	EXPECT_OK(iovaq_space_free(sp, base + 6 * G, 2));
	cr_assert_eq(alloc_ok(sp, 3, IOVAQ_LIMIT_NONE), base + 5 * G);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	EXPECT_OK(iovaq_space_free(sp, base + 5 * G, 3));

	for (int i = 0; i < 64; i++) {
		if (i == 63 - 5 || i == 63 - 6 || i == 63 - 7)
			continue;
		EXPECT_OK(iovaq_space_free(sp, iova[i], 1));
	}
	struct iovaq_stats st = tu_space_stats(sp);
	cr_assert_eq(st.free_granules, 64);
	cr_assert_eq(st.allocated_granules, 0);
	cr_assert_eq(alloc_ok(sp, 64, IOVAQ_LIMIT_NONE), base, "whole aperture after frees");
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(space_errors, bad_frees)
{
	struct iovaq_range ap = { 0, 8 * GiB - 1 };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	struct iovaq_space *sp = mk_space(&ap, 1, &msi, 1);
	iovaq_iova_t a = alloc_ok(sp, 4, IOVAQ_LIMIT_NONE);
	iovaq_iova_t b = alloc_ok(sp, 3, IOVAQ_LIMIT_NONE);
	iovaq_iova_t c = alloc_ok(sp, 1, IOVAQ_LIMIT_NONE);

	/* never allocated (free space), outside every aperture */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 0x10000000, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 0x10000000, 4), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 16 * GiB, 1), -EINVAL);
	/* wrong size */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a, 2), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a, 8), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a, 5), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, b, 4), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, b, 1), -EINVAL);
	/* inside an allocation, not at its start */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a + G, 3), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a + G, 1), -EINVAL);
	/* misaligned */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a + 1, 4), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, c + G / 2, 1), -EINVAL);
	/* n = 0 and absurd sizes */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, c, 0), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, c, UINT64_MAX), -EINVAL);
	/* reserved holes */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, 0, 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, IOVAQ_X86_MSI_START, 256), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, IOVAQ_X86_MSI_START, 1), -EINVAL);
	/* spanning two allocations */
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, b, 3 + 1), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(NULL, c, 1), -EINVAL);

	/* the real ones still free fine; then double frees fail */
	EXPECT_OK(iovaq_space_free(sp, a, 4));
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, a, 4), -EINVAL);
	EXPECT_OK(iovaq_space_free(sp, b, 3));
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, b, 3), -EINVAL);
	EXPECT_OK(iovaq_space_free(sp, c, 1));
	EXPECT_SPACE_FAIL(sp, iovaq_space_free(sp, c, 1), -EINVAL);
	cr_assert_eq(tu_space_stats(sp).allocated_granules, 0);
	iovaq_space_destroy(sp);
}

Test(space_errors, zero_and_overflowing_sizes)
{
	struct iovaq_range ap = { 0, 8 * GiB - 1 };
	struct iovaq_space *sp = mk_space(&ap, 1, NULL, 0);
	iovaq_iova_t x = 0x1234;

	iovaq_iova_t five = alloc_ok(sp, 5, IOVAQ_LIMIT_NONE);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 0, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, UINT64_MAX, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1ULL << 52, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, (UINT64_MAX / G) + 1, IOVAQ_LIMIT_NONE, &x),
			  -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, (1ULL << 63) + 1, IOVAQ_LIMIT_NONE, &x),
			  -EINVAL);
	cr_assert_eq(x, 0x1234, "*out written by a failing alloc");
	/* big but representable: simply does not fit */
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1ULL << 40, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, (1ULL << 21) + 1, IOVAQ_LIMIT_NONE, &x),
			  -ENOSPC);
	cr_assert_eq(x, 0x1234, "*out written by a failing alloc");
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, NULL), -EINVAL);
	EXPECT_SPACE_FAIL(sp, iovaq_space_alloc(NULL, 1, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	/* the upper half is still one allocation away once the 5 granules go */
	EXPECT_OK(iovaq_space_free(sp, five, 5));
	x = alloc_ok(sp, (1ULL << 20), IOVAQ_LIMIT_NONE);
	cr_assert_eq(x, 4 * GiB);
	iovaq_space_destroy(sp);
}

/* ------------------------------------------------------------------------------------ */
/* Metadata hooks                                                                       */
/* ------------------------------------------------------------------------------------ */

struct hook_ctx {
	long allocs, frees, bad_align, size_mismatch;
	long fail_after; /* -1: never */
	size_t live_bytes;
	struct {
		void *p;
		size_t size;
	} live[4096];
};

static void *hook_alloc(void *ctx, size_t size, size_t align)
{
	struct hook_ctx *h = ctx;
	void *p;

	if (!tu_is_pow2(align) || align > 4096)
		h->bad_align++;
	if (h->fail_after >= 0 && h->allocs >= h->fail_after)
		return NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1))
		return NULL;
	h->allocs++;
	h->live_bytes += size;
	for (int i = 0; i < 4096; i++) {
		if (!h->live[i].p) {
			h->live[i].p = p;
			h->live[i].size = size;
			break;
		}
	}
	return p;
}

static void hook_free(void *ctx, void *ptr, size_t size)
{
	struct hook_ctx *h = ctx;

	if (!ptr)
		return;
	h->frees++;
	for (int i = 0; i < 4096; i++) {
		if (h->live[i].p == ptr) {
			if (h->live[i].size != size)
				h->size_mismatch++;
			h->live_bytes -= h->live[i].size;
			h->live[i].p = NULL;
			break;
		}
	}
	free(ptr);
}

static struct hook_ctx hctx;

Test(space_hooks, balanced_and_aligned)
{
	struct iovaq_alloc_hooks hooks = { hook_alloc, hook_free, &hctx };
	struct iovaq_range ap = { 0, 8 * GiB - 1 };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1, .reserved = &msi,
		   .n_reserved = 1, .hooks = &hooks);
	struct iovaq_space *sp = NULL;

	memset(&hctx, 0, sizeof(hctx));
	hctx.fail_after = -1;
	EXPECT_OK(iovaq_space_create(&o, &sp));
	for (int i = 0; i < 1000; i++)
		(void)alloc_ok(sp, 1 + (uint64_t)(i % 5), IOVAQ_LIMIT_NONE);
	cr_assert_gt(hctx.allocs, 0, "1000 live allocations but the hooks were never called");
	struct iovaq_stats st = tu_space_stats(sp);
	cr_assert_gt(st.metadata_bytes, 0, "metadata_bytes is 0 with 1000 tree nodes");
	iovaq_space_destroy(sp); /* with live allocations: all metadata must go */
	cr_assert_eq(hctx.allocs, hctx.frees, "%ld hook allocations, %ld frees", hctx.allocs,
		     hctx.frees);
	cr_assert_eq(hctx.live_bytes, 0);
	cr_assert_eq(hctx.bad_align, 0, "align not a power of two <= 4096");
	cr_assert_eq(hctx.size_mismatch, 0, "free called with a size other than requested");
}

Test(space_hooks, enomem_leaves_state_unchanged)
{
	struct iovaq_alloc_hooks hooks = { hook_alloc, hook_free, &hctx };
	struct iovaq_range ap = { 0, 8 * GiB - 1 };
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1, .hooks = &hooks);
	int saw_enomem = 0;

	/* Let metadata fail after k allocations, for every k up to a working run. */
	for (long k = 0; k < 64; k++) {
		struct iovaq_space *sp = NULL;
		int err;

		memset(&hctx, 0, sizeof(hctx));
		hctx.fail_after = k;
		err = iovaq_space_create(&o, &sp);
		if (err) {
			cr_assert_eq(err, -ENOMEM, "create with failing hooks: %d", err);
			cr_assert_eq(hctx.allocs, hctx.frees, "create leaked after -ENOMEM");
			saw_enomem = 1;
			continue;
		}
		for (int i = 0; i < 200; i++) {
			iovaq_iova_t x;
			struct tu_snap before = tu_space_snap(sp);

			err = iovaq_space_alloc(sp, 1 + (uint64_t)(i % 3), IOVAQ_LIMIT_NONE, &x);
			if (err) {
				cr_assert_eq(err, -ENOMEM, "alloc with failing hooks: %d", err);
				cr_assert_eq(iovaq_space_check(sp), 0);
				struct tu_snap after = tu_space_snap(sp);
				tu_snap_same(&before, &after, "alloc -ENOMEM", __FILE__, __LINE__);
				saw_enomem = 1;
				break;
			}
		}
		iovaq_space_destroy(sp);
		cr_assert_eq(hctx.allocs, hctx.frees, "leak with fail_after %ld", k);
	}
	cr_assert(saw_enomem, "hooks that fail never produced -ENOMEM");
}

/* ------------------------------------------------------------------------------------ */
/* Walk                                                                                 */
/* ------------------------------------------------------------------------------------ */

struct walk_rec {
	int n, stop_at;
	iovaq_iova_t iova[256];
	uint64_t len[256];
};

static int walk_fn(void *arg, iovaq_iova_t iova, uint64_t n_granules)
{
	struct walk_rec *w = arg;

	if (w->n < 256) {
		w->iova[w->n] = iova;
		w->len[w->n] = n_granules;
	}
	w->n++;
	if (w->stop_at && w->n == w->stop_at)
		return 7;
	return 0;
}

Test(space_walk, address_order)
{
	struct iovaq_range ap[2] = { { 0, 4 * GiB - 1 }, { 16 * GiB, 17 * GiB - 1 } };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	struct iovaq_space *sp = mk_space(ap, 2, &msi, 1);
	struct {
		iovaq_iova_t iova;
		uint64_t n;
	} live[100];
	struct tu_rng r;
	struct walk_rec w;

	tu_rng_init(&r, 42);
	for (int i = 0; i < 100; i++) {
		live[i].n = 1 + tu_below(&r, 20);
		live[i].iova = alloc_ok(sp, live[i].n, (i % 3) ? IOVAQ_LIMIT_NONE : 0xffffffff);
	}
	/* free every third to make the order non-trivial */
	for (int i = 0; i < 100; i += 3) {
		EXPECT_OK(iovaq_space_free(sp, live[i].iova, live[i].n));
		live[i].n = 0;
	}
	memset(&w, 0, sizeof(w));
	cr_assert_eq(iovaq_space_walk(sp, walk_fn, &w), 0);
	cr_assert_eq(w.n, 66, "walk visited %d allocations, 66 live", w.n);
	for (int i = 1; i < w.n; i++)
		cr_assert_lt(w.iova[i - 1], w.iova[i], "walk not in address order at %d", i);
	for (int i = 0; i < 100; i++) {
		int found = 0;

		if (!live[i].n)
			continue;
		for (int j = 0; j < w.n; j++)
			if (w.iova[j] == live[i].iova) {
				cr_assert_eq(w.len[j], live[i].n, "walk reports a wrong size");
				found = 1;
			}
		cr_assert(found, "live allocation 0x%" PRIx64 " not visited", live[i].iova);
	}
	for (int j = 0; j < w.n; j++)
		cr_assert(!ranges_overlap(w.iova[j], w.len[j] * G, IOVAQ_X86_MSI_START, 256 * G) &&
				  w.iova[j] != 0,
			  "walk reported a hole");

	memset(&w, 0, sizeof(w));
	w.stop_at = 5;
	cr_assert_eq(iovaq_space_walk(sp, walk_fn, &w), 7, "walk must return fn's value");
	cr_assert_eq(w.n, 5, "walk went on after fn returned non-zero");
	cr_assert_eq(iovaq_space_walk(NULL, walk_fn, &w), -EINVAL);
	cr_assert_eq(iovaq_space_walk(sp, NULL, &w), -EINVAL);
	iovaq_space_destroy(sp);

	/* an empty space: no callback */
	sp = mk_space1(MiB, 2 * MiB - 1);
	memset(&w, 0, sizeof(w));
	cr_assert_eq(iovaq_space_walk(sp, walk_fn, &w), 0);
	cr_assert_eq(w.n, 0, "empty space walk reported %d allocations (holes?)", w.n);
	iovaq_space_destroy(sp);
}

/* ------------------------------------------------------------------------------------ */
/* JSON, version, strerror                                                              */
/* ------------------------------------------------------------------------------------ */

Test(misc, stats_json)
{
	struct iovaq_space *sp = mk_space1(MiB, 2 * MiB - 1);
	struct iovaq_stats st;
	char big[16384], small[16];
	int len, len0;

	(void)alloc_ok(sp, 3, IOVAQ_LIMIT_NONE);
	st = tu_space_stats(sp);
	len0 = iovaq_stats_json(&st, NULL, 0);
	cr_assert_gt(len0, 2, "measuring returned %d", len0);
	cr_assert_lt((size_t)len0, sizeof(big));
	len = iovaq_stats_json(&st, big, sizeof(big));
	cr_assert_eq(len, len0, "measure and write disagree: %d vs %d", len0, len);
	cr_assert_eq(strlen(big), (size_t)len);
	cr_assert_eq(big[0], '{', "JSON must be an object: %s", big);
	/* allow trailing whitespace/newline after the object */
	int end = len - 1;
	while (end > 0 && (big[end] == '\n' || big[end] == ' '))
		end--;
	cr_assert_eq(big[end], '}', "JSON must end with '}': %s", big);
	int braces = 0, quotes = 0;
	for (int i = 0; i < len; i++) {
		braces += big[i] == '{';
		braces -= big[i] == '}';
		quotes += big[i] == '"';
		cr_assert_geq(braces, 0, "unbalanced braces: %s", big);
	}
	cr_assert_eq(braces, 0, "unbalanced braces: %s", big);
	cr_assert_eq(quotes % 2, 0, "odd number of quotes: %s", big);

	const char *key = strstr(big, "\"free_granules\"");
	cr_assert_not_null(key, "no \"free_granules\" key: %s", big);
	key += strlen("\"free_granules\"");
	while (*key == ' ')
		key++;
	cr_assert_eq(*key, ':', "no ':' after the key: %s", big);
	key++;
	unsigned long long v = strtoull(key, NULL, 10);
	cr_assert_eq(v, st.free_granules, "free_granules %llu in JSON, %" PRIu64 " in stats", v,
		     st.free_granules);
	cr_assert_not_null(strstr(big, "\"allocated_granules\""), "%s", big);

	/* truncation: snprintf semantics */
	memset(small, 'x', sizeof(small));
	len = iovaq_stats_json(&st, small, sizeof(small));
	cr_assert_eq(len, len0, "a short buffer must still return the full length");
	cr_assert_eq(small[sizeof(small) - 1], '\0', "truncated output not NUL-terminated");
	cr_assert_eq(strncmp(small, big, sizeof(small) - 1), 0, "truncated text differs");
	memset(small, 'x', sizeof(small));
	cr_assert_eq(iovaq_stats_json(&st, small, 1), len0);
	cr_assert_eq(small[0], '\0');
	cr_assert_eq(small[1], 'x', "wrote past len");

	cr_assert_eq(iovaq_stats_json(NULL, big, sizeof(big)), -EINVAL);
	cr_assert_eq(iovaq_stats_json(&st, NULL, 10), -EINVAL);
	st.sz = sizeof(size_t);
	cr_assert_eq(iovaq_stats_json(&st, big, sizeof(big)), -EINVAL);
	iovaq_space_destroy(sp);
}

Test(misc, version)
{
	cr_assert_not_null(iovaq_version());
	cr_assert_str_eq(iovaq_version(), IOVAQ_VERSION_STRING);
	cr_assert_eq(iovaq_version_number(), (unsigned int)IOVAQ_VERSION_NUMBER);
}

Test(misc, strerror_never_null)
{
	for (int e = -300; e <= 300; e++) {
		const char *s = iovaq_strerror(e);

		cr_assert_not_null(s, "iovaq_strerror(%d) is NULL", e);
	}
	cr_assert_not_null(iovaq_strerror(INT_MAX));
	cr_assert_not_null(iovaq_strerror(INT_MIN + 1));
	cr_assert_not_null(iovaq_strerror(INT_MIN));
	cr_assert_gt(strlen(iovaq_strerror(-ENOSPC)), 0);
	cr_assert_str_eq(iovaq_strerror(-ENOSPC), iovaq_strerror(ENOSPC), "sign must be ignored");
	cr_assert_str_neq(iovaq_strerror(-ENOSPC), iovaq_strerror(-EINVAL));
	cr_assert_str_neq(iovaq_strerror(-EBUSY), iovaq_strerror(-E2BIG));
}

Test(misc, default_hooks)
{
	const struct iovaq_alloc_hooks *h = iovaq_default_alloc_hooks();

	cr_assert_not_null(h);
	cr_assert_not_null(h->alloc);
	cr_assert_not_null(h->free);
	cr_assert_eq(iovaq_default_alloc_hooks(), h, "default hooks must be static");
	void *p = h->alloc(h->ctx, 100, 64);
	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % 64, 0, "default alloc ignored the alignment");
	memset(p, 0xab, 100);
	h->free(h->ctx, p, 100);
	p = h->alloc(h->ctx, 8192, 4096);
	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % 4096, 0);
	h->free(h->ctx, p, 8192);
}
