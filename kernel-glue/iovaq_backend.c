// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The kernel IOMMU backend of iovaq.ko, and the iovaq_backend_*() wrappers the core calls
 * (userspace has them in src/backend/backend.c, with its registry; here there is one backend).
 *
 * Batching (FACTS.md, "Kernel-side batching"): map is one iommu_map_sg() per call, which syncs
 * the map side once however many pages the buffer has; unmap is iommu_unmap_fast() into a
 * gather that is not synced, so the IOTLB still holds the translation; flush is one
 * iommu_iotlb_sync() per planned command. The IOMMU driver frees the page-table pages an unmap
 * released only after a sync of a gather that carries them: unmap moves them to a pending
 * list, and flush hands the list to one extra sync over the union of the ranges that freed
 * them (that sync is not leaf-only, since its gather carries pages). Pinned user pages are
 * released after the first flush whose commands cover their mapping: after t_safe.
 *
 * Locking: @lock (a mutex) protects the mapping tree, the pending table pages and the unpin
 * list. The IOMMU calls are made outside it except for unmap, which must remove the tree
 * entries and unmap them as one step. A map enters the tree before its iommu_map_sg(), so
 * that an overlapping map fails before touching the page table.
 *
 * The records are an rbtree embedded in them rather than a maple tree: no allocation and no
 * RCU-deferred free per map (the maple tree's insert and erase were a fifth of a strict
 * map + unmap's time in the testbed's profile, tests/vm/kglue/profile.sh).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/scatterlist.h>
#include <linux/iommu.h>
#include <linux/rbtree.h>
#include <linux/list.h>
#include <linux/overflow.h>
#include <linux/atomic.h>
#include <asm/cpufeature.h>

#include "backend_priv.h"
#include "backend_core.h"
#include "iovaq_kshim.h"

static int caching_mode = -1;
module_param(caching_mode, int, 0444);
MODULE_PARM_DESC(caching_mode,
		 "Report a virtual IOMMU in caching mode: 1 yes, 0 no, -1 when running under a hypervisor");

static bool timing;
module_param(timing, bool, 0644);
MODULE_PARM_DESC(timing,
		 "Count the ns spent in the backend's map, unmap and flush, and in the IOMMU calls they make (two clock reads each; the BENCH ioctl reports them)");

/* Start timing: 0 when the timing parameter is off. */
static inline u64 tm_start(void)
{
	return timing ? ktime_get_ns() : 0;
}

static inline void tm_add(atomic64_t *ns, u64 t0)
{
	if (t0)
		atomic64_add(ktime_get_ns() - t0, ns);
}

struct kmapping {
	unsigned long iova;
	size_t len;
	struct page **pages;	/* user host: pinned pages; NULL for kernel addresses */
	unsigned long npages;
	struct rb_node rb;	/* in kbe.maps while mapped */
	struct list_head node;	/* the unpin list, after unmap */
};

struct kbe {
	struct iovaq_backend base;
	struct device *dev;
	struct iommu_domain *dom;
	enum iovaq_khost host;
	struct mm_struct *mm;		/* user host: the opener's mm (mmgrab) */

	struct mutex lock;
	struct rb_root maps;		/* the mappings by IOVA (disjoint) */
	struct list_head freelist;	/* page-table pages freed by unmaps, until a flush */
	unsigned long ft_start, ft_end;	/* the ranges that freed them, [start, end] */
	struct list_head unpin;		/* unmapped, awaiting an invalidation that covers them */

	atomic64_t maps_n, map_pages, unmaps_n, unmap_pages, syncs, sync_tables, flush_all;
	atomic64_t pinned, unpinned, live;
	atomic64_t op_ns, iommu_ns;	/* the timing parameter: in the ops, in the IOMMU calls */
};

static inline struct kbe *to_kbe(struct iovaq_backend *be)
{
	return container_of(be, struct kbe, base);
}

