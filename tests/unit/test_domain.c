// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of the domain layer (include/iovaq/domain.h) on the sim backend, which plays the
 * device: iovaq_sim_dma() translates through the sim's IOTLB and paging-structure caches, so
 * "the device can still reach a released range" is observable as a stale hit, and "the range
 * is safe" as a fault.
 *
 * Covered: each policy's semantics (DESIGN.md §2 table), the bounds (reachable pages, ring
 * size, the oldest entry's age with both flushers), the planner (domain-wide above the
 * threshold, never under caching mode, one command per size-aligned range, the leaf-only hint),
 * bad input, backend failures (map, unmap, flush), destroy with pending work, the window
 * report and its JSON, optimistic teardown and arenas. After every failure path the state
 * invariant must hold (iovaq_domain_check()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <ctype.h>

#include "testutil.h"
#include "domutil.h"

#define G DU_G
#define RW (IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)
/* A bound no unit test reaches: no age-triggered flush unless a test wants one. */
#define BIG_WINDOW 60000000000ull /* 60 s */
#define MS ((uint64_t)1000000)

static const char *const policy_name[] = { "strict", "deferred", "safe-deferred",
					   "passthrough" };

/* A domain with @policy and a bound that never fires on its own. */
static struct iovaq_domain *dom_quiet(struct iovaq_backend *be, uint32_t policy)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy,
		   .max_window_ns = BIG_WINDOW);

	return du_domain(&o);
}

/* Unmap everything in @iova/@pages (n entries, 0 IOVAs skipped), sync, destroy, close. */
static void teardown_all(struct iovaq_backend *be, struct iovaq_domain *dom,
			 const iovaq_iova_t *iova, const uint64_t *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (iova[i])
			du_unmap(dom, iova[i], pages[i], 0);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0, "mappings left in the backend after destroy");
	iovaq_backend_close(be);
}

/* ------------------------------------------------------------------------------------ */
/* Strict                                                                               */
/* ------------------------------------------------------------------------------------ */

/*
 * Strict: unmap returns after t_safe. The device filled its IOTLB with every page before the
 * unmap; right after the unmap returns, every page faults and none is a stale hit.
 */
Test(strict, unmap_returns_after_t_safe)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	uint64_t total = 0, longest_call = 0;
	const int n = 12;

	for (int k = 0; k < n; k++) {
		uint64_t pages = 1 + (uint64_t)(k % 5);
		void *buf = du_buf(pages, (uint64_t)k);
		iovaq_iova_t iova = du_map(dom, buf, pages);
		uint64_t t0, t1;

		du_dma_ok(be, iova, pages, buf); /* the IOTLB now holds every page */
		t0 = du_now();
		du_unmap(dom, iova, pages, 0);
		t1 = du_now();
		if (t1 - t0 > longest_call)
			longest_call = t1 - t0;
		du_dma_faults(be, iova, pages);
		total += pages;
		free(buf);
	}
	cr_assert_eq(du_simc(be).stale_hits, 0, "a stale translation survived a strict unmap");

	struct iovaq_window_report w = du_win(dom);
	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_eq(w.releases, (uint64_t)n);
	cr_assert_eq(w.released_pages, total);
	cr_assert_eq(w.unsafe_reuse, 0);
	/* A strict window is the call itself: only a call slower than the bound can violate it. */
	if (longest_call <= w.max_window_ns)
		cr_assert_eq(w.violations, 0);
	cr_assert_eq(w.reachable_pages, 0);
	cr_assert_gt(w.window_max_ns, 0, "strict windows are the unmap calls, not zero");
	cr_assert_leq(w.window_max_ns, longest_call,
		      "a strict window (%" PRIu64 " ns) is longer than its unmap call (%" PRIu64
		      " ns)",
		      w.window_max_ns, longest_call);
	cr_assert_gt(w.exposure_page_ns, 0);
	cr_assert_leq(w.window_p50_ns, w.window_p99_ns);
	cr_assert_leq(w.window_p99_ns, w.window_p999_ns);
	cr_assert_leq(w.window_p999_ns, w.window_max_ns);
	cr_assert_eq(w.max_window_ns, IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS);
	cr_assert_eq(w.max_reachable_pages, IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE);
	cr_assert_eq(s.unmaps, (uint64_t)n);
	cr_assert_eq(s.maps, (uint64_t)n);
	cr_assert_eq(s.flush_strict, (uint64_t)n);
	cr_assert_eq(s.flushes, (uint64_t)n);
	cr_assert_geq(s.inval_cmds, (uint64_t)n);
	cr_assert_eq(s.invalidated_pages, total);
	cr_assert_eq(s.queued_pages, 0);
	cr_assert_eq(s.mapped_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
}

/* Strict hands no cookie back and a sync has nothing to do. */
Test(strict, no_cookies_sync_is_noop)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	void *buf = du_buf(1, 1);
	uint64_t c[4];

	du_unmap(dom, du_map(dom, buf, 1), 1, 42);
	struct iovaq_sim_counters c0 = du_simc(be);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).flushes, c0.flushes, "sync flushed with nothing queued");
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "strict handed a cookie back");
	cr_assert_eq(du_stats(dom).completions, 0);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Deferred                                                                             */
/* ------------------------------------------------------------------------------------ */

/*
 * Deferred: unmap returns before t_safe. The device still reaches every warm page (stale
 * hits, counted by the sim), the window report counts the unsafe reuse at once, and after
 * iovaq_domain_sync() every page faults.
 */
Test(deferred, stale_until_sync)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(4, 7);
	iovaq_iova_t iova = du_map(dom, buf, 4);
	struct iovaq_sim_access r;
	uint64_t t0, t1, t2, t3;

	du_dma_ok(be, iova, 4, buf);
	t0 = du_now();
	du_unmap(dom, iova, 4, 0);
	t1 = du_now();

	struct iovaq_domain_stats s = du_stats(dom);
	struct iovaq_window_report w = du_win(dom);

	cr_assert_eq(s.unmaps, 1);
	cr_assert_eq(s.queued_pages, 4, "deferred unmap did not queue the range");
	cr_assert_eq(s.flushes, 0, "deferred unmap flushed at once");
	cr_assert_eq(w.unsafe_reuse, 1, "a deferred unmap is an unsafe reuse");
	cr_assert_eq(w.reachable_pages, 4);
	cr_assert_eq(w.releases, 0, "a release was closed before its t_safe");

	/* Right after the unmap the device still reaches the buffer: stale hits. */
	cr_assert_eq(du_dma(be, iova, 4 * G, &r), 0, "warm pages should still translate");
	cr_assert_eq(r.stale_pages, 4, "expected 4 stale pages, got %" PRIu64, r.stale_pages);
	cr_assert_eq(du_simc(be).stale_hits, 4);

	du_sleep_ns(2 * MS);
	t2 = du_now();
	DU_OK(iovaq_domain_sync(dom));
	t3 = du_now();
	du_dma_faults(be, iova, 4);

	s = du_stats(dom);
	w = du_win(dom);
	cr_assert_eq(s.queued_pages, 0);
	cr_assert_eq(s.flush_sync, 1);
	cr_assert_eq(s.flushes, 1);
	cr_assert_eq(s.invalidated_pages, 4);
	cr_assert_eq(w.releases, 1);
	cr_assert_eq(w.released_pages, 4);
	cr_assert_eq(w.reachable_pages, 0);
	cr_assert_eq(w.reachable_pages_max, 4);
	cr_assert_geq(w.window_max_ns, t2 - t1, "window %" PRIu64 " shorter than possible",
		      w.window_max_ns);
	cr_assert_leq(w.window_max_ns, t3 - t0, "window %" PRIu64 " longer than possible",
		      w.window_max_ns);
	/* One sample: every percentile is that sample, and the exposure is pages x window. */
	cr_assert_eq(w.window_p50_ns, w.window_max_ns);
	cr_assert_eq(w.window_p999_ns, w.window_max_ns);
	cr_assert_eq(w.exposure_page_ns, 4 * w.window_max_ns);
	cr_assert_eq(w.unsafe_reuse, 1);
	cr_assert_eq(w.violations, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * A QUEUED IOVA is never handed out before the flush that covers it: hundreds of maps after
 * an unmap without sync never get it; after the sync it comes back.
 */
Test(deferred, queued_iova_not_reused_before_flush)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(4, 3);
	enum { N1 = 300, N4 = 60 };
	static iovaq_iova_t v[N1 + N4];
	static uint64_t pg[N1 + N4];
	iovaq_iova_t a, b;
	int found_a = 0, found_b = 0;

	a = du_map(dom, buf, 1);
	b = du_map(dom, buf, 4);
	du_unmap(dom, a, 1, 0);
	du_unmap(dom, b, 4, 0);
	for (int i = 0; i < N1 + N4; i++) {
		pg[i] = i < N1 ? 1 : 4;
		v[i] = du_map(dom, buf, pg[i]);
		cr_assert(!du_overlap(v[i], pg[i], a, 1) && !du_overlap(v[i], pg[i], b, 4),
			  "map %d got 0x%" PRIx64 " which overlaps a QUEUED range (0x%" PRIx64
			  ", 0x%" PRIx64 ")",
			  i, v[i], a, b);
	}
	cr_assert_eq(du_stats(dom).queued_pages, 5);
	DU_CHECK(dom);

	/* After the flush both come back to the cache and out again. */
	DU_OK(iovaq_domain_sync(dom));
	for (int i = 0; i < 64 && !found_a; i++) {
		iovaq_iova_t x = du_map(dom, buf, 1);

		found_a = x == a;
		du_unmap(dom, x, 1, 0);
	}
	for (int i = 0; i < 64 && !found_b; i++) {
		iovaq_iova_t x = du_map(dom, buf, 4);

		found_b = x == b;
		du_unmap(dom, x, 4, 0);
	}
	cr_assert(found_a, "the 1-page IOVA never came back after the sync");
	cr_assert(found_b, "the 4-page IOVA never came back after the sync");
	teardown_all(be, dom, v, pg, N1 + N4);
	free(buf);
}

/* Deferred unmaps hand no cookies back. */
Test(deferred, no_cookies)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(1, 1);
	uint64_t c[4];

	du_unmap(dom, du_map(dom, buf, 1), 1, 42);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "deferred handed a cookie back");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* Allocation pressure: a full space flushes the queue and retries (flush_nospc). */
Test(deferred, nospc_flushes_queue)
{
	struct iovaq_backend *be = du_sim_open(0);
	/* Leave 64 granules: [4 KiB, 260 KiB); IOVA 0 is reserved anyway. */
	struct iovaq_range hole = { 65 * G, (1ull << 48) - 1 };
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .reserved = &hole, .n_reserved = 1);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);
	iovaq_iova_t v[64], x;
	uint64_t pg[64];
	int n = 0;

	while (n < 64 && !iovaq_domain_map(dom, buf, G, RW, IOVAQ_LIMIT_NONE, &v[n])) {
		cr_assert_geq(v[n], G);
		cr_assert_lt(v[n], 65 * G, "IOVA 0x%" PRIx64 " inside the reserved hole", v[n]);
		pg[n++] = 1;
	}
	cr_assert_eq(n, 64, "only %d of 64 granules could be mapped", n);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, RW, IOVAQ_LIMIT_NONE, &x), -ENOSPC);
	for (int i = 0; i < 64; i++)
		du_unmap(dom, v[i], 1, 0);
	cr_assert_eq(du_stats(dom).queued_pages, 64);
	/* Every granule is QUEUED: the next map must flush to find one. */
	x = du_map(dom, buf, 1);
	cr_assert_eq(du_stats(dom).flush_nospc, 1);
	cr_assert_eq(du_stats(dom).queued_pages, 0);
	DU_CHECK(dom);
	du_unmap(dom, x, 1, 0);
	for (int i = 0; i < 64; i++)
		v[i] = 0;
	teardown_all(be, dom, v, pg, 64);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Safe-deferred                                                                        */
/* ------------------------------------------------------------------------------------ */

struct cbctx {
	pthread_mutex_t mu;
	struct iovaq_backend *be;
	struct iovaq_domain *dom;
	iovaq_iova_t iova[16];
	uint64_t pages[16];
	uint64_t cookies[64];
	int n;
	int bad_dma;		/* cookie came back while the device could still reach it */
	int nested_err;		/* map/unmap from the callback failed */
	int nested;		/* cookie that triggers a nested map + unmap, -1 none */
	void *nbuf;
	pthread_t main;
	int other_thread;	/* callbacks that ran on another thread */
};

