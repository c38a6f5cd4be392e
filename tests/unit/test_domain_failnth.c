// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * FAIL-NTH sweep of the domain layer (iommufd's fail_nth selftest is the model): a fixed
 * scenario runs again and again, and in run n the nth call of one failure point fails once:
 * the nth backend map, unmap or flush of the sim (iovaq_sim_fail_nth()), or the nth metadata
 * allocation of the domain (its hooks). The sweep of a point ends with the first run in which
 * the failure never fired.
 *
 * Each call must either succeed or return the injected error, as its contract says
 * (include/iovaq/domain.h); after each call the state invariant must hold (every granule
 * FREE, CACHED, ALLOCATED or QUEUED, once: iovaq_domain_check()), the domain must count the
 * mappings the test believes it holds, and no IOVA may be handed out while a release covering
 * it is not known to be safe. At the end the failure is disarmed, sync is retried until it
 * succeeds, everything is unmapped and synced; then nothing is mapped or queued, every
 * safe-deferred cookie came back exactly once, the space holds nothing once the cache is
 * drained, and after destroy every metadata allocation was freed (ASan checks the rest).
 *
 * Scenarios: (A) maps, unmaps, syncs, more maps, unmap all, under strict, deferred and
 * safe-deferred (polled cookies), with a small ring and a small reachable bound so that the
 * full-ring and reachable-bound flushes (and ring growth) run under failures too; (B) the same
 * for arenas: reserve, link, unlink, arena sync, relink, release.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"
#include "domutil.h"

#define G DU_G
#define RW (IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)
#define BIG_WINDOW 60000000000ull
/* A hole the domain never uses: the probes of the failure points run there. */
#define PROBE ((iovaq_iova_t)1 << 40)

enum kind { K_MAP, K_UNMAP, K_FLUSH, K_ALLOC, K_NR };

static const char *const kind_name[K_NR] = { "backend map", "backend unmap", "backend flush",
					     "metadata alloc" };
static const char *const policy_name[] = { "strict", "deferred", "safe-deferred" };
/* Distinct errnos, so that a caller can tell which failure reached it. */
static const int kind_err[K_NR] = { -EIO, -EREMOTEIO, -ETIMEDOUT, -ENOMEM };

#define NBUF 24
#define MAXREL 64

struct model {
	uint32_t policy;
	enum kind kind;
	long n;
	char where[96];
	struct iovaq_backend *be;
	struct iovaq_domain *dom;
	struct du_hooks h;
	struct iovaq_alloc_hooks hk;
	void *buf[NBUF];
	uint64_t pages[NBUF];
	iovaq_iova_t iova[NBUF];
	int mapped[NBUF];
	/* Releases not known to be safe yet: no map may overlap them. */
	iovaq_iova_t pend[MAXREL];
	uint64_t pend_pages[MAXREL];
	int n_pend;
	/* Safe-deferred cookies: expected (released) and received, by cookie value. */
	int cookie_sent[256], cookie_got[256];
	uint64_t next_cookie;
	uint64_t arena_linked;	/* scenario B: pages linked in arenas */
	int teardown;		/* scenario C: optimistic teardown on */
};

static uint64_t model_mapped(const struct model *m)
{
	uint64_t s = 0;

	for (int i = 0; i < NBUF; i++)
		s += m->mapped[i] ? m->pages[i] : 0;
	return s + m->arena_linked;
}

/* After every call: invariant, and the domain counts what the model holds. */
static void model_check(struct model *m, const char *what)
{
	int chk;
	struct iovaq_domain_stats s = du_stats(m->dom);

	/* The check allocates through the domain's hooks: not a failure point of the scenario. */
	du_hooks_pause(&m->h, 1);
	chk = iovaq_domain_check(m->dom);
	du_hooks_pause(&m->h, 0);

	cr_assert_eq(chk, 0, "[%s, fail %s #%ld] iovaq_domain_check after %s: %d",
		     policy_name[m->policy], kind_name[m->kind], m->n, what, chk);
	cr_assert_eq(s.mapped_pages, model_mapped(m),
		     "[%s, fail %s #%ld] after %s the domain counts %" PRIu64
		     " mapped pages, the caller holds %" PRIu64,
		     policy_name[m->policy], kind_name[m->kind], m->n, what, s.mapped_pages,
		     model_mapped(m));
}

