// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The invalidation queue's layouts (one shared ring or one ring per CPU), and what the domain
 * reports besides its counters: the time breakdown (IOVAQ_DOMAIN_TIMING) and the window
 * histogram.
 *
 * Tests that need entries on two CPUs pin their threads with sched_setaffinity(); on a
 * machine with one CPU, or where pinning is refused, they skip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#include "testutil.h"
#include "domutil.h"

#define BIG_WINDOW (3600ull * 1000000000ull) /* no age flush during a test */

static unsigned int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n < 1 ? 1u : (unsigned int)n;
}

static uint64_t rings_of(struct iovaq_backend *be, uint32_t layout, uint32_t entries)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_layout = layout, .ring_entries = entries);
	struct iovaq_domain *dom = du_domain(&o);
	uint64_t n = du_stats(dom).rings;

	iovaq_domain_destroy(dom);
	return n;
}

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t m = a < b ? a : b;

	return m < c ? m : c;
}

/*
 * Auto: one ring per CPU natively (cheap flushes), one shared ring where a hypervisor traps
 * every flush (caching mode); per-CPU rings are never split below 64 entries, nor more than 64.
 */
Test(rings, layout_choice)
{
	struct iovaq_backend *native = du_sim_open(0);
	struct iovaq_backend *cm = du_sim_open(IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE);
	uint64_t n = ncpus();

	cr_assert_eq(rings_of(native, IOVAQ_RING_AUTO, 0), min3(n, 64, 4096 / 64));
	cr_assert_eq(rings_of(cm, IOVAQ_RING_AUTO, 0), 1);
	cr_assert_eq(rings_of(native, IOVAQ_RING_SHARED, 0), 1);
	cr_assert_eq(rings_of(cm, IOVAQ_RING_PERCPU, 0), min3(n, 64, 32768 / 64));
	cr_assert_eq(rings_of(native, IOVAQ_RING_PERCPU, 128), min3(n, 64, 2));
	cr_assert_eq(rings_of(native, IOVAQ_RING_PERCPU, 8), 1);
	cr_assert_eq(rings_of(native, IOVAQ_RING_PERCPU, 1), 1);
	iovaq_backend_close(native);
	iovaq_backend_close(cm);
}

/* A flush estimate above IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS also makes auto pick one ring. */
Test(rings, layout_choice_by_flush_cost)
{
	struct iovaq_sim_cost cost;
	struct iovaq_backend *be;

	iovaq_sim_cost_defaults(&cost);
	cost.inval_wait_ns = IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS + 1;
	{
		IOVAQ_OPTS(iovaq_sim_opts, so, .cost = &cost);
		IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim", .backend_opts = &so);

		DU_OK(iovaq_backend_open(&bo, &be));
	}
	cr_assert_eq(rings_of(be, IOVAQ_RING_AUTO, 0), 1);
	iovaq_backend_close(be);
}

struct pinned {
	struct iovaq_domain *dom;
	unsigned int cpu;
	uint64_t n;		/* map and unmap this many one-page buffers */
	void *buf;
	int pinned;		/* out: 0 if the CPU could not be taken */
};

/* Pin the calling thread to @cpu; 0 if refused. */
static int pin_self(unsigned int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return !sched_setaffinity(0, sizeof(set), &set) && (unsigned int)sched_getcpu() == cpu;
}

static void *pinned_main(void *arg)
{
	struct pinned *p = arg;

	if (!pin_self(p->cpu))
		return NULL;
	p->pinned = 1;
	for (uint64_t i = 0; i < p->n; i++)
		du_unmap(p->dom, du_map(p->dom, (uint8_t *)p->buf + i * DU_G, 1), 1, i);
	return NULL;
}

static int run_pinned(struct pinned *p, int n);

/* Run @n releases on each of CPUs 0 and 1, one after the other; 0 if pinning failed. */
static int releases_on_two_cpus(struct iovaq_domain *dom, uint64_t n0, uint64_t n1, void *buf)
{
	struct pinned p[2] = { { dom, 0, n0, buf, 0 }, { dom, 1, n1, (uint8_t *)buf + n0 * DU_G, 0 } };

	return run_pinned(p, 2);
}