/* The mapping of lowest IOVA that ends at or after @iova, or NULL. @lock held. */
static struct kmapping *kbe_first_from(struct kbe *k, unsigned long iova)
{
	struct rb_node *n = k->maps.rb_node;
	struct kmapping *best = NULL;

	while (n) {
		struct kmapping *m = rb_entry(n, struct kmapping, rb);

		if (m->iova + m->len - 1 >= iova) {
			best = m;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return best;
}

/* Enter @m unless it overlaps a mapping: -EEXIST. @lock held. */
static int kbe_insert(struct kbe *k, struct kmapping *m)
{
	struct rb_node **p = &k->maps.rb_node, *parent = NULL;
	struct kmapping *next = kbe_first_from(k, m->iova);

	if (next && next->iova <= m->iova + m->len - 1)
		return -EEXIST;
	while (*p) {
		parent = *p;
		p = m->iova < rb_entry(parent, struct kmapping, rb)->iova ? &parent->rb_left :
									    &parent->rb_right;
	}
	rb_link_node(&m->rb, parent, p);
	rb_insert_color(&m->rb, &k->maps);
	return 0;
}

static void kmapping_release(struct kbe *k, struct kmapping *m)
{
	if (m->pages) {
		unpin_user_pages(m->pages, m->npages);
		kvfree(m->pages);
		atomic64_sub(m->npages, &k->pinned);
		atomic64_add(m->npages, &k->unpinned);
	}
	atomic64_dec(&k->live);
	kfree(m);
}

/*
 * Describing the host memory of a map: a scatterlist built in one pass, pages that follow each
 * other physically sharing an entry (what sg_alloc_table_from_pages() does, without its page
 * array), each entry initialised when it is taken (not the whole array up front: a memset of
 * 2 KiB per 64-page arena link showed in the profile). A map of a few entries keeps them on
 * the stack.
 */
#define KBE_SG_STACK 4
#define KBE_SG_SMALL 256	/* up to this many pages, one entry per page is the bound */
#define KBE_SG_MAX (1UL << 30)	/* the longest entry made of a linear-map segment */

struct kbe_sg {
	struct scatterlist *sg;
	unsigned int n, max;
	unsigned long next_pfn;	/* the page frame that would extend the last entry */
};

static __always_inline void kbe_sg_add(struct kbe_sg *b, struct page *pg, unsigned long len)
{
	unsigned long pfn = page_to_pfn(pg);
	struct scatterlist *sg;

	if (b->n && pfn == b->next_pfn && b->sg[b->n - 1].length + len <= KBE_SG_MAX) {
		b->sg[b->n - 1].length += len;
		b->next_pfn += len >> PAGE_SHIFT;
		return;
	}
	if (WARN_ON_ONCE(b->n == b->max))
		return;
	/* sg_init_table(sg, 1) without its call: zeroed, marked as the end. */
	sg = &b->sg[b->n];
	memset(sg, 0, sizeof(*sg));
	sg_mark_end(sg);
	if (b->n)
		sg_unmark_end(sg - 1);
	sg_set_page(sg, pg, len, 0);
	b->n++;
	b->next_pfn = pfn + (len >> PAGE_SHIFT);
}

/*
 * Kernel memory in the linear map: physically contiguous, its pages found by arithmetic. Any
 * other kernel address (vmalloc, module memory) is looked up page by page. Inline, where
 * is_vmalloc_addr() is a call per segment.
 */
static inline bool kbe_linear(const void *p)
{
	unsigned long a = (unsigned long)p;

	return a >= PAGE_OFFSET && a < (unsigned long)high_memory;
}

/*
 * The most entries @segs (@n pages) can need: one per page, or for a large map, one per page of
 * a segment outside the linear map and one per KBE_SG_MAX bytes of one inside it.
 */
static unsigned long kbe_sg_bound(const struct iovaq_seg *segs, size_t nsegs, unsigned long n,
				  bool user)
{
	unsigned long bound = 0;
	size_t i;

	if (user || n <= KBE_SG_SMALL)
		return n;
	for (i = 0; i < nsegs; i++)
		bound += kbe_linear(segs[i].host) ? DIV_ROUND_UP(segs[i].len, KBE_SG_MAX) :
						    segs[i].len >> PAGE_SHIFT;
	return bound;
}

/* A kernel segment's pages into @b: at once (linear map) or looked up per page. */
static __always_inline void kbe_sg_kernel(struct kbe_sg *b, const struct iovaq_seg *s)
{
	unsigned long off;

	if (!kbe_linear(s->host)) {
		for (off = 0; off < s->len; off += PAGE_SIZE)
			kbe_sg_add(b, vmalloc_to_page((char *)s->host + off), PAGE_SIZE);
		return;
	}
	for (off = 0; off < s->len; off += KBE_SG_MAX)
		kbe_sg_add(b, virt_to_page((char *)s->host + off),
			   min_t(unsigned long, s->len - off, KBE_SG_MAX));
}

/* Pin every user segment's pages into @pages (npages in all), or none. */
static int kbe_pin(struct kbe *k, const struct iovaq_seg *segs, size_t nsegs,
		   unsigned int prot, struct page **pages)
{
	unsigned int gup = FOLL_LONGTERM | ((prot & IOVAQ_PROT_WRITE) ? FOLL_WRITE : 0);
	unsigned long done = 0;
	size_t i;
	long got;

	for (i = 0; i < nsegs; i++) {
		unsigned long n = segs[i].len >> PAGE_SHIFT;

		got = pin_user_pages_fast((unsigned long)segs[i].host, n, gup, pages + done);
		if (got != n) {
			if (got > 0)
				unpin_user_pages(pages + done, got);
			if (done)
				unpin_user_pages(pages, done);
			return got < 0 ? got : -EFAULT;
		}
		done += n;
	}
	atomic64_add(done, &k->pinned);
	return 0;
}

/*
 * Map @nsegs segments (@len bytes in all; all user memory if @user, else all kernel memory)
 * at @iova as one mapping: one iommu_map_sg(), so one map-side sync however scattered the
 * pages are. User memory is pinned until the flush after its unmap; kernel memory (linear map
 * or vmalloc) is the caller's to keep.
 */
static int kbe_mapv(struct kbe *k, iovaq_iova_t iova, const struct iovaq_seg *segs,
		    size_t nsegs, size_t len, bool user, unsigned int prot)
{
	struct scatterlist stack_sg[KBE_SG_STACK];
	struct kbe_sg b = { .sg = stack_sg, .max = KBE_SG_STACK };
	unsigned long n = len >> PAGE_SHIFT, i, bound;
	struct kmapping *m;
	ssize_t mapped;
	int err, iprot = 0;
	u64 t0, t1;

	if (iovaq_kfail("map"))
		return -EIO;
	if (user && (k->host != IOVAQ_KHOST_USER || current->mm != k->mm))
		return -EPERM;
	t0 = tm_start();
	if (prot & IOVAQ_PROT_READ)
		iprot |= IOMMU_READ;
	if (prot & IOVAQ_PROT_WRITE)
		iprot |= IOMMU_WRITE;
	bound = kbe_sg_bound(segs, nsegs, n, user);
	err = -ENOMEM;
	m = kmalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		goto out;
	*m = (struct kmapping){ .iova = iova, .len = len, .npages = n };
	if (user) {
		m->pages = kvmalloc_array(n, sizeof(*m->pages), GFP_KERNEL);
		err = m->pages ? kbe_pin(k, segs, nsegs, prot, m->pages) : -ENOMEM;
		if (err) {
			kvfree(m->pages);
			kfree(m);
			goto out;
		}
	}
	atomic64_inc(&k->live);	/* from here on, kmapping_release() undoes everything */
	if (bound > KBE_SG_STACK) {
		b.sg = kvmalloc_array(bound, sizeof(*b.sg), GFP_KERNEL);
		b.max = bound;
		err = -ENOMEM;
		if (!b.sg)
			goto release;
	}
	if (user) {
		for (i = 0; i < n; i++)
			kbe_sg_add(&b, m->pages[i], PAGE_SIZE);
	} else {
		for (i = 0; i < nsegs; i++)
			kbe_sg_kernel(&b, &segs[i]);
	}
	mutex_lock(&k->lock);
	err = kbe_insert(k, m);
	mutex_unlock(&k->lock);
	if (err)
		goto release;
	t1 = tm_start();
	mapped = iommu_map_sg(k->dom, iova, b.sg, b.n, iprot, GFP_KERNEL);
	tm_add(&k->iommu_ns, t1);
	if (mapped == len) {
		atomic64_inc(&k->maps_n);
		atomic64_add(n, &k->map_pages);
		err = 0;
		goto out;
	}
	/* iommu_map_sg() has unmapped (and synced) what it mapped. */
	err = mapped < 0 ? mapped : -ENOMEM;
	mutex_lock(&k->lock);
	rb_erase(&m->rb, &k->maps);
	mutex_unlock(&k->lock);
release:
	kmapping_release(k, m);
out:
	if (b.sg != stack_sg)
		kvfree(b.sg);
	tm_add(&k->op_ns, t0);
	return err;
}

static bool is_user_addr(const void *host)
{
	return (unsigned long)host < TASK_SIZE;
}

static int kbe_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot)
{
	const struct iovaq_seg s = { host, len };

	return kbe_mapv(to_kbe(be), iova, &s, 1, len, is_user_addr(host), prot);
}

static int kbe_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	unsigned long last = iova + len - 1;
	struct iommu_iotlb_gather g;
	struct kbe *k = to_kbe(be);
	struct kmapping *m, *tmp;
	LIST_HEAD(batch);
	int ret = 0;
	u64 t0, t1;

