// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * IOVAQ_KSHIM_BENCH: the nic-rx pattern (a FIFO ring of 4 KiB buffers: map the newest, unmap
 * the oldest) run inside the kernel on the bound device, so that no system call is counted.
 * DOMAIN mode goes through libiovaq's domain and the kernel backend; RAW_STRICT is the
 * baseline the kernel offers without the library: iommu_map() + iommu_unmap() per page.
 * RAW_ARENA makes the IOMMU calls the library's ARENA path makes (with one-page groups, those
 * of its DOMAIN path under strict), with nothing else, from scatterlists built before the
 * clock starts: the difference is the library's own cost (the core, the backend's
 * bookkeeping, describing the pages). RAW_ARENA_BUILD describes each link's pages in the loop
 * as cheaply as a caller can, to tell that part from the rest.
 *
 * ARENA mode (F&S, SOSP'24): the ring is cut into groups of @arena_pages consecutive slots,
 * each with an arena of its own (one contiguous, size-aligned IOVA chunk). One
 * iovaq_arena_linkv() of the group's pages (one segment per separately allocated page) covers
 * the group: the backend maps it with one iommu_map_sg() (one map-side sync, where per-page
 * iommu_map() syncs each page under caching mode), and one unlink + iovaq_arena_sync()
 * releases it with one unmap and one command. When @count is not a multiple of @arena_pages,
 * the last link covers the first count % arena_pages pages of its group only, so that
 * exactly @count pages are mapped and unmapped. A group whose last sync has not been handed
 * back (safe-deferred) waits for it with iovaq_domain_sync() before its next link, as a driver
 * would; under the other policies a link that finds the arena not yet safe (-EBUSY) does.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/scatterlist.h>

#include <uapi/iovaq/kshim.h>
#include "iovaq_kshim.h"

static void free_ring(void **bufs, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (bufs[i])
			free_page((unsigned long)bufs[i]);
	kvfree(bufs);
}

static int bench_raw(struct iovaq_backend *be, struct iovaq_kshim_bench *b, void **bufs)
{
	struct iommu_domain *dom = iovaq_kbackend_domain(be);
	struct iovaq_backend_caps c = { .sz = sizeof(c) };
	u64 base, t0;
	u32 i;
	int err;

	err = iovaq_backend_get_caps(be, &c);
	if (err)
		return err;
	base = c.apertures[0].start;
	if (c.apertures[0].last - base < (u64)b->ring << PAGE_SHIFT)
		return -ENOSPC;
	t0 = ktime_get_ns();
	for (i = 0; i < b->count + b->ring; i++) {
		u64 slot = base + ((u64)(i % b->ring) << PAGE_SHIFT);

		if (i >= b->ring) {	/* the oldest buffer comes back: strict unmap */
			if (iommu_unmap(dom, slot, PAGE_SIZE) != PAGE_SIZE) {
				err = -EIO;
				break;
			}
			b->unmaps++;
			b->syncs++;
		}
		if (i < b->count) {
			err = iommu_map(dom, slot, virt_to_phys(bufs[i % b->ring]), PAGE_SIZE,
					IOMMU_READ | IOMMU_WRITE, GFP_KERNEL);
			if (err)
				break;
			b->maps++;
		}
	}
	b->elapsed_ns = ktime_get_ns() - t0;
	if (err)	/* nothing may stay mapped behind the backend's back */
		iommu_unmap(dom, base, (size_t)b->ring << PAGE_SHIFT);
	return err;
}

/*
 * RAW_ARENA_BUILD: as RAW_ARENA, but each link describes its pages in the loop, the cheapest
 * way a caller holding them can: one reused scatterlist, each entry initialised as it is taken,
 * sg_set_page() per page, pages that follow each other physically sharing an entry. What any caller of iommu_map_sg() pays for
 * pages it did not describe before.
 */
static int raw_map_built(struct iommu_domain *dom, u64 iova, void **bufs, u32 np,
			 struct scatterlist *sg)
{
	size_t len = (size_t)np << PAGE_SHIFT;
	unsigned int n = 0;
	ssize_t mapped;
	u32 j;

	for (j = 0; j < np; j++) {
		struct page *pg = virt_to_page(bufs[j]);

		if (n && page_to_pfn(sg_page(&sg[n - 1])) + (sg[n - 1].length >> PAGE_SHIFT) ==
			 page_to_pfn(pg)) {
			sg[n - 1].length += PAGE_SIZE;
			continue;
		}
		memset(&sg[n], 0, sizeof(*sg));	/* each entry as it is taken */
		sg_mark_end(&sg[n]);
		if (n)
			sg_unmark_end(&sg[n - 1]);
		sg_set_page(&sg[n++], pg, PAGE_SIZE, 0);
	}
	mapped = iommu_map_sg(dom, iova, sg, n, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL);
	if (mapped != (ssize_t)len)
		return mapped < 0 ? mapped : -ENOMEM;
	return 0;
}

/*
 * RAW_ARENA: groups of @arena_pages ring slots at consecutive, group-aligned IOVAs, each
 * mapped with one iommu_map_sgtable() of a table built before the clock starts, and released
 * with one iommu_unmap_fast() and one iommu_iotlb_sync(). The last link is partial when
 * @count is not a multiple of @arena_pages, as in ARENA mode.
 */
static int bench_raw_arena(struct iovaq_backend *be, struct iovaq_kshim_bench *b, void **bufs)
{
	struct iommu_domain *dom = iovaq_kbackend_domain(be);
	struct iovaq_backend_caps c = { .sz = sizeof(c) };
	u32 a = b->arena_pages, ng = b->ring / a, n = DIV_ROUND_UP(b->count, a);
	u32 rem = b->count - (n - 1) * a;	/* pages of the last link */
	bool build = b->mode == IOVAQ_KSHIM_BENCH_RAW_ARENA_BUILD;
	struct sg_table *sgt, *last;
	struct scatterlist *sg = NULL;
	struct page **pages;
	u32 *linked;
	u64 base, t0;
	u32 i, j;
	int err;

	err = iovaq_backend_get_caps(be, &c);
	if (err)
		return err;
	base = round_up(c.apertures[0].start, (u64)a << PAGE_SHIFT);
	if (base > c.apertures[0].last || c.apertures[0].last - base < (u64)b->ring << PAGE_SHIFT)
		return -ENOSPC;
	/* One table per group, and one more for the partial last link. */
	sgt = kvcalloc(ng + 1, sizeof(*sgt), GFP_KERNEL);
	linked = kvcalloc(ng, sizeof(*linked), GFP_KERNEL);
	pages = kvcalloc(a, sizeof(*pages), GFP_KERNEL);
	if (!sgt || !linked || !pages) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i <= ng && !err; i++) {
		u32 k = i < ng ? i : (n - 1) % ng;
		u32 np = i < ng ? a : rem;

		for (j = 0; j < np; j++)
			pages[j] = virt_to_page(bufs[k * a + j]);
		err = sg_alloc_table_from_pages(&sgt[i], pages, np, 0, (size_t)np << PAGE_SHIFT,
						GFP_KERNEL);
	}
	if (!err && build) {
		sg = kvcalloc(a, sizeof(*sg), GFP_KERNEL);
		err = sg ? 0 : -ENOMEM;
	}
	if (err)
		goto out;
	last = &sgt[ng];
	t0 = ktime_get_ns();
	for (i = 0; i < n + ng; i++) {
		u32 k = i % ng;
		u64 iova = base + ((u64)k * a << PAGE_SHIFT);

		if (i >= ng) {
			struct iommu_iotlb_gather g;
			size_t len = (size_t)linked[k] << PAGE_SHIFT;

			iommu_iotlb_gather_init(&g);
			if (iommu_unmap_fast(dom, iova, len, &g) != len) {
				err = -EIO;
				break;
			}
			linked[k] = 0;
			iommu_iotlb_sync(dom, &g);
			b->unmaps++;
			b->syncs++;
		}
		if (i < n) {
			struct sg_table *t = i == n - 1 ? last : &sgt[k];
			u32 np = i == n - 1 ? rem : a;
			ssize_t mapped;

			if (build) {
				err = raw_map_built(dom, iova, &bufs[k * a], np, sg);
				if (err)
					break;
			} else {
				mapped = iommu_map_sgtable(dom, iova, t, IOMMU_READ | IOMMU_WRITE);
				if (mapped != (ssize_t)np << PAGE_SHIFT) {
					err = mapped < 0 ? mapped : -ENOMEM;
					break;
				}
			}
			linked[k] = np;
			b->maps++;
		}
	}
	b->elapsed_ns = ktime_get_ns() - t0;
	if (err)	/* nothing may stay mapped behind the backend's back */
		iommu_unmap(dom, base, (size_t)b->ring << PAGE_SHIFT);
out:
	if (sgt)
		for (i = 0; i <= ng; i++)
			sg_free_table(&sgt[i]);
	kvfree(sg);
	kvfree(sgt);
	kvfree(linked);
	kvfree(pages);
	return err;
}

