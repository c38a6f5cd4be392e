/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench run: one invalidation policy on one DMA workload, through a libiovaq domain.
 *
 * A run answers "what does this policy cost on this I/O pattern": wall time per workload op
 * (timed), invalidation commands per unmapped page and the safety-window account (counted by
 * the domain), and on the sim backend what the device's address translation and the CPU side
 * cost in the sim's model (counted, deterministic for a seed with one thread).
 *
 * Workloads (granule 4 KiB; every buffer is a page of a preallocated per-thread pool of host
 * pages; "op" is the unit ns_per_op divides by):
 *   nic-rx     a ring of 1024 one-page RX buffers mapped for device writes. One op: the device
 *              writes a packet (the whole page) into the oldest buffer, the driver unmaps it
 *              and maps a fresh page into that slot.
 *   nic-tx     one op: the driver fills a fresh page, maps it for device reads, the device
 *              reads it; completions are unmapped in batches of 64 (every 64th op).
 *   memcached  one op = one request: an RX page (map, device write, unmap), then a TX page
 *              (map, device read, unmap).
 *   nginx      one op = one 1 MiB response in 16 TSO chunks of 64 KiB: per chunk, 16 pages
 *              are mapped one by one, the device reads them, the driver unmaps them.
 * safe-deferred+arenas is the safe-deferred domain where the buffers are linked into arenas
 * (iovaq_arena_*, F&S's one contiguous chunk per descriptor) instead of mapped one by one:
 *   nic-rx     the ring is 16 descriptors of 64 slots, one 64-page arena each; a consumed slot
 *              is unlinked at once, and when the descriptor's last slot is consumed it gets
 *              one arena sync and is refilled (64 links) in a ready arena;
 *   nic-tx     one 64-page arena per completion batch: 64 links, one unlink of all 64 pages,
 *              one sync;
 *   memcached  one 2-page arena per request (RX page 0, TX page 1), one sync per request;
 *   nginx      one 256-page arena per response, 16 links per chunk, one unlink and one sync
 *              per chunk.
 * Arenas are recycled, not released: an arena whose last sync is safe (its cookie came back)
 * is ready for reuse; when none is ready a new one is reserved. The domain accounts an arena's
 * pages as released at their unlink, so the window includes the time until the sync.
 *
 * Host pages go back to the pool as the policy allows: strict, deferred and passthrough on
 * return from unmap (deferred: while still reachable, the unsafe reuse the domain counts);
 * safe-deferred only when the unmap's cookie comes back at t_safe (completion callback).
 *
 * --background N adds other users of the IOVA space (never mapped; see bg_fill()), so that the
 * workload's IOVAs are scattered as on a busy allocator (F&S's baseline).
 *
 * Device accesses go through iovaq_sim_dma() on sim and check the bytes; under passthrough
 * there is no translation and the "device" copies host memory directly (memcpy of the same
 * bytes, so that wall times compare); on other backends there is no device model and device
 * accesses are skipped (the output says so).
 *
 * Measurement: every repetition builds a fresh backend and domain and replays the same ops.
 * Each thread (own ring and pool on the one shared domain, pinned to CPU i mod the allowed
 * CPUs) fills its ring untimed, then all start together; the sim's counters are reset and
 * the domain's counters snapshotted at the start gate. The clock stops after the last
 * thread's last op plus one iovaq_domain_sync(), so that every page unmapped by the timed ops
 * is invalidated inside the timed region. ns_per_op = that wall time / all threads' ops;
 * the median over the repetitions is reported, and every other figure comes from the
 * repetition with the median time.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>

#include "bench.h"

#define PAGE 4096ULL
#define TAG_MAGIC 0x696f7661712d7278ULL	/* "iovaq-rx" */
#define MAX_THREADS 64
#define MAX_OPS 1000000000ULL
#define MAX_REPS 1000
#define DEFAULT_REPS 5
#define DEFAULT_SEED 1
#define POOL_SLACK 512		/* pages beyond outstanding + the reachable bound */
#define REC_MAX_PAGES 64	/* pages per arena sync, at most */

enum policy {
	P_STRICT,
	P_DEFERRED,
	P_SAFE,
	P_ARENAS,
	P_PASS,
	P_NR,
};

const char *const bench_policy_names[] = {
	[P_STRICT] = "strict",
	[P_DEFERRED] = "deferred",
	[P_SAFE] = "safe-deferred",
	[P_ARENAS] = "safe-deferred+arenas",
	[P_PASS] = "passthrough",
	NULL,
};

static const uint32_t lib_policy[P_NR] = {
	[P_STRICT] = IOVAQ_POLICY_STRICT,
	[P_DEFERRED] = IOVAQ_POLICY_DEFERRED,
	[P_SAFE] = IOVAQ_POLICY_SAFE_DEFERRED,
	[P_ARENAS] = IOVAQ_POLICY_SAFE_DEFERRED,
	[P_PASS] = IOVAQ_POLICY_PASSTHROUGH,
};

enum workload {
	W_NIC_RX,
	W_NIC_TX,
	W_MEMCACHED,
	W_NGINX,
	W_NR,
};

const char *const bench_workload_names[] = {
	[W_NIC_RX] = "nic-rx",
	[W_NIC_TX] = "nic-tx",
	[W_MEMCACHED] = "memcached",
	[W_NGINX] = "nginx",
	NULL,
};

#define RX_RING 1024
#define RX_DESC 64		/* arenas: ring slots per descriptor */
#define TX_BATCH 64
#define NGINX_CHUNKS 16
#define NGINX_CHUNK_PAGES 16

static const struct wl_def {
	uint64_t ops;		/* default ops per thread */
	unsigned int pages;	/* pages DMA'd and unmapped per op */
	unsigned int outstanding;	/* pages mapped at once, at most, per thread */
	unsigned int arena_pages;	/* pages per arena */
	unsigned int sync_pages;	/* pages per arena sync */
} wl_defs[W_NR] = {
	[W_NIC_RX] = { 100000, 1, RX_RING, RX_DESC, RX_DESC },
	[W_NIC_TX] = { 100000, 1, TX_BATCH, TX_BATCH, TX_BATCH },
	[W_MEMCACHED] = { 50000, 2, 2, 2, 2 },
	[W_NGINX] = { 400, NGINX_CHUNKS * NGINX_CHUNK_PAGES, NGINX_CHUNKS * NGINX_CHUNK_PAGES,
		      NGINX_CHUNKS * NGINX_CHUNK_PAGES, NGINX_CHUNK_PAGES },
};

const char *const bench_backend_names[] = { "sim", "iommufd", "vfio-type1", "kshim", NULL };
/* In the order of enum iovaq_ring_layout. */
const char *const bench_ring_names[] = { "auto", "shared", "percpu", NULL };

const char *const bench_model_names[] = {
	[BENCH_M_NATIVE] = "native",
	[BENCH_M_NESTED] = "nested",
	[BENCH_M_NESTED_CM] = "nested+cm",
	NULL,
};

enum dev_mode {
	DEV_SIM,	/* iovaq_sim_dma() */
	DEV_DIRECT,	/* passthrough: memcpy, no translation */
	DEV_NONE,	/* no device model: skipped */
};

static const char *const dev_mode_names[] = {
	[DEV_SIM] = "sim",
	[DEV_DIRECT] = "direct",
	[DEV_NONE] = "skipped",
};

static_assert(P_NR == BENCH_N_POLICIES, "bench.h's policy count");
static_assert(W_NR == BENCH_N_WORKLOADS, "bench.h's workload count");

/* ---- per-thread state --------------------------------------------------------------------- */

/* The pages of one arena sync, handed back with its cookie. */
struct rec {
	struct iovaq_arena *arena;
	uint32_t ready;		/* the arena's last sync of this use: reusable once safe */
	uint32_t n;
	uint32_t page[REC_MAX_PAGES];
};

struct slot {
	iovaq_iova_t iova;
	uint32_t page;
};

/* nic-rx with arenas: one descriptor of RX_DESC ring slots. */
struct desc {
	struct iovaq_arena *a;
	iovaq_iova_t base;
	uint32_t page[RX_DESC];
};

struct ctx;

struct worker {
	struct ctx *c;
	unsigned int idx;
	int cpu;
	int pin_err;

	/* Host page pool: LIFO stack of free page numbers. */
	unsigned char *mem;
	uint32_t npages;
	uint32_t *freep;
	uint32_t nfree;

	/* Cookies handed back by completions (any thread), drained by the owner. */
	pthread_mutex_t rlock;
	uint64_t *ret;
	uint32_t nret;
	uint32_t ret_cap;
	atomic_uint has_ret;

	/* Arena sync records and arenas (safe-deferred+arenas). */
	struct rec *recs;
	uint32_t *freerec;
	uint32_t nfreerec;
	uint32_t nrecs;
	struct iovaq_arena **ready;	/* safe and empty, ready for reuse */
	uint32_t nready;
	struct iovaq_arena **all;	/* every arena reserved, for teardown */
	uint32_t nall, all_cap;

	/* Background IOVA traffic (other users of the IOVA space, never mapped). */
	struct iovaq_cache *bgc;
	uint64_t *bg;			/* IOVA | log2(granules) per slot */
	uint32_t nbg;
	struct bench_rng rng;

	/* Workload state. */
	struct slot *ring;		/* nic-rx ring, nic-tx pending completions, nginx chunk */
	struct desc *desc;		/* nic-rx with arenas */
	uint32_t head;
	uint32_t pend;			/* nic-tx: completions pending */
	struct iovaq_arena *cur;	/* nic-tx with arenas: the batch's arena */
	unsigned char *devbuf;		/* the device's side of a transfer */
	uint64_t tag;

	/* Results of the timed ops. */
	uint64_t t0, t1;
	uint64_t dma_pages;
	uint64_t unmapped_pages;
	uint64_t pool_syncs;
	uint64_t arenas_reserved;
	uint64_t dev_ns;		/* device accesses, breakdown repetition only */

	int err;
	char msg[320];
	pthread_t tid;
} __attribute__((aligned(64)));

struct ctx {
	const struct bench_run_cfg *cfg;
	const struct wl_def *wd;
	struct iovaq_backend *be;
	struct iovaq_sim *sim;
	struct iovaq_domain *dom;
	enum dev_mode dev;
	bool safe;		/* pages come back by cookie */
	bool arenas;
	bool timing;		/* the breakdown repetition: IOVAQ_DOMAIN_TIMING, device timed */
	struct worker *ws;

	struct bench_gate gate;
};

static __attribute__((format(printf, 3, 4), cold, noinline)) int
wfail(struct worker *w, int err, const char *fmt, ...)
{
	va_list ap;

	if (w->err)
		return w->err;
	w->err = err ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	return w->err;
}

/* ---- cookies and completions -------------------------------------------------------------- */

#define CK_THREAD_SHIFT 40
#define CK_REC (1ULL << 39)
#define CK_IDX_MASK ((1ULL << 32) - 1)

static uint64_t cookie_page(const struct worker *w, uint32_t page)
{
	return ((uint64_t)w->idx << CK_THREAD_SHIFT) | page;
}

static uint64_t cookie_rec(const struct worker *w, uint32_t rec)
{
	return ((uint64_t)w->idx << CK_THREAD_SHIFT) | CK_REC | rec;
}

/*
 * Safe-deferred completion: runs on whichever thread completed the flush (any worker, or the
 * main thread's sync), with no domain lock held. It only queues the cookie for its owner.
 */