static void cb_record(void *arg, uint64_t cookie)
{
	struct cbctx *c = arg;
	int do_nested;

	/* The cookie means t_safe passed: no page of the range may translate any more. */
	if (cookie < 16) {
		for (uint64_t p = 0; p < c->pages[cookie]; p++) {
			struct iovaq_sim_access r;
			uint8_t b[8];
			int err = iovaq_sim_dma(iovaq_sim_of(c->be), c->iova[cookie] + p * G, b, 8,
						0, &r);

			if (err != -EFAULT || r.stale_pages) {
				pthread_mutex_lock(&c->mu);
				c->bad_dma++;
				pthread_mutex_unlock(&c->mu);
			}
		}
	}
	pthread_mutex_lock(&c->mu);
	if (c->n < 64)
		c->cookies[c->n] = cookie;
	c->n++;
	if (!pthread_equal(pthread_self(), c->main))
		c->other_thread++;
	do_nested = c->nested >= 0 && cookie == (uint64_t)c->nested;
	if (do_nested)
		c->nested = -1;
	pthread_mutex_unlock(&c->mu);
	if (do_nested) {
		/* The callback may call back into the same domain. */
		iovaq_iova_t v;
		int err = iovaq_domain_map(c->dom, c->nbuf, G, RW, IOVAQ_LIMIT_NONE, &v);

		if (!err)
			err = iovaq_domain_unmap(c->dom, v, G, 1000);
		if (err) {
			pthread_mutex_lock(&c->mu);
			c->nested_err = err;
			pthread_mutex_unlock(&c->mu);
		}
	}
}

static int cb_count(struct cbctx *c)
{
	int n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void cb_init(struct cbctx *c, struct iovaq_backend *be, int nested)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->be = be;
	c->nested = nested;
	c->nbuf = du_buf(1, 99);
	c->main = pthread_self();
}

/*
 * Safe-deferred with a callback: unmap returns at once, the device can still reach the range
 * (stale hit) but the buffer is not handed back; the cookie comes back only after t_safe (the
 * callback itself checks that the range faults), in unmap order, and the callback may map
 * and unmap on the same domain.
 */
Test(safe_deferred, callback_after_t_safe)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct cbctx c;
	enum { N = 8 };
	void *bufs[N];

	/* The last cookie maps and unmaps: its IOVA may be one just freed by this flush. */
	cb_init(&c, be, N - 1);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_SAFE_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .complete = cb_record, .complete_arg = &c);
	struct iovaq_domain *dom = du_domain(&o);
	uint64_t total = 0;

	c.dom = dom;
	for (int i = 0; i < N; i++) {
		c.pages[i] = 1 + (uint64_t)(i % 4);
		bufs[i] = du_buf(c.pages[i], (uint64_t)i);
		c.iova[i] = du_map(dom, bufs[i], c.pages[i]);
		du_dma_ok(be, c.iova[i], c.pages[i], bufs[i]);
		total += c.pages[i];
	}
	for (int i = 0; i < N; i++)
		du_unmap(dom, c.iova[i], c.pages[i], (uint64_t)i);
	cr_assert_eq(cb_count(&c), 0, "a cookie came back before any flush");

	struct iovaq_sim_access r;

	cr_assert_eq(du_dma(be, c.iova[0], G, &r), 0);
	cr_assert_eq(r.stale_pages, 1, "the released range should still be reachable (stale)");
	cr_assert_eq(du_win(dom).reachable_pages, total);

	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(cb_count(&c), N, "%d cookies after sync, expected %d", cb_count(&c), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(c.cookies[i], (uint64_t)i, "cookie %d is %" PRIu64 " (order)", i,
			     c.cookies[i]);
	cr_assert_eq(c.bad_dma, 0, "a cookie came back while its range still translated");
	cr_assert_eq(c.nested_err, 0, "map/unmap from the callback: %d", c.nested_err);
	cr_assert_eq(c.other_thread, 0, "inline flusher: callbacks must run on the syncing thread");
	/* The callback's own unmap is queued behind the flush that ran it. */
	DU_CHECK(dom);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(cb_count(&c), N + 1);
	cr_assert_eq(c.cookies[N], 1000);

	struct iovaq_window_report w = du_win(dom);
	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_eq(w.unsafe_reuse, 0, "safe-deferred never hands a buffer back early");
	cr_assert_eq(w.violations, 0);
	cr_assert_eq(w.releases, N + 1);
	cr_assert_eq(s.completions, N + 1);
	cr_assert_eq(s.unmaps, N + 1);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	for (int i = 0; i < N; i++)
		free(bufs[i]);
	free(c.nbuf);
}

/* Without a callback, cookies wait for iovaq_domain_poll(), in order, and only after t_safe. */
Test(safe_deferred, poll_without_callback)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_SAFE_DEFERRED);
	void *buf = du_buf(1, 1);
	enum { N = 600 }; /* beyond the first growth of the completion ring */
	static iovaq_iova_t v[N];
	static uint64_t got[N + 8];
	uint64_t c[16];
	int k = 0, r;

	for (int i = 0; i < N; i++)
		v[i] = du_map(dom, buf, 1);
	for (int i = 0; i < 5; i++)
		du_unmap(dom, v[i], 1, 100 + (uint64_t)i);
	cr_assert_eq(iovaq_domain_poll(dom, c, 16), 0, "cookie before t_safe");
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(iovaq_domain_poll(dom, c, 2), 2);
	cr_assert_eq(c[0], 100);
	cr_assert_eq(c[1], 101);
	cr_assert_eq(iovaq_domain_poll(dom, c, 16), 3);
	cr_assert_eq(c[0], 102);
	cr_assert_eq(c[2], 104);
	cr_assert_eq(iovaq_domain_poll(dom, c, 16), 0);
	cr_assert_eq(iovaq_domain_poll(dom, NULL, 0), 0);
	cr_assert_eq(iovaq_domain_poll(dom, NULL, 1), -EINVAL);
	cr_assert_eq(iovaq_domain_poll(NULL, c, 1), -EINVAL);

	for (int i = 5; i < N; i++)
		du_unmap(dom, v[i], 1, (uint64_t)i);
	DU_OK(iovaq_domain_sync(dom));
	while ((r = iovaq_domain_poll(dom, got + k, 7)) > 0)
		k += r;
	cr_assert_eq(r, 0);
	cr_assert_eq(k, N - 5, "%d cookies polled, expected %d", k, N - 5);
	for (int i = 0; i < k; i++)
		cr_assert_eq(got[i], (uint64_t)i + 5, "cookie %d out of order", i);
	cr_assert_eq(du_stats(dom).completions, N);
	cr_assert_eq(du_win(dom).unsafe_reuse, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Thread flusher: cookies come back on the flusher thread once the oldest entry ages, with no
 * call into the domain; a callback on the flusher thread may map and unmap too.
 */
Test(safe_deferred, thread_flusher_delivers)
{
	struct iovaq_backend *be = du_sim_open(0);
	const uint64_t bound = (DU_SANITIZED ? 40 : 5) * MS;
	struct cbctx c;
	void *bufs[4];

	cb_init(&c, be, 3);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_SAFE_DEFERRED,
		   .flusher = IOVAQ_FLUSHER_THREAD, .max_window_ns = bound, .complete = cb_record,
		   .complete_arg = &c);
	struct iovaq_domain *dom = du_domain(&o);
	uint64_t deadline;

	c.dom = dom;
	for (int i = 0; i < 4; i++) {
		c.pages[i] = 1 + (uint64_t)i;
		bufs[i] = du_buf(c.pages[i], (uint64_t)i);
		c.iova[i] = du_map(dom, bufs[i], c.pages[i]);
		du_dma_ok(be, c.iova[i], c.pages[i], bufs[i]);
	}
	for (int i = 0; i < 4; i++)
		du_unmap(dom, c.iova[i], c.pages[i], (uint64_t)i);
	deadline = du_now() + 5000 * MS;
	while (cb_count(&c) < 5 && du_now() < deadline)
		du_sleep_ns(MS / 2);
	cr_assert_eq(cb_count(&c), 5, "%d of 5 cookies came back (4 + the nested unmap's)",
		     cb_count(&c));
	pthread_mutex_lock(&c.mu);
	cr_assert_eq(c.other_thread, 5, "callbacks should run on the flusher thread");
	cr_assert_eq(c.bad_dma, 0, "a cookie came back while its range still translated");
	cr_assert_eq(c.nested_err, 0, "map/unmap from the flusher's callback: %d", c.nested_err);
	pthread_mutex_unlock(&c.mu);
	cr_assert_geq(du_stats(dom).flush_age, 1);
	cr_assert_eq(du_win(dom).unsafe_reuse, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_backend_close(be);
	for (int i = 0; i < 4; i++)
		free(bufs[i]);
	free(c.nbuf);
}

/* ------------------------------------------------------------------------------------ */
/* Passthrough                                                                          */
/* ------------------------------------------------------------------------------------ */

Test(passthrough, identity_and_no_backend_mapping)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom =
		du_domain_simple(be, IOVAQ_POLICY_PASSTHROUGH, IOVAQ_FLUSHER_INLINE);
	void *buf = du_buf(2, 1), *buf2 = du_buf(1, 2);
	iovaq_iova_t iova, x = 0x77;

	iova = du_map(dom, buf, 2);
	cr_assert_eq(iova, (iovaq_iova_t)(uintptr_t)buf, "passthrough IOVA is not the address");
	cr_assert_eq(du_map(dom, buf2, 1), (iovaq_iova_t)(uintptr_t)buf2);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, 2 * G, RW, IOVAQ_LIMIT_NONE, &x), -EEXIST);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE, &x),
		  -EEXIST);
	cr_assert_eq(x, 0x77, "*iova written by a failed map");

	struct iovaq_sim_counters sc = du_simc(be);
	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_eq(sc.maps, 0, "passthrough mapped in the backend");
	cr_assert_eq(sc.mapped_pages, 0);
	cr_assert_eq(s.maps, 2);
	cr_assert_eq(s.map_errors, 2);
	cr_assert_eq(s.mapped_pages, 3);

	DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, G, 0), -EINVAL);
	du_unmap(dom, iova, 2, 0);
	DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 2 * G, 0), -EINVAL);
	du_unmap(dom, (iovaq_iova_t)(uintptr_t)buf2, 1, 0);
	/* The buffer may be mapped again once unmapped. */
	cr_assert_eq(du_map(dom, buf, 2), iova);
	du_unmap(dom, iova, 2, 0);
	DU_OK(iovaq_domain_sync(dom));

	sc = du_simc(be);
	struct iovaq_window_report w = du_win(dom);

	cr_assert_eq(sc.maps + sc.unmaps + sc.flushes, 0, "passthrough used the backend");
	cr_assert_eq(w.unsafe_reuse, 3, "every passthrough unmap is an unsafe reuse");
	cr_assert_eq(du_stats(dom).mapped_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
	free(buf2);
}

/* ------------------------------------------------------------------------------------ */
/* Bounds                                                                               */
/* ------------------------------------------------------------------------------------ */

/* max_reachable_pages: the queue flushes before the reachable pages would exceed it. */
Test(bounds, reachable_pages)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .max_reachable_pages = 16);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(4, 1);
	enum { N = 64 };
	iovaq_iova_t v[N];
	uint64_t pg[N];

	for (int i = 0; i < N; i++) {
		pg[i] = 1 + (uint64_t)(i % 4);
		v[i] = du_map(dom, buf, pg[i]);
	}
	for (int i = 0; i < N; i++) {
		du_unmap(dom, v[i], pg[i], 0);
		cr_assert_leq(du_win(dom).reachable_pages, 16, "reachable pages above the bound");
		cr_assert_leq(du_stats(dom).queued_pages, 16);
		if (i % 8 == 0)
			DU_CHECK(dom);
	}
	DU_OK(iovaq_domain_sync(dom));

	struct iovaq_window_report w = du_win(dom);

	cr_assert_leq(w.reachable_pages_max, 16, "reachable_pages_max %" PRIu64 " > 16",
		      w.reachable_pages_max);
	cr_assert_gt(du_stats(dom).flush_reachable, 0);
	cr_assert_eq(w.violations, 0);
	cr_assert_eq(w.max_reachable_pages, 16);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * A strict unmap larger than max_reachable_pages: its window is the call itself, which strict
 * cannot shorten, so it is no bound violation (the report must stay 0 under strict).
 */
Test(bounds, strict_large_unmap_is_no_violation)
{
	struct iovaq_backend *be = du_sim_open(0);
	/* A big window: only the pages bound is under test (valgrind makes calls slow). */
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT,
		   .max_reachable_pages = 16, .max_window_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(32, 1);

	du_unmap(dom, du_map(dom, buf, 32), 32, 0);
	cr_assert_eq(du_win(dom).violations, 0,
		     "a strict unmap of 32 pages counted as a violation of a 16-page bound");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * A deferred release larger than max_reachable_pages: the queue cannot hold it within the
 * bound, so it must be made safe before the unmap returns (as strict would), not reported as a
 * violation afterwards.
 */
Test(bounds, deferred_oversize_release_kept_in_bound)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .max_reachable_pages = 16);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(32, 1);

	du_unmap(dom, du_map(dom, buf, 32), 32, 0);
	cr_assert_leq(du_win(dom).reachable_pages, 16,
		      "a 32-page release left queued under a 16-page bound");
	cr_assert_eq(du_win(dom).violations, 0);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* A small ring: a full ring flushes (flush_full), never grows past its entries. */