	if (iovaq_kfail("unmap"))
		return -EIO;
	t0 = tm_start();
	mutex_lock(&k->lock);
	/* Whole mappings only: collect and check every entry in the range before any change. */
	for (m = kbe_first_from(k, iova); m && m->iova <= last;
	     m = rb_entry_safe(rb_next(&m->rb), struct kmapping, rb)) {
		list_add_tail(&m->node, &batch);
		if (m->iova < iova || m->iova + m->len - 1 > last)
			ret = -EINVAL;
	}
	if (list_empty(&batch) || ret) {
		mutex_unlock(&k->lock);
		tm_add(&k->op_ns, t0);
		return ret ?: -ENOENT;
	}
	list_for_each_entry_safe(m, tmp, &batch, node) {
		size_t done;

		rb_erase(&m->rb, &k->maps);
		iommu_iotlb_gather_init(&g);
		t1 = tm_start();
		done = iommu_unmap_fast(k->dom, m->iova, m->len, &g);
		tm_add(&k->iommu_ns, t1);
		WARN_ON_ONCE(done != m->len);
		atomic64_inc(&k->unmaps_n);
		atomic64_add(m->len >> PAGE_SHIFT, &k->unmap_pages);
		/*
		 * The gather is not synced: its range is left to the planned flush. Table pages it
		 * carries wait for the extra sync in flush.
		 */
		if (!list_empty(&g.freelist)) {
			list_splice_tail_init(&g.freelist, &k->freelist);
			k->ft_start = min(k->ft_start, m->iova);
			k->ft_end = max(k->ft_end, m->iova + m->len - 1);
			ret = IOVAQ_UNMAP_FREED_TABLES;
		}
		/* Pinned pages wait for the flush; a kernel mapping's record is done with. */
		if (m->pages)
			list_move_tail(&m->node, &k->unpin);
	}
	mutex_unlock(&k->lock);
	list_for_each_entry_safe(m, tmp, &batch, node) {
		list_del(&m->node);
		kmapping_release(k, m);
	}
	tm_add(&k->op_ns, t0);
	return ret;
}

