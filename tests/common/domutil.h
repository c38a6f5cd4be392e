/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Helpers for the tests of the domain layer (include/iovaq/domain.h) on the sim backend:
 * opening a sim, building domains, snapshots of the domain's stats, window report and the
 * sim's counters, the invariant check after every failure path, host buffers, the device
 * (iovaq_sim_dma()) as a one-line probe, and metadata hooks that count and fail on demand.
 *
 * Self-contained on top of testutil.h (names start du_/DU_) so that it can be included with
 * or without simutil.h. Include after defining _GNU_SOURCE.
 */
#ifndef IOVAQ_DOMUTIL_H
#define IOVAQ_DOMUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "testutil.h"

#define DU_G ((uint64_t)4096)

/* Sanitized builds get wider timing margins (they run several times slower). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define DU_SANITIZED 1
#endif
#endif
#ifndef DU_SANITIZED
#define DU_SANITIZED 0
#endif

/* The library's clock (CLOCK_MONOTONIC, ns): the sim stamps accesses with it too. */
static inline uint64_t du_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void du_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- sim ------------------------------------------------------------------------------ */

/* Open a sim with IOVAQ_SIM_* @flags and @seed; must succeed. */
static inline struct iovaq_backend *du_sim_open_seed(uint32_t flags, uint64_t seed)
{
	IOVAQ_OPTS(iovaq_sim_opts, so, .seed = seed, .flags = flags);
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = "sim", .backend_opts = &so);
	struct iovaq_backend *be = NULL;
	int err = iovaq_backend_open(&o, &be);

	cr_assert_eq(err, 0, "open sim: %d (%s): %s", err, iovaq_strerror(err),
		     iovaq_backend_why());
	cr_assert_not_null(iovaq_sim_of(be));
	return be;
}

static inline struct iovaq_backend *du_sim_open(uint32_t flags)
{
	return du_sim_open_seed(flags, 0x5eed);
}

static inline struct iovaq_sim_counters du_simc(struct iovaq_backend *be)
{
	IOVAQ_OPTS(iovaq_sim_counters, c);
	int err = iovaq_sim_get_counters(iovaq_sim_of(be), &c);

	cr_assert_eq(err, 0, "iovaq_sim_get_counters: %d", err);
	return c;
}

/* Arm the sim's one-shot failure of the @nth next @op; must succeed. */
static inline void du_fail_nth(struct iovaq_backend *be, enum iovaq_sim_op op, uint64_t nth,
			       int err)
{
	int r = iovaq_sim_fail_nth(iovaq_sim_of(be), op, nth, err);

	cr_assert_eq(r, 0, "iovaq_sim_fail_nth(%d, %" PRIu64 ", %d): %d", (int)op, nth, err, r);
}

/* ---- domain --------------------------------------------------------------------------- */

/* Create a domain from @o (o->backend set by the caller); must succeed. */
static inline struct iovaq_domain *du_domain(const struct iovaq_domain_opts *o)
{
	struct iovaq_domain *dom = NULL;
	int err = iovaq_domain_create(o, &dom);

	cr_assert_eq(err, 0, "iovaq_domain_create: %d (%s)", err, iovaq_strerror(err));
	cr_assert_not_null(dom);
	return dom;
}

/* A domain on @be with @policy and @flusher and otherwise default options. */
static inline struct iovaq_domain *du_domain_simple(struct iovaq_backend *be, uint32_t policy,
						    uint32_t flusher)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy, .flusher = flusher);

	return du_domain(&o);
}

static inline struct iovaq_domain_stats du_stats(struct iovaq_domain *dom)
{
	IOVAQ_OPTS(iovaq_domain_stats, s);
	int err = iovaq_domain_get_stats(dom, &s);

	cr_assert_eq(err, 0, "iovaq_domain_get_stats: %d", err);
	return s;
}

static inline struct iovaq_window_report du_win(struct iovaq_domain *dom)
{
	IOVAQ_OPTS(iovaq_window_report, w);
	int err = iovaq_domain_window(dom, &w);

	cr_assert_eq(err, 0, "iovaq_domain_window: %d", err);
	return w;
}

static inline struct iovaq_stats du_space_stats(struct iovaq_domain *dom)
{
	IOVAQ_OPTS(iovaq_stats, st);
	int err = iovaq_space_stats(iovaq_cache_space(iovaq_domain_cache(dom)), &st);

	cr_assert_eq(err, 0, "iovaq_space_stats: %d", err);
	return st;
}