static void on_complete(void *arg, uint64_t cookie)
{
	struct ctx *c = arg;
	struct worker *w = &c->ws[cookie >> CK_THREAD_SHIFT];

	pthread_mutex_lock(&w->rlock);
	if (w->nret < w->ret_cap)
		w->ret[w->nret++] = cookie;
	else
		w->err = w->err ? w->err : -EOVERFLOW;	/* cannot happen: ret_cap bounds cookies */
	atomic_store_explicit(&w->has_ret, 1, memory_order_release);
	pthread_mutex_unlock(&w->rlock);
}

static void page_put(struct worker *w, uint32_t page)
{
	w->freep[w->nfree++] = page;
}

/* Take back what completions returned: pages to the pool, records and arenas for reuse. */
static void drain(struct worker *w)
{
	uint32_t i, n;

	if (!atomic_load_explicit(&w->has_ret, memory_order_acquire))
		return;
	pthread_mutex_lock(&w->rlock);
	n = w->nret;
	for (i = 0; i < n; i++) {
		uint64_t ck = w->ret[i];
		uint32_t idx = (uint32_t)(ck & CK_IDX_MASK);

		if (ck & CK_REC) {
			struct rec *r = &w->recs[idx];

			for (uint32_t k = 0; k < r->n; k++)
				page_put(w, r->page[k]);
			if (r->ready)
				w->ready[w->nready++] = r->arena;
			w->freerec[w->nfreerec++] = idx;
		} else {
			page_put(w, idx);
		}
	}
	w->nret = 0;
	atomic_store_explicit(&w->has_ret, 0, memory_order_relaxed);
	pthread_mutex_unlock(&w->rlock);
}

/* Wait for completions: flush the queue now (counted: the pool was too small to hide it). */
static int pool_sync(struct worker *w)
{
	int err = iovaq_domain_sync(w->c->dom);

	w->pool_syncs++;
	if (err)
		return wfail(w, err, "iovaq_domain_sync (pool empty): %s (%d)", iovaq_strerror(err),
			     err);
	drain(w);
	return 0;
}

static inline int page_get(struct worker *w, uint32_t *page)
{
	drain(w);
	if (bench_unlikely(!w->nfree)) {
		int err = pool_sync(w);

		if (err)
			return err;
		if (!w->nfree)
			return wfail(w, -ENOMEM, "host page pool of %u pages exhausted", w->npages);
	}
	*page = w->freep[--w->nfree];
	return 0;
}

static inline unsigned char *host(const struct worker *w, uint32_t page)
{
	return w->mem + (size_t)page * PAGE;
}

/* After an unmap or unlink: the page goes back now, unless its cookie brings it back. */
static inline void released(struct worker *w, uint32_t page)
{
	if (!w->c->safe)
		page_put(w, page);
}

static int rec_get(struct worker *w, uint32_t *rec)
{
	drain(w);
	if (bench_unlikely(!w->nfreerec)) {
		int err = pool_sync(w);

		if (err)
			return err;
		if (!w->nfreerec)
			return wfail(w, -ENOMEM, "arena sync records exhausted (%u)", w->nrecs);
	}
	*rec = w->freerec[--w->nfreerec];
	return 0;
}

/* A ready arena, or a new one. */
static int arena_get(struct worker *w, struct iovaq_arena **out)
{
	int err;

	drain(w);
	if (w->nready) {
		*out = w->ready[--w->nready];
		return 0;
	}
	if (w->nall == w->all_cap) {
		uint32_t cap = w->all_cap ? 2 * w->all_cap : 64;
		struct iovaq_arena **a = realloc(w->all, cap * sizeof(*a));
		struct iovaq_arena **r = realloc(w->ready, cap * sizeof(*r));

		if (a)
			w->all = a;
		if (r)
			w->ready = r;
		if (!a || !r)
			return wfail(w, -ENOMEM, "out of memory for %u arenas", cap);
		w->all_cap = cap;
	}
	err = iovaq_arena_reserve(w->c->dom, w->c->wd->arena_pages, IOVAQ_LIMIT_NONE, out);
	if (err)
		return wfail(w, err, "iovaq_arena_reserve(%u pages): %s (%d)", w->c->wd->arena_pages,
			     iovaq_strerror(err), err);
	w->all[w->nall++] = *out;
	w->arenas_reserved++;
	return 0;
}

/* ---- the device --------------------------------------------------------------------------- */

/*
 * The breakdown repetition times the device's accesses (the simulator's software, or the
 * passthrough copy), so that they can be told apart from the host's own work.
 */
static inline uint64_t dev_clock(const struct ctx *c)
{
	return c->timing ? bench_now_ns() : 0;
}

static inline void dev_clock_add(struct worker *w, uint64_t t0)
{
	if (w->c->timing)
		w->dev_ns += bench_now_ns() - t0;
}

/* The device writes a packet (the whole page) to @iova; the driver checks its header. */
static inline int dev_write(struct worker *w, iovaq_iova_t iova, uint32_t page)
{
	struct ctx *c = w->c;
	uint64_t tag = ++w->tag ^ TAG_MAGIC, got, t0;

	if (c->dev == DEV_NONE)
		return 0;
	memcpy(w->devbuf, &tag, sizeof(tag));
	t0 = dev_clock(c);
	if (c->dev == DEV_SIM) {
		struct iovaq_sim_access acc;
		int err = iovaq_sim_dma(c->sim, iova, w->devbuf, PAGE, 1, &acc);

		if (bench_unlikely(err || acc.stale_pages || acc.pages != 1))
			return wfail(w, err, "iovaq_sim_dma(0x%" PRIx64 ", 4 KiB, write): %s (%d), "
				     "%" PRIu64 " pages, %" PRIu64 " stale", iova, iovaq_strerror(err),
				     err, acc.pages, acc.stale_pages);
	} else {
		memcpy(host(w, page), w->devbuf, PAGE);
	}
	dev_clock_add(w, t0);
	memcpy(&got, host(w, page), sizeof(got));
	if (bench_unlikely(got != tag))
		return wfail(w, -EIO, "device write to 0x%" PRIx64 " did not reach host page %u: "
			     "translation bug", iova, page);
	w->dma_pages++;
	return 0;
}

/* The driver fills a page before mapping it for the device to read. */
static inline void drv_fill(struct worker *w, uint32_t page)
{
	uint64_t tag = ++w->tag ^ TAG_MAGIC;

	memcpy(host(w, page), &tag, sizeof(tag));
}

/* The device reads the whole page at @iova and checks what the driver wrote. */
static inline int dev_read(struct worker *w, iovaq_iova_t iova, uint32_t page)
{
	struct ctx *c = w->c;
	uint64_t want, got, t0;

	if (c->dev == DEV_NONE)
		return 0;
	memcpy(&want, host(w, page), sizeof(want));
	t0 = dev_clock(c);
	if (c->dev == DEV_SIM) {
		struct iovaq_sim_access acc;
		int err = iovaq_sim_dma(c->sim, iova, w->devbuf, PAGE, 0, &acc);

		if (bench_unlikely(err || acc.stale_pages || acc.pages != 1))
			return wfail(w, err, "iovaq_sim_dma(0x%" PRIx64 ", 4 KiB, read): %s (%d), "
				     "%" PRIu64 " pages, %" PRIu64 " stale", iova, iovaq_strerror(err),
				     err, acc.pages, acc.stale_pages);
	} else {
		memcpy(w->devbuf, host(w, page), PAGE);
	}
	dev_clock_add(w, t0);
	memcpy(&got, w->devbuf, sizeof(got));
	if (bench_unlikely(got != want))
		return wfail(w, -EIO, "device read of 0x%" PRIx64 " did not see host page %u: "
			     "translation bug", iova, page);
	w->dma_pages++;
	return 0;
}

/* ---- background IOVA traffic --------------------------------------------------------------- */

/*
 * Other users of the domain's IOVA space (other rings, flows, devices' buffers), as in
 * "iovaq-bench sim": --background slots of issue 2's "mixed" sizes (70% 1 granule, 15% 2/4,
 * 10% 8/16/32, 5% 64/128/256) allocated through the domain's magazine cache and never mapped,
 * churned (a random slot gets a new IOVA, its old one is freed) 16 times per slot before the
 * workload starts and once before every page the workload maps or links. They scatter the
 * workload's IOVAs the way a busy allocator does, without adding mappings, unmaps or
 * invalidations to the figures.
 */
#define LG_MASK 0xfULL
#define BG_PRECHURN 16


static inline int bg_pair(struct worker *w)
{
	uint64_t *s;
	unsigned int lg;
	iovaq_iova_t iova;
	int err;

	if (!w->nbg)
		return 0;
	s = &w->bg[bench_rng_below(&w->rng, w->nbg)];
	lg = bench_mixed_order(&w->rng);
	err = iovaq_cache_alloc(w->bgc, 1ULL << lg, IOVAQ_LIMIT_NONE, &iova);
	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_cache_alloc(%llu granules, background): %s (%d)",
			     1ULL << lg, iovaq_strerror(err), err);
	err = iovaq_cache_free(w->bgc, *s & ~LG_MASK, 1ULL << (*s & LG_MASK));
	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_cache_free(0x%" PRIx64 ", background): %s (%d)",
			     (uint64_t)(*s & ~LG_MASK), iovaq_strerror(err), err);
	*s = iova | lg;
	return 0;
}

static int bg_fill(struct worker *w)
{
	uint32_t want = w->c->cfg->background;
	int err = 0;

	w->bgc = iovaq_domain_cache(w->c->dom);
	for (w->nbg = 0; w->nbg < want; w->nbg++) {
		unsigned int lg = bench_mixed_order(&w->rng);
		iovaq_iova_t iova;

		err = iovaq_cache_alloc(w->bgc, 1ULL << lg, IOVAQ_LIMIT_NONE, &iova);
		if (err)
			return wfail(w, err, "iovaq_cache_alloc(%llu granules, background fill): "
				     "%s (%d)", 1ULL << lg, iovaq_strerror(err), err);
		w->bg[w->nbg] = iova | lg;
	}
	for (uint64_t k = 0; k < (uint64_t)BG_PRECHURN * w->nbg && !err; k++)
		err = bg_pair(w);
	return err;
}

static void bg_free(struct worker *w)
{
	for (uint32_t k = 0; k < w->nbg; k++)
		iovaq_cache_free(w->bgc, w->bg[k] & ~LG_MASK, 1ULL << (w->bg[k] & LG_MASK));
	w->nbg = 0;
}

/* ---- map and unmap, one page --------------------------------------------------------------- */

static inline int map_page(struct worker *w, uint32_t page, unsigned int prot, iovaq_iova_t *iova)
{
	int err = bg_pair(w);

	if (bench_unlikely(err))
		return err;
	err = iovaq_domain_map(w->c->dom, host(w, page), PAGE, prot, IOVAQ_LIMIT_NONE, iova);
	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_domain_map(host page %u, 4 KiB): %s (%d)", page,
			     iovaq_strerror(err), err);
	return 0;
}

static inline int unmap_page(struct worker *w, iovaq_iova_t iova, uint32_t page)
{
	int err = iovaq_domain_unmap(w->c->dom, iova, PAGE, cookie_page(w, page));

	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_domain_unmap(0x%" PRIx64 ", 4 KiB): %s (%d)", iova,
			     iovaq_strerror(err), err);
	w->unmapped_pages++;
	released(w, page);
	return 0;
}

