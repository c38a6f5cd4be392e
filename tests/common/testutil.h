/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Shared helpers for the Criterion test tiers (unit, stress): the run-size scale, the seed,
 * a small deterministic PRNG, CPU pinning, and snapshots of the counters that must not move
 * when a call fails ("Bad input ... leaves the state unchanged", issue 2).
 *
 * Include after defining _GNU_SOURCE (sched_getcpu, sched_setaffinity).
 */
#ifndef IOVAQ_TESTUTIL_H
#define IOVAQ_TESTUTIL_H

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <iovaq/iovaq.h>

/* IOVAQ_TEST_SCALE multiplies iteration counts: 1 by default, 0.1 under TSan. */
static inline double tu_scale(void)
{
	const char *s = getenv("IOVAQ_TEST_SCALE");
	double v;

	if (!s || !*s)
		return 1.0;
	v = strtod(s, NULL);
	return v > 0 ? v : 1.0;
}

/* @base scaled by IOVAQ_TEST_SCALE, never below @min. */
static inline uint64_t tu_scaled(uint64_t base, uint64_t min)
{
	double v = (double)base * tu_scale();

	return v < (double)min ? min : (uint64_t)v;
}

/* The seed: IOVAQ_SEED (any strtoull base) or @dflt; printed so a failure can be replayed. */
static inline uint64_t tu_seed(const char *what, uint64_t dflt)
{
	const char *s = getenv("IOVAQ_SEED");
	uint64_t seed = (s && *s) ? strtoull(s, NULL, 0) : dflt;

	fprintf(stderr, "%s: seed 0x%" PRIx64 " (override with IOVAQ_SEED)\n", what, seed);
	return seed;
}

/* xoshiro256** seeded by splitmix64: fast, deterministic, good enough for tests. */
struct tu_rng {
	uint64_t s[4];
};

static inline uint64_t tu_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void tu_rng_init(struct tu_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = tu_splitmix(&seed);
}

static inline uint64_t tu_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t tu_rand(struct tu_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = tu_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = tu_rotl(s[3], 45);
	return res;
}

/* Uniform in [0, n), n > 0 (modulo bias is irrelevant here). */
static inline uint64_t tu_below(struct tu_rng *r, uint64_t n)
{
	return tu_rand(r) % n;
}