/* ARENA mode: one arena per group of @a consecutive ring slots, its pages as segments. */
struct arenas {
	u32 n, a;
	struct iovaq_arena **ar;
	struct iovaq_seg *segs;	/* one per ring slot: group k's are segs[k * a ...] */
	u32 *linked;	/* pages of the group's current link (its unlink must match) */
	bool *busy;	/* safe-deferred: the group's last sync not handed back yet */
};

static void arenas_free(struct arenas *g)
{
	u32 i;

	for (i = 0; g->ar && i < g->n; i++)
		if (g->ar[i])
			iovaq_arena_release(g->ar[i]);
	kvfree(g->ar);
	kvfree(g->segs);
	kvfree(g->linked);
	/* g->busy stays until the domain is gone: a completion may still come (the caller's). */
}

static int arenas_init(struct iovaq_domain *d, struct arenas *g, void **bufs, u32 ring, u32 a)
{
	u32 i;
	int err = 0;

	g->n = ring / a;
	g->a = a;
	g->ar = kvcalloc(g->n, sizeof(*g->ar), GFP_KERNEL);
	g->segs = kvcalloc(ring, sizeof(*g->segs), GFP_KERNEL);
	g->linked = kvcalloc(g->n, sizeof(*g->linked), GFP_KERNEL);
	g->busy = kvcalloc(g->n, sizeof(*g->busy), GFP_KERNEL);
	if (!g->ar || !g->segs || !g->linked || !g->busy)
		return -ENOMEM;
	for (i = 0; i < ring; i++)
		g->segs[i] = (struct iovaq_seg){ bufs[i], PAGE_SIZE };
	for (i = 0; i < g->n && !err; i++)
		err = iovaq_arena_reserve(d, a, IOVAQ_LIMIT_NONE, &g->ar[i]);
	return err;
}

