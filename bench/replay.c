/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench replay: a captured guest IOMMU trace (bench/trace.h, docs/apps-testbed.md)
 * driven through a libiovaq domain on the sim, under every policy and cost model, with the
 * metrics of "matrix": what would libiovaq's policies have done with this exact DMA stream?
 *
 * Matching (one pass over the trace before any run, so that every run replays the same plan):
 *   - Every map event is one libiovaq mapping of the same size (multi-page maps stay one
 *     mapping), in trace order. libiovaq chooses the IOVA; the trace's IOVA only names the
 *     mapping for the unmaps that follow. A map whose range overlaps a mapping still live in
 *     the trace is an error of the trace (FILE:LINE, exit 2).
 *   - An unmap releases [iova, iova + unmapped_size) (what the kernel really unmapped; the
 *     event's size is what it asked). Every live mapping that range covers entirely is
 *     unmapped whole. A range that covers only part of a mapping is a partial unmap: libiovaq
 *     unmaps whole mappings only, so the mapping is unmapped when its last page has been
 *     unmapped by the trace (counted in partial_unmaps; the early pages' exposure is then
 *     counted from that later moment).
 *   - An unmap that touches no live mapping and whose start IOVA no earlier map event used is
 *     of a mapping made before the trace began (the receive ring at a trace's start): the
 *     replay maps it before the measured region (premapped), so that its unmap is replayed.
 *     Otherwise (a double unmap, a range mapped under another start) it is skipped and
 *     counted in unmaps_unmatched, as are the pages of an unmap that no live mapping covers.
 *   - Mappings still live at the end are unmapped after the measurement (not counted).
 * Device: the trace has no DMA events; every page of a mapping is read once by the device
 * through the sim just before the mapping is unmapped (the DMA that completes the buffer).
 * Host memory: every mapping gets its own never-reused buffer in one reserved, untouched
 * region (device reads of untouched pages cost no memory), so buffer reuse is only the
 * library's account (unsafe_reuse).
 *
 * Time: --pace fast (default) replays as fast as possible: counts are deterministic for a
 * given trace, seed and ring setup, but the window bound (10 ms) almost never fires, so
 * deferred batches are as large as the ring and the reachable-pages bound allow (the most
 * batching can save) and windows are the replay's own, short ones. --pace trace sleeps to
 * follow the trace's timestamps (from its first event) and uses the flusher thread, so the
 * age bound fires in idle gaps as on the traced machine; windows are then in trace time (plus
 * the replay's lateness), and the replay takes as long as the trace spans.
 *
 * The replay runs on one thread pinned to one CPU (the trace is one CPU's stream too, and its
 * releases then fill one per-CPU ring as the traced CPU's would; the flusher thread of --pace
 * trace keeps every CPU, so that it is not queued behind it). Pinning first worked around a
 * library bug the replay found (an arena's syncs spread over two rings by a migrating thread
 * completed out of order; fixed, test rings/arena_syncs_in_two_rings_complete_in_order).
 *
 * safe-deferred+arenas: a trace names no device, ring or descriptor, so mappings go into
 * arenas in map order: each arena (--arena-pages, default 64) is filled with consecutive maps
 * (a map that does not fit starts the next arena; a map larger than an arena gets one of its
 * own); an unmap unlinks its pages; after every --arena-sync (default 16) unlinked pages, or
 * when the first of them has waited --arena-sync-ns (default 1 ms) of trace time, every arena
 * with unlinked pages gets one sync (a driver's completion batch: without the time bound, the
 * last unlinks before an idle gap would wait for the traffic to resume), and a full arena
 * whose last page is unlinked gets its final sync at once and is reused once safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <iovaq/iovaq.h>

#include "bench.h"
#include "trace.h"

#define PAGE BENCH_TRACE_PAGE
#define NONE UINT32_MAX
#define DEFAULT_ARENA_PAGES 64
#define DEFAULT_ARENA_SYNC 16
#define DEFAULT_ARENA_SYNC_NS 1000000ULL	/* 1 ms: a NAPI poll round is well below */
#define MAX_HOST_BYTES (1ULL << 40)	/* address space reserved for the buffers, at most */

/* Indexes into bench_policy_names (bench/run.c). */
enum { P_STRICT, P_DEFERRED, P_SAFE, P_ARENAS, P_PASS };

static const uint32_t lib_policy[BENCH_N_POLICIES] = {
	[P_STRICT] = IOVAQ_POLICY_STRICT,
	[P_DEFERRED] = IOVAQ_POLICY_DEFERRED,
	[P_SAFE] = IOVAQ_POLICY_SAFE_DEFERRED,
	[P_ARENAS] = IOVAQ_POLICY_SAFE_DEFERRED,
	[P_PASS] = IOVAQ_POLICY_PASSTHROUGH,
};

static const char *const pace_names[] = { "fast", "trace", NULL };
enum { PACE_FAST, PACE_TRACE };

/* ---- the plan: which mapping each event makes or ends ---------------------------------- */

struct pmap {
	uint64_t tiova;		/* the trace's IOVA: names the mapping */
	uint64_t pages;
	uint64_t host_off;	/* its buffer in the host region, bytes */
	uint64_t pages_left;	/* pass 1: pages not yet unmapped by the trace */
	uint64_t *done;		/* pass 1: which pages were (only after a partial unmap) */
	uint32_t line;		/* map event's line, or the unmap's for premapped */
	bool pre;		/* mapped before the trace: premapped */
};

struct plan {
	struct pmap *m;
	uint32_t nm, capm;
	uint32_t *ev_map;	/* per event: map event -> mapping id; unmap -> first target */
	uint32_t *ev_n;		/* per unmap event: targets ended by it */
	uint32_t *tgt;		/* mapping ids ended, in event order */
	uint32_t ntgt, captgt;
	uint64_t host_bytes;
	uint64_t mapped_pages;		/* by the trace's maps */
	uint64_t premapped, premapped_pages;
	uint64_t unmatched, unmatched_pages;
	uint64_t partial_unmaps;
	uint64_t short_unmaps;		/* unmapped_size < size */
	uint64_t live_at_end, max_live;
	uint64_t max_pages;		/* largest mapping */
};

/* Live mappings of pass 1, sorted by trace IOVA, disjoint. */
struct live {
	uint64_t start, end;	/* [start, end) bytes */
	uint32_t id;
};

struct liveset {
	struct live *v;
	size_t n, cap;
};

/* Index of the first live mapping whose end is above @s. */
static size_t live_first(const struct liveset *ls, uint64_t s)
{
	size_t lo = 0, hi = ls->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ls->v[mid].end <= s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Start IOVAs that a map event used (open addressing; 0 cannot be a key: IOVA 0 is odd). */
struct startset {
	uint64_t *k;
	size_t cap, n;
};

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static bool startset_has(const struct startset *s, uint64_t key)
{
	if (!s->cap)
		return false;
	for (size_t i = hash64(key + 1) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->k[i] == key + 1)
			return true;
		if (!s->k[i])
			return false;
	}
}

static int startset_add(struct startset *s, uint64_t key)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		uint64_t *k = calloc(cap, sizeof(*k));

		if (!k)
			return -ENOMEM;
		for (size_t j = 0; j < s->cap; j++) {
			size_t i;

			if (!s->k[j])
				continue;
			for (i = hash64(s->k[j]) & (cap - 1); k[i]; i = (i + 1) & (cap - 1))
				;
			k[i] = s->k[j];
		}
		free(s->k);
		s->k = k;
		s->cap = cap;
	}
	for (size_t i = hash64(key + 1) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->k[i] == key + 1)
			return 0;
		if (!s->k[i]) {
			s->k[i] = key + 1;
			s->n++;
			return 0;
		}
	}
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	uint32_t c;
	void *np;

	if (need <= *cap)
		return 0;
	if (*cap > UINT32_MAX / 2 - 1)
		return -ENOMEM;
	c = *cap ? 2 * *cap : 1024;
	np = realloc(*p, (size_t)c * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

static int new_mapping(struct plan *pl, uint64_t tiova, uint64_t size, uint32_t line, bool pre,
		       uint32_t *id)
{
	struct pmap *m;

	if (grow((void **)&pl->m, &pl->capm, pl->nm + 1, sizeof(*pl->m)))
		return -ENOMEM;
	*id = pl->nm++;
	m = &pl->m[*id];
	memset(m, 0, sizeof(*m));
	m->tiova = tiova;
	m->pages = size / PAGE;
	m->pages_left = m->pages;
	m->line = line;
	m->pre = pre;
	m->host_off = pl->host_bytes;
	pl->host_bytes += size;
	if (m->pages > pl->max_pages)
		pl->max_pages = m->pages;
	return 0;
}

static int add_target(struct plan *pl, uint32_t id)
{
	if (grow((void **)&pl->tgt, &pl->captgt, pl->ntgt + 1, sizeof(*pl->tgt)))
		return -ENOMEM;
	pl->tgt[pl->ntgt++] = id;
	return 0;
}

static void plan_free(struct plan *pl)
{
	for (uint32_t i = 0; pl->m && i < pl->nm; i++)
		free(pl->m[i].done);
	free(pl->m);
	free(pl->ev_map);
	free(pl->ev_n);
	free(pl->tgt);
	memset(pl, 0, sizeof(*pl));
}

/*
 * Unmap [s, e) of mapping @lv (overlapping it): mark its pages; true when its last page went.
 * Pages marked before (a repeated partial unmap) count as unmatched.
 */
static int unmap_part(struct plan *pl, struct pmap *m, uint64_t base, uint64_t s, uint64_t e,
		      bool *ended)
{
	uint64_t lo = (s > base ? s : base), hi = (e < base + m->pages * PAGE ? e :
						   base + m->pages * PAGE);
	uint64_t first = (lo - base) / PAGE, last = (hi - base) / PAGE;

	*ended = false;
	if (first == 0 && last == m->pages && !m->done) {
		m->pages_left = 0;
		*ended = true;
		return 0;
	}
	pl->partial_unmaps++;
	if (!m->done) {
		m->done = calloc(m->pages / 64 + 1, sizeof(uint64_t));
		if (!m->done)
			return -ENOMEM;
	}
	for (uint64_t p = first; p < last; p++) {
		if (m->done[p / 64] & (1ULL << (p % 64))) {
			pl->unmatched_pages++;
			continue;
		}
		m->done[p / 64] |= 1ULL << (p % 64);
		m->pages_left--;
	}
	*ended = m->pages_left == 0;
	return 0;
}

/* Return: 0; -ENOMEM; -EINVAL with "FILE:LINE: why" in @err (a map over a live mapping). */
static int plan_build(const struct bench_trace *t, const char *file, struct plan *pl, char *err,
		      size_t errlen)
{
	struct liveset ls = { 0 };
	struct startset ss = { 0 };
	int ret = 0;

	memset(pl, 0, sizeof(*pl));
	pl->ev_map = calloc(t->n ? t->n : 1, sizeof(*pl->ev_map));
	pl->ev_n = calloc(t->n ? t->n : 1, sizeof(*pl->ev_n));
	if (!pl->ev_map || !pl->ev_n)
		ret = -ENOMEM;
	for (size_t i = 0; i < t->n && !ret; i++) {
		const struct bench_trace_ev *ev = &t->ev[i];
		size_t k;

		if (ev->kind == BENCH_TRACE_MAP) {
			uint64_t s = ev->iova, e = ev->iova + ev->size;
			uint32_t id;

			k = live_first(&ls, s);
			if (k < ls.n && ls.v[k].start < e) {
				snprintf(err, errlen, "%s:%u: map of [0x%" PRIx64 ", 0x%" PRIx64 ") "
					 "overlaps the mapping of line %u, still live", file, ev->line,
					 s, e, pl->m[ls.v[k].id].line);
				ret = -EINVAL;
				break;
			}
			ret = new_mapping(pl, s, ev->size, ev->line, false, &id);
			if (!ret)
				ret = startset_add(&ss, s);
			if (!ret && ls.n == ls.cap) {
				size_t cap = ls.cap ? 2 * ls.cap : 256;
				struct live *v = realloc(ls.v, cap * sizeof(*v));

				if (!v)
					ret = -ENOMEM;
				else {
					ls.v = v;
					ls.cap = cap;
				}
			}
			if (ret)
				break;
			memmove(&ls.v[k + 1], &ls.v[k], (ls.n - k) * sizeof(*ls.v));
			ls.v[k] = (struct live){ s, e, id };
			ls.n++;
			if (ls.n > pl->max_live)
				pl->max_live = ls.n;
			pl->ev_map[i] = id;
			pl->mapped_pages += ev->size / PAGE;
		} else {
			uint64_t s = ev->iova, e = ev->iova + ev->unmapped, covered = 0;
			bool touched = false;

			pl->ev_map[i] = pl->ntgt;
			pl->ev_n[i] = 0;
			if (ev->unmapped < ev->size)
				pl->short_unmaps++;
			if (s == e)
				continue;
			k = live_first(&ls, s);
			while (k < ls.n && ls.v[k].start < e && !ret) {
				struct live *l = &ls.v[k];
				struct pmap *m = &pl->m[l->id];
				uint64_t lo = s > l->start ? s : l->start;
				uint64_t hi = e < l->end ? e : l->end;
				bool ended;

				touched = true;
				covered += hi - lo;
				ret = unmap_part(pl, m, l->start, s, e, &ended);
				if (ret || !ended) {
					k++;
					continue;
				}
				ret = add_target(pl, l->id);
				pl->ev_n[i]++;
				memmove(l, l + 1, (ls.n - k - 1) * sizeof(*ls.v));
				ls.n--;
			}
			if (ret)
				break;
			if (!touched && !startset_has(&ss, s)) {
				uint32_t id;

				ret = new_mapping(pl, s, e - s, ev->line, true, &id);
				if (!ret)
					ret = add_target(pl, id);
				pl->ev_n[i]++;
				pl->premapped++;
				pl->premapped_pages += (e - s) / PAGE;
				continue;
			}
			if (!touched)
				pl->unmatched++;
			pl->unmatched_pages += (e - s - covered) / PAGE;
		}
	}
	pl->live_at_end = ls.n;
	free(ls.v);
	free(ss.k);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory for the replay plan", file);
	if (ret)
		plan_free(pl);
	return ret;
}

/* ---- one run ------------------------------------------------------------------------------ */

struct arena {
	struct iovaq_arena *a;
	uint32_t pages;		/* the chunk, as asked */
	uint32_t fill;		/* next page to link */
	uint32_t linked;	/* pages linked now */
	uint32_t unsynced;	/* pages unlinked since its last sync */
	bool closed;		/* takes no more links */
	bool own;		/* one large mapping's arena: released at its unmap */
	bool pending;		/* on the pending list */
};

struct replay_cfg {
	const struct bench_trace *t;
	const struct plan *pl;
	unsigned int pol, model, pace;
	uint64_t seed;
	unsigned int ring;
	uint32_t ring_entries;
	uint32_t arena_pages, arena_sync;
	uint64_t arena_sync_ns;	/* trace time a batch may wait */
	uint64_t max_window_ns;	/* 0: the library's default */
	cpu_set_t cpus;		/* the process's CPUs, for the flusher thread */
};

struct replay_res {
	unsigned int pol, model;
	uint64_t wall_ns;
	uint64_t late_ns_max;	/* --pace trace: the most an event ran behind its time */
	uint64_t maps, unmaps, unmapped_pages, dma_pages;
	uint64_t arenas_reserved;
	struct iovaq_domain_stats st;
	struct iovaq_window_report win;
	struct iovaq_sim_counters sc;
};

struct rp {
	const struct replay_cfg *cfg;
	struct iovaq_backend *be;
	struct iovaq_sim *sim;
	struct iovaq_domain *dom;
	unsigned char *host;
	size_t host_len;
	unsigned char *devbuf;
	iovaq_iova_t *iova;		/* per mapping id: libiovaq's IOVA (0: not mapped) */
	uint32_t *ar_of;		/* arenas: per mapping id, its arena */
	uint32_t *ar_idx;		/* ... and first page in it */
	struct arena *ar;
	uint32_t nar, capar;
	uint32_t cur;			/* the arena being filled, or NONE */
	uint32_t *pend;			/* arenas with unsynced unlinks */
	uint32_t npend;
	uint64_t unsynced;		/* pages unlinked since the last batch sync */
	uint64_t unsynced_ts;		/* trace time of the first of them */
	uint64_t ts;			/* trace time of the event being replayed */
	pthread_mutex_t rlock;		/* ready list: completions may run on the flusher */
	uint32_t *ready;
	uint32_t nready;
	struct replay_res *r;
	char msg[320];
};

static int rfail(struct rp *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int rfail(struct rp *p, int err, const char *fmt, ...)
{
	va_list ap;

	if (!p->msg[0]) {
		va_start(ap, fmt);
		vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
		va_end(ap);
	}
	return err ? err : -EIO;
}

/* Safe-deferred completions: cookie 0 nothing, else arena id + 1 whose use ended (safe). */
static void on_complete(void *arg, uint64_t cookie)
{
	struct rp *p = arg;

	if (!cookie)
		return;
	pthread_mutex_lock(&p->rlock);
	p->ready[p->nready++] = (uint32_t)(cookie - 1);
	pthread_mutex_unlock(&p->rlock);
}

static int arena_new(struct rp *p, uint64_t pages, bool own, uint32_t *id)
{
	struct arena *a;
	int err;

	if (!own) {
		pthread_mutex_lock(&p->rlock);
		if (p->nready) {
			*id = p->ready[--p->nready];
			pthread_mutex_unlock(&p->rlock);
			a = &p->ar[*id];
			a->fill = 0;
			a->closed = false;
			return 0;
		}
		pthread_mutex_unlock(&p->rlock);
	}
	if (p->nar == p->capar) {
		uint32_t cap = p->capar ? 2 * p->capar : 64;
		struct arena *na = realloc(p->ar, cap * sizeof(*na));
		uint32_t *nr, *np;

		if (na)
			p->ar = na;
		pthread_mutex_lock(&p->rlock);
		nr = na ? realloc(p->ready, cap * sizeof(*nr)) : NULL;
		if (nr)
			p->ready = nr;
		pthread_mutex_unlock(&p->rlock);
		np = nr ? realloc(p->pend, cap * sizeof(*np)) : NULL;
		if (np)
			p->pend = np;
		if (!na || !nr || !np)
			return rfail(p, -ENOMEM, "out of memory for %u arenas", cap);
		p->capar = cap;
	}
	a = &p->ar[p->nar];
	memset(a, 0, sizeof(*a));
	err = iovaq_arena_reserve(p->dom, pages, IOVAQ_LIMIT_NONE, &a->a);
	if (err)
		return rfail(p, err, "iovaq_arena_reserve(%" PRIu64 " pages): %s (%d)", pages,
			     iovaq_strerror(err), err);
	a->pages = (uint32_t)pages;
	a->own = own;
	*id = p->nar++;
	p->r->arenas_reserved++;
	return 0;
}

static int arena_sync(struct rp *p, uint32_t id, bool final)
{
	struct arena *a = &p->ar[id];
	int err = iovaq_arena_sync(a->a, final ? (uint64_t)id + 1 : 0);

	if (err)
		return rfail(p, err, "iovaq_arena_sync: %s (%d)", iovaq_strerror(err), err);
	a->unsynced = 0;
	return 0;
}

/* Every arena with unsynced unlinks: one sync each (the completion batch). */
static int arena_sync_pending(struct rp *p)
{
	int err = 0;

	for (uint32_t k = 0; k < p->npend; k++) {
		struct arena *a = &p->ar[p->pend[k]];

		a->pending = false;
		if (a->unsynced && !err)
			err = arena_sync(p, p->pend[k], false);
	}
	p->npend = 0;
	p->unsynced = 0;
	return err;
}

static int do_map(struct rp *p, uint32_t id)
{
	const struct pmap *m = &p->cfg->pl->m[id];
	size_t len = (size_t)(m->pages * PAGE);
	void *buf = p->host + m->host_off;
	unsigned int prot = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	int err;

	if (p->cfg->pol != P_ARENAS) {
		err = iovaq_domain_map(p->dom, buf, len, prot, IOVAQ_LIMIT_NONE, &p->iova[id]);
		if (err)
			return rfail(p, err, "line %u: iovaq_domain_map(%zu bytes): %s (%d)", m->line,
				     len, iovaq_strerror(err), err);
	} else {
		uint32_t aid = NONE, ap = p->cfg->arena_pages;
		bool own = m->pages > ap;

		if (own) {
			err = arena_new(p, m->pages, true, &aid);
		} else {
			if (p->cur != NONE && p->ar[p->cur].fill + m->pages > ap) {
				struct arena *c = &p->ar[p->cur];

				c->closed = true;
				if (!c->linked && (err = arena_sync(p, p->cur, true)))
					return err;
				p->cur = NONE;
			}
			err = p->cur == NONE ? arena_new(p, ap, false, &p->cur) : 0;
			aid = p->cur;
		}
		if (err)
			return err;
		p->ar_of[id] = aid;
		p->ar_idx[id] = p->ar[aid].fill;
		err = iovaq_arena_link(p->ar[aid].a, p->ar[aid].fill, buf, len, prot, &p->iova[id]);
		if (err)
			return rfail(p, err, "line %u: iovaq_arena_link(%zu bytes): %s (%d)", m->line,
				     len, iovaq_strerror(err), err);
		p->ar[aid].fill += (uint32_t)m->pages;
		p->ar[aid].linked += (uint32_t)m->pages;
		if (own || p->ar[aid].fill == ap) {
			p->ar[aid].closed = true;
			if (aid == p->cur)
				p->cur = NONE;
		}
	}
	p->r->maps++;
	return 0;
}

/* The device reads every page of mapping @id once. */
static int do_dma(struct rp *p, uint32_t id)
{
	const struct pmap *m = &p->cfg->pl->m[id];
	size_t len = (size_t)(m->pages * PAGE);

	if (p->cfg->pol == P_PASS) {
		memcpy(p->devbuf, p->host + m->host_off, len);
	} else {
		struct iovaq_sim_access acc;
		int err = iovaq_sim_dma(p->sim, p->iova[id], p->devbuf, len, 0, &acc);

		if (err || acc.stale_pages || acc.pages != m->pages)
			return rfail(p, err, "line %u: iovaq_sim_dma(0x%" PRIx64 ", %zu bytes): %s "
				     "(%d), %" PRIu64 " pages, %" PRIu64 " stale: translation bug",
				     m->line, p->iova[id], len, iovaq_strerror(err), err, acc.pages,
				     acc.stale_pages);
	}
	p->r->dma_pages += m->pages;
	return 0;
}

static int do_unmap(struct rp *p, uint32_t id)
{
	const struct pmap *m = &p->cfg->pl->m[id];
	size_t len = (size_t)(m->pages * PAGE);
	struct arena *a;
	int err;

	if (p->cfg->pol != P_ARENAS) {
		err = iovaq_domain_unmap(p->dom, p->iova[id], len, 0);
		if (err)
			return rfail(p, err, "line %u: iovaq_domain_unmap(0x%" PRIx64 ", %zu bytes): "
				     "%s (%d)", m->line, p->iova[id], len, iovaq_strerror(err), err);
		goto done;
	}
	a = &p->ar[p->ar_of[id]];
	if (a->own) {
		/* Its own arena: unlink, one sync, and the chunk goes back once safe. */
		err = iovaq_arena_unlink(a->a, 0, len);
		if (err)
			return rfail(p, err, "iovaq_arena_unlink: %s (%d)", iovaq_strerror(err), err);
		iovaq_arena_release(a->a);
		a->a = NULL;
		a->linked = 0;
		goto done;
	}
	err = iovaq_arena_unlink(a->a, p->ar_idx[id], len);
	if (err)
		return rfail(p, err, "line %u: iovaq_arena_unlink(page %u, %zu bytes): %s (%d)",
			     m->line, p->ar_idx[id], len, iovaq_strerror(err), err);
	a->linked -= (uint32_t)m->pages;
	a->unsynced += (uint32_t)m->pages;
	if (a->closed && !a->linked) {
		/* Its use is over: the final sync now; it is reused once that is safe. */
		err = arena_sync(p, p->ar_of[id], true);
		if (err)
			return err;
	} else if (!a->pending) {
		a->pending = true;
		p->pend[p->npend++] = p->ar_of[id];
	}
	if (!p->unsynced)
		p->unsynced_ts = p->ts;
	p->unsynced += m->pages;
	if (p->unsynced >= p->cfg->arena_sync) {
		err = arena_sync_pending(p);
		if (err)
			return err;
	}
done:
	p->iova[id] = 0;
	p->r->unmaps++;
	p->r->unmapped_pages += m->pages;
	return 0;
}

static int open_all(struct rp *p)
{
	const struct replay_cfg *cfg = p->cfg;
	static const struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	bool nested = cfg->model != BENCH_M_NATIVE, cm = cfg->model == BENCH_M_NESTED_CM;
	IOVAQ_OPTS(iovaq_sim_opts, so, .seed = cfg->seed,
		   .flags = (nested ? IOVAQ_SIM_NESTED : 0) | (cm ? IOVAQ_SIM_CACHING_MODE : 0));
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim", .backend_opts = &so);
	bool safe = lib_policy[cfg->pol] == IOVAQ_POLICY_SAFE_DEFERRED;
	int err = iovaq_backend_open(&bo, &p->be);

	if (err)
		return rfail(p, err, "cannot open backend 'sim': %s (%d)", iovaq_strerror(err), err);
	p->sim = iovaq_sim_of(p->be);
	{
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = p->be, .policy = lib_policy[cfg->pol],
			   .reserved = &msi, .n_reserved = 1, .complete = safe ? on_complete : NULL,
			   .complete_arg = p, .ring_layout = cfg->ring,
			   .ring_entries = cfg->ring_entries, .max_window_ns = cfg->max_window_ns,
			   .flusher = cfg->pace == PACE_TRACE ? IOVAQ_FLUSHER_THREAD
							      : IOVAQ_FLUSHER_INLINE);

		err = iovaq_domain_create(&o, &p->dom);
	}
	if (err)
		return rfail(p, err, "iovaq_domain_create(policy %s): %s (%d)",
			     bench_policy_names[cfg->pol], iovaq_strerror(err), err);
	return 0;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ULL),
			       .tv_nsec = (long)(t % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int replay_events(struct rp *p)
{
	const struct bench_trace *t = p->cfg->t;
	const struct plan *pl = p->cfg->pl;
	uint64_t t0 = bench_now_ns(), ts0 = t->n ? t->ev[0].ts_ns : 0;
	int err = 0;

	for (size_t i = 0; i < t->n && !err; i++) {
		const struct bench_trace_ev *ev = &t->ev[i];

		/*
		 * Arenas: a batch that waited --arena-sync-ns of trace time is synced before this
		 * event (at its due time with --pace trace), as a driver ends its completion batch.
		 */
		if (p->unsynced && ev->ts_ns - p->unsynced_ts >= p->cfg->arena_sync_ns) {
			uint64_t due = t0 + (p->unsynced_ts + p->cfg->arena_sync_ns - ts0);

			if (p->cfg->pace == PACE_TRACE && bench_now_ns() < due)
				sleep_until(due);
			err = arena_sync_pending(p);
			if (err)
				break;
		}
		p->ts = ev->ts_ns;
		if (p->cfg->pace == PACE_TRACE) {
			uint64_t due = t0 + (ev->ts_ns - ts0), now = bench_now_ns();

			if (now < due)
				sleep_until(due);
			else if (now - due > p->r->late_ns_max)
				p->r->late_ns_max = now - due;
		}
		if (ev->kind == BENCH_TRACE_MAP) {
			err = do_map(p, pl->ev_map[i]);
			continue;
		}
		for (uint32_t k = 0; k < pl->ev_n[i] && !err; k++) {
			uint32_t id = pl->tgt[pl->ev_map[i] + k];

			err = do_dma(p, id);
			if (!err)
				err = do_unmap(p, id);
		}
	}
	return err;
}

static int replay_one(const struct replay_cfg *cfg, struct replay_res *r, char *msg,
		      size_t msglen)
{
	const struct plan *pl = cfg->pl;
	IOVAQ_OPTS(iovaq_domain_stats, st0);
	struct rp p = { .cfg = cfg, .r = r, .cur = NONE };
	uint64_t t0;
	int err;

	memset(r, 0, sizeof(*r));
	r->pol = cfg->pol;
	r->model = cfg->model;
	pthread_mutex_init(&p.rlock, NULL);
	p.host_len = pl->host_bytes ? (size_t)pl->host_bytes : PAGE;
	p.host = mmap(NULL, p.host_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p.host == MAP_FAILED) {
		p.host = NULL;
		err = rfail(&p, -ENOMEM, "cannot reserve %zu bytes for the host buffers",
			    p.host_len);
		goto out;
	}
	p.devbuf = malloc((size_t)(pl->max_pages ? pl->max_pages : 1) * PAGE);
	p.iova = calloc(pl->nm ? pl->nm : 1, sizeof(*p.iova));
	if (cfg->pol == P_ARENAS) {
		p.ar_of = calloc(pl->nm ? pl->nm : 1, sizeof(*p.ar_of));
		p.ar_idx = calloc(pl->nm ? pl->nm : 1, sizeof(*p.ar_idx));
	}
	if (!p.devbuf || !p.iova || (cfg->pol == P_ARENAS && (!p.ar_of || !p.ar_idx))) {
		err = rfail(&p, -ENOMEM, "out of memory for %u mappings", pl->nm);
		goto out;
	}
	/*
	 * The flusher thread (--pace trace) inherits the affinity at domain creation: it keeps
	 * every allowed CPU, and only the replaying thread is pinned, after.
	 */
	pthread_setaffinity_np(pthread_self(), sizeof(cfg->cpus), &cfg->cpus);
	err = open_all(&p);
	if (err)
		goto out;
	err = bench_pin_self(bench_cpu_for(0));
	if (err) {
		err = rfail(&p, -err, "cannot pin the replay to CPU %d: %s", bench_cpu_for(0),
			    strerror(err));
		goto out;
	}
	/* Mappings made before the trace began: untimed, uncounted. */
	for (uint32_t id = 0; id < pl->nm && !err; id++)
		if (pl->m[id].pre)
			err = do_map(&p, id);
	if (err)
		goto out;
	r->maps = 0;
	iovaq_domain_get_stats(p.dom, &st0);
	iovaq_sim_reset_counters(p.sim);

	t0 = bench_now_ns();
	err = replay_events(&p);
	if (!err && cfg->pol == P_ARENAS)
		err = arena_sync_pending(&p);
	if (!err) {
		err = iovaq_domain_sync(p.dom);
		if (err)
			err = rfail(&p, err, "iovaq_domain_sync after the trace: %s (%d)",
				    iovaq_strerror(err), err);
	}
	r->wall_ns = bench_now_ns() - t0;
	if (err)
		goto out;

	r->st.sz = sizeof(r->st);
	iovaq_domain_get_stats(p.dom, &r->st);
#define SUB(f) r->st.f -= st0.f
	SUB(maps);
	SUB(unmaps);
	SUB(flushes);
	SUB(inval_cmds);
	SUB(inval_domain_cmds);
	SUB(inval_leaf_cmds);
	SUB(invalidated_pages);
	SUB(flush_full);
	SUB(flush_age);
	SUB(flush_reachable);
	SUB(flush_sync);
	SUB(flush_nospc);
	SUB(flush_strict);
	SUB(completions);
#undef SUB
	r->win.sz = sizeof(r->win);
	iovaq_domain_window(p.dom, &r->win);
	r->sc.sz = sizeof(r->sc);
	err = iovaq_sim_get_counters(p.sim, &r->sc);
	if (err)
		err = rfail(&p, err, "iovaq_sim_get_counters: %s (%d)", iovaq_strerror(err), err);
	else if (r->st.flush_errors)
		err = rfail(&p, -EIO, "%" PRIu64 " flushes failed", r->st.flush_errors);
	else if (r->sc.faults || r->sc.stale_hits)
		err = rfail(&p, -EIO, "the device saw %" PRIu64 " faults and %" PRIu64 " stale "
			    "hits: translation bug", r->sc.faults, r->sc.stale_hits);
out:
	/* Teardown: what the trace left mapped, the arenas, the domain (uncounted). */
	if (p.dom) {
		if (cfg->pol == P_ARENAS) {
			for (uint32_t k = 0; k < p.nar; k++)
				iovaq_arena_release(p.ar[k].a);
		} else {
			for (uint32_t id = 0; id < pl->nm; id++)
				if (p.iova[id])
					iovaq_domain_unmap(p.dom, p.iova[id],
							   (size_t)(pl->m[id].pages * PAGE), 0);
		}
		iovaq_domain_destroy(p.dom);
	}
	iovaq_backend_close(p.be);
	if (p.host)
		munmap(p.host, p.host_len);
	free(p.devbuf);
	free(p.iova);
	free(p.ar_of);
	free(p.ar_idx);
	free(p.ar);
	free(p.pend);
	free(p.ready);
	pthread_mutex_destroy(&p.rlock);
	if (err)
		snprintf(msg, msglen, "%s", p.msg[0] ? p.msg : "failed");
	return err;
}

/* ---- the command ----------------------------------------------------------------------- */

enum {
	O_POLICIES,
	O_MODELS,
	O_PACE,
	O_RING_ENTRIES,
	O_ARENA_PAGES,
	O_ARENA_SYNC,
	O_ARENA_SYNC_NS,
	O_MAX_WINDOW,
	O_HELP,
};

static const struct bench_opt replay_opts[] = {
	{ "policies", 0, "LIST", "comma-separated policies (default: all five)", O_POLICIES },
	{ "models", 0, "LIST", "sim cost models: native, nested, nested+cm\n"
			       "(default: all three)", O_MODELS },
	{ "pace", 0, "NAME", "fast (default: as fast as possible) or trace (follow\n"
			     "the trace's timestamps, flusher thread)", O_PACE },
	{ "seed", 0, "N", "sim PRNG seed (default 1)", BENCH_O_SEED },
	{ "ring-layout", 0, "NAME", "invalidation queue: auto (default), shared or percpu",
	  BENCH_O_RING },
	{ "ring-entries", 0, "N", "invalidation queue capacity, 64..1M (default: the\n"
				  "library's, 4096 or 32768 in caching mode)", O_RING_ENTRIES },
	{ "arena-pages", 0, "N", "safe-deferred+arenas: pages per arena, 1..65536\n"
				 "(default 64)", O_ARENA_PAGES },
	{ "arena-sync", 0, "N", "safe-deferred+arenas: unlinked pages per sync batch,\n"
				"1..1M (default 16)", O_ARENA_SYNC },
	{ "arena-sync-ns", 0, "N", "safe-deferred+arenas: trace time a sync batch may\n"
				   "wait, 1000..1e9 ns (default 1 ms)", O_ARENA_SYNC_NS },
	{ "max-window-ns", 0, "N", "the domains' window bound, 1000..60e9 ns (default:\n"
				   "the library's, 10 ms)", O_MAX_WINDOW },
	{ "json", 0, NULL, "one JSON document", BENCH_O_JSON },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_replay_help(FILE *f)
{
	fprintf(f,
		"Usage: %s replay TRACE [--policies LIST] [--models LIST] [--pace NAME]\n"
		"       %*s [--seed N] [--ring-layout NAME] [--ring-entries N]\n"
		"       %*s [--arena-pages N] [--arena-sync N] [--arena-sync-ns N]\n"
		"       %*s [--max-window-ns N] [--json]\n"
		"\n"
		"Drive a libiovaq domain on the sim with the exact map/unmap stream of a guest\n"
		"IOMMU trace (tracefs iommu:map/unmap events, docs/apps-testbed.md) under every\n"
		"policy and cost model, and report the metrics of 'matrix': invalidation commands\n"
		"per page, the safety window, walk references and the modeled cost.\n"
		"\n"
		"Sizes, order and map/unmap pairing are the trace's; libiovaq chooses the IOVAs\n"
		"(the trace's IOVAs only pair an unmap with its map). Unmaps of mappings made\n"
		"before the trace began are premapped, untimed; partial unmaps end a mapping at\n"
		"its last page; other unknown unmaps are skipped and counted. The device reads\n"
		"every page once just before its unmap. safe-deferred+arenas puts mappings into\n"
		"arenas in map order and syncs every --arena-sync unlinked pages, or after\n"
		"--arena-sync-ns of trace time.\n"
		"A malformed or truncated trace line is reported as FILE:LINE: reason (exit 2).\n"
		"\n"
		"Options:\n",
		BENCH_PROG, (int)strlen(BENCH_PROG) + 7, "", (int)strlen(BENCH_PROG) + 7, "",
		(int)strlen(BENCH_PROG) + 7, "");
	bench_print_opts(f, replay_opts);
	fprintf(f,
		"\n"
		"Numbers accept the suffixes k, M, G (10^3, 10^6, 10^9) and eN (1e7).\n"
		"Exit status: 0 success, 1 library or system error, 2 bad usage or a bad trace.\n");
}

struct replay_doc {
	const char *file;
	const struct bench_trace *t;
	const struct plan *pl;
	uint64_t policies, models;
	unsigned int pace, ring;
	uint64_t seed;
	uint32_t ring_entries, arena_pages, arena_sync;
	uint64_t arena_sync_ns;
	uint64_t max_window_ns;
	int argc;
	char **argv;
	double elapsed_s;
	struct replay_res *res;
	unsigned int nres;
};

static double per(uint64_t n, uint64_t d)
{
	return d ? (double)n / (double)d : NAN;
}

static double span_s(const struct bench_trace *t)
{
	return t->n ? (double)(t->ev[t->n - 1].ts_ns - t->ev[0].ts_ns) / 1e9 : 0;
}

static void json_names(struct bench_json *j, const char *key, uint64_t set,
		       const char *const *names)
{
	bench_json_open_array(j, key);
	for (unsigned int i = 0; names[i]; i++)
		if (set & (1ULL << i))
			bench_json_str(j, NULL, names[i]);
	bench_json_close_array(j);
}

static void replay_run_json(const struct replay_doc *d, const struct replay_res *r,
			    struct bench_json *j)
{
	static const char *const win_keys[] = { "p50", "p99", "p999", "max" };
	const uint64_t win[4] = { r->win.window_p50_ns, r->win.window_p99_ns,
				  r->win.window_p999_ns, r->win.window_max_ns };
	const struct iovaq_sim_counters *k = &r->sc;
	uint64_t ev = d->t->n;
	bool ar = r->pol == P_ARENAS;
	double mdl[4] = { per(k->cpu_map_ns, ev), per(k->cpu_unmap_ns, ev),
			  per(k->cpu_flush_submit_ns, ev), per(k->cpu_flush_wait_ns, ev) };

	bench_json_str(j, "model", bench_model_names[r->model]);
	bench_json_str(j, "policy", bench_policy_names[r->pol]);
	bench_json_u64(j, "wall_ns", r->wall_ns);
	bench_json_double(j, "ns_per_event", per(r->wall_ns, ev));
	if (d->pace == PACE_TRACE)
		bench_json_u64(j, "late_ns_max", r->late_ns_max);
	else
		bench_json_null(j, "late_ns_max");
	bench_json_u64(j, "maps", r->maps);
	bench_json_u64(j, "unmaps", r->unmaps);
	bench_json_u64(j, "unmapped_pages", r->unmapped_pages);
	bench_json_u64(j, "dma_pages", r->dma_pages);
	bench_json_u64(j, "inval_cmds", r->st.inval_cmds);
	bench_json_u64(j, "inval_domain_cmds", r->st.inval_domain_cmds);
	bench_json_u64(j, "inval_leaf_cmds", r->st.inval_leaf_cmds);
	bench_json_double(j, "inval_per_page", per(r->st.inval_cmds, r->unmapped_pages));
	bench_json_u64(j, "flushes", r->st.flushes);
	bench_json_open(j, "flush_reasons");
	bench_json_u64(j, "full", r->st.flush_full);
	bench_json_u64(j, "age", r->st.flush_age);
	bench_json_u64(j, "reachable", r->st.flush_reachable);
	bench_json_u64(j, "sync", r->st.flush_sync);
	bench_json_u64(j, "nospc", r->st.flush_nospc);
	bench_json_u64(j, "strict", r->st.flush_strict);
	bench_json_close(j);
	bench_json_u64(j, "completions", r->st.completions);
	bench_json_u64(j, "releases", r->win.releases);
	bench_json_u64(j, "released_pages", r->win.released_pages);
	bench_json_open(j, "window_ns");
	for (unsigned int i = 0; i < 4; i++)
		bench_json_u64(j, win_keys[i], win[i]);
	bench_json_close(j);
	bench_json_u64(j, "max_window_ns", r->win.max_window_ns);
	bench_json_u64(j, "exposure_page_ns", r->win.exposure_page_ns);
	bench_json_u64(j, "reachable_pages_max", r->win.reachable_pages_max);
	bench_json_u64(j, "max_reachable_pages", r->win.max_reachable_pages);
	bench_json_u64(j, "unsafe_reuse", r->win.unsafe_reuse);
	bench_json_u64(j, "violations", r->win.violations);
	if (ar)
		bench_json_u64(j, "arenas_reserved", r->arenas_reserved);
	else
		bench_json_null(j, "arenas_reserved");
	bench_json_open(j, "device_per_page");
	bench_json_double(j, "iotlb_misses", per(k->iotlb_misses, r->dma_pages));
	bench_json_double(j, "walk_refs", per(k->walk_refs, r->dma_pages));
	bench_json_double(j, "device_ns", per(k->device_ns, r->dma_pages));
	bench_json_close(j);
	bench_json_open(j, "modeled_ns_per_event");
	bench_json_double(j, "map", mdl[0]);
	bench_json_double(j, "unmap", mdl[1]);
	bench_json_double(j, "flush_submit", mdl[2]);
	bench_json_double(j, "flush_wait", mdl[3]);
	bench_json_double(j, "total", mdl[0] + mdl[1] + mdl[2] + mdl[3]);
	bench_json_close(j);
	bench_json_double(j, "traps_per_event", per(k->traps, ev));
}

static void replay_json(const struct replay_doc *d, FILE *f)
{
	const struct plan *pl = d->pl;
	struct bench_json j;

	bench_json_begin(&j, f);
	bench_json_str(&j, "type", "replay");
	bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
	bench_json_str(&j, "version", iovaq_version());
	bench_json_str(&j, "command", "replay");
	bench_json_open_array(&j, "argv");
	for (int i = 0; i < d->argc; i++)
		bench_json_str(&j, NULL, d->argv[i]);
	bench_json_close_array(&j);
	bench_json_open(&j, "trace");
	bench_json_str(&j, "file", d->file);
	bench_json_u64(&j, "lines", d->t->lines);
	bench_json_u64(&j, "events", d->t->n);
	bench_json_u64(&j, "maps", d->t->maps);
	bench_json_u64(&j, "unmaps", d->t->unmaps);
	bench_json_u64(&j, "mapped_pages", pl->mapped_pages);
	bench_json_double(&j, "span_s", span_s(d->t));
	bench_json_u64(&j, "max_live", pl->max_live);
	bench_json_u64(&j, "live_at_end", pl->live_at_end);
	bench_json_u64(&j, "premapped", pl->premapped);
	bench_json_u64(&j, "premapped_pages", pl->premapped_pages);
	bench_json_u64(&j, "partial_unmaps", pl->partial_unmaps);
	bench_json_u64(&j, "short_unmaps", pl->short_unmaps);
	bench_json_u64(&j, "unmaps_unmatched", pl->unmatched);
	bench_json_u64(&j, "unmatched_pages", pl->unmatched_pages);
	bench_json_close(&j);
	bench_json_open(&j, "config");
	json_names(&j, "models", d->models, bench_model_names);
	json_names(&j, "policies", d->policies, bench_policy_names);
	bench_json_str(&j, "pace", pace_names[d->pace]);
	bench_json_u64(&j, "seed", d->seed);
	bench_json_str(&j, "ring_layout", bench_ring_names[d->ring]);
	if (d->ring_entries)
		bench_json_u64(&j, "ring_entries", d->ring_entries);
	else
		bench_json_null(&j, "ring_entries");
	bench_json_u64(&j, "arena_pages", d->arena_pages);
	bench_json_u64(&j, "arena_sync_pages", d->arena_sync);
	bench_json_u64(&j, "arena_sync_ns", d->arena_sync_ns);
	if (d->max_window_ns)
		bench_json_u64(&j, "max_window_ns", d->max_window_ns);
	else
		bench_json_null(&j, "max_window_ns");
	bench_json_close(&j);
	bench_json_double(&j, "elapsed_s", d->elapsed_s);
	bench_json_open_array(&j, "runs");
	for (unsigned int i = 0; i < d->nres; i++) {
		bench_json_open(&j, NULL);
		replay_run_json(d, &d->res[i], &j);
		bench_json_close(&j);
	}
	bench_json_close_array(&j);
	bench_json_end(&j);
}

static void fmt_num(char *buf, size_t len, double v)
{
	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (v == 0)
		snprintf(buf, len, "0");
	else if (fabs(v) >= 100)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 10)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.3g", v);
}

static int replay_table(const struct replay_doc *d, FILE *f)
{
	static const char *const head[] = {
		"model", "policy", "inval/page", "inval cmds", "flushes", "win p50", "win p99",
		"win max", "viol", "reach max", "unsafe", "walk refs/page", "mdl ns/event",
		"traps/event",
	};
	const struct plan *pl = d->pl;
	struct bench_table t;
	int err = 0;

	bench_table_init(&t, 14, head, "llrrrrrrrrrrrr");
	for (unsigned int i = 0; i < d->nres && !err; i++) {
		const struct replay_res *r = &d->res[i];
		const struct iovaq_sim_counters *k = &r->sc;
		uint64_t ev = d->t->n;
		char c[14][32];
		const char *row[14];

		for (unsigned int x = 0; x < 14; x++)
			row[x] = c[x];
		if (i && r->model != d->res[i - 1].model)
			err = bench_table_add(&t, NULL);
		snprintf(c[0], 32, "%s", bench_model_names[r->model]);
		snprintf(c[1], 32, "%s", bench_policy_names[r->pol]);
		fmt_num(c[2], 32, per(r->st.inval_cmds, r->unmapped_pages));
		snprintf(c[3], 32, "%" PRIu64, r->st.inval_cmds);
		snprintf(c[4], 32, "%" PRIu64, r->st.flushes);
		if (r->win.releases) {
			bench_fmt_ns(c[5], 32, r->win.window_p50_ns);
			bench_fmt_ns(c[6], 32, r->win.window_p99_ns);
			bench_fmt_ns(c[7], 32, r->win.window_max_ns);
		} else {
			snprintf(c[5], 32, "-");
			snprintf(c[6], 32, "-");
			snprintf(c[7], 32, "-");
		}
		snprintf(c[8], 32, "%" PRIu64, r->win.violations);
		snprintf(c[9], 32, "%" PRIu64, r->win.reachable_pages_max);
		snprintf(c[10], 32, "%" PRIu64, r->win.unsafe_reuse);
		fmt_num(c[11], 32, per(k->walk_refs, r->dma_pages));
		fmt_num(c[12], 32, per(k->cpu_map_ns + k->cpu_unmap_ns + k->cpu_flush_submit_ns +
				       k->cpu_flush_wait_ns, ev));
		fmt_num(c[13], 32, per(k->traps, ev));
		if (!err)
			err = bench_table_add(&t, row);
	}
	if (err) {
		bench_table_free(&t);
		return bench_error("out of memory");
	}
	fprintf(f, "Replay of %s: %zu events (%zu maps of %" PRIu64 " pages, %zu unmaps) over "
		"%.3f s of trace time.\n", d->file, d->t->n, d->t->maps, pl->mapped_pages,
		d->t->unmaps, span_s(d->t));
	fprintf(f, "Mappings made before the trace (premapped): %" PRIu64 " (%" PRIu64 " pages); "
		"partial unmaps %" PRIu64 "; unmatched unmaps %" PRIu64 " (%" PRIu64 " pages); "
		"live at the end %" PRIu64 ", at most %" PRIu64 ".\n\n", pl->premapped,
		pl->premapped_pages, pl->partial_unmaps, pl->unmatched, pl->unmatched_pages,
		pl->live_at_end, pl->max_live);
	bench_table_print(&t, f);
	bench_table_free(&t);
	fprintf(f,
		"\ninval/page: invalidation commands per unmapped page. win: safety window (release "
		"to t_safe)\n"
		"  in %s.\n"
		"  viol: bound violations (must be 0). reach max: most pages reachable at once. "
		"unsafe: buffers\n"
		"  handed back before t_safe. walk refs/page: memory references of the device's page "
		"walks per\n"
		"  DMA'd page. mdl ns/event: modeled CPU time of maps, unmaps and invalidations per "
		"trace event.\n"
		"  traps/event: to the hypervisor (caching mode). Pace %s; libiovaq %s, seed %" PRIu64
		".\n",
		d->pace == PACE_TRACE ? "trace time (the replay followed the timestamps)"
				      : "replay time (as fast as possible, not the trace's)",
		pace_names[d->pace], iovaq_version(), d->seed);
	if (d->policies & (1ULL << P_ARENAS))
		fprintf(f, "Arenas: %u pages each, filled in map order; one sync per %u unlinked "
			   "pages or %.3g ms of trace time.\n", d->arena_pages, d->arena_sync,
			(double)d->arena_sync_ns / 1e6);
	return 0;
}

int bench_replay_main(int argc, char **argv)
{
	struct replay_doc d = { .policies = (1ULL << BENCH_N_POLICIES) - 1,
				.models = (1ULL << BENCH_N_MODELS) - 1, .seed = 1,
				.arena_pages = DEFAULT_ARENA_PAGES, .arena_sync = DEFAULT_ARENA_SYNC,
				.arena_sync_ns = DEFAULT_ARENA_SYNC_NS,
				.argc = argc, .argv = argv };
	struct bench_trace t;
	struct plan pl;
	struct bench_args a;
	bool json = false;
	char err[512];
	cpu_set_t cpus;
	uint64_t start;
	int id, ret = 0;

	bench_args_init(&a, argc, argv, 1, "replay", replay_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			if (d.file)
				bench_usage_error("unexpected argument '%s' for replay (it takes one "
						  "trace file)", a.positional);
			d.file = a.positional;
			break;
		case BENCH_O_SEED:
			d.seed = bench_parse_u64(&a, 0, UINT64_MAX);
			break;
		case BENCH_O_RING:
			d.ring = bench_parse_choice(&a, "ring layout", bench_ring_names);
			break;
		case BENCH_O_JSON:
			json = true;
			break;
		case O_POLICIES:
			d.policies = bench_parse_choice_list(&a, "policy", bench_policy_names);
			break;
		case O_MODELS:
			d.models = bench_parse_choice_list(&a, "model", bench_model_names);
			break;
		case O_PACE:
			d.pace = bench_parse_choice(&a, "pace", pace_names);
			break;
		case O_RING_ENTRIES:
			d.ring_entries = (uint32_t)bench_parse_u64(&a, 64, 1 << 20);
			break;
		case O_ARENA_PAGES:
			d.arena_pages = (uint32_t)bench_parse_u64(&a, 1, 65536);
			break;
		case O_ARENA_SYNC:
			d.arena_sync = (uint32_t)bench_parse_u64(&a, 1, 1 << 20);
			break;
		case O_ARENA_SYNC_NS:
			d.arena_sync_ns = bench_parse_u64(&a, 1000, 1000000000ULL);
			break;
		case O_MAX_WINDOW:
			d.max_window_ns = bench_parse_u64(&a, 1000, 60000000000ULL);
			break;
		case O_HELP:
			bench_replay_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	if (!d.file)
		bench_usage_error("replay needs a trace file (see '%s replay --help')", BENCH_PROG);

	ret = bench_trace_load(d.file, &t, err, sizeof(err));
	if (ret) {
		bench_error("%s", err);
		return ret == -ENOMEM ? BENCH_EXIT_FAIL : BENCH_EXIT_USAGE;
	}
	ret = plan_build(&t, d.file, &pl, err, sizeof(err));
	if (ret) {
		bench_error("%s", err);
		bench_trace_free(&t);
		return ret == -ENOMEM ? BENCH_EXIT_FAIL : BENCH_EXIT_USAGE;
	}
	d.t = &t;
	d.pl = &pl;
	if (pl.host_bytes > MAX_HOST_BYTES) {
		ret = bench_error("%s maps %" PRIu64 " bytes in all, more than the replay's %llu",
				  d.file, pl.host_bytes, MAX_HOST_BYTES);
		goto out;
	}
	d.res = calloc((size_t)BENCH_N_MODELS * BENCH_N_POLICIES, sizeof(*d.res));
	if (!d.res) {
		ret = bench_error("out of memory");
		goto out;
	}
	CPU_ZERO(&cpus);
	if (pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus)) {
		ret = bench_error("cannot read the CPU affinity: %s", strerror(errno));
		goto out;
	}
	start = bench_now_ns();
	for (unsigned int m = 0; m < BENCH_N_MODELS && !ret; m++) {
		if (!(d.models & (1ULL << m)))
			continue;
		for (unsigned int p = 0; p < BENCH_N_POLICIES && !ret; p++) {
			struct replay_cfg cfg = { .t = &t, .pl = &pl, .pol = p, .model = m,
						  .pace = d.pace, .seed = d.seed, .ring = d.ring,
						  .ring_entries = d.ring_entries,
						  .arena_pages = d.arena_pages,
						  .arena_sync = d.arena_sync,
						  .arena_sync_ns = d.arena_sync_ns,
						  .max_window_ns = d.max_window_ns,
						  .cpus = cpus };

			if (!(d.policies & (1ULL << p)))
				continue;
			bench_progress("replay: %s, %s", bench_model_names[m], bench_policy_names[p]);
			if (replay_one(&cfg, &d.res[d.nres], err, sizeof(err)))
				ret = bench_error("replay of %s (%s, %s): %s", d.file,
						  bench_model_names[m], bench_policy_names[p], err);
			else
				d.nres++;
		}
	}
	bench_progress_clear();
	d.elapsed_s = (double)(bench_now_ns() - start) / 1e9;
	if (!ret) {
		if (json)
			replay_json(&d, stdout);
		else
			ret = replay_table(&d, stdout);
	}
out:
	free(d.res);
	plan_free(&pl);
	bench_trace_free(&t);
	return ret;
}