static void pend_add(struct model *m, iovaq_iova_t iova, uint64_t pages)
{
	cr_assert_lt(m->n_pend, MAXREL);
	m->pend[m->n_pend] = iova;
	m->pend_pages[m->n_pend++] = pages;
}

/*
 * Queue flushes so far. In this single-threaded scenario with the inline flusher, a queue
 * flush that completes during a call covers every release made before that call.
 */
static uint64_t queue_flushes(struct model *m)
{
	struct iovaq_domain_stats s = du_stats(m->dom);

	return s.flushes - s.flush_strict;
}

struct mark {
	uint64_t flushes;
	int n_pend;
};

static struct mark pend_mark(struct model *m)
{
	struct mark k = { queue_flushes(m), m->n_pend };

	return k;
}

/* After a call: if a queue flush completed, the releases from before the call are safe. */
static void pend_settle(struct model *m, struct mark k)
{
	if (queue_flushes(m) == k.flushes)
		return;
	memmove(m->pend, m->pend + k.n_pend, (size_t)(m->n_pend - k.n_pend) * sizeof(m->pend[0]));
	memmove(m->pend_pages, m->pend_pages + k.n_pend,
		(size_t)(m->n_pend - k.n_pend) * sizeof(m->pend_pages[0]));
	m->n_pend -= k.n_pend;
}

static void poll_cookies(struct model *m)
{
	uint64_t c[32];
	int n;

	if (m->policy != IOVAQ_POLICY_SAFE_DEFERRED)
		return;
	while ((n = iovaq_domain_poll(m->dom, c, 32)) > 0) {
		for (int i = 0; i < n; i++) {
			cr_assert_lt(c[i], 256);
			cr_assert(m->cookie_sent[c[i]], "[%s, fail %s #%ld] cookie %" PRIu64
				  " of no release", policy_name[m->policy], kind_name[m->kind],
				  m->n, c[i]);
			cr_assert_eq(m->cookie_got[c[i]], 0, "[%s, fail %s #%ld] cookie %" PRIu64
				     " handed back twice", policy_name[m->policy],
				     kind_name[m->kind], m->n, c[i]);
			m->cookie_got[c[i]] = 1;
		}
	}
	cr_assert_eq(n, 0, "poll: %d", n);
}

/* A sync that may fail with the injected error; on success every release so far is safe. */
static int do_sync(struct model *m)
{
	struct mark k = pend_mark(m);
	int err = iovaq_domain_sync(m->dom);

	/* Even a failing sync may have completed a flush first (evicting kept mappings). */
	pend_settle(m, k);
	if (err) {
		/* An unmap fails a sync too: a kept mapping it could not evict stays mapped. */
		cr_assert(err == kind_err[m->kind] &&
				  (m->kind == K_FLUSH || m->kind == K_ALLOC || m->kind == K_UNMAP),
			  "[%s, fail %s #%ld] sync: %d (%s)", policy_name[m->policy],
			  kind_name[m->kind], m->n, err, iovaq_strerror(err));
	} else {
		m->n_pend = 0;
	}
	model_check(m, "sync");
	poll_cookies(m);
	return err;
}

