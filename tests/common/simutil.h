/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Helpers for the tests of backends and of the simulated IOMMU (include/iovaq/backend.h,
 * include/iovaq/sim.h): counting and failable metadata hooks, host buffers with patterns,
 * invalidation command builders, sim counter snapshots with a field-by-field diff, and the
 * fault log.
 *
 * Include after testutil.h (and so after defining _GNU_SOURCE).
 */
#ifndef IOVAQ_SIMUTIL_H
#define IOVAQ_SIMUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

#define TU_G ((uint64_t)4096)
#define TU_KiB ((uint64_t)1 << 10)
#define TU_MiB ((uint64_t)1 << 20)
#define TU_GiB ((uint64_t)1 << 30)
#define TU_TiB ((uint64_t)1 << 40)
/* Bytes covered by one entry of a level-L table: 4 KiB, 2 MiB, 1 GiB, 512 GiB. */
#define TU_L1_SPAN ((uint64_t)4096)
#define TU_L2_SPAN ((uint64_t)2 << 20)
#define TU_L3_SPAN ((uint64_t)1 << 30)
#define TU_L4_SPAN ((uint64_t)512 << 30)

/* ---- metadata hooks ------------------------------------------------------------------- */

/*
 * Metadata hooks that count, check alignment and sizes, and can fail one chosen call.
 * Not thread-safe: for single-threaded tests.
 */
struct tu_hooks {
	long allocs, frees; /* successful allocations, frees */
	long calls; /* alloc calls since tu_hooks_arm() */
	long fail_at; /* fail alloc call number @fail_at since arming; 0 never */
	int fail_all; /* fail every allocation */
	long failed; /* allocations refused */
	long bad_align, size_mismatch, unknown_free;
	size_t live_bytes;
	size_t n_live, cap_live;
	struct tu_hook_rec {
		void *p;
		size_t size;
	} * live;
};

static inline void *tu_hook_alloc(void *ctx, size_t size, size_t align)
{
	struct tu_hooks *h = ctx;
	void *p;

	h->calls++;
	if (!tu_is_pow2(align) || align > 4096)
		h->bad_align++;
	if (h->fail_all || (h->fail_at && h->calls == h->fail_at)) {
		h->failed++;
		return NULL;
	}
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1))
		return NULL;
	if (h->n_live == h->cap_live) {
		size_t cap = h->cap_live ? 2 * h->cap_live : 256;
		struct tu_hook_rec *n = realloc(h->live, cap * sizeof(*n));

		cr_assert_not_null(n, "test hooks: out of memory");
		h->live = n;
		h->cap_live = cap;
	}
	h->live[h->n_live].p = p;
	h->live[h->n_live].size = size;
	h->n_live++;
	h->allocs++;
	h->live_bytes += size;
	return p;
}

static inline void tu_hook_free(void *ctx, void *ptr, size_t size)
{
	struct tu_hooks *h = ctx;
	size_t i;

	if (!ptr)
		return;
	h->frees++;
	for (i = 0; i < h->n_live; i++) {
		if (h->live[i].p == ptr) {
			if (h->live[i].size != size)
				h->size_mismatch++;
			h->live_bytes -= h->live[i].size;
			h->live[i] = h->live[--h->n_live];
			free(ptr);
			return;
		}
	}
	h->unknown_free++;
}

static inline struct iovaq_alloc_hooks tu_hooks_of(struct tu_hooks *h)
{
	struct iovaq_alloc_hooks hooks = { tu_hook_alloc, tu_hook_free, h };

	return hooks;
}

/* Fail the @nth alloc call from now (1 = the next one); 0 never fails. */
static inline void tu_hooks_arm(struct tu_hooks *h, long nth)
{
	h->calls = 0;
	h->fail_at = nth;
}

