/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Private interface of the magazine cache, for the domain layer's invariant check. */
#ifndef IOVAQ_CACHE_PRIV_H
#define IOVAQ_CACHE_PRIV_H

#include <iovaq/cache.h>

/*
 * Call @fn for every cached IOVA (fronts, slots, depot) with its class size in granules; stops
 * at the first non-zero return and returns it. The cache must be quiescent.
 */
int iovaq__cache_for_each_cached(struct iovaq_cache *c,
				 int (*fn)(void *arg, iovaq_iova_t iova, uint64_t n), void *arg);

/* The size the cache really allocates for a request of @n granules (its class, or @n). */
uint64_t iovaq__cache_round(const struct iovaq_cache *c, uint64_t n);

#endif /* IOVAQ_CACHE_PRIV_H */