static void do_map(struct model *m, int i)
{
	iovaq_iova_t iova = 0;
	struct mark k = pend_mark(m);
	uint64_t hits = du_stats(m->dom).teardown_hits;
	int err = iovaq_domain_map(m->dom, m->buf[i], m->pages[i] * G, RW, IOVAQ_LIMIT_NONE,
				   &iova);

	pend_settle(m, k); /* a flush for room (-ENOSPC) makes earlier releases safe */
	if (!err && du_stats(m->dom).teardown_hits != hits) {
		/*
		 * Optimistic teardown: the same buffer's kept mapping, by design. (A flush does not
		 * make a kept mapping safe, so its release may have left the model's list already.)
		 */
		cr_assert(m->teardown);
		for (int p = 0; p < m->n_pend; p++) {
			if (m->pend[p] == iova && m->pend_pages[p] == m->pages[i]) {
				m->pend[p] = m->pend[--m->n_pend];
				m->pend_pages[p] = m->pend_pages[m->n_pend];
				break;
			}
		}
	}
	if (err) {
		cr_assert(err == kind_err[m->kind] && (m->kind == K_MAP || m->kind == K_ALLOC),
			  "[%s, fail %s #%ld] map %" PRIu64 " pages: %d (%s)",
			  policy_name[m->policy], kind_name[m->kind], m->n, m->pages[i], err,
			  iovaq_strerror(err));
	} else {
		for (int p = 0; p < m->n_pend; p++)
			cr_assert(!du_overlap(iova, m->pages[i], m->pend[p], m->pend_pages[p]),
				  "[%s, fail %s #%ld] map got 0x%" PRIx64 "+%" PRIu64
				  ", overlapping 0x%" PRIx64 "+%" PRIu64
				  " released but not yet known safe",
				  policy_name[m->policy], kind_name[m->kind], m->n, iova,
				  m->pages[i], m->pend[p], m->pend_pages[p]);
		m->iova[i] = iova;
		m->mapped[i] = 1;
	}
	model_check(m, "map");
}

static void do_unmap(struct model *m, int i)
{
	uint64_t cookie = m->next_cookie++;
	struct mark k = pend_mark(m);
	int err = iovaq_domain_unmap(m->dom, m->iova[i], m->pages[i] * G, cookie);

	pend_settle(m, k); /* full ring, reachable bound */
	if (!err) {
		m->mapped[i] = 0;
		if (m->policy != IOVAQ_POLICY_STRICT)
			pend_add(m, m->iova[i], m->pages[i]);
		if (m->policy == IOVAQ_POLICY_SAFE_DEFERRED)
			m->cookie_sent[cookie] = 1;
	} else if (err == kind_err[K_UNMAP] && m->kind == K_UNMAP) {
		/* The backend refused: nothing changed, the mapping stays. */
	} else if (m->policy == IOVAQ_POLICY_SAFE_DEFERRED && m->kind == K_ALLOC &&
		   err == -ENOMEM) {
		/* No completion slot could be reserved: nothing changed, the mapping stays. */
	} else if (m->policy == IOVAQ_POLICY_STRICT && err == kind_err[m->kind] &&
		   (m->kind == K_FLUSH || m->kind == K_ALLOC)) {
		/* Strict whose invalidation failed: unmapped, QUEUED until a sync succeeds. */
		m->mapped[i] = 0;
		pend_add(m, m->iova[i], m->pages[i]);
	} else {
		cr_assert_fail("[%s, fail %s #%ld] unmap 0x%" PRIx64 "+%" PRIu64 ": %d (%s)",
			       policy_name[m->policy], kind_name[m->kind], m->n, m->iova[i],
			       m->pages[i], err, iovaq_strerror(err));
	}
	model_check(m, "unmap");
}

static enum iovaq_sim_op sim_op(enum kind k)
{
	return k == K_MAP ? IOVAQ_SIM_OP_MAP : k == K_UNMAP ? IOVAQ_SIM_OP_UNMAP : IOVAQ_SIM_OP_FLUSH;
}

static uint64_t op_count(const struct iovaq_sim_counters *c, enum kind k)
{
	return k == K_MAP ? c->maps : k == K_UNMAP ? c->unmaps : c->flushes;
}