Test(bounds, ring_full)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_entries = 8);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);
	enum { N = 100 };
	iovaq_iova_t v[N];

	for (int i = 0; i < N; i++)
		v[i] = du_map(dom, buf, 1);
	for (int i = 0; i < N; i++)
		du_unmap(dom, v[i], 1, 0);
	DU_CHECK(dom);

	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_geq(s.flush_full, N / 8 - 1, "flush_full %" PRIu64, s.flush_full);
	cr_assert_leq(s.queued_entries_max, 8, "queue held %" PRIu64 " entries in an 8-entry ring",
		      s.queued_entries_max);
	cr_assert_leq(s.queued_pages, 8);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_win(dom).violations, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * The thread flusher keeps max_window_ns while the caller idles: after ~3x the bound nothing
 * is queued, the flush was an age flush and no window exceeded the bound.
 */
Test(bounds, age_thread_flusher)
{
	struct iovaq_backend *be = du_sim_open(0);
	const uint64_t bound = (DU_SANITIZED ? 100 : 20) * MS;
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .flusher = IOVAQ_FLUSHER_THREAD, .max_window_ns = bound);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);
	iovaq_iova_t v[8];
	uint64_t deadline, t0, late;

	for (int i = 0; i < 8; i++)
		v[i] = du_map(dom, buf, 1);
	for (int i = 0; i < 8; i++)
		du_unmap(dom, v[i], 1, 0);
	t0 = du_now();
	du_sleep_ns(3 * bound);
	late = du_now() - t0 - 3 * bound; /* how late this thread woke: the machine's load */
	deadline = du_now() + 5000 * MS;
	while (du_stats(dom).queued_pages && du_now() < deadline)
		du_sleep_ns(MS);

	struct iovaq_domain_stats s = du_stats(dom);
	struct iovaq_window_report w = du_win(dom);

	cr_assert_eq(s.queued_pages, 0, "the flusher thread did not flush an idle queue");
	cr_assert_geq(s.flush_age, 1);
	cr_assert_eq(s.flush_sync + s.flush_full + s.flush_reachable, 0);
	cr_assert_eq(w.releases, 8);
	if (late < bound / 8 && !getenv("IOVAQ_TEST_SLOW")) {
		cr_assert_eq(w.violations, 0, "window %" PRIu64 " ns over the %" PRIu64 " ns bound",
			     w.window_max_ns, bound);
		cr_assert_leq(w.window_max_ns, bound);
	} else {
		fprintf(stderr, "bounds::age_thread_flusher: woke %" PRIu64 " ns late (loaded "
			"machine) or IOVAQ_TEST_SLOW: the window bound is not judged\n", late);
	}
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * The inline flusher flushes only when called: an idle queue outlives the bound, the next
 * call flushes it (an age flush), and the report tells the truth (every window a violation).
 */
Test(bounds, age_inline_flusher)
{
	struct iovaq_backend *be = du_sim_open(0);
	const uint64_t bound = 100 * MS; /* the 16 calls below must take well under 3/4 of it */
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = bound);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);
	iovaq_iova_t v[8], x;

	for (int i = 0; i < 8; i++)
		v[i] = du_map(dom, buf, 1);
	for (int i = 0; i < 8; i++)
		du_unmap(dom, v[i], 1, 0);
	du_sleep_ns(3 * bound);
	cr_assert_eq(du_stats(dom).queued_pages, 8, "nothing should flush without a call");
	cr_assert_eq(du_stats(dom).flush_age, 0);
	x = du_map(dom, buf, 1); /* the next call */

	struct iovaq_domain_stats s = du_stats(dom);
	struct iovaq_window_report w = du_win(dom);

	cr_assert_eq(s.queued_pages, 0);
	cr_assert_eq(s.flush_age, 1);
	cr_assert_geq(w.window_max_ns, 3 * bound);
	cr_assert_eq(w.violations, 8, "each of the 8 late releases is a violation, got %" PRIu64,
		     w.violations);
	du_unmap(dom, x, 1, 0);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Planner                                                                              */
/* ------------------------------------------------------------------------------------ */

struct batch {
	struct iovaq_sim_counters c0, c1;
	struct iovaq_domain_stats s0, s1;
};

/* Map @n one-page buffers, unmap them all, sync; record counters around the sync. */
static struct batch unmap_batch(struct iovaq_backend *be, struct iovaq_domain *dom, int n)
{
	void *buf = du_buf(1, 5);
	iovaq_iova_t *v = calloc((size_t)n, sizeof(*v));
	struct batch b;

	cr_assert_not_null(v);
	for (int i = 0; i < n; i++)
		v[i] = du_map(dom, buf, 1);
	for (int i = 0; i < n; i++) {
		/* Scatter the order, so that the planner has to merge. */
		int k = (int)(((uint64_t)i * 7919) % (uint64_t)n);

		du_unmap(dom, v[k], 1, 0);
	}
	b.c0 = du_simc(be);
	b.s0 = du_stats(dom);
	DU_OK(iovaq_domain_sync(dom));
	b.c1 = du_simc(be);
	b.s1 = du_stats(dom);
	for (int i = 0; i < n; i += n / 16 + 1)
		du_dma_faults(be, v[i], 1);
	DU_CHECK(dom);
	free(v);
	free(buf);
	return b;
}

#define DELTA(b, f) ((b).c1.f - (b).c0.f)
#define SDELTA(b, f) ((b).s1.f - (b).s0.f)

/* Native sim: a batch above the threshold becomes one domain-wide command. */
Test(planner, domain_wide_above_threshold)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct batch b = unmap_batch(be, dom, 600);

	cr_assert_eq(SDELTA(b, inval_domain_cmds), 1, "600 granules > 512: one domain command");
	cr_assert_eq(SDELTA(b, inval_cmds), 1, "%" PRIu64 " commands", SDELTA(b, inval_cmds));
	cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_DOMAIN]), 1);
	cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_PAGES]), 0);
	cr_assert_eq(SDELTA(b, invalidated_pages), 600);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
}

/* Below the threshold: page-selective commands only. A lower threshold escalates earlier. */
Test(planner, page_selective_below_threshold)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct batch b = unmap_batch(be, dom, 100);

	cr_assert_eq(SDELTA(b, inval_domain_cmds), 0);
	cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_DOMAIN]), 0);
	cr_assert_geq(SDELTA(b, inval_cmds), 1);
	cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_PAGES]), SDELTA(b, inval_cmds),
		     "the domain's count disagrees with the commands the sim executed");
	cr_assert_leq(SDELTA(b, inval_cmds), 100);
	iovaq_domain_destroy(dom);

	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .domain_threshold = 64);
	dom = du_domain(&o);
	b = unmap_batch(be, dom, 100);
	cr_assert_eq(SDELTA(b, inval_domain_cmds), 1, "100 > threshold 64: one domain command");
	cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_DOMAIN]), 1);
	b = unmap_batch(be, dom, 40);
	cr_assert_eq(SDELTA(b, inval_domain_cmds), 0, "40 < threshold 64");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
}

/*
 * Nested with caching mode: a domain-wide command makes the hypervisor re-walk everything, so
 * the planner batches with page-selective commands only, whatever the threshold and policy.
 */
Test(planner, caching_mode_never_domain_wide)
{
	struct iovaq_backend *be = du_sim_open(IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE);
	static const uint32_t pol[] = { IOVAQ_POLICY_DEFERRED, IOVAQ_POLICY_SAFE_DEFERRED };

	for (int p = 0; p < 2; p++) {
		for (int t = 0; t < 2; t++) {
			IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = pol[p],
				   .max_window_ns = BIG_WINDOW, .domain_threshold = t ? 1 : 0);
			struct iovaq_domain *dom = du_domain(&o);
			struct batch b = unmap_batch(be, dom, 700);
			uint64_t c[64];

			cr_assert_eq(SDELTA(b, inval_domain_cmds), 0, "%s threshold %d",
				     policy_name[pol[p]], t);
			cr_assert_geq(SDELTA(b, inval_cmds), 1);
			cr_assert_eq(DELTA(b, inval_cmds[IOVAQ_INVAL_PAGES]),
				     SDELTA(b, inval_cmds));
			cr_assert_eq(SDELTA(b, invalidated_pages), 700);
			while (iovaq_domain_poll(dom, c, 64) > 0)
				;
			iovaq_domain_destroy(dom);
		}
	}
	cr_assert_eq(du_simc(be).inval_cmds[IOVAQ_INVAL_DOMAIN], 0,
		     "a domain-wide command under caching mode");
	cr_assert_eq(du_simc(be).inval_cmds[IOVAQ_INVAL_GLOBAL], 0);
	iovaq_backend_close(be);
}

/* Even destroy's clean-up of leftover mappings must not go domain-wide under caching mode. */
Test(planner, caching_mode_destroy_not_domain_wide)
{
	struct iovaq_backend *be = du_sim_open(IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(2, 1);

	du_map(dom, buf, 2);
	iovaq_domain_destroy(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	cr_assert_eq(du_simc(be).inval_cmds[IOVAQ_INVAL_DOMAIN], 0,
		     "destroy invalidated leftovers with a domain-wide command under caching mode");
	iovaq_backend_close(be);
	free(buf);
}

/* A size-aligned range is exactly one page-selective command (an exact VT-d address mask). */
Test(planner, size_aligned_one_command)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	void *buf = du_buf(256, 1);
	/* Keep a few mappings around so that ranges are not trivially at IOVA 0x1000. */
	iovaq_iova_t keep[3] = { du_map(dom, buf, 1), du_map(dom, buf, 2), du_map(dom, buf, 1) };
	uint64_t keep_pg[3] = { 1, 2, 1 };

	for (uint64_t pages = 1; pages <= 256; pages *= 2) {
		iovaq_iova_t iova = du_map(dom, buf, pages);
		struct iovaq_sim_counters c0, c1;
		struct iovaq_domain_stats s0, s1;

		cr_assert_eq(iova % (pages * G), 0, "%" PRIu64 "-page range at 0x%" PRIx64
			     " is not size-aligned", pages, iova);
		du_dma_ok(be, iova, pages, NULL);
		c0 = du_simc(be);
		s0 = du_stats(dom);
		du_unmap(dom, iova, pages, 0);
		c1 = du_simc(be);
		s1 = du_stats(dom);
		cr_assert_eq(s1.inval_cmds - s0.inval_cmds, 1, "%" PRIu64 " pages: %" PRIu64
			     " commands", pages, s1.inval_cmds - s0.inval_cmds);
		cr_assert_eq(c1.inval_cmds[IOVAQ_INVAL_PAGES] - c0.inval_cmds[IOVAQ_INVAL_PAGES],
			     1);
		cr_assert_eq(c1.flushes - c0.flushes, 1);
		du_dma_faults(be, iova, pages);
	}
	/* An unaligned size is tiled exactly, never widened past what was released. */
	{
		iovaq_iova_t iova = du_map(dom, buf, 3);

		du_dma_ok(be, iova, 3, NULL);
		du_unmap(dom, iova, 3, 0);
		du_dma_faults(be, iova, 3);
	}
	teardown_all(be, dom, keep, keep_pg, 3);
	free(buf);
}

/*
 * The leaf-only hint: used when the unmap freed no page-table page, never when it did (the
 * sim counts a wrong hint in bad_leaf_invals and faults a walk through a freed table).
 */
Test(planner, leaf_hint)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	void *small = du_buf(1, 1);
	void *big = du_buf_aligned(512, 2u << 20, 2);
	struct iovaq_sim_counters c0, c1;
	struct iovaq_domain_stats s0, s1;
	iovaq_iova_t keep = du_map(dom, small, 1), iova;

	/* One page out of a table that stays: a leaf-only command. */
	iova = du_map(dom, small, 1);
	du_dma_ok(be, iova, 1, small);
	c0 = du_simc(be);
	s0 = du_stats(dom);
	du_unmap(dom, iova, 1, 0);
	c1 = du_simc(be);
	s1 = du_stats(dom);
	cr_assert_eq(c1.inval_leaf - c0.inval_leaf, 1, "no leaf hint for a leaf-only unmap");
	cr_assert_eq(s1.inval_leaf_cmds - s0.inval_leaf_cmds, 1);
	du_dma_faults(be, iova, 1);

	/* 2 MiB, 2 MiB-aligned: the unmap empties and frees a whole level-1 table. */
	iova = du_map(dom, big, 512);
	cr_assert_eq(iova % (2u << 20), 0);
	du_dma_ok(be, iova, 512, big); /* fills the paging-structure caches */
	c0 = du_simc(be);
	s0 = du_stats(dom);
	du_unmap(dom, iova, 512, 0);
	c1 = du_simc(be);
	s1 = du_stats(dom);
	cr_assert_eq(c1.inval_leaf - c0.inval_leaf, 0, "leaf hint after a table was freed");
	cr_assert_eq(s1.inval_leaf_cmds - s0.inval_leaf_cmds, 0);
	cr_assert_geq(c1.table_pages_freed - c0.table_pages_freed, 1,
		      "the table was not freed: the test does not test the hint");
	du_drain_faults(be, 0);
	du_dma_faults(be, iova, 1);
	du_dma_faults(be, iova + 511 * G, 1);
	cr_assert_eq(du_drain_faults(be, IOVAQ_FAULT_STALE_TABLE), 0,
		     "a walk went through a freed table");
	du_unmap(dom, keep, 1, 0);
	iovaq_domain_destroy(dom); /* one domain per backend at a time */

	/* Deferred: one batch with a freed table and a leaf-only range. */
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .domain_threshold = 1u << 20);
	struct iovaq_domain *d2 = du_domain(&o);
	iovaq_iova_t a = du_map(d2, big, 512), b = du_map(d2, small, 1);

	du_dma_ok(be, a, 512, big);
	du_dma_ok(be, b, 1, small);
	du_unmap(d2, a, 512, 0);
	du_unmap(d2, b, 1, 0);
	c0 = du_simc(be);
	DU_OK(iovaq_domain_sync(d2));
	c1 = du_simc(be);
	cr_assert_leq(c1.inval_leaf - c0.inval_leaf, 1);
	du_drain_faults(be, 0);
	du_dma_faults(be, a, 1);
	du_dma_faults(be, a + 300 * G, 1);
	du_dma_faults(be, b, 1);
	cr_assert_eq(du_drain_faults(be, IOVAQ_FAULT_STALE_TABLE), 0);
	DU_CHECK(d2);
	iovaq_domain_destroy(d2);

	cr_assert_eq(du_simc(be).bad_leaf_invals, 0, "a leaf-only command covered a freed table");
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_backend_close(be);
	free(small);
	free(big);
}

