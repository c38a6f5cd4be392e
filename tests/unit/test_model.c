// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Randomized model tests: the space (and the cache in front of it) against a trivially
 * correct reference, a bitmap of 2^16 granules over two apertures.
 *
 *  - aperture A: [0, 128 MiB): IOVA 0 (always reserved), a caller hole in the middle given
 *    with unaligned bytes (widened to granules), and a hole straddling A's end;
 *  - aperture B: [0xfc000000, 0x104000000): crosses 4 GiB and holds the x86 MSI window plus
 *    a hole that overlaps it; one more hole lies outside every aperture.
 *
 * The space promises "the highest suitable range below limit", so the reference computes
 * exactly that by scanning the bitmap and every successful allocation must match it; an
 * -ENOSPC must be confirmed by the same scan (no false -ENOSPC). The seed is printed and can
 * be overridden with IOVAQ_SEED; the operation count scales with IOVAQ_TEST_SCALE.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#define G ((uint64_t)IOVAQ_DEFAULT_GRANULE)
#define MiB ((uint64_t)1 << 20)

/* ---- the layout ------------------------------------------------------------------------ */

#define NBITS 0x10000
#define NWORDS (NBITS / 64)

struct map_ap {
	int64_t g0; /* first granule (IOVA / G) */
	int64_t n; /* granules */
	int64_t gi0; /* first bitmap index */
};

/* Highest aperture first: the scan order of a top-down allocator. */
static const struct map_ap maps[2] = {
	{ 0xfc000, 0x8000, 0x8000 }, /* B */
	{ 0, 0x8000, 0 }, /* A */
};

static const struct iovaq_range apertures[2] = {
	{ 0, 0x8000 * G - 1 },
	{ 0xfc000000ULL, 0x103ffffffULL },
};

static const struct iovaq_range holes[] = {
	{ 0x3000 * G + 5, 0x3100 * G - 100 }, /* widened to granules 0x3000..0x30ff */
	{ IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST },
	{ 0xfeef0000ULL, 0xfef10fffULL }, /* overlaps MSI, adds 0xfef00..0xfef10 */
	{ 0x20000000ULL, 0x2000ffffULL }, /* outside every aperture */
	{ 0x7ffe000ULL, 0x8001fffULL }, /* straddles A's end: 0x7ffe, 0x7fff inside */
};
#define N_HOLES (sizeof(holes) / sizeof(holes[0]))

/* ---- the reference ----------------------------------------------------------------------- */

struct ref {
	uint64_t used[NWORDS]; /* allocated (or user-held) or hole */
	uint64_t hole[NWORDS];
	uint32_t len[NBITS]; /* size of the live range starting here, 0 if none */
	uint32_t live[NBITS]; /* bitmap index of each live range's start */
	uint32_t live_pos[NBITS]; /* position in live[] of a start */
	uint32_t n_live;
	uint64_t n_used_alloc; /* granules allocated (not holes) */
	uint64_t n_total, n_holes;
};

static struct ref R;

static int bit(const uint64_t *bm, int64_t gi)
{
	return (int)((bm[gi >> 6] >> (gi & 63)) & 1);
}

static void set_bit(uint64_t *bm, int64_t gi)
{
	bm[gi >> 6] |= 1ULL << (gi & 63);
}

static void clr_bit(uint64_t *bm, int64_t gi)
{
	bm[gi >> 6] &= ~(1ULL << (gi & 63));
}

/* Bitmap index of an absolute granule, or -1 outside both apertures. */
static int64_t gi_of(int64_t g)
{
	for (int k = 0; k < 2; k++)
		if (g >= maps[k].g0 && g < maps[k].g0 + maps[k].n)
			return g - maps[k].g0 + maps[k].gi0;
	return -1;
}

static int64_t g_of(int64_t gi)
{
	for (int k = 0; k < 2; k++)
		if (gi >= maps[k].gi0 && gi < maps[k].gi0 + maps[k].n)
			return gi - maps[k].gi0 + maps[k].g0;
	return -1;
}