static inline int link_page(struct worker *w, struct iovaq_arena *a, uint64_t idx,
			    uint32_t page, unsigned int prot, iovaq_iova_t *iova)
{
	int err = bg_pair(w);

	if (bench_unlikely(err))
		return err;
	err = iovaq_arena_link(a, idx, host(w, page), PAGE, prot, iova);
	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_arena_link(arena 0x%" PRIx64 ", page %" PRIu64 "): %s "
			     "(%d)", iovaq_arena_base(a), idx, iovaq_strerror(err), err);
	return 0;
}

static inline int unlink_pages(struct worker *w, struct iovaq_arena *a, uint64_t idx,
			       uint64_t n)
{
	int err = iovaq_arena_unlink(a, idx, n * PAGE);

	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_arena_unlink(arena 0x%" PRIx64 ", pages %" PRIu64
			     "+%" PRIu64 "): %s (%d)", iovaq_arena_base(a), idx, n,
			     iovaq_strerror(err), err);
	w->unmapped_pages += n;
	return 0;
}

/* One sync of @a for the @n pages in @pages; @ready: the arena's use ends with it. */
static int arena_sync_rec(struct worker *w, struct iovaq_arena *a, const uint32_t *pages,
			  uint32_t n, bool ready)
{
	struct rec *r;
	uint32_t id = 0;
	int err = rec_get(w, &id);

	if (err)
		return err;
	r = &w->recs[id];
	r->arena = a;
	r->ready = ready;
	r->n = n;
	memcpy(r->page, pages, n * sizeof(*pages));
	err = iovaq_arena_sync(a, cookie_rec(w, id));
	if (bench_unlikely(err))
		return wfail(w, err, "iovaq_arena_sync(arena 0x%" PRIx64 "): %s (%d)",
			     iovaq_arena_base(a), iovaq_strerror(err), err);
	return 0;
}

/* ---- workloads ---------------------------------------------------------------------------- */

/* nic-rx: fill the ring (untimed). */
static int rx_fill(struct worker *w)
{
	for (uint32_t s = 0; s < RX_RING; s++) {
		int err = page_get(w, &w->ring[s].page);

		if (!err)
			err = map_page(w, w->ring[s].page, IOVAQ_PROT_WRITE, &w->ring[s].iova);
		if (err)
			return err;
	}
	w->head = 0;
	return 0;
}

static int rx_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		struct slot *s = &w->ring[w->head];
		int err;

		w->head = (w->head + 1) % RX_RING;
		err = dev_write(w, s->iova, s->page);
		if (!err)
			err = unmap_page(w, s->iova, s->page);
		if (!err)
			err = page_get(w, &s->page);
		if (!err)
			err = map_page(w, s->page, IOVAQ_PROT_WRITE, &s->iova);
		if (bench_unlikely(err))
			return err;
	}
	return 0;
}

static int rx_desc_fill(struct worker *w, struct desc *d)
{
	int err = arena_get(w, &d->a);

	if (err)
		return err;
	d->base = iovaq_arena_base(d->a);
	for (uint32_t j = 0; j < RX_DESC; j++) {
		err = page_get(w, &d->page[j]);
		if (!err)
			err = link_page(w, d->a, j, d->page[j], IOVAQ_PROT_WRITE, NULL);
		if (err)
			return err;
	}
	return 0;
}

static int rx_arena_fill(struct worker *w)
{
	for (uint32_t k = 0; k < RX_RING / RX_DESC; k++) {
		int err = rx_desc_fill(w, &w->desc[k]);

		if (err)
			return err;
	}
	w->head = 0;
	return 0;
}

static int rx_arena_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		uint32_t s = w->head, j = s % RX_DESC;
		struct desc *d = &w->desc[s / RX_DESC];
		int err;

		w->head = (w->head + 1) % RX_RING;
		err = dev_write(w, d->base + j * PAGE, d->page[j]);
		if (!err)
			err = unlink_pages(w, d->a, j, 1);
		if (!err && j == RX_DESC - 1) {
			err = arena_sync_rec(w, d->a, d->page, RX_DESC, true);
			if (!err)
				err = rx_desc_fill(w, d);
		}
		if (bench_unlikely(err))
			return err;
	}
	/*
	 * The slots consumed from the current descriptor are unlinked but not synced: sync them
	 * now, so that every page the timed ops released is queued for the final flush (the
	 * descriptor keeps its linked rest and is not reused).
	 */
	if (w->head % RX_DESC) {
		struct desc *d = &w->desc[w->head / RX_DESC];

		return arena_sync_rec(w, d->a, d->page, w->head % RX_DESC, false);
	}
	return 0;
}

/* nic-tx: complete what is pending (every TX_BATCH ops, and at the end of the timed ops). */
static int tx_complete(struct worker *w)
{
	for (uint32_t k = 0; k < w->pend; k++) {
		int err = unmap_page(w, w->ring[k].iova, w->ring[k].page);

		if (err)
			return err;
	}
	w->pend = 0;
	return 0;
}

static int tx_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		struct slot *s = &w->ring[w->pend];
		int err = page_get(w, &s->page);

		if (!err) {
			drv_fill(w, s->page);
			err = map_page(w, s->page, IOVAQ_PROT_READ, &s->iova);
		}
		if (!err)
			err = dev_read(w, s->iova, s->page);
		if (!err && ++w->pend == TX_BATCH)
			err = tx_complete(w);
		if (bench_unlikely(err))
			return err;
	}
	return tx_complete(w);
}

static int tx_arena_complete(struct worker *w)
{
	uint32_t pages[TX_BATCH];
	int err;

	if (!w->pend)
		return 0;
	for (uint32_t k = 0; k < w->pend; k++)
		pages[k] = w->ring[k].page;
	err = unlink_pages(w, w->cur, 0, w->pend);
	if (!err)
		err = arena_sync_rec(w, w->cur, pages, w->pend, true);
	w->cur = NULL;
	w->pend = 0;
	return err;
}

static int tx_arena_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		struct slot *s = &w->ring[w->pend];
		int err = 0;

		if (!w->pend)
			err = arena_get(w, &w->cur);
		if (!err)
			err = page_get(w, &s->page);
		if (!err) {
			drv_fill(w, s->page);
			err = link_page(w, w->cur, w->pend, s->page, IOVAQ_PROT_READ, &s->iova);
		}
		if (!err)
			err = dev_read(w, s->iova, s->page);
		if (!err && ++w->pend == TX_BATCH)
			err = tx_arena_complete(w);
		if (bench_unlikely(err))
			return err;
	}
	return tx_arena_complete(w);
}

/* memcached: one request = an RX page, then a TX page. */
static int mc_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		iovaq_iova_t iova = 0;
		uint32_t page = 0;
		int err = page_get(w, &page);

		if (!err)
			err = map_page(w, page, IOVAQ_PROT_WRITE, &iova);
		if (!err)
			err = dev_write(w, iova, page);
		if (!err)
			err = unmap_page(w, iova, page);
		if (!err)
			err = page_get(w, &page);
		if (!err) {
			drv_fill(w, page);
			err = map_page(w, page, IOVAQ_PROT_READ, &iova);
		}
		if (!err)
			err = dev_read(w, iova, page);
		if (!err)
			err = unmap_page(w, iova, page);
		if (bench_unlikely(err))
			return err;
	}
	return 0;
}

static int mc_arena_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		struct iovaq_arena *a = NULL;
		iovaq_iova_t iova = 0;
		uint32_t page[2] = { 0, 0 };
		int err = arena_get(w, &a);

		if (!err)
			err = page_get(w, &page[0]);
		if (!err)
			err = link_page(w, a, 0, page[0], IOVAQ_PROT_WRITE, &iova);
		if (!err)
			err = dev_write(w, iova, page[0]);
		if (!err)
			err = unlink_pages(w, a, 0, 1);
		if (!err)
			err = page_get(w, &page[1]);
		if (!err) {
			drv_fill(w, page[1]);
			err = link_page(w, a, 1, page[1], IOVAQ_PROT_READ, &iova);
		}
		if (!err)
			err = dev_read(w, iova, page[1]);
		if (!err)
			err = unlink_pages(w, a, 1, 1);
		if (!err)
			err = arena_sync_rec(w, a, page, 2, true);
		if (bench_unlikely(err))
			return err;
	}
	return 0;
}

/* nginx: one 1 MiB response in 16 chunks of 16 pages. */
static int nginx_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		for (uint32_t ch = 0; ch < NGINX_CHUNKS; ch++) {
			int err = 0;

			for (uint32_t j = 0; j < NGINX_CHUNK_PAGES && !err; j++) {
				struct slot *s = &w->ring[j];

				err = page_get(w, &s->page);
				if (!err) {
					drv_fill(w, s->page);
					err = map_page(w, s->page, IOVAQ_PROT_READ, &s->iova);
				}
			}
			for (uint32_t j = 0; j < NGINX_CHUNK_PAGES && !err; j++)
				err = dev_read(w, w->ring[j].iova, w->ring[j].page);
			for (uint32_t j = 0; j < NGINX_CHUNK_PAGES && !err; j++)
				err = unmap_page(w, w->ring[j].iova, w->ring[j].page);
			if (bench_unlikely(err))
				return err;
		}
	}
	return 0;
}

static int nginx_arena_ops(struct worker *w, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		struct iovaq_arena *a = NULL;
		int err = arena_get(w, &a);

		for (uint32_t ch = 0; ch < NGINX_CHUNKS && !err; ch++) {
			uint32_t first = ch * NGINX_CHUNK_PAGES, pages[NGINX_CHUNK_PAGES];

			for (uint32_t j = 0; j < NGINX_CHUNK_PAGES && !err; j++) {
				struct slot *s = &w->ring[j];

				err = page_get(w, &s->page);
				if (!err) {
					drv_fill(w, s->page);
					err = link_page(w, a, first + j, s->page, IOVAQ_PROT_READ,
							&s->iova);
				}
				pages[j] = s->page;
			}
			for (uint32_t j = 0; j < NGINX_CHUNK_PAGES && !err; j++)
				err = dev_read(w, w->ring[j].iova, w->ring[j].page);
			if (!err)
				err = unlink_pages(w, a, first, NGINX_CHUNK_PAGES);
			if (!err)
				err = arena_sync_rec(w, a, pages, NGINX_CHUNK_PAGES,
						     ch == NGINX_CHUNKS - 1);
		}
		if (bench_unlikely(err))
			return err;
	}
	return 0;
}

/* Untimed preparation: fill what the workload keeps mapped. */
static int wl_fill(struct worker *w)
{
	int err = bg_fill(w);

	if (err)
		return err;
	if (w->c->cfg->wl != W_NIC_RX)
		return 0;
	return w->c->arenas ? rx_arena_fill(w) : rx_fill(w);
}

/* The timed ops; noinline so that profilers can collect only here. */
static __attribute__((noinline)) int bench_run_ops(struct worker *w, uint64_t ops)
{
	bool ar = w->c->arenas;

	switch (w->c->cfg->wl) {
	case W_NIC_RX:
		return ar ? rx_arena_ops(w, ops) : rx_ops(w, ops);
	case W_NIC_TX:
		return ar ? tx_arena_ops(w, ops) : tx_ops(w, ops);
	case W_MEMCACHED:
		return ar ? mc_arena_ops(w, ops) : mc_ops(w, ops);
	default:
		return ar ? nginx_arena_ops(w, ops) : nginx_ops(w, ops);
	}
}

