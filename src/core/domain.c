/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Domain: mappings, the invalidation queue, the flush planner and the safety-window account.
 * See include/iovaq/domain.h for the contract and DESIGN.md §1, §2, §4 for the model.
 *
 * Locking, outermost first:
 *   flush_lock   one flush of the queue at a time (it alone advances a ring's @head);
 *   lock         the mapping table, stats, the window account, kept mappings, completions;
 *   qring.lock   one ring's slots and counters; several are taken only in index order, and
 *                no other lock is taken while one is held;
 *   cache/space  their own locks, never taken with @lock held except for reads of stats.
 * Backend calls run without @lock (a backend is thread-safe and may block).
 *
 * Queue (after dma-iommu.c's flush queue): one shared ring, or one ring per CPU, of entries
 * tagged with the flush generation current at enqueue. A flush snapshots the entries of every
 * ring present when it starts, invalidates them without a lock, and only then (t_safe)
 * returns their IOVAs to the cache and hands back safe-deferred cookies. Entries queued
 * meanwhile wait for the next flush. A QUEUED entry never reaches the cache before the flush
 * covering it succeeded; a failed flush leaves all of its entries queued.
 *
 * A release takes @lock once (its mapping record) and its ring's lock once. What every
 * release must update beyond that is kept off @lock: the reachable-pages count, the bound's
 * reservation, is an atomic; unsafe reuse and queued pages are counted per ring.
 */
#include <iovaq/domain.h>
#include <iovaq/space.h>
#include <iovaq/stats.h>
#include "space_priv.h"
#include "cache_priv.h"
#include "imap.h"
#include "backend_core.h"

struct iovaq_arena;

struct qent {
	iovaq_iova_t iova;
	uint64_t pages;		/* granules to invalidate (the cache rounds on its own) */
	uint64_t acct;		/* granules released (the window's pages): @pages but for arenas */
	uint64_t gen;		/* flush generation at enqueue */
	uint64_t t_release;
	uint64_t cookie;
	struct iovaq_arena *arena;	/* an arena sync: its chunk, not a cached IOVA */
	uint64_t seq;		/* the arena's sync sequence number */
	uint8_t notify;		/* safe-deferred: hand the cookie back */
	uint8_t freed_tables;	/* the unmap freed table pages: no leaf-only command */
	uint8_t release;	/* the arena's last entry: free it once safe */
	uint8_t accounted;	/* its release was already counted (reachable, unsafe reuse) */
};

/*
 * A mapping kept alive after its unmap by optimistic teardown: still mapped in the backend, its
 * IOVA ALLOCATED, its release already counted.
 */
struct kept {
	iovaq_iova_t iova;
	void *buf;
	uint64_t pages;
	unsigned int prot;
	uint8_t ref;			/* second chance: reused since it was last kept */
	uint64_t t_release;
	struct kept *older, *newer;	/* age order (domain lock) */
};

/*
 * The mapping table's value: granules | prot << PROT_SHIFT, and VAL_REUSED when the mapping
 * came back from optimistic teardown (its second-chance bit once it is kept again).
 */
#define PROT_SHIFT 56
#define PROT_MASK 3u
#define VAL_REUSED (1ull << 63)

/* Per-page state of an arena. */
enum { AP_FREE = 0, AP_LINKED, AP_UNLINKED, AP_QUEUED };

/*
 * struct iovaq_arena - a reserved chunk. Its owner thread changes everything but @safe_seq and
 * @pending, which flushes update under the domain lock.
 */
struct iovaq_arena {
	struct iovaq_domain *d;
	iovaq_iova_t base;
	uint64_t pages;			/* chunk size, a power of two */
	uint8_t *st;			/* AP_* per page */
	uint32_t *link;			/* at the first page of a link: its pages; else 0 */
	uint64_t *qseq;			/* AP_QUEUED pages: the sync that covers them */
	uint64_t linked, unlinked;	/* pages in those states */
	uint64_t seq;			/* syncs issued */
	uint64_t safe_seq;		/* syncs safe (domain lock) */
	uint64_t pending;		/* entries in the queue (atomic) */
	uint64_t t_unlink;		/* first unlink since the last sync */
	uint64_t ul_first, ul_end;	/* pages [first, end) hold those unlinks (unlinked > 0) */
	int freed_tables;
	int orphan;			/* released, but the backend refused an unlink: the
					 * domain finishes it on sync (domain lock) */
	struct iovaq_arena *next, *prev;	/* the domain's list (domain lock) */
};

/*
 * Window histogram: exact below 16 ns, then 8 linear sub-buckets per power of two, so a
 * reported percentile is within 1/8 of the true value.
 */
#define HIST_SUB 8
#define HIST_BUCKETS (16 + (64 - 4) * HIST_SUB)

/* Timed steps (IOVAQ_DOMAIN_TIMING), in the order of struct iovaq_domain_stats.time_*. */
enum { TM_ALLOC, TM_MAP, TM_UNMAP, TM_PLAN, TM_FLUSH, TM_NR };

/* One invalidation ring: a shared one, or one per CPU. */
struct qring {
	iovaq_lock_t lock;
	struct qent *ent;
	uint32_t cap, head, n;		/* n: READ_ONCE without the lock */
	uint32_t n_max;			/* most entries held at once */
	uint64_t t_oldest;		/* t_release of ent[head], or UINT64_MAX: READ_ONCE */
	uint64_t pages;			/* granules of releases queued here */
	uint64_t unsafe_reuse;		/* deferred releases queued here */
} __attribute__((aligned(IOVAQ_CACHELINE)));

#define MAX_RINGS 64
#define MIN_RING_ENTRIES 64	/* per-CPU rings are not split smaller */

struct iovaq_domain {
	/* Constant after creation. */
	struct iovaq_backend *be;
	struct iovaq_backend_caps caps;
	struct iovaq_space *sp;
	struct iovaq_cache *cache;
	const struct iovaq_alloc_hooks *hooks;
	uint32_t policy;
	uint32_t flusher;
	uint64_t max_window;
	uint64_t max_reach;
	uint64_t threshold;
	uint64_t granule;
	unsigned int shift;
	int needs_flush;		/* the backend's unmap does not invalidate */
	iovaq_complete_fn complete;
	void *complete_arg;

	iovaq_lock_t flush_lock;
	iovaq_lock_t lock;
	struct iovaq_imap maps;		/* iova -> (granules | prot << 56, host buffer) */
	struct iovaq_arena *arenas;	/* reserved arenas */
	struct iovaq_imap kept_map;	/* host buffer -> struct kept (optimistic teardown) */
	struct kept *kept_old, *kept_new;
	uint64_t n_kept, kept_bytes;
	uint64_t teardown_ns, teardown_max, teardown_bytes;
	struct qring *rings;
	uint32_t nr_rings;
	uint32_t layout;		/* IOVAQ_RING_SHARED or IOVAQ_RING_PERCPU */
	uint64_t gen_start;		/* written with every ring lock held */
	uint64_t gen_finish;		/* lock */
	uint64_t cmds_per_entry;	/* commands per queued entry, in 1/1024ths (READ_ONCE) */
	uint64_t *done;			/* cookies for iovaq_domain_poll(), a growing ring */
	uint64_t done_cap, done_head, done_n;
	uint64_t done_resv;		/* slots reserved by queued releases */
	struct iovaq_domain_stats st;
	uint64_t hist[HIST_BUCKETS];
	struct iovaq_window_report win;

	/* Flusher thread. */
	iovaq_cond_t cv;
	iovaq_thread_t thr;
	int thr_running;
	int stop;

	uint64_t metadata_bytes;
	/* Atomics, on their own line: the reachable bound's count, and what exceeds it. */
	struct {
		uint64_t reach;
		uint64_t reach_max;
		uint64_t violations;
	} __attribute__((aligned(IOVAQ_CACHELINE))) at;
	uint32_t timing;		/* IOVAQ_DOMAIN_TIMING */
	uint64_t tm[TM_NR];		/* time_* counters (atomic adds) */
};

/* Start timing a step: 0 when timing is off. */
static inline uint64_t tm_start(const struct iovaq_domain *d)
{
	return d->timing ? iovaq_now_ns() : 0;
}

static inline void tm_end(struct iovaq_domain *d, unsigned int step, uint64_t t0)
{
	if (d->timing)
		iovaq_atomic_add(&d->tm[step], iovaq_now_ns() - t0);
}

enum flush_reason { FR_FULL, FR_AGE, FR_REACH, FR_SYNC, FR_NOSPC };

/* ---- window account --------------------------------------------------------------------- */

static unsigned int hist_bucket(uint64_t v)
{
	unsigned int e;

	if (v < 16)
		return (unsigned int)v;
	e = iovaq_ilog2(v);
	return 16 + (e - 4) * HIST_SUB + (unsigned int)((v >> (e - 3)) & (HIST_SUB - 1));
}

/* Upper bound of a bucket's values. */
static uint64_t hist_upper(unsigned int b)
{
	unsigned int e, sub;

	if (b < 16)
		return b;
	e = (b - 16) / HIST_SUB + 4;
	sub = (b - 16) % HIST_SUB;
	if (e >= 63 && sub == HIST_SUB - 1)
		return UINT64_MAX;
	return (1ull << e) + ((uint64_t)(sub + 1) << (e - 3)) - 1;
}

static uint64_t hist_quantile(const struct iovaq_domain *d, uint64_t num, uint64_t den)
{
	uint64_t total = d->win.releases, want, seen = 0;
	unsigned int b;

	if (!total)
		return 0;
	/* The smallest value v with at least num/den of the samples <= v. */
	want = (total * num + den - 1) / den;
	for (b = 0; b < HIST_BUCKETS; b++) {
		seen += d->hist[b];
		if (seen >= want) {
			uint64_t up = hist_upper(b);

			return up < d->win.window_max_ns ? up : d->win.window_max_ns;
		}
	}
	return d->win.window_max_ns;
}

/* A release became safe (lock held). */
static void account_safe(struct iovaq_domain *d, uint64_t pages, uint64_t t_release,
			 uint64_t t_safe)
{
	uint64_t w = t_safe > t_release ? t_safe - t_release : 0;

	IOVAQ_TRACE2(safe, pages, w);
	d->win.releases++;
	d->win.released_pages += pages;
	d->hist[hist_bucket(w)]++;
	if (w > d->win.window_max_ns)
		d->win.window_max_ns = w;
	d->win.exposure_page_ns += pages * w;
	iovaq_atomic_add(&d->at.reach, -pages);
	if (w > d->max_window) {
		d->win.violations++;
		IOVAQ_TRACE3(violation, 0, w, d->max_window);	/* 0: the window bound */
	}
}

/* The reachable count is now @now after adding @pages: record its maximum and violations. */
static void reach_note(struct iovaq_domain *d, uint64_t now, uint64_t pages)
{
	uint64_t max = IOVAQ_READ_ONCE(d->at.reach_max);

	while (now > max &&
	       !__atomic_compare_exchange_n(&d->at.reach_max, &max, now, 0, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
	/*
	 * Exceeding the bound is a violation unless this one release is larger than the bound
	 * by itself: then nothing could have prevented it, and the queue flushes it at once.
	 */
	if (now > d->max_reach && now > pages) {
		iovaq_atomic_add(&d->at.violations, 1);
		IOVAQ_TRACE3(violation, 1, now, d->max_reach);	/* 1: the reachable bound */
	}
}

/* Pages become reachable at release (any lock or none). */
static void account_release(struct iovaq_domain *d, uint64_t pages)
{
	reach_note(d, __atomic_add_fetch(&d->at.reach, pages, __ATOMIC_RELAXED), pages);
}

/*
 * A release's pages become reachable, keeping the bound: if they would exceed it, flush what
 * is queued first (once; if other threads refill the queue meanwhile, the excess is counted
 * as a violation). No lock held.
 */
static int flush_queue(struct iovaq_domain *d, enum flush_reason why);

static void account_release_bounded(struct iovaq_domain *d, uint64_t pages)
{
	uint64_t old = IOVAQ_READ_ONCE(d->at.reach);
	int tried = 0;

	for (;;) {
		if (old && !tried && old + pages > d->max_reach) {
			tried = 1;
			flush_queue(d, FR_REACH);
			old = IOVAQ_READ_ONCE(d->at.reach);
			continue;
		}
		if (__atomic_compare_exchange_n(&d->at.reach, &old, old + pages, 0,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	reach_note(d, old + pages, pages);
}

/* ---- planner ------------------------------------------------------------------------------ */

struct prange {
	uint64_t first;		/* granule numbers, [first, end) */
	uint64_t end;
	int freed_tables;
};

static int cmp_prange(const void *a, const void *b)
{
	const struct prange *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Sort and merge adjacent or overlapping ranges in place; returns how many remain. */
static size_t merge_ranges(struct prange *r, size_t n)
{
	size_t i, m = 0;

	iovaq_sort(r, n, sizeof(*r), cmp_prange);
	for (i = 0; i < n; i++) {
		if (m && r[i].first <= r[m - 1].end) {
			if (r[i].end > r[m - 1].end)
				r[m - 1].end = r[i].end;
			r[m - 1].freed_tables |= r[i].freed_tables;
		} else {
			r[m++] = r[i];
		}
	}
	return m;
}

/*
 * Naturally aligned blocks that tile [first, end) exactly, each at most 2^max_am granules:
 * from @first, the largest block its alignment and the remaining length allow. A size-aligned
 * range is one block: an exact VT-d address mask (FACTS.md). Writes up to @room commands and
 * returns how many it takes in all.
 */
static size_t plan_blocks(const struct iovaq_domain *d, const struct prange *r,
			  struct iovaq_inval *out, size_t room)
{
	uint64_t g = r->first;
	size_t k = 0;
	unsigned int am;

	while (g < r->end) {
		am = g ? (unsigned int)__builtin_ctzll(g) : 63;
		if (am > d->caps.max_am)
			am = d->caps.max_am;
		while (am && (1ull << am) > r->end - g)
			am--;
		if (k < room)	/* @out is NULL only with @room 0 */
			/* cppcheck-suppress nullPointer */
			out[k] = (struct iovaq_inval){
				.kind = IOVAQ_INVAL_PAGES,
				.am = (uint8_t)am,
				.flags = (!r->freed_tables && d->caps.leaf_hint) ? IOVAQ_INVAL_LEAF : 0,
				.iova = g << d->shift,
			};
		k++;
		g += 1ull << am;
	}
	return k;
}

/*
 * Plan the cheapest command list for @n ranges (merged in place). Page-selective blocks by
 * default; one domain-wide command when the flush covers at least the threshold and the
 * backend's cost hints make it cheaper, except under caching mode (below). Returns the number of commands in *@cmds (allocated), or a negative errno.
 */
/*
 * Where each granule a command covers costs extra (caching mode: the hypervisor re-walks the
 * range), over-invalidating is a trade: bridge the gap between two ranges when its pages cost
 * less than the command saved, and cover a range by its enclosing aligned block when one
 * command over the block costs less than the exact tiling. Invalidating still-mapped pages is
 * always correct; it only costs their refills.
 */
static size_t widen_ranges(const struct iovaq_domain *d, struct prange *r, size_t m)
{
	const uint64_t cmd = d->caps.cost_cmd_ns, page = d->caps.cost_inval_page_ns;
	size_t i, j;

	if (!page || m == 0)
		return m;
	for (i = 1, j = 0; i < m; i++) {
		if ((r[i].first - r[j].end) * page < cmd) {
			/*
			 * The gap belongs to other mappings: an unmap not in this flush may
			 * have freed a table there, so no leaf-only hint over it.
			 */
			r[j].end = r[i].end;
			r[j].freed_tables = 1;
		} else {
			r[++j] = r[i];
		}
	}
	m = j + 1;
	for (i = 0; i < m; i++) {
		uint64_t len = r[i].end - r[i].first, k = 0, e0, e1;
		unsigned int am = 0;

		while (am < d->caps.max_am && (r[i].first >> am) != ((r[i].end - 1) >> am))
			am++;
		if ((r[i].first >> am) != ((r[i].end - 1) >> am))
			continue;	/* no single block is allowed to cover it */
		e0 = (r[i].first >> am) << am;
		e1 = e0 + (1ull << am);
		k = plan_blocks(d, &r[i], NULL, 0);
		if (cmd + (e1 - e0) * page < k * cmd + len * page) {
			r[i].first = e0;
			r[i].end = e1;
			r[i].freed_tables = 1;	/* as for a bridged gap */
		}
	}
	return merge_ranges(r, m);	/* blocks may now overlap */
}

static long plan(struct iovaq_domain *d, struct prange *r, size_t n, uint64_t mapped_pages,
		 struct iovaq_inval *buf, size_t room, struct iovaq_inval **cmds)
{
	const struct iovaq_backend_caps *c = &d->caps;
	uint64_t covered = 0, psi_cost, dom_cost;
	size_t i, k = 0, m = widen_ranges(d, r, merge_ranges(r, n));
	struct iovaq_inval *v;

	for (i = 0; i < m; i++) {
		covered += r[i].end - r[i].first;
		k += plan_blocks(d, &r[i], NULL, 0);
	}
	psi_cost = k * c->cost_cmd_ns + covered * c->cost_inval_page_ns;
	dom_cost = c->cost_domain_ns + mapped_pages * c->cost_domain_page_ns;
	/*
	 * Under caching mode a domain-wide command makes the hypervisor re-walk every table it
	 * shadows, including mappings this domain does not know about (other users of the
	 * same guest table, the guest's own kernel): its cost cannot be bounded from here, so
	 * it is never chosen there while page-selective commands exist (the case where Linux
	 * turns batching off altogether, FACTS.md).
	 */
	if ((c->inval_kinds & (1u << IOVAQ_INVAL_DOMAIN)) &&
	    (!(c->inval_kinds & (1u << IOVAQ_INVAL_PAGES)) ||
	     (!(c->flags & IOVAQ_CAP_CACHING_MODE) && covered >= d->threshold &&
	      dom_cost <= psi_cost))) {
		buf[0] = (struct iovaq_inval){ .kind = IOVAQ_INVAL_DOMAIN };
		*cmds = buf;
		return 1;
	}
	/* Small plans (every strict unmap) use the caller's buffer: no allocation. */
	v = k <= room ? buf : iovaq__meta_alloc(d->hooks, &d->metadata_bytes, k * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0, n = 0; i < m; i++)
		n += plan_blocks(d, &r[i], v + n, k - n);
	*cmds = v;
	return (long)k;
}

/* Plan and execute the invalidation of @n ranges; counts commands on success. */
static int invalidate(struct iovaq_domain *d, struct prange *r, size_t n, uint64_t *ncmds)
{
	struct iovaq_inval small[16], *cmds = NULL;
	uint64_t mapped, t0;
	long k, i;
	int err;

	if (!d->needs_flush || !n)
		return 0;
	iovaq_lock(&d->lock);
	mapped = d->st.mapped_pages;
	iovaq_unlock(&d->lock);
	t0 = tm_start(d);
	k = plan(d, r, n, mapped, small, IOVAQ_ARRAY_SIZE(small), &cmds);
	tm_end(d, TM_PLAN, t0);
	if (k < 0)
		return (int)k;
	t0 = tm_start(d);
	err = iovaq_backend_flush(d->be, cmds, (size_t)k);
	tm_end(d, TM_FLUSH, t0);
	if (!err && ncmds)
		*ncmds = (uint64_t)k;
	if (!err) {
		iovaq_lock(&d->lock);
		d->st.inval_cmds += (uint64_t)k;
		for (i = 0; i < k; i++) {
			d->st.inval_domain_cmds += cmds[i].kind == IOVAQ_INVAL_DOMAIN;
			d->st.inval_leaf_cmds += !!(cmds[i].flags & IOVAQ_INVAL_LEAF);
		}
		iovaq_unlock(&d->lock);
	}
	if (cmds != small)
		iovaq__meta_free(d->hooks, &d->metadata_bytes, cmds, (size_t)k * sizeof(*cmds));
	return err;
}

/* ---- completions -------------------------------------------------------------------------- */

/*
 * Completion slots for iovaq_domain_poll(). A safe-deferred release reserves its slot when it
 * is made (where -ENOMEM can still be returned with nothing changed), so that handing the
 * cookie back at t_safe can never fail. Lock held.
 */
static int done_reserve(struct iovaq_domain *d)
{
	if (d->done_n + d->done_resv == d->done_cap) {
		uint64_t cap = d->done_cap ? d->done_cap * 2 : 256, i;
		uint64_t *v = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (i = 0; i < d->done_n; i++)
			v[i] = d->done[(d->done_head + i) % d->done_cap];
		iovaq__meta_free(d->hooks, &d->metadata_bytes, d->done,
				 d->done_cap * sizeof(*v));
		d->done = v;
		d->done_cap = cap;
		d->done_head = 0;
	}
	d->done_resv++;
	return 0;
}

/* Hand a cookie to the poll queue, into its reserved slot (lock held). */
static void done_push(struct iovaq_domain *d, uint64_t cookie)
{
	IOVAQ_TRACE1(complete, cookie);
	d->done_resv--;
	d->done[(d->done_head + d->done_n++) % d->done_cap] = cookie;
	d->st.completions++;
}

/* Reserve a completion slot if this domain hands cookies to iovaq_domain_poll(). */
static int done_reserve_if_polled(struct iovaq_domain *d)
{
	int err = 0;

	if (d->policy == IOVAQ_POLICY_SAFE_DEFERRED && !d->complete) {
		iovaq_lock(&d->lock);
		err = done_reserve(d);
		iovaq_unlock(&d->lock);
	}
	return err;
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void arena_free(struct iovaq_arena *a);
static int arena_sync(struct iovaq_arena *a, uint64_t cookie, int how);

static uint64_t *reason_counter(struct iovaq_domain *d, enum flush_reason why)
{
	switch (why) {
	case FR_FULL:
		return &d->st.flush_full;
	case FR_AGE:
		return &d->st.flush_age;
	case FR_REACH:
		return &d->st.flush_reachable;
	case FR_NOSPC:
		return &d->st.flush_nospc;
	default:
		return &d->st.flush_sync;
	}
}

/* Snapshot of one ring at the start of a flush. */
struct qsnap {
	uint32_t head, n;
};

#define SNAP_FOR_EACH(d, snap, ri, i, e)                                                    \
	for ((ri) = 0; (ri) < (d)->nr_rings; (ri)++)                                         \
		for ((i) = 0; (i) < (snap)[ri].n &&                                          \
			      ((e) = &(d)->rings[ri].ent[((snap)[ri].head + (i)) %              \
							 (d)->rings[ri].cap], 1);              \
		     (i)++)

/* Entries queued in every ring (a racy sum without the ring locks). */
static uint64_t queued_entries(const struct iovaq_domain *d)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < d->nr_rings; i++)
		n += IOVAQ_READ_ONCE(d->rings[i].n);
	return n;
}


static void rings_lock(struct iovaq_domain *d)
{
	uint32_t i;

	for (i = 0; i < d->nr_rings; i++)
		iovaq_lock(&d->rings[i].lock);
}

static void rings_unlock(struct iovaq_domain *d)
{
	uint32_t i;

	for (i = d->nr_rings; i-- > 0;)
		iovaq_unlock(&d->rings[i].lock);
}

/*
 * Flush what is queued now. On success the entries become safe: their window closes, their
 * IOVAs go back to the cache, their cookies are handed back. On failure they all stay queued.
 */
static int flush_queue(struct iovaq_domain *d, enum flush_reason why)
{
	struct qsnap snap[MAX_RINGS] = { { 0, 0 } };	/* rings beyond nr_rings: empty */
	/* A few entries (an arena's sync, a short queue) need no allocation. */
	struct prange small_r[8], *r = NULL;
	uint64_t small_c[8], *cookies = NULL;
	uint32_t ri, i;
	uint64_t t_safe, ncmds = 0, n = 0, nc = 0, k;
	const struct qent *e;
	int err = 0;

	iovaq_lock(&d->flush_lock);
	/*
	 * Every ring at once, so that the generation moves between the entries this flush
	 * takes and the ones it leaves in each ring alike.
	 */
	rings_lock(d);
	for (ri = 0; ri < d->nr_rings; ri++) {
		snap[ri] = (struct qsnap){ d->rings[ri].head, d->rings[ri].n };
		n += snap[ri].n;
	}
	if (n)
		IOVAQ_WRITE_ONCE(d->gen_start, d->gen_start + 1);
	rings_unlock(d);
	if (!n)
		goto out;
	IOVAQ_TRACE2(flush_start, n, (unsigned int)why);
	/*
	 * Only this flush advances a @head, and appends go behind the snapshot, so its entries
	 * can be read without a lock until it releases them.
	 */
	if (n <= IOVAQ_ARRAY_SIZE(small_r)) {
		r = small_r;
		cookies = d->complete ? small_c : NULL;
	} else {
		r = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, n * sizeof(*r));
		cookies = d->complete ? iovaq__meta_alloc(d->hooks, &d->metadata_bytes,
							  n * sizeof(*cookies))
				      : NULL;
	}
	if (!r || (d->complete && !cookies)) {
		err = -ENOMEM;
		goto fail;
	}
	k = 0;
	SNAP_FOR_EACH(d, snap, ri, i, e)
		r[k++] = (struct prange){ e->iova >> d->shift, (e->iova >> d->shift) + e->pages,
					  e->freed_tables };
	err = invalidate(d, r, n, &ncmds);
	IOVAQ_TRACE3(flush_done, n, ncmds, err);
	if (err)
		goto fail;
	t_safe = iovaq_now_ns();

	iovaq_lock(&d->lock);
	SNAP_FOR_EACH(d, snap, ri, i, e) {
		if (e->acct)	/* entries of no release (undo, arena bookkeeping) have none */
			account_safe(d, e->acct, e->t_release, t_safe);
		d->st.invalidated_pages += e->acct;
		if (e->arena) {
			/* Rings are visited in CPU order, not sync order: only move forward. */
			if (e->seq > e->arena->safe_seq)
				IOVAQ_WRITE_ONCE(e->arena->safe_seq, e->seq);
			iovaq_atomic_add(&e->arena->pending, -1ull);
		}
		if (e->notify) {
			if (cookies)
				cookies[nc++] = e->cookie;
			else
				done_push(d, e->cookie);
		}
	}
	d->gen_finish = IOVAQ_READ_ONCE(d->gen_start);
	/*
	 * Learn how many commands an entry costs after merging (running average, 1/1024ths).
	 * n > 0 here; clang's analyzer loses that across the USDT probe's asm above.
	 */
	IOVAQ_WRITE_ONCE(d->cmds_per_entry,
			 (d->cmds_per_entry * 3 + (ncmds << 10) / (n ? n : 1)) / 4);
	d->st.flushes++;
	d->st.completions += nc;
	(*reason_counter(d, why))++;
	iovaq_unlock(&d->lock);
	/* Safe now: the IOVAs may be handed out again. */
	SNAP_FOR_EACH(d, snap, ri, i, e) {
		if (!e->arena)
			iovaq_cache_free(d->cache, e->iova, e->pages);
		else if (e->release)
			arena_free(e->arena);
	}
	for (ri = 0; ri < d->nr_rings; ri++) {
		struct qring *q = &d->rings[ri];
		uint64_t pages = 0;

		if (!snap[ri].n)
			continue;
		for (i = 0; i < snap[ri].n; i++)
			pages += q->ent[(snap[ri].head + i) % q->cap].acct;
		iovaq_lock(&q->lock);
		q->head = (q->head + snap[ri].n) % q->cap;
		IOVAQ_WRITE_ONCE(q->n, q->n - snap[ri].n);
		IOVAQ_WRITE_ONCE(q->t_oldest, q->n ? q->ent[q->head].t_release : UINT64_MAX);
		q->pages -= pages;
		iovaq_unlock(&q->lock);
	}
	iovaq_unlock(&d->flush_lock);
	/* Callbacks run with no lock held: they may call back into the domain. */
	for (i = 0; i < nc; i++) {
		IOVAQ_TRACE1(complete, cookies[i]);
		d->complete(d->complete_arg, cookies[i]);
	}
	goto done;
fail:
	iovaq_lock(&d->lock);
	d->st.flush_errors++;
	d->st.last_flush_error = err;
	iovaq_unlock(&d->lock);
out:
	iovaq_unlock(&d->flush_lock);
done:
	if (r != small_r) {
		iovaq__meta_free(d->hooks, &d->metadata_bytes, r, n * sizeof(*r));
		iovaq__meta_free(d->hooks, &d->metadata_bytes, cookies, n * sizeof(*cookies));
	}
	return err;
}

/*
 * How long after its release the oldest entry must be flushed: the bound minus a margin that
 * leaves the flush time to finish inside it. The margin is a quarter of the bound, or the
 * backend's estimate of flushing the whole queue if that is more (under caching mode a long
 * queue takes milliseconds to flush): its commands per entry as recent flushes merged them,
 * one per entry before any flush. @n: entries queued.
 */
static uint64_t age_budget(const struct iovaq_domain *d, uint64_t n)
{
	uint64_t est = d->caps.cost_flush_ns +
		       ((n * IOVAQ_READ_ONCE(d->cmds_per_entry)) >> 10) * d->caps.cost_cmd_ns;
	uint64_t margin = d->max_window / 4 > est ? d->max_window / 4 : est;

	return margin >= d->max_window ? 0 : d->max_window - margin;
}

/* When the oldest queued entry is due (UINT64_MAX: nothing queued). */
static uint64_t age_deadline(const struct iovaq_domain *d)
{
	uint64_t t = UINT64_MAX, n = 0, v;
	uint32_t i;

	/* One pass over the rings (every map and unmap comes here): racy reads, no lock. */
	for (i = 0; i < d->nr_rings; i++) {
		v = IOVAQ_READ_ONCE(d->rings[i].t_oldest);
		if (v < t)
			t = v;
		n += IOVAQ_READ_ONCE(d->rings[i].n);
	}
	return t == UINT64_MAX ? t : t + age_budget(d, n);
}

/* Flush if the oldest entry is due (every call into the domain checks, without a lock). */
static void maybe_flush_age(struct iovaq_domain *d)
{
	uint64_t due = age_deadline(d);

	if (due != UINT64_MAX && iovaq_now_ns() >= due)
		flush_queue(d, FR_AGE);
}

static int kept_evict_due(struct iovaq_domain *d, int all);

/*
 * The flusher thread. It sleeps on @cv under @lock; a release that makes a ring non-empty
 * takes @lock to signal it, so the check below cannot miss it.
 */
static void *flusher_main(void *arg)
{
	struct iovaq_domain *d = arg;
	uint64_t due;

	iovaq_lock(&d->lock);
	while (!d->stop) {
		if (d->kept_old) {
			uint64_t kdue = d->kept_old->t_release + d->teardown_ns;

			if (iovaq_now_ns() >= kdue) {
				iovaq_unlock(&d->lock);
				kept_evict_due(d, 0);
				iovaq_lock(&d->lock);
				continue;
			}
			if (!queued_entries(d)) {
				iovaq_cond_wait_until(&d->cv, &d->lock, kdue);
				continue;
			}
		}
		if (!queued_entries(d)) {
			iovaq_cond_wait_until(&d->cv, &d->lock, 0);
			continue;
		}
		due = age_deadline(d);
		if (iovaq_now_ns() < due) {
			iovaq_cond_wait_until(&d->cv, &d->lock, due == UINT64_MAX ? 0 : due);
			continue;
		}
		iovaq_unlock(&d->lock);
		flush_queue(d, FR_AGE);
		iovaq_lock(&d->lock);
	}
	iovaq_unlock(&d->lock);
	return NULL;
}

/* Double a full ring; 0 or -ENOMEM (then the caller tries again: the release waits). */
static int ring_grow(struct iovaq_domain *d, struct qring *q)
{
	struct qent *v;
	uint32_t i, cap;
	int err = 0;

	iovaq_lock(&d->flush_lock);	/* no flush reads the entries meanwhile */
	iovaq_lock(&q->lock);
	if (q->n < q->cap)
		goto out;	/* a flush made room meanwhile */
	cap = q->cap * 2;
	v = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, cap * sizeof(*v));
	if (!v) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < q->n; i++)
		v[i] = q->ent[(q->head + i) % q->cap];
	iovaq__meta_free(d->hooks, &d->metadata_bytes, q->ent, q->cap * sizeof(*v));
	q->ent = v;
	q->cap = cap;
	q->head = 0;
out:
	iovaq_unlock(&q->lock);
	iovaq_unlock(&d->flush_lock);
	return err;
}

/*
 * Lock a ring with room for one entry: the calling CPU's, or if that one is full the next
 * one with room, so that releases crowding onto one CPU still use the whole capacity (a
 * per-CPU queue would otherwise flush at a fraction of the shared one's batch). NULL when
 * every ring is full.
 */
static struct qring *lock_ring_with_room(struct iovaq_domain *d)
{
	uint32_t start = d->nr_rings == 1 ? 0 : iovaq_cpu_id() % d->nr_rings, i;
	struct qring *q;

	for (i = 0; i < d->nr_rings; i++) {
		q = &d->rings[(start + i) % d->nr_rings];
		iovaq_lock(&q->lock);
		if (q->n < q->cap)
			return q;
		iovaq_unlock(&q->lock);
	}
	return NULL;
}

/*
 * Queue a released range, flushing first if every ring is full or if the pages would exceed
 * the reachable bound. The range is already unmapped, so it is never dropped: if the rings
 * are full and the flush fails, a ring grows; if even that fails, it retries until one
 * succeeds.
 */
static void enqueue(struct iovaq_domain *d, const struct qent *e)
{
	struct qring *q;
	int was_empty;

	if (!e->accounted)
		account_release_bounded(d, e->acct);
	if (e->arena)
		iovaq_atomic_add(&e->arena->pending, 1);
	while (!(q = lock_ring_with_room(d))) {
		/* Every ring full: flush; if that fails, grow this CPU's ring instead. */
		if (flush_queue(d, FR_FULL))
			ring_grow(d, &d->rings[iovaq_cpu_id() % d->nr_rings]);
	}
	was_empty = !q->n;
	q->ent[(q->head + q->n) % q->cap] = *e;
	q->ent[(q->head + q->n) % q->cap].gen = d->gen_start;
	IOVAQ_WRITE_ONCE(q->n, q->n + 1);
	if (q->n > q->n_max)
		q->n_max = q->n;
	if (was_empty)
		IOVAQ_WRITE_ONCE(q->t_oldest, e->t_release);
	q->pages += e->acct;
	if (!e->accounted && d->policy == IOVAQ_POLICY_DEFERRED)
		q->unsafe_reuse++;
	iovaq_unlock(&q->lock);
	if (was_empty && d->thr_running) {
		iovaq_lock(&d->lock);
		iovaq_cond_signal(&d->cv);
		iovaq_unlock(&d->lock);
	}
	/*
	 * Over the bound only with a release larger than the bound by itself, or when other
	 * threads refilled the queue after this one's flush: flush it now.
	 */
	if (IOVAQ_READ_ONCE(d->at.reach) > d->max_reach)
		flush_queue(d, FR_REACH);
}

/* Is anything QUEUED or kept, that a flush could give back? */
static int queue_nonempty(struct iovaq_domain *d)
{
	int any;

	iovaq_lock(&d->lock);
	any = queued_entries(d) || d->n_kept;
	iovaq_unlock(&d->lock);
	return any;
}

/* ---- optimistic teardown ----------------------------------------------------------------- */

static void kept_unlink(struct iovaq_domain *d, struct kept *k)
{
	if (k->older)
		k->older->newer = k->newer;
	else
		d->kept_old = k->newer;
	if (k->newer)
		k->newer->older = k->older;
	else
		d->kept_new = k->older;
	iovaq__imap_del(&d->kept_map, iovaq__imap_find(&d->kept_map, (uintptr_t)k->buf));
	d->n_kept--;
	d->kept_bytes -= k->pages << d->shift;
}

static void kept_push(struct iovaq_domain *d, struct kept *k)
{
	k->newer = NULL;
	k->older = d->kept_new;
	if (d->kept_new)
		d->kept_new->newer = k;
	else
		d->kept_old = k;
	if (!k->older && d->thr_running)
		iovaq_cond_signal(&d->cv);	/* the flusher times its eviction */
	d->kept_new = k;
	d->n_kept++;
	d->kept_bytes += k->pages << d->shift;
}

/*
 * Really unmap a kept mapping and queue its invalidation (its release is already counted).
 * 0, or the backend's error: then it stays kept (the newest), and a later eviction retries.
 */
static int kept_evict(struct iovaq_domain *d, struct kept *k)
{
	int ret = iovaq_backend_unmap(d->be, k->iova, k->pages << d->shift);
	struct qent q;

	if (ret < 0) {
		/* Its record was just removed, so there is room to put it back. */
		iovaq_lock(&d->lock);
		iovaq__imap_add(&d->kept_map, (uintptr_t)k->buf, k->pages, k);
		kept_push(d, k);
		iovaq_unlock(&d->lock);
		return ret;
	}
	q = (struct qent){ .iova = k->iova, .pages = k->pages, .acct = k->pages,
			   .t_release = k->t_release, .accounted = 1,
			   .freed_tables = ret == IOVAQ_UNMAP_FREED_TABLES };
	iovaq_lock(&d->lock);
	d->st.teardown_evictions++;
	iovaq_unlock(&d->lock);
	iovaq__meta_free(d->hooks, &d->metadata_bytes, k, sizeof(*k));
	enqueue(d, &q);
	return 0;
}

static int cmp_kept(const void *a, const void *b)
{
	const struct kept *x = *(struct kept *const *)a, *y = *(struct kept *const *)b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/*
 * Evict every kept mapping, unmapping each run of IOVA-adjacent ones with one backend call: an
 * unmap may cover several whole mappings, which VFIO type1 and iommufd remove in one ioctl
 * (type1 syncs the IOTLB once per up to 512 of them, FACTS.md). At VFIO type1's mapping limit
 * this is what gives the slots back (iovaq_domain_map()'s -ENOSPC retry), at the cost of one
 * system call per run instead of one per mapping. Stops at the first backend error and returns
 * it: that run and the ones after it stay kept (newest), and a later eviction retries them.
 * 1 when the sort array cannot be allocated: the caller evicts one by one.
 */
static int kept_evict_all(struct iovaq_domain *d)
{
	struct kept **v, *k;
	uint64_t n, cap, i, j, p;
	int ret, err = 0;

	iovaq_lock(&d->lock);
	cap = d->n_kept;
	iovaq_unlock(&d->lock);
	if (cap < 2)
		return 1;	/* nothing to coalesce */
	v = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, cap * sizeof(*v));
	if (!v)
		return 1;
	iovaq_lock(&d->lock);
	for (n = 0; n < cap && (k = d->kept_old); n++) {
		kept_unlink(d, k);
		v[n] = k;
	}
	iovaq_unlock(&d->lock);
	iovaq_sort(v, n, sizeof(*v), cmp_kept);
	for (i = 0; i < n; i = j) {
		iovaq_iova_t end = v[i]->iova + (v[i]->pages << d->shift);

		for (j = i + 1; j < n && v[j]->iova == end; j++)
			end += v[j]->pages << d->shift;
		ret = err ? err : iovaq_backend_unmap(d->be, v[i]->iova, (size_t)(end - v[i]->iova));
		if (ret < 0) {
			/* Their records were just removed, so there is room to put them back. */
			err = ret;
			iovaq_lock(&d->lock);
			for (p = i; p < j; p++) {
				iovaq__imap_add(&d->kept_map, (uintptr_t)v[p]->buf, v[p]->pages, v[p]);
				kept_push(d, v[p]);
			}
			iovaq_unlock(&d->lock);
			continue;
		}
		iovaq_lock(&d->lock);
		d->st.teardown_evictions += j - i;
		iovaq_unlock(&d->lock);
		for (p = i; p < j; p++) {
			struct qent q = { .iova = v[p]->iova, .pages = v[p]->pages,
					  .acct = v[p]->pages, .t_release = v[p]->t_release,
					  .accounted = 1,
					  .freed_tables = ret == IOVAQ_UNMAP_FREED_TABLES };

			iovaq__meta_free(d->hooks, &d->metadata_bytes, v[p], sizeof(*v[p]));
			enqueue(d, &q);
		}
	}
	iovaq__meta_free(d->hooks, &d->metadata_bytes, v, cap * sizeof(*v));
	return err;
}

/*
 * Evict kept mappings that are too old, or beyond the count, or all of them (@all, coalesced:
 * kept_evict_all()). Stops at the first backend error and returns it (the mapping stays
 * kept); 0 otherwise.
 */
static int kept_evict_due(struct iovaq_domain *d, int all)
{
	uint64_t now;
	struct kept *k;
	int err;

	if (!d->teardown_ns)
		return 0;
	if (all) {
		err = kept_evict_all(d);
		if (err <= 0)
			return err;
	}
	now = iovaq_now_ns();
	for (;;) {
		int aged, over;

		iovaq_lock(&d->lock);
		k = d->kept_old;
		aged = k && now - k->t_release >= d->teardown_ns;
		over = d->n_kept > d->teardown_max ||
		       (d->teardown_bytes && d->kept_bytes > d->teardown_bytes);
		if (!k || (!all && !aged && !over)) {
			iovaq_unlock(&d->lock);
			return 0;
		}
		if (!all && !aged) {
			/*
			 * Over the count or the byte budget: the oldest mapping not reused since
			 * it was kept goes (the CLOCK algorithm's second chance, as coIOMMU sweeps
			 * its pinned pages); those passed over lose their chance. Age order stays:
			 * the oldest is still the first due by time.
			 */
			struct kept *v = k;

			while (v && v->ref) {
				v->ref = 0;
				v = v->newer;
			}
			if (v)
				k = v;
		}
		kept_unlink(d, k);
		iovaq_unlock(&d->lock);
		err = kept_evict(d, k);
		if (err)
			return err;
	}
}

/* Unmap under optimistic teardown: keep the mapping. 0, or -ENOENT to take the normal path. */
static int kept_keep(struct iovaq_domain *d, iovaq_iova_t iova, void *buf, uint64_t pages,
		     uint64_t val, uint64_t t_release)
{
	struct kept *k = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, sizeof(*k));

	if (!k)
		return -ENOENT;
	*k = (struct kept){ .iova = iova, .buf = buf, .pages = pages,
			    .prot = (unsigned int)(val >> PROT_SHIFT) & PROT_MASK,
			    .ref = !!(val & VAL_REUSED), .t_release = t_release };
	iovaq_lock(&d->lock);
	if (iovaq__imap_find(&d->kept_map, (uintptr_t)buf) ||
	    iovaq__imap_add(&d->kept_map, (uintptr_t)buf, pages, k)) {
		iovaq_unlock(&d->lock);
		iovaq__meta_free(d->hooks, &d->metadata_bytes, k, sizeof(*k));
		return -ENOENT;
	}
	kept_push(d, k);
	account_release(d, pages);
	d->win.unsafe_reuse++;
	iovaq_unlock(&d->lock);
	kept_evict_due(d, 0);
	return 0;
}

/*
 * Map under optimistic teardown: the same buffer, length and permissions kept from an unmap
 * come back with their IOVA, no map and no invalidation. 0 with *@iova set, or -ENOENT.
 */
static int kept_reuse(struct iovaq_domain *d, void *buf, uint64_t pages, unsigned int prot,
		      iovaq_iova_t *iova)
{
	struct iovaq_imap_ent *e;
	struct kept *k;
	int err;

	iovaq_lock(&d->lock);
	e = iovaq__imap_find(&d->kept_map, (uintptr_t)buf);
	k = e ? e->ptr : NULL;
	if (!k || k->pages != pages || k->prot != prot) {
		if (k)	/* a different mapping of the buffer is wanted: this one goes */
			kept_unlink(d, k);
		iovaq_unlock(&d->lock);
		if (k)
			(void)kept_evict(d, k);	/* on failure it stays kept */
		return -ENOENT;
	}
	err = iovaq__imap_add(&d->maps, k->iova,
			      pages | (uint64_t)prot << PROT_SHIFT | VAL_REUSED, buf);
	if (err) {
		iovaq_unlock(&d->lock);
		return -ENOENT;
	}
	kept_unlink(d, k);
	/* The release ends here: the device may use the buffer again by right. */
	account_safe(d, pages, k->t_release, iovaq_now_ns());
	d->st.maps++;
	d->st.mapped_pages += pages;
	d->st.teardown_hits++;
	iovaq_unlock(&d->lock);
	*iova = k->iova;
	iovaq__meta_free(d->hooks, &d->metadata_bytes, k, sizeof(*k));
	return 0;
}

/* ---- public API ---------------------------------------------------------------------------- */

int iovaq_domain_map(struct iovaq_domain *d, void *buf, size_t len, unsigned int prot,
		     iovaq_iova_t limit, iovaq_iova_t *iova)
{
	uint64_t pages, t0;
	iovaq_iova_t v;
	int err;

	if (!d || !buf || !iova || !len || ((uintptr_t)buf & (d->granule - 1)) ||
	    (len & (d->granule - 1)) || !prot ||
	    (prot & ~(unsigned int)(IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)))
		return -EINVAL;
	pages = len >> d->shift;
	maybe_flush_age(d);
	if (d->policy == IOVAQ_POLICY_PASSTHROUGH) {
		/* No translation: the device sees host addresses. Keep the record for unmap. */
		v = (iovaq_iova_t)(uintptr_t)buf;
		iovaq_lock(&d->lock);
		err = iovaq__imap_find(&d->maps, v) ? -EEXIST :
		      iovaq__imap_add(&d->maps, v, pages | (uint64_t)prot << PROT_SHIFT, buf);
		if (!err) {
			d->st.maps++;
			d->st.mapped_pages += pages;
		} else {
			d->st.map_errors++;
		}
		iovaq_unlock(&d->lock);
		if (!err)
			*iova = v;
		return err;
	}
	if (d->teardown_ns) {
		kept_evict_due(d, 0);
		if (!kept_reuse(d, buf, pages, prot, iova))
			return 0;
	}
	t0 = tm_start(d);
	err = iovaq_cache_alloc(d->cache, pages, limit, &v);
	tm_end(d, TM_ALLOC, t0);
	if (err == -ENOSPC && queue_nonempty(d)) {
		/* QUEUED and kept ranges come back only through a flush. */
		kept_evict_due(d, 1);
		flush_queue(d, FR_NOSPC);
		t0 = tm_start(d);
		err = iovaq_cache_alloc(d->cache, pages, limit, &v);
		tm_end(d, TM_ALLOC, t0);
	}
	if (!err) {
		t0 = tm_start(d);
		err = iovaq_backend_map(d->be, v, buf, len, prot);
		tm_end(d, TM_MAP, t0);
		if (err == -ENOSPC && queue_nonempty(d)) {
			/*
			 * The backend is out of mappings (VFIO type1 allows 65535): the kept
			 * ones hold some. Unmap them, flush, and try once more.
			 */
			kept_evict_due(d, 1);
			flush_queue(d, FR_NOSPC);
			err = iovaq_backend_map(d->be, v, buf, len, prot);
		}
		if (err)
			iovaq_cache_free(d->cache, v, pages);	/* never mapped: safe at once */
	}
	if (!err) {
		iovaq_lock(&d->lock);
		err = iovaq__imap_add(&d->maps, v, pages | (uint64_t)prot << PROT_SHIFT, buf);
		if (!err) {
			d->st.maps++;
			d->st.mapped_pages += pages;
		}
		iovaq_unlock(&d->lock);
		if (err) {
			/* The caller never saw @v, so no device can have used it: undo at once. */
			int ret = iovaq_backend_unmap(d->be, v, len);

			if (ret >= 0) {
				struct prange r = { v >> d->shift, (v >> d->shift) + pages, 1 };
				/* Not a caller's release: no window to account. */
				struct qent q = { .iova = v, .pages = pages, .accounted = 1,
						  .t_release = iovaq_now_ns(), .freed_tables = 1 };

				if (!invalidate(d, &r, 1, NULL))
					iovaq_cache_free(d->cache, v, pages);
				else
					enqueue(d, &q);	/* QUEUED until a flush succeeds */
			}
		}
	}
	IOVAQ_TRACE3(map, err ? 0 : v, pages, err);
	if (err) {
		iovaq_lock(&d->lock);
		d->st.map_errors++;
		iovaq_unlock(&d->lock);
		return err;
	}
	*iova = v;
	return 0;
}

int iovaq_domain_unmap(struct iovaq_domain *d, iovaq_iova_t iova, size_t len, uint64_t cookie)
{
	uint64_t t_release = iovaq_now_ns(), pages, t0;
	struct iovaq_imap_ent *e;
	struct qent q;
	uint64_t val;
	void *buf;
	int ret, err;

	if (!d || !len || (len & (d->granule - 1)))
		return -EINVAL;
	pages = len >> d->shift;
	iovaq_lock(&d->lock);
	e = iovaq__imap_find(&d->maps, iova);
	if (!e || (e->val & ((1ull << PROT_SHIFT) - 1)) != pages) {
		d->st.unmap_errors++;
		iovaq_unlock(&d->lock);
		return -EINVAL;
	}
	if (d->policy == IOVAQ_POLICY_SAFE_DEFERRED && !d->complete && done_reserve(d)) {
		d->st.unmap_errors++;
		iovaq_unlock(&d->lock);
		return -ENOMEM;	/* nothing changed */
	}
	IOVAQ_TRACE3(unmap, iova, pages, cookie);
	val = e->val;
	buf = e->ptr;
	iovaq__imap_del(&d->maps, e);
	d->st.mapped_pages -= pages;
	d->st.unmaps++;		/* taken back below if the backend refuses */
	if (d->policy == IOVAQ_POLICY_PASSTHROUGH)
		d->win.unsafe_reuse++;	/* the device could always reach it */
	iovaq_unlock(&d->lock);
	if (d->policy == IOVAQ_POLICY_PASSTHROUGH)
		return 0;
	if (d->teardown_ns && !kept_keep(d, iova, buf, pages, val, t_release))
		return 0;
	t0 = tm_start(d);
	ret = iovaq_backend_unmap(d->be, iova, len);
	tm_end(d, TM_UNMAP, t0);
	if (ret < 0) {
		/* Nothing changed: put the record back (removal never shrinks, so this fits). */
		iovaq_lock(&d->lock);
		if (d->policy == IOVAQ_POLICY_SAFE_DEFERRED && !d->complete)
			d->done_resv--;
		iovaq__imap_add(&d->maps, iova, val, buf);
		d->st.mapped_pages += pages;
		d->st.unmaps--;
		d->st.unmap_errors++;
		iovaq_unlock(&d->lock);
		return ret;
	}
	q = (struct qent){ .iova = iova, .pages = pages, .acct = pages, .t_release = t_release,
			   .cookie = cookie,
			   .notify = d->policy == IOVAQ_POLICY_SAFE_DEFERRED,
			   .freed_tables = ret == IOVAQ_UNMAP_FREED_TABLES };
	if (d->policy == IOVAQ_POLICY_STRICT) {
		struct prange r = { iova >> d->shift, (iova >> d->shift) + pages,
				    q.freed_tables };

		account_release(d, pages);
		err = invalidate(d, &r, 1, NULL);
		if (err) {
			/* Unreachable not yet guaranteed: QUEUED, retried by the next sync. */
			q.accounted = 1;
			iovaq_lock(&d->lock);
			d->st.flush_errors++;
			d->st.last_flush_error = err;
			iovaq_unlock(&d->lock);
			enqueue(d, &q);
			return err;
		}
		iovaq_lock(&d->lock);
		account_safe(d, pages, t_release, iovaq_now_ns());
		d->st.invalidated_pages += pages;
		d->st.flushes++;
		d->st.flush_strict++;
		iovaq_unlock(&d->lock);
		iovaq_cache_free(d->cache, iova, pages);
		return 0;
	}
	enqueue(d, &q);
	if (d->flusher == IOVAQ_FLUSHER_INLINE || !d->thr_running)
		maybe_flush_age(d);
	return 0;
}

static int arenas_finish(struct iovaq_domain *d);

int iovaq_domain_sync(struct iovaq_domain *d)
{
	int err_kept, err_arenas, err;

	if (!d)
		return -EINVAL;
	/* Everything released so far: kept mappings and released arenas too. */
	err_kept = kept_evict_due(d, 1);
	err_arenas = arenas_finish(d);
	err = flush_queue(d, FR_SYNC);
	return err ?: err_kept ?: err_arenas;
}

int iovaq_domain_poll(struct iovaq_domain *d, uint64_t *cookies, size_t max)
{
	size_t k = 0;

	if (!d || (!cookies && max))
		return -EINVAL;
	maybe_flush_age(d);
	iovaq_lock(&d->lock);
	while (k < max && d->done_n) {
		cookies[k++] = d->done[d->done_head];
		d->done_head = (d->done_head + 1) % d->done_cap;
		d->done_n--;
	}
	iovaq_unlock(&d->lock);
	return (int)k;
}

/* What the rings count: queued pages, the sum of their largest fills, deferred releases. */
static void rings_sum(struct iovaq_domain *d, uint64_t *pages, uint64_t *n_max, uint64_t *unsafe)
{
	uint32_t i;

	*pages = *n_max = *unsafe = 0;
	for (i = 0; i < d->nr_rings; i++) {
		iovaq_lock(&d->rings[i].lock);
		*pages += d->rings[i].pages;
		*n_max += d->rings[i].n_max;
		*unsafe += d->rings[i].unsafe_reuse;
		iovaq_unlock(&d->rings[i].lock);
	}
}

int iovaq_domain_get_stats(struct iovaq_domain *d, struct iovaq_domain_stats *st)
{
	uint64_t unsafe;
	struct iovaq_domain_stats all;
	size_t sz;
	int err;

	if (!d)
		return -EINVAL;
	err = iovaq_opts_check(st, offsetof(struct iovaq_domain_stats, maps) + sizeof(uint64_t),
			       SIZE_MAX);
	if (err)
		return err;
	sz = st->sz < sizeof(d->st) ? st->sz : sizeof(d->st);
	iovaq_lock(&d->lock);
	all = d->st;
	iovaq_unlock(&d->lock);
	rings_sum(d, &all.queued_pages, &all.queued_entries_max, &unsafe);
	all.time_alloc_ns = IOVAQ_READ_ONCE(d->tm[TM_ALLOC]);
	all.time_map_ns = IOVAQ_READ_ONCE(d->tm[TM_MAP]);
	all.time_unmap_ns = IOVAQ_READ_ONCE(d->tm[TM_UNMAP]);
	all.time_plan_ns = IOVAQ_READ_ONCE(d->tm[TM_PLAN]);
	all.time_flush_ns = IOVAQ_READ_ONCE(d->tm[TM_FLUSH]);
	iovaq_memcpy(st, &all, sz);
	st->sz = sz;
	return 0;
}

int iovaq_domain_window(struct iovaq_domain *d, struct iovaq_window_report *rep)
{
	struct iovaq_window_report w;
	uint64_t pages, n_max, unsafe;
	size_t sz;
	int err;

	if (!d)
		return -EINVAL;
	err = iovaq_opts_check(rep, offsetof(struct iovaq_window_report, releases) +
				    sizeof(uint64_t), SIZE_MAX);
	if (err)
		return err;
	iovaq_lock(&d->lock);
	w = d->win;
	w.window_p50_ns = hist_quantile(d, 50, 100);
	w.window_p99_ns = hist_quantile(d, 99, 100);
	w.window_p999_ns = hist_quantile(d, 999, 1000);
	iovaq_unlock(&d->lock);
	rings_sum(d, &pages, &n_max, &unsafe);
	w.unsafe_reuse += unsafe;
	w.reachable_pages = IOVAQ_READ_ONCE(d->at.reach);
	w.reachable_pages_max = IOVAQ_READ_ONCE(d->at.reach_max);
	w.violations += IOVAQ_READ_ONCE(d->at.violations);
	w.max_window_ns = d->max_window;
	w.max_reachable_pages = d->max_reach;
	sz = rep->sz < sizeof(w) ? rep->sz : sizeof(w);
	w.sz = sz;
	iovaq_memcpy(rep, &w, sz);
	return 0;
}

int iovaq_domain_window_hist(struct iovaq_domain *d, struct iovaq_window_bucket *out, size_t max)
{
	unsigned int b;
	size_t n = 0;

	if (!d || (!out && max))
		return -EINVAL;
	iovaq_lock(&d->lock);
	for (b = 0; b < HIST_BUCKETS; b++) {
		if (!d->hist[b])
			continue;
		if (n < max)
			out[n] = (struct iovaq_window_bucket){ hist_upper(b), d->hist[b] };
		n++;
	}
	iovaq_unlock(&d->lock);
	return (int)n;
}

static const char *const policy_names[IOVAQ_POLICY_NR] = { "strict", "deferred",
							   "safe-deferred", "passthrough" };

int iovaq_domain_json(struct iovaq_domain *d, char *buf, size_t len)
{
	IOVAQ_OPTS(iovaq_domain_stats, s);
	IOVAQ_OPTS(iovaq_window_report, w);
	int n;

	if (!d || (!buf && len))
		return -EINVAL;
	iovaq_domain_get_stats(d, &s);
	iovaq_domain_window(d, &w);
	n = iovaq_snprintf(buf, len,
		"{\"policy\":\"%s\",\"backend\":\"%s\",\"stats\":{\"maps\":%llu,\"unmaps\":%llu,"
		"\"map_errors\":%llu,\"unmap_errors\":%llu,\"mapped_pages\":%llu,"
		"\"queued_pages\":%llu,\"queued_entries_max\":%llu,\"flushes\":%llu,"
		"\"flush_errors\":%llu,\"last_flush_error\":%lld,\"inval_cmds\":%llu,"
		"\"inval_domain_cmds\":%llu,\"inval_leaf_cmds\":%llu,\"invalidated_pages\":%llu,"
		"\"flush_full\":%llu,\"flush_age\":%llu,\"flush_reachable\":%llu,"
		"\"flush_sync\":%llu,\"flush_nospc\":%llu,\"flush_strict\":%llu,"
		"\"completions\":%llu,\"teardown_hits\":%llu,\"teardown_evictions\":%llu,"
		"\"rings\":%llu,\"time_ns\":{\"alloc\":%llu,\"map\":%llu,\"unmap\":%llu,"
		"\"plan\":%llu,\"flush\":%llu}},\"window\":{\"releases\":%llu,\"released_pages\":%llu,"
		"\"window_ns\":{\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
		"\"exposure_page_ns\":%llu,\"reachable_pages\":%llu,\"reachable_pages_max\":%llu,"
		"\"unsafe_reuse\":%llu,\"violations\":%llu,\"max_window_ns\":%llu,"
		"\"max_reachable_pages\":%llu}}",
		policy_names[d->policy], iovaq_backend_name(d->be),
		(unsigned long long)s.maps, (unsigned long long)s.unmaps,
		(unsigned long long)s.map_errors, (unsigned long long)s.unmap_errors,
		(unsigned long long)s.mapped_pages, (unsigned long long)s.queued_pages,
		(unsigned long long)s.queued_entries_max, (unsigned long long)s.flushes,
		(unsigned long long)s.flush_errors, (long long)s.last_flush_error,
		(unsigned long long)s.inval_cmds, (unsigned long long)s.inval_domain_cmds,
		(unsigned long long)s.inval_leaf_cmds, (unsigned long long)s.invalidated_pages,
		(unsigned long long)s.flush_full, (unsigned long long)s.flush_age,
		(unsigned long long)s.flush_reachable, (unsigned long long)s.flush_sync,
		(unsigned long long)s.flush_nospc, (unsigned long long)s.flush_strict,
		(unsigned long long)s.completions, (unsigned long long)s.teardown_hits,
		(unsigned long long)s.teardown_evictions, (unsigned long long)s.rings,
		(unsigned long long)s.time_alloc_ns, (unsigned long long)s.time_map_ns,
		(unsigned long long)s.time_unmap_ns, (unsigned long long)s.time_plan_ns,
		(unsigned long long)s.time_flush_ns, (unsigned long long)w.releases,
		(unsigned long long)w.released_pages, (unsigned long long)w.window_p50_ns,
		(unsigned long long)w.window_p99_ns, (unsigned long long)w.window_p999_ns,
		(unsigned long long)w.window_max_ns, (unsigned long long)w.exposure_page_ns,
		(unsigned long long)w.reachable_pages, (unsigned long long)w.reachable_pages_max,
		(unsigned long long)w.unsafe_reuse, (unsigned long long)w.violations,
		(unsigned long long)w.max_window_ns, (unsigned long long)w.max_reachable_pages);
	return n < 0 ? -EINVAL : n;
}

struct iovaq_cache *iovaq_domain_cache(const struct iovaq_domain *d)
{
	return d->cache;
}

/* ---- arenas ------------------------------------------------------------------------------ */

/* Free an arena whose last entry is safe: the chunk goes back to the cache. */
static void arena_free(struct iovaq_arena *a)
{
	struct iovaq_domain *d = a->d;

	iovaq_lock(&d->lock);
	if (a->prev)
		a->prev->next = a->next;
	else
		d->arenas = a->next;
	if (a->next)
		a->next->prev = a->prev;
	iovaq_unlock(&d->lock);
	iovaq_cache_free(d->cache, a->base, a->pages);
	iovaq__meta_free(d->hooks, &d->metadata_bytes, a->st, a->pages * sizeof(*a->st));
	iovaq__meta_free(d->hooks, &d->metadata_bytes, a->link, a->pages * sizeof(*a->link));
	iovaq__meta_free(d->hooks, &d->metadata_bytes, a->qseq, a->pages * sizeof(*a->qseq));
	iovaq__meta_free(d->hooks, &d->metadata_bytes, a, sizeof(*a));
}

int iovaq_arena_reserve(struct iovaq_domain *d, uint64_t pages, iovaq_iova_t limit,
			struct iovaq_arena **out)
{
	struct iovaq_arena *a;
	int err;

	if (!d || !out || !pages || pages > (1ull << 32) || d->policy == IOVAQ_POLICY_PASSTHROUGH)
		return -EINVAL;
	pages = 1ull << iovaq_order_ceil(pages);
	a = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, sizeof(*a));
	if (!a)
		return -ENOMEM;
	iovaq_memset(a, 0, sizeof(*a));
	a->d = d;
	a->pages = pages;
	a->st = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, pages * sizeof(*a->st));
	a->link = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, pages * sizeof(*a->link));
	a->qseq = iovaq__meta_alloc(d->hooks, &d->metadata_bytes, pages * sizeof(*a->qseq));
	err = a->st && a->link && a->qseq ? 0 : -ENOMEM;
	if (!err) {
		iovaq_memset(a->st, 0, pages * sizeof(*a->st));
		iovaq_memset(a->link, 0, pages * sizeof(*a->link));
		/* A power of two is aligned to its size: one command covers the chunk exactly. */
		err = iovaq_cache_alloc(d->cache, pages, limit, &a->base);
		if (err == -ENOSPC && queue_nonempty(d)) {
			flush_queue(d, FR_NOSPC);
			err = iovaq_cache_alloc(d->cache, pages, limit, &a->base);
		}
	}
	if (err) {
		iovaq__meta_free(d->hooks, &d->metadata_bytes, a->st, pages * sizeof(*a->st));
		iovaq__meta_free(d->hooks, &d->metadata_bytes, a->link, pages * sizeof(*a->link));
		iovaq__meta_free(d->hooks, &d->metadata_bytes, a->qseq, pages * sizeof(*a->qseq));
		iovaq__meta_free(d->hooks, &d->metadata_bytes, a, sizeof(*a));
		return err;
	}
	iovaq_lock(&d->lock);
	a->next = d->arenas;
	if (d->arenas)
		d->arenas->prev = a;
	d->arenas = a;
	iovaq_unlock(&d->lock);
	*out = a;
	return 0;
}