/*
 * Releases on two CPUs land in two rings; one sync flushes both with one backend flush, and
 * every state stays accounted for in between.
 */
Test(rings, percpu_one_flush_drains_every_ring)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_SAFE_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_layout = IOVAQ_RING_PERCPU);
	struct iovaq_domain *dom;
	void *buf = du_buf(40, 1);
	struct iovaq_domain_stats s;
	uint64_t cookies[64];
	int k;

	if (ncpus() < 2)
		cr_skip_test("one CPU");
	dom = du_domain(&o);
	cr_assert_geq(du_stats(dom).rings, 2);
	if (!releases_on_two_cpus(dom, 25, 15, buf))
		cr_skip_test("could not pin threads to CPUs 0 and 1");
	s = du_stats(dom);
	cr_assert_eq(s.queued_pages, 40);
	cr_assert_eq(s.unmaps, 40);
	/* Each ring's largest fill, summed: 25 on CPU 0's ring, 15 on CPU 1's. */
	cr_assert_eq(s.queued_entries_max, 40);
	cr_assert_eq(du_win(dom).reachable_pages, 40);
	DU_CHECK(dom);
	cr_assert_eq(du_simc(be).flushes, 0);
	DU_OK(iovaq_domain_sync(dom));
	s = du_stats(dom);
	cr_assert_eq(s.flushes, 1);
	cr_assert_eq(du_simc(be).flushes, 1, "one backend flush for both rings");
	cr_assert_eq(s.queued_pages, 0);
	cr_assert_eq(s.invalidated_pages, 40);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	cr_assert_eq(du_win(dom).releases, 40);
	k = iovaq_domain_poll(dom, cookies, 64);
	cr_assert_eq(k, 40, "%d cookies", k);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* Run p[0], then p[1], each on its CPU; 0 if pinning failed. */
static int run_pinned(struct pinned *p, int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t t;

		cr_assert_eq(pthread_create(&t, NULL, pinned_main, &p[i]), 0);
		pthread_join(t, NULL);
		if (!p[i].pinned)
			return 0;
	}
	return 1;
}

/* Run @fn(@arg) on a thread pinned to @cpu; 0 if pinning failed. */
struct on_cpu {
	unsigned int cpu;
	void (*fn)(void *arg);
	void *arg;
	int pinned;
};

static void *on_cpu_main(void *x)
{
	struct on_cpu *c = x;

	if (!pin_self(c->cpu))
		return NULL;
	c->pinned = 1;
	c->fn(c->arg);
	return NULL;
}

static int run_on_cpu(unsigned int cpu, void (*fn)(void *arg), void *arg)
{
	struct on_cpu c = { cpu, fn, arg, 0 };
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, on_cpu_main, &c), 0);
	pthread_join(t, NULL);
	return c.pinned;
}

struct arena_step {
	struct iovaq_arena *a;
	uint64_t idx;
	uint8_t *buf;
};

/* Link page idx, unlink it, and sync the arena (one queue entry on this CPU's ring). */
static void link_unlink_sync(void *x)
{
	struct arena_step *s = x;

	DU_OK(iovaq_arena_link(s->a, s->idx, s->buf + s->idx * DU_G, DU_G, IOVAQ_PROT_READ, NULL));
	DU_OK(iovaq_arena_unlink(s->a, s->idx, DU_G));
	DU_OK(iovaq_arena_sync(s->a, s->idx));
}

/*
 * An arena whose owner thread moved between CPUs has its syncs in two rings, the later one
 * in a ring the flush visits first. Found by iovaq-bench replay: the flush set the arena's
 * "synced up to" mark entry by entry, so it ended at the earlier sync, and pages of the later
 * one stayed "not yet safe" (-EBUSY on link) after their flush. The mark only moves forward.
 */