/* Untimed teardown of what the workload still holds (main thread, workers joined). */
static void wl_teardown(struct worker *w)
{
	struct ctx *c = w->c;

	bg_free(w);
	if (c->arenas) {
		/* Unlinks what is linked; a released arena is freed once its entries are safe. */
		for (uint32_t k = 0; k < w->nall; k++)
			iovaq_arena_release(w->all[k]);
		w->nall = 0;
		w->nready = 0;
		return;
	}
	if (c->cfg->wl == W_NIC_RX) {
		for (uint32_t s = 0; s < RX_RING; s++)
			if (w->ring[s].iova)
				iovaq_domain_unmap(c->dom, w->ring[s].iova, PAGE, 0);
	}
}

/* ---- threads ------------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int err;

	w->pin_err = bench_pin_self(w->cpu);
	err = wl_fill(w);
	if (bench_gate_arrive(&w->c->gate) && !err) {
		w->t0 = bench_now_ns();
		bench_run_ops(w, w->c->cfg->ops);
		w->t1 = bench_now_ns();
	}
	return NULL;
}

/* Per-thread memory, allocated once per run and reset per repetition. */
static int worker_alloc(struct ctx *c, struct worker *w, unsigned int idx, uint64_t max_reach)
{
	const struct wl_def *wd = c->wd;
	uint64_t np = wd->outstanding + max_reach + POOL_SLACK;

	memset(w, 0, sizeof(*w));
	w->c = c;
	w->idx = idx;
	w->cpu = bench_cpu_for(idx);
	if (np > UINT32_MAX / 2)
		return bench_error("host page pool of %" PRIu64 " pages is too large", np);
	w->npages = (uint32_t)np;
	w->mem = aligned_alloc(PAGE, (size_t)np * PAGE);
	w->freep = calloc(np, sizeof(*w->freep));
	w->ret_cap = (uint32_t)(2 * np);
	w->ret = malloc(w->ret_cap * sizeof(*w->ret));
	w->ring = calloc(RX_RING, sizeof(*w->ring));
	w->devbuf = aligned_alloc(PAGE, PAGE);
	w->bg = c->cfg->background ? malloc(c->cfg->background * sizeof(*w->bg)) : NULL;
	pthread_mutex_init(&w->rlock, NULL);
	if (c->arenas) {
		w->nrecs = w->npages;
		w->recs = malloc(w->nrecs * sizeof(*w->recs));
		w->freerec = malloc(w->nrecs * sizeof(*w->freerec));
		w->desc = calloc(RX_RING / RX_DESC, sizeof(*w->desc));
	}
	if (!w->mem || !w->freep || !w->ret || !w->ring || !w->devbuf ||
	    (c->cfg->background && !w->bg) ||
	    (c->arenas && (!w->recs || !w->freerec || !w->desc)))
		return bench_error("out of memory for a pool of %u host pages", w->npages);
	/* Fault the pool in now, so that no repetition times first-touch page faults. */
	memset(w->mem, 0, (size_t)np * PAGE);
	memset(w->devbuf, 0xa5, PAGE);
	return 0;
}

static void worker_reset(struct worker *w)
{
	/* Page 0 on top of the stack: the pool hands out pages in address order at first. */
	for (uint32_t i = 0; i < w->npages; i++)
		w->freep[i] = w->npages - 1 - i;
	w->nfree = w->npages;
	w->nret = 0;
	atomic_store(&w->has_ret, 0);
	for (uint32_t i = 0; i < w->nrecs; i++)
		w->freerec[i] = w->nrecs - 1 - i;
	w->nfreerec = w->nrecs;
	w->nready = 0;
	w->nall = 0;
	w->head = 0;
	w->pend = 0;
	w->cur = NULL;
	w->tag = (uint64_t)w->idx << 48;
	w->nbg = 0;
	bench_rng_seed(&w->rng, w->c->cfg->seed, w->idx);
	memset(w->ring, 0, RX_RING * sizeof(*w->ring));
	w->t0 = w->t1 = 0;
	w->dma_pages = w->unmapped_pages = w->pool_syncs = w->arenas_reserved = w->dev_ns = 0;
	w->err = 0;
	w->msg[0] = '\0';
	w->pin_err = 0;
}

static void worker_free(struct worker *w)
{
	pthread_mutex_destroy(&w->rlock);
	free(w->mem);
	free(w->freep);
	free(w->ret);
	free(w->ring);
	free(w->devbuf);
	free(w->recs);
	free(w->freerec);
	free(w->desc);
	free(w->bg);
	free(w->ready);
	free(w->all);
}

/* ---- one repetition ----------------------------------------------------------------------- */

struct rep_result {
	double ns_per_op;
	uint64_t wall_ns;
	uint64_t sync_ns;	/* the final iovaq_domain_sync() */
	struct iovaq_domain_stats st;	/* the timed ops only (deltas) */
	struct iovaq_window_report win;	/* cumulative: no releases before the timed ops */
	struct iovaq_window_bucket hist[BENCH_MAX_HIST];	/* its histogram */
	unsigned int n_hist;
	struct iovaq_sim_counters sc;	/* the timed ops only (reset at the gate) */
	bool have_sim;
	uint64_t dma_pages;
	uint64_t unmapped_pages;
	uint64_t pool_syncs;
	uint64_t arenas_reserved;	/* during the timed ops */
	uint64_t arenas_fill;		/* before them */
	uint64_t busy_ns;	/* every thread's timed ops plus the final sync (thread-ns) */
	uint64_t dev_ns;	/* of which device accesses (breakdown repetition only) */
	bool pinned;
};

static int open_backend(const struct bench_run_cfg *cfg, struct iovaq_backend **be)
{
	IOVAQ_OPTS(iovaq_sim_opts, so, .seed = cfg->seed,
		   .flags = (cfg->nested ? IOVAQ_SIM_NESTED : 0) |
			    (cfg->caching_mode ? IOVAQ_SIM_CACHING_MODE : 0));
	IOVAQ_OPTS(iovaq_iommufd_opts, io, .device = cfg->device);
	IOVAQ_OPTS(iovaq_vfio_type1_opts, vo, .device = cfg->device);
	const void *opts[] = { &so, &io, &vo, NULL }; /* bench_backend_names order */
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = bench_backend_names[cfg->backend],
		   .backend_opts = opts[cfg->backend]);
	int err = iovaq_backend_open(&bo, be);

	if (err) {
		const char *why = iovaq_backend_why();

		return bench_error("cannot open backend '%s': %s (%d)%s%s",
				   bench_backend_names[cfg->backend], iovaq_strerror(err), err,
				   *why ? ": " : "", why);
	}
	return 0;
}

static int make_domain(struct ctx *c)
{
	static const struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = c->be, .policy = lib_policy[c->cfg->pol],
		   .reserved = &msi, .n_reserved = 1, .complete = c->safe ? on_complete : NULL,
		   .complete_arg = c, .flags = c->timing ? IOVAQ_DOMAIN_TIMING : 0,
		   .ring_layout = c->cfg->ring);
	int err = iovaq_domain_create(&o, &c->dom);

	if (err)
		return bench_error("iovaq_domain_create(policy %s): %s (%d)",
				   bench_policy_names[c->cfg->pol], iovaq_strerror(err), err);
	return 0;
}

#define SUB(f) (b->f - a->f)

static void stats_delta(struct iovaq_domain_stats *d, const struct iovaq_domain_stats *a,
			const struct iovaq_domain_stats *b)
{
	*d = *b;
	d->maps = SUB(maps);
	d->unmaps = SUB(unmaps);
	d->map_errors = SUB(map_errors);
	d->unmap_errors = SUB(unmap_errors);
	d->flushes = SUB(flushes);
	d->flush_errors = SUB(flush_errors);
	d->inval_cmds = SUB(inval_cmds);
	d->inval_domain_cmds = SUB(inval_domain_cmds);
	d->inval_leaf_cmds = SUB(inval_leaf_cmds);
	d->invalidated_pages = SUB(invalidated_pages);
	d->flush_full = SUB(flush_full);
	d->flush_age = SUB(flush_age);
	d->flush_reachable = SUB(flush_reachable);
	d->flush_sync = SUB(flush_sync);
	d->flush_nospc = SUB(flush_nospc);
	d->flush_strict = SUB(flush_strict);
	d->completions = SUB(completions);
	d->teardown_hits = SUB(teardown_hits);
	d->teardown_evictions = SUB(teardown_evictions);
	d->time_alloc_ns = SUB(time_alloc_ns);
	d->time_map_ns = SUB(time_map_ns);
	d->time_unmap_ns = SUB(time_unmap_ns);
	d->time_plan_ns = SUB(time_plan_ns);
	d->time_flush_ns = SUB(time_flush_ns);
}

static int run_rep(struct ctx *c, struct rep_result *rr)
{
	const struct bench_run_cfg *cfg = c->cfg;
	IOVAQ_OPTS(iovaq_domain_stats, st0);
	IOVAQ_OPTS(iovaq_domain_stats, st1);
	unsigned int created = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0, ts;
	int err, ret;

	memset(rr, 0, sizeof(*rr));
	rr->pinned = true;
	ret = open_backend(cfg, &c->be);
	if (ret)
		return ret;
	c->sim = iovaq_sim_of(c->be);
	ret = make_domain(c);
	if (ret) {
		iovaq_backend_close(c->be);
		return ret;
	}
	c->gate.ready = 0;
	c->gate.go = c->gate.abort = false;
	for (unsigned int t = 0; t < cfg->threads; t++)
		worker_reset(&c->ws[t]);
	for (unsigned int t = 0; t < cfg->threads; t++) {
		err = pthread_create(&c->ws[t].tid, NULL, worker_main, &c->ws[t]);
		if (err) {
			ret = bench_error("cannot start thread %u of %u: %s", t + 1, cfg->threads,
					  strerror(err));
			break;
		}
		created++;
	}

	/* All rings filled: snapshot the counters and release the workers together. */
	bench_gate_wait_all(&c->gate, created);
	for (unsigned int t = 0; t < created; t++)
		if (c->ws[t].err)
			c->gate.abort = true;
	if (created < cfg->threads)
		c->gate.abort = true;
	if (!c->gate.abort) {
		iovaq_domain_get_stats(c->dom, &st0);
		if (c->sim)
			iovaq_sim_reset_counters(c->sim);
		for (unsigned int t = 0; t < created; t++) {
			rr->arenas_fill += c->ws[t].arenas_reserved;
			c->ws[t].arenas_reserved = 0;
		}
	}
	bench_gate_release(&c->gate);
	for (unsigned int t = 0; t < created; t++)
		pthread_join(c->ws[t].tid, NULL);

	/* The queue's last entries: invalidated inside the timed region. */
	ts = bench_now_ns();
	err = c->gate.go ? iovaq_domain_sync(c->dom) : 0;
	rr->sync_ns = bench_now_ns() - ts;
	if (err && !ret)
		ret = bench_error("iovaq_domain_sync after the timed ops: %s (%d)",
				  iovaq_strerror(err), err);

	for (unsigned int t = 0; t < created; t++) {
		struct worker *w = &c->ws[t];

		if (w->err && !ret)
			ret = bench_error("thread %u: %s", t, w->msg[0] ? w->msg : "failed");
		if (w->pin_err)
			rr->pinned = false;
		if (w->t0 && w->t0 < t0)
			t0 = w->t0;
		if (w->t1 > t1)
			t1 = w->t1;
		rr->dma_pages += w->dma_pages;
		rr->unmapped_pages += w->unmapped_pages;
		rr->pool_syncs += w->pool_syncs;
		rr->arenas_reserved += w->arenas_reserved;
		rr->busy_ns += w->t1 - w->t0;
		rr->dev_ns += w->dev_ns;
	}
	rr->busy_ns += rr->sync_ns;
	if (!ret && !c->gate.go)
		ret = bench_error("the workers did not start");
	if (!ret) {
		rr->wall_ns = t1 - t0 + rr->sync_ns;
		rr->ns_per_op = (double)rr->wall_ns / ((double)cfg->ops * cfg->threads);
		iovaq_domain_get_stats(c->dom, &st1);
		stats_delta(&rr->st, &st0, &st1);
		rr->win.sz = sizeof(rr->win);
		iovaq_domain_window(c->dom, &rr->win);
		err = iovaq_domain_window_hist(c->dom, rr->hist, BENCH_MAX_HIST);
		rr->n_hist = err < 0 ? 0 : err > BENCH_MAX_HIST ? BENCH_MAX_HIST : (unsigned int)err;
		if (c->sim) {
			rr->sc.sz = sizeof(rr->sc);
			err = iovaq_sim_get_counters(c->sim, &rr->sc);
			if (err)
				ret = bench_error("iovaq_sim_get_counters: %s (%d)",
						  iovaq_strerror(err), err);
			rr->have_sim = !err;
		}
		if (!ret && rr->st.flush_errors)
			ret = bench_error("%" PRIu64 " flushes failed (last error %s)",
					  rr->st.flush_errors,
					  iovaq_strerror((int)rr->st.last_flush_error));
		if (!ret && rr->have_sim && (rr->sc.faults || rr->sc.stale_hits))
			ret = bench_error("the device saw %" PRIu64 " faults and %" PRIu64 " stale "
					  "hits: translation bug", rr->sc.faults, rr->sc.stale_hits);
	}

	for (unsigned int t = 0; t < created; t++)
		wl_teardown(&c->ws[t]);
	iovaq_domain_destroy(c->dom);
	iovaq_backend_close(c->be);
	c->dom = NULL;
	c->be = NULL;
	c->sim = NULL;
	return ret;
}