static bool cmd_covers(const struct iovaq_inval *c, u64 gran, unsigned long s, unsigned long e)
{
	switch (c->kind) {
	case IOVAQ_INVAL_PAGES:
		return s >= c->iova && e <= c->iova + (gran << c->am) - 1;
	case IOVAQ_INVAL_RANGE:
		return s >= c->iova && e <= c->last;
	default:
		return true;
	}
}

static void sync_range(struct kbe *k, unsigned long start, unsigned long end,
		       struct list_head *pages)
{
	struct iommu_iotlb_gather g;
	u64 t0;

	iommu_iotlb_gather_init(&g);
	g.start = start;
	g.end = end;
	g.pgsize = PAGE_SIZE;
	if (pages)
		list_splice_init(pages, &g.freelist);
	t0 = tm_start();
	iommu_iotlb_sync(k->dom, &g);
	tm_add(&k->iommu_ns, t0);
	atomic64_inc(&k->syncs);
}

static int kbe_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	struct kbe *k = to_kbe(be);
	u64 gran = be->caps.granule;
	struct kmapping *m, *tmp;
	LIST_HEAD(tables);
	LIST_HEAD(done);
	unsigned long fs, fe;
	size_t i, j;
	u64 t0, t1;

	if (iovaq_kfail("flush"))
		return -EIO;
	t0 = tm_start();
	/* What was unmapped before this point; later unmaps wait for a later flush. */
	mutex_lock(&k->lock);
	list_splice_init(&k->freelist, &tables);
	fs = k->ft_start;
	fe = k->ft_end;
	k->ft_start = ULONG_MAX;
	k->ft_end = 0;
	list_for_each_entry_safe(m, tmp, &k->unpin, node) {
		for (j = 0; j < n; j++)
			if (cmd_covers(&cmds[j], gran, m->iova, m->iova + m->len - 1))
				break;
		if (j < n)
			list_move_tail(&m->node, &done);
	}
	mutex_unlock(&k->lock);

	for (i = 0; i < n; i++) {
		const struct iovaq_inval *c = &cmds[i];

		switch (c->kind) {
		case IOVAQ_INVAL_PAGES:
			sync_range(k, c->iova, c->iova + (gran << c->am) - 1, NULL);
			break;
		case IOVAQ_INVAL_RANGE:
			sync_range(k, c->iova, c->last, NULL);
			break;
		default:
			t1 = tm_start();
			iommu_flush_iotlb_all(k->dom);
			tm_add(&k->iommu_ns, t1);
			atomic64_inc(&k->flush_all);
			break;
		}
	}
	if (!list_empty(&tables)) {
		sync_range(k, fs, fe, &tables);
		atomic64_inc(&k->sync_tables);
	}
	/* t_safe for everything in @done: its pages may go back to their owner. */
	list_for_each_entry_safe(m, tmp, &done, node) {
		list_del(&m->node);
		kmapping_release(k, m);
	}
	tm_add(&k->op_ns, t0);
	return 0;
}