/* ------------------------------------------------------------------------------------ */
/* Bad input                                                                            */
/* ------------------------------------------------------------------------------------ */

Test(bad_input, unmap)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED, IOVAQ_POLICY_PASSTHROUGH };

	for (int p = 0; p < 4; p++) {
		struct iovaq_backend *be = du_sim_open(0);
		struct iovaq_domain *dom = dom_quiet(be, pol[p]);
		void *buf = du_buf(2, 1);
		iovaq_iova_t iova = du_map(dom, buf, 2);
		struct iovaq_sim_counters c0 = du_simc(be);
		struct iovaq_domain_stats s;
		uint64_t err0 = du_stats(dom).unmap_errors;

		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova + G, G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova + G, 2 * G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, 0xdead000, G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, 0, G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 4 * G, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 0, 0), -EINVAL);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 2 * G + 1, 0), -EINVAL);
		cr_assert_eq(iovaq_domain_unmap(NULL, iova, 2 * G, 0), -EINVAL);

		/* Nothing lost: still mapped, in the domain and in the backend. */
		s = du_stats(dom);
		cr_assert_eq(s.mapped_pages, 2, "%s: mapping lost", policy_name[pol[p]]);
		cr_assert_eq(s.unmaps, 0);
		cr_assert_eq(s.queued_pages, 0);
		cr_assert_geq(s.unmap_errors - err0, 6);
		cr_assert_eq(du_simc(be).mapped_pages, c0.mapped_pages);
		cr_assert_eq(du_simc(be).unmaps, c0.unmaps);
		if (pol[p] != IOVAQ_POLICY_PASSTHROUGH)
			du_dma_ok(be, iova, 2, buf);

		du_unmap(dom, iova, 2, 0);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 2 * G, 0), -EINVAL); /* double */
		DU_OK(iovaq_domain_sync(dom));
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 2 * G, 0), -EINVAL);
		cr_assert_eq(du_stats(dom).unmaps, 1);
		iovaq_domain_destroy(dom);
		iovaq_backend_close(be);
		free(buf);
	}
}

Test(bad_input, map)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	uint8_t *buf = du_buf(2, 1);
	iovaq_iova_t x = 0x55;
	struct iovaq_stats sp0 = du_space_stats(dom);

	DU_EXPECT(dom, iovaq_domain_map(dom, buf, 0, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf + 1, G, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf + 512, G, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G + 1, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, 100, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, 0, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, 4, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, RW | 8, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, NULL, G, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	DU_EXPECT(dom, iovaq_domain_map(dom, buf, G, RW, IOVAQ_LIMIT_NONE, NULL), -EINVAL);
	cr_assert_eq(iovaq_domain_map(NULL, buf, G, RW, IOVAQ_LIMIT_NONE, &x), -EINVAL);
	cr_assert_eq(x, 0x55, "*iova written by a failed map");

	struct iovaq_stats sp1 = du_space_stats(dom);

	cr_assert_eq(sp1.allocated_granules, sp0.allocated_granules);
	cr_assert_eq(sp1.free_granules, sp0.free_granules);
	cr_assert_eq(du_stats(dom).maps, 0);
	cr_assert_eq(du_stats(dom).mapped_pages, 0);
	cr_assert_eq(du_simc(be).maps, 0);

	/* The limit is the device's DMA mask: the whole range lies at or below it. */
	{
		int err = iovaq_domain_map(dom, buf, G, RW, 0, &x);

		cr_assert(err == -EINVAL || err == -ENOSPC, "limit below the aperture: %d", err);
		cr_assert_eq(x, 0x55);
		DU_CHECK(dom);
		err = iovaq_domain_map(dom, buf, 2 * G, RW, 0xfffff, &x);
		cr_assert_eq(err, 0, "map below 1 MiB: %d", err);
		cr_assert_leq(x + 2 * G - 1, 0xfffff, "range 0x%" PRIx64 " beyond the limit", x);
		du_unmap(dom, x, 2, 0);
	}
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

static void dummy_complete(void *arg, uint64_t cookie)
{
	(void)arg;
	(void)cookie;
}

static void *null_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	(void)size;
	(void)align;
	return NULL;
}

static void null_free(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	(void)ptr;
	(void)size;
}

Test(bad_input, create)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *const sentinel = (struct iovaq_domain *)(uintptr_t)0x1;
	struct iovaq_domain *dom = sentinel;
	struct iovaq_range hole = { 0x100000, 0x1fffff };
	struct iovaq_alloc_hooks nohooks = { NULL, NULL, NULL };
	struct iovaq_alloc_hooks halfhooks = { null_alloc, NULL, NULL };
	struct iovaq_alloc_hooks nomem = { null_alloc, null_free, NULL };
	struct {
		struct iovaq_domain_opts o;
		uint64_t extra[2];
	} big;

#define BAD(field, value, err)                                                                   \
	do {                                                                                     \
		IOVAQ_OPTS(iovaq_domain_opts, o_, .backend = be);                                \
		o_.field = value;                                                                \
		cr_assert_eq(iovaq_domain_create(&o_, &dom), (err), "%s = %s", #field, #value);  \
		cr_assert_eq(dom, sentinel, "*out written by a failed create");                  \
	} while (0)
	BAD(backend, NULL, -EINVAL);
	BAD(policy, IOVAQ_POLICY_NR, -EINVAL);
	BAD(policy, 0x80000000u, -EINVAL);
	BAD(flusher, 2, -EINVAL);
	BAD(ring_layout, IOVAQ_RING_PERCPU + 1, -EINVAL);
	BAD(flags, 2, -EINVAL);
	BAD(flags, 1ull << 63, -EINVAL);
	BAD(n_reserved, 1, -EINVAL); /* reserved NULL */
	BAD(ring_entries, (1u << 24) + 1, -EINVAL);
	BAD(hooks, &nohooks, -EINVAL);
	BAD(hooks, &halfhooks, -EINVAL);
	BAD(hooks, &nomem, -ENOMEM);
	BAD(teardown_ns, 1000000, -EINVAL); /* optimistic teardown is deferred-only */
#undef BAD
	cr_assert_eq(iovaq_domain_create(NULL, &dom), -EINVAL);
	{
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be);

		cr_assert_eq(iovaq_domain_create(&o, NULL), -EINVAL);
		o.sz = 0;
		cr_assert_eq(iovaq_domain_create(&o, &dom), -EINVAL, "sz 0");
		o.sz = offsetof(struct iovaq_domain_opts, backend);
		cr_assert_eq(iovaq_domain_create(&o, &dom), -EINVAL, "sz without the backend");
		cr_assert_eq(dom, sentinel);
		/* An older caller's struct that ends after @backend: defaults (strict). */
		o.sz = offsetof(struct iovaq_domain_opts, backend) + sizeof(o.backend);
		o.policy = IOVAQ_POLICY_DEFERRED; /* beyond sz: ignored */
		DU_OK(iovaq_domain_create(&o, &dom));
		{
			void *buf = du_buf(1, 1);
			iovaq_iova_t v = du_map(dom, buf, 1);

			du_unmap(dom, v, 1, 0);
			cr_assert_eq(du_stats(dom).flush_strict, 1, "short opts: not strict");
			iovaq_domain_destroy(dom);
			free(buf);
		}
	}

	/* Trailing bytes: zero is fine, non-zero is -E2BIG. */
	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.backend = be;
	big.extra[1] = 1;
	dom = sentinel;
	cr_assert_eq(iovaq_domain_create(&big.o, &dom), -E2BIG);
	cr_assert_eq(dom, sentinel);
	big.extra[1] = 0;
	big.extra[0] = 1ull << 63;
	cr_assert_eq(iovaq_domain_create(&big.o, &dom), -E2BIG);
	big.extra[0] = 0;
	DU_OK(iovaq_domain_create(&big.o, &dom));
	iovaq_domain_destroy(dom);

	/* Reserved holes are never handed out; callbacks are accepted by any policy. */
	{
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .reserved = &hole, .n_reserved = 1,
			   .complete = dummy_complete, .policy = IOVAQ_POLICY_SAFE_DEFERRED);
		void *buf = du_buf(16, 1);
		iovaq_iova_t v[64];

		dom = du_domain(&o);
		for (int i = 0; i < 64; i++) {
			v[i] = du_map(dom, buf, 16);
			cr_assert(!du_overlap(v[i], 16, hole.start, (hole.last + 1 - hole.start) / G),
				  "0x%" PRIx64 " inside a reserved hole", v[i]);
		}
		iovaq_domain_destroy(dom);
		free(buf);
	}
	iovaq_domain_destroy(NULL);
	iovaq_backend_close(be);
}

Test(bad_input, stats_and_window_args)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	IOVAQ_OPTS(iovaq_domain_stats, s);
	IOVAQ_OPTS(iovaq_window_report, w);
	void *buf = du_buf(1, 1);
	struct {
		uint64_t sz;
		uint64_t maps;
		uint64_t canary[4];
	} shortst;

	cr_assert_eq(iovaq_domain_get_stats(NULL, &s), -EINVAL);
	cr_assert_eq(iovaq_domain_get_stats(dom, NULL), -EINVAL);
	cr_assert_eq(iovaq_domain_window(NULL, &w), -EINVAL);
	cr_assert_eq(iovaq_domain_window(dom, NULL), -EINVAL);
	s.sz = 0;
	cr_assert_eq(iovaq_domain_get_stats(dom, &s), -EINVAL);
	w.sz = sizeof(size_t);
	cr_assert_eq(iovaq_domain_window(dom, &w), -EINVAL);
	cr_assert_eq(iovaq_domain_sync(NULL), -EINVAL);
	cr_assert_eq(iovaq_domain_check(NULL), -EINVAL);

	/* An older caller's struct is filled up to its sz and not one byte further. */
	du_map(dom, buf, 1);
	memset(&shortst, 0xab, sizeof(shortst));
	shortst.sz = offsetof(struct iovaq_domain_stats, maps) + sizeof(uint64_t);
	DU_OK(iovaq_domain_get_stats(dom, (struct iovaq_domain_stats *)(void *)&shortst));
	cr_assert_eq(shortst.maps, 1);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(shortst.canary[i], 0xababababababababull, "stats overran sz");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Backend failures                                                                     */
/* ------------------------------------------------------------------------------------ */

/*
 * A failing flush under deferred: sync returns the error, the entries stay QUEUED and
 * reachable, their IOVAs are never handed out meanwhile, a later sync succeeds and the IOVAs
 * come back (the space holds nothing once the cache is drained).
 */