iovaq_iova_t iovaq_arena_base(const struct iovaq_arena *a)
{
	return a->base;
}

/* Is page @i free to link: never linked, or unlinked and its sync already safe? */
static int arena_page_free(const struct iovaq_arena *a, uint64_t i)
{
	return a->st[i] == AP_FREE ||
	       (a->st[i] == AP_QUEUED && a->qseq[i] <= IOVAQ_READ_ONCE(a->safe_seq));
}

/*
 * One backend call for a link: one segment is a plain map, as it always was; several, which
 * arena_link() has checked (@len their total), skip the public call's second check.
 */
static int link_map(struct iovaq_domain *d, iovaq_iova_t at, const struct iovaq_seg *segs,
		    size_t nsegs, size_t len, unsigned int prot)
{
	if (nsegs == 1)
		return iovaq_backend_map(d->be, at, segs->host, segs->len, prot);
	return iovaq__backend_mapv(d->be, at, segs, nsegs, len, prot);
}

/*
 * Link @nsegs segments at consecutive pages from @idx as one link (iovaq_arena_link() is the
 * case of one), mapped with one backend call, so that a backend that maps scattered memory at
 * once makes it one mapping.
 */
static int arena_link(struct iovaq_arena *a, uint64_t idx, const struct iovaq_seg *segs,
		      size_t nsegs, unsigned int prot, iovaq_iova_t *iova)
{
	struct iovaq_domain *d;
	uintptr_t bits = 0;
	iovaq_iova_t at;
	size_t k, len = 0;
	uint64_t n, i;
	int err, bad = 0;

	if (!a || !segs || !nsegs)
		return -EINVAL;
	d = a->d;
	/* Without a branch per segment: a link may have one per page. */
	for (k = 0; k < nsegs; k++) {
		bits |= (uintptr_t)segs[k].host | segs[k].len;
		bad |= !segs[k].host | !segs[k].len | (segs[k].len > SIZE_MAX - len);
		len += segs[k].len;
	}
	n = len >> d->shift;
	if (bad || (bits & (d->granule - 1)) || idx >= a->pages || n > a->pages - idx ||
	    n > UINT32_MAX)
		return -EINVAL;
	iovaq_lock(&d->lock);	/* pairs with flushes updating safe_seq */
	i = idx + n;
	/* Nothing linked, nothing unlinked since a sync, every sync safe: every page is free. */
	if (a->linked || a->unlinked || a->seq != a->safe_seq)
		for (i = idx; i < idx + n; i++)
			if (!arena_page_free(a, i))
				break;
	iovaq_unlock(&d->lock);
	if (i < idx + n)
		return -EBUSY;
	at = a->base + (idx << d->shift);
	err = link_map(d, at, segs, nsegs, len, prot);
	if (err == -ENOSPC && queue_nonempty(d)) {
		/* Out of backend mappings: as in iovaq_domain_map(), kept ones give theirs back. */
		kept_evict_due(d, 1);
		flush_queue(d, FR_NOSPC);
		err = link_map(d, at, segs, nsegs, len, prot);
	}
	if (err)
		return err;
	/* link[] is non-zero only at the first page of a link: the others are 0 already. */
	for (i = idx; i < idx + n; i++)
		a->st[i] = AP_LINKED;
	a->link[idx] = (uint32_t)n;
	a->linked += n;
	iovaq_lock(&d->lock);
	d->st.maps++;
	d->st.mapped_pages += n;
	iovaq_unlock(&d->lock);
	if (iova)
		*iova = at;
	return 0;
}