static uint64_t kbe_pinned_bytes(struct iovaq_backend *be)
{
	return (u64)atomic64_read(&to_kbe(be)->pinned) << PAGE_SHIFT;
}

static void kbe_close(struct iovaq_backend *be)
{
	struct kbe *k = to_kbe(be);
	struct kmapping *m, *tmp;
	struct rb_node *n;
	LIST_HEAD(tables);

	/* Whatever is still mapped goes, then one sync over everything before any page is freed. */
	while ((n = rb_first(&k->maps))) {
		struct iommu_iotlb_gather g;

		m = rb_entry(n, struct kmapping, rb);
		rb_erase(n, &k->maps);

		iommu_iotlb_gather_init(&g);
		iommu_unmap_fast(k->dom, m->iova, m->len, &g);
		list_splice_tail_init(&g.freelist, &k->freelist);
		list_add_tail(&m->node, &k->unpin);
	}
	list_splice_init(&k->freelist, &tables);
	sync_range(k, 0, ULONG_MAX, &tables);
	iommu_flush_iotlb_all(k->dom);
	list_for_each_entry_safe(m, tmp, &k->unpin, node) {
		list_del(&m->node);
		kmapping_release(k, m);
	}
	iommu_detach_device(k->dom, k->dev);
	iommu_device_release_dma_owner(k->dev);
	iommu_domain_free(k->dom);
	put_device(k->dev);
	if (k->mm)
		mmdrop(k->mm);
	kfree(k);
}

