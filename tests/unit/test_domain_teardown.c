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