/*
 * Did the armed sim failure fire during the scenario? @done successful calls of the op were
 * made. If at least n, the nth call was made and failed. If n - 1, either the last of n calls
 * failed or only n - 1 were made: one more call (the probe, in the hole) tells which.
 */
static int sim_fired(struct model *m, uint64_t done, void *pbuf)
{
	struct iovaq_inval c = { .kind = IOVAQ_INVAL_PAGES, .iova = PROBE };
	int r;

	if (done >= (uint64_t)m->n)
		return 1;
	if (done + 1 < (uint64_t)m->n)
		return 0;
	switch (m->kind) {
	case K_MAP:
		r = iovaq_backend_map(m->be, PROBE + G, pbuf, G, IOVAQ_PROT_READ);
		if (!r)
			cr_assert_geq(iovaq_backend_unmap(m->be, PROBE + G, G), 0);
		break;
	case K_UNMAP:
		r = iovaq_backend_unmap(m->be, PROBE, G);
		if (r >= 0)
			cr_assert_eq(iovaq_backend_map(m->be, PROBE, pbuf, G, IOVAQ_PROT_READ), 0);
		break;
	default:
		r = iovaq_backend_flush(m->be, &c, 1);
		break;
	}
	if (r == kind_err[m->kind])
		return 0;
	cr_assert_geq(r, 0, "probe: %d", r);
	return 1;
}

/* Open the sim, map the probe page in the hole and arm the failure. */
static void *arm(struct model *m, uint32_t policy, enum kind kind, long n,
		 struct iovaq_sim_counters *c0)
{
	void *pbuf = du_buf(1, 0);

	memset(m, 0, sizeof(*m));
	m->policy = policy;
	m->kind = kind;
	m->n = n;
	du_hooks_init(&m->h);
	m->hk = du_hooks_of(&m->h);
	m->be = du_sim_open(0);
	cr_assert_eq(iovaq_backend_map(m->be, PROBE, pbuf, G, IOVAQ_PROT_READ), 0);
	*c0 = du_simc(m->be);
	if (kind == K_ALLOC)
		du_hooks_arm(&m->h, n);
	else
		du_fail_nth(m->be, sim_op(kind), (uint64_t)n, kind_err[kind]);
	return pbuf;
}

/* Create the domain (may fail with the injected ENOMEM); 0 if it exists. */
static int create(struct model *m)
{
	struct iovaq_range hole = { PROBE, PROBE + 16 * G - 1 };
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = m->be, .policy = m->policy,
		   .max_window_ns = BIG_WINDOW, .ring_entries = 4, .max_reachable_pages = 24,
		   .reserved = &hole, .n_reserved = 1, .hooks = &m->hk,
		   .teardown_ns = m->teardown ? BIG_WINDOW : 0, .teardown_entries = 8);
	struct iovaq_domain *dom = (struct iovaq_domain *)(uintptr_t)0x1;
	int err = iovaq_domain_create(&o, &dom);

	if (err) {
		cr_assert(err == -ENOMEM && m->kind == K_ALLOC, "[%s, fail %s #%ld] create: %d",
			  policy_name[m->policy], kind_name[m->kind], m->n, err);
		cr_assert_eq(dom, (struct iovaq_domain *)(uintptr_t)0x1);
		return err;
	}
	m->dom = dom;
	return 0;
}

/* Disarm; tell whether the failure fired; sync until it succeeds. */
static int finish_disarm(struct model *m, void *pbuf, const struct iovaq_sim_counters *c0)
{
	struct iovaq_sim_counters c1 = du_simc(m->be);
	int fired, err = -1;

	if (m->kind == K_ALLOC) {
		fired = du_hooks_fired(&m->h) > 0;
		du_hooks_arm(&m->h, 0);
	} else {
		fired = sim_fired(m, op_count(&c1, m->kind) - op_count(c0, m->kind), pbuf);
		du_fail_nth(m->be, sim_op(m->kind), 0, -EIO);
	}
	if (m->dom) {
		for (int tries = 0; tries < 3 && err; tries++)
			err = iovaq_domain_sync(m->dom);
		cr_assert_eq(err, 0, "[%s, fail %s #%ld] sync after disarming: %d",
			     policy_name[m->policy], kind_name[m->kind], m->n, err);
		m->n_pend = 0;
		poll_cookies(m);
		model_check(m, "sync after disarming");
	}
	return fired;
}