static const struct iovaq_backend_ops kbe_ops = {
	.name = "kshim",
	.close = kbe_close,
	.map = kbe_map,
	.unmap = kbe_unmap,
	.flush = kbe_flush,
	.pinned_bytes = kbe_pinned_bytes,
};

static void kbe_caps(struct kbe *k)
{
	struct iovaq_backend_caps *c = &k->base.caps;
	struct iommu_domain *d = k->dom;
	u64 lo = max_t(u64, d->geometry.aperture_start, PAGE_SIZE);
	u64 hi = d->geometry.aperture_end;
	int cm = caching_mode;

	if (cm < 0)
		cm = IS_ENABLED(CONFIG_X86) && boot_cpu_has(X86_FEATURE_HYPERVISOR);
	c->sz = sizeof(*c);
	c->flags = cm ? IOVAQ_CAP_CACHING_MODE : 0;
	c->page_sizes = d->pgsize_bitmap;
	c->granule = PAGE_SIZE;
	/* The x86 MSI window is never DMA-mappable: two apertures around it when it is inside. */
	if (lo < IOVAQ_X86_MSI_START && hi > IOVAQ_X86_MSI_LAST) {
		c->apertures[0] = (struct iovaq_range){ lo, IOVAQ_X86_MSI_START - 1 };
		c->apertures[1] = (struct iovaq_range){ IOVAQ_X86_MSI_LAST + 1, hi };
		c->n_apertures = 2;
	} else {
		c->apertures[0] = (struct iovaq_range){ lo, hi };
		c->n_apertures = 1;
	}
	c->inval_kinds = (1u << IOVAQ_INVAL_PAGES) | (1u << IOVAQ_INVAL_RANGE) |
			 (1u << IOVAQ_INVAL_DOMAIN);
	c->max_am = 18;
	c->leaf_hint = 1;
	/* Measured in the VM testbed (FACTS.md): a trapped invalidation + wait about 2.5 us. */
	c->cost_flush_ns = cm ? 2500 : 300;
	c->cost_cmd_ns = cm ? 2500 : 200;
	c->cost_domain_ns = cm ? 5000 : 500;
	c->cost_domain_page_ns = cm ? 50 : 0;
	c->cost_map_ns = cm ? 4000 : 800;
	c->cost_unmap_ns = 700;
	c->cost_trap_ns = cm ? 2500 : 0;
}

int iovaq_kbackend_open(struct device *dev, enum iovaq_khost host, struct iovaq_backend **out)
{
	struct kbe *k;
	int err;

	if (!dev || !out || host > IOVAQ_KHOST_USER)
		return -EINVAL;
	if (iovaq_kfail("open"))
		return -EIO;
	if (dev->driver)
		return -EBUSY;
	k = kzalloc(sizeof(*k), GFP_KERNEL);
	if (!k)
		return -ENOMEM;
	k->base.ops = &kbe_ops;
	k->dev = get_device(dev);
	k->host = host;
	mutex_init(&k->lock);
	k->maps = RB_ROOT;
	INIT_LIST_HEAD(&k->freelist);
	INIT_LIST_HEAD(&k->unpin);
	k->ft_start = ULONG_MAX;
	err = iommu_device_claim_dma_owner(dev, k);
	if (err) {
		err = err == -EPERM ? -EBUSY : err;	/* owned by someone else */
		goto put;
	}
	k->dom = iommu_paging_domain_alloc(dev);
	if (IS_ERR(k->dom)) {
		err = PTR_ERR(k->dom);
		goto release;
	}
	err = iommu_attach_device(k->dom, dev);
	if (err)
		goto free_dom;
	if (host == IOVAQ_KHOST_USER) {
		k->mm = current->mm;
		mmgrab(k->mm);
	}
	kbe_caps(k);
	*out = &k->base;
	return 0;
free_dom:
	iommu_domain_free(k->dom);
release:
	iommu_device_release_dma_owner(dev);
put:
	put_device(dev);
	kfree(k);
	return err;
}
EXPORT_SYMBOL_GPL(iovaq_kbackend_open);

