// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer target: random sequences of space and magazine-cache calls against a bitmap model.
 *
 * The input's first bytes choose the space (two apertures, a few holes, 256 to 1279 granules
 * in all) and the cache (magazine size, whether the per-thread front is on); then every three
 * bytes are one call: cache or space alloc (any size, with or without a limit), alloc_fixed
 * anywhere, a free of something live, a free that must fail (wrong size, double, never
 * allocated), a drain. After every call the model checks that:
 *
 *   - a successful allocation lies inside one aperture, outside every hole, below its limit,
 *     overlaps nothing live, and a power-of-two size is naturally aligned;
 *   - -ENOSPC from the space is true: no aligned run of free granules of that size exists
 *     below the limit (the cache may return -ENOSPC only after the same is true of the tree
 *     once its cached IOVAs are flushed back, which it does itself);
 *   - a failed call changes nothing: iovaq_space_check()/iovaq_cache_check() pass and the
 *     space's allocated-granule count equals the model's (live plus cached).
 *
 * A failure aborts with a message naming the step.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>

#define G 4096ull
#define BASE (1ull << 32)	/* the first aperture starts at 4 GiB */
#define MAX_GRANULES 1280
#define MAX_LIVE 256
#define MAX_STEPS 1024

struct live {
	iovaq_iova_t iova;
	uint64_t n;	/* granules requested (what a free passes) */
	uint64_t span;	/* granules the space holds for it (the cache rounds up) */
	int cached;	/* from the cache: freed through it */
};

static struct {
	struct iovaq_space *sp;
	struct iovaq_cache *c;
	uint8_t used[MAX_GRANULES];	/* model: 1 live, 2 hole or outside the apertures */
	uint64_t span;			/* granules from BASE covered by the model */
	struct live live[MAX_LIVE];
	int n_live;
	int checked;			/* IOVAQ_CACHE_CHECKED */
	unsigned int step;
} F;

#define FAIL(...)                                                                                \
	do {                                                                                     \
		fprintf(stderr, "fuzz_space: step %u: ", F.step);                                \
		fprintf(stderr, __VA_ARGS__);                                                    \
		fputc('\n', stderr);                                                             \
		abort();                                                                         \
	} while (0)

static uint64_t gidx(iovaq_iova_t iova)
{
	return (iova - BASE) / G;
}

/* The cache's size classes: every request here is rounded up to a power of two. */
#define MAX_CLASS 128

