/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq magazine cache: a per-CPU and per-thread IOVA cache in front of a space.
 *
 * Layers, fastest first (Bonwick & Adams, USENIX ATC 2001; Linux iova.c "rcache"):
 *  1. per-thread front: a small bounded stack of IOVAs per size class, touched only by its
 *     thread, so the common alloc and free take no lock and no atomic instruction. It is
 *     returned to the per-CPU layer when it overflows, when the thread exits, and when the
 *     cache is drained (each thread notices a drain on its next call).
 *  2. per-CPU slots, indexed by the CPU the thread runs on, each with its own lock and a
 *     "loaded" and a "previous" magazine per size class. A thread that migrates merely uses
 *     another slot: locality is lost, correctness never.
 *  3. a depot of full magazines per size class, bounded; magazines beyond the bound are
 *     trimmed back into the space.
 *  4. the space itself (tree), for misses and for sizes above the largest class.
 *
 * Size classes are powers of two from 1 granule up to @max_cached_granules. A request of n
 * granules with n <= @max_cached_granules is rounded up to the next power of two, so that
 * every cached range can serve every later request of its class; the same rounding is
 * applied when it is freed. Larger requests go to the space unrounded.
 *
 * When the space has no room, the cache returns every cached IOVA it can reach (the calling
 * thread's front, all per-CPU slots, the depot) to the space and retries once before it
 * reports -ENOSPC. Other threads' fronts hold at most front_cap IOVAs per class each; they
 * return them on their next call after a drain.
 */
#ifndef IOVAQ_CACHE_H
#define IOVAQ_CACHE_H

#include <iovaq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovaq_cache;
struct iovaq_space;
struct iovaq_stats;

/* Size classes: 2^0 .. 2^(IOVAQ_CACHE_MAX_CLASSES - 1) granules. */
#define IOVAQ_CACHE_MAX_CLASSES 21
#define IOVAQ_CACHE_DEFAULT_MAX_GRANULES 512
#define IOVAQ_CACHE_DEFAULT_FRONT_CAP 32
#define IOVAQ_CACHE_MAX_FRONT_CAP 256

/* Flags for struct iovaq_cache_opts. */
enum {
	/* No per-thread front: every operation takes a per-CPU slot lock (the baseline). */
	IOVAQ_CACHE_NO_FRONT = 1u << 0,
	/*
	 * Validate every free against a record of live allocations (double free, wrong size,
	 * never allocated: -EINVAL). Costs a locked hash lookup per call; meant for debugging.
	 * Without it only cheap checks (alignment, aperture) run on the fast path.
	 */
	IOVAQ_CACHE_CHECKED = 1u << 1,
	/* No caching at all: every call goes to the space (rounding still applies). */
	IOVAQ_CACHE_BYPASS = 1u << 2,
};

/**
 * struct iovaq_cache_opts - cache tuning; use IOVAQ_OPTS(). Zero fields take defaults.
 * @sz: sizeof(struct iovaq_cache_opts); a struct of only @sz (sizeof(size_t)) means all
 *	defaults.
 * @max_cached_granules: largest cached size class, a power of two from 1 to
 *	2^(IOVAQ_CACHE_MAX_CLASSES - 1); 0 means IOVAQ_CACHE_DEFAULT_MAX_GRANULES (512 granules,
 *	2 MiB with 4 KiB granules; Linux stops at 32). Classes larger than the space's whole
 *	span can never be allocated and are dropped (see iovaq_stats.n_classes).
 * @depot_max: full magazines kept per class in the depot before trimming into the space;
 *	0 means the number of CPUs (Linux trims its depot to that count).
 * @front_cap: IOVAs a thread's front may hold per class, 1 to IOVAQ_CACHE_MAX_FRONT_CAP;
 *	0 means IOVAQ_CACHE_DEFAULT_FRONT_CAP.
 * @flags: IOVAQ_CACHE_* flags.
 * @n_cpus: number of per-CPU slots; 0 means the number of configured CPUs.
 */
struct iovaq_cache_opts {
	size_t sz;
	uint64_t max_cached_granules;
	uint32_t depot_max;
	uint32_t front_cap;
	uint32_t flags;
	uint32_t n_cpus;
};

/**
 * iovaq_cache_create() - create a magazine cache in front of a space.
 * @sp: the space; it must outlive the cache.
 * @opts: options, or NULL for defaults.
 * @out: receives the cache; untouched on failure.
 *
 * Context: any thread; allocates.
 * Return:
 * * 0 on success.
 * * -EINVAL: @sp or @out NULL, @opts->sz too small, a field out of range, unknown flags.
 * * -E2BIG: non-zero bytes beyond the fields this library knows.
 * * -ENOMEM: metadata allocation failed.
 */
IOVAQ_API int iovaq_cache_create(struct iovaq_space *sp, const struct iovaq_cache_opts *opts,
				 struct iovaq_cache **out);

/**
 * iovaq_cache_destroy() - return every cached IOVA to the space and free the cache.
 * @c: the cache, or NULL.
 *
 * IOVAs still allocated through the cache stay allocated in the space.
 *
 * Context: no other call on @c may run concurrently or afterwards; threads that used @c may
 * still be running or exit at any time.
 */
IOVAQ_API void iovaq_cache_destroy(struct iovaq_cache *c);

/**
 * iovaq_cache_alloc() - allocate a range, from the cache when possible.
 * @c: the cache.
 * @n_granules: size; rounded up to a power of two when at most the largest class.
 * @limit: highest IOVA (inclusive, bytes) the range may touch; see iovaq_space_alloc().
 * @out: receives the first IOVA; untouched on failure.
 *
 * Context: thread-safe; lock-free and allocation-free on a front hit.
 * Return:
 * * 0 on success.
 * * -EINVAL: NULL argument, @n_granules 0 or overflowing, @limit below every aperture.
 * * -ENOSPC: nothing fits, even after returning every reachable cached IOVA to the space.
 * * -ENOMEM: metadata allocation failed.
 */
IOVAQ_API int iovaq_cache_alloc(struct iovaq_cache *c, uint64_t n_granules, iovaq_iova_t limit,
				iovaq_iova_t *out);

/**
 * iovaq_cache_free() - give back a range from iovaq_cache_alloc().
 * @c: the cache.
 * @iova: the IOVA that iovaq_cache_alloc() returned.
 * @n_granules: the size that was passed to iovaq_cache_alloc() (not the rounded size).
 *
 * Context: thread-safe; lock-free and allocation-free when the thread's front has room.
 * Return:
 * * 0 on success.
 * * -EINVAL: NULL @c, @n_granules 0, @iova not aligned to its class or outside the space;
 *   with IOVAQ_CACHE_CHECKED also a double free, a wrong size or an IOVA never allocated
 *   through @c. Above the largest class the space validates fully. The cache and the space
 *   are unchanged on error.
 */
IOVAQ_API int iovaq_cache_free(struct iovaq_cache *c, iovaq_iova_t iova, uint64_t n_granules);

/**
 * iovaq_cache_drain() - return cached IOVAs to the space.
 * @c: the cache.
 *
 * Empties the calling thread's front, every per-CPU slot and the depot at once; every other
 * thread empties its front on its next call into @c (or at exit).
 *
 * Context: thread-safe; takes every slot lock in turn and the space lock.
 */
IOVAQ_API void iovaq_cache_drain(struct iovaq_cache *c);

/**
 * iovaq_cache_space() - the space behind a cache.
 * @c: the cache (not NULL).
 *
 * Return: the space given to iovaq_cache_create().
 */
IOVAQ_API struct iovaq_space *iovaq_cache_space(const struct iovaq_cache *c);

/**
 * iovaq_cache_stats() - counters of the cache and of its space.
 * @c: the cache.
 * @st: filled up to @st->sz.
 *
 * Per-thread counters are summed without stopping their threads, so a snapshot taken while
 * other threads run may be slightly behind.
 *
 * Context: thread-safe.
 * Return: 0, or -EINVAL for NULL arguments or @st->sz too small.
 */
IOVAQ_API int iovaq_cache_stats(struct iovaq_cache *c, struct iovaq_stats *st);

/**
 * iovaq_cache_check() - verify the state invariant of a cache and its space.
 * @c: the cache.
 *
 * Runs iovaq_space_check(), then checks that every cached IOVA is a live allocation of the
 * space with exactly its class size, aligned, and cached once only: every granule is thus in
 * exactly one state (free, cached, allocated to a caller). With IOVAQ_CACHE_CHECKED it also
 * checks that the allocations recorded as the callers' are exactly the space's allocations
 * that are not cached (so it fails, -EUCLEAN, if the space has allocations made directly,
 * around the cache).
 *
 * Context: the cache must be quiescent: no other thread may call into @c meanwhile.
 * Return: 0 if consistent, -EINVAL for NULL, -ENOMEM if the check could not allocate,
 * -EUCLEAN on the first inconsistency.
 */
IOVAQ_API int iovaq_cache_check(struct iovaq_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_CACHE_H */