int iovaq_arena_link(struct iovaq_arena *a, uint64_t idx, void *buf, size_t len,
		     unsigned int prot, iovaq_iova_t *iova)
{
	const struct iovaq_seg seg = { .host = buf, .len = len };

	return arena_link(a, idx, &seg, 1, prot, iova);
}

int iovaq_arena_linkv(struct iovaq_arena *a, uint64_t idx, const struct iovaq_seg *segs,
		      size_t nsegs, unsigned int prot, iovaq_iova_t *iova)
{
	return arena_link(a, idx, segs, nsegs, prot, iova);
}

int iovaq_arena_unlink(struct iovaq_arena *a, uint64_t idx, size_t len)
{
	struct iovaq_domain *d;
	uint64_t n, i, k;
	int ret, over;

	if (!a || !len)
		return -EINVAL;
	d = a->d;
	n = len >> d->shift;
	if ((len & (d->granule - 1)) || idx >= a->pages || n > a->pages - idx)
		return -EINVAL;
	/* Whole earlier links only, as a backend demands of unmaps. */
	for (i = idx; i < idx + n; i += a->link[i])
		if (a->st[i] != AP_LINKED || !a->link[i] || a->link[i] > idx + n - i)
			return -EINVAL;
	ret = iovaq_backend_unmap(d->be, a->base + (idx << d->shift), len);
	if (ret < 0)
		return ret;
	/*
	 * These pages become reachable-but-released: make room under the bound first, by
	 * flushing the queue and, if the arena's own unsynced pages are the excess, by syncing
	 * them now (their cookie, if any, comes with the caller's next sync).
	 */
	over = IOVAQ_READ_ONCE(d->at.reach) + n > d->max_reach;
	if (over && a->unlinked)
		arena_sync(a, 0, 0);
	if (over)
		flush_queue(d, FR_REACH);
	if (!a->unlinked) {
		a->t_unlink = iovaq_now_ns();
		a->ul_first = idx;
		a->ul_end = idx + n;
	}
	a->ul_first = idx < a->ul_first ? idx : a->ul_first;
	a->ul_end = idx + n > a->ul_end ? idx + n : a->ul_end;
	for (i = idx; i < idx + n; i++)
		a->st[i] = AP_UNLINKED;
	for (i = idx; i < idx + n; i += k) {	/* the first pages of the links, checked above */
		k = a->link[i];
		a->link[i] = 0;
	}
	a->linked -= n;
	a->unlinked += n;
	a->freed_tables |= ret == IOVAQ_UNMAP_FREED_TABLES;
	iovaq_lock(&d->lock);
	d->st.unmaps++;
	d->st.mapped_pages -= n;
	account_release(d, n);
	if (d->policy == IOVAQ_POLICY_DEFERRED)
		d->win.unsafe_reuse++;
	iovaq_unlock(&d->lock);
	return 0;
}