/* ---- one run ------------------------------------------------------------------------------ */

struct bench_run {
	struct bench_run_cfg cfg;
	enum dev_mode dev;
	double *rep_ns;
	struct rep_result r;	/* the median repetition */
	struct rep_result bd;	/* the breakdown repetition (IOVAQ_DOMAIN_TIMING) */
	double foreign_load;
	uint64_t pool_pages;
	struct bench_run_metrics m;
};

const char *const bench_cpu_keys[] = {
	[BENCH_CPU_ALLOC] = "alloc", [BENCH_CPU_MAP] = "map", [BENCH_CPU_UNMAP] = "unmap",
	[BENCH_CPU_PLAN] = "plan", [BENCH_CPU_FLUSH] = "flush", [BENCH_CPU_DMA] = "dma",
	[BENCH_CPU_OTHER] = "other", NULL,
};

const char *const bench_mdl_keys[] = {
	[BENCH_MDL_MAP] = "map", [BENCH_MDL_UNMAP] = "unmap",
	[BENCH_MDL_FLUSH_SUBMIT] = "flush_submit", [BENCH_MDL_FLUSH_WAIT] = "flush_wait", NULL,
};

uint64_t bench_workload_ops(unsigned int wl)
{
	return wl_defs[wl].ops;
}

unsigned int bench_workload_pages(unsigned int wl)
{
	return wl_defs[wl].pages;
}

static double per(uint64_t n, uint64_t d)
{
	return d ? (double)n / (double)d : NAN;
}

static uint64_t sim_inval_cmds(const struct iovaq_sim_counters *k)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < IOVAQ_INVAL_NR_KINDS; i++)
		n += k->inval_cmds[i];
	return n;
}

static void model_name(char *buf, size_t len, const struct bench_run_cfg *c)
{
	if (c->backend != 0)
		snprintf(buf, len, "%s", bench_backend_names[c->backend]);
	else
		snprintf(buf, len, "%s%s", c->nested ? "nested" : "native",
			 c->caching_mode ? "+cm" : "");
}

/* Everything tables, plots and comparisons use, from the median and breakdown repetitions. */
static void derive(struct bench_run *res)
{
	const struct bench_run_cfg *c = &res->cfg;
	const struct rep_result *r = &res->r, *b = &res->bd;
	const struct iovaq_sim_counters *k = &r->sc;
	struct bench_run_metrics *m = &res->m;
	uint64_t ops = c->ops * c->threads;
	const uint64_t win[4] = { r->win.window_p50_ns, r->win.window_p99_ns,
				  r->win.window_p999_ns, r->win.window_max_ns };
	const uint64_t cpu[BENCH_N_CPU] = {
		[BENCH_CPU_ALLOC] = b->st.time_alloc_ns, [BENCH_CPU_MAP] = b->st.time_map_ns,
		[BENCH_CPU_UNMAP] = b->st.time_unmap_ns, [BENCH_CPU_PLAN] = b->st.time_plan_ns,
		[BENCH_CPU_FLUSH] = b->st.time_flush_ns, [BENCH_CPU_DMA] = b->dev_ns,
	};
	const uint64_t mdl[BENCH_N_MDL] = {
		[BENCH_MDL_MAP] = k->cpu_map_ns, [BENCH_MDL_UNMAP] = k->cpu_unmap_ns,
		[BENCH_MDL_FLUSH_SUBMIT] = k->cpu_flush_submit_ns,
		[BENCH_MDL_FLUSH_WAIT] = k->cpu_flush_wait_ns,
	};
	double rest;

	memset(m, 0, sizeof(*m));
	m->pol = c->pol;
	m->wl = c->wl;
	m->model = c->caching_mode ? (c->nested ? BENCH_M_NESTED_CM : BENCH_N_MODELS)
				   : c->nested ? BENCH_M_NESTED : BENCH_M_NATIVE;
	model_name(m->model_name, sizeof(m->model_name), c);
	m->have_sim = r->have_sim;
	m->pages_per_op = wl_defs[c->wl].pages;
	m->ns_per_op = bench_median(res->rep_ns, c->reps);
	m->ns_per_op_min = bench_min(res->rep_ns, c->reps);
	m->ns_per_op_max = bench_max(res->rep_ns, c->reps);
	m->inval_per_page = per(r->st.inval_cmds, r->unmapped_pages);
	m->releases = r->win.releases;
	memcpy(m->window_ns, win, sizeof(win));
	m->hist = r->hist;
	m->n_hist = r->n_hist;
	m->reachable_pages_max = r->win.reachable_pages_max;
	m->unsafe_reuse = r->win.unsafe_reuse;
	m->violations = r->win.violations;

	/* Measured: the parts, and "other" as what the thread time leaves of them. */
	m->cpu_total = per(b->busy_ns, ops);
	rest = m->cpu_total;
	for (unsigned int i = 0; i < BENCH_CPU_OTHER; i++) {
		m->cpu[i] = per(cpu[i], ops);
		rest -= m->cpu[i];
	}
	m->cpu[BENCH_CPU_OTHER] = rest;

	m->ops_per_s = 1e9 / m->ns_per_op;
	m->mdl_total = m->host_ns_per_op = m->traps_per_op = NAN;
	m->iotlb_misses = m->walk_refs = m->device_ns = NAN;
	m->host_ops_per_s = m->host_gbit_per_s = NAN;
	for (unsigned int i = 0; i < BENCH_N_MDL; i++)
		m->mdl[i] = NAN;
	for (unsigned int l = 0; l < 3; l++)
		m->ptcache_misses[l] = NAN;
	if (!r->have_sim)
		return;
	m->mdl_total = 0;
	for (unsigned int i = 0; i < BENCH_N_MDL; i++) {
		m->mdl[i] = per(mdl[i], ops);
		m->mdl_total += m->mdl[i];
	}
	m->host_ns_per_op = m->cpu[BENCH_CPU_ALLOC] + m->cpu[BENCH_CPU_PLAN] +
			    m->cpu[BENCH_CPU_OTHER] + m->mdl_total;
	m->traps_per_op = per(k->traps, ops);
	/* Per DMA'd page; under passthrough nothing translates and these are 0. */
	m->iotlb_misses = per(k->iotlb_misses, r->dma_pages);
	for (unsigned int l = 0; l < 3; l++)
		m->ptcache_misses[l] = per(k->psc_misses[l], r->dma_pages);
	m->walk_refs = per(k->walk_refs, r->dma_pages);
	m->device_ns = per(k->device_ns, r->dma_pages);
	m->host_ops_per_s = 1e9 / m->host_ns_per_op;
	m->host_gbit_per_s = m->host_ops_per_s * (double)(m->pages_per_op * PAGE * 8) / 1e9;
}

int bench_run_probe(unsigned int backend)
{
	struct bench_run_cfg cfg = { .backend = backend };
	struct iovaq_backend *be;
	int ret = open_backend(&cfg, &be);

	if (!ret)
		iovaq_backend_close(be);
	return ret;
}

static void run_progress(const struct bench_run_cfg *cfg, unsigned int rep)
{
	char model[16];
	char what[48];

	model_name(model, sizeof(model), cfg);
	if (rep < cfg->reps)
		snprintf(what, sizeof(what), "repetition %u/%u", rep + 1, cfg->reps);
	else
		snprintf(what, sizeof(what), "breakdown");
	if (cfg->ncells)
		bench_progress("matrix %u/%u: %s, %s, %s, %s", cfg->cell, cfg->ncells, model,
			       bench_workload_names[cfg->wl], bench_policy_names[cfg->pol], what);
	else
		bench_progress("run: %s, %s, %s, %s", model, bench_policy_names[cfg->pol],
			       bench_workload_names[cfg->wl], what);
}