/* The state invariant (every granule FREE, CACHED, ALLOCATED or QUEUED, once) must hold. */
#define DU_CHECK(dom, ...)                                                                       \
	do {                                                                                     \
		int chk_ = iovaq_domain_check(dom);                                              \
		cr_assert_eq(chk_, 0, "%s:%d: iovaq_domain_check: %d (%s)", __FILE__, __LINE__,  \
			     chk_, iovaq_strerror(chk_));                                        \
	} while (0)

/* @expr must return @err (and the invariant hold afterwards). */
#define DU_EXPECT(dom, expr, err)                                                                \
	do {                                                                                     \
		int got_ = (expr);                                                               \
		cr_assert_eq(got_, (err), "%s:%d: %s returned %d (%s), expected %d (%s)",        \
			     __FILE__, __LINE__, #expr, got_, iovaq_strerror(got_), (int)(err),  \
			     iovaq_strerror(err));                                               \
		DU_CHECK(dom);                                                                   \
	} while (0)

#define DU_OK(expr)                                                                              \
	do {                                                                                     \
		int got_ = (expr);                                                               \
		cr_assert_eq(got_, 0, "%s:%d: %s returned %d (%s)", __FILE__, __LINE__, #expr,   \
			     got_, iovaq_strerror(got_));                                        \
	} while (0)

/* Map @buf (@pages granules, read/write, any IOVA); must succeed. */
static inline iovaq_iova_t du_map(struct iovaq_domain *dom, void *buf, uint64_t pages)
{
	iovaq_iova_t iova = 0;
	int err = iovaq_domain_map(dom, buf, pages * DU_G, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
				   IOVAQ_LIMIT_NONE, &iova);

	cr_assert_eq(err, 0, "map %" PRIu64 " pages: %d (%s)", pages, err, iovaq_strerror(err));
	cr_assert_eq(iova % DU_G, 0, "map returned a misaligned IOVA 0x%" PRIx64, iova);
	return iova;
}

static inline void du_unmap(struct iovaq_domain *dom, iovaq_iova_t iova, uint64_t pages,
			    uint64_t cookie)
{
	int err = iovaq_domain_unmap(dom, iova, pages * DU_G, cookie);

	cr_assert_eq(err, 0, "unmap 0x%" PRIx64 "+%" PRIu64 " pages: %d (%s)", iova, pages, err,
		     iovaq_strerror(err));
}

static inline int du_overlap(iovaq_iova_t a, uint64_t a_pages, iovaq_iova_t b, uint64_t b_pages)
{
	return a < b + b_pages * DU_G && b < a + a_pages * DU_G;
}

/* ---- host buffers --------------------------------------------------------------------- */

/* The pattern byte of buffer @seed at offset @off. */
static inline uint8_t du_pat(uint64_t seed, uint64_t off)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + (off >> 3) * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 29;
	return (uint8_t)(x >> ((off & 7) * 8));
}

static inline void du_fill(void *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = du_pat(seed, i);
}

/* @pages granules of host memory aligned to @align bytes (>= 4 KiB), filled with @seed. */
static inline void *du_buf_aligned(uint64_t pages, size_t align, uint64_t seed)
{
	void *p = NULL;

	cr_assert_eq(posix_memalign(&p, align < DU_G ? DU_G : align, pages * DU_G), 0);
	du_fill(p, pages * DU_G, seed);
	return p;
}

static inline void *du_buf(uint64_t pages, uint64_t seed)
{
	return du_buf_aligned(pages, DU_G, seed);
}

/* ---- the device ------------------------------------------------------------------------- */

/* The device reads @len bytes at @iova; returns the errno, fills *@res. */
static inline int du_dma(struct iovaq_backend *be, iovaq_iova_t iova, size_t len,
			 struct iovaq_sim_access *res)
{
	static __thread uint8_t sink[2 * 4096];
	struct iovaq_sim_access tmp;
	uint8_t *b = len <= sizeof(sink) ? sink : malloc(len);
	int err;

	cr_assert_not_null(b);
	err = iovaq_sim_dma(iovaq_sim_of(be), iova, b, len, 0, res ? res : &tmp);
	if (b != sink)
		free(b);
	return err;
}