/* Every allocation was freed, with its own size, and nothing else was. */
static inline void tu_hooks_balanced(const struct tu_hooks *h, const char *what)
{
	cr_assert_eq(h->allocs, h->frees, "%s: %ld allocations but %ld frees (leak)", what,
		     h->allocs, h->frees);
	cr_assert_eq(h->n_live, 0, "%s: %zu blocks still live", what, h->n_live);
	cr_assert_eq(h->bad_align, 0, "%s: alignment not a power of two <= 4096", what);
	cr_assert_eq(h->size_mismatch, 0, "%s: free() with a size other than requested", what);
	cr_assert_eq(h->unknown_free, 0, "%s: free() of a pointer the hooks never returned", what);
}

static inline void tu_hooks_release(struct tu_hooks *h)
{
	free(h->live);
	h->live = NULL;
	h->n_live = h->cap_live = 0;
}

/* ---- host memory ---------------------------------------------------------------------- */

/* The pattern byte at offset @off of a buffer filled with @seed. */
static inline uint8_t tu_pat(uint64_t seed, uint64_t off)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + (off >> 3);

	return (uint8_t)(tu_splitmix(&x) >> ((off & 7) * 8));
}

static inline void tu_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		b[i] = tu_pat(seed, i);
}

/* Index of the first byte of @buf that differs from the pattern @seed at @off0, or -1. */
static inline long tu_pat_mismatch(const void *buf, size_t len, uint64_t seed, uint64_t off0)
{
	const uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != tu_pat(seed, off0 + i))
			return (long)i;
	return -1;
}

/* @len bytes aligned to @align (>= the granule), filled with pattern @seed. */
static inline uint8_t *tu_host(size_t len, size_t align, uint64_t seed)
{
	void *p = NULL;

	cr_assert_eq(posix_memalign(&p, align < TU_G ? TU_G : align, len), 0,
		     "posix_memalign(%zu, %zu) failed", align, len);
	tu_fill(p, len, seed);
	return p;
}

/* ---- invalidation commands ------------------------------------------------------------ */

static inline struct iovaq_inval tu_inval_pages(iovaq_iova_t iova, unsigned int am, int leaf)
{
	struct iovaq_inval c;

	memset(&c, 0, sizeof(c));
	c.kind = IOVAQ_INVAL_PAGES;
	c.flags = leaf ? IOVAQ_INVAL_LEAF : 0;
	c.am = (uint8_t)am;
	c.iova = iova;
	return c;
}

static inline struct iovaq_inval tu_inval_kind(unsigned int kind)
{
	struct iovaq_inval c;

	memset(&c, 0, sizeof(c));
	c.kind = (uint8_t)kind;
	return c;
}

/*
 * The smallest page-selective mask covering [iova, iova + len): 2^am granules naturally
 * aligned; *@start receives the aligned first byte.
 */
static inline unsigned int tu_am_for(iovaq_iova_t iova, uint64_t len, iovaq_iova_t *start)
{
	unsigned int am = 0;
	iovaq_iova_t last = iova + len - 1;

	while ((iova >> (12 + am)) != (last >> (12 + am)))
		am++;
	if (start)
		*start = iova & ~((TU_G << am) - 1);
	return am;
}

/* One non-leaf page-selective command covering [iova, iova + len), flushed; must succeed. */
static inline void tu_flush_range(struct iovaq_backend *be, iovaq_iova_t iova, uint64_t len)
{
	iovaq_iova_t start;
	unsigned int am = tu_am_for(iova, len, &start);
	struct iovaq_inval c = tu_inval_pages(start, am, 0);
	int err = iovaq_backend_flush(be, &c, 1);

	cr_assert_eq(err, 0, "flush PAGES 0x%" PRIx64 " am %u: %d (%s)", start, am, err,
		     iovaq_strerror(err));
}

static inline void tu_flush_domain(struct iovaq_backend *be)
{
	struct iovaq_inval c = tu_inval_kind(IOVAQ_INVAL_DOMAIN);
	int err = iovaq_backend_flush(be, &c, 1);

	cr_assert_eq(err, 0, "flush DOMAIN: %d (%s)", err, iovaq_strerror(err));
}

/* ---- sim ------------------------------------------------------------------------------ */