/*
 * Link the first @pages pages of group @k, waiting for its arena's last unlink to be safe if
 * need be: under safe-deferred the driver knows from the completion (the sync's cookie handed
 * back), as a driver reusing its buffers would; under deferred the link's -EBUSY tells.
 */
static int arena_link(struct iovaq_domain *d, struct arenas *g, u32 k, u32 pages)
{
	const struct iovaq_seg *segs = &g->segs[k * g->a];
	int err = 0;

	if (READ_ONCE(g->busy[k]))
		err = iovaq_domain_sync(d);
	if (!err)
		err = iovaq_arena_linkv(g->ar[k], 0, segs, pages,
					IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, NULL);
	if (err == -EBUSY) {
		err = iovaq_domain_sync(d);
		if (!err)
			err = iovaq_arena_linkv(g->ar[k], 0, segs, pages,
						IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, NULL);
	}
	if (!err)
		g->linked[k] = pages;
	return err;
}

/*
 * Unlink group @k's current link and sync its arena with one command; @cookie (a multiple of
 * the group count plus @k) names the group in the completion.
 */
static int arena_unlink(struct arenas *g, u32 k, u64 cookie, bool notify)
{
	int err = iovaq_arena_unlink(g->ar[k], 0, (size_t)g->linked[k] << PAGE_SHIFT);

	if (!err) {
		g->linked[k] = 0;
		/* Before the sync: its completion may come from inside it. */
		WRITE_ONCE(g->busy[k], notify);
		err = iovaq_arena_sync(g->ar[k], cookie);
	}
	return err;
}

/* A safe-deferred arena sync is safe: its group's pages may be linked again. */
static void arena_complete(void *arg, uint64_t cookie)
{
	struct arenas *g = arg;

	WRITE_ONCE(g->busy[cookie % g->n], false);
}

