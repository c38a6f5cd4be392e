/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq IOVA space allocator.
 *
 * A space hands out ranges of IOVA granules from one or more aperture ranges, avoiding
 * reserved holes (IOVA 0 always; typically the x86 MSI window). Every operation is O(log n)
 * worst case in the number of live allocations: the space keeps its allocations in a balanced
 * tree in which each subtree records the largest free gap it contains, both as a length and as
 * the largest naturally aligned power-of-two block that fits in one gap.
 *
 * Sizes whose granule count is a power of two are aligned to their size (a 16-granule
 * allocation starts on a 16-granule boundary), so that one naturally aligned page-selective
 * invalidation covers it exactly. Other sizes are granule-aligned only.
 */
#ifndef IOVAQ_SPACE_H
#define IOVAQ_SPACE_H

#include <iovaq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovaq_space;
struct iovaq_stats;

/* Limits on what a space accepts. */
#define IOVAQ_SPACE_MAX_APERTURES 64
#define IOVAQ_SPACE_MAX_RESERVED 256
#define IOVAQ_DEFAULT_GRANULE 4096ULL

/**
 * struct iovaq_space_opts - how to build a space; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_space_opts), set by IOVAQ_OPTS().
 * @granule: allocation granule in bytes, a power of two from 512 bytes to 1 GiB;
 *	0 means IOVAQ_DEFAULT_GRANULE (4 KiB).
 * @apertures: the usable IOVA ranges, [start, last] in bytes; at least one. Each must be
 *	granule-aligned (start a multiple of @granule, last + 1 a multiple of @granule); they
 *	may be given in any order but must not overlap. Adjacent apertures are merged: they
 *	form one contiguous range, and an allocation may cross the boundary.
 * @n_apertures: number of entries in @apertures, 1 to IOVAQ_SPACE_MAX_APERTURES.
 * @reserved: holes never handed out, [start, last] in bytes, widened outwards to whole
 *	granules; they may overlap each other and need not lie inside an aperture. The
 *	granule at IOVA 0 is always reserved.
 * @n_reserved: number of entries in @reserved, 0 to IOVAQ_SPACE_MAX_RESERVED.
 * @hooks: metadata allocator; NULL means iovaq_default_alloc_hooks().
 */
struct iovaq_space_opts {
	size_t sz;
	uint64_t granule;
	const struct iovaq_range *apertures;
	size_t n_apertures;
	const struct iovaq_range *reserved;
	size_t n_reserved;
	const struct iovaq_alloc_hooks *hooks;
};

/**
 * iovaq_space_create() - create an IOVA space.
 * @opts: options, see struct iovaq_space_opts; required.
 * @out: receives the new space on success; untouched on failure.
 *
 * Context: any thread; may allocate.
 * Return:
 * * 0 on success.
 * * -EINVAL: @opts or @out NULL, @opts->sz too small, granule not a power of two or out of
 *   range, no aperture, an aperture empty, misaligned or overlapping another, too many
 *   apertures or holes, or every granule reserved.
 * * -E2BIG: @opts has non-zero bytes beyond the fields this library knows.
 * * -ENOMEM: metadata allocation failed.
 */
IOVAQ_API int iovaq_space_create(const struct iovaq_space_opts *opts, struct iovaq_space **out);

/**
 * iovaq_space_destroy() - free a space and all its metadata.
 * @sp: the space, or NULL. Live allocations are forgotten; no cache may still use @sp.
 *
 * Context: no other call on @sp may run concurrently or afterwards.
 */
IOVAQ_API void iovaq_space_destroy(struct iovaq_space *sp);

/**
 * iovaq_space_alloc() - allocate a range of granules.
 * @sp: the space.
 * @n_granules: number of granules, at least 1. A power of two is aligned to its size.
 * @limit: highest IOVA (inclusive, bytes) the range may touch: a device's DMA mask, for
 *	example 0xffffffff for a 32-bit device, or IOVAQ_LIMIT_NONE.
 * @out: receives the first IOVA of the range, in bytes; untouched on failure.
 *
 * The space allocates top-down: the highest suitable range below @limit. Devices with narrow
 * DMA masks share spaces with wide ones, and a top-down policy consumes the addresses that
 * only wide devices can use first, keeping the low ones for whoever needs them (the same
 * reasoning as Linux's iova.c).
 *
 * Context: thread-safe (takes the space lock); never blocks on anything but that lock.
 * Return:
 * * 0 on success.
 * * -EINVAL: @sp or @out NULL, @n_granules 0 or so large that its byte size overflows, or
 *   @limit below every aperture.
 * * -ENOSPC: no free range of that size (and alignment) below @limit.
 * * -ENOMEM: metadata allocation failed.
 */