/* Open a sim with @so (NULL: defaults) and @hooks (NULL: default hooks); must succeed. */
static inline struct iovaq_backend *tu_sim_open(const struct iovaq_sim_opts *so,
						const struct iovaq_alloc_hooks *hooks)
{
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = "sim", .backend_opts = so, .hooks = hooks);
	struct iovaq_backend *be = NULL;
	int err = iovaq_backend_open(&o, &be);

	cr_assert_eq(err, 0, "open sim: %d (%s): %s", err, iovaq_strerror(err),
		     iovaq_backend_why());
	cr_assert_not_null(be);
	cr_assert_not_null(iovaq_sim_of(be), "iovaq_sim_of() of a sim is NULL");
	return be;
}

static inline struct iovaq_sim_counters tu_counters(struct iovaq_sim *s)
{
	IOVAQ_OPTS(iovaq_sim_counters, c);
	int err = iovaq_sim_get_counters(s, &c);

	cr_assert_eq(err, 0, "iovaq_sim_get_counters: %d", err);
	return c;
}

/* Names and offsets of every counter, for diffs. */
struct tu_counter_field {
	const char *name;
	size_t off;
};

#define TU_CF(f)                                           \
	{                                                  \
#f, offsetof(struct iovaq_sim_counters, f) \
	}
static const struct tu_counter_field tu_counter_fields[] = {
	TU_CF(dma_calls),
	TU_CF(dma_pages),
	TU_CF(iotlb_hits),
	TU_CF(iotlb_misses),
	TU_CF(psc_hits[0]),
	TU_CF(psc_hits[1]),
	TU_CF(psc_hits[2]),
	TU_CF(psc_misses[0]),
	TU_CF(psc_misses[1]),
	TU_CF(psc_misses[2]),
	TU_CF(walk_refs),
	TU_CF(faults),
	TU_CF(stale_hits),
	TU_CF(bad_leaf_invals),
	TU_CF(inval_cmds[0]),
	TU_CF(inval_cmds[1]),
	TU_CF(inval_cmds[2]),
	TU_CF(inval_cmds[3]),
	TU_CF(inval_leaf),
	TU_CF(flushes),
	TU_CF(maps),
	TU_CF(unmaps),
	TU_CF(mapped_pages),
	TU_CF(table_pages),
	TU_CF(table_pages_freed),
	TU_CF(traps),
	TU_CF(device_ns),
	TU_CF(cpu_map_ns),
	TU_CF(cpu_unmap_ns),
	TU_CF(cpu_flush_ns),
	TU_CF(cpu_flush_submit_ns),
	TU_CF(cpu_flush_wait_ns),
};
#undef TU_CF

static inline uint64_t tu_cf(const struct iovaq_sim_counters *c, size_t i)
{
	uint64_t v;

	memcpy(&v, (const char *)c + tu_counter_fields[i].off, sizeof(v));
	return v;
}

/* Assert that two snapshots are equal, naming the first counter that differs. */
static inline void tu_counters_same(const struct iovaq_sim_counters *a,
				    const struct iovaq_sim_counters *b, const char *what,
				    const char *file, int line)
{
	cr_assert_eq(sizeof(tu_counter_fields) / sizeof(tu_counter_fields[0]),
		     (sizeof(struct iovaq_sim_counters) - sizeof(size_t)) / sizeof(uint64_t),
		     "tu_counter_fields does not list every counter");
	for (size_t i = 0; i < sizeof(tu_counter_fields) / sizeof(tu_counter_fields[0]); i++)
		cr_assert_eq(tu_cf(a, i), tu_cf(b, i),
			     "%s:%d: %s changed %s: %" PRIu64 " -> %" PRIu64, file, line, what,
			     tu_counter_fields[i].name, tu_cf(a, i), tu_cf(b, i));
}

/*
 * EXPECT_SIM_FAIL(sim, expr, err): @expr must return @err and leave every counter of @sim
 * unchanged (the page table, the caches and the cost model did not move).
 */