int bench_run_exec(const struct bench_run_cfg *cfg, struct bench_run **out)
{
	struct ctx c = { .cfg = cfg, .wd = &wl_defs[cfg->wl] };
	struct bench_run *res = calloc(1, sizeof(*res));
	struct rep_result *reps = calloc(cfg->reps, sizeof(*reps));
	struct bench_load load;
	unsigned int made = 0, med = 0;
	int ret = 0;

	*out = NULL;
	if (res)
		res->rep_ns = calloc(cfg->reps, sizeof(double));
	c.ws = aligned_alloc(64, cfg->threads * sizeof(*c.ws));
	if (!res || !reps || !res->rep_ns || !c.ws) {
		ret = bench_error("out of memory");
		goto out;
	}
	res->cfg = *cfg;
	c.cfg = &res->cfg;
	c.safe = lib_policy[cfg->pol] == IOVAQ_POLICY_SAFE_DEFERRED;
	c.arenas = cfg->pol == P_ARENAS;
	c.dev = cfg->backend != 0 ? DEV_NONE : cfg->pol == P_PASS ? DEV_DIRECT : DEV_SIM;
	res->dev = c.dev;
	bench_gate_init(&c.gate);
	for (; made < cfg->threads && !ret; made++)
		ret = worker_alloc(&c, &c.ws[made], made, IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE);
	if (ret)
		goto out_sync;
	res->pool_pages = c.ws[0].npages;

	bench_load_begin(&load);
	for (unsigned int rep = 0; rep < cfg->reps && !ret; rep++) {
		run_progress(cfg, rep);
		ret = run_rep(&c, &reps[rep]);
		res->rep_ns[rep] = reps[rep].ns_per_op;
	}
	/* One more, with the library's clocks on: its two clock reads per step stay out of
	 * the timed repetitions. */
	if (!ret) {
		run_progress(cfg, cfg->reps);
		c.timing = true;
		ret = run_rep(&c, &res->bd);
		c.timing = false;
	}
	bench_progress_clear();
	res->foreign_load = bench_load_end(&load);
	if (ret)
		goto out_sync;
	/* The repetition whose time is the median (the lower middle one for an even count). */
	for (unsigned int i = 0; i < cfg->reps; i++) {
		unsigned int below = 0, same = 0;

		for (unsigned int k = 0; k < cfg->reps; k++) {
			below += res->rep_ns[k] < res->rep_ns[i];
			same += res->rep_ns[k] == res->rep_ns[i];
		}
		if (below <= (cfg->reps - 1) / 2 && below + same > (cfg->reps - 1) / 2) {
			med = i;
			break;
		}
	}
	res->r = reps[med];
	derive(res);
out_sync:
	bench_gate_destroy(&c.gate);
out:
	for (unsigned int t = 0; t < made; t++)
		worker_free(&c.ws[t]);
	free(c.ws);
	free(reps);
	if (ret)
		bench_run_free(res);
	else
		*out = res;
	return ret;
}

const struct bench_run_metrics *bench_run_metrics(const struct bench_run *r)
{
	return &r->m;
}

void bench_run_free(struct bench_run *r)
{
	if (!r)
		return;
	free(r->rep_ns);
	free(r);
}

void bench_run_warn(const struct bench_run *r)
{
	if (r->dev == DEV_NONE)
		bench_warn("backend %s has no device model: device accesses were skipped, and the "
			   "device-side figures are null", bench_backend_names[r->cfg.backend]);
	if (isfinite(r->foreign_load) && r->foreign_load > BENCH_FOREIGN_LOAD_WARN)
		bench_warn("other processes used %.0f%% of the CPUs during the run (%s, %s, %s): "
			   "times are unreliable", 100 * r->foreign_load, r->m.model_name,
			   bench_workload_names[r->cfg.wl], bench_policy_names[r->cfg.pol]);
}

/* ---- output ------------------------------------------------------------------------------- */

static const char *dev_note(const struct bench_run *res)
{
	switch (res->dev) {
	case DEV_SIM:
		return "device accesses through iovaq_sim_dma()";
	case DEV_DIRECT:
		return "passthrough: no translation, the device copies host memory directly";
	default:
		return "no device model on this backend: device accesses skipped";
	}
}

static void json_u64_or_null(struct bench_json *j, const char *key, bool have, uint64_t v)
{
	if (have)
		bench_json_u64(j, key, v);
	else
		bench_json_null(j, key);
}

void bench_run_json(const struct bench_run *res, struct bench_json *j)
{
	static const char *const win_keys[] = { "p50", "p99", "p999", "max" };
	static const char *const level_keys[] = { "l4", "l3", "l2" };
	const struct bench_run_cfg *c = &res->cfg;
	const struct rep_result *r = &res->r;
	const struct bench_run_metrics *m = &res->m;
	const struct wl_def *wd = &wl_defs[c->wl];
	const struct iovaq_sim_counters *k = &r->sc;
	bool ar = c->pol == P_ARENAS;
	double ptc = 0;

	bench_json_str(j, "type", "run");
	bench_json_u64(j, "schema_version", BENCH_SCHEMA_VERSION);
	bench_json_str(j, "version", iovaq_version());
	bench_json_str(j, "command", c->command ? c->command : "run");
	bench_json_str(j, "backend", bench_backend_names[c->backend]);
	bench_json_str(j, "model", m->model_name);
	bench_json_bool(j, "nested", c->nested);
	bench_json_bool(j, "caching_mode", c->caching_mode);
	bench_json_str(j, "policy", bench_policy_names[c->pol]);
	bench_json_str(j, "workload", bench_workload_names[c->wl]);
	bench_json_u64(j, "threads", c->threads);
	bench_json_u64(j, "ops", c->ops);
	bench_json_u64(j, "total_ops", c->ops * c->threads);
	bench_json_u64(j, "pages_per_op", wd->pages);
	json_u64_or_null(j, "arena_pages", ar, wd->arena_pages);
	json_u64_or_null(j, "arena_sync_pages", ar, wd->sync_pages);
	bench_json_u64(j, "reps", c->reps);
	bench_json_u64(j, "seed", c->seed);
	bench_json_u64(j, "background", c->background);
	bench_json_str(j, "ring_layout", bench_ring_names[c->ring]);
	bench_json_u64(j, "rings", r->st.rings);
	bench_json_u64(j, "pool_pages", res->pool_pages);
	bench_json_str(j, "device", dev_mode_names[res->dev]);

	bench_json_double(j, "ns_per_op", m->ns_per_op);
	bench_json_double(j, "ns_per_op_min", m->ns_per_op_min);
	bench_json_double(j, "ns_per_op_max", m->ns_per_op_max);
	bench_json_open_array(j, "rep_ns_per_op");
	for (unsigned int i = 0; i < c->reps; i++)
		bench_json_double(j, NULL, res->rep_ns[i]);
	bench_json_close_array(j);
	bench_json_u64(j, "final_sync_ns", r->sync_ns);
	bench_json_u64(j, "dma_pages", r->dma_pages);
	bench_json_u64(j, "unmapped_pages", r->unmapped_pages);

	bench_json_u64(j, "inval_cmds", r->st.inval_cmds);
	bench_json_u64(j, "inval_domain_cmds", r->st.inval_domain_cmds);
	bench_json_u64(j, "inval_leaf_cmds", r->st.inval_leaf_cmds);
	bench_json_double(j, "inval_per_page", m->inval_per_page);
	bench_json_u64(j, "flushes", r->st.flushes);
	bench_json_open(j, "flush_reasons");
	bench_json_u64(j, "full", r->st.flush_full);
	bench_json_u64(j, "age", r->st.flush_age);
	bench_json_u64(j, "reachable", r->st.flush_reachable);
	bench_json_u64(j, "sync", r->st.flush_sync);
	bench_json_u64(j, "nospc", r->st.flush_nospc);
	bench_json_u64(j, "strict", r->st.flush_strict);
	bench_json_close(j);
	bench_json_u64(j, "queued_entries_max", r->st.queued_entries_max);
	bench_json_u64(j, "completions", r->st.completions);

	bench_json_u64(j, "releases", r->win.releases);
	bench_json_u64(j, "released_pages", r->win.released_pages);
	bench_json_open(j, "window_ns");
	for (unsigned int i = 0; i < 4; i++)
		bench_json_u64(j, win_keys[i], m->window_ns[i]);
	bench_json_close(j);
	bench_json_u64(j, "max_window_ns", r->win.max_window_ns);
	bench_json_u64(j, "exposure_page_ns", r->win.exposure_page_ns);
	bench_json_u64(j, "reachable_pages_max", r->win.reachable_pages_max);
	bench_json_u64(j, "max_reachable_pages", r->win.max_reachable_pages);
	bench_json_u64(j, "unsafe_reuse", r->win.unsafe_reuse);
	bench_json_u64(j, "violations", r->win.violations);
	bench_json_u64(j, "pool_syncs", r->pool_syncs);
	json_u64_or_null(j, "arenas_reserved_fill", ar, r->arenas_fill);
	json_u64_or_null(j, "arenas_reserved", ar, r->arenas_reserved);

	bench_json_open(j, "cpu_ns_per_op");
	bench_json_open(j, "measured");
	for (unsigned int i = 0; i < BENCH_N_CPU; i++)
		bench_json_double(j, bench_cpu_keys[i], m->cpu[i]);
	bench_json_double(j, "total", m->cpu_total);
	bench_json_close(j);
	bench_json_open(j, "modeled");
	for (unsigned int i = 0; i < BENCH_N_MDL; i++)
		bench_json_double(j, bench_mdl_keys[i], m->mdl[i]);
	bench_json_double(j, "total", m->mdl_total);
	bench_json_close(j);
	bench_json_double(j, "host", m->host_ns_per_op);
	bench_json_double(j, "clock_read_ns", bench_clock_read_ns());
	bench_json_close(j);
	bench_json_u64(j, "breakdown_wall_ns", res->bd.wall_ns);
	bench_json_double(j, "traps_per_op", m->traps_per_op);

	bench_json_open(j, "device_per_page");
	bench_json_double(j, "iotlb_misses", m->iotlb_misses);
	bench_json_open(j, "ptcache_misses");
	for (unsigned int l = 0; l < 3; l++) {
		bench_json_double(j, level_keys[l], m->ptcache_misses[l]);
		ptc += m->ptcache_misses[l];
	}
	bench_json_double(j, "total", ptc);
	bench_json_close(j);
	bench_json_double(j, "walk_refs", m->walk_refs);
	bench_json_double(j, "modeled_ns", m->device_ns);
	bench_json_close(j);

	bench_json_open(j, "throughput");
	bench_json_double(j, "ops_per_s", m->ops_per_s);
	bench_json_double(j, "host_ops_per_s", m->host_ops_per_s);
	bench_json_double(j, "host_gbit_per_s", m->host_gbit_per_s);
	bench_json_close(j);

	bench_json_open(j, "sim");
	json_u64_or_null(j, "inval_cmds", r->have_sim, sim_inval_cmds(k));
	json_u64_or_null(j, "traps", r->have_sim, k->traps);
	json_u64_or_null(j, "stale_hits", r->have_sim, k->stale_hits);
	json_u64_or_null(j, "faults", r->have_sim, k->faults);
	json_u64_or_null(j, "bad_leaf_invals", r->have_sim, k->bad_leaf_invals);
	bench_json_close(j);
	bench_json_bool(j, "pinned", r->pinned && res->bd.pinned);
	bench_json_double(j, "foreign_cpu_share", res->foreign_load);
}

static const char *const csv_head[] = {
	"backend", "model", "policy", "workload", "threads", "ops", "reps", "seed", "background",
	"device", "ns_per_op", "ns_per_op_min", "ns_per_op_max", "unmapped_pages", "inval_cmds",
	"inval_per_page", "window_p50_ns", "window_p99_ns", "window_p999_ns", "window_max_ns",
	"reachable_pages_max", "unsafe_reuse", "violations",
	"cpu_alloc_ns", "cpu_map_ns", "cpu_unmap_ns", "cpu_plan_ns", "cpu_flush_ns", "cpu_dma_ns",
	"cpu_other_ns", "cpu_total_ns", "modeled_map_ns", "modeled_unmap_ns",
	"modeled_flush_submit_ns", "modeled_flush_wait_ns", "modeled_total_ns", "host_ns_per_op",
	"traps_per_op", "iotlb_misses_per_page", "ptcache_l4_misses_per_page",
	"ptcache_l3_misses_per_page", "ptcache_l2_misses_per_page", "walk_refs_per_page",
	"modeled_device_ns_per_page", "ops_per_s", "host_ops_per_s", "host_gbit_per_s", "version",
	NULL,
};