/* How an arena sync is made. */
enum { AS_RELEASE = 1, AS_NOTIFY = 2 };

/*
 * Queue or execute the invalidation of the chunk for the pages unlinked so far. AS_NOTIFY
 * hands @cookie back at t_safe (safe-deferred); AS_RELEASE frees the arena after it.
 */
static int arena_sync(struct iovaq_arena *a, uint64_t cookie, int how)
{
	int release = how & AS_RELEASE;
	struct iovaq_domain *d = a->d;
	struct qent q;
	uint64_t i, n = a->unlinked;
	int err;

	a->seq++;
	for (i = n ? a->ul_first : 0; i < (n ? a->ul_end : 0); i++) {
		if (a->st[i] == AP_UNLINKED) {
			a->st[i] = AP_QUEUED;
			a->qseq[i] = a->seq;
		}
	}
	q = (struct qent){ .iova = a->base, .pages = a->pages, .acct = n,
			   .t_release = a->t_unlink, .cookie = cookie, .arena = a, .seq = a->seq,
			   .notify = d->policy == IOVAQ_POLICY_SAFE_DEFERRED && (how & AS_NOTIFY),
			   .freed_tables = (uint8_t)a->freed_tables, .release = (uint8_t)release,
			   .accounted = 1 };	/* counted at unlink */
	a->unlinked = 0;
	a->freed_tables = 0;
	if (d->policy == IOVAQ_POLICY_STRICT) {
		struct prange r = { a->base >> d->shift, (a->base >> d->shift) + a->pages,
				    q.freed_tables };

		err = invalidate(d, &r, 1, NULL);
		if (!err) {
			uint64_t pending;

			iovaq_lock(&d->lock);
			account_safe(d, n, q.t_release, iovaq_now_ns());
			d->st.invalidated_pages += n;
			d->st.flushes++;
			d->st.flush_strict++;
			pending = IOVAQ_READ_ONCE(a->pending);
			if (!pending)
				IOVAQ_WRITE_ONCE(a->safe_seq, a->seq);
			iovaq_unlock(&d->lock);
			if (!pending) {
				if (release)
					arena_free(a);
				return 0;
			}
			/*
			 * An earlier failed sync is still queued: this one is safe, but page
			 * states and the chunk wait for that entry (queues complete in order).
			 */
			q.acct = 0;
			q.t_release = iovaq_now_ns();
			enqueue(d, &q);
			return 0;
		}
		/* Not safe: queue it like a deferred one; the next sync retries. */
		iovaq_lock(&d->lock);
		d->st.flush_errors++;
		d->st.last_flush_error = err;
		iovaq_unlock(&d->lock);
		enqueue(d, &q);
		return err;
	}
	enqueue(d, &q);
	if (d->flusher == IOVAQ_FLUSHER_INLINE || !d->thr_running)
		maybe_flush_age(d);
	return 0;
}