#define EXPECT_SIM_FAIL(sim, expr, err)                                                         \
	do {                                                                                    \
		struct iovaq_sim_counters before_ = tu_counters(sim);                           \
		int got_ = (expr);                                                              \
		cr_assert_eq(got_, (err), "%s returned %d (%s), expected %d (%s)", #expr, got_, \
			     iovaq_strerror(got_), (err), iovaq_strerror(err));                 \
		struct iovaq_sim_counters after_ = tu_counters(sim);                            \
		tu_counters_same(&before_, &after_, #expr, __FILE__, __LINE__);                 \
	} while (0)

/* One device access; returns its errno and fills *@res. */
static inline int tu_dma(struct iovaq_sim *s, iovaq_iova_t iova, void *buf, size_t len, int write,
			 struct iovaq_sim_access *res)
{
	struct iovaq_sim_access tmp;

	return iovaq_sim_dma(s, iova, buf, len, write, res ? res : &tmp);
}

/* A device read of @len bytes at @iova must succeed without a stale hit and equal @expect. */
static inline void tu_dma_read_eq(struct iovaq_sim *s, iovaq_iova_t iova, const void *expect,
				  size_t len)
{
	uint8_t *buf = malloc(len);
	struct iovaq_sim_access r;
	int err;

	cr_assert_not_null(buf);
	memset(buf, 0x5a, len);
	err = tu_dma(s, iova, buf, len, 0, &r);
	cr_assert_eq(err, 0, "device read 0x%" PRIx64 "+%zu: %d (%s)", iova, len, err,
		     iovaq_strerror(err));
	cr_assert_eq(r.stale_pages, 0, "device read 0x%" PRIx64 ": %" PRIu64 " stale pages", iova,
		     r.stale_pages);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(buf[i], ((const uint8_t *)expect)[i],
			     "device read 0x%" PRIx64 ": byte %zu is 0x%02x, host has 0x%02x", iova,
			     i, buf[i], ((const uint8_t *)expect)[i]);
	free(buf);
}

/* Take every pending fault-log entry (at most @max) into @out; returns how many. */
static inline int tu_faults(struct iovaq_backend *be, struct iovaq_fault *out, size_t max)
{
	int n = iovaq_backend_faults(be, out, max);

	cr_assert_geq(n, 0, "iovaq_backend_faults: %d (%s)", n, iovaq_strerror(n));
	return n;
}

/* The fault log must hold exactly one entry, for @iova with @reason and @write. */
static inline void tu_expect_one_fault(struct iovaq_backend *be, iovaq_iova_t iova, uint32_t reason,
				       int write)
{
	struct iovaq_fault f[8];
	int n = tu_faults(be, f, 8);

	cr_assert_eq(n, 1, "expected 1 fault-log entry (0x%" PRIx64 ", reason %u), found %d", iova,
		     reason, n);
	cr_assert_eq(f[0].iova, iova, "fault at 0x%" PRIx64 ", expected 0x%" PRIx64, f[0].iova,
		     iova);
	cr_assert_eq(f[0].reason, reason, "fault reason %u at 0x%" PRIx64 ", expected %u",
		     f[0].reason, iova, reason);
	cr_assert_eq(f[0].write, write ? 1u : 0u, "fault write flag %u, expected %d", f[0].write,
		     write ? 1 : 0);
}

/* The fault log must be empty. */
static inline void tu_expect_no_fault(struct iovaq_backend *be)
{
	struct iovaq_fault f[8];
	int n = tu_faults(be, f, 8);

	cr_assert_eq(n, 0, "unexpected fault-log entry: 0x%" PRIx64 " reason %u", n ? f[0].iova : 0,
		     n ? f[0].reason : 0);
}

/* A device access of one byte at @iova must fault with @reason (and be logged so). */
static inline void tu_dma_faults(struct iovaq_backend *be, iovaq_iova_t iova, int write,
				 uint32_t reason)
{
	uint8_t b = 0x77;
	int err = tu_dma(iovaq_sim_of(be), iova, &b, 1, write, NULL);

	cr_assert_eq(err, -EFAULT, "device %s of 0x%" PRIx64 ": %d, expected -EFAULT",
		     write ? "write" : "read", iova, err);
	tu_expect_one_fault(be, iova, reason, write);
}

#endif /* IOVAQ_SIMUTIL_H */
