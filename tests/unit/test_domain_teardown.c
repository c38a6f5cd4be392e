// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Optimistic teardown's byte budget and second chance (coIOMMU's lazy unpinning: released
 * buffers stay mapped, and pinned through a real backend, up to a budget).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#include "testutil.h"
#include "domutil.h"

#define BIG (3600ull * 1000000000ull)

/* Does the device reach @iova through a live mapping? */
static int reachable(struct iovaq_backend *be, iovaq_iova_t iova)
{
	uint8_t tmp[4096];
	struct iovaq_sim_access res = { 0 };
	int err = iovaq_sim_dma(iovaq_sim_of(be), iova, tmp, sizeof(tmp), 0, &res);

	if (err)
		du_drain_faults(be, 0);
	return !err && !res.stale_pages;
}

static struct iovaq_domain *budget_domain(struct iovaq_backend *be, uint64_t bytes)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG, .teardown_ns = BIG, .teardown_entries = 100,
		   .teardown_bytes = bytes);

	return du_domain(&o);
}

/* Kept buffers stay within the byte budget: the oldest goes first. */
Test(teardown_budget, bytes)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = budget_domain(be, 3 * DU_G);
	uint8_t *buf = du_buf(8, 1);
	iovaq_iova_t v[4];

	for (uint64_t i = 0; i < 4; i++) {
		v[i] = du_map(dom, buf + i * 2 * DU_G, 1);
		du_unmap(dom, v[i], 1, 0);
	}
	cr_assert_eq(du_stats(dom).teardown_evictions, 1, "16 KiB kept in a 12 KiB budget");
	cr_assert_eq(du_simc(be).mapped_pages, 3);
	DU_OK(iovaq_domain_sync(dom));	/* the evicted one's invalidation */
	cr_assert_not(reachable(be, v[0]), "the oldest was not the one unmapped");
	cr_assert_eq(du_simc(be).mapped_pages, 0, "sync unmaps what teardown kept");
	DU_CHECK(dom);
	/* A buffer larger than the whole budget is not kept at all. */
	v[0] = du_map(dom, buf, 4);
	du_unmap(dom, v[0], 4, 0);
	cr_assert_eq(du_simc(be).mapped_pages, 0, "a 16 KiB buffer kept in a 12 KiB budget");
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Second chance: a kept buffer that was reused since it was kept is passed over once when the
 * budget needs room; the oldest one that was not goes instead.
 */
Test(teardown_budget, second_chance)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = budget_domain(be, 3 * DU_G);
	uint8_t *buf = du_buf(10, 2);
	uint8_t *a = buf, *b = buf + 2 * DU_G, *c = buf + 4 * DU_G, *d = buf + 6 * DU_G,
		*e = buf + 8 * DU_G;
	iovaq_iova_t va, vb, vc, vd, ve, again;

	va = du_map(dom, a, 1);
	du_unmap(dom, va, 1, 0);
	again = du_map(dom, a, 1);	/* reused: no map, same IOVA */
	cr_assert_eq(again, va);
	cr_assert_eq(du_stats(dom).teardown_hits, 1);
	du_unmap(dom, va, 1, 0);	/* kept again, with its second chance */
	vb = du_map(dom, b, 1);
	du_unmap(dom, vb, 1, 0);
	vc = du_map(dom, c, 1);
	du_unmap(dom, vc, 1, 0);	/* a (reused), b, c: the budget is full */
	vd = du_map(dom, d, 1);
	du_unmap(dom, vd, 1, 0);	/* needs room: a is passed over, b goes */
	cr_assert_eq(du_stats(dom).teardown_evictions, 1);
	cr_assert(reachable(be, va), "the reused buffer lost its second chance");
	cr_assert_not(reachable(be, vb), "the oldest unreused buffer is still mapped");
	cr_assert(reachable(be, vc));
	cr_assert(reachable(be, vd));
	DU_CHECK(dom);
	ve = du_map(dom, e, 1);
	du_unmap(dom, ve, 1, 0);	/* room again: a's chance is spent, a goes */
	cr_assert_eq(du_stats(dom).teardown_evictions, 2);
	cr_assert_not(reachable(be, va), "a kept its chance twice");
	cr_assert(reachable(be, vc));
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* Number of runs of IOVA-adjacent single pages in @v (sorted here). */
static uint64_t adjacent_runs(iovaq_iova_t *v, uint64_t n)
{
	uint64_t runs = 0;

	for (uint64_t i = 1; i < n; i++)
		for (uint64_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			iovaq_iova_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	for (uint64_t i = 0; i < n; i++)
		runs += !i || v[i] != v[i - 1] + DU_G;
	return runs;
}

/*
 * Out of backend mappings (VFIO type1's dma_entry_limit, here the sim's injected -ENOSPC): the
 * map unmaps what teardown kept, one backend unmap per run of IOVA-adjacent mappings, flushes
 * and retries once; only when nothing was kept does -ENOSPC reach the caller.
 */
Test(teardown_nospc, evicts_kept_coalesced_and_retries)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = budget_domain(be, 0);
	uint8_t *buf = du_buf(16, 3);
	iovaq_iova_t v[6], w, sorted[6];
	uint64_t unmaps0, runs;
	struct iovaq_domain_stats s;

	for (uint64_t i = 0; i < 6; i++)
		sorted[i] = v[i] = du_map(dom, buf + i * 2 * DU_G, 1);
	for (uint64_t i = 0; i < 6; i++)
		du_unmap(dom, v[i], 1, 0);
	cr_assert_eq(du_simc(be).mapped_pages, 6, "teardown keeps them mapped");
	runs = adjacent_runs(sorted, 6);
	cr_assert_lt(runs, 6, "the allocator gave six single pages no two adjacent IOVAs");
	unmaps0 = du_simc(be).unmaps;
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -ENOSPC);
	w = du_map(dom, buf + 13 * DU_G, 1);
	s = du_stats(dom);
	cr_assert_eq(s.teardown_evictions, 6);
	cr_assert_eq(s.flush_nospc, 1);
	cr_assert_eq(du_simc(be).unmaps - unmaps0, runs,
		     "%" PRIu64 " backend unmaps for %" PRIu64 " runs of adjacent kept mappings",
		     du_simc(be).unmaps - unmaps0, runs);
	cr_assert_eq(du_simc(be).mapped_pages, 1);
	for (uint64_t i = 0; i < 6; i++)
		cr_assert_not(reachable(be, v[i]), "kept mapping 0x%" PRIx64 " survived", v[i]);
	DU_CHECK(dom);

	/* Nothing kept or queued: the backend's -ENOSPC is the answer, and nothing changed. */
	DU_OK(iovaq_domain_sync(dom));
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -ENOSPC);
	cr_assert_eq(iovaq_domain_map(dom, buf + 15 * DU_G, DU_G, IOVAQ_PROT_READ,
				      IOVAQ_LIMIT_NONE, &v[0]), -ENOSPC);
	cr_assert_eq(du_stats(dom).flush_nospc, 1, "a flush with nothing to give back");
	DU_CHECK(dom);
	v[0] = du_map(dom, buf + 15 * DU_G, 1);	/* usable again */
	du_unmap(dom, v[0], 1, 0);
	du_unmap(dom, w, 1, 0);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Kept mappings separated by a live one are two runs: never one unmap across the live one.
 * A backend error on the second run leaves it kept, and the next sync finishes it.
 */