/*
 * Bring the domain back to nothing: unmap what is left, sync; check that nothing is left
 * anywhere, destroy, and that every metadata allocation was freed.
 */
static void finish_check(struct model *m, void *pbuf)
{
	int err;

	if (m->dom) {
		for (int i = 0; i < NBUF; i++) {
			if (!m->mapped[i])
				continue;
			err = iovaq_domain_unmap(m->dom, m->iova[i], m->pages[i] * G,
						 m->next_cookie);
			cr_assert_eq(err, 0, "[%s, fail %s #%ld] final unmap of 0x%" PRIx64
				     ": %d (a mapping the caller holds is gone?)",
				     policy_name[m->policy], kind_name[m->kind], m->n, m->iova[i],
				     err);
			m->mapped[i] = 0;
			if (m->policy == IOVAQ_POLICY_SAFE_DEFERRED)
				m->cookie_sent[m->next_cookie] = 1;
			m->next_cookie++;
		}
		DU_OK(iovaq_domain_sync(m->dom));
		poll_cookies(m);
		model_check(m, "the final sync");
		for (int c = 0; c < 256; c++)
			cr_assert_eq(m->cookie_sent[c], m->cookie_got[c],
				     "[%s, fail %s #%ld] cookie %d %s", policy_name[m->policy],
				     kind_name[m->kind], m->n, c,
				     m->cookie_sent[c] ? "never came back (lost)" : "unexpected");

		struct iovaq_domain_stats s = du_stats(m->dom);
		struct iovaq_window_report w = du_win(m->dom);

		cr_assert_eq(s.queued_pages, 0);
		cr_assert_eq(w.reachable_pages, 0, "[%s, fail %s #%ld] reachable pages %" PRIu64
			     " with nothing queued", policy_name[m->policy], kind_name[m->kind],
			     m->n, w.reachable_pages);
		if (m->policy != IOVAQ_POLICY_DEFERRED)
			cr_assert_eq(w.unsafe_reuse, 0);
		cr_assert_eq(du_simc(m->be).mapped_pages, 1, "[%s, fail %s #%ld] the backend "
			     "holds %" PRIu64 " pages besides the probe", policy_name[m->policy],
			     kind_name[m->kind], m->n, du_simc(m->be).mapped_pages - 1);
		iovaq_cache_drain(iovaq_domain_cache(m->dom));
		cr_assert_eq(du_space_stats(m->dom).allocated_granules, 0,
			     "[%s, fail %s #%ld] %" PRIu64 " granules allocated with nothing mapped "
			     "or queued (leaked IOVAs)",
			     policy_name[m->policy], kind_name[m->kind], m->n,
			     du_space_stats(m->dom).allocated_granules);
		iovaq_domain_destroy(m->dom);
	}
	cr_assert_eq(m->h.allocs, m->h.frees, "[%s, fail %s #%ld] %ld allocations, %ld frees",
		     policy_name[m->policy], kind_name[m->kind], m->n, m->h.allocs, m->h.frees);
	cr_assert_eq(m->h.live_bytes, 0);
	cr_assert_geq(iovaq_backend_unmap(m->be, PROBE, G), 0);
	cr_assert_eq(du_simc(m->be).mapped_pages, 0);
	iovaq_backend_close(m->be);
	for (int i = 0; i < NBUF; i++)
		free(m->buf[i]);
	free(pbuf);
	pthread_mutex_destroy(&m->h.mu);
}