Test(backend_failure, deferred_flush_fails)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(4, 1);
	enum { N = 250 };
	static iovaq_iova_t v[N];
	static uint64_t pg[N];
	iovaq_iova_t q[3];
	const uint64_t qp[3] = { 1, 2, 4 };
	struct iovaq_sim_access r;

	for (int i = 0; i < 3; i++) {
		q[i] = du_map(dom, buf, qp[i]);
		du_dma_ok(be, q[i], qp[i], buf);
	}
	for (int i = 0; i < 3; i++)
		du_unmap(dom, q[i], qp[i], 0);

	struct iovaq_domain_stats s0 = du_stats(dom), s;

	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	DU_EXPECT(dom, iovaq_domain_sync(dom), -EIO);
	s = du_stats(dom);
	cr_assert_eq(s.queued_pages, 7, "entries dropped by a failed flush");
	cr_assert_eq(s.queued_pages, s0.queued_pages);
	cr_assert_eq(s.flush_errors, 1);
	cr_assert_eq(s.last_flush_error, -EIO);
	cr_assert_eq(s.flushes, s0.flushes);
	cr_assert_eq(du_win(dom).reachable_pages, 7);
	cr_assert_eq(du_win(dom).releases, 0);
	cr_assert_eq(du_dma(be, q[2], 4 * G, &r), 0, "not invalidated, still reachable");
	cr_assert_eq(r.stale_pages, 4);

	/* Never reused while queued. */
	for (int i = 0; i < N; i++) {
		pg[i] = i % 5 ? 1 : 4;
		v[i] = du_map(dom, buf, pg[i]);
		for (int k = 0; k < 3; k++)
			cr_assert(!du_overlap(v[i], pg[i], q[k], qp[k]),
				  "0x%" PRIx64 " handed out while QUEUED after a failed flush",
				  v[i]);
	}
	DU_CHECK(dom);

	/* The retry succeeds; then everything can be returned. */
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_stats(dom).queued_pages, 0);
	for (int k = 0; k < 3; k++)
		du_dma_faults(be, q[k], qp[k]);
	for (int i = 0; i < N; i++)
		du_unmap(dom, v[i], pg[i], 0);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0,
		     "%" PRIu64 " granules never came back", du_space_stats(dom).allocated_granules);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* A failing flush under strict: unmap returns the error, the range is QUEUED, sync retries. */
Test(backend_failure, strict_flush_fails)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	void *buf = du_buf(2, 1);
	iovaq_iova_t a = du_map(dom, buf, 2), v[100];
	uint64_t pg[100];
	struct iovaq_sim_access r;

	du_dma_ok(be, a, 2, buf);
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -ETIMEDOUT);
	DU_EXPECT(dom, iovaq_domain_unmap(dom, a, 2 * G, 0), -ETIMEDOUT);

	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_eq(s.queued_pages, 2, "a failed strict unmap must leave the range QUEUED");
	cr_assert_eq(s.mapped_pages, 0);
	cr_assert_eq(s.flush_errors, 1);
	cr_assert_eq(s.last_flush_error, -ETIMEDOUT);
	cr_assert_eq(du_win(dom).reachable_pages, 2);
	cr_assert_eq(du_dma(be, a, 2 * G, &r), 0);
	cr_assert_eq(r.stale_pages, 2, "not invalidated: still reachable");
	/* The mapping is gone (unmapped in the backend): a second unmap is a double unmap. */
	DU_EXPECT(dom, iovaq_domain_unmap(dom, a, 2 * G, 0), -EINVAL);
	for (int i = 0; i < 100; i++) {
		pg[i] = 1;
		v[i] = du_map(dom, buf, 1);
		cr_assert(!du_overlap(v[i], 1, a, 2), "QUEUED range handed out after a failed "
			  "strict flush");
	}
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_stats(dom).queued_pages, 0);
	du_dma_faults(be, a, 2);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	cr_assert_eq(du_win(dom).releases, 1);
	teardown_all(be, dom, v, pg, 100);
	free(buf);
}

/* Safe-deferred: no cookie for a failed flush; it comes with the successful retry. */
Test(backend_failure, safe_deferred_cookie_waits)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_SAFE_DEFERRED);
	void *buf = du_buf(1, 1);
	uint64_t c[4];

	du_unmap(dom, du_map(dom, buf, 1), 1, 9);
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	DU_EXPECT(dom, iovaq_domain_sync(dom), -EIO);
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "cookie handed back after a failed flush");
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 1);
	cr_assert_eq(c[0], 9);
	cr_assert_eq(du_win(dom).unsafe_reuse, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* A failing backend map changes nothing: no mapping, no IOVA leaked, counted as an error. */
Test(backend_failure, map_fails)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED };

	for (int p = 0; p < 3; p++) {
		struct iovaq_backend *be = du_sim_open(0);
		struct iovaq_domain *dom = dom_quiet(be, pol[p]);
		void *buf = du_buf(4, 1);
		iovaq_iova_t x = 0x99, keep = du_map(dom, buf, 1);

		du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -EIO);
		DU_EXPECT(dom, iovaq_domain_map(dom, buf, 4 * G, RW, IOVAQ_LIMIT_NONE, &x), -EIO);
		cr_assert_eq(x, 0x99);

		struct iovaq_domain_stats s = du_stats(dom);

		cr_assert_eq(s.maps, 1);
		cr_assert_eq(s.mapped_pages, 1);
		cr_assert_eq(s.map_errors, 1);
		cr_assert_eq(du_simc(be).mapped_pages, 1);
		x = du_map(dom, buf, 4);
		du_unmap(dom, x, 4, 0);
		du_unmap(dom, keep, 1, 0);
		DU_OK(iovaq_domain_sync(dom));
		DU_CHECK(dom);
		iovaq_cache_drain(iovaq_domain_cache(dom));
		cr_assert_eq(du_space_stats(dom).allocated_granules, 0, "IOVA leaked");
		iovaq_domain_destroy(dom);
		iovaq_backend_close(be);
		free(buf);
	}
}

/* A failing backend unmap changes nothing: the mapping stays and can be unmapped later. */
Test(backend_failure, unmap_fails)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED };

	for (int p = 0; p < 3; p++) {
		struct iovaq_backend *be = du_sim_open(0);
		struct iovaq_domain *dom = dom_quiet(be, pol[p]);
		void *buf = du_buf(2, 1);
		iovaq_iova_t iova = du_map(dom, buf, 2);
		uint64_t c[4];

		du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 1, -EREMOTEIO);
		DU_EXPECT(dom, iovaq_domain_unmap(dom, iova, 2 * G, 5), -EREMOTEIO);

		struct iovaq_domain_stats s = du_stats(dom);

		cr_assert_eq(s.mapped_pages, 2, "%s: mapping lost", policy_name[pol[p]]);
		cr_assert_eq(s.unmaps, 0);
		cr_assert_eq(s.unmap_errors, 1);
		cr_assert_eq(s.queued_pages, 0);
		cr_assert_eq(du_win(dom).reachable_pages, 0);
		cr_assert_eq(du_simc(be).mapped_pages, 2);
		du_dma_ok(be, iova, 2, buf);
		DU_OK(iovaq_domain_sync(dom));
		cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "cookie of a failed unmap");
		du_unmap(dom, iova, 2, 5);
		DU_OK(iovaq_domain_sync(dom));
		du_dma_faults(be, iova, 2);
		cr_assert_eq(iovaq_domain_poll(dom, c, 4), pol[p] == IOVAQ_POLICY_SAFE_DEFERRED);
		DU_CHECK(dom);
		iovaq_domain_destroy(dom);
		iovaq_backend_close(be);
		free(buf);
	}
}

/*
 * Two failures at once in map's undo path: the mapping table cannot grow (ENOMEM), and the
 * invalidation of the undone range fails. The IOVA must not leak (the invariant check counts
 * an allocation in no state as a leak).
 */
Test(backend_failure, map_undo_with_failing_flush)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct du_hooks h;
	struct iovaq_alloc_hooks hk;
	void *buf = du_buf(1, 1);
	int tried = 0;

	du_hooks_init(&h);
	hk = du_hooks_of(&h);
	/*
	 * A fresh domain's first map grows its mapping table after the backend map: find the
	 * alloc call whose failure makes map take its undo path (the backend map happened).
	 */
	for (long n = 1; n < 64 && !tried; n++) {
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
			   .max_window_ns = BIG_WINDOW, .hooks = &hk);
		struct iovaq_domain *dom = du_domain(&o);
		uint64_t maps0 = du_simc(be).maps;
		iovaq_iova_t x;
		int err, chk;

		du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
		du_hooks_arm(&h, n);
		err = iovaq_domain_map(dom, buf, G, RW, IOVAQ_LIMIT_NONE, &x);
		du_hooks_arm(&h, 0);
		du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 0, -EIO);
		if (err && du_simc(be).maps == maps0 + 1) {
			tried = 1;
			cr_assert_eq(err, -ENOMEM, "map: %d", err);
			chk = iovaq_domain_check(dom);
			cr_assert_eq(chk, 0, "a failed map whose undo flush failed leaked its IOVA "
				     "(iovaq_domain_check: %d)", chk);
			cr_assert_eq(du_stats(dom).mapped_pages, du_simc(be).mapped_pages,
				     "the backend holds a mapping the domain does not know");
		}
		if (!err)
			du_unmap(dom, x, 1, 0);
		iovaq_domain_destroy(dom);
		cr_assert_eq(du_simc(be).mapped_pages, 0);
	}
	cr_assert(tried, "no allocation failure reached map's undo path");
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Destroy                                                                              */
/* ------------------------------------------------------------------------------------ */

Test(destroy, flushes_pending_and_unmaps_leftovers)
{
	static const uint32_t fl[] = { IOVAQ_FLUSHER_INLINE, IOVAQ_FLUSHER_THREAD };

	for (int f = 0; f < 2; f++) {
		struct iovaq_backend *be = du_sim_open(0);
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
			   .flusher = fl[f], .max_window_ns = BIG_WINDOW);
		struct iovaq_domain *dom = du_domain(&o);
		void *buf = du_buf(4, 1);
		iovaq_iova_t v[4];
		uint64_t stale0;

		for (int i = 0; i < 4; i++) {
			v[i] = du_map(dom, buf, (uint64_t)i + 1);
			du_dma_ok(be, v[i], (uint64_t)i + 1, buf);
		}
		du_unmap(dom, v[0], 1, 0);
		du_unmap(dom, v[1], 2, 0);
		cr_assert_eq(du_stats(dom).queued_pages, 3);
		stale0 = du_simc(be).stale_hits;
		iovaq_domain_destroy(dom);

		struct iovaq_sim_counters c = du_simc(be);

		cr_assert_eq(c.mapped_pages, 0, "destroy left %" PRIu64 " pages mapped",
			     c.mapped_pages);
		for (int i = 0; i < 4; i++)
			du_dma_faults(be, v[i], (uint64_t)i + 1);
		cr_assert_eq(du_simc(be).stale_hits, stale0, "destroy left stale translations");
		iovaq_backend_close(be);
		free(buf);
	}
}

Test(destroy, delivers_pending_completions)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct cbctx c;

	cb_init(&c, be, -1);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_SAFE_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .complete = cb_record, .complete_arg = &c);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);

	for (int i = 0; i < 3; i++)
		du_unmap(dom, du_map(dom, buf, 1), 1, 20 + (uint64_t)i);
	cr_assert_eq(cb_count(&c), 0);
	iovaq_domain_destroy(dom);
	cr_assert_eq(cb_count(&c), 3, "destroy delivered %d of 3 completions", cb_count(&c));
	cr_assert_eq(c.cookies[0], 20);
	cr_assert_eq(c.cookies[2], 22);
	iovaq_backend_close(be);
	free(buf);
	free(c.nbuf);
}

/* A final flush that fails: destroy still frees everything and unmaps what it can. */
Test(destroy, final_flush_fails)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(1, 1);

	du_unmap(dom, du_map(dom, buf, 1), 1, 0);
	du_map(dom, buf, 1);
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	iovaq_domain_destroy(dom); /* ASan: nothing leaks */
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_backend_close(be);
	free(buf);
}

/* Start and stop the flusher thread many times, with work queued each time. */
Test(destroy, thread_flusher_start_stop)
{
	struct iovaq_backend *be = du_sim_open(0);
	void *buf = du_buf(1, 1);

	for (int i = 0; i < 30; i++) {
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be,
			   .policy = i % 2 ? IOVAQ_POLICY_DEFERRED : IOVAQ_POLICY_SAFE_DEFERRED,
			   .flusher = IOVAQ_FLUSHER_THREAD, .max_window_ns = (uint64_t)(i % 3) * (uint64_t)MS);
		struct iovaq_domain *dom = du_domain(&o);

		for (int k = 0; k < i % 5; k++)
			du_unmap(dom, du_map(dom, buf, 1), 1, 0);
		iovaq_domain_destroy(dom);
		cr_assert_eq(du_simc(be).mapped_pages, 0);
	}
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* JSON                                                                                 */
/* ------------------------------------------------------------------------------------ */