void iovaq_kbackend_counters(struct iovaq_backend *be, struct iovaq_kbe_counters *c)
{
	struct kbe *k = to_kbe(be);

	c->maps = atomic64_read(&k->maps_n);
	c->map_pages = atomic64_read(&k->map_pages);
	c->unmaps = atomic64_read(&k->unmaps_n);
	c->unmap_pages = atomic64_read(&k->unmap_pages);
	c->syncs = atomic64_read(&k->syncs);
	c->sync_tables = atomic64_read(&k->sync_tables);
	c->flush_all = atomic64_read(&k->flush_all);
	c->pinned_pages = atomic64_read(&k->pinned);
	c->unpinned_pages = atomic64_read(&k->unpinned);
	c->live_maps = atomic64_read(&k->live);
	c->op_ns = atomic64_read(&k->op_ns);
	c->iommu_ns = atomic64_read(&k->iommu_ns);
}
EXPORT_SYMBOL_GPL(iovaq_kbackend_counters);

struct iommu_domain *iovaq_kbackend_domain(struct iovaq_backend *be)
{
	return to_kbe(be)->dom;
}
EXPORT_SYMBOL_GPL(iovaq_kbackend_domain);

/* ---- the wrappers the core calls (same checks as src/backend/backend.c) ------------------ */

void iovaq_backend_close(struct iovaq_backend *be)
{
	if (be)
		be->ops->close(be);
}
EXPORT_SYMBOL_GPL(iovaq_backend_close);

const char *iovaq_backend_name(const struct iovaq_backend *be)
{
	return be->ops->name;
}
EXPORT_SYMBOL_GPL(iovaq_backend_name);

int iovaq_backend_get_caps(const struct iovaq_backend *be, struct iovaq_backend_caps *caps)
{
	size_t sz;
	int err;

	if (!be)
		return -EINVAL;
	err = iovaq_opts_check(caps, offsetof(struct iovaq_backend_caps, n_apertures), SIZE_MAX);
	if (err)
		return err;
	sz = min(caps->sz, sizeof(be->caps));
	memcpy(caps, &be->caps, sz);
	caps->sz = sz;
	return 0;
}
EXPORT_SYMBOL_GPL(iovaq_backend_get_caps);

static bool range_ok(const struct iovaq_backend *be, iovaq_iova_t iova, u64 len)
{
	const struct iovaq_backend_caps *c = &be->caps;
	u64 g = c->granule;
	u32 i;

	if (!len || (iova & (g - 1)) || (len & (g - 1)))
		return false;
	for (i = 0; i < c->n_apertures; i++)
		if (iova >= c->apertures[i].start && iova <= c->apertures[i].last &&
		    len - 1 <= c->apertures[i].last - iova)
			return true;
	return false;
}

int iovaq_backend_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		      unsigned int prot)
{
	if (!be || !host || !range_ok(be, iova, len) ||
	    ((uintptr_t)host & (be->caps.granule - 1)) || !prot ||
	    (prot & ~(unsigned int)(IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)))
		return -EINVAL;
	return be->ops->map(be, iova, host, len, prot);
}
EXPORT_SYMBOL_GPL(iovaq_backend_map);