/* Scenario A. Returns whether the failure fired. */
static int scenario_a(uint32_t policy, enum kind kind, long n)
{
	static const uint64_t sizes[NBUF] = { 1, 2, 1, 4, 3, 8, 1, 16, 2, 1, 5, 1,
					      1, 2, 4, 1, 32, 1, 2, 1, 8, 1, 3, 1 };
	struct iovaq_sim_counters c0;
	struct model *m = calloc(1, sizeof(*m));
	void *pbuf;
	int fired;

	cr_assert_not_null(m);
	pbuf = arm(m, policy, kind, n, &c0);
	for (int i = 0; i < NBUF; i++) {
		m->pages[i] = sizes[i];
		m->buf[i] = du_buf(sizes[i], (uint64_t)i);
	}
	if (!create(m)) {
		/* Map the first 14. */
		for (int i = 0; i < 14; i++)
			do_map(m, i);
		/* Unmap every other one. */
		for (int i = 0; i < 14; i += 2)
			if (m->mapped[i])
				do_unmap(m, i);
		do_sync(m);
		/* Map the rest, and the unmapped ones again. */
		for (int i = 0; i < NBUF; i++)
			if (!m->mapped[i])
				do_map(m, i);
		/* Unmap everything. */
		for (int i = NBUF - 1; i >= 0; i--)
			if (m->mapped[i])
				do_unmap(m, i);
		do_sync(m);
	}
	fired = finish_disarm(m, pbuf, &c0);
	finish_check(m, pbuf);
	free(m);
	return fired;
}

/* Scenario B: an arena's state in the model. */
struct arena_m {
	struct iovaq_arena *a;
	uint64_t linked[16];	/* at the first page of a link: its pages */
	int unlinked;		/* unlinked since its last successful sync */
};

static void arena_link(struct model *m, struct arena_m *x, uint64_t at, uint64_t len)
{
	int err;

	if (!x->a || x->linked[at])
		return;
	err = iovaq_arena_link(x->a, at, m->buf[0], len * G, RW, NULL);
	if (!err) {
		x->linked[at] = len;
		m->arena_linked += len;
	} else {
		/* Busy until the sync covering its last unlink is safe. */
		cr_assert(err == -EBUSY || (err == kind_err[m->kind] && m->kind == K_MAP),
			  "[%s, fail %s #%ld] link %" PRIu64 "+%" PRIu64 ": %d",
			  policy_name[m->policy], kind_name[m->kind], m->n, at, len, err);
	}
	model_check(m, "link");
}

/* Unlink every link at or after @from with an even index of links; returns links left. */
static int arena_unlink(struct model *m, struct arena_m *x, int all)
{
	int left = 0, j = 0;

	for (uint64_t at = 0; x->a && at < 16; at++) {
		uint64_t len = x->linked[at];
		int err;

		if (!len || (!all && j++ % 2))
			continue;
		err = iovaq_arena_unlink(x->a, at, len * G);
		if (!err) {
			x->linked[at] = 0;
			m->arena_linked -= len;
			x->unlinked = 1;
		} else {
			cr_assert(err == kind_err[K_UNMAP] && m->kind == K_UNMAP,
				  "[%s, fail %s #%ld] unlink %" PRIu64 ": %d",
				  policy_name[m->policy], kind_name[m->kind], m->n, at, err);
			left++;
		}
		model_check(m, "unlink");
	}
	return left;
}