/* A small JSON validator (RFC 8259 grammar, no semantic checks). */
struct jp {
	const char *s;
	int depth;
};

static void jws(struct jp *p)
{
	while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r')
		p->s++;
}

static int jvalue(struct jp *p);

static int jstring(struct jp *p)
{
	if (*p->s++ != '"')
		return 0;
	while (*p->s && *p->s != '"') {
		if ((unsigned char)*p->s < 0x20)
			return 0;
		if (*p->s == '\\') {
			p->s++;
			if (*p->s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p->s[i]))
						return 0;
				p->s += 4;
			} else if (!*p->s || !strchr("\"\\/bfnrt", *p->s)) {
				return 0;
			}
		}
		p->s++;
	}
	return *p->s++ == '"';
}

static int jnumber(struct jp *p)
{
	const char *s = p->s;

	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (isdigit((unsigned char)*s))
			s++;
	else
		return 0;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	p->s = s;
	return 1;
}

static int jcontainer(struct jp *p, char open, char close)
{
	if (*p->s++ != open || ++p->depth > 32)
		return 0;
	jws(p);
	if (*p->s == close) {
		p->s++;
		p->depth--;
		return 1;
	}
	for (;;) {
		jws(p);
		if (open == '{') {
			if (!jstring(p))
				return 0;
			jws(p);
			if (*p->s++ != ':')
				return 0;
		}
		if (!jvalue(p))
			return 0;
		jws(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s++ != close)
			return 0;
		p->depth--;
		return 1;
	}
}

static int jvalue(struct jp *p)
{
	jws(p);
	switch (*p->s) {
	case '{':
		return jcontainer(p, '{', '}');
	case '[':
		return jcontainer(p, '[', ']');
	case '"':
		return jstring(p);
	case 't':
		return !strncmp(p->s, "true", 4) ? (p->s += 4, 1) : 0;
	case 'f':
		return !strncmp(p->s, "false", 5) ? (p->s += 5, 1) : 0;
	case 'n':
		return !strncmp(p->s, "null", 4) ? (p->s += 4, 1) : 0;
	default:
		return jnumber(p);
	}
}

static int json_valid(const char *s)
{
	struct jp p = { s, 0 };

	if (!jvalue(&p))
		return 0;
	jws(&p);
	return *p.s == '\0';
}

/* The unsigned value after "@key": in @json, or -1 if the key is missing. */
static long long json_u(const char *json, const char *key)
{
	char pat[64];
	const char *at;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	at = strstr(json, pat);
	return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

Test(json, valid_with_window_percentiles)
{
	cr_assert(json_valid("{\"a\":[1,-2.5e3,\"x\\n\",true,null,{}]}"));
	cr_assert(!json_valid("{\"a\":1,}"));
	cr_assert(!json_valid("{\"a\" 1}"));
	cr_assert(!json_valid("{\"a\":01}"));

	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(2, 1);
	char small[16], *out;
	const char *w_ns;
	int n;

	for (int i = 0; i < 5; i++)
		du_unmap(dom, du_map(dom, buf, 2), 2, 0);
	du_sleep_ns(MS / 4);
	DU_OK(iovaq_domain_sync(dom));
	du_map(dom, buf, 1);

	n = iovaq_domain_json(dom, NULL, 0);
	cr_assert_gt(n, 0, "json measure: %d", n);
	out = malloc((size_t)n + 1);
	cr_assert_not_null(out);
	memset(out, 'x', (size_t)n + 1);
	cr_assert_eq(iovaq_domain_json(dom, out, (size_t)n + 1), n);
	cr_assert_eq(strlen(out), (size_t)n);
	cr_assert(json_valid(out), "invalid JSON: %s", out);

	struct iovaq_window_report w = du_win(dom);
	struct iovaq_domain_stats s = du_stats(dom);

	cr_assert_not_null(strstr(out, "\"policy\":\"deferred\""), "%s", out);
	cr_assert_not_null(strstr(out, "\"backend\":\"sim\""), "%s", out);
	w_ns = strstr(out, "\"window_ns\":{");
	cr_assert_not_null(w_ns, "no window_ns object: %s", out);
	cr_assert_eq(json_u(w_ns, "p50"), (long long)w.window_p50_ns);
	cr_assert_eq(json_u(w_ns, "p99"), (long long)w.window_p99_ns);
	cr_assert_eq(json_u(w_ns, "p999"), (long long)w.window_p999_ns);
	cr_assert_eq(json_u(w_ns, "max"), (long long)w.window_max_ns);
	cr_assert_gt(w.window_max_ns, 0);
	cr_assert_eq(json_u(out, "unsafe_reuse"), 5);
	cr_assert_eq(json_u(out, "violations"), 0);
	cr_assert_eq(json_u(out, "reachable_pages_max"), (long long)w.reachable_pages_max);
	cr_assert_eq(json_u(out, "releases"), 5);
	cr_assert_eq(json_u(out, "maps"), (long long)s.maps);
	cr_assert_eq(json_u(out, "mapped_pages"), 1);
	cr_assert_eq(json_u(out, "inval_cmds"), (long long)s.inval_cmds);
	cr_assert_eq(json_u(out, "max_window_ns"), (long long)BIG_WINDOW);

	/* snprintf semantics: truncated but terminated, full length returned. */
	memset(small, 'x', sizeof(small));
	cr_assert_eq(iovaq_domain_json(dom, small, sizeof(small)), n);
	cr_assert_eq(small[15], '\0');
	cr_assert_eq(strncmp(small, out, 15), 0);
	memset(small, 'x', sizeof(small));
	cr_assert_eq(iovaq_domain_json(dom, small, 1), n);
	cr_assert_eq(small[0], '\0');
	cr_assert_eq(small[1], 'x', "json wrote past len");
	cr_assert_eq(iovaq_domain_json(dom, NULL, 5), -EINVAL);
	cr_assert_eq(iovaq_domain_json(NULL, small, sizeof(small)), -EINVAL);
	free(out);
	iovaq_domain_destroy(dom); /* one domain per backend at a time */

	/* Every policy's JSON is valid, before and after work. */
	for (uint32_t p = 0; p < IOVAQ_POLICY_NR; p++) {
		struct iovaq_domain *d2 = dom_quiet(be, p);
		char jb[4096];

		cr_assert_lt(iovaq_domain_json(d2, jb, sizeof(jb)), (int)sizeof(jb));
		cr_assert(json_valid(jb), "%s: %s", policy_name[p], jb);
		du_unmap(d2, du_map(d2, buf, 1), 1, 0);
		cr_assert_lt(iovaq_domain_json(d2, jb, sizeof(jb)), (int)sizeof(jb));
		cr_assert(json_valid(jb), "%s: %s", policy_name[p], jb);
		iovaq_domain_destroy(d2);
	}
	iovaq_backend_close(be);
	free(buf);
}

/* Percentiles: with one short and one long window, p50 is the short one (within 1/8). */
Test(json, window_percentiles_track_samples)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	void *buf = du_buf(1, 1);
	iovaq_iova_t a = du_map(dom, buf, 1), b = du_map(dom, buf, 1);
	uint64_t t0, t1, t2, t3;

	t0 = du_now();
	du_unmap(dom, a, 1, 0); /* long window: ~8 ms */
	du_sleep_ns(8 * MS);
	t1 = du_now();
	du_unmap(dom, b, 1, 0); /* short window */
	t2 = du_now();
	DU_OK(iovaq_domain_sync(dom));
	t3 = du_now();

	struct iovaq_window_report w = du_win(dom);
	uint64_t short_max = t3 - t1;

	cr_assert_eq(w.releases, 2);
	cr_assert_geq(w.window_max_ns, t2 - t0 - (t2 - t1));
	cr_assert_leq(w.window_max_ns, t3 - t0);
	cr_assert_leq(w.window_p50_ns, short_max + short_max / 8 + 1,
		      "p50 %" PRIu64 " is not the short window (< %" PRIu64 ")", w.window_p50_ns,
		      short_max);
	cr_assert_eq(w.window_p99_ns, w.window_max_ns);
	cr_assert_geq(w.exposure_page_ns, w.window_max_ns);
	cr_assert_leq(w.exposure_page_ns, 2 * w.window_max_ns);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Optimistic teardown                                                                  */
/* ------------------------------------------------------------------------------------ */

/*
 * A map of the same buffer within teardown_ns reuses the kept mapping: same IOVA, no backend
 * map, no invalidation; the window runs from the unmap to the reuse; sync evicts kept ones.
 */
Test(teardown, reuse_and_evict)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .teardown_ns = BIG_WINDOW, .teardown_entries = 4);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(2, 1), *other[6];
	iovaq_iova_t iova = du_map(dom, buf, 2), again;
	struct iovaq_sim_counters c0;

	du_dma_ok(be, iova, 2, buf);
	du_unmap(dom, iova, 2, 0);
	DU_CHECK(dom);
	c0 = du_simc(be);
	again = du_map(dom, buf, 2);
	cr_assert_eq(again, iova, "teardown hit must return the same IOVA");
	cr_assert_eq(du_simc(be).maps, c0.maps, "teardown hit mapped in the backend");
	cr_assert_eq(du_simc(be).flushes, c0.flushes);
	cr_assert_eq(du_stats(dom).teardown_hits, 1);
	cr_assert_eq(du_win(dom).releases, 1);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	du_dma_ok(be, again, 2, buf);

	/* A different length or permission is no hit: a fresh mapping. */
	du_unmap(dom, again, 2, 0);
	c0 = du_simc(be);
	{
		iovaq_iova_t x;

		DU_OK(iovaq_domain_map(dom, buf, 2 * G, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE, &x));
		cr_assert_eq(du_simc(be).maps, c0.maps + 1);
		du_unmap(dom, x, 2, 0);
	}
	DU_CHECK(dom);

	/* More than teardown_entries buffers: the oldest are evicted (really unmapped). */
	for (int i = 0; i < 6; i++) {
		other[i] = du_buf(1, (uint64_t)i);
		du_unmap(dom, du_map(dom, other[i], 1), 1, 0);
	}
	cr_assert_geq(du_stats(dom).teardown_evictions, 2);
	DU_CHECK(dom);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).mapped_pages, 0, "sync left kept mappings in the backend");
	cr_assert_eq(du_stats(dom).queued_pages, 0);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	du_dma_faults(be, iova, 2);
	DU_CHECK(dom);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
	for (int i = 0; i < 6; i++)
		free(other[i]);
}

/* Kept mappings age out by teardown_ns (thread flusher) and their window stays accounted. */
Test(teardown, ages_out_with_thread_flusher)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .flusher = IOVAQ_FLUSHER_THREAD, .max_window_ns = 200 * MS,
		   .teardown_ns = 5 * MS);
	struct iovaq_domain *dom = du_domain(&o);
	void *buf = du_buf(1, 1);
	uint64_t deadline, t0, mapped;

	t0 = du_now();
	du_unmap(dom, du_map(dom, buf, 1), 1, 0);
	mapped = du_simc(be).mapped_pages;
	/* Kept at first, unless this thread was too slow to look (valgrind, a loaded machine). */
	if (du_now() - t0 < 5 * MS)
		cr_assert_eq(mapped, 1, "kept mapping");
	deadline = du_now() + 5000 * MS;
	while ((du_simc(be).mapped_pages || du_stats(dom).queued_pages) && du_now() < deadline)
		du_sleep_ns(MS);
	cr_assert_eq(du_simc(be).mapped_pages, 0, "kept mapping never evicted");
	cr_assert_eq(du_stats(dom).teardown_evictions, 1);
	cr_assert_eq(du_stats(dom).queued_pages, 0, "evicted mapping never flushed");
	cr_assert_eq(du_win(dom).releases, 1);
	cr_assert_geq(du_win(dom).window_max_ns, 5 * MS);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ------------------------------------------------------------------------------------ */