Test(rings, arena_syncs_in_two_rings_complete_in_order)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_layout = IOVAQ_RING_PERCPU);
	struct iovaq_domain *dom;
	uint8_t *buf = du_buf(4, 9);
	struct iovaq_arena *a;

	if (ncpus() < 2)
		cr_skip_test("one CPU");
	dom = du_domain(&o);
	DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
	/* The first sync on CPU 1's ring, the second on CPU 0's, which a flush takes first. */
	if (!run_on_cpu(1, link_unlink_sync, &(struct arena_step){ a, 0, buf }) ||
	    !run_on_cpu(0, link_unlink_sync, &(struct arena_step){ a, 1, buf }))
		cr_skip_test("could not pin threads to CPUs 0 and 1");
	cr_assert_eq(iovaq_arena_link(a, 1, buf + DU_G, DU_G, IOVAQ_PROT_READ, NULL), -EBUSY,
		     "a page linked again before its sync was flushed");
	DU_OK(iovaq_domain_sync(dom));
	DU_OK(iovaq_arena_link(a, 1, buf + DU_G, DU_G, IOVAQ_PROT_READ, NULL));
	DU_OK(iovaq_arena_link(a, 0, buf, DU_G, IOVAQ_PROT_READ, NULL));
	DU_CHECK(dom);
	iovaq_arena_release(a);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Releases crowding onto one CPU spill into the other CPUs' rings rather than flush at that
 * ring's share of the capacity; only when every ring is full does a release flush them all
 * (Linux's per-CPU queue does the same flush: its invalidation is domain-wide).
 */
Test(rings, percpu_spills_then_full_flushes_all)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_layout = IOVAQ_RING_PERCPU,
		   .ring_entries = 128);
	struct iovaq_domain *dom;
	uint8_t *buf = du_buf(129, 2);
	struct iovaq_domain_stats s;

	if (ncpus() < 2)
		cr_skip_test("one CPU");
	dom = du_domain(&o);
	cr_assert_eq(du_stats(dom).rings, 2, "128 entries make two rings of 64");
	/* CPU 1 queues 5, then CPU 0 fills its 64 and spills 59 into CPU 1's ring. */
	{
		struct pinned p[2] = { { dom, 1, 5, buf, 0 }, { dom, 0, 123, buf + 5 * DU_G, 0 } };

		if (!run_pinned(p, 2))
			cr_skip_test("could not pin threads to CPUs 0 and 1");
	}
	s = du_stats(dom);
	cr_assert_eq(s.flushes, 0, "a full CPU ring flushed while the other had room");
	cr_assert_eq(s.queued_pages, 128);
	DU_CHECK(dom);
	/* Every ring full now: the next release flushes both, then takes a slot. */
	{
		struct pinned p = { dom, 0, 1, buf + 128 * DU_G, 0 };

		if (!run_pinned(&p, 1))
			cr_skip_test("could not pin a thread to CPU 0");
	}
	s = du_stats(dom);
	cr_assert_eq(s.flush_full, 1);
	cr_assert_eq(s.flushes, 1);
	cr_assert_eq(s.invalidated_pages, 128, "the full flush took both rings");
	cr_assert_eq(s.queued_pages, 1);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * The shared layout keeps one ring whatever CPU releases: entries from two CPUs fill the
 * same ring, and it fills at its whole capacity.
 */
Test(rings, shared_ring_takes_every_cpu)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .ring_layout = IOVAQ_RING_SHARED,
		   .ring_entries = 128);
	struct iovaq_domain *dom;
	void *buf = du_buf(128, 3);
	struct iovaq_domain_stats s;

	if (ncpus() < 2)
		cr_skip_test("one CPU");
	dom = du_domain(&o);
	cr_assert_eq(du_stats(dom).rings, 1);
	if (!releases_on_two_cpus(dom, 64, 64, buf))
		cr_skip_test("could not pin threads to CPUs 0 and 1");
	s = du_stats(dom);
	cr_assert_eq(s.flush_full, 0, "128 releases fit a 128-entry shared ring");
	cr_assert_eq(s.queued_entries_max, 128);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* IOVAQ_DOMAIN_TIMING fills the time breakdown; without it the fields stay 0. */