static void arena_sync(struct model *m, struct arena_m *x)
{
	uint64_t cookie = m->next_cookie++;
	struct mark k;
	int err;

	if (!x->a)
		return;
	k = pend_mark(m);
	err = iovaq_arena_sync(x->a, cookie);
	pend_settle(m, k);
	if (!err) {
		/* Safe-deferred hands every arena sync's cookie back, even with nothing new. */
		if (m->policy == IOVAQ_POLICY_SAFE_DEFERRED)
			m->cookie_sent[cookie] = 1;
		if (x->unlinked && m->policy != IOVAQ_POLICY_STRICT)
			pend_add(m, iovaq_arena_base(x->a), 16);
		x->unlinked = 0;
	} else if (m->policy == IOVAQ_POLICY_SAFE_DEFERRED && m->kind == K_ALLOC &&
		   err == -ENOMEM) {
		/* No completion slot could be reserved: nothing changed, still unlinked. */
	} else {
		pend_add(m, iovaq_arena_base(x->a), 16);
		/* Strict: the flush failed, the pages stay QUEUED until a domain sync. */
		cr_assert(m->policy == IOVAQ_POLICY_STRICT && err == kind_err[m->kind] &&
				  (m->kind == K_FLUSH || m->kind == K_ALLOC),
			  "[%s, fail %s #%ld] arena sync: %d", policy_name[m->policy],
			  kind_name[m->kind], m->n, err);
		x->unlinked = 0;
	}
	model_check(m, "arena sync");
}

/* Release an arena whose links are all gone (else it would be abandoned to destroy). */
static void arena_release(struct model *m, struct arena_m *x)
{
	struct mark k;

	if (!x->a || arena_unlink(m, x, 1))
		return;
	k = pend_mark(m);
	iovaq_arena_release(x->a);
	pend_settle(m, k);
	x->a = NULL;
	model_check(m, "arena release");
}

/*
 * Scenario B, arenas: reserve two, link singles and a double, unlink every other link, arena
 * sync with a cookie, domain sync, twice (relinking); then unlink the rest of one arena, sync
 * it and release it before any domain sync; release the other at the end.
 */
static int scenario_b(uint32_t policy, enum kind kind, long n)
{
	static const uint64_t at[] = { 0, 1, 2, 4, 5 }, len[] = { 1, 1, 2, 1, 1 };
	struct iovaq_sim_counters c0;
	struct model *m = calloc(1, sizeof(*m));
	struct arena_m x[2];
	void *pbuf;
	int fired;

	cr_assert_not_null(m);
	memset(x, 0, sizeof(x));
	pbuf = arm(m, policy, kind, n, &c0);
	m->buf[0] = du_buf(2, 1);
	if (!create(m)) {
		for (int k = 0; k < 2; k++) {
			int err = iovaq_arena_reserve(m->dom, 16, IOVAQ_LIMIT_NONE, &x[k].a);

			if (err) {
				cr_assert(err == -ENOMEM && kind == K_ALLOC,
					  "[%s, fail %s #%ld] reserve: %d", policy_name[policy],
					  kind_name[kind], n, err);
				x[k].a = NULL;
			}
			model_check(m, "reserve");
		}
		for (int round = 0; round < 2; round++) {
			for (int k = 0; k < 2; k++) {
				for (int j = 0; j < 5; j++)
					arena_link(m, &x[k], at[j], len[j]);
				arena_unlink(m, &x[k], 0);
				arena_sync(m, &x[k]);
			}
			do_sync(m);
		}
		/* Release while its last sync may still be pending. */
		arena_unlink(m, &x[0], 1);
		arena_sync(m, &x[0]);
		arena_release(m, &x[0]);
		/* A chunk whose invalidation is pending must not be handed out again. */
		{
			struct iovaq_arena *y = NULL;
			int err = iovaq_arena_reserve(m->dom, 16, IOVAQ_LIMIT_NONE, &y);

			if (!err) {
				for (int k = 0; k < m->n_pend; k++)
					cr_assert(!du_overlap(iovaq_arena_base(y), 16, m->pend[k],
							      m->pend_pages[k]),
						  "[%s, fail %s #%ld] arena chunk 0x%" PRIx64
						  " handed out again before its invalidation",
						  policy_name[policy], kind_name[kind], n,
						  iovaq_arena_base(y));
				iovaq_arena_release(y);
			} else {
				cr_assert(err == -ENOMEM && kind == K_ALLOC,
					  "[%s, fail %s #%ld] reserve: %d", policy_name[policy],
					  kind_name[kind], n, err);
			}
			model_check(m, "reserve");
		}
		do_sync(m);
	}
	fired = finish_disarm(m, pbuf, &c0);
	if (m->dom) {
		for (int k = 0; k < 2; k++) {
			arena_release(m, &x[k]);
			cr_assert_null(x[k].a, "arena links left after disarming");
		}
		DU_OK(iovaq_domain_sync(m->dom));
		poll_cookies(m);
	}
	finish_check(m, pbuf);
	free(m);
	return fired;
}

