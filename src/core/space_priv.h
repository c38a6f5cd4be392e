/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Private interface of the IOVA space, for the cache (which batches several operations under
 * one acquisition of the space lock).
 */
#ifndef IOVAQ_SPACE_PRIV_H
#define IOVAQ_SPACE_PRIV_H

#include <iovaq/space.h>
#include "port.h"

struct snode;
struct snode_chunk;

/*
 * struct iovaq_space - an IOVA space.
 *
 * Everything below @lock is protected by it, except the fields marked "const", which are set at
 * creation and never change.
 */
struct iovaq_space {
	iovaq_lock_t lock;
	const struct iovaq_alloc_hooks *hooks;	/* const */
	uint64_t granule;			/* const: bytes, power of two */
	unsigned int shift;			/* const: log2(granule) */
	uint64_t lo, hi;			/* const: first/last granule of the span */
	iovaq_iova_t lo_iova, hi_iova;		/* const: the same, in bytes, hi inclusive */
	size_t n_ap;				/* const */
	struct iovaq_range ap[IOVAQ_SPACE_MAX_APERTURES]; /* const: granule numbers, sorted */
	uint64_t total_granules;		/* const */
	uint64_t reserved_granules;		/* const */

	struct snode *root;
	struct snode *free_nodes;		/* node pool free list */
	struct snode_chunk *chunks;		/* every pool chunk, for destroy */
	uint64_t free_granules;
	uint64_t allocated_granules;
	uint64_t tree_nodes;
	uint64_t n_allocs, n_frees, n_fail;
	uint64_t metadata_bytes;
};

static inline void iovaq__space_lock(struct iovaq_space *sp)
{
	iovaq_lock(&sp->lock);
}

static inline void iovaq__space_unlock(struct iovaq_space *sp)
{
	iovaq_unlock(&sp->lock);
}

/* Granule number of the last granule that lies entirely at or below @limit; -EINVAL if none. */
int iovaq__space_limit_granule(const struct iovaq_space *sp, iovaq_iova_t limit, uint64_t *out);

/* The operations of iovaq_space_alloc()/_free() with the space lock already held. */
int iovaq__space_alloc_locked(struct iovaq_space *sp, uint64_t n_granules, uint64_t lim_granule,
			      iovaq_iova_t *out);
int iovaq__space_free_locked(struct iovaq_space *sp, iovaq_iova_t iova, uint64_t n_granules);

/* Size in granules of the live allocation starting at @iova, 0 if there is none. Lock held. */
uint64_t iovaq__space_lookup_locked(struct iovaq_space *sp, iovaq_iova_t iova);

/* Fill the space fields of @st (lock held). */
void iovaq__space_stats_locked(struct iovaq_space *sp, struct iovaq_stats *st);

/* Counters of the metadata allocator for callers outside space.c. */
void *iovaq__meta_alloc(const struct iovaq_alloc_hooks *h, uint64_t *counter, size_t size);
void iovaq__meta_free(const struct iovaq_alloc_hooks *h, uint64_t *counter, void *p, size_t size);

#endif /* IOVAQ_SPACE_PRIV_H */