IOVAQ_API int iovaq_space_alloc(struct iovaq_space *sp, uint64_t n_granules, iovaq_iova_t limit,
				iovaq_iova_t *out);

/**
 * iovaq_space_alloc_fixed() - allocate the granules at a given IOVA.
 * @sp: the space.
 * @iova: first byte of the range, granule-aligned.
 * @n_granules: number of granules, at least 1.
 *
 * For callers that must honour an address chosen elsewhere (a VMM adopting an existing
 * mapping, an arena re-created at a known place).
 *
 * Context: thread-safe (takes the space lock).
 * Return:
 * * 0 on success.
 * * -EINVAL: @sp NULL, @iova misaligned, @n_granules 0 or overflowing, or the range not
 *   entirely inside one aperture (adjacent apertures count as one).
 * * -EBUSY: part of the range is allocated or reserved.
 * * -ENOMEM: metadata allocation failed.
 */
IOVAQ_API int iovaq_space_alloc_fixed(struct iovaq_space *sp, iovaq_iova_t iova,
				      uint64_t n_granules);

/**
 * iovaq_space_free() - free a range returned by iovaq_space_alloc() or _alloc_fixed().
 * @sp: the space.
 * @iova: first byte of the range, exactly as returned.
 * @n_granules: the size that was requested.
 *
 * Context: thread-safe (takes the space lock).
 * Return:
 * * 0 on success.
 * * -EINVAL: @sp NULL, @n_granules 0, or @iova and @n_granules do not name exactly one live
 *   allocation (never allocated, already freed, wrong size, a reserved hole). The space is
 *   unchanged.
 */
IOVAQ_API int iovaq_space_free(struct iovaq_space *sp, iovaq_iova_t iova, uint64_t n_granules);

/**
 * iovaq_space_granule() - the granule of a space, in bytes.
 * @sp: the space (not NULL).
 *
 * Context: any thread.
 * Return: the granule, a power of two.
 */
IOVAQ_API uint64_t iovaq_space_granule(const struct iovaq_space *sp);

/**
 * iovaq_space_stats() - counters of a space.
 * @sp: the space.
 * @st: filled up to @st->sz (set it with IOVAQ_OPTS(iovaq_stats, ...)).
 *
 * Fills the space part of struct iovaq_stats; cache fields read zero.
 *
 * Context: thread-safe (takes the space lock briefly).
 * Return: 0, or -EINVAL for NULL arguments or @st->sz too small.
 */
IOVAQ_API int iovaq_space_stats(struct iovaq_space *sp, struct iovaq_stats *st);

/**
 * iovaq_space_check() - verify the space's invariants (debugging and tests).
 * @sp: the space.
 *
 * Checks that the tree is ordered and balanced, that every cached gap summary is exact, that
 * no two allocations overlap, that every granule of every aperture is either free or covered
 * by exactly one allocation or hole, and that the counters agree with the tree. O(n).
 *
 * Context: thread-safe (takes the space lock for O(n)).
 * Return: 0 if consistent, -EINVAL for NULL, -EUCLEAN on the first inconsistency found.
 */
IOVAQ_API int iovaq_space_check(struct iovaq_space *sp);

/**
 * typedef iovaq_space_walk_fn - callback of iovaq_space_walk().
 * @arg: the caller's argument.
 * @iova: first byte of a live allocation (holes are not reported).
 * @n_granules: its size.
 *
 * Return: 0 to continue, non-zero to stop the walk and make it return that value.
 */
typedef int (*iovaq_space_walk_fn)(void *arg, iovaq_iova_t iova, uint64_t n_granules);

/**
 * iovaq_space_walk() - visit every live allocation in address order.
 * @sp: the space.
 * @fn: called once per allocation, with the space lock held: it must not call into @sp.
 * @arg: passed to @fn.
 *
 * Context: thread-safe (holds the space lock throughout).
 * Return: 0 after a full walk, the first non-zero value @fn returned, or -EINVAL for NULL.
 */
IOVAQ_API int iovaq_space_walk(struct iovaq_space *sp, iovaq_space_walk_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_SPACE_H */