/* Aperture index holding absolute granule range [g, g + n), or -1. */
static int ap_of_range(int64_t g, int64_t n)
{
	for (int k = 0; k < 2; k++)
		if (g >= maps[k].g0 && g + n <= maps[k].g0 + maps[k].n)
			return k;
	return -1;
}

static void ref_init(void)
{
	memset(&R, 0, sizeof(R));
	set_bit(R.hole, 0); /* IOVA 0 */
	for (size_t h = 0; h < N_HOLES; h++) {
		int64_t first = (int64_t)(holes[h].start / G), last = (int64_t)(holes[h].last / G);

		for (int64_t g = first; g <= last; g++) {
			int64_t gi = gi_of(g);

			if (gi >= 0)
				set_bit(R.hole, gi);
		}
	}
	memcpy(R.used, R.hole, sizeof(R.used));
	R.n_total = NBITS;
	for (int64_t gi = 0; gi < NBITS; gi++)
		R.n_holes += (uint64_t)bit(R.hole, gi);
}

/*
 * Length of the run of granules in state @state that ends at @gi going down, not below @lo.
 * Word at a time, so that a scan costs O(words + runs) rather than O(granules).
 */
static int64_t run_down(int64_t gi, int64_t lo, int state)
{
	int64_t pos = gi;

	while (pos >= lo) {
		uint64_t w = R.used[pos >> 6];
		int b = (int)(pos & 63);
		uint64_t mask = b == 63 ? ~0ULL : ((1ULL << (b + 1)) - 1);
		uint64_t diff = (state ? ~w : w) & mask;

		if (diff) {
			pos = pos - b + (63 - __builtin_clzll(diff));
			break;
		}
		pos -= b + 1;
	}
	if (pos < lo - 1)
		pos = lo - 1;
	return gi - pos;
}

/*
 * The highest absolute granule s such that [s, s + n) lies in one aperture, is entirely free
 * in R.used, ends below @lim_excl (granule index, exclusive), and is n-aligned if n is a power
 * of two; -1 if there is none.
 */
static int64_t ref_find(int64_t n, uint64_t lim_excl)
{
	int p2 = tu_is_pow2((uint64_t)n);

	for (int k = 0; k < 2; k++) {
		const struct map_ap *a = &maps[k];
		int64_t off = a->gi0 - a->g0;
		uint64_t top = (uint64_t)(a->g0 + a->n);
		int64_t lo = a->gi0, i, run = 0;

		if (lim_excl < top)
			top = lim_excl;
		if ((int64_t)top - a->g0 < n)
			continue;
		i = (int64_t)top - 1 + off;
		while (i >= lo) {
			int st = bit(R.used, i);
			int64_t len = run_down(i, lo, st);

			if (st) {
				run = 0;
				i -= len;
				continue;
			}
			/* free block [i - len + 1, i] with @run free granules above it */
			int64_t s = i + run + 1 - n, blk_lo = i - len + 1;

			if (s > i)
				s = i;
			if (s >= blk_lo) {
				if (p2)
					s = (((s - off)) & ~(n - 1)) + off;
				if (s >= blk_lo)
					return s - off;
			}
			run += len;
			i -= len;
		}
	}
	return -1;
}

/* The same question answered the slow, obvious way: used to cross-check ref_find itself. */
static int64_t ref_find_naive(int64_t n, uint64_t lim_excl)
{
	for (int k = 0; k < 2; k++) {
		const struct map_ap *a = &maps[k];

		for (int64_t s = a->g0 + a->n - n; s >= a->g0; s--) {
			int ok = 1;

			if ((uint64_t)(s + n) > lim_excl)
				continue;
			if (tu_is_pow2((uint64_t)n) && (s & (n - 1)))
				continue;
			for (int64_t j = 0; j < n && ok; j++)
				ok = !bit(R.used, s - a->g0 + a->gi0 + j);
			if (ok)
				return s;
		}
	}
	return -1;
}