int iovaq_arena_sync(struct iovaq_arena *a, uint64_t cookie)
{
	struct iovaq_domain *d;
	uint64_t pending;

	if (!a)
		return -EINVAL;
	d = a->d;
	if (done_reserve_if_polled(d))
		return -ENOMEM;
	if (a->unlinked)
		return arena_sync(a, cookie, AS_NOTIFY);
	/*
	 * Nothing new since the last sync, perhaps because unlink synced by itself to keep the
	 * reachable bound: the cookie is due once the syncs already queued are safe.
	 */
	iovaq_lock(&d->lock);
	pending = IOVAQ_READ_ONCE(a->pending);
	iovaq_unlock(&d->lock);
	if (d->policy == IOVAQ_POLICY_STRICT && pending)
		/* An earlier strict sync failed and is still queued: strict retries it now. */
		return flush_queue(d, FR_SYNC);
	if (d->policy == IOVAQ_POLICY_SAFE_DEFERRED && pending) {
		struct qent q = { .iova = a->base, .pages = a->pages, .arena = a, .seq = a->seq,
				  .t_release = iovaq_now_ns(), .cookie = cookie, .notify = 1,
				  .accounted = 1 };

		enqueue(d, &q);
	} else if (d->policy == IOVAQ_POLICY_SAFE_DEFERRED) {
		/* Everything is safe already: hand it back through the usual path. */
		iovaq_lock(&d->lock);
		if (d->complete) {
			d->st.completions++;
			iovaq_unlock(&d->lock);
			d->complete(d->complete_arg, cookie);
			return 0;
		}
		done_push(d, cookie);
		iovaq_unlock(&d->lock);
	}
	return 0;
}

