// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Regressions found by the fuzzer (tests/fuzz/fuzz_domain.c), one test per finding, each
 * with the input's story (the input is also in the fuzzer's seed corpus), and failure paths
 * that the fuzzer's sim cannot produce by itself.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#include "testutil.h"
#include "domutil.h"

#define BIG_WINDOW (3600ull * 1000000000ull)

/* A one-page device read at @iova: 0 if it translated through a live mapping. */
static int read_page(struct iovaq_backend *be, iovaq_iova_t iova, uint64_t *stale)
{
	uint8_t tmp[4096];
	struct iovaq_sim_access res = { 0 };
	int err = iovaq_sim_dma(iovaq_sim_of(be), iova, tmp, sizeof(tmp), 0, &res);

	*stale = res.stale_pages;
	return err;
}

static void expect_unreachable(struct iovaq_backend *be, iovaq_iova_t iova)
{
	uint64_t stale;

	cr_assert_eq(read_page(be, iova, &stale), -EFAULT, "0x%" PRIx64 " still translates",
		     iova);
	cr_assert_eq(stale, 0);
	du_drain_faults(be, 0);
}

/*
 * Found 2026-11-22 (a safe-deferred sequence ending in an arena release while an unmap failure
 * was armed): iovaq_arena_release() stopped at the refused unlink and left the rest "to
 * destroy", so the arena's linked pages stayed mapped while iovaq_domain_sync() returned 0:
 * the device could reach released pages after the sync that promised otherwise. Now the
 * arena passes to the domain, and sync retries the unlinks and reports a failure.
 */
Test(regress, arena_release_with_refused_unlink_is_finished_by_sync)
{
	for (uint32_t policy = 0; policy < IOVAQ_POLICY_PASSTHROUGH; policy++) {
		struct iovaq_backend *be = du_sim_open(0);
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy,
			   .max_window_ns = BIG_WINDOW);
		struct iovaq_domain *dom = du_domain(&o);
		uint8_t *buf = du_buf(2, 7);
		struct iovaq_arena *a;
		iovaq_iova_t base;
		uint64_t stale;
		int err;

		DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
		base = iovaq_arena_base(a);
		DU_OK(iovaq_arena_link(a, 0, buf, 4096, IOVAQ_PROT_READ, NULL));
		DU_OK(iovaq_arena_link(a, 1, buf + 4096, 4096, IOVAQ_PROT_READ, NULL));
		du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 1, -EIO);
		iovaq_arena_release(a);	/* the first unlink is refused */
		cr_assert_eq(read_page(be, base, &stale), 0, "page 0 should still be mapped");
		DU_CHECK(dom);

		/* A sync that meets a refusal again says so, and the pages stay mapped. */
		du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 1, -EIO);
		err = iovaq_domain_sync(dom);
		cr_assert_eq(err, -EIO, "policy %u: sync returned %d", policy, err);
		cr_assert_eq(read_page(be, base, &stale), 0);
		DU_CHECK(dom);

		/* The next sync finishes the release: nothing of the arena translates. */
		DU_OK(iovaq_domain_sync(dom));
		expect_unreachable(be, base);
		expect_unreachable(be, base + 4096);
		cr_assert_eq(du_stats(dom).mapped_pages, 0);
		cr_assert_eq(du_win(dom).reachable_pages, 0);
		DU_CHECK(dom);
		iovaq_domain_destroy(dom);
		cr_assert_eq(du_simc(be).mapped_pages, 0);
		iovaq_backend_close(be);
		free(buf);
	}
}

/*
 * Found 2026-11-22 by the long fuzz run (strict, a flush failure armed): a strict
 * iovaq_arena_sync() whose invalidation failed left its pages queued, as documented, but the
 * next iovaq_arena_sync() of the arena, with nothing unlinked since, returned 0 without
 * retrying it: the device still reached the page through its IOTLB after a successful strict
 * sync. Now a strict arena sync retries the arena's failed sync and returns its outcome.
 */