#define CSV_COLS (sizeof(csv_head) / sizeof(csv_head[0]) - 1)
static_assert(BENCH_CPU_OTHER == 6 && BENCH_N_MDL == 4, "csv_head lists the breakdown");

static void fmt_double(char *buf, size_t len, double v)
{
	if (isfinite(v))
		snprintf(buf, len, "%.6g", v);
	else
		buf[0] = '\0';
}

void bench_run_csv_head(FILE *f)
{
	bench_csv_head(f, csv_head);
}

void bench_run_csv(const struct bench_run *res, FILE *f)
{
	const struct bench_run_cfg *c = &res->cfg;
	const struct rep_result *r = &res->r;
	const struct bench_run_metrics *m = &res->m;
	char b[CSV_COLS][64];
	const double d[] = {
		m->cpu[0], m->cpu[1], m->cpu[2], m->cpu[3], m->cpu[4], m->cpu[5], m->cpu[6],
		m->cpu_total, m->mdl[0], m->mdl[1], m->mdl[2], m->mdl[3], m->mdl_total,
		m->host_ns_per_op, m->traps_per_op, m->iotlb_misses, m->ptcache_misses[0],
		m->ptcache_misses[1], m->ptcache_misses[2], m->walk_refs, m->device_ns,
		m->ops_per_s, m->host_ops_per_s, m->host_gbit_per_s,
	};
	unsigned int i = 0;

	snprintf(b[i++], 64, "%s", bench_backend_names[c->backend]);
	snprintf(b[i++], 64, "%s", m->model_name);
	snprintf(b[i++], 64, "%s", bench_policy_names[c->pol]);
	snprintf(b[i++], 64, "%s", bench_workload_names[c->wl]);
	snprintf(b[i++], 64, "%u", c->threads);
	snprintf(b[i++], 64, "%" PRIu64, c->ops);
	snprintf(b[i++], 64, "%u", c->reps);
	snprintf(b[i++], 64, "%" PRIu64, c->seed);
	snprintf(b[i++], 64, "%" PRIu32, c->background);
	snprintf(b[i++], 64, "%s", dev_mode_names[res->dev]);
	fmt_double(b[i++], 64, m->ns_per_op);
	fmt_double(b[i++], 64, m->ns_per_op_min);
	fmt_double(b[i++], 64, m->ns_per_op_max);
	snprintf(b[i++], 64, "%" PRIu64, r->unmapped_pages);
	snprintf(b[i++], 64, "%" PRIu64, r->st.inval_cmds);
	fmt_double(b[i++], 64, m->inval_per_page);
	for (unsigned int w = 0; w < 4; w++)
		snprintf(b[i++], 64, "%" PRIu64, m->window_ns[w]);
	snprintf(b[i++], 64, "%" PRIu64, m->reachable_pages_max);
	snprintf(b[i++], 64, "%" PRIu64, m->unsafe_reuse);
	snprintf(b[i++], 64, "%" PRIu64, m->violations);
	for (unsigned int k = 0; k < sizeof(d) / sizeof(d[0]); k++)
		fmt_double(b[i++], 64, d[k]);
	snprintf(b[i++], 64, "%s", iovaq_version());
	bench_csv_row(f, b, i);
}

/* A figure with about three significant digits, or "-" when it is unknown. */
static void fmt_num(char *buf, size_t len, double v)
{
	double a = fabs(v);

	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (a == 0)
		snprintf(buf, len, "0");
	else if (a >= 100)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 0.01)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.1e", v);
}

/* Invalidation commands per page as "1", "1/16", "1/4000", or "0". */
static void fmt_ratio(char *buf, size_t len, double v)
{
	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (v == 0)
		snprintf(buf, len, "0");
	else if (v >= 0.95)
		snprintf(buf, len, "%.2g", v);
	else
		snprintf(buf, len, "1/%.0f", 1 / v);
}

enum { T_COST, T_CPU, T_DEV };

static const char *const cost_head[] = {
	"model", "workload", "policy", "ns/op", "spread", "host ns/op", "host Gbit/s", "vs pass",
	"inval/page", "win p99", "win max", "reach max", "unsafe", "viol",
};
static const char *const cpu_head[] = {
	"model", "workload", "policy", "alloc", "plan", "other", "be map", "be unmap", "be flush",
	"dma", "| map*", "unmap*", "submit*", "wait*", "= host",
};
static const char *const dev_head[] = {
	"model", "workload", "policy", "IOTLB miss", "PSC L4", "PSC L3", "PSC L2", "walk refs",
	"device ns", "traps/op",
};

#define NCOLS(h) ((unsigned int)(sizeof(h) / sizeof((h)[0])))

void bench_run_tables_init(struct bench_run_tables *t, bool rel)
{
	/* Without passthrough to compare with, the cost table has no "vs pass" column. */
	static const char *const cost_head_norel[] = {
		"model", "workload", "policy", "ns/op", "spread", "host ns/op", "host Gbit/s",
		"inval/page", "win p99", "win max", "reach max", "unsafe", "viol",
	};

	t->rel = rel;
	if (rel)
		bench_table_init(&t->t[T_COST], NCOLS(cost_head), cost_head, "lllrrrrrrrrrrr");
	else
		bench_table_init(&t->t[T_COST], NCOLS(cost_head_norel), cost_head_norel,
				 "lllrrrrrrrrrr");
	bench_table_init(&t->t[T_CPU], NCOLS(cpu_head), cpu_head, "lllrrrrrrrrrrrr");
	bench_table_init(&t->t[T_DEV], NCOLS(dev_head), dev_head, "lllrrrrrrr");
}

int bench_run_tables_add(struct bench_run_tables *t, const struct bench_run_metrics *m,
			 double rel)
{
	char c[16][24];
	const char *row[16];
	unsigned int i;
	int err;

	for (i = 0; i < 16; i++)
		row[i] = c[i];
	i = 3;
	snprintf(c[0], 24, "%s", m->model_name);
	snprintf(c[1], 24, "%s", bench_workload_names[m->wl]);
	snprintf(c[2], 24, "%s", bench_policy_names[m->pol]);
	fmt_num(c[i++], 24, m->ns_per_op);
	snprintf(c[i++], 24, "%.0f%%", 100.0 * (m->ns_per_op_max - m->ns_per_op_min) /
		 m->ns_per_op);
	fmt_num(c[i++], 24, m->host_ns_per_op);
	fmt_num(c[i++], 24, m->host_gbit_per_s);
	if (t->rel) {
		if (isfinite(rel))
			snprintf(c[i++], 24, "%.0f%%", 100 * rel);
		else
			snprintf(c[i++], 24, "-");
	}
	fmt_ratio(c[i++], 24, m->inval_per_page);
	if (m->releases) {
		bench_fmt_ns(c[i++], 24, m->window_ns[1]);
		bench_fmt_ns(c[i++], 24, m->window_ns[3]);
	} else {
		snprintf(c[i++], 24, "-");
		snprintf(c[i++], 24, "-");
	}
	snprintf(c[i++], 24, "%" PRIu64, m->reachable_pages_max);
	snprintf(c[i++], 24, "%" PRIu64, m->unsafe_reuse);
	snprintf(c[i++], 24, "%" PRIu64, m->violations);
	err = bench_table_add(&t->t[T_COST], row);

	i = 3;
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_ALLOC]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_PLAN]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_OTHER]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_MAP]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_UNMAP]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_FLUSH]);
	fmt_num(c[i++], 24, m->cpu[BENCH_CPU_DMA]);
	for (unsigned int k = 0; k < BENCH_N_MDL; k++)
		fmt_num(c[i++], 24, m->mdl[k]);
	fmt_num(c[i++], 24, m->host_ns_per_op);
	if (!err)
		err = bench_table_add(&t->t[T_CPU], row);

	i = 3;
	fmt_num(c[i++], 24, m->iotlb_misses);
	for (unsigned int l = 0; l < 3; l++)
		fmt_num(c[i++], 24, m->ptcache_misses[l]);
	fmt_num(c[i++], 24, m->walk_refs);
	fmt_num(c[i++], 24, m->device_ns);
	fmt_num(c[i++], 24, m->traps_per_op);
	if (!err)
		err = bench_table_add(&t->t[T_DEV], row);
	return err;
}

int bench_run_tables_gap(struct bench_run_tables *t)
{
	int err = 0;

	for (unsigned int k = 0; k < 3 && !err; k++)
		err = bench_table_add(&t->t[k], NULL);
	return err;
}

void bench_run_tables_print(const struct bench_run_tables *t, FILE *f)
{
	fprintf(f, "Cost of protection\n\n");
	bench_table_print(&t->t[T_COST], f);
	fprintf(f,
		"\nns/op: wall time per op on this machine (median of the repetitions; spread = "
		"(max - min) / median),\n"
		"  the simulator's own software included. host ns/op: CPU time per op of a host "
		"whose IOMMU costs\n"
		"  what the sim's model says (breakdown below); host Gbit/s: the DMA'd bytes one "
		"core moves at that\n"
		"  rate.%s inval/page: invalidation commands per unmapped page. win: safety window "
		"(release to\n"
		"  t_safe), p99 and max. reach max: most pages reachable at once. unsafe: buffers "
		"handed back\n"
		"  before t_safe. viol: bound violations (must be 0).\n",
		t->rel ? " vs pass: that throughput relative to passthrough (no protection).\n "
			 : "");
	fprintf(f, "\nCPU ns per op\n\n");
	bench_table_print(&t->t[T_CPU], f);
	fprintf(f,
		"\nMeasured on this machine, in one more repetition with IOVAQ_DOMAIN_TIMING "
		"(thread time per op):\n"
		"  alloc = IOVA allocation, plan = planning invalidations (the library); be map, "
		"be unmap,\n"
		"  be flush = time in the backend's calls and dma = the device's accesses (here "
		"the simulator's\n"
		"  software, or the passthrough copy); other = the rest (domain bookkeeping, "
		"completions, the\n"
		"  workload's own work). Each measured step costs two clock reads (%.0f ns each "
		"here), one inside\n"
		"  its part and one in other. Modeled by the sim (*): map, unmap, invalidation "
		"submit (traps and\n"
		"  re-walks included) and wait. host = alloc + plan + other + the modeled parts: "
		"the simulator's\n"
		"  software replaced by the modeled IOMMU cost.\n", bench_clock_read_ns());
	fprintf(f, "\nDevice side per DMA'd page (modeled by the sim)\n\n");
	bench_table_print(&t->t[T_DEV], f);
	fprintf(f,
		"\nIOTLB misses; paging-structure cache (PSC) misses per level (caches of level-4, "
		"-3 and -2\n"
		"  entries); memory references of the page walks (2-D when nested); modeled device "
		"ns for the\n"
		"  translations; traps to the hypervisor per op (caching mode). Passthrough "
		"translates nothing.\n");
}

void bench_run_tables_free(struct bench_run_tables *t)
{
	for (unsigned int k = 0; k < 3; k++)
		bench_table_free(&t->t[k]);
}