/* Unlink what is linked, then sync and free the chunk: 0, or the backend's unmap error. */
static int arena_finish(struct iovaq_arena *a)
{
	struct iovaq_domain *d = a->d;
	uint64_t i;
	int err;

	for (i = 0; i < a->pages;) {
		if (a->st[i] == AP_LINKED && a->link[i]) {
			uint64_t n = a->link[i];

			err = iovaq_arena_unlink(a, i, n << d->shift);
			if (err)
				return err;
			i += n;
		} else {
			i++;
		}
	}
	if (!a->unlinked && !IOVAQ_READ_ONCE(a->pending)) {
		arena_free(a);
		return 0;
	}
	arena_sync(a, 0, AS_RELEASE);	/* a failed strict flush stays queued: sync retries */
	return 0;
}

void iovaq_arena_release(struct iovaq_arena *a)
{
	struct iovaq_domain *d;

	if (!a)
		return;
	d = a->d;
	if (arena_finish(a)) {
		/* The backend refused an unlink: the next iovaq_domain_sync() retries. */
		iovaq_lock(&d->lock);
		a->orphan = 1;
		iovaq_unlock(&d->lock);
	}
}

/*
 * Finish the arenas whose release the backend refused (iovaq_domain_sync()): 0, or the first
 * error; the arenas that fail again wait for the next sync.
 */