Test(regress, strict_arena_sync_retries_a_failed_sync)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT,
		   .max_window_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	uint8_t *buf = du_buf(1, 3);
	struct iovaq_arena *a;
	iovaq_iova_t base;
	uint64_t stale;

	DU_OK(iovaq_arena_reserve(dom, 4, IOVAQ_LIMIT_NONE, &a));
	base = iovaq_arena_base(a);
	DU_OK(iovaq_arena_link(a, 0, buf, 4096, IOVAQ_PROT_READ, NULL));
	cr_assert_eq(read_page(be, base, &stale), 0);	/* the IOTLB now holds the page */
	DU_OK(iovaq_arena_unlink(a, 0, 4096));
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	cr_assert_eq(iovaq_arena_sync(a, 1), -EIO);
	cr_assert_eq(iovaq_arena_link(a, 0, buf, 4096, IOVAQ_PROT_READ, NULL), -EBUSY,
		     "a page whose sync failed was linked again");
	DU_CHECK(dom);

	/* Another failure is reported again; then the retry succeeds. */
	du_fail_nth(be, IOVAQ_SIM_OP_FLUSH, 1, -EIO);
	cr_assert_eq(iovaq_arena_sync(a, 2), -EIO);
	DU_OK(iovaq_arena_sync(a, 3));
	expect_unreachable(be, base);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	DU_CHECK(dom);
	DU_OK(iovaq_arena_link(a, 0, buf, 4096, IOVAQ_PROT_READ, NULL));
	iovaq_arena_release(a);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	cr_assert_eq(du_simc(be).mapped_pages, 0);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Found with the one above: under optimistic teardown, a kept mapping whose eviction the
 * backend refused stayed mapped while iovaq_domain_sync() returned 0. Now sync returns the
 * refusal, and the next sync evicts it.
 */
Test(regress, sync_reports_a_refused_teardown_eviction)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .teardown_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	uint8_t *buf = du_buf(1, 8);
	iovaq_iova_t iova = du_map(dom, buf, 1);
	uint64_t stale;

	du_unmap(dom, iova, 1, 0);	/* kept: still mapped */
	cr_assert_eq(read_page(be, iova, &stale), 0);
	du_fail_nth(be, IOVAQ_SIM_OP_UNMAP, 1, -EIO);
	cr_assert_eq(iovaq_domain_sync(dom), -EIO);
	cr_assert_eq(read_page(be, iova, &stale), 0, "a refused eviction leaves it mapped");
	cr_assert_gt(du_win(dom).reachable_pages, 0, "and its release is still reachable");
	DU_CHECK(dom);
	DU_OK(iovaq_domain_sync(dom));
	expect_unreachable(be, iova);
	cr_assert_eq(du_win(dom).reachable_pages, 0);
	DU_CHECK(dom);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Not a fuzzer finding: the backend out of mappings (VFIO type1's 65535 limit, here injected
 * as -ENOSPC from the sim's map). Mappings that optimistic teardown keeps hold some of them:
 * the domain unmaps those and tries once more; with nothing to give back, -ENOSPC reaches the
 * caller and nothing is lost.
 */
Test(regress, backend_out_of_mappings_evicts_kept_and_retries)
{
	struct iovaq_backend *be = du_sim_open(0);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .max_window_ns = BIG_WINDOW, .teardown_ns = BIG_WINDOW);
	struct iovaq_domain *dom = du_domain(&o);
	uint8_t *buf = du_buf(2, 9);
	iovaq_iova_t kept = du_map(dom, buf, 1), iova = 0;

	du_unmap(dom, kept, 1, 0);	/* kept: still mapped */
	cr_assert_eq(du_simc(be).mapped_pages, 1);
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -ENOSPC);
	DU_OK(iovaq_domain_map(dom, buf + 4096, 4096, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE, &iova));
	cr_assert_eq(du_stats(dom).teardown_evictions, 1, "the kept mapping was unmapped");
	cr_assert_eq(du_simc(be).mapped_pages, 1, "only the new mapping is left");
	cr_assert_neq(iova, kept, "the IOVA was allocated while the kept one was held");
	expect_unreachable(be, kept);
	DU_CHECK(dom);
	/* Nothing left to give back: the caller gets -ENOSPC, and nothing changed. */
	du_fail_nth(be, IOVAQ_SIM_OP_MAP, 1, -ENOSPC);
	cr_assert_eq(iovaq_domain_map(dom, buf, 4096, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE, &kept),
		     -ENOSPC);
	cr_assert_eq(du_stats(dom).map_errors, 1);
	cr_assert_eq(du_stats(dom).mapped_pages, 1);
	DU_CHECK(dom);
	du_unmap(dom, iova, 1, 0);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(buf);
}