static inline int tu_is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static inline uint64_t tu_roundup_pow2(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

/*
 * Pin the calling thread to the CPU it runs on, so that per-CPU slot behaviour (which slot a
 * free lands in, which slot the next alloc looks at) is deterministic within one test.
 */
static inline void tu_pin_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET((size_t)cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

/* The counters that a failed call must leave unchanged. */
struct tu_snap {
	uint64_t free_granules;
	uint64_t allocated_granules;
	uint64_t cached_granules;
	uint64_t tree_nodes;
	uint64_t cache_frees;
	uint64_t class_cached[IOVAQ_CACHE_MAX_CLASSES];
	uint64_t class_frees[IOVAQ_CACHE_MAX_CLASSES];
};

static inline struct iovaq_stats tu_space_stats(struct iovaq_space *sp)
{
	IOVAQ_OPTS(iovaq_stats, st);
	int err = iovaq_space_stats(sp, &st);

	cr_assert_eq(err, 0, "iovaq_space_stats failed: %d", err);
	return st;
}

static inline struct iovaq_stats tu_cache_stats(struct iovaq_cache *c)
{
	IOVAQ_OPTS(iovaq_stats, st);
	int err = iovaq_cache_stats(c, &st);

	cr_assert_eq(err, 0, "iovaq_cache_stats failed: %d", err);
	return st;
}

static inline struct tu_snap tu_snap_of(const struct iovaq_stats *st)
{
	struct tu_snap s;

	memset(&s, 0, sizeof(s));
	s.free_granules = st->free_granules;
	s.allocated_granules = st->allocated_granules;
	s.cached_granules = st->cached_granules;
	s.tree_nodes = st->tree_nodes;
	s.cache_frees = st->cache_frees;
	for (uint32_t i = 0; i < st->n_classes && i < IOVAQ_CACHE_MAX_CLASSES; i++) {
		s.class_cached[i] = st->classes[i].cached;
		s.class_frees[i] = st->classes[i].frees;
	}
	return s;
}

static inline struct tu_snap tu_space_snap(struct iovaq_space *sp)
{
	struct iovaq_stats st = tu_space_stats(sp);

	return tu_snap_of(&st);
}

static inline struct tu_snap tu_cache_snap(struct iovaq_cache *c)
{
	struct iovaq_stats st = tu_cache_stats(c);

	return tu_snap_of(&st);
}

static inline void tu_snap_same(const struct tu_snap *a, const struct tu_snap *b, const char *what,
				const char *file, int line)
{
	cr_assert_eq(a->free_granules, b->free_granules,
		     "%s:%d: %s changed free_granules %" PRIu64 " -> %" PRIu64, file, line, what,
		     a->free_granules, b->free_granules);
	cr_assert_eq(a->allocated_granules, b->allocated_granules,
		     "%s:%d: %s changed allocated_granules %" PRIu64 " -> %" PRIu64, file, line,
		     what, a->allocated_granules, b->allocated_granules);
	cr_assert_eq(a->cached_granules, b->cached_granules,
		     "%s:%d: %s changed cached_granules %" PRIu64 " -> %" PRIu64, file, line, what,
		     a->cached_granules, b->cached_granules);
	cr_assert_eq(a->tree_nodes, b->tree_nodes,
		     "%s:%d: %s changed tree_nodes %" PRIu64 " -> %" PRIu64, file, line, what,
		     a->tree_nodes, b->tree_nodes);
	cr_assert_eq(a->cache_frees, b->cache_frees,
		     "%s:%d: %s changed cache_frees %" PRIu64 " -> %" PRIu64, file, line, what,
		     a->cache_frees, b->cache_frees);
	for (int i = 0; i < IOVAQ_CACHE_MAX_CLASSES; i++) {
		cr_assert_eq(a->class_cached[i], b->class_cached[i],
			     "%s:%d: %s changed classes[%d].cached %" PRIu64 " -> %" PRIu64, file,
			     line, what, i, a->class_cached[i], b->class_cached[i]);
		cr_assert_eq(a->class_frees[i], b->class_frees[i],
			     "%s:%d: %s changed classes[%d].frees %" PRIu64 " -> %" PRIu64, file,
			     line, what, i, a->class_frees[i], b->class_frees[i]);
	}
}

/*
 * EXPECT_SPACE_FAIL(sp, expr, err): @expr (a call on @sp) must return @err, the space must
 * still pass iovaq_space_check(), and free/allocated granules and tree nodes must not move.
 */
#define EXPECT_SPACE_FAIL(sp, expr, err)                                                         \
	do {                                                                                     \
		struct tu_snap before_ = tu_space_snap(sp);                                      \
		int got_ = (expr);                                                               \
		cr_assert_eq(got_, (err), "%s returned %d (%s), expected %d (%s)", #expr, got_,  \
			     iovaq_strerror(got_), (err), iovaq_strerror(err));                  \
		int chk_ = iovaq_space_check(sp);                                                \
		cr_assert_eq(chk_, 0, "iovaq_space_check after failed %s: %d", #expr, chk_);     \
		struct tu_snap after_ = tu_space_snap(sp);                                       \
		tu_snap_same(&before_, &after_, #expr, __FILE__, __LINE__);                      \
	} while (0)

/* The same for a call on a cache @c: iovaq_cache_check() and the cache's counters. */
#define EXPECT_CACHE_FAIL(c, expr, err)                                                          \
	do {                                                                                     \
		struct tu_snap before_ = tu_cache_snap(c);                                       \
		int got_ = (expr);                                                               \
		cr_assert_eq(got_, (err), "%s returned %d (%s), expected %d (%s)", #expr, got_,  \
			     iovaq_strerror(got_), (err), iovaq_strerror(err));                  \
		int chk_ = iovaq_cache_check(c);                                                 \
		cr_assert_eq(chk_, 0, "iovaq_cache_check after failed %s: %d", #expr, chk_);     \
		struct tu_snap after_ = tu_cache_snap(c);                                        \
		tu_snap_same(&before_, &after_, #expr, __FILE__, __LINE__);                      \
	} while (0)

/* @expr must return 0. */
#define EXPECT_OK(expr)                                                                          \
	do {                                                                                     \
		int got_ = (expr);                                                               \
		cr_assert_eq(got_, 0, "%s returned %d (%s)", #expr, got_, iovaq_strerror(got_)); \
	} while (0)

#endif /* IOVAQ_TESTUTIL_H */