static int arenas_finish(struct iovaq_domain *d)
{
	struct iovaq_arena *a;
	int err = 0, ret;

	for (;;) {
		iovaq_lock(&d->lock);
		for (a = d->arenas; a && a->orphan != 1; a = a->next)
			;
		if (a)
			a->orphan = 2;	/* claimed: no other sync takes it */
		iovaq_unlock(&d->lock);
		if (!a)
			break;
		ret = arena_finish(a);
		if (ret) {
			err = err ?: ret;
			iovaq_lock(&d->lock);
			a->orphan = 3;	/* failed again in this pass */
			iovaq_unlock(&d->lock);
		}
	}
	iovaq_lock(&d->lock);
	for (a = d->arenas; a; a = a->next)
		if (a->orphan == 3)
			a->orphan = 1;
	iovaq_unlock(&d->lock);
	return err;
}

/* ---- invariant check ---------------------------------------------------------------------- */

struct owned {
	iovaq_iova_t iova;
	uint64_t n;	/* granules the space holds for it */
};

struct owned_list {
	struct owned *v;
	uint64_t k, cap;
};

static int cmp_owned(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

static int add_owned(void *arg, iovaq_iova_t iova, uint64_t n)
{
	struct owned_list *l = arg;

	if (l->k == l->cap)
		return -EUCLEAN;
	l->v[l->k++] = (struct owned){ iova, n };
	return 0;
}

static int count_walk(void *arg, iovaq_iova_t iova, uint64_t n)
{
	(void)iova;
	(void)n;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_cached(void *arg, iovaq_iova_t iova, uint64_t n)
{
	return count_walk(arg, iova, n);
}

int iovaq_domain_check(struct iovaq_domain *d)
{
	struct owned_list l = { 0 };
	uint64_t allocs = 0, cached = 0, i, mapped = 0;
	struct iovaq_arena *a;
	uint32_t r;
	struct kept *k;
	int err;

	if (!d)
		return -EINVAL;
	err = iovaq_cache_check(d->cache);
	if (err)
		return err;
	iovaq_lock(&d->flush_lock);
	iovaq_lock(&d->lock);
	rings_lock(d);
	iovaq__cache_for_each_cached(d->cache, count_cached, &cached);
	l.cap = cached + queued_entries(d) +
		(d->policy == IOVAQ_POLICY_PASSTHROUGH ? 0 : d->maps.n);
	for (a = d->arenas; a; a = a->next)
		l.cap++;
	l.cap += d->n_kept;
	l.v = l.cap ? iovaq_hooks_alloc(d->hooks, l.cap * sizeof(*l.v), 8) : NULL;
	if (l.cap && !l.v) {
		err = -ENOMEM;
		goto out;
	}
	/* Every granule the space holds is CACHED, ALLOCATED (a mapping) or QUEUED: once. */
	err = iovaq__cache_for_each_cached(d->cache, add_owned, &l);
	for (i = 0; !err && d->policy != IOVAQ_POLICY_PASSTHROUGH && i <= d->maps.mask &&
		    d->maps.e; i++) {
		const struct iovaq_imap_ent *e = &d->maps.e[i];

		if (!e->key)
			continue;
		mapped += e->val & ((1ull << PROT_SHIFT) - 1);
		err = add_owned(&l, e->key,
				iovaq__cache_round(d->cache, e->val & ((1ull << PROT_SHIFT) - 1)));
	}
	for (r = 0; !err && r < d->nr_rings; r++) {
		const struct qring *qr = &d->rings[r];
		uint64_t pages = 0;

		for (i = 0; !err && i < qr->n; i++) {
			const struct qent *q = &qr->ent[(qr->head + i) % qr->cap];

			pages += q->acct;
			/* A completed flush released everything queued before it started. */
			if (q->gen < d->gen_finish)
				err = -EUCLEAN;
			else if (!q->arena)	/* an arena's chunk is counted once, below */
				err = add_owned(&l, q->iova,
						iovaq__cache_round(d->cache, q->pages));
		}
		/* The oldest-entry time the age trigger reads must be the head's. */
		if (!err && (pages != qr->pages ||
			     qr->t_oldest != (qr->n ? qr->ent[qr->head].t_release : UINT64_MAX)))
			err = -EUCLEAN;
	}
	for (k = d->kept_old; k && !err; k = k->newer)
		err = add_owned(&l, k->iova, iovaq__cache_round(d->cache, k->pages));
	for (a = d->arenas; a && !err; a = a->next) {
		mapped += a->linked;
		err = add_owned(&l, a->base, iovaq__cache_round(d->cache, a->pages));
	}
	if (err)
		goto out;
	if (d->policy == IOVAQ_POLICY_PASSTHROUGH) {
		for (i = 0; d->maps.e && i <= d->maps.mask; i++)
			if (d->maps.e[i].key)
				mapped += d->maps.e[i].val & ((1ull << PROT_SHIFT) - 1);
	}
	if (mapped != d->st.mapped_pages) {
		err = -EUCLEAN;
		goto out;
	}
	iovaq_sort(l.v, l.k, sizeof(*l.v), cmp_owned);
	iovaq__space_lock(d->sp);
	for (i = 0; i < l.k && !err; i++)
		if (iovaq__space_lookup_locked(d->sp, l.v[i].iova) != l.v[i].n ||
		    (i && l.v[i].iova == l.v[i - 1].iova))
			err = -EUCLEAN;
	iovaq__space_unlock(d->sp);
	if (!err) {
		iovaq_space_walk(d->sp, count_walk, &allocs);
		if (allocs != l.k)
			err = -EUCLEAN;	/* an allocation in no state: leaked */
	}
out:
	rings_unlock(d);
	iovaq_unlock(&d->lock);
	iovaq_unlock(&d->flush_lock);
	if (l.v)
		iovaq_hooks_free(d->hooks, l.v, l.cap * sizeof(*l.v));
	return err;
}

/* ---- create and destroy ------------------------------------------------------------------- */

static void domain_free(struct iovaq_domain *d)
{
	uint32_t i;

	iovaq__imap_fini(&d->maps);
	iovaq__imap_fini(&d->kept_map);
	for (i = 0; d->rings && i < d->nr_rings; i++) {
		iovaq__meta_free(d->hooks, &d->metadata_bytes, d->rings[i].ent,
				 d->rings[i].cap * sizeof(*d->rings[i].ent));
		iovaq_lock_destroy(&d->rings[i].lock);
	}
	if (d->rings)
		iovaq_hooks_free(d->hooks, d->rings, d->nr_rings * sizeof(*d->rings));
	iovaq__meta_free(d->hooks, &d->metadata_bytes, d->done, d->done_cap * sizeof(*d->done));
	iovaq_cache_destroy(d->cache);
	iovaq_space_destroy(d->sp);
	iovaq_cond_destroy(&d->cv);
	iovaq_lock_destroy(&d->lock);
	iovaq_lock_destroy(&d->flush_lock);
	iovaq_hooks_free(d->hooks, d, sizeof(*d));
}

int iovaq_domain_create(const struct iovaq_domain_opts *o, struct iovaq_domain **out)
{
	const struct iovaq_alloc_hooks *hooks;
	struct iovaq_domain *d;
	uint32_t ring, i;
	int err;

	if (!out)
		return -EINVAL;
	err = iovaq_opts_check(o, offsetof(struct iovaq_domain_opts, backend) +
				  sizeof(o->backend), sizeof(*o));
	if (err)
		return err;
	/* iovaq_opts_check() refused a NULL @o; IOVAQ_OPTS_GET() tests it again. */
	/* cppcheck-suppress nullPointerRedundantCheck */
	if (!o->backend || IOVAQ_OPTS_GET(o, policy, 0) >= IOVAQ_POLICY_NR ||
	    IOVAQ_OPTS_GET(o, flusher, 0) > IOVAQ_FLUSHER_THREAD ||
	    IOVAQ_OPTS_GET(o, ring_layout, 0) > IOVAQ_RING_PERCPU ||
	    (IOVAQ_OPTS_GET(o, flags, 0) & ~(uint64_t)IOVAQ_DOMAIN_TIMING) ||
	    (IOVAQ_OPTS_GET(o, n_reserved, 0) && !IOVAQ_OPTS_GET(o, reserved, NULL)) ||
	    IOVAQ_OPTS_GET(o, ring_entries, 0) > (1u << 24) ||
	    (IOVAQ_OPTS_GET(o, teardown_ns, 0) &&
	     IOVAQ_OPTS_GET(o, policy, 0) != IOVAQ_POLICY_DEFERRED))
		return -EINVAL;
	hooks = IOVAQ_OPTS_GET(o, hooks, NULL) ?: iovaq_default_alloc_hooks();
	if (!hooks->alloc || !hooks->free)
		return -EINVAL;
	d = iovaq_hooks_alloc(hooks, sizeof(*d), IOVAQ_CACHELINE);
	if (!d)
		return -ENOMEM;
	iovaq_memset(d, 0, sizeof(*d));
	d->hooks = hooks;
	d->be = o->backend;
	d->caps.sz = sizeof(d->caps);
	iovaq_backend_get_caps(d->be, &d->caps);
	d->policy = IOVAQ_OPTS_GET(o, policy, 0);
	d->flusher = IOVAQ_OPTS_GET(o, flusher, 0);
	d->max_window = IOVAQ_OPTS_GET(o, max_window_ns, 0) ?: IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS;
	d->max_reach = IOVAQ_OPTS_GET(o, max_reachable_pages, 0) ?:
		       IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE;
	d->threshold = IOVAQ_OPTS_GET(o, domain_threshold, 0) ?:
		       IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD;
	d->complete = IOVAQ_OPTS_GET(o, complete, NULL);
	d->complete_arg = IOVAQ_OPTS_GET(o, complete_arg, NULL);
	d->granule = d->caps.granule;
	d->shift = iovaq_ilog2(d->granule);
	d->needs_flush = !(d->caps.flags & IOVAQ_CAP_UNMAP_INVALIDATES);
	d->timing = !!(IOVAQ_OPTS_GET(o, flags, 0) & IOVAQ_DOMAIN_TIMING);
	d->teardown_ns = IOVAQ_OPTS_GET(o, teardown_ns, 0);
	d->teardown_max = IOVAQ_OPTS_GET(o, teardown_entries, 0) ?: 256;
	d->teardown_bytes = IOVAQ_OPTS_GET(o, teardown_bytes, 0);
	ring = IOVAQ_OPTS_GET(o, ring_entries, 0);
	if (!ring)
		ring = (d->caps.flags & IOVAQ_CAP_CACHING_MODE) ? 32768 : 4096;
	d->layout = IOVAQ_OPTS_GET(o, ring_layout, 0);
	if (d->layout == IOVAQ_RING_AUTO)
		d->layout = (d->caps.flags & IOVAQ_CAP_CACHING_MODE) ||
					    d->caps.cost_flush_ns > IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS
				    ? IOVAQ_RING_SHARED
				    : IOVAQ_RING_PERCPU;
	d->nr_rings = 1;
	if (d->layout == IOVAQ_RING_PERCPU) {
		d->nr_rings = iovaq_ncpus();
		if (d->nr_rings > MAX_RINGS)
			d->nr_rings = MAX_RINGS;
		if (d->nr_rings > ring / MIN_RING_ENTRIES)
			d->nr_rings = ring / MIN_RING_ENTRIES ?: 1;
	}
	d->st.rings = d->nr_rings;
	d->cmds_per_entry = 1024;	/* one command per entry until a flush tells better */
	iovaq_lock_init(&d->lock);
	iovaq_lock_init(&d->flush_lock);
	iovaq_cond_init(&d->cv);
	iovaq__imap_init(&d->maps, hooks, &d->metadata_bytes);
	iovaq__imap_init(&d->kept_map, hooks, &d->metadata_bytes);
	d->win.max_window_ns = d->max_window;
	d->win.max_reachable_pages = d->max_reach;
	d->st.sz = sizeof(d->st);
	d->win.sz = sizeof(d->win);

	{
		IOVAQ_OPTS(iovaq_space_opts, so, .granule = d->granule,
			   .apertures = d->caps.apertures, .n_apertures = d->caps.n_apertures,
			   .reserved = IOVAQ_OPTS_GET(o, reserved, NULL),
			   .n_reserved = IOVAQ_OPTS_GET(o, n_reserved, 0), .hooks = hooks);

		err = iovaq_space_create(&so, &d->sp);
	}
	if (!err)
		err = iovaq_cache_create(d->sp, IOVAQ_OPTS_GET(o, cache, NULL), &d->cache);
	if (!err) {
		d->rings = iovaq_hooks_alloc(hooks, d->nr_rings * sizeof(*d->rings),
					     IOVAQ_CACHELINE);
		if (!d->rings)
			err = -ENOMEM;
		else
			iovaq_memset(d->rings, 0, d->nr_rings * sizeof(*d->rings));
	}
	for (i = 0; !err && i < d->nr_rings; i++) {
		d->rings[i].cap = ring / d->nr_rings;
		d->rings[i].t_oldest = UINT64_MAX;
		iovaq_lock_init(&d->rings[i].lock);
	}
	for (i = 0; !err && i < d->nr_rings; i++) {
		d->rings[i].ent = iovaq__meta_alloc(hooks, &d->metadata_bytes,
						    d->rings[i].cap * sizeof(*d->rings[i].ent));
		if (!d->rings[i].ent)
			err = -ENOMEM;
	}
	if (!err && d->flusher == IOVAQ_FLUSHER_THREAD &&
	    d->policy != IOVAQ_POLICY_STRICT && d->policy != IOVAQ_POLICY_PASSTHROUGH) {
		err = iovaq_thread_start(&d->thr, flusher_main, d);
		if (err)
			err = -EAGAIN;
		else
			d->thr_running = 1;
	}
	if (err) {
		domain_free(d);
		return err;
	}
	*out = d;
	return 0;
}

void iovaq_domain_destroy(struct iovaq_domain *d)
{
	uint64_t i;
	int any = 0;

	if (!d)
		return;
	if (d->thr_running) {
		iovaq_lock(&d->lock);
		d->stop = 1;
		iovaq_cond_signal(&d->cv);
		iovaq_unlock(&d->lock);
		iovaq_thread_join(d->thr);
		d->thr_running = 0;
	}
	kept_evict_due(d, 1);
	flush_queue(d, FR_SYNC);
	/* Arenas the caller left: unlink their links (their chunks go with the space). */
	while (d->arenas) {
		struct iovaq_arena *a = d->arenas;

		for (i = 0; i < a->pages; i++)
			if (a->st[i] == AP_LINKED && a->link[i] &&
			    iovaq_backend_unmap(d->be, a->base + (i << d->shift),
						(uint64_t)a->link[i] << d->shift) >= 0)
				any = 1;
		any |= a->unlinked != 0;
		arena_free(a);
	}
	/*
	 * Mappings the caller left: unmap them and invalidate them with a planned flush, like
	 * any release (page-selective under caching mode). If even the plan cannot be
	 * allocated, fall back to one domain-wide command where the backend has one.
	 */
	if (d->policy != IOVAQ_POLICY_PASSTHROUGH && d->maps.e && d->maps.n) {
		struct prange *r = iovaq__meta_alloc(d->hooks, &d->metadata_bytes,
						     d->maps.n * sizeof(*r));
		size_t n = 0;

		for (i = 0; i <= d->maps.mask; i++) {
			const struct iovaq_imap_ent *e = &d->maps.e[i];
			uint64_t pages = e->val & ((1ull << PROT_SHIFT) - 1);

			if (!e->key || iovaq_backend_unmap(d->be, e->key, pages << d->shift) < 0)
				continue;
			if (r)
				r[n++] = (struct prange){ e->key >> d->shift,
							  (e->key >> d->shift) + pages, 1 };
			else
				any = 1;
		}
		if (r && invalidate(d, r, n, NULL))
			any = 1;
		iovaq__meta_free(d->hooks, &d->metadata_bytes, r, d->maps.n * sizeof(*r));
	}
	if (any && d->needs_flush && (d->caps.inval_kinds & (1u << IOVAQ_INVAL_DOMAIN))) {
		struct iovaq_inval all = { .kind = IOVAQ_INVAL_DOMAIN };

		iovaq_backend_flush(d->be, &all, 1);
	}
	domain_free(d);
}