/* Arenas                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Strict: a size-aligned chunk; one command invalidates all unlinked since the last sync. */
Test(arena, strict_one_command_per_sync)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = du_domain_simple(be, IOVAQ_POLICY_STRICT, IOVAQ_FLUSHER_INLINE);
	struct iovaq_arena *a = NULL;
	void *bufs[16];
	iovaq_iova_t base, iova;
	struct iovaq_sim_counters c0, c1;

	DU_OK(iovaq_arena_reserve(dom, 50, IOVAQ_LIMIT_NONE, &a)); /* rounded up to 64 */
	base = iovaq_arena_base(a);
	cr_assert_eq(base % (64 * G), 0, "arena base 0x%" PRIx64 " not aligned to 64 pages", base);
	DU_CHECK(dom);
	for (int i = 0; i < 16; i++) {
		bufs[i] = du_buf(1, (uint64_t)i);
		DU_OK(iovaq_arena_link(a, (uint64_t)i * 4, bufs[i], G, RW, &iova));
		cr_assert_eq(iova, base + (uint64_t)i * 4 * G);
		du_dma_ok(be, iova, 1, bufs[i]);
	}
	/* The last page of the chunk: 63 is inside, 64 is not. */
	DU_OK(iovaq_arena_link(a, 63, bufs[0], G, RW, NULL));
	DU_EXPECT(dom, iovaq_arena_link(a, 64, bufs[0], G, RW, NULL), -EINVAL);
	cr_assert_eq(du_stats(dom).mapped_pages, 17);
	DU_CHECK(dom);
	for (int i = 0; i < 16; i++)
		DU_OK(iovaq_arena_unlink(a, (uint64_t)i * 4, G));
	/* Unlinked, not yet synced: still reachable. */
	{
		struct iovaq_sim_access r;

		cr_assert_eq(du_dma(be, base, G, &r), 0);
		cr_assert_eq(r.stale_pages, 1);
	}
	c0 = du_simc(be);
	DU_OK(iovaq_arena_sync(a, 0));
	c1 = du_simc(be);
	cr_assert_eq(c1.inval_cmds[IOVAQ_INVAL_PAGES] - c0.inval_cmds[IOVAQ_INVAL_PAGES], 1,
		     "an arena sync should be one command");
	cr_assert_eq(c1.flushes - c0.flushes, 1);
	for (int i = 0; i < 16; i++)
		du_dma_faults(be, base + (uint64_t)i * 4 * G, 1);
	du_dma_ok(be, base + 63 * G, 1, bufs[0]);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	cr_assert_eq(du_win(dom).unsafe_reuse, 0);
	cr_assert_eq(du_stats(dom).mapped_pages, 1);
	/* Safe at once under strict: the pages can be linked again. */
	DU_OK(iovaq_arena_link(a, 0, bufs[1], G, RW, NULL));
	DU_CHECK(dom);
	/* Nothing unlinked: a sync does nothing. */
	c0 = du_simc(be);
	DU_OK(iovaq_arena_sync(a, 0));
	cr_assert_eq(du_simc(be).flushes, c0.flushes);
	iovaq_arena_release(a); /* unlinks pages 0 and 63 */
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	cr_assert_eq(du_stats(dom).mapped_pages, 0);
	DU_CHECK(dom);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0, "arena chunk not returned");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	for (int i = 0; i < 16; i++)
		free(bufs[i]);
}

/* Deferred: pages unlinked are busy until the sync's flush completes; then linkable again. */
Test(arena, deferred_busy_until_safe)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct iovaq_arena *a = NULL;
	void *buf = du_buf(4, 1);
	iovaq_iova_t base;
	struct iovaq_sim_access r;

	DU_OK(iovaq_arena_reserve(dom, 8, IOVAQ_LIMIT_NONE, &a));
	base = iovaq_arena_base(a);
	DU_OK(iovaq_arena_link(a, 0, buf, 2 * G, RW, NULL));
	DU_OK(iovaq_arena_link(a, 2, buf, 2 * G, RW, NULL));
	du_dma_ok(be, base, 4, NULL);
	DU_EXPECT(dom, iovaq_arena_link(a, 1, buf, G, RW, NULL), -EBUSY); /* linked */
	DU_OK(iovaq_arena_unlink(a, 0, 4 * G)); /* two whole links at once */
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, G, RW, NULL), -EBUSY); /* unlinked */
	DU_OK(iovaq_arena_sync(a, 0));
	cr_assert_eq(du_stats(dom).queued_pages, 4);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, G, RW, NULL), -EBUSY); /* queued */
	cr_assert_eq(du_dma(be, base, 4 * G, &r), 0, "unlinked pages reachable until the flush");
	cr_assert_eq(r.stale_pages, 4);
	cr_assert_eq(du_win(dom).unsafe_reuse, 1);
	cr_assert_eq(du_win(dom).reachable_pages, 4);
	DU_OK(iovaq_domain_sync(dom));
	du_dma_faults(be, base, 4);
	cr_assert_eq(du_stats(dom).queued_pages, 0);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	DU_OK(iovaq_arena_link(a, 0, buf, 4 * G, RW, NULL));
	du_dma_ok(be, base, 4, buf);
	DU_CHECK(dom);
	iovaq_arena_release(a); /* deferred: the chunk comes back after a flush */
	DU_CHECK(dom);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0, "arena chunk not returned");
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* Safe-deferred: an arena sync's cookie comes back at t_safe; no unsafe reuse. */
Test(arena, safe_deferred_cookie)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_SAFE_DEFERRED);
	struct iovaq_arena *a = NULL;
	void *buf = du_buf(1, 1);
	uint64_t c[4];

	DU_OK(iovaq_arena_reserve(dom, 16, IOVAQ_LIMIT_NONE, &a));
	for (uint64_t i = 0; i < 4; i++)
		DU_OK(iovaq_arena_link(a, i, buf, G, RW, NULL));
	du_dma_ok(be, iovaq_arena_base(a), 4, NULL);
	for (uint64_t i = 0; i < 4; i++)
		DU_OK(iovaq_arena_unlink(a, i, G));
	DU_OK(iovaq_arena_sync(a, 77));
	/* Nothing unlinked since: its cookie comes back once the earlier sync is safe. */
	DU_OK(iovaq_arena_sync(a, 78));
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "an arena cookie before t_safe");
	DU_OK(iovaq_domain_sync(dom));
	du_dma_faults(be, iovaq_arena_base(a), 4);
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 2);
	cr_assert_eq(c[0], 77);
	cr_assert_eq(c[1], 78);
	/* Everything safe already: the cookie comes back at once. */
	DU_OK(iovaq_arena_sync(a, 79));
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 1);
	cr_assert_eq(c[0], 79);
	cr_assert_eq(du_win(dom).unsafe_reuse, 0);
	cr_assert_eq(du_win(dom).violations, 0);
	iovaq_arena_release(a);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(iovaq_domain_poll(dom, c, 4), 0, "release's internal sync handed a cookie");
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

Test(arena, bad_input)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct iovaq_domain *pt = dom_quiet(be, IOVAQ_POLICY_PASSTHROUGH);
	struct iovaq_arena *const sentinel = (struct iovaq_arena *)(uintptr_t)0x1;
	struct iovaq_arena *a = sentinel;
	uint8_t *buf = du_buf(4, 1);

	cr_assert_eq(iovaq_arena_reserve(NULL, 4, IOVAQ_LIMIT_NONE, &a), -EINVAL);
	cr_assert_eq(iovaq_arena_reserve(dom, 0, IOVAQ_LIMIT_NONE, &a), -EINVAL);
	cr_assert_eq(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, NULL), -EINVAL);
	cr_assert_eq(iovaq_arena_reserve(pt, 4, IOVAQ_LIMIT_NONE, &a), -EINVAL);
	cr_assert_eq(iovaq_arena_reserve(dom, (1ull << 32) + 1, IOVAQ_LIMIT_NONE, &a), -EINVAL);
	cr_assert_eq(a, sentinel);
	DU_CHECK(dom);

	DU_OK(iovaq_arena_reserve(dom, 8, IOVAQ_LIMIT_NONE, &a));
	DU_EXPECT(dom, iovaq_arena_link(a, 8, buf, G, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 6, buf, 3 * G, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf + 1, G, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, G + 1, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, 0, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, NULL, G, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, G, 0, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_link(NULL, 0, buf, G, RW, NULL), -EINVAL);
	cr_assert_eq(du_stats(dom).mapped_pages, 0);

	DU_OK(iovaq_arena_link(a, 0, buf, 2 * G, RW, NULL));
	DU_EXPECT(dom, iovaq_arena_link(a, 1, buf, 2 * G, RW, NULL), -EBUSY);
	DU_EXPECT(dom, iovaq_arena_unlink(a, 0, G), -EINVAL);	  /* half a link */
	DU_EXPECT(dom, iovaq_arena_unlink(a, 1, G), -EINVAL);	  /* the middle */
	DU_EXPECT(dom, iovaq_arena_unlink(a, 0, 3 * G), -EINVAL); /* beyond the link */
	DU_EXPECT(dom, iovaq_arena_unlink(a, 4, G), -EINVAL);	  /* never linked */
	DU_EXPECT(dom, iovaq_arena_unlink(a, 8, G), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_unlink(a, 0, 0), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_unlink(NULL, 0, G), -EINVAL);
	cr_assert_eq(du_stats(dom).mapped_pages, 2);
	du_dma_ok(be, iovaq_arena_base(a), 2, buf);

	/* Backend failures change nothing. */
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -EIO);
	DU_EXPECT(dom, iovaq_arena_link(a, 4, buf, G, RW, NULL), -EIO);
	DU_OK(iovaq_arena_link(a, 4, buf, G, RW, NULL));
	du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 1, -EIO);
	DU_EXPECT(dom, iovaq_arena_unlink(a, 0, 2 * G), -EIO);
	du_dma_ok(be, iovaq_arena_base(a), 2, buf);
	DU_OK(iovaq_arena_unlink(a, 0, 2 * G));
	cr_assert_eq(iovaq_arena_sync(NULL, 0), -EINVAL);
	iovaq_arena_release(a);
	iovaq_arena_release(NULL);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_domain_destroy(dom);
	iovaq_domain_destroy(pt);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Strict arena sync whose flush fails: the chunk's pages are QUEUED and the next domain sync
 * retries. Releasing the arena meanwhile must not free it under its queued entry.
 */
Test(arena, strict_sync_fails_then_release)
{
	struct iovaq_backend *be = du_sim_open(0);
	/* A big window: no age-triggered flush may make the chunk safe behind the test's back. */
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT,
		   .max_window_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	struct iovaq_arena *a = NULL;
	void *buf = du_buf(4, 1);
	iovaq_iova_t base;

	DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
	base = iovaq_arena_base(a);
	DU_OK(iovaq_arena_link(a, 0, buf, G, RW, NULL));
	du_dma_ok(be, base, 1, buf);
	DU_OK(iovaq_arena_unlink(a, 0, G));
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	DU_EXPECT(dom, iovaq_arena_sync(a, 0), -EIO);
	cr_assert_eq(du_stats(dom).queued_pages, 1);
	DU_EXPECT(dom, iovaq_arena_link(a, 0, buf, G, RW, NULL), -EBUSY);
	iovaq_arena_release(a);
	DU_CHECK(dom);
	cr_assert_eq(du_stats(dom).queued_pages, 1);
	/* The chunk is not safe yet: no map may get any of it. */
	{
		iovaq_iova_t v[16];

		for (int i = 0; i < 16; i++) {
			v[i] = du_map(dom, buf, 4);
			cr_assert(!du_overlap(v[i], 4, base, 4),
				  "the released arena's chunk 0x%" PRIx64 " was handed out while its "
				  "invalidation is still QUEUED",
				  base);
		}
		for (int i = 0; i < 16; i++)
			du_unmap(dom, v[i], 4, 0);
	}
	DU_OK(iovaq_domain_sync(dom));
	du_dma_faults(be, base, 1);
	DU_CHECK(dom);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* Arenas left at destroy: links unmapped, nothing stale, nothing leaked. */
Test(arena, destroy_with_live_arenas)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED };

	for (int p = 0; p < 3; p++) {
		struct iovaq_backend *be = du_sim_open(0);
		struct iovaq_domain *dom = dom_quiet(be, pol[p]);
		struct iovaq_arena *a = NULL, *b = NULL;
		void *buf = du_buf(2, 1);
		uint64_t stale0;

		DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
		DU_OK(iovaq_arena_reserve(dom, 8, IOVAQ_LIMIT_NONE, &b));
		DU_OK(iovaq_arena_link(a, 0, buf, 2 * G, RW, NULL));
		DU_OK(iovaq_arena_link(b, 0, buf, G, RW, NULL));
		DU_OK(iovaq_arena_link(b, 1, buf, G, RW, NULL));
		du_dma_ok(be, iovaq_arena_base(a), 2, NULL);
		du_dma_ok(be, iovaq_arena_base(b), 2, NULL);
		DU_OK(iovaq_arena_unlink(b, 0, G)); /* unlinked, never synced */
		DU_CHECK(dom);
		stale0 = du_simc(be).stale_hits;
		iovaq_iova_t ab = iovaq_arena_base(a), bb = iovaq_arena_base(b);

		iovaq_domain_destroy(dom);
		cr_assert_eq(du_simc(be).mapped_pages, 0, "%s", policy_name[pol[p]]);
		du_dma_faults(be, ab, 2);
		du_dma_faults(be, bb, 2);
		cr_assert_eq(du_simc(be).stale_hits, stale0);
		iovaq_backend_close(be);
		free(buf);
	}
}