int iovaq_backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova, const struct iovaq_seg *segs,
		       size_t nsegs, unsigned int prot)
{
	unsigned long tsz = TASK_SIZE, bits = 0;
	size_t i, len = 0;
	bool user, bad = false;

	if (!be || !segs || !nsegs || !prot ||
	    (prot & ~(unsigned int)(IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)))
		return -EINVAL;
	/*
	 * One pass without a branch per segment (an arena link may have one per page):
	 * alignment, the total, one kind of memory (a mapping is user or kernel memory).
	 */
	user = (unsigned long)segs[0].host < tsz;
	for (i = 0; i < nsegs; i++) {
		const struct iovaq_seg *s = &segs[i];

		bits |= (unsigned long)s->host | s->len;
		bad |= !s->host | !s->len | check_add_overflow(len, s->len, &len) |
		       (((unsigned long)s->host < tsz) != user);
	}
	if (bad || (bits & (be->caps.granule - 1)) || !range_ok(be, iova, len))
		return -EINVAL;
	return kbe_mapv(to_kbe(be), iova, segs, nsegs, len, user, prot);
}
EXPORT_SYMBOL_GPL(iovaq_backend_mapv);

/* The core's arena link, whose segments it has checked (backend_core.h). */
int iovaq__backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova,
			const struct iovaq_seg *segs, size_t nsegs, size_t len, unsigned int prot)
{
	unsigned long tsz = TASK_SIZE;
	bool user = (unsigned long)segs[0].host < tsz, mixed = false;
	size_t i;

	if (!prot || (prot & ~(unsigned int)(IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)) ||
	    !range_ok(be, iova, len))
		return -EINVAL;
	for (i = 1; i < nsegs; i++)
		mixed |= ((unsigned long)segs[i].host < tsz) != user;
	if (mixed)
		return -EINVAL;
	return kbe_mapv(to_kbe(be), iova, segs, nsegs, len, user, prot);
}

int iovaq_backend_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	if (!be || !range_ok(be, iova, len))
		return -EINVAL;
	return be->ops->unmap(be, iova, len);
}
EXPORT_SYMBOL_GPL(iovaq_backend_unmap);

static bool cmd_ok(const struct iovaq_backend *be, const struct iovaq_inval *c)
{
	const struct iovaq_backend_caps *caps = &be->caps;
	u64 bytes;
	size_t i;

	if (c->kind >= IOVAQ_INVAL_NR_KINDS || !(caps->inval_kinds & (1u << c->kind)) ||
	    (c->flags & ~(unsigned int)IOVAQ_INVAL_LEAF))
		return false;
	for (i = 0; i < sizeof(c->reserved); i++)
		if (c->reserved[i])
			return false;
	switch (c->kind) {
	case IOVAQ_INVAL_PAGES:
		if (c->am > caps->max_am || c->last)
			return false;
		bytes = caps->granule << c->am;
		return !(c->iova & (bytes - 1));
	case IOVAQ_INVAL_RANGE:
		return c->iova <= c->last && !(c->iova & (caps->granule - 1)) &&
		       !((c->last + 1) & (caps->granule - 1)) && !c->am;
	default:
		return !c->iova && !c->last && !c->am && !(c->flags & IOVAQ_INVAL_LEAF);
	}
}

int iovaq_backend_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	size_t i;

	if (!be || (!cmds && n))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!cmd_ok(be, &cmds[i]))
			return -EINVAL;
	if (!n)
		return 0;
	return be->ops->flush(be, cmds, n);
}
EXPORT_SYMBOL_GPL(iovaq_backend_flush);

uint64_t iovaq_backend_pinned_bytes(struct iovaq_backend *be)
{
	if (!be || !be->ops->pinned_bytes)
		return 0;
	return be->ops->pinned_bytes(be);
}
EXPORT_SYMBOL_GPL(iovaq_backend_pinned_bytes);