/* Every page of [iova, +pages) must translate through the current mapping (no stale hit). */
static inline void du_dma_ok(struct iovaq_backend *be, iovaq_iova_t iova, uint64_t pages,
			     const void *expect)
{
	uint8_t *b = malloc(pages * DU_G);
	struct iovaq_sim_access r;
	int err;

	cr_assert_not_null(b);
	err = iovaq_sim_dma(iovaq_sim_of(be), iova, b, pages * DU_G, 0, &r);
	cr_assert_eq(err, 0, "device read of 0x%" PRIx64 "+%" PRIu64 " pages: %d", iova, pages,
		     err);
	cr_assert_eq(r.stale_pages, 0, "device read of 0x%" PRIx64 ": %" PRIu64 " stale pages",
		     iova, r.stale_pages);
	if (expect)
		cr_assert_eq(memcmp(b, expect, pages * DU_G), 0,
			     "device read of 0x%" PRIx64 " does not see the host buffer", iova);
	free(b);
}

/* A device read of each page of [iova, +pages) must fault, and none may be a stale hit. */
static inline void du_dma_faults(struct iovaq_backend *be, iovaq_iova_t iova, uint64_t pages)
{
	for (uint64_t p = 0; p < pages; p++) {
		struct iovaq_sim_access r;
		int err = du_dma(be, iova + p * DU_G, 8, &r);

		cr_assert_eq(err, -EFAULT,
			     "device read of 0x%" PRIx64 " after t_safe: %d (stale pages %" PRIu64
			     "), expected a fault",
			     iova + p * DU_G, err, r.stale_pages);
		cr_assert_eq(r.stale_pages, 0);
	}
}

/* Drain the sim's fault log; returns how many entries had @reason (0: any). */
static inline int du_drain_faults(struct iovaq_backend *be, uint32_t reason)
{
	struct iovaq_fault f[64];
	int n, hits = 0;

	while ((n = iovaq_backend_faults(be, f, 64)) > 0)
		for (int i = 0; i < n; i++)
			hits += !reason || f[i].reason == reason;
	return hits;
}

/* ---- metadata hooks ------------------------------------------------------------------- */

/*
 * Hooks that count live blocks and bytes, and fail the @fail_at'th alloc call since arming
 * (once). Thread-safe (a flusher thread may allocate).
 */
struct du_hooks {
	pthread_mutex_t mu;
	long calls, fail_at, fired;
	int paused;		/* calls neither counted nor failed (a check's own allocations) */
	long allocs, frees;
	size_t live_bytes;
};

static inline void *du_hook_alloc(void *ctx, size_t size, size_t align)
{
	struct du_hooks *h = ctx;
	void *p = NULL;

	pthread_mutex_lock(&h->mu);
	if (!h->paused)
		h->calls++;
	if (!h->paused && h->fail_at && h->calls == h->fail_at) {
		h->fired++;
		pthread_mutex_unlock(&h->mu);
		return NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1))
		return NULL;
	pthread_mutex_lock(&h->mu);
	h->allocs++;
	h->live_bytes += size;
	pthread_mutex_unlock(&h->mu);
	return p;
}

static inline void du_hook_free(void *ctx, void *ptr, size_t size)
{
	struct du_hooks *h = ctx;

	if (!ptr)
		return;
	pthread_mutex_lock(&h->mu);
	h->frees++;
	h->live_bytes -= size;
	pthread_mutex_unlock(&h->mu);
	free(ptr);
}

static inline void du_hooks_init(struct du_hooks *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->mu, NULL);
}

static inline struct iovaq_alloc_hooks du_hooks_of(struct du_hooks *h)
{
	struct iovaq_alloc_hooks k = { du_hook_alloc, du_hook_free, h };

	return k;
}

/* Fail the @nth alloc call from now on (1: the next); 0 never. */
static inline void du_hooks_arm(struct du_hooks *h, long nth)
{
	pthread_mutex_lock(&h->mu);
	h->calls = 0;
	h->fail_at = nth;
	h->fired = 0;
	pthread_mutex_unlock(&h->mu);
}

/* Pause (1) or resume (0) counting and failing. */
static inline void du_hooks_pause(struct du_hooks *h, int paused)
{
	pthread_mutex_lock(&h->mu);
	h->paused = paused;
	pthread_mutex_unlock(&h->mu);
}

static inline long du_hooks_fired(struct du_hooks *h)
{
	long f;

	pthread_mutex_lock(&h->mu);
	f = h->fired;
	pthread_mutex_unlock(&h->mu);
	return f;
}

#endif /* IOVAQ_DOMUTIL_H */