/*
 * Scenario C, optimistic teardown (deferred only): unmapped buffers keep their mappings (at
 * most 8), maps of the same buffers reuse them, more buffers evict the oldest, sync evicts all.
 */
static int scenario_c(uint32_t policy, enum kind kind, long n)
{
	static const uint64_t sizes[NBUF] = { 1, 2, 1, 4, 3, 8, 1, 2, 2, 1, 5, 1,
					      1, 2, 4, 1, 2, 1, 2, 1, 8, 1, 3, 1 };
	struct iovaq_sim_counters c0;
	struct model *m = calloc(1, sizeof(*m));
	void *pbuf;
	int fired;

	cr_assert_not_null(m);
	m->teardown = 1;
	pbuf = arm(m, policy, kind, n, &c0);
	m->teardown = 1;
	for (int i = 0; i < NBUF; i++) {
		m->pages[i] = sizes[i];
		m->buf[i] = du_buf(sizes[i], (uint64_t)i);
	}
	if (!create(m)) {
		for (int round = 0; round < 3; round++) {
			/* The same 6 buffers each round (hits), plus 4 new ones (evictions). */
			for (int i = 0; i < 6; i++)
				do_map(m, i);
			for (int i = 6 + 4 * round; i < 10 + 4 * round; i++)
				do_map(m, i);
			/* New ones first, so that the 6 reused ones are the newest kept. */
			for (int i = NBUF - 1; i >= 0; i--)
				if (m->mapped[i])
					do_unmap(m, i);
			if (round == 1)
				do_sync(m);
		}
		cr_assert_gt(du_stats(m->dom).teardown_hits, 0, "scenario C: no teardown hit");
		do_sync(m);
	}
	fired = finish_disarm(m, pbuf, &c0);
	finish_check(m, pbuf);
	free(m);
	return fired;
}

typedef int (*scenario_fn)(uint32_t policy, enum kind kind, long n);

static void sweep(scenario_fn fn, const char *name, int deferred_only)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED };
	long runs = 0;

	for (int p = 0; p < 3; p++) {
		if (deferred_only && pol[p] != IOVAQ_POLICY_DEFERRED)
			continue;
		for (int k = 0; k < K_NR; k++) {
			long n;

			for (n = 1; n < 5000; n++) {
				runs++;
				if (!fn(pol[p], (enum kind)k, n))
					break;
			}
			cr_assert_lt(n, 5000, "%s: the sweep of %s under %s never ended", name,
				     kind_name[k], policy_name[p]);
			cr_assert_gt(n, 1, "%s: %s under %s never happens in the scenario", name,
				     kind_name[k], policy_name[p]);
			fprintf(stderr, "%s: %s, %s: %ld failure points\n", name, policy_name[p],
				kind_name[k], n - 1);
		}
	}
	fprintf(stderr, "%s: %ld runs\n", name, runs);
}

Test(domain_failnth, scenario_maps_unmaps_syncs, .timeout = 600)
{
	sweep(scenario_a, "domain_failnth::maps_unmaps_syncs", 0);
}

Test(domain_failnth, scenario_arenas, .timeout = 600)
{
	sweep(scenario_b, "domain_failnth::arenas", 0);
}

Test(domain_failnth, scenario_optimistic_teardown, .timeout = 600)
{
	sweep(scenario_c, "domain_failnth::optimistic_teardown", 1);
}