static void ref_take(int64_t gi, int64_t n, int record)
{
	for (int64_t j = 0; j < n; j++) {
		cr_assert(!bit(R.used, gi + j), "reference: granule index %" PRId64 " taken twice",
			  gi + j);
		set_bit(R.used, gi + j);
	}
	R.n_used_alloc += (uint64_t)n;
	if (record) {
		R.len[gi] = (uint32_t)n;
		R.live_pos[gi] = R.n_live;
		R.live[R.n_live++] = (uint32_t)gi;
	}
}

static void ref_release(int64_t gi, int64_t n)
{
	for (int64_t j = 0; j < n; j++)
		clr_bit(R.used, gi + j);
	R.n_used_alloc -= (uint64_t)n;
	uint32_t p = R.live_pos[gi], last = R.live[--R.n_live];

	R.live[p] = last;
	R.live_pos[last] = p;
	R.len[gi] = 0;
}

static int range_busy(int64_t gi, int64_t n)
{
	for (int64_t j = 0; j < n; j++)
		if (bit(R.used, gi + j))
			return 1;
	return 0;
}

/* ---- workload shape ------------------------------------------------------------------- */

static uint64_t pick_size(struct tu_rng *r)
{
	uint64_t x = tu_below(r, 100);

	if (x < 45)
		return 1;
	if (x < 65)
		return 2 + tu_below(r, 3); /* 2..4 */
	if (x < 82)
		return 5 + tu_below(r, 12); /* 5..16 */
	if (x < 94)
		return 17 + tu_below(r, 48); /* 17..64 */
	return 65 + tu_below(r, 236); /* 65..300 */
}

/* A limit and the exclusive granule bound it implies for a range's end. */
static iovaq_iova_t pick_limit(struct tu_rng *r, uint64_t *lim_excl)
{
	uint64_t x = tu_below(r, 100);
	iovaq_iova_t limit;

	if (x < 70) {
		*lim_excl = UINT64_MAX;
		return IOVAQ_LIMIT_NONE;
	}
	if (x < 85) {
		limit = 0xffffffffULL;
	} else {
		/* anywhere from 1 MiB up, often unaligned inside a granule */
		int64_t gi = 256 + (int64_t)tu_below(r, NBITS - 256);

		limit = (uint64_t)g_of(gi) * G + ((x & 1) ? G - 1 : tu_below(r, G));
	}
	*lim_excl = (limit + 1) / G;
	return limit;
}

/*
 * Alloc probability changes in phases so that the space regularly fills up and empties; a run
 * of @ops has about 50 phases (20000 ops each at full scale).
 */
static uint64_t phase_alloc_pct(uint64_t op, uint64_t ops)
{
	static const uint64_t pct[] = { 60, 80, 97, 40, 70, 20 };
	uint64_t len = ops / 50 < 2000 ? 2000 : ops / 50;

	return pct[(op / len) % (sizeof(pct) / sizeof(pct[0]))];
}

/* ---- the space model --------------------------------------------------------------------- */

static struct iovaq_space *mk_model_space(void)
{
	struct iovaq_space *sp = NULL;
	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = apertures, .n_apertures = 2,
		   .reserved = holes, .n_reserved = N_HOLES);
	int err = iovaq_space_create(&o, &sp);

	cr_assert_eq(err, 0, "create: %d", err);
	return sp;
}