static int emit_table(const struct bench_run *res, FILE *f)
{
	const struct bench_run_cfg *c = &res->cfg;
	const struct rep_result *r = &res->r;
	struct bench_run_tables t;
	char bound[24];
	int err;

	bench_run_tables_init(&t, false);
	err = bench_run_tables_add(&t, &res->m, NAN);
	if (err) {
		bench_run_tables_free(&t);
		return bench_error("out of memory");
	}
	bench_run_tables_print(&t, f);
	bench_run_tables_free(&t);

	bench_fmt_ns(bound, sizeof(bound), r->win.max_window_ns);
	fprintf(f,
		"\n%u thread%s, %" PRIu64 " ops each (%u page%s DMA'd and unmapped per op), "
		"%u repetition%s; the clock\n"
		"stops after the final iovaq_domain_sync(). %" PRIu64 " invalidation commands for "
		"%" PRIu64 " pages in %" PRIu64 " flushes;\n"
		"%" PRIu64 " releases, window bound %s, p50 %" PRIu64 " ns, reachable-pages bound "
		"%" PRIu64 ".\n",
		c->threads, c->threads == 1 ? "" : "s", c->ops, wl_defs[c->wl].pages,
		wl_defs[c->wl].pages == 1 ? "" : "s", c->reps, c->reps == 1 ? "" : "s",
		r->st.inval_cmds, r->unmapped_pages, r->st.flushes, r->win.releases, bound,
		r->win.window_p50_ns, r->win.max_reachable_pages);
	fprintf(f, "Device: %s. libiovaq %s, seed %" PRIu64 ".\n", dev_note(res), iovaq_version(),
		c->seed);
	if (c->pol == P_ARENAS)
		fprintf(f, "Arenas: %u pages each, one sync per %u pages; %" PRIu64 " reserved "
			   "before the timed ops, %" PRIu64 " during them. The library does not time\n"
			   "arena links and unlinks: their backend calls count under 'other'.\n",
			wl_defs[c->wl].arena_pages, wl_defs[c->wl].sync_pages, r->arenas_fill,
			r->arenas_reserved);
	if (r->pool_syncs)
		fprintf(f, "The host page pool ran dry %" PRIu64 " times (each waited for one "
			   "iovaq_domain_sync()).\n", r->pool_syncs);
	return 0;
}

bool bench_run_common_opt(const struct bench_args *a, int id, struct bench_run_cfg *cfg,
			  bool *json, bool *csv)
{
	switch (id) {
	case BENCH_O_BACKEND:
		cfg->backend = bench_parse_choice(a, "backend", bench_backend_names);
		return true;
	case BENCH_O_THREADS:
		cfg->threads = (unsigned int)bench_parse_u64(a, 1, MAX_THREADS);
		return true;
	case BENCH_O_REPS:
		cfg->reps = (unsigned int)bench_parse_u64(a, 1, MAX_REPS);
		return true;
	case BENCH_O_SEED:
		cfg->seed = bench_parse_u64(a, 0, UINT64_MAX);
		return true;
	case BENCH_O_BACKGROUND:
		cfg->background = (uint32_t)bench_parse_u64(a, 0, 1000000);
		return true;
	case BENCH_O_RING:
		cfg->ring = bench_parse_choice(a, "ring layout", bench_ring_names);
		return true;
	case BENCH_O_JSON:
		*json = true;
		return true;
	case BENCH_O_CSV:
		*csv = true;
		return true;
	}
	return false;
}

enum bench_format bench_format_of(bool json, bool csv)
{
	if (json && csv)
		bench_usage_error("--json and --csv exclude each other (choose one)");
	return json ? BENCH_FMT_JSON : csv ? BENCH_FMT_CSV : BENCH_FMT_TABLE;
}

/* ---- "run" subcommand --------------------------------------------------------------------- */

enum {
	O_POLICY,
	O_WORKLOAD,
	O_OPS,
	O_NESTED,
	O_CACHING_MODE,
	O_DEVICE,
	O_HELP,
};

static const struct bench_opt run_opts[] = {
	{ "backend", 0, "NAME", "sim (default), iommufd, vfio-type1 or kshim", BENCH_O_BACKEND },
	{ "policy", 0, "NAME", "strict, deferred, safe-deferred, safe-deferred+arenas\n"
			       "or passthrough (required)", O_POLICY },
	{ "workload", 0, "NAME", "nic-rx, nic-tx, memcached or nginx (required)", O_WORKLOAD },
	{ "threads", 0, "N", "threads, each with its own ring on one shared domain,\n"
			     "1..64 (default 1)", BENCH_O_THREADS },
	{ "ops", 0, "N", "workload ops per thread (default: nic-rx, nic-tx 100k,\n"
			 "memcached 50k, nginx 400)", O_OPS },
	{ "reps", 0, "N", "repetitions, 1..1000 (default 5); the median is reported", BENCH_O_REPS },
	{ "nested", 0, NULL, "sim: nested IO page tables (2-D walks)", O_NESTED },
	{ "caching-mode", 0, NULL, "sim: caching mode (a vIOMMU: every invalidation\n"
				   "and every map traps)", O_CACHING_MODE },
	{ "background", 0, "N", "N IOVA allocations of other users per thread (mixed\n"
				"sizes, never mapped), churned once per page mapped:\n"
				"scatters the workload's IOVAs, 0..1M (default 0)",
	  BENCH_O_BACKGROUND },
	{ "seed", 0, "N", "sim and background PRNG seed (default 1)", BENCH_O_SEED },
	{ "ring-layout", 0, "NAME", "invalidation queue: auto (default: per-CPU rings\n"
				    "unless flushes trap), shared or percpu", BENCH_O_RING },
	{ "device", 0, "DEV", "iommufd, vfio-type1: the device bound to vfio-pci, a PCI\n"
			      "address (0000:00:03.0) or, for iommufd, its VFIO cdev\n"
			      "(/dev/vfio/devices/vfio0); default: the environment\n"
			      "variable IOVAQ_IOMMUFD_DEVICE or IOVAQ_VFIO_DEVICE", O_DEVICE },
	{ "json", 0, NULL, "one JSON object", BENCH_O_JSON },
	{ "csv", 0, NULL, "CSV with a header line", BENCH_O_CSV },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_run_help(FILE *f)
{
	fprintf(f,
		"Usage: %s run --policy NAME --workload NAME [--backend NAME] [--threads N]\n"
		"       %*s [--ops N] [--reps N] [--nested] [--caching-mode] [--seed N]\n"
		"       %*s [--background N] [--ring-layout NAME] [--device DEV]\n"
		"       %*s [--json | --csv]\n"
		"\n"
		"One invalidation policy on one DMA workload through a libiovaq domain: wall time\n"
		"per op, invalidation commands per unmapped page, the safety window, and on sim\n"
		"the modelled device-side (IOTLB, paging-structure caches, walks) and CPU-side cost.\n"
		"\n"
		"Policies (DESIGN.md section 2):\n"
		"  strict                unmap returns after the invalidation\n"
		"  deferred              batched; the buffer is reused while still reachable\n"
		"  safe-deferred         batched; the buffer comes back at t_safe (cookie)\n"
		"  safe-deferred+arenas  safe-deferred, buffers linked into arenas (F&S), one\n"
		"                        arena sync per descriptor instead of one unmap per page\n"
		"  passthrough           no translation, no protection\n"
		"Workloads (4 KiB pages from a preallocated pool of host pages):\n"
		"  nic-rx     ring of 1024 RX pages; per op the device writes the oldest, the\n"
		"             driver unmaps it and maps a fresh page (arenas: 16 descriptors of 64)\n"
		"  nic-tx     per op map a page, the device reads it; unmaps in batches of 64\n"
		"             (arenas: one 64-page arena per batch)\n"
		"  memcached  per request: RX page map, device write, unmap; TX page map, device\n"
		"             read, unmap (arenas: one 2-page arena per request)\n"
		"  nginx      per op one 1 MiB response: 16 chunks of 64 KiB, each 16 pages\n"
		"             mapped, read by the device, unmapped (arenas: one 256-page arena\n"
		"             per response, one sync per chunk)\n"
		"Device accesses go through the sim; under passthrough the device copies host\n"
		"memory directly; other backends have no device model and skip them.\n"
		"\n"
		"Options:\n",
		BENCH_PROG, (int)strlen(BENCH_PROG) + 4, "", (int)strlen(BENCH_PROG) + 4, "",
		(int)strlen(BENCH_PROG) + 4, "");
	bench_print_opts(f, run_opts);
	fprintf(f,
		"\n"
		"Numbers accept the suffixes k, M, G (10^3, 10^6, 10^9) and eN (1e7).\n"
		"Exit status: 0 success, 1 library or system error, 2 bad usage.\n");
}

static const char *required_hint(const char *const *choices, char *buf, size_t len)
{
	bench_join(buf, len, choices, ", ");
	return buf;
}

int bench_run_main(int argc, char **argv)
{
	struct bench_run_cfg cfg = { .threads = 1, .reps = DEFAULT_REPS, .seed = DEFAULT_SEED,
				     .command = "run" };
	struct bench_run *res;
	struct bench_args a;
	bool have_pol = false, have_wl = false, have_ops = false, json = false, csv = false;
	enum bench_format fmt;
	char valid[256];
	int id, ret;

	bench_args_init(&a, argc, argv, 1, "run", run_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		if (bench_run_common_opt(&a, id, &cfg, &json, &csv))
			continue;
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			bench_usage_error("unexpected argument '%s' for run (options start with --; "
					  "see '%s run --help')", a.positional, BENCH_PROG);
		case O_POLICY:
			cfg.pol = bench_parse_choice(&a, "policy", bench_policy_names);
			have_pol = true;
			break;
		case O_WORKLOAD:
			cfg.wl = bench_parse_choice(&a, "workload", bench_workload_names);
			have_wl = true;
			break;
		case O_OPS:
			cfg.ops = bench_parse_u64(&a, 1, MAX_OPS);
			have_ops = true;
			break;
		case O_NESTED:
			cfg.nested = true;
			break;
		case O_CACHING_MODE:
			cfg.caching_mode = true;
			break;
		case O_DEVICE:
			cfg.device = a.value;
			break;
		case O_HELP:
			bench_run_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	if (!have_pol)
		bench_usage_error("run needs --policy NAME (valid: %s)",
				  required_hint(bench_policy_names, valid, sizeof(valid)));
	if (!have_wl)
		bench_usage_error("run needs --workload NAME (valid: %s)",
				  required_hint(bench_workload_names, valid, sizeof(valid)));
	fmt = bench_format_of(json, csv);
	if (cfg.backend != 0 && (cfg.nested || cfg.caching_mode))
		bench_usage_error("--%s applies to --backend sim only (got --backend %s)",
				  cfg.nested ? "nested" : "caching-mode", bench_backend_names[cfg.backend]);
	if (cfg.device && strcmp(bench_backend_names[cfg.backend], "iommufd") &&
	    strcmp(bench_backend_names[cfg.backend], "vfio-type1"))
		bench_usage_error("--device applies to --backend iommufd or vfio-type1 (got "
				  "--backend %s)", bench_backend_names[cfg.backend]);
	if (!have_ops)
		cfg.ops = wl_defs[cfg.wl].ops;

	ret = bench_run_exec(&cfg, &res);
	if (ret)
		return ret;
	if (fmt == BENCH_FMT_JSON) {
		struct bench_json j;

		bench_json_begin(&j, stdout);
		bench_run_json(res, &j);
		bench_json_end(&j);
	} else if (fmt == BENCH_FMT_CSV) {
		bench_run_csv_head(stdout);
		bench_run_csv(res, stdout);
	} else {
		ret = emit_table(res, stdout);
	}
	bench_run_warn(res);
	bench_run_free(res);
	return ret;
}