Test(teardown_nospc, runs_stop_at_live_mappings)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = budget_domain(be, 0);
	uint8_t *buf = du_buf(8, 4);
	iovaq_iova_t v[3], s[3];
	uint64_t unmaps0;

	for (uint64_t i = 0; i < 3; i++)
		s[i] = v[i] = du_map(dom, buf + i * 2 * DU_G, 1);
	cr_assert_eq(adjacent_runs(s, 3), 1, "three single pages not adjacent");
	/* Unmap the outer two of the three adjacent IOVAs; the middle one stays live. */
	du_unmap(dom, s[0], 1, 0);
	du_unmap(dom, s[2], 1, 0);
	unmaps0 = du_simc(be).unmaps;
	du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 2, -EIO);
	cr_assert_eq(iovaq_domain_sync(dom), -EIO);
	cr_assert_eq(du_simc(be).unmaps - unmaps0, 1, "the first run");
	cr_assert_eq(du_stats(dom).teardown_evictions, 1);
	cr_assert(reachable(be, s[1]), "the live mapping between them was unmapped");
	DU_CHECK(dom);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).unmaps - unmaps0, 2);
	cr_assert_eq(du_stats(dom).teardown_evictions, 2);
	cr_assert(reachable(be, s[1]));
	cr_assert_eq(du_simc(be).mapped_pages, 1);
	du_unmap(dom, s[1], 1, 0);
	DU_OK(iovaq_domain_sync(dom));
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/* An arena link out of backend mappings gets the kept ones back too. */
Test(teardown_nospc, arena_link_retries)
{
	struct iovaq_backend *be = du_sim_open(0);
	struct iovaq_domain *dom = budget_domain(be, 0);
	uint8_t *buf = du_buf(8, 5);
	struct iovaq_arena *a = NULL;
	iovaq_iova_t v, base;

	v = du_map(dom, buf, 1);
	du_unmap(dom, v, 1, 0);
	DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -ENOSPC);
	DU_OK(iovaq_arena_link(a, 0, buf + 4 * DU_G, 4 * DU_G, IOVAQ_PROT_READ, &base));
	cr_assert_eq(du_stats(dom).teardown_evictions, 1);
	cr_assert_eq(du_stats(dom).flush_nospc, 1);
	cr_assert_not(reachable(be, v));
	DU_CHECK(dom);
	DU_OK(iovaq_arena_unlink(a, 0, 4 * DU_G));
	iovaq_arena_release(a);
	DU_OK(iovaq_domain_sync(dom));
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}