static void expect_counts(struct iovaq_space *sp, uint64_t nodes0, uint64_t op)
{
	struct iovaq_stats st = tu_space_stats(sp);

	cr_assert_eq(st.total_granules, R.n_total, "op %" PRIu64 ": total %" PRIu64, op,
		     st.total_granules);
	cr_assert_eq(st.reserved_granules, R.n_holes, "op %" PRIu64 ": reserved %" PRIu64
		     " != %" PRIu64, op, st.reserved_granules, R.n_holes);
	cr_assert_eq(st.allocated_granules, R.n_used_alloc,
		     "op %" PRIu64 ": allocated %" PRIu64 " != reference %" PRIu64, op,
		     st.allocated_granules, R.n_used_alloc);
	cr_assert_eq(st.free_granules, R.n_total - R.n_holes - R.n_used_alloc,
		     "op %" PRIu64 ": free %" PRIu64 " != reference %" PRIu64, op,
		     st.free_granules, R.n_total - R.n_holes - R.n_used_alloc);
	cr_assert_eq(st.tree_nodes - nodes0, R.n_live,
		     "op %" PRIu64 ": %" PRIu64 " tree nodes beyond the holes, %u live", op,
		     st.tree_nodes - nodes0, R.n_live);
}

struct walk_cmp {
	uint64_t i, bad;
	iovaq_iova_t prev;
	uint32_t *sorted;
};