static uint64_t pow2_up(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/*
 * A live range must be inside the modelled span and free in the model; one the allocator
 * placed (not @fixed) must be aligned to its size if that is a power of two.
 */
static void take(iovaq_iova_t iova, uint64_t req, iovaq_iova_t limit, int cached, int fixed)
{
	uint64_t n = cached ? pow2_up(req) : req;

	if (iova < BASE || (iova - BASE) % G || gidx(iova) + n > F.span)
		FAIL("allocation 0x%llx+%llu outside the apertures", (unsigned long long)iova,
		     (unsigned long long)n);
	if (iova + n * G - 1 > limit)
		FAIL("allocation 0x%llx+%llu above the limit 0x%llx", (unsigned long long)iova,
		     (unsigned long long)n, (unsigned long long)limit);
	if (!fixed && !(n & (n - 1)) && (iova / G) % n)
		FAIL("a %llu-granule allocation at 0x%llx is not naturally aligned",
		     (unsigned long long)n, (unsigned long long)iova);
	for (uint64_t i = 0; i < n; i++)
		if (F.used[gidx(iova) + i])
			FAIL("allocation 0x%llx+%llu overlaps %s at granule %llu",
			     (unsigned long long)iova, (unsigned long long)n,
			     F.used[gidx(iova) + i] == 1 ? "a live range" : "a hole",
			     (unsigned long long)(gidx(iova) + i));
	for (uint64_t i = 0; i < n; i++)
		F.used[gidx(iova) + i] = 1;
	F.live[F.n_live++] = (struct live){ iova, req, n, cached };
}

static void drop(int k)
{
	for (uint64_t i = 0; i < F.live[k].span; i++)
		F.used[gidx(F.live[k].iova) + i] = 0;
	F.live[k] = F.live[--F.n_live];
}

/* Is there an aligned free run of @n granules ending at or below @limit, in the model? */
static int fits(uint64_t n, iovaq_iova_t limit)
{
	uint64_t align = (n & (n - 1)) ? 1 : n;

	for (uint64_t g = 0; g + n <= F.span; g++) {
		uint64_t i;

		if (((BASE / G) + g) % align)
			continue;
		if (BASE + (g + n) * G - 1 > limit)
			break;
		for (i = 0; i < n && !F.used[g + i]; i++)
			;
		if (i == n)
			return 1;
	}
	return 0;
}

/* The library's own invariant checks, and its granule count against the model's. */
static void check(void)
{
	IOVAQ_OPTS(iovaq_stats, st);
	uint64_t live = 0;
	int err = iovaq_space_check(F.sp);

	if (err)
		FAIL("iovaq_space_check: %d", err);
	err = iovaq_cache_check(F.c);
	if (err)
		FAIL("iovaq_cache_check: %d", err);
	if (iovaq_cache_stats(F.c, &st))
		FAIL("stats");
	for (int k = 0; k < F.n_live; k++)
		live += F.live[k].span;
	if (st.allocated_granules != live + st.cached_granules)
		FAIL("the space holds %llu granules: %llu live + %llu cached expected",
		     (unsigned long long)st.allocated_granules, (unsigned long long)live,
		     (unsigned long long)st.cached_granules);
}

static void setup(const uint8_t *d, size_t size)
{
	uint8_t c[6] = { 0 };
	uint64_t a1, gap, a2;

	memcpy(c, d, size < sizeof(c) ? size : sizeof(c));
	a1 = 128 + c[0] * 2ull;			/* first aperture: 128..638 granules */
	gap = c[1] & 1 ? 0 : 1 + (c[1] >> 1);	/* 0: adjacent apertures (merged) */
	a2 = 128 + c[2] * 2ull;
	if (a1 + gap + a2 > MAX_GRANULES)
		a2 = MAX_GRANULES - a1 - gap;
	F.span = a1 + gap + a2;
	memset(F.used, 2, sizeof(F.used));
	memset(F.used, 0, a1);
	memset(F.used + a1 + gap, 0, a2);
	{
		struct iovaq_range ap[2] = { { BASE, BASE + a1 * G - 1 },
					     { BASE + (a1 + gap) * G, BASE + (a1 + gap + a2) * G - 1 } };
		/* Holes: one inside the first aperture, one straddling the second's start. */
		uint64_t h1 = c[3] % a1, h1n = 1 + (c[3] >> 5);
		uint64_t h2 = a1 + gap + (c[4] & 7);
		struct iovaq_range holes[2] = { { BASE + h1 * G, BASE + (h1 + h1n) * G - 1 },
						{ BASE + (h2 - 2) * G + 123, BASE + h2 * G } };
		IOVAQ_OPTS(iovaq_space_opts, so, .apertures = ap, .n_apertures = 2,
			   .reserved = holes, .n_reserved = 2);
		IOVAQ_OPTS(iovaq_cache_opts, co, .max_cached_granules = MAX_CLASS,
			   .depot_max = c[5] & 3, .front_cap = 1 + (c[5] >> 2 & 15),
			   .n_cpus = 1 + (c[5] >> 6 & 1),
			   .flags = ((c[5] & 0x80) ? IOVAQ_CACHE_CHECKED : 0) |
				    ((c[4] & 0x80) ? IOVAQ_CACHE_NO_FRONT : 0));

		for (uint64_t i = h1; i < h1 + h1n && i < F.span; i++)
			F.used[i] = 2;
		for (uint64_t i = h2 - 2; i <= h2 && i < F.span; i++)	/* widened outwards */
			F.used[i] = 2;
		if (iovaq_space_create(&so, &F.sp))
			FAIL("space create");
		if (iovaq_cache_create(F.sp, &co, &F.c))
			FAIL("cache create");
	}
	F.n_live = 0;
	F.checked = !!(c[5] & 0x80);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 6;

	setup(data, size);
	F.step = 0;
	check();
	for (F.step = 0; pos + 3 <= size && F.step < MAX_STEPS; F.step++, pos += 3) {
		unsigned int op = data[pos], a = data[pos + 1], b = data[pos + 2];
		uint64_t n = 1 + (a & 7) * (a & 0x80 ? 9 : 1) + ((a >> 3) & 3) * (a & 8 ? 16 : 0);
		iovaq_iova_t limit = (b & 1) ? BASE + (uint64_t)b * 5 * G - 1 : IOVAQ_LIMIT_NONE;
		iovaq_iova_t iova = 0;
		int err, k;

		if ((op & 7) < 4 && F.n_live == MAX_LIVE)
			op = 4;
		/* A checked cache accounts for every allocation: none around it. */
		if (F.checked && ((op & 7) == 2 || (op & 7) == 3))
			op = 0;
		switch (op & 7) {
		case 0:
		case 1:
			err = iovaq_cache_alloc(F.c, n, limit, &iova);
			if (!err)
				take(iova, n, limit, 1, 0);
			else if (err == -ENOSPC && fits(pow2_up(n), limit))
				FAIL("cache alloc of %llu below 0x%llx: -ENOSPC, but it fits",
				     (unsigned long long)n, (unsigned long long)limit);
			else if (err != -ENOSPC && err != -EINVAL)
				FAIL("cache alloc: %d", err);
			break;
		case 2:
			err = iovaq_space_alloc(F.sp, n, limit, &iova);
			if (!err)
				take(iova, n, limit, 0, 0);
			else if (err != -ENOSPC && err != -EINVAL)
				FAIL("space alloc: %d", err);
			/* The cache holds granules the model counts free: no exact -ENOSPC here. */
			break;
		case 3:
			iova = BASE + (uint64_t)((a << 8 | b) % (F.span + 8)) * G;
			err = iovaq_space_alloc_fixed(F.sp, iova, n);
			if (!err)
				take(iova, n, IOVAQ_LIMIT_NONE, 0, 1);
			else if (err != -EBUSY && err != -EINVAL)
				FAIL("alloc_fixed: %d", err);
			break;
		case 4:
		case 5:
			if (!F.n_live)
				break;
			k = (int)(b % (unsigned int)F.n_live);
			err = F.live[k].cached ? iovaq_cache_free(F.c, F.live[k].iova, F.live[k].n)
					       : iovaq_space_free(F.sp, F.live[k].iova, F.live[k].n);
			if (err)
				FAIL("free of a live range 0x%llx+%llu: %d",
				     (unsigned long long)F.live[k].iova,
				     (unsigned long long)F.live[k].n, err);
			drop(k);
			break;
		case 6:
			/* Frees that must fail and change nothing. */
			if (F.n_live && !F.live[b % (unsigned int)F.n_live].cached) {
				struct live *l = &F.live[b % (unsigned int)F.n_live];

				if (iovaq_space_free(F.sp, l->iova, l->n + 1) != -EINVAL)
					FAIL("space free with a wrong size did not fail");
			}
			if (iovaq_space_free(F.sp, BASE + (uint64_t)a * G + 1, 1) != -EINVAL)
				FAIL("misaligned space free did not fail");
			if (iovaq_space_free(F.sp, 0, 1) != -EINVAL)
				FAIL("free of the reserved IOVA 0 did not fail");
			break;
		default:
			iovaq_cache_drain(F.c);
			break;
		}
		check();
	}
	while (F.n_live) {
		struct live *l = &F.live[0];
		int err = l->cached ? iovaq_cache_free(F.c, l->iova, l->n)
				    : iovaq_space_free(F.sp, l->iova, l->n);

		if (err)
			FAIL("final free: %d", err);
		drop(0);
	}
	check();
	iovaq_cache_destroy(F.c);
	{
		/* With everything freed, the whole modelled span is free again. */
		int err = iovaq_space_alloc_fixed(F.sp, BASE, 1);

		if (F.used[0] == 0 && err)
			FAIL("granule 0 of the span not free at the end: %d", err);
	}
	iovaq_space_destroy(F.sp);
	return 0;
}