static int bench_domain(struct iovaq_backend *be, struct iovaq_kshim_bench *b, void **bufs)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = b->policy);
	IOVAQ_OPTS(iovaq_domain_stats, st);
	IOVAQ_OPTS(iovaq_window_report, w);
	bool arena = b->mode == IOVAQ_KSHIM_BENCH_ARENA;
	struct iovaq_kbe_counters c0, c1;
	struct arenas g = { 0 };
	struct iovaq_domain *d;
	iovaq_iova_t *iovas;
	u64 t0;
	u32 i, n;
	int err, e2;

	/* Safe-deferred arena syncs hand their cookie back. */
	if (arena) {
		o.complete = arena_complete;
		o.complete_arg = &g;
	}
	iovas = kvcalloc(b->ring, sizeof(*iovas), GFP_KERNEL);
	if (!iovas)
		return -ENOMEM;
	err = iovaq_domain_create(&o, &d);
	if (err)
		goto out;
	if (arena) {
		err = arenas_init(d, &g, bufs, b->ring, b->arena_pages);
		if (err)
			goto destroy;
	}
	iovaq_kbackend_counters(be, &c0);
	t0 = ktime_get_ns();
	if (arena) {
		/*
		 * Map the newest group, release the oldest; the last link may be partial, so
		 * that @count pages in all are mapped.
		 */
		n = DIV_ROUND_UP(b->count, g.a);
		for (i = 0; i < n + g.n && !err; i++) {
			u32 k = i % g.n;

			if (i >= g.n)
				err = arena_unlink(&g, k, i,
						   b->policy == IOVAQ_POLICY_SAFE_DEFERRED);
			if (!err && i < n)
				err = arena_link(d, &g, k, min(g.a, b->count - i * g.a));
		}
	} else {
		for (i = 0; i < b->count + b->ring && !err; i++) {
			u32 s = i % b->ring;

			if (i >= b->ring)
				err = iovaq_domain_unmap(d, iovas[s], PAGE_SIZE, i);
			if (!err && i < b->count)
				err = iovaq_domain_map(d, bufs[s], PAGE_SIZE,
						       IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
						       IOVAQ_LIMIT_NONE, &iovas[s]);
		}
	}
	e2 = iovaq_domain_sync(d);
	err = err ?: e2;
	b->elapsed_ns = ktime_get_ns() - t0;
	iovaq_kbackend_counters(be, &c1);
	b->maps = c1.maps - c0.maps;
	b->unmaps = c1.unmaps - c0.unmaps;
	b->syncs = (c1.syncs - c0.syncs) + (c1.flush_all - c0.flush_all);
	b->backend_ns = c1.op_ns - c0.op_ns;
	b->iommu_ns = c1.iommu_ns - c0.iommu_ns;
	if (!iovaq_domain_get_stats(d, &st)) {
		b->flushes = st.flushes;
		b->inval_cmds = st.inval_cmds;
	}
	if (!iovaq_domain_window(d, &w)) {
		b->window_p50_ns = w.window_p50_ns;
		b->window_p99_ns = w.window_p99_ns;
		b->window_max_ns = w.window_max_ns;
		b->unsafe_reuse = w.unsafe_reuse;
		b->violations = w.violations;
	}
destroy:
	arenas_free(&g);
	iovaq_domain_destroy(d);
	kvfree(g.busy);
out:
	kvfree(iovas);
	return err;
}

int iovaq_kbench_run(struct iovaq_backend *be, struct iovaq_kshim_bench *b)
{
	struct iovaq_kbe_counters c;
	void **bufs;
	u32 i;
	int err;

	if (b->reserved || !b->count || b->count > 1000000 || !b->ring || b->ring > 4096 ||
	    b->mode > IOVAQ_KSHIM_BENCH_RAW_ARENA_BUILD || b->policy >= IOVAQ_POLICY_NR)
		return -EINVAL;
	if (b->mode != IOVAQ_KSHIM_BENCH_DOMAIN && b->mode != IOVAQ_KSHIM_BENCH_RAW_STRICT &&
	    (!b->arena_pages || b->arena_pages > 4096 || !is_power_of_2(b->arena_pages) ||
	     b->ring % b->arena_pages))
		return -EINVAL;
	if (b->mode == IOVAQ_KSHIM_BENCH_ARENA && b->policy == IOVAQ_POLICY_PASSTHROUGH)
		return -EINVAL;
	iovaq_kbackend_counters(be, &c);
	if (c.live_maps)
		return -EBUSY;	/* the bench's IOVAs would collide with the file's mappings */
	bufs = kvcalloc(b->ring, sizeof(*bufs), GFP_KERNEL);
	if (!bufs)
		return -ENOMEM;
	for (i = 0; i < b->ring; i++) {
		bufs[i] = (void *)get_zeroed_page(GFP_KERNEL);
		if (!bufs[i]) {
			free_ring(bufs, b->ring);
			return -ENOMEM;
		}
	}
	if (b->mode == IOVAQ_KSHIM_BENCH_RAW_STRICT)
		err = bench_raw(be, b, bufs);
	else if (b->mode == IOVAQ_KSHIM_BENCH_RAW_ARENA ||
		 b->mode == IOVAQ_KSHIM_BENCH_RAW_ARENA_BUILD)
		err = bench_raw_arena(be, b, bufs);
	else
		err = bench_domain(be, b, bufs);
	free_ring(bufs, b->ring);
	return err;
}
