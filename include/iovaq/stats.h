/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq counters: one size-prefixed, versioned struct for spaces and caches.
 */
#ifndef IOVAQ_STATS_H
#define IOVAQ_STATS_H

#include <iovaq/common.h>
#include <iovaq/cache.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever fields are appended; struct iovaq_stats.version reports it. */
#define IOVAQ_STATS_VERSION 1

/**
 * struct iovaq_class_stats - counters of one cache size class.
 * @granules: the class size in granules (a power of two).
 * @hits: allocations served by the cache (front, per-CPU slot or depot).
 * @misses: allocations of this class that went to the space.
 * @frees: frees of this class into the cache.
 * @cached: IOVAs of this class currently cached (fronts, slots and depot).
 * @depot_mags: full magazines currently in the depot.
 * @trimmed: IOVAs returned from this class to the space (trim, drain, overflow).
 */
struct iovaq_class_stats {
	uint64_t granules;
	uint64_t hits;
	uint64_t misses;
	uint64_t frees;
	uint64_t cached;
	uint64_t depot_mags;
	uint64_t trimmed;
};

/**
 * struct iovaq_stats - counters of a space and, if any, of its cache.
 * @sz: sizeof(struct iovaq_stats), set by the caller (IOVAQ_OPTS()).
 * @version: IOVAQ_STATS_VERSION of the library that filled it.
 * @granule: the space's granule, in bytes.
 * @total_granules: granules in all apertures, holes included.
 * @reserved_granules: granules in holes inside the apertures.
 * @free_granules: granules free in the space (tree).
 * @allocated_granules: granules the space has handed out (to callers or to the cache).
 * @cached_granules: of those, granules sitting in the cache.
 * @space_allocs: successful space allocations (tree path).
 * @space_frees: space frees (tree path).
 * @space_alloc_fail: space allocations that failed with -ENOSPC.
 * @tree_nodes: nodes in the space's tree (live allocations and holes).
 * @cache_allocs: successful cache allocations (0 without a cache).
 * @cache_frees: successful cache frees.
 * @cache_alloc_fail: cache allocations that failed.
 * @cache_retries: cache allocations that drained the cache and retried.
 * @metadata_bytes: bytes of metadata held (tree nodes, magazines, fronts, slots).
 * @n_classes: valid entries in @classes.
 * @classes: per size class counters, smallest first.
 */
struct iovaq_stats {
	size_t sz;
	uint32_t version;
	uint32_t n_classes;
	uint64_t granule;
	uint64_t total_granules;
	uint64_t reserved_granules;
	uint64_t free_granules;
	uint64_t allocated_granules;
	uint64_t cached_granules;
	uint64_t space_allocs;
	uint64_t space_frees;
	uint64_t space_alloc_fail;
	uint64_t tree_nodes;
	uint64_t cache_allocs;
	uint64_t cache_frees;
	uint64_t cache_alloc_fail;
	uint64_t cache_retries;
	uint64_t metadata_bytes;
	struct iovaq_class_stats classes[IOVAQ_CACHE_MAX_CLASSES];
};

/**
 * iovaq_stats_json() - format counters as one JSON object.
 * @st: counters filled by iovaq_space_stats() or iovaq_cache_stats().
 * @buf: output buffer, or NULL with @len 0 to measure.
 * @len: size of @buf in bytes.
 *
 * Writes at most @len bytes including the terminating NUL, like snprintf().
 *
 * Context: any thread.
 * Return: the length of the full JSON text (without NUL), which may exceed @len - 1 when
 * truncated, or -EINVAL for a NULL @st, @st->sz too small, or NULL @buf with @len > 0.
 */
IOVAQ_API int iovaq_stats_json(const struct iovaq_stats *st, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_STATS_H */