static int walk_cmp_fn(void *arg, iovaq_iova_t iova, uint64_t n)
{
	struct walk_cmp *w = arg;
	int64_t gi = gi_of((int64_t)(iova / G));

	if (w->i && iova <= w->prev)
		w->bad++;
	if (gi < 0 || w->i >= R.n_live || w->sorted[w->i] != (uint32_t)gi || R.len[gi] != n)
		w->bad++;
	w->prev = iova;
	w->i++;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

Test(model, space, .timeout = 600)
{
	uint64_t ops = tu_scaled(1000000, 10000);
	uint64_t seed = tu_seed("model::space", 0x10a9c0de2024ULL);
	struct tu_rng r;
	struct iovaq_space *sp;
	uint64_t nodes0, n_enospc = 0, n_alloc = 0, n_fixed = 0, n_bad = 0;

	tu_rng_init(&r, seed);
	ref_init();
	sp = mk_model_space();
	nodes0 = tu_space_stats(sp).tree_nodes;
	expect_counts(sp, nodes0, 0);

	for (uint64_t op = 1; op <= ops; op++) {
		uint64_t x = tu_below(&r, 100);
		uint64_t pa = phase_alloc_pct(op, ops);
		iovaq_iova_t iova = 0;
		int err;

		if (x < 4) {
			/* alloc_fixed, half the time at a granule known to be free */
			uint64_t n = 1 + (tu_below(&r, 4) ? tu_below(&r, 4) : tu_below(&r, 64));
			int64_t gi = (int64_t)tu_below(&r, NBITS);
			int misalign = tu_below(&r, 20) == 0;

			for (int t = 0; t < 8 && (x & 1) && bit(R.used, gi); t++)
				gi = (int64_t)tu_below(&r, NBITS);
			int64_t g = g_of(gi);
			iova = (uint64_t)g * G + (misalign ? G / 2 : 0);
			int k = ap_of_range(g, (int64_t)n);
			int busy = 0;
			for (int64_t j = 0; j < (int64_t)n && gi + j < NBITS; j++) {
				if (g_of(gi + j) != g + j)
					break;
				busy |= bit(R.used, gi + j);
			}
			struct tu_snap before = tu_space_snap(sp);
			err = iovaq_space_alloc_fixed(sp, iova, n);
			if (misalign || k < 0) {
				cr_assert(err == -EINVAL || (!misalign && busy && err == -EBUSY),
					  "op %" PRIu64 ": fixed 0x%" PRIx64 "+%" PRIu64
					  " (misaligned %d, outside) returned %d",
					  op, iova, n, misalign, err);
			} else if (busy) {
				cr_assert_eq(err, -EBUSY, "op %" PRIu64 ": fixed 0x%" PRIx64
					     "+%" PRIu64 " over a busy granule returned %d",
					     op, iova, n, err);
			} else {
				cr_assert_eq(err, 0, "op %" PRIu64 ": fixed 0x%" PRIx64 "+%" PRIu64
					     " on free granules returned %d",
					     op, iova, n, err);
				ref_take(gi, (int64_t)n, 1);
				n_fixed++;
			}
			if (err) {
				struct tu_snap after = tu_space_snap(sp);
				tu_snap_same(&before, &after, "failed alloc_fixed", __FILE__, __LINE__);
			}
		} else if (x < 7 && R.n_live) {
			/* a bad free of some kind */
			uint32_t gi = R.live[tu_below(&r, R.n_live)];
			uint64_t n = R.len[gi], bn = n;
			iovaq_iova_t bi = (uint64_t)g_of(gi) * G;

			switch (tu_below(&r, 6)) {
			case 0: /* wrong size */
				bn = n + 1 + tu_below(&r, 3);
				break;
			case 1:
				bn = n > 1 ? n - 1 : 2;
				break;
			case 2: /* inside the range, or a free/hole granule not starting a range */
				if (n > 1) {
					bi += G;
					bn = n - 1;
				} else {
					int64_t fg = (int64_t)tu_below(&r, NBITS);
					while (R.len[fg])
						fg = (fg + 1) % NBITS;
					bi = (uint64_t)g_of(fg) * G;
				}
				break;
			case 3:
				bn = 0;
				break;
			case 4: /* misaligned */
				bi += 8;
				break;
			default: /* a hole */
				bi = tu_below(&r, 2) ? 0 : IOVAQ_X86_MSI_START;
				bn = tu_below(&r, 2) ? 1 : 256;
				break;
			}
			struct tu_snap before = tu_space_snap(sp);
			err = iovaq_space_free(sp, bi, bn);
			cr_assert_eq(err, -EINVAL, "op %" PRIu64 ": bad free(0x%" PRIx64 ", %" PRIu64
				     ") of live 0x%" PRIx64 "+%" PRIu64 " returned %d",
				     op, bi, bn, (uint64_t)g_of(gi) * G, n, err);
			struct tu_snap after = tu_space_snap(sp);
			tu_snap_same(&before, &after, "bad free", __FILE__, __LINE__);
			n_bad++;
		} else if (x < 8) {
			/* zero or overflowing sizes */
			uint64_t bn = tu_below(&r, 2) ? 0 : (UINT64_MAX / G) + 1 + tu_below(&r, 1000);
			struct tu_snap before = tu_space_snap(sp);
			err = iovaq_space_alloc(sp, bn, IOVAQ_LIMIT_NONE, &iova);
			cr_assert_eq(err, -EINVAL, "op %" PRIu64 ": alloc of %" PRIu64 " returned %d",
				     op, bn, err);
			struct tu_snap after = tu_space_snap(sp);
			tu_snap_same(&before, &after, "bad alloc", __FILE__, __LINE__);
		} else if (tu_below(&r, 100) < pa || !R.n_live) {
			uint64_t n = pick_size(&r), lim_excl;
			iovaq_iova_t limit = pick_limit(&r, &lim_excl);
			int64_t want = ref_find((int64_t)n, lim_excl);

			if (op % 5000 == 0)
				cr_assert_eq(want, ref_find_naive((int64_t)n, lim_excl),
					     "op %" PRIu64 ": the reference disagrees with itself", op);
			err = iovaq_space_alloc(sp, n, limit, &iova);
			if (want < 0) {
				cr_assert_eq(err, -ENOSPC, "op %" PRIu64 ": alloc(%" PRIu64 ", limit 0x%"
					     PRIx64 ") returned %d (iova 0x%" PRIx64
					     "), the reference finds no room",
					     op, n, limit, err, iova);
				n_enospc++;
				continue;
			}
			cr_assert_eq(err, 0, "op %" PRIu64 ": alloc(%" PRIu64 ", limit 0x%" PRIx64
				     ") returned %d but 0x%" PRIx64 " is free (false -ENOSPC)",
				     op, n, limit, err, (uint64_t)want * G);
			cr_assert_eq(iova, (uint64_t)want * G,
				     "op %" PRIu64 ": alloc(%" PRIu64 ", limit 0x%" PRIx64 ") gave 0x%"
				     PRIx64 ", the highest suitable range starts at 0x%" PRIx64,
				     op, n, limit, iova, (uint64_t)want * G);
			/* redundant with the equality, but says what went wrong if ref_find did */
			cr_assert_leq(iova + n * G - 1, limit);
			if (tu_is_pow2(n))
				cr_assert_eq(iova % (n * G), 0);
			int64_t gi = gi_of(want);
			cr_assert(!range_busy(gi, (int64_t)n));
			ref_take(gi, (int64_t)n, 1);
			n_alloc++;
		} else {
			uint32_t gi = R.live[tu_below(&r, R.n_live)];
			uint64_t n = R.len[gi];

			iova = (uint64_t)g_of(gi) * G;
			err = iovaq_space_free(sp, iova, n);
			cr_assert_eq(err, 0, "op %" PRIu64 ": free(0x%" PRIx64 ", %" PRIu64 "): %d", op,
				     iova, n, err);
			ref_release(gi, (int64_t)n);
		}
		if (op % 1000 == 0) {
			err = iovaq_space_check(sp);
			cr_assert_eq(err, 0, "op %" PRIu64 ": iovaq_space_check = %d", op, err);
			expect_counts(sp, nodes0, op);
		}
	}
	fprintf(stderr, "model::space: %" PRIu64 " ops, %" PRIu64 " allocs, %" PRIu64
		" fixed, %" PRIu64 " -ENOSPC, %" PRIu64 " bad frees, %u live at end\n",
		ops, n_alloc, n_fixed, n_enospc, n_bad, R.n_live);
	cr_assert_gt(n_enospc, 0, "the workload never filled the space: test too weak");
	cr_assert_gt(n_alloc, ops / 10);

	/* the walk reports exactly the reference's live ranges, in address order */
	static uint32_t sorted[NBITS];
	memcpy(sorted, R.live, R.n_live * sizeof(uint32_t));
	/* bitmap index order is address order here: A (low) maps below B (high) */
	qsort(sorted, R.n_live, sizeof(uint32_t), cmp_u32);
	struct walk_cmp w = { .sorted = sorted };
	cr_assert_eq(iovaq_space_walk(sp, walk_cmp_fn, &w), 0);
	cr_assert_eq(w.i, R.n_live, "walk visited %" PRIu64 ", %u live", w.i, R.n_live);
	cr_assert_eq(w.bad, 0, "walk disagrees with the reference %" PRIu64 " times", w.bad);

	while (R.n_live) {
		uint32_t gi = R.live[R.n_live - 1];
		uint64_t n = R.len[gi];

		EXPECT_OK(iovaq_space_free(sp, (uint64_t)g_of(gi) * G, n));
		ref_release(gi, (int64_t)n);
	}
	expect_counts(sp, nodes0, ops + 1);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

/* ---- the cache model --------------------------------------------------------------------- */

/*
 * The reference knows only what the test holds (rounded to the class size): cached IOVAs are
 * the cache's business. Each result must be aligned, inside one aperture, below the limit and
 * disjoint from holes and from every range the test holds. An -ENOSPC must be real: the cache
 * returns everything it holds to the space before giving up (single thread: everything is
 * reachable), so the reference must find no room either.
 */
static void cache_model(uint32_t flags, uint64_t base_ops, uint64_t seed_dflt, const char *name)
{
	uint64_t ops = tu_scaled(base_ops, 10000);
	uint64_t seed = tu_seed(name, seed_dflt);
	struct tu_rng r;
	struct iovaq_space *sp = mk_model_space();
	struct iovaq_cache *c = NULL;
	IOVAQ_OPTS(iovaq_cache_opts, co, .max_cached_granules = 64, .flags = flags);
	static uint64_t req[NBITS]; /* requested size of the range held at a start */
	uint64_t held = 0, n_enospc = 0, n_alloc = 0;
	const int checked = !!(flags & IOVAQ_CACHE_CHECKED);
	int err;

	tu_pin_cpu();
	tu_rng_init(&r, seed);
	ref_init();
	memset(req, 0, sizeof(req));
	err = iovaq_cache_create(sp, &co, &c);
	cr_assert_eq(err, 0, "cache create: %d", err);

	for (uint64_t op = 1; op <= ops; op++) {
		uint64_t x = tu_below(&r, 100);
		iovaq_iova_t iova = 0;

		if (x < 3 && R.n_live) {
			/* bad frees: cheap ones always, record-based ones in checked mode */
			uint32_t gi = R.live[tu_below(&r, R.n_live)];
			uint64_t rn = R.len[gi], n = req[gi], bn = n;
			iovaq_iova_t bi = (uint64_t)g_of(gi) * G;
			int kind = (int)tu_below(&r, checked ? 5 : 3);

			if (kind == 0 && rn == 1)
				kind = 2;
			switch (kind) {
			case 0: /* misaligned for its class */
				bi += G;
				break;
			case 1:
				bi += 1;
				break;
			case 2: /* outside every aperture */
				bi = 0x200000000ULL + tu_below(&r, 1000) * 64 * G;
				break;
			case 3: /* wrong size: another class, or another above-max size */
				bn = rn <= 64 ? (rn > 1 ? rn / 2 : 2) : rn + 1;
				break;
			default: { /* double free: free it, then again */
				EXPECT_OK(iovaq_cache_free(c, bi, n));
				ref_release(gi, (int64_t)rn);
				req[gi] = 0;
				held -= rn;
				break;
			}
			}
			struct tu_snap before = tu_cache_snap(c);
			err = iovaq_cache_free(c, bi, bn);
			cr_assert_eq(err, -EINVAL, "op %" PRIu64 ": bad free kind %d (0x%" PRIx64
				     ", %" PRIu64 ") of 0x%" PRIx64 "+%" PRIu64 " returned %d",
				     op, kind, bi, bn, (uint64_t)g_of(gi) * G, n, err);
			struct tu_snap after = tu_cache_snap(c);
			tu_snap_same(&before, &after, "bad cache free", __FILE__, __LINE__);
		} else if (tu_below(&r, 100) < phase_alloc_pct(op, ops) || !R.n_live) {
			uint64_t n = pick_size(&r), lim_excl;
			uint64_t rn = n <= 64 ? tu_roundup_pow2(n) : n;
			iovaq_iova_t limit = pick_limit(&r, &lim_excl);

			err = iovaq_cache_alloc(c, n, limit, &iova);
			if (err == -ENOSPC) {
				int64_t want = ref_find((int64_t)rn, lim_excl);

				cr_assert_lt(want, 0, "op %" PRIu64 ": cache alloc(%" PRIu64 ", limit 0x%"
					     PRIx64 ") gave -ENOSPC but 0x%" PRIx64
					     " is free once the cache is drained",
					     op, n, limit, (uint64_t)want * G);
				n_enospc++;
				continue;
			}
			cr_assert_eq(err, 0, "op %" PRIu64 ": cache alloc(%" PRIu64 ", 0x%" PRIx64
				     "): %d", op, n, limit, err);
			int64_t g = (int64_t)(iova / G);
			cr_assert_eq(iova % G, 0);
			if (tu_is_pow2(rn))
				cr_assert_eq(iova % (rn * G), 0, "op %" PRIu64 ": 0x%" PRIx64
					     " not aligned to %" PRIu64 " granules", op, iova, rn);
			cr_assert_leq(iova + rn * G - 1, limit, "op %" PRIu64 ": 0x%" PRIx64 "+%"
				      PRIu64 " beyond limit 0x%" PRIx64, op, iova, rn, limit);
			cr_assert_geq(ap_of_range(g, (int64_t)rn), 0,
				      "op %" PRIu64 ": 0x%" PRIx64 "+%" PRIu64 " not inside an aperture",
				      op, iova, rn);
			int64_t gi = gi_of(g);
			for (int64_t j = 0; j < (int64_t)rn; j++)
				cr_assert(!bit(R.used, gi + j), "op %" PRIu64 ": 0x%" PRIx64 "+%" PRIu64
					  " overlaps %s at 0x%" PRIx64,
					  op, iova, rn, bit(R.hole, gi + j) ? "a hole" : "a held range",
					  (uint64_t)(g + j) * G);
			ref_take(gi, (int64_t)rn, 1);
			req[gi] = n;
			held += rn;
			n_alloc++;
		} else {
			uint32_t gi = R.live[tu_below(&r, R.n_live)];
			uint64_t rn = R.len[gi];

			iova = (uint64_t)g_of(gi) * G;
			err = iovaq_cache_free(c, iova, req[gi]);
			cr_assert_eq(err, 0, "op %" PRIu64 ": cache free(0x%" PRIx64 ", %" PRIu64
				     "): %d", op, iova, req[gi], err);
			ref_release(gi, (int64_t)rn);
			req[gi] = 0;
			held -= rn;
		}
		if (op % 1000 == 0) {
			err = iovaq_cache_check(c);
			cr_assert_eq(err, 0, "op %" PRIu64 ": iovaq_cache_check = %d", op, err);
			struct iovaq_stats st = tu_cache_stats(c);
			cr_assert_eq(st.allocated_granules, st.cached_granules + held,
				     "op %" PRIu64 ": space allocated %" PRIu64 " != cached %" PRIu64
				     " + held %" PRIu64, op, st.allocated_granules,
				     st.cached_granules, held);
			cr_assert_eq(st.free_granules, R.n_total - R.n_holes - st.allocated_granules);
		}
	}
	fprintf(stderr, "%s: %" PRIu64 " ops, %" PRIu64 " allocs, %" PRIu64 " -ENOSPC, %u live\n",
		name, ops, n_alloc, n_enospc, R.n_live);
	cr_assert_gt(n_enospc, 0, "the workload never filled the space: test too weak");

	iovaq_cache_drain(c);
	struct iovaq_stats st = tu_cache_stats(c);
	cr_assert_eq(st.cached_granules, 0);
	cr_assert_eq(st.free_granules, R.n_total - R.n_holes - held,
		     "after drain: free %" PRIu64 " != apertures - holes - held %" PRIu64,
		     st.free_granules, R.n_total - R.n_holes - held);
	cr_assert_eq(iovaq_cache_check(c), 0);
	while (R.n_live) {
		uint32_t gi = R.live[R.n_live - 1];

		EXPECT_OK(iovaq_cache_free(c, (uint64_t)g_of(gi) * G, req[gi]));
		ref_release(gi, (int64_t)R.len[gi]);
	}
	iovaq_cache_drain(c);
	st = tu_cache_stats(c);
	cr_assert_eq(st.allocated_granules, 0, "%" PRIu64 " granules lost", st.allocated_granules);
	cr_assert_eq(iovaq_cache_check(c), 0);
	iovaq_cache_destroy(c);
	cr_assert_eq(iovaq_space_check(sp), 0);
	iovaq_space_destroy(sp);
}

Test(model, cache, .timeout = 600)
{
	cache_model(0, 1000000, 0xcace0001ULL, "model::cache");
}

Test(model, cache_no_front_checked, .timeout = 600)
{
	cache_model(IOVAQ_CACHE_NO_FRONT | IOVAQ_CACHE_CHECKED, 200000, 0xcace0002ULL,
		    "model::cache_no_front_checked");
}