/*
 * Pages unlinked from an arena are reachable until its sync is safe: they count against
 * max_reachable_pages like any release, and the bound must hold (violations 0).
 */
Test(arena, unlinks_respect_reachable_bound)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .max_reachable_pages = 16);
	struct iovaq_domain *dom = du_domain(&o);
	struct iovaq_arena *a = NULL;
	void *buf = du_buf(1, 1);

	DU_OK(iovaq_arena_reserve(dom, 64, IOVAQ_LIMIT_NONE, &a));
	for (uint64_t i = 0; i < 32; i++)
		DU_OK(iovaq_arena_link(a, i, buf, G, RW, NULL));
	for (uint64_t i = 0; i < 32; i++)
		DU_OK(iovaq_arena_unlink(a, i, G));
	DU_OK(iovaq_arena_sync(a, 0));
	cr_assert_eq(du_win(dom).violations, 0,
		     "32 unlinked pages under a 16-page bound: %" PRIu64 " violations (max %" PRIu64
		     " reachable)",
		     du_win(dom).violations, du_win(dom).reachable_pages_max);
	iovaq_arena_release(a);
	DU_OK(iovaq_domain_sync(dom));
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* ---- scatter-gather links (iovaq_arena_linkv) ---------------------------------------- */

/* @all (4 pages) gets the bytes of the three pieces in order. */
static void lv_concat(const struct iovaq_seg seg[3], uint8_t *all)
{
	for (int i = 0; i < 3; all += seg[i].len, i++)
		memcpy(all, seg[i].host, seg[i].len);
}

/* Three host pieces of 1, 2 and 1 pages, each its own allocation; *@all gets them in order. */
static void lv_pieces(struct iovaq_seg seg[3], uint8_t **all)
{
	static const uint64_t pages[3] = { 1, 2, 1 };

	*all = malloc(4 * G);
	cr_assert_not_null(*all);
	for (int i = 0; i < 3; i++) {
		seg[i].len = pages[i] * G;
		seg[i].host = du_buf(pages[i], 0x200 + (uint64_t)i);
	}
	lv_concat(seg, *all);
}

/* Release @a, sync: nothing left mapped or allocated; then destroy and free everything. */
static void lv_done(struct iovaq_backend *be, struct iovaq_domain *dom, struct iovaq_arena *a,
		    struct iovaq_seg seg[3], uint8_t *all, const char *what)
{
	iovaq_arena_release(a);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0, "%s", what);
	iovaq_cache_drain(iovaq_domain_cache(dom));
	cr_assert_eq(du_space_stats(dom).allocated_granules, 0, "%s", what);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	for (int i = 0; i < 3; i++)
		free(seg[i].host);
	free(all);
}

/*
 * Under each batching policy: three segments form one link at consecutive pages, the device
 * sees each piece at its IOVA and writes land in the right piece; the link unlinks whole only;
 * its pages are busy until safe; failures leave the arena's pages free and the invariant holds.
 */
Test(arena, linkv_policies)
{
	static const uint32_t pol[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
					IOVAQ_POLICY_SAFE_DEFERRED };

	for (int p = 0; p < 3; p++) {
		struct iovaq_backend *be = du_sim_open(0);
		struct iovaq_domain *dom = dom_quiet(be, pol[p]);
		struct iovaq_arena *a = NULL;
		struct iovaq_seg seg[3];
		struct iovaq_domain_stats s0;
		struct iovaq_sim_counters c0;
		uint8_t *all, w[2 * G];
		iovaq_iova_t base, iova = 0;
		const char *pn = policy_name[pol[p]];

		lv_pieces(seg, &all);
		DU_OK(iovaq_arena_reserve(dom, 16, IOVAQ_LIMIT_NONE, &a));
		base = iovaq_arena_base(a);
		s0 = du_stats(dom);
		DU_OK(iovaq_arena_linkv(a, 2, seg, 3, RW, &iova));
		cr_assert_eq(iova, base + 2 * G, "%s", pn);
		cr_assert_eq(du_stats(dom).maps - s0.maps, 1, "%s: one link is one map", pn);
		cr_assert_eq(du_stats(dom).mapped_pages - s0.mapped_pages, 4, "%s", pn);
		cr_assert_eq(du_simc(be).mapped_pages, 4, "%s", pn);
		du_dma_ok(be, iova, 4, all);
		du_dma_ok(be, iova + G, 2, seg[1].host);
		du_dma_ok(be, iova + 3 * G, 1, seg[2].host);
		/* A device write across the 1st/2nd and 2nd/3rd boundaries. */
		du_fill(w, sizeof(w), 0x99);
		DU_OK(iovaq_sim_dma(iovaq_sim_of(be), iova + G / 2, w, 3 * G / 2, 1, NULL));
		cr_assert_eq(memcmp((uint8_t *)seg[0].host + G / 2, w, G / 2), 0, "%s", pn);
		cr_assert_eq(memcmp(seg[1].host, w + G / 2, G), 0, "%s", pn);
		DU_OK(iovaq_sim_dma(iovaq_sim_of(be), iova + 5 * G / 2, w, G, 1, NULL));
		cr_assert_eq(memcmp((uint8_t *)seg[1].host + 3 * G / 2, w, G / 2), 0, "%s", pn);
		cr_assert_eq(memcmp(seg[2].host, w + G / 2, G / 2), 0, "%s", pn);
		lv_concat(seg, all);
		DU_CHECK(dom);

		/* Its pages are linked: busy for link and linkv. */
		DU_EXPECT(dom, iovaq_arena_link(a, 5, seg[0].host, G, RW, NULL), -EBUSY);
		DU_EXPECT(dom, iovaq_arena_linkv(a, 0, seg, 3, RW, NULL), -EBUSY);
		/* One link: no part of it unlinks alone, nor more than it. */
		DU_EXPECT(dom, iovaq_arena_unlink(a, 2, G), -EINVAL);
		DU_EXPECT(dom, iovaq_arena_unlink(a, 2, 3 * G), -EINVAL);
		DU_EXPECT(dom, iovaq_arena_unlink(a, 3, 3 * G), -EINVAL);
		DU_EXPECT(dom, iovaq_arena_unlink(a, 5, G), -EINVAL);
		DU_EXPECT(dom, iovaq_arena_unlink(a, 2, 5 * G), -EINVAL);
		du_dma_ok(be, iova, 4, all);
		DU_OK(iovaq_arena_unlink(a, 2, 4 * G));
		cr_assert_eq(du_simc(be).mapped_pages, 0, "%s: a segment outlived the unlink", pn);
		cr_assert_eq(du_stats(dom).mapped_pages, s0.mapped_pages, "%s", pn);
		DU_CHECK(dom);

		/* Unlinked, then synced: busy until the sync is safe (at once only under strict). */
		DU_EXPECT(dom, iovaq_arena_linkv(a, 2, seg, 3, RW, NULL), -EBUSY);
		DU_OK(iovaq_arena_sync(a, 0));
		if (pol[p] != IOVAQ_POLICY_STRICT) {
			DU_EXPECT(dom, iovaq_arena_linkv(a, 2, seg, 3, RW, NULL), -EBUSY);
			DU_OK(iovaq_domain_sync(dom));
		}
		du_dma_faults(be, base + 2 * G, 4);

		/* A map fault at the 2nd segment: the pages stay free, nothing stays mapped. */
		c0 = du_simc(be);
		du_fail_nth(be, IOVAQ_SIM_OP_MAP, 2, -EIO);
		DU_EXPECT(dom, iovaq_arena_linkv(a, 2, seg, 3, RW, NULL), -EIO);
		cr_assert_eq(du_simc(be).mapped_pages, 0, "%s", pn);
		cr_assert_eq(du_simc(be).flushes - c0.flushes, 1, "%s: rollback not invalidated",
			     pn);
		cr_assert_eq(du_stats(dom).mapped_pages, s0.mapped_pages, "%s", pn);
		du_dma_faults(be, base + 2 * G, 4);
		DU_OK(iovaq_arena_linkv(a, 2, seg, 3, RW, NULL));
		du_dma_ok(be, base + 2 * G, 4, all);
		DU_CHECK(dom);
		lv_done(be, dom, a, seg, all, pn);
	}
}

/*
 * Every bad argument of iovaq_arena_linkv(): -EINVAL, nothing mapped, the invariant holds.
 * Page 0 is linked, so that a bad segment judged only later (by the backend) would show as
 * -EBUSY: the arena itself must reject it.
 */
Test(arena, linkv_bad_input)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct iovaq_arena *a = NULL;
	const size_t huge = SIZE_MAX & ~(size_t)(G - 1);
	struct iovaq_seg seg[3], bad[3];
	uint8_t *all;
	uint64_t maps0;

	lv_pieces(seg, &all);
	DU_OK(iovaq_arena_reserve(dom, 8, IOVAQ_LIMIT_NONE, &a));
	DU_OK(iovaq_arena_link(a, 0, seg[0].host, G, RW, NULL));
	maps0 = du_simc(be).maps;
	DU_EXPECT(dom, iovaq_arena_linkv(NULL, 0, seg, 3, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 0, NULL, 3, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 0, seg, 0, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 2, seg, 3, 0, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 8, seg, 1, RW, NULL), -EINVAL);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 5, seg, 3, RW, NULL), -EINVAL); /* 4 pages from 5 */
	for (int i = 0; i < 3; i++) {
		memcpy(bad, seg, sizeof(bad));
		bad[i].host = NULL;
		DU_EXPECT(dom, iovaq_arena_linkv(a, 0, bad, 3, RW, NULL), -EINVAL);
		bad[i].host = (uint8_t *)seg[i].host + 64;
		DU_EXPECT(dom, iovaq_arena_linkv(a, 0, bad, 3, RW, NULL), -EINVAL);
		bad[i].host = seg[i].host;
		bad[i].len = 0;
		DU_EXPECT(dom, iovaq_arena_linkv(a, 0, bad, 3, RW, NULL), -EINVAL);
		bad[i].len = seg[i].len + 512;
		DU_EXPECT(dom, iovaq_arena_linkv(a, 0, bad, 3, RW, NULL), -EINVAL);
	}
	/* Aligned lengths whose sum overflows size_t and wraps to one page. */
	memcpy(bad, seg, sizeof(bad));
	bad[0].len = huge;
	bad[1].len = 2 * G;
	DU_EXPECT(dom, iovaq_arena_linkv(a, 0, bad, 2, RW, NULL), -EINVAL);
	cr_assert_eq(du_simc(be).maps, maps0, "a bad linkv reached the backend's map");
	cr_assert_eq(du_simc(be).mapped_pages, 1);
	cr_assert_eq(du_stats(dom).mapped_pages, 1);
	/* The other pages are still free: they take a link. */
	DU_OK(iovaq_arena_linkv(a, 4, seg, 3, RW, NULL));
	du_dma_ok(be, iovaq_arena_base(a) + 4 * G, 4, all);
	lv_done(be, dom, a, seg, all, "bad input");
}

/*
 * Out of backend mappings at the 2nd segment (-ENOSPC) with releases queued: as for a link,
 * the queue is flushed and the link retried once, and it succeeds.
 */
Test(arena, linkv_retries_after_enospc)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = dom_quiet(be, IOVAQ_POLICY_DEFERRED);
	struct iovaq_arena *a = NULL;
	struct iovaq_seg seg[3];
	uint8_t *all;
	void *buf = du_buf(1, 3);

	lv_pieces(seg, &all);
	DU_OK(iovaq_arena_reserve(dom, 8, IOVAQ_LIMIT_NONE, &a));
	du_unmap(dom, du_map(dom, buf, 1), 1, 0);
	cr_assert_eq(du_stats(dom).queued_pages, 1);
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 2, -ENOSPC);
	DU_OK(iovaq_arena_linkv(a, 0, seg, 3, RW, NULL));
	cr_assert_eq(du_stats(dom).queued_pages, 0, "no flush before the retry");
	du_dma_ok(be, iovaq_arena_base(a), 4, all);
	cr_assert_eq(du_stats(dom).mapped_pages, 4);
	DU_CHECK(dom);
	/* Without anything queued, -ENOSPC comes back (rolled back: nothing mapped). */
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 3, -ENOSPC);
	DU_EXPECT(dom, iovaq_arena_linkv(a, 4, seg, 3, RW, NULL), -ENOSPC);
	cr_assert_eq(du_simc(be).mapped_pages, 4);
	lv_done(be, dom, a, seg, all, "-ENOSPC");
	free(buf);
}