Test(timing, breakdown_only_when_asked)
{
	struct iovaq_backend *be = du_sim_open(0);
	void *buf = du_buf(8, 4);
	char json[4096];

	for (int timed = 0; timed < 2; timed++) {
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
			   .max_window_ns = BIG_WINDOW,
			   .flags = timed ? IOVAQ_DOMAIN_TIMING : 0);
		struct iovaq_domain *dom = du_domain(&o);
		struct iovaq_domain_stats s;

		for (uint64_t i = 0; i < 8; i++)
			du_unmap(dom, du_map(dom, (uint8_t *)buf + i * DU_G, 1), 1, 0);
		DU_OK(iovaq_domain_sync(dom));
		s = du_stats(dom);
		if (timed) {
			cr_assert_gt(s.time_alloc_ns, 0);
			cr_assert_gt(s.time_map_ns, 0);
			cr_assert_gt(s.time_unmap_ns, 0);
			cr_assert_gt(s.time_plan_ns, 0);
			cr_assert_gt(s.time_flush_ns, 0);
		} else {
			cr_assert_eq(s.time_alloc_ns + s.time_map_ns + s.time_unmap_ns +
					     s.time_plan_ns + s.time_flush_ns, 0);
		}
		cr_assert_lt(iovaq_domain_json(dom, json, sizeof(json)), (int)sizeof(json));
		cr_assert_not_null(strstr(json, "\"time_ns\":{\"alloc\":"), "%s", json);
		cr_assert_eq(strstr(json, "\"time_ns\":{\"alloc\":0,") == NULL, !!timed, "%s",
			     json);
		iovaq_domain_destroy(dom);
	}
	iovaq_backend_close(be);
	free(buf);
}

/*
 * The histogram: non-empty buckets in increasing order, counts adding up to the releases, the
 * report's percentiles read from it, and snprintf-like sizing.
 */
Test(window, histogram)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	uint8_t *buf = du_buf(20, 5);
	struct iovaq_window_bucket b[64], one = { 0, 0 };
	struct iovaq_window_report w;
	uint64_t total = 0, cum = 0, p50 = 0, p99 = 0;
	int n;

	cr_assert_eq(iovaq_domain_window_hist(dom, NULL, 0), 0, "no release yet");
	/* Releases 50 us apart, then one sync: windows from ~0 to ~1 ms, many buckets. */
	for (uint64_t i = 0; i < 20; i++) {
		du_unmap(dom, du_map(dom, buf + i * DU_G, 1), 1, 0);
		du_sleep_ns(50000);
	}
	DU_OK(iovaq_domain_sync(dom));
	w = du_win(dom);
	n = iovaq_domain_window_hist(dom, NULL, 0);
	cr_assert_gt(n, 1, "%d buckets for windows of 0..1 ms", n);
	cr_assert_leq(n, 64);
	cr_assert_eq(iovaq_domain_window_hist(dom, b, 64), n);
	for (int i = 0; i < n; i++) {
		cr_assert_gt(b[i].count, 0, "bucket %d empty", i);
		if (i)
			cr_assert_gt(b[i].upper_ns, b[i - 1].upper_ns, "buckets out of order");
		total += b[i].count;
	}
	cr_assert_eq(total, w.releases);
	cr_assert_eq(total, 20);
	/* The largest window lies in the last bucket, within 1/8 of its bound. */
	cr_assert_leq(w.window_max_ns, b[n - 1].upper_ns);
	cr_assert_geq(w.window_max_ns + b[n - 1].upper_ns / 8 + 1, b[n - 1].upper_ns);
	for (int i = 0; i < n; i++) {
		cum += b[i].count;
		if (!p50 && cum * 100 >= total * 50)
			p50 = b[i].upper_ns < w.window_max_ns ? b[i].upper_ns : w.window_max_ns;
		if (!p99 && cum * 100 >= total * 99)
			p99 = b[i].upper_ns < w.window_max_ns ? b[i].upper_ns : w.window_max_ns;
	}
	cr_assert_eq(w.window_p50_ns, p50);
	cr_assert_eq(w.window_p99_ns, p99);
	/* Too small an array: the count is still returned, only @max buckets written. */
	cr_assert_eq(iovaq_domain_window_hist(dom, &one, 1), n);
	cr_assert_eq(one.upper_ns, b[0].upper_ns);
	cr_assert_eq(one.count, b[0].count);
	cr_assert_eq(iovaq_domain_window_hist(dom, NULL, 1), -EINVAL);
	cr_assert_eq(iovaq_domain_window_hist(NULL, b, 64), -EINVAL);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}
