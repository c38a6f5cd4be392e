// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of kernel-glue/ in userspace (ctest kglue_unit, label unit; docs/kernel-glue.md,
 * "Unit tests of the glue"): for machines where the VM tier cannot run.
 *
 * Linked in: the real kernel-glue/iovaq_backend.c, iovaq_dev.c and iovaq_main.c and the real
 * src/core/ files, all compiled unchanged through the kernel side of the portability header
 * (port_kernel.h) against the stand-in headers of tests/kglue-unit/include/ (kstub.c behind
 * them). The kernel IOMMU API and the pinning calls are only declared there; this file
 * defines __wrap_<name> for each and the link uses -Wl,--wrap=<name>, so every call the glue
 * makes lands here. The wrappers act as a small IOMMU driver (a table of mapped ranges, the
 * ranges unmapped but not yet covered by a sync, whose pages must not be unpinned yet,
 * page-table pages put on a gather's freelist on request, pins counted page by page) and log
 * every call; for the functions named in drv.strict they take their arguments to cmocka's
 * check_expected() and their results from mock() instead, so that a test states exactly
 * which calls it expects, with which values, and injects a failure where it wants one.
 * iovaq_bench.c is not linked (its BENCH ioctl reaches the stub at the end of this file).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/kernel.h>
#include <linux/iommu.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/pci.h>

#include <uapi/iovaq/kshim.h>
#include <iovaq/iovaq.h>
#include "iovaq_kshim.h"
#include "kstub.h"

/* ---- the mock IOMMU driver ------------------------------------------------------------------ */

enum {
	W_MAP_SG = 1u << 0,
	W_UNMAP_FAST = 1u << 1,
	W_SYNC = 1u << 2,
	W_PIN = 1u << 3,
	W_UNPIN = 1u << 4,
	W_CLAIM = 1u << 5,
	W_DOM_ALLOC = 1u << 6,
	W_ATTACH = 1u << 7,
};

#define MAX_MAPS 256
#define MAX_LOG 256
#define MAX_SEGS 8

/* A mapping in the mock's page table: its IOVA range and the host pages behind it. */
struct mock_map {
	unsigned long iova;
	size_t len;
	unsigned int nsegs;
	struct {
		uintptr_t first;	/* page token of the segment's first page */
		size_t len;
	} segs[MAX_SEGS];
};

struct sync_rec {
	unsigned long start, end;
	size_t pgsize;
	unsigned int tables;	/* page-table pages the gather carried */
};

struct map_rec {
	unsigned long iova;
	size_t len;
	unsigned int nents;
	int prot;
};

struct table_page {
	struct list_head lru;
};

static struct {
	unsigned int strict;	/* W_* bits: those wrappers use check_expected() and mock() */
	struct iommu_domain dom;
	bool dom_live, attached, owned;
	struct mock_map maps[MAX_MAPS];
	unsigned int nmaps;
	/*
	 * Unmapped but not yet covered by a sync: the IOTLB may still translate them, so their
	 * pages must stay pinned (checked in unpin_user_pages) until a sync covers them.
	 */
	struct mock_map stale[MAX_MAPS];
	unsigned int nstale;
	unsigned int tables_per_unmap;	/* page-table pages each unmap puts on the gather */
	long tables_live;		/* on some gather, not yet freed by a sync */
	long pinned_pages;		/* pinned and not unpinned */
	unsigned long n_map_sg, n_unmap_fast, n_sync, n_flush_all, n_pin, n_unpin;
	unsigned long n_claim, n_release, n_dom_alloc, n_dom_free, n_attach, n_detach;
	struct sync_rec syncs[MAX_LOG];
	struct map_rec map_log[MAX_LOG];
	struct {
		unsigned long iova;
		size_t len;
	} unmap_log[MAX_LOG];
} drv;

/*
 * The flusher thread calls the flush side (sync, flush-all, unpin) while the test's thread
 * maps and unmaps: every wrapper holds drv_lock (released on return by the cleanup
 * attribute). cmocka's expectations are used by single-threaded tests only.
 */
static pthread_mutex_t drv_lock = PTHREAD_MUTEX_INITIALIZER;

static void drv_unlock(pthread_mutex_t **l)
{
	pthread_mutex_unlock(*l);
}

static pthread_mutex_t *drv_lock_take(void)
{
	pthread_mutex_lock(&drv_lock);
	return &drv_lock;
}

#define DRV_GUARD pthread_mutex_t *drv_guard __attribute__((cleanup(drv_unlock), unused)) = \
	drv_lock_take()

static void drv_reset(void)
{
	/* A failed assertion may have left a wrapper's lock held (cmocka longjmps out). */
	pthread_mutex_init(&drv_lock, NULL);
	memset(&drv, 0, sizeof(drv));
	drv.dom.pgsize_bitmap = (1UL << 12) | (1UL << 21) | (1UL << 30);
	drv.dom.geometry.aperture_start = 0;
	drv.dom.geometry.aperture_end = (1UL << 48) - 1;
	drv.dom.geometry.force_aperture = true;
}

static bool drv_overlaps(unsigned long iova, size_t len)
{
	unsigned int i;

	for (i = 0; i < drv.nmaps; i++)
		if (iova < drv.maps[i].iova + drv.maps[i].len && drv.maps[i].iova < iova + len)
			return true;
	return false;
}

struct iommu_domain *__wrap_iommu_paging_domain_alloc(struct device *dev);
struct iommu_domain *__wrap_iommu_paging_domain_alloc(struct device *dev)
{
	DRV_GUARD;
	assert_true(drv.owned);
	drv.n_dom_alloc++;
	if (drv.strict & W_DOM_ALLOC) {
		struct iommu_domain *d = mock_ptr_type(struct iommu_domain *);

		if (IS_ERR(d))
			return d;
	}
	assert_false(drv.dom_live);
	drv.dom_live = true;
	return &drv.dom;
}

void __wrap_iommu_domain_free(struct iommu_domain *domain);
void __wrap_iommu_domain_free(struct iommu_domain *domain)
{
	DRV_GUARD;
	assert_ptr_equal(domain, &drv.dom);
	assert_true(drv.dom_live);
	assert_false(drv.attached);
	/* Nothing may stay mapped, uninvalidated or on a gather, when the domain goes. */
	assert_int_equal(drv.nmaps, 0);
	assert_int_equal(drv.nstale, 0);
	assert_int_equal(drv.tables_live, 0);
	drv.dom_live = false;
	drv.n_dom_free++;
}

int __wrap_iommu_attach_device(struct iommu_domain *domain, struct device *dev);
int __wrap_iommu_attach_device(struct iommu_domain *domain, struct device *dev)
{
	DRV_GUARD;
	drv.n_attach++;
	assert_ptr_equal(domain, &drv.dom);
	if (drv.strict & W_ATTACH) {
		int err = mock_type(int);

		if (err)
			return err;
	}
	drv.attached = true;
	return 0;
}

void __wrap_iommu_detach_device(struct iommu_domain *domain, struct device *dev);
void __wrap_iommu_detach_device(struct iommu_domain *domain, struct device *dev)
{
	DRV_GUARD;
	assert_ptr_equal(domain, &drv.dom);
	assert_true(drv.attached);
	drv.attached = false;
	drv.n_detach++;
}

int __wrap_iommu_device_claim_dma_owner(struct device *dev, void *owner);
int __wrap_iommu_device_claim_dma_owner(struct device *dev, void *owner)
{
	DRV_GUARD;
	drv.n_claim++;
	assert_non_null(owner);
	if (drv.strict & W_CLAIM) {
		int err = mock_type(int);

		if (err)
			return err;
	}
	assert_false(drv.owned);
	drv.owned = true;
	return 0;
}

void __wrap_iommu_device_release_dma_owner(struct device *dev);
void __wrap_iommu_device_release_dma_owner(struct device *dev)
{
	DRV_GUARD;
	assert_true(drv.owned);
	assert_false(drv.attached);
	drv.owned = false;
	drv.n_release++;
}

ssize_t __wrap_iommu_map_sg(struct iommu_domain *domain, unsigned long iova,
			    struct scatterlist *sg, unsigned int nents, int prot, gfp_t gfp);
ssize_t __wrap_iommu_map_sg(struct iommu_domain *domain, unsigned long iova,
			    struct scatterlist *sg, unsigned int nents, int prot, gfp_t gfp)
{
	DRV_GUARD;
	struct scatterlist *s;
	unsigned int i;
	size_t len = 0;
	ssize_t ret;

	assert_ptr_equal(domain, &drv.dom);
	assert_true(drv.attached);
	for_each_sg(sg, s, nents, i) {
		assert_int_equal(s->end, i == nents - 1);	/* as the kernel's sg_next() needs */
		assert_int_equal(s->offset, 0);
		assert_int_equal(s->length % PAGE_SIZE, 0);
		len += s->length;
	}
	if (drv.n_map_sg < MAX_LOG)
		drv.map_log[drv.n_map_sg] = (struct map_rec){ iova, len, nents, prot };
	drv.n_map_sg++;
	ret = (ssize_t)len;
	if (drv.strict & W_MAP_SG) {
		check_expected(iova);
		check_expected(len);
		check_expected(prot);
		ret = mock_type(ssize_t);
		/* iommu_map_sg() unmaps (and syncs) what it mapped before it fails. */
		if (ret != (ssize_t)len)
			return ret;
	}
	assert_false(drv_overlaps(iova, len));
	assert_true(drv.nmaps < MAX_MAPS);
	assert_true(nents <= MAX_SEGS);
	drv.maps[drv.nmaps].iova = iova;
	drv.maps[drv.nmaps].len = len;
	drv.maps[drv.nmaps].nsegs = nents;
	for_each_sg(sg, s, nents, i) {
		drv.maps[drv.nmaps].segs[i].first = (uintptr_t)sg_page(s);
		drv.maps[drv.nmaps].segs[i].len = s->length;
	}
	drv.nmaps++;
	return ret;
}

size_t __wrap_iommu_unmap_fast(struct iommu_domain *domain, unsigned long iova, size_t size,
			       struct iommu_iotlb_gather *gather);
size_t __wrap_iommu_unmap_fast(struct iommu_domain *domain, unsigned long iova, size_t size,
			       struct iommu_iotlb_gather *gather)
{
	DRV_GUARD;
	unsigned int i, t;

	assert_ptr_equal(domain, &drv.dom);
	assert_non_null(gather);
	if (drv.n_unmap_fast < MAX_LOG) {
		drv.unmap_log[drv.n_unmap_fast].iova = iova;
		drv.unmap_log[drv.n_unmap_fast].len = size;
	}
	drv.n_unmap_fast++;
	if (drv.strict & W_UNMAP_FAST) {
		check_expected(iova);
		check_expected(size);
	}
	/* The backend contract: an unmap covers whole earlier maps, exactly. */
	for (i = 0; i < drv.nmaps; i++)
		if (drv.maps[i].iova == iova && drv.maps[i].len == size)
			break;
	assert_true(i < drv.nmaps);
	assert_true(drv.nstale < MAX_MAPS);
	drv.stale[drv.nstale++] = drv.maps[i];
	drv.maps[i] = drv.maps[--drv.nmaps];
	for (t = 0; t < drv.tables_per_unmap; t++) {
		struct table_page *p = calloc(1, sizeof(*p));

		assert_non_null(p);
		list_add_tail(&p->lru, &gather->freelist);
		drv.tables_live++;
	}
	return (drv.strict & W_UNMAP_FAST) ? mock_type(size_t) : size;
}

/* As the kernel's inline: the driver syncs, frees the gather's table pages, re-inits it. */
void __wrap_iommu_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *gather);
void __wrap_iommu_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *gather)
{
	DRV_GUARD;
	struct table_page *p, *tmp;
	unsigned int tables = 0;

	unsigned int i;

	assert_ptr_equal(domain, &drv.dom);
	for (i = 0; i < drv.nstale;) {
		if (gather->start <= drv.stale[i].iova &&
		    drv.stale[i].iova + drv.stale[i].len - 1 <= gather->end)
			drv.stale[i] = drv.stale[--drv.nstale];
		else
			i++;
	}
	list_for_each_entry_safe(p, tmp, &gather->freelist, lru) {
		free(p);
		tables++;
	}
	drv.tables_live -= tables;
	if (drv.n_sync < MAX_LOG)
		drv.syncs[drv.n_sync] =
			(struct sync_rec){ gather->start, gather->end, gather->pgsize, tables };
	drv.n_sync++;
	if (drv.strict & W_SYNC) {
		unsigned long start = gather->start, end = gather->end;

		check_expected(start);
		check_expected(end);
	}
	iommu_iotlb_gather_init(gather);
}

void __wrap_iommu_flush_iotlb_all(struct iommu_domain *domain);
void __wrap_iommu_flush_iotlb_all(struct iommu_domain *domain)
{
	DRV_GUARD;
	assert_ptr_equal(domain, &drv.dom);
	drv.nstale = 0;
	drv.n_flush_all++;
}

/* Unused by the glue today (iovaq_bench.c's raw mode calls them); wrapped so none is real. */
int __wrap_iommu_map(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
		     size_t size, int prot, gfp_t gfp);
int __wrap_iommu_map(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
		     size_t size, int prot, gfp_t gfp)
{
	DRV_GUARD;
	fail_msg("iommu_map() is not expected from the backend");
	return -EINVAL;
}

size_t __wrap_iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size);
size_t __wrap_iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size)
{
	DRV_GUARD;
	fail_msg("iommu_unmap() is not expected from the backend");
	return 0;
}

int __wrap_pin_user_pages_fast(unsigned long start, int nr_pages, unsigned int gup_flags,
			       struct page **pages);
int __wrap_pin_user_pages_fast(unsigned long start, int nr_pages, unsigned int gup_flags,
			       struct page **pages)
{
	DRV_GUARD;
	int got = nr_pages, i;

	drv.n_pin++;
	assert_true(gup_flags & FOLL_LONGTERM);
	if (drv.strict & W_PIN) {
		check_expected(start);
		check_expected(nr_pages);
		check_expected(gup_flags);
		got = mock_type(int);
	}
	for (i = 0; i < got; i++)
		pages[i] = kstub_addr_page((void *)(start + ((unsigned long)i << PAGE_SHIFT)));
	if (got > 0)
		drv.pinned_pages += got;
	return got;
}

void __wrap_unpin_user_pages(struct page **pages, unsigned long npages);
void __wrap_unpin_user_pages(struct page **pages, unsigned long npages)
{
	DRV_GUARD;
	unsigned long p;
	unsigned int i, j;

	/* t_safe: no page goes back while a translation to it may survive in the IOTLB. */
	for (p = 0; p < npages; p++)
		for (i = 0; i < drv.nstale; i++)
			for (j = 0; j < drv.stale[i].nsegs; j++)
				assert_false((uintptr_t)pages[p] >= drv.stale[i].segs[j].first &&
					     (uintptr_t)pages[p] < drv.stale[i].segs[j].first +
								   drv.stale[i].segs[j].len);
	drv.n_unpin++;
	if (drv.strict & W_UNPIN) {
		uintptr_t first = (uintptr_t)pages[0];

		check_expected(first);
		check_expected(npages);
	}
	drv.pinned_pages -= (long)npages;
	assert_true(drv.pinned_pages >= 0);
}

/* iovaq_bench.c is another engineer's file and is not linked: BENCH is refused here. */
int iovaq_kbench_run(struct iovaq_backend *be, struct iovaq_kshim_bench *b)
{
	return -EOPNOTSUPP;
}

/* ---- fixtures ------------------------------------------------------------------------------- */

static struct pci_dev pdev = { .domain = 0, .bus = 0, .devfn = 3 << 3 };
static long allocs_at_start;

/* A page-aligned "user" buffer of @pages pages (the glue never touches its bytes). */
static void *ubuf(size_t pages)
{
	void *p = aligned_alloc(PAGE_SIZE, pages * PAGE_SIZE);

	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	drv_reset();
	memset(&pdev.dev, 0, sizeof(pdev.dev));
	kstub_pci_register(&pdev);
	kstub_fail_alloc_nth(0);
	kstub_task_size = 0x00007ffffffff000UL;
	kstub_caps = 1ULL << CAP_SYS_RAWIO;
	kstub_cpu_features = 0;
	*kstub_param_caching_mode = -1;
	kstub_user_task.mm = &kstub_mm;
	kstub_mm.mm_count = 1;
	kstub_page_offset = 0;
	high_memory = (void *)UINTPTR_MAX;
	kstub_vmalloc_lookups = 0;
	allocs_at_start = kstub_allocs_live();
	return 0;
}

/* Nothing leaked: allocations, pins, device and mm references, IOMMU state, warnings. */
static int teardown(void **state)
{
	assert_int_equal(kstub_allocs_live(), allocs_at_start);
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(drv.tables_live, 0);
	assert_int_equal(drv.nmaps, 0);
	assert_int_equal(drv.nstale, 0);
	assert_false(drv.dom_live);
	assert_false(drv.attached);
	assert_false(drv.owned);
	assert_int_equal(pdev.dev.refs, 0);
	assert_int_equal(kstub_mm.mm_count, 1);
	assert_int_equal(kstub_warnings(), 0);
	return 0;
}

static struct iovaq_backend *open_user(void)
{
	struct iovaq_backend *be = NULL;

	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), 0);
	assert_non_null(be);
	return be;
}

static struct iovaq_kbe_counters counters(struct iovaq_backend *be)
{
	struct iovaq_kbe_counters c;

	iovaq_kbackend_counters(be, &c);
	return c;
}

static struct iovaq_inval pages_cmd(unsigned long iova, unsigned int am)
{
	return (struct iovaq_inval){ .kind = IOVAQ_INVAL_PAGES, .am = (uint8_t)am, .iova = iova };
}

/* ---- the backend: open and close ------------------------------------------------------------ */

/* open claims, allocates and attaches, in that order; close undoes all of it. */
static void test_open_close(void **state)
{
	struct iovaq_backend *be = open_user();
	struct iovaq_backend_caps caps = { .sz = sizeof(caps) };

	assert_true(drv.owned && drv.dom_live && drv.attached);
	assert_int_equal(pdev.dev.refs, 1);
	assert_int_equal(kstub_mm.mm_count, 2);	/* mmgrab of the opener's mm */
	assert_ptr_equal(iovaq_kbackend_domain(be), &drv.dom);
	assert_string_equal(iovaq_backend_name(be), "kshim");
	assert_int_equal(iovaq_backend_get_caps(be, &caps), 0);
	assert_int_equal(caps.granule, PAGE_SIZE);
	assert_int_equal(caps.page_sizes, drv.dom.pgsize_bitmap);
	/* The geometry split around the x86 MSI window, page 0 excluded. */
	assert_int_equal(caps.n_apertures, 2);
	assert_int_equal(caps.apertures[0].start, PAGE_SIZE);
	assert_int_equal(caps.apertures[0].last, IOVAQ_X86_MSI_START - 1);
	assert_int_equal(caps.apertures[1].start, IOVAQ_X86_MSI_LAST + 1);
	assert_int_equal(caps.apertures[1].last, drv.dom.geometry.aperture_end);
	assert_false(caps.flags & IOVAQ_CAP_UNMAP_INVALIDATES);
	assert_false(caps.flags & IOVAQ_CAP_CACHING_MODE);	/* no hypervisor bit */
	iovaq_backend_close(be);
	assert_int_equal(drv.n_detach, 1);
	assert_int_equal(drv.n_release, 1);
	assert_int_equal(drv.n_dom_free, 1);
	/* close syncs once over everything and flushes the domain, even with nothing mapped. */
	assert_int_equal(drv.n_sync, 1);
	assert_int_equal(drv.syncs[0].start, 0);
	assert_int_equal(drv.syncs[0].end, ULONG_MAX);
	assert_int_equal(drv.n_flush_all, 1);
	iovaq_backend_close(NULL);
}

/* Caching mode: the parameter wins; by default (-1) the hypervisor CPU bit decides. */
static void test_caching_mode(void **state)
{
	struct iovaq_backend_caps caps = { .sz = sizeof(caps) };
	struct iovaq_backend *be;

	kstub_cpu_features = 1;
	be = open_user();
	assert_int_equal(iovaq_backend_get_caps(be, &caps), 0);
	assert_true(caps.flags & IOVAQ_CAP_CACHING_MODE);
	iovaq_backend_close(be);

	*kstub_param_caching_mode = 0;
	be = open_user();
	assert_int_equal(iovaq_backend_get_caps(be, &caps), 0);
	assert_false(caps.flags & IOVAQ_CAP_CACHING_MODE);
	iovaq_backend_close(be);
}

/* Every failure of open returns its errno and undoes exactly what was done before it. */
static void test_open_errors(void **state)
{
	struct iovaq_backend *be = NULL;
	struct device_driver drvr = { .name = "e1000e" };

	assert_int_equal(iovaq_kbackend_open(NULL, IOVAQ_KHOST_USER, &be), -EINVAL);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, 7, &be), -EINVAL);

	pdev.dev.driver = &drvr;	/* a driver is bound */
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -EBUSY);
	pdev.dev.driver = NULL;
	assert_int_equal(drv.n_claim, 0);

	kstub_fail_alloc_nth(1);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -ENOMEM);
	assert_int_equal(drv.n_claim, 0);

	/* DMA owned by someone else: the IOMMU core says -EPERM, the backend -EBUSY. */
	drv.strict = W_CLAIM | W_DOM_ALLOC | W_ATTACH;
	will_return(__wrap_iommu_device_claim_dma_owner, -EPERM);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -EBUSY);
	will_return(__wrap_iommu_device_claim_dma_owner, -ENODEV);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -ENODEV);
	assert_int_equal(drv.n_dom_alloc, 0);

	will_return(__wrap_iommu_device_claim_dma_owner, 0);
	will_return(__wrap_iommu_paging_domain_alloc, ERR_PTR(-ENOMEM));
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -ENOMEM);
	assert_int_equal(drv.n_release, 1);
	assert_int_equal(drv.n_attach, 0);

	will_return(__wrap_iommu_device_claim_dma_owner, 0);
	will_return(__wrap_iommu_paging_domain_alloc, &drv.dom);
	will_return(__wrap_iommu_attach_device, -EBUSY);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -EBUSY);
	assert_int_equal(drv.n_dom_free, 1);
	assert_int_equal(drv.n_release, 2);
	assert_null(be);
}

/* ---- the backend: map ----------------------------------------------------------------------- */

/* A user buffer is pinned once and mapped with one iommu_map_sg() of the whole length. */
static void test_map_one_map_sg(void **state)
{
	const size_t pages = 16, len = pages * PAGE_SIZE;
	const unsigned long iova = 0x40000000UL;
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(pages);
	struct iovaq_kbe_counters c;

	drv.strict = W_PIN | W_MAP_SG;
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, pages);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);	/* read only */
	will_return(__wrap_pin_user_pages_fast, (int)pages);
	expect_value(__wrap_iommu_map_sg, iova, iova);
	expect_value(__wrap_iommu_map_sg, len, len);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ);
	will_return(__wrap_iommu_map_sg, (ssize_t)len);
	assert_int_equal(iovaq_backend_map(be, iova, buf, len, IOVAQ_PROT_READ), 0);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.map_log[0].nents, 1);	/* contiguous tokens: one segment */
	c = counters(be);
	assert_int_equal(c.maps, 1);
	assert_int_equal(c.map_pages, pages);
	assert_int_equal(c.pinned_pages, pages);
	assert_int_equal(c.live_maps, 1);
	assert_int_equal(iovaq_backend_pinned_bytes(be), len);

	/* Read-write: FOLL_WRITE and IOMMU_READ | IOMMU_WRITE. */
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 1);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM | FOLL_WRITE);
	will_return(__wrap_pin_user_pages_fast, 1);
	expect_value(__wrap_iommu_map_sg, iova, iova + len);
	expect_value(__wrap_iommu_map_sg, len, PAGE_SIZE);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ | IOMMU_WRITE);
	will_return(__wrap_iommu_map_sg, (ssize_t)PAGE_SIZE);
	assert_int_equal(iovaq_backend_map(be, iova + len, buf, PAGE_SIZE,
					   IOVAQ_PROT_READ | IOVAQ_PROT_WRITE), 0);

	/* An overlapping map is refused before any IOMMU call; its pin is released. */
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 2);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);
	will_return(__wrap_pin_user_pages_fast, 2);
	assert_int_equal(iovaq_backend_map(be, iova + len - PAGE_SIZE, buf, 2 * PAGE_SIZE,
					   IOVAQ_PROT_READ), -EEXIST);
	assert_int_equal(drv.n_map_sg, 2);
	assert_int_equal(drv.pinned_pages, pages + 1);
	drv.strict = 0;
	iovaq_backend_close(be);
	assert_int_equal(drv.n_unmap_fast, 2);
	assert_int_equal(drv.pinned_pages, 0);
	free(buf);
}

/* Kernel addresses are looked up, not pinned; the sg list holds the buffer's own pages. */
static void test_map_kernel_addresses(void **state)
{
	struct iovaq_backend *be = NULL;
	char *buf = ubuf(4);

	kstub_task_size = PAGE_SIZE;	/* every address of this process is a "kernel" one */
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_KERNEL, &be), 0);
	assert_int_equal(kstub_mm.mm_count, 1);	/* no mm held */
	assert_int_equal(iovaq_backend_map(be, 0x100000, buf, 4 * PAGE_SIZE, IOVAQ_PROT_WRITE), 0);
	assert_int_equal(drv.n_pin, 0);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.map_log[0].len, 4 * PAGE_SIZE);
	assert_int_equal(drv.map_log[0].prot, IOMMU_WRITE);
	assert_int_equal(counters(be).pinned_pages, 0);
	iovaq_backend_close(be);
	assert_int_equal(drv.n_unpin, 0);
	free(buf);
}

/* A user address in kernel-address mode, or from another process, is refused: -EPERM. */
static void test_map_wrong_mm(void **state)
{
	struct iovaq_backend *be = open_user();
	struct mm_struct other = { .mm_count = 1 };
	char *buf = ubuf(1);

	kstub_user_task.mm = &other;
	assert_int_equal(iovaq_backend_map(be, 0x100000, buf, PAGE_SIZE, IOVAQ_PROT_READ), -EPERM);
	kstub_user_task.mm = &kstub_mm;
	assert_int_equal(drv.n_pin, 0);
	iovaq_backend_close(be);
	free(buf);
}

/* iommu_map_sg() failing or mapping short: its errno (-ENOMEM for short), nothing kept. */
static void test_map_sg_fails(void **state)
{
	const size_t len = 8 * PAGE_SIZE;
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(8);
	long allocs = kstub_allocs_live();

	drv.strict = W_MAP_SG;
	expect_value(__wrap_iommu_map_sg, iova, 0x200000);
	expect_value(__wrap_iommu_map_sg, len, len);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ);
	will_return(__wrap_iommu_map_sg, (ssize_t)-ENOSPC);
	assert_int_equal(iovaq_backend_map(be, 0x200000, buf, len, IOVAQ_PROT_READ), -ENOSPC);
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(kstub_allocs_live(), allocs);

	expect_value(__wrap_iommu_map_sg, iova, 0x200000);
	expect_value(__wrap_iommu_map_sg, len, len);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ);
	will_return(__wrap_iommu_map_sg, (ssize_t)PAGE_SIZE);	/* short */
	assert_int_equal(iovaq_backend_map(be, 0x200000, buf, len, IOVAQ_PROT_READ), -ENOMEM);
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(kstub_allocs_live(), allocs);

	/* The range is free again: the tree entry went with the failure. */
	expect_value(__wrap_iommu_map_sg, iova, 0x200000);
	expect_value(__wrap_iommu_map_sg, len, len);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ);
	will_return(__wrap_iommu_map_sg, (ssize_t)len);
	assert_int_equal(iovaq_backend_map(be, 0x200000, buf, len, IOVAQ_PROT_READ), 0);
	drv.strict = 0;
	assert_int_equal(counters(be).live_maps, 1);
	assert_int_equal(counters(be).maps, 1);
	iovaq_backend_close(be);
	free(buf);
}

/* Pinning fails: its errno, or -EFAULT for a short pin whose pages are released. */
static void test_pin_fails(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(4);
	long allocs = kstub_allocs_live();

	drv.strict = W_PIN | W_UNPIN;
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 4);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);
	will_return(__wrap_pin_user_pages_fast, 3);
	expect_value(__wrap_unpin_user_pages, first, (uintptr_t)buf);
	expect_value(__wrap_unpin_user_pages, npages, 3);
	assert_int_equal(iovaq_backend_map(be, 0x100000, buf, 4 * PAGE_SIZE, IOVAQ_PROT_READ),
			 -EFAULT);

	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 4);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);
	will_return(__wrap_pin_user_pages_fast, -ENOMEM);
	assert_int_equal(iovaq_backend_map(be, 0x100000, buf, 4 * PAGE_SIZE, IOVAQ_PROT_READ),
			 -ENOMEM);
	drv.strict = 0;
	assert_int_equal(drv.n_map_sg, 0);
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(kstub_allocs_live(), allocs);
	assert_int_equal(counters(be).live_maps, 0);
	assert_int_equal(counters(be).pinned_pages, 0);
	iovaq_backend_close(be);
	free(buf);
}

/* Every allocation map makes, failed in turn: -ENOMEM, nothing leaked or left pinned. */
static void test_map_alloc_sweep(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(8);
	long allocs = kstub_allocs_live(), n;
	int err = -ENOMEM;

	for (n = 1; err; n++) {
		assert_true(n < 20);
		kstub_fail_alloc_nth(n);
		err = iovaq_backend_map(be, 0x300000, buf, 8 * PAGE_SIZE, IOVAQ_PROT_READ);
		if (!kstub_fail_alloc_fired()) {
			assert_int_equal(err, 0);
			break;
		}
		assert_int_equal(err, -ENOMEM);
		assert_int_equal(kstub_allocs_live(), allocs);
		assert_int_equal(drv.pinned_pages, 0);
		assert_int_equal(drv.nmaps, 0);
	}
	kstub_fail_alloc_nth(0);
	/* The record, the page array and the scatterlist (8 entries: more than the stack's). */
	assert_int_equal(n, 4);
	assert_int_equal(drv.n_map_sg, 1);
	iovaq_backend_close(be);
	free(buf);
}

/* A kernel-address backend: every address of this process counts as a kernel one. */
static struct iovaq_backend *open_kernel(void)
{
	struct iovaq_backend *be = NULL;

	kstub_task_size = PAGE_SIZE;
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_KERNEL, &be), 0);
	assert_non_null(be);
	return be;
}

/*
 * mapv of scattered kernel segments: one mapping, one iommu_map_sg() whose entries merge the
 * pages that follow each other physically (here: adjacent tokens), in the segments' order.
 * Nothing is pinned, so the record goes at unmap: nothing waits for the flush but the IOTLB.
 */
static void test_mapv_kernel_segments(void **state)
{
	struct iovaq_backend *be = open_kernel();
	char *buf = ubuf(8);
	const struct iovaq_seg segs[] = {
		{ buf, 2 * PAGE_SIZE },
		{ buf + 5 * PAGE_SIZE, PAGE_SIZE },
		{ buf + 6 * PAGE_SIZE, PAGE_SIZE },	/* follows the one before: merged */
		{ buf + 3 * PAGE_SIZE, PAGE_SIZE },
	};
	struct iovaq_inval cmd = pages_cmd(0x100000, 3);
	struct iovaq_kbe_counters c;

	assert_int_equal(iovaq_backend_mapv(be, 0x100000, segs, 4, IOVAQ_PROT_READ), 0);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.n_pin, 0);
	assert_int_equal(drv.map_log[0].iova, 0x100000);
	assert_int_equal(drv.map_log[0].len, 5 * PAGE_SIZE);
	assert_int_equal(drv.map_log[0].nents, 3);
	assert_int_equal(drv.map_log[0].prot, IOMMU_READ);
	assert_int_equal(drv.maps[0].segs[0].first, (uintptr_t)buf);
	assert_int_equal(drv.maps[0].segs[0].len, 2 * PAGE_SIZE);
	assert_int_equal(drv.maps[0].segs[1].first, (uintptr_t)buf + 5 * PAGE_SIZE);
	assert_int_equal(drv.maps[0].segs[1].len, 2 * PAGE_SIZE);
	assert_int_equal(drv.maps[0].segs[2].first, (uintptr_t)buf + 3 * PAGE_SIZE);
	assert_int_equal(drv.maps[0].segs[2].len, PAGE_SIZE);
	c = counters(be);
	assert_int_equal(c.maps, 1);
	assert_int_equal(c.map_pages, 5);
	assert_int_equal(c.live_maps, 1);

	/* One mapping: only the whole range unmaps it; an overlapping map is refused. */
	assert_int_equal(iovaq_backend_unmap(be, 0x101000, PAGE_SIZE), -EINVAL);
	assert_int_equal(iovaq_backend_map(be, 0x104000, buf, PAGE_SIZE, IOVAQ_PROT_READ), -EEXIST);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(iovaq_backend_unmap(be, 0x100000, 5 * PAGE_SIZE), 0);
	assert_int_equal(drv.n_unmap_fast, 1);
	assert_int_equal(drv.n_sync, 0);
	assert_int_equal(counters(be).live_maps, 0);
	assert_int_equal(drv.nstale, 1);	/* in the IOTLB until the flush */
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), 0);
	assert_int_equal(drv.nstale, 0);
	assert_int_equal(drv.syncs[0].start, 0x100000);
	assert_int_equal(drv.syncs[0].end, 0x107fff);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Kernel memory outside the linear map (vmalloc, module memory) is looked up page by page;
 * inside it, a segment is found by arithmetic: no lookup.
 */
static void test_mapv_kernel_outside_linear_map(void **state)
{
	struct iovaq_backend *be = open_kernel();
	char *buf = ubuf(4);
	const struct iovaq_seg seg = { buf, 4 * PAGE_SIZE };

	assert_int_equal(iovaq_backend_mapv(be, 0x100000, &seg, 1, IOVAQ_PROT_READ), 0);
	assert_int_equal(kstub_vmalloc_lookups, 0);
	high_memory = buf;	/* the buffer now lies above the linear map */
	assert_int_equal(iovaq_backend_mapv(be, 0x200000, &seg, 1, IOVAQ_PROT_READ), 0);
	assert_int_equal(kstub_vmalloc_lookups, 4);
	assert_int_equal(drv.map_log[1].nents, 1);	/* the lookups' pages follow each other */
	assert_int_equal(drv.maps[1].segs[0].first, (uintptr_t)buf);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * More entries than the stack holds (six pages, none adjacent): the scatterlist is
 * allocated. Every allocation failed in turn: -ENOMEM and nothing left behind.
 */
static void test_mapv_alloc_sweep(void **state)
{
	struct iovaq_backend *be = open_kernel();
	char *buf = ubuf(12);
	struct iovaq_seg segs[6];
	long allocs = kstub_allocs_live(), n;
	int err = -ENOMEM, i;

	for (i = 0; i < 6; i++)
		segs[i] = (struct iovaq_seg){ buf + 2 * i * PAGE_SIZE, PAGE_SIZE };
	for (n = 1; err; n++) {
		assert_true(n < 20);
		kstub_fail_alloc_nth(n);
		err = iovaq_backend_mapv(be, 0x200000, segs, 6, IOVAQ_PROT_WRITE);
		if (!kstub_fail_alloc_fired()) {
			assert_int_equal(err, 0);
			break;
		}
		assert_int_equal(err, -ENOMEM);
		assert_int_equal(kstub_allocs_live(), allocs);
		assert_int_equal(drv.nmaps, 0);
		assert_int_equal(counters(be).live_maps, 0);
	}
	kstub_fail_alloc_nth(0);
	/* The record and the scatterlist: two failure points. */
	assert_int_equal(n, 3);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.map_log[0].nents, 6);
	assert_int_equal(kstub_allocs_live(), allocs + 1);	/* the record, not the list */
	iovaq_backend_close(be);
	free(buf);
}

/*
 * mapv of user segments: each pinned (one call per segment), all mapped with one
 * iommu_map_sg(); a pin that fails releases the pins of the segments before it.
 */
static void test_mapv_user_pins(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(6);
	const struct iovaq_seg segs[] = { { buf, 2 * PAGE_SIZE }, { buf + 4 * PAGE_SIZE, PAGE_SIZE } };

	drv.strict = W_PIN | W_MAP_SG;
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 2);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM | FOLL_WRITE);
	will_return(__wrap_pin_user_pages_fast, 2);
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf + 4 * PAGE_SIZE);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 1);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM | FOLL_WRITE);
	will_return(__wrap_pin_user_pages_fast, 1);
	expect_value(__wrap_iommu_map_sg, iova, 0x400000);
	expect_value(__wrap_iommu_map_sg, len, 3 * PAGE_SIZE);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ | IOMMU_WRITE);
	will_return(__wrap_iommu_map_sg, (ssize_t)(3 * PAGE_SIZE));
	assert_int_equal(iovaq_backend_mapv(be, 0x400000, segs, 2,
					    IOVAQ_PROT_READ | IOVAQ_PROT_WRITE), 0);
	assert_int_equal(drv.map_log[0].nents, 2);
	assert_int_equal(counters(be).pinned_pages, 3);

	/* The second segment's pin fails: the first's two pages are unpinned, nothing mapped. */
	drv.strict = W_PIN | W_UNPIN;
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 2);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);
	will_return(__wrap_pin_user_pages_fast, 2);
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf + 4 * PAGE_SIZE);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 1);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM);
	will_return(__wrap_pin_user_pages_fast, -EFAULT);
	expect_value(__wrap_unpin_user_pages, first, (uintptr_t)buf);
	expect_value(__wrap_unpin_user_pages, npages, 2);
	assert_int_equal(iovaq_backend_mapv(be, 0x800000, segs, 2, IOVAQ_PROT_READ), -EFAULT);
	drv.strict = 0;
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.pinned_pages, 3);
	assert_int_equal(counters(be).pinned_pages, 3);
	assert_int_equal(counters(be).live_maps, 1);
	iovaq_backend_close(be);
	assert_int_equal(drv.pinned_pages, 0);
	free(buf);
}

/* Bad segment lists: -EINVAL before any pin or IOMMU call. */
static void test_mapv_bad_input(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(2);
	const size_t huge = SIZE_MAX & PAGE_MASK;
	const struct iovaq_seg ok = { buf, PAGE_SIZE };
	const struct iovaq_seg bad[][2] = {
		{ ok, { NULL, PAGE_SIZE } },
		{ ok, { buf + 1, PAGE_SIZE } },
		{ ok, { buf, 0 } },
		{ ok, { buf, PAGE_SIZE + 1 } },
		{ { buf, huge }, { buf, huge } },		/* the total overflows */
		{ ok, { (void *)(uintptr_t)0xffff888000000000ULL, PAGE_SIZE } },	/* user + kernel */
	};
	size_t i;

	assert_int_equal(iovaq_backend_mapv(NULL, 0x1000, &ok, 1, IOVAQ_PROT_READ), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 0x1000, NULL, 1, IOVAQ_PROT_READ), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 0x1000, &ok, 0, IOVAQ_PROT_READ), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 0x1000, &ok, 1, 0), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 0x1000, &ok, 1, 8), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 0x1001, &ok, 1, IOVAQ_PROT_READ), -EINVAL);
	assert_int_equal(iovaq_backend_mapv(be, 1UL << 48, &ok, 1, IOVAQ_PROT_READ), -EINVAL);
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(iovaq_backend_mapv(be, 0x1000, bad[i], 2, IOVAQ_PROT_READ),
				 -EINVAL);
	assert_int_equal(drv.n_pin, 0);
	assert_int_equal(drv.n_map_sg, 0);
	assert_int_equal(counters(be).live_maps, 0);
	iovaq_backend_close(be);
	free(buf);
}

/* ---- the backend: unmap and flush ----------------------------------------------------------- */

/*
 * Unmap is iommu_unmap_fast() into a gather that is never synced; one flush command covering
 * two unmapped mappings is one iommu_iotlb_sync() over the command's range, and only then are
 * their pages unpinned. A mapping no command covers stays pinned.
 */
static void test_unmap_flush_batch(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(5);
	struct iovaq_inval cmd;
	struct iovaq_kbe_counters c;

	assert_int_equal(iovaq_backend_map(be, 0x10000, buf, PAGE_SIZE, IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_map(be, 0x11000, buf + PAGE_SIZE, 3 * PAGE_SIZE,
					   IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_map(be, 0x80000, buf + 4 * PAGE_SIZE, PAGE_SIZE,
					   IOVAQ_PROT_READ), 0);

	/* One unmap call for both neighbours: two unmap_fast, no sync, nothing unpinned. */
	drv.strict = W_UNMAP_FAST | W_SYNC | W_UNPIN;
	expect_value(__wrap_iommu_unmap_fast, iova, 0x10000);
	expect_value(__wrap_iommu_unmap_fast, size, PAGE_SIZE);
	will_return(__wrap_iommu_unmap_fast, PAGE_SIZE);
	expect_value(__wrap_iommu_unmap_fast, iova, 0x11000);
	expect_value(__wrap_iommu_unmap_fast, size, 3 * PAGE_SIZE);
	will_return(__wrap_iommu_unmap_fast, 3 * PAGE_SIZE);
	assert_int_equal(iovaq_backend_unmap(be, 0x10000, 4 * PAGE_SIZE), 0);
	assert_int_equal(drv.n_sync, 0);
	assert_int_equal(drv.pinned_pages, 5);
	expect_value(__wrap_iommu_unmap_fast, iova, 0x80000);
	expect_value(__wrap_iommu_unmap_fast, size, PAGE_SIZE);
	will_return(__wrap_iommu_unmap_fast, PAGE_SIZE);
	assert_int_equal(iovaq_backend_unmap(be, 0x80000, PAGE_SIZE), 0);

	/* Pages 0x10000-0x13fff: am 2. One sync with that range, then their two unpins. */
	cmd = pages_cmd(0x10000, 2);
	expect_value(__wrap_iommu_iotlb_sync, start, 0x10000);
	expect_value(__wrap_iommu_iotlb_sync, end, 0x13fff);
	expect_value(__wrap_unpin_user_pages, first, (uintptr_t)buf);
	expect_value(__wrap_unpin_user_pages, npages, 1);
	expect_value(__wrap_unpin_user_pages, first, (uintptr_t)buf + PAGE_SIZE);
	expect_value(__wrap_unpin_user_pages, npages, 3);
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), 0);
	assert_int_equal(drv.n_sync, 1);
	assert_int_equal(drv.syncs[0].pgsize, PAGE_SIZE);
	assert_int_equal(drv.syncs[0].tables, 0);
	c = counters(be);
	assert_int_equal(c.unmaps, 3);
	assert_int_equal(c.unmap_pages, 5);
	assert_int_equal(c.syncs, 1);
	assert_int_equal(c.pinned_pages, 1);	/* 0x80000: not covered yet */
	assert_int_equal(c.unpinned_pages, 4);
	assert_int_equal(c.live_maps, 1);

	/* A range command and a domain command: one sync and one flush-all, then the unpin. */
	cmd = (struct iovaq_inval){ .kind = IOVAQ_INVAL_RANGE, .iova = 0x80000, .last = 0x80fff };
	expect_value(__wrap_iommu_iotlb_sync, start, 0x80000);
	expect_value(__wrap_iommu_iotlb_sync, end, 0x80fff);
	expect_value(__wrap_unpin_user_pages, first, (uintptr_t)buf + 4 * PAGE_SIZE);
	expect_value(__wrap_unpin_user_pages, npages, 1);
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), 0);
	cmd = (struct iovaq_inval){ .kind = IOVAQ_INVAL_DOMAIN };
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), 0);
	assert_int_equal(drv.n_flush_all, 1);
	assert_int_equal(drv.n_sync, 2);
	drv.strict = 0;
	c = counters(be);
	assert_int_equal(c.flush_all, 1);
	assert_int_equal(c.live_maps, 0);
	assert_int_equal(c.pinned_pages, 0);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * The mapping tree under many maps and unmaps in scrambled orders: overlaps refused wherever
 * they fall, a range unmap takes exactly the mappings inside it, every other unmap exactly
 * its own, and lookups between and around the mappings find nothing.
 */
static void test_mapping_tree(void **state)
{
	enum { N = 40 };
	struct iovaq_backend *be = open_kernel();
	char *buf = ubuf(2);
	unsigned int i, j;
	bool gone[N] = { false };

	/* Mapping i: 2 pages at 0x1000000 + i * 4 pages (holes between); inserted scrambled. */
	for (i = 0; i < N; i++) {
		j = (i * 17) % N;
		assert_int_equal(iovaq_backend_map(be, 0x1000000 + j * 0x4000, buf, 2 * PAGE_SIZE,
						   IOVAQ_PROT_READ), 0);
	}
	for (i = 0; i < N; i++) {
		unsigned long at = 0x1000000 + i * 0x4000;

		assert_int_equal(iovaq_backend_map(be, at + PAGE_SIZE, buf, 2 * PAGE_SIZE,
						   IOVAQ_PROT_READ), -EEXIST);
		assert_int_equal(iovaq_backend_map(be, at - PAGE_SIZE, buf, 2 * PAGE_SIZE,
						   IOVAQ_PROT_READ), -EEXIST);
		/* The hole before it takes a mapping of its own, which unmaps alone. */
		assert_int_equal(iovaq_backend_map(be, at - 2 * PAGE_SIZE, buf, 2 * PAGE_SIZE,
						   IOVAQ_PROT_READ), 0);
		if (i)
			assert_int_equal(iovaq_backend_unmap(be, at - 2 * PAGE_SIZE,
							     2 * PAGE_SIZE), 0);
		assert_int_equal(iovaq_backend_unmap(be, at + 2 * PAGE_SIZE, 2 * PAGE_SIZE),
				 -ENOENT);
	}
	/* The hole mapping at 0xffe000, right before mapping 0: a range splitting either fails. */
	assert_int_equal(iovaq_backend_unmap(be, 0xfff000, 3 * PAGE_SIZE), -EINVAL);
	assert_int_equal(iovaq_backend_unmap(be, 0xffe000, 0x3000), -EINVAL);
	assert_int_equal(drv.nmaps, N + 1);
	/* Mappings 10-14 and their holes in one unmap. */
	assert_int_equal(iovaq_backend_unmap(be, 0x1000000 + 10 * 0x4000, 5 * 0x4000), 0);
	for (i = 10; i < 15; i++)
		gone[i] = true;
	assert_int_equal(drv.nmaps, N + 1 - 5);
	for (i = 0; i < N; i++) {
		j = (i * 23 + 7) % N;
		assert_int_equal(iovaq_backend_unmap(be, 0x1000000 + j * 0x4000, 2 * PAGE_SIZE),
				 gone[j] ? -ENOENT : 0);
		gone[j] = true;
	}
	assert_int_equal(drv.nmaps, 1);
	assert_int_equal(counters(be).live_maps, 1);
	iovaq_backend_close(be);	/* unmaps the one left */
	free(buf);
}

/* Unmap of part of a mapping, or of nothing, changes nothing: -EINVAL, -ENOENT. */
static void test_unmap_errors(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(2);

	assert_int_equal(iovaq_backend_map(be, 0x20000, buf, 2 * PAGE_SIZE, IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_unmap(be, 0x20000, PAGE_SIZE), -EINVAL);
	assert_int_equal(iovaq_backend_unmap(be, 0x21000, 2 * PAGE_SIZE), -EINVAL);
	assert_int_equal(iovaq_backend_unmap(be, 0x40000, PAGE_SIZE), -ENOENT);
	assert_int_equal(iovaq_backend_unmap(be, 0x20800, PAGE_SIZE), -EINVAL);	/* unaligned */
	assert_int_equal(drv.n_unmap_fast, 0);
	assert_int_equal(counters(be).live_maps, 1);
	assert_int_equal(iovaq_backend_unmap(be, 0x20000, 2 * PAGE_SIZE), 0);
	assert_int_equal(iovaq_backend_unmap(be, 0x20000, 2 * PAGE_SIZE), -ENOENT);
	iovaq_backend_close(be);	/* unpins what no flush covered */
	assert_int_equal(drv.n_unmap_fast, 1);
	free(buf);
}

/*
 * Page-table pages an unmap frees wait on a pending list (unmap says
 * IOVAQ_UNMAP_FREED_TABLES); the next flush adds one sync over the union of the ranges that
 * freed them, carrying them, after the planned commands.
 */
static void test_freed_tables(void **state)
{
	struct iovaq_backend *be = open_user();
	struct iovaq_inval cmds[2];
	char *buf = ubuf(1);

	assert_int_equal(iovaq_backend_map(be, 0x200000, buf, PAGE_SIZE, IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_map(be, 0x600000, buf, PAGE_SIZE, IOVAQ_PROT_READ), 0);
	drv.tables_per_unmap = 1;
	assert_int_equal(iovaq_backend_unmap(be, 0x200000, PAGE_SIZE), IOVAQ_UNMAP_FREED_TABLES);
	assert_int_equal(iovaq_backend_unmap(be, 0x600000, PAGE_SIZE), IOVAQ_UNMAP_FREED_TABLES);
	assert_int_equal(drv.tables_live, 2);	/* not freed before a sync */
	cmds[0] = pages_cmd(0x200000, 0);
	cmds[1] = pages_cmd(0x600000, 0);
	assert_int_equal(iovaq_backend_flush(be, cmds, 2), 0);
	assert_int_equal(drv.n_sync, 3);
	assert_int_equal(drv.syncs[0].tables, 0);
	assert_int_equal(drv.syncs[1].tables, 0);
	assert_int_equal(drv.syncs[2].tables, 2);
	assert_int_equal(drv.syncs[2].start, 0x200000);
	assert_int_equal(drv.syncs[2].end, 0x600fff);
	assert_int_equal(counters(be).sync_tables, 1);
	assert_int_equal(drv.tables_live, 0);
	/* Nothing pending: the next flush is its commands alone. */
	assert_int_equal(iovaq_backend_flush(be, cmds, 1), 0);
	assert_int_equal(drv.n_sync, 4);
	drv.tables_per_unmap = 0;
	iovaq_backend_close(be);
	free(buf);
}

/* close with mappings live and unmapped-but-unflushed: one sync over all, then every unpin. */
static void test_close_releases_everything(void **state)
{
	struct iovaq_backend *be = open_user();
	char *buf = ubuf(8);

	assert_int_equal(iovaq_backend_map(be, 0x100000, buf, 4 * PAGE_SIZE, IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_map(be, 0x200000, buf, 8 * PAGE_SIZE, IOVAQ_PROT_READ), 0);
	drv.tables_per_unmap = 1;
	assert_int_equal(iovaq_backend_unmap(be, 0x100000, 4 * PAGE_SIZE),
			 IOVAQ_UNMAP_FREED_TABLES);
	assert_int_equal(drv.pinned_pages, 12);
	iovaq_backend_close(be);
	assert_int_equal(drv.n_unmap_fast, 2);
	assert_int_equal(drv.n_sync, 1);
	assert_int_equal(drv.syncs[0].start, 0);
	assert_int_equal(drv.syncs[0].end, ULONG_MAX);
	assert_int_equal(drv.syncs[0].tables, 2);
	assert_int_equal(drv.n_flush_all, 1);
	assert_int_equal(drv.n_unpin, 2);
	free(buf);
}

/* The wrappers' checks: bad commands never reach the backend. */
static void test_flush_validation(void **state)
{
	struct iovaq_backend *be = open_user();
	struct iovaq_inval c = pages_cmd(0x1000, 1);	/* misaligned for am 1 */

	assert_int_equal(iovaq_backend_flush(be, &c, 1), -EINVAL);
	c = pages_cmd(0x2000, 1);
	c.reserved[2] = 1;
	assert_int_equal(iovaq_backend_flush(be, &c, 1), -EINVAL);
	c = pages_cmd(0, 19);	/* above max_am 18 */
	assert_int_equal(iovaq_backend_flush(be, &c, 1), -EINVAL);
	assert_int_equal(iovaq_backend_flush(be, NULL, 1), -EINVAL);
	assert_int_equal(iovaq_backend_flush(be, NULL, 0), 0);
	assert_int_equal(drv.n_sync, 0);
	iovaq_backend_close(be);
}

/* ---- through the portable core (src/core/ in its kernel build) ------------------------------ */

static struct iovaq_domain *domain(struct iovaq_backend *be, uint32_t policy)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy,
		   .max_window_ns = 60ull * 1000 * 1000 * 1000);
	struct iovaq_domain *d = NULL;

	assert_int_equal(iovaq_domain_create(&o, &d), 0);
	return d;
}

static struct iovaq_domain_stats dstats(struct iovaq_domain *d)
{
	IOVAQ_OPTS(iovaq_domain_stats, st);

	assert_int_equal(iovaq_domain_get_stats(d, &st), 0);
	return st;
}

/*
 * An arena of 16 pages linked to one buffer: one pin of 16 pages and one iommu_map_sg() at
 * the arena's base, 64 KiB, read-write. Unlinking is one iommu_unmap_fast() and no sync;
 * iovaq_arena_sync() under strict is one command: one iommu_iotlb_sync() over exactly the
 * arena (64 KiB aligned), after which the pages are unpinned.
 */
static void test_arena_strict(void **state)
{
	struct iovaq_backend *be = open_user();
	struct iovaq_domain *d = domain(be, IOVAQ_POLICY_STRICT);
	const size_t len = 16 * PAGE_SIZE;
	struct iovaq_arena *a = NULL;
	char *buf = ubuf(16);
	iovaq_iova_t base, iova = 0;

	assert_int_equal(iovaq_arena_reserve(d, 16, IOVAQ_LIMIT_NONE, &a), 0);
	base = iovaq_arena_base(a);
	assert_int_equal(base & (len - 1), 0);

	drv.strict = W_PIN | W_MAP_SG | W_UNMAP_FAST | W_SYNC;
	expect_value(__wrap_pin_user_pages_fast, start, (uintptr_t)buf);
	expect_value(__wrap_pin_user_pages_fast, nr_pages, 16);
	expect_value(__wrap_pin_user_pages_fast, gup_flags, FOLL_LONGTERM | FOLL_WRITE);
	will_return(__wrap_pin_user_pages_fast, 16);
	expect_value(__wrap_iommu_map_sg, iova, base);
	expect_value(__wrap_iommu_map_sg, len, len);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ | IOMMU_WRITE);
	will_return(__wrap_iommu_map_sg, (ssize_t)len);
	assert_int_equal(iovaq_arena_link(a, 0, buf, len, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
					  &iova), 0);
	assert_int_equal(iova, base);

	expect_value(__wrap_iommu_unmap_fast, iova, base);
	expect_value(__wrap_iommu_unmap_fast, size, len);
	will_return(__wrap_iommu_unmap_fast, len);
	assert_int_equal(iovaq_arena_unlink(a, 0, len), 0);
	assert_int_equal(drv.n_sync, 0);
	assert_int_equal(drv.pinned_pages, 16);

	expect_value(__wrap_iommu_iotlb_sync, start, base);
	expect_value(__wrap_iommu_iotlb_sync, end, base + len - 1);
	assert_int_equal(iovaq_arena_sync(a, 1), 0);
	drv.strict = 0;
	assert_int_equal(drv.n_sync, 1);
	assert_int_equal(drv.n_flush_all, 0);
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(dstats(d).inval_cmds, 1);

	iovaq_arena_release(a);
	iovaq_domain_destroy(d);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * iovaq_arena_linkv() in the kernel: separately allocated pages (kernel memory) are one link,
 * one iommu_map_sg() of as many entries, one iommu_unmap_fast() at unlink, one sync; user
 * memory mixed in is refused with nothing linked, and the arena can be linked afterwards.
 */
static void test_arena_linkv_kernel(void **state)
{
	struct iovaq_backend *be = open_kernel();
	struct iovaq_domain *d = domain(be, IOVAQ_POLICY_STRICT);
	struct iovaq_arena *a = NULL;
	char *buf = ubuf(8);
	struct iovaq_seg segs[4];
	iovaq_iova_t base;
	int i;

	for (i = 0; i < 4; i++)
		segs[i] = (struct iovaq_seg){ buf + 2 * i * PAGE_SIZE, PAGE_SIZE };
	assert_int_equal(iovaq_arena_reserve(d, 4, IOVAQ_LIMIT_NONE, &a), 0);
	base = iovaq_arena_base(a);
	kstub_task_size = (uintptr_t)segs[0].host + 1;	/* the first one is "user" memory */
	assert_int_equal(iovaq_arena_linkv(a, 0, segs, 4, IOVAQ_PROT_READ, NULL), -EINVAL);
	assert_int_equal(drv.n_map_sg, 0);
	assert_int_equal(iovaq_domain_check(d), 0);
	kstub_task_size = PAGE_SIZE;
	assert_int_equal(iovaq_arena_linkv(a, 0, segs, 4, IOVAQ_PROT_READ, NULL), 0);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.map_log[0].iova, base);
	assert_int_equal(drv.map_log[0].len, 4 * PAGE_SIZE);
	assert_int_equal(drv.map_log[0].nents, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(drv.maps[0].segs[i].first, (uintptr_t)segs[i].host);
	assert_int_equal(iovaq_arena_unlink(a, 0, PAGE_SIZE), -EINVAL);	/* splits the link */
	assert_int_equal(iovaq_arena_unlink(a, 0, 4 * PAGE_SIZE), 0);
	assert_int_equal(drv.n_unmap_fast, 1);
	assert_int_equal(iovaq_arena_sync(a, 1), 0);
	assert_int_equal(drv.n_sync, 1);
	assert_int_equal(drv.nstale, 0);
	assert_int_equal(iovaq_domain_check(d), 0);
	iovaq_arena_release(a);
	iovaq_domain_destroy(d);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * Deferred: 32 single-page maps (one iommu_map_sg each), 32 unmaps (one iommu_unmap_fast
 * each, no sync, nothing unpinned), then iovaq_domain_sync(): one backend flush whose
 * iommu_iotlb_sync() calls are exactly the planner's commands (fewer than the pages: the
 * batching), whose ranges cover every unmapped page, after which every page is unpinned.
 */
static void test_domain_deferred_batches(void **state)
{
	enum { N = 32 };
	struct iovaq_backend *be = open_user();
	struct iovaq_domain *d = domain(be, IOVAQ_POLICY_DEFERRED);
	struct iovaq_domain_stats st0, st;
	iovaq_iova_t iovas[N];
	char *buf = ubuf(N);
	unsigned long syncs0, i, j;

	for (i = 0; i < N; i++)
		assert_int_equal(iovaq_domain_map(d, buf + i * PAGE_SIZE, PAGE_SIZE, IOVAQ_PROT_READ,
						  IOVAQ_LIMIT_NONE, &iovas[i]), 0);
	assert_int_equal(drv.n_map_sg, N);
	assert_int_equal(drv.pinned_pages, N);
	syncs0 = drv.n_sync;
	for (i = 0; i < N; i++)
		assert_int_equal(iovaq_domain_unmap(d, iovas[i], PAGE_SIZE, 0), 0);
	assert_int_equal(drv.n_unmap_fast, N);
	assert_int_equal(drv.n_sync, syncs0);	/* queued, not invalidated */
	assert_int_equal(drv.pinned_pages, N);

	st0 = dstats(d);
	assert_int_equal(iovaq_domain_sync(d), 0);
	st = dstats(d);
	assert_int_equal(st.flushes - st0.flushes, 1);
	assert_int_equal(drv.n_sync - syncs0, (st.inval_cmds - st0.inval_cmds) -
					      (st.inval_domain_cmds - st0.inval_domain_cmds));
	assert_int_equal(drv.n_flush_all, st.inval_domain_cmds - st0.inval_domain_cmds);
	assert_true(drv.n_sync - syncs0 + drv.n_flush_all >= 1);
	assert_true(drv.n_sync - syncs0 + drv.n_flush_all < N);
	assert_int_equal(counters(be).syncs, drv.n_sync);
	if (!drv.n_flush_all) {
		for (i = 0; i < N; i++) {
			for (j = syncs0; j < drv.n_sync; j++)
				if (drv.syncs[j].start <= iovas[i] &&
				    iovas[i] + PAGE_SIZE - 1 <= drv.syncs[j].end)
					break;
			assert_true(j < drv.n_sync);
		}
	}
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(counters(be).unpinned_pages, N);

	iovaq_domain_destroy(d);
	iovaq_backend_close(be);
	free(buf);
}

static long drv_pinned(void)
{
	DRV_GUARD;
	return drv.pinned_pages;
}

/*
 * The flusher thread of the core's kernel build (port_kernel.h: a kthread, a wait queue and
 * an absolute hrtimer deadline): under deferred with a 2 ms window and no sync from the
 * caller, the thread alone flushes what was unmapped, and the pages come back unpinned.
 */
static void test_domain_flusher_thread(void **state)
{
	enum { N = 64 };
	struct iovaq_backend *be = open_user();
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED,
		   .flusher = IOVAQ_FLUSHER_THREAD, .max_window_ns = 2ull * 1000 * 1000);
	struct iovaq_domain *d = NULL;
	iovaq_iova_t iovas[N];
	char *buf = ubuf(N);
	u64 t0;
	int i;

	assert_int_equal(iovaq_domain_create(&o, &d), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(iovaq_domain_map(d, buf + i * PAGE_SIZE, PAGE_SIZE, IOVAQ_PROT_READ,
						  IOVAQ_LIMIT_NONE, &iovas[i]), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(iovaq_domain_unmap(d, iovas[i], PAGE_SIZE, 0), 0);
	t0 = ktime_get_ns();
	while (drv_pinned() && ktime_get_ns() - t0 < 60ull * NSEC_PER_SEC)
		usleep(1000);
	assert_int_equal(drv_pinned(), 0);
	assert_true(dstats(d).flush_age >= 1);
	iovaq_domain_destroy(d);	/* stops and joins the kthread */
	assert_int_equal(counters(be).unpinned_pages, N);
	iovaq_backend_close(be);
	free(buf);
}

/* A failing map through the core: the backend's errno, no IOVA or pin kept. */
static void test_domain_map_fails(void **state)
{
	struct iovaq_backend *be = open_user();
	struct iovaq_domain *d = domain(be, IOVAQ_POLICY_STRICT);
	char *buf = ubuf(2);
	iovaq_iova_t iova;

	drv.strict = W_MAP_SG;
	expect_any(__wrap_iommu_map_sg, iova);
	expect_value(__wrap_iommu_map_sg, len, 2 * PAGE_SIZE);
	expect_value(__wrap_iommu_map_sg, prot, IOMMU_READ);
	will_return(__wrap_iommu_map_sg, (ssize_t)-ENOMEM);
	assert_int_equal(iovaq_domain_map(d, buf, 2 * PAGE_SIZE, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE,
					  &iova), -ENOMEM);
	drv.strict = 0;
	assert_int_equal(drv.pinned_pages, 0);
	assert_int_equal(dstats(d).map_errors, 1);
	assert_int_equal(iovaq_domain_check(d), 0);
	assert_int_equal(iovaq_domain_map(d, buf, 2 * PAGE_SIZE, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE,
					  &iova), 0);
	assert_int_equal(iovaq_domain_unmap(d, iova, 2 * PAGE_SIZE, 0), 0);	/* strict: synced */
	assert_int_equal(drv.pinned_pages, 0);
	iovaq_domain_destroy(d);
	iovaq_backend_close(be);
	free(buf);
}

/* The core's metadata allocations (kalloc_hook in iovaq_main.c) failed in turn: no leak. */
static void test_domain_create_alloc_sweep(void **state)
{
	struct iovaq_backend *be = open_user();
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_DEFERRED);
	long allocs = kstub_allocs_live(), n;
	struct iovaq_domain *d = NULL;
	int err = -ENOMEM;

	for (n = 1; err; n++) {
		assert_true(n < 10000);
		kstub_fail_alloc_nth(n);
		err = iovaq_domain_create(&o, &d);
		if (!kstub_fail_alloc_fired())
			break;
		assert_int_equal(err, -ENOMEM);
		assert_int_equal(kstub_allocs_live(), allocs);
	}
	kstub_fail_alloc_nth(0);
	assert_int_equal(err, 0);
	assert_true(n > 2);
	iovaq_domain_destroy(d);
	iovaq_backend_close(be);
}

/* The module parameter fail_nth (iovaq_main.c): "site:N" fails the Nth call at a site. */
static void test_fail_nth_param(void **state)
{
	const struct kernel_param_ops *ops = kstub_param_fail_nth;
	struct iovaq_backend *be = NULL;
	struct iovaq_inval cmd = pages_cmd(0x10000, 0);
	char *buf = ubuf(1);
	char out[PAGE_SIZE];

	assert_int_equal(ops->set("open:1", NULL), 0);
	assert_int_equal(iovaq_kbackend_open(&pdev.dev, IOVAQ_KHOST_USER, &be), -EIO);
	assert_int_equal(drv.n_claim, 0);
	be = open_user();

	assert_int_equal(ops->set("map:2", NULL), 0);
	ops->get(out, NULL);
	assert_string_equal(out, "map:2\n");
	assert_int_equal(iovaq_backend_map(be, 0x10000, buf, PAGE_SIZE, IOVAQ_PROT_READ), 0);
	assert_int_equal(iovaq_backend_map(be, 0x20000, buf, PAGE_SIZE, IOVAQ_PROT_READ), -EIO);
	assert_int_equal(drv.n_pin, 1);
	assert_int_equal(ops->set("unmap:1", NULL), 0);
	assert_int_equal(iovaq_backend_unmap(be, 0x10000, PAGE_SIZE), -EIO);
	assert_int_equal(iovaq_backend_unmap(be, 0x10000, PAGE_SIZE), 0);
	assert_int_equal(ops->set("flush:1", NULL), 0);
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), -EIO);
	assert_int_equal(drv.pinned_pages, 1);	/* not released by a flush that failed */
	assert_int_equal(iovaq_backend_flush(be, &cmd, 1), 0);
	assert_int_equal(drv.pinned_pages, 0);

	assert_int_equal(ops->set("map", NULL), -EINVAL);
	assert_int_equal(ops->set("map:x", NULL), -EINVAL);
	assert_int_equal(ops->set("a-site-name-too-long:1", NULL), -EINVAL);
	assert_int_equal(ops->set("alloc:0", NULL), 0);	/* disarms */
	iovaq_backend_close(be);
	free(buf);
}

/* ---- /dev/iovaq (iovaq_dev.c): the ioctl dispatcher ----------------------------------------- */

struct devfile {
	struct inode inode;
	struct file f;
};

static void dev_open(struct devfile *df)
{
	assert_non_null(kstub_misc);
	assert_int_equal(kstub_misc->fops->open(&df->inode, &df->f), 0);
}

static long dev_ioctl(struct devfile *df, unsigned int cmd, void *arg)
{
	return kstub_misc->fops->unlocked_ioctl(&df->f, cmd, (unsigned long)(uintptr_t)arg);
}

static void dev_close(struct devfile *df)
{
	assert_int_equal(kstub_misc->fops->release(&df->inode, &df->f), 0);
}

static int dev_setup(void **state)
{
	setup(state);
	assert_int_equal((*kstub_module_init)(), 0);
	assert_string_equal(kstub_misc->name, "iovaq");
	assert_int_equal(kstub_misc->mode, 0600);
	return 0;
}

static int dev_teardown(void **state)
{
	(*kstub_module_exit)();
	assert_null(kstub_misc);
	return teardown(state);
}

static void test_dev_open_needs_rawio(void **state)
{
	struct devfile df = { 0 };

	kstub_caps = 0;
	assert_int_equal(kstub_misc->fops->open(&df.inode, &df.f), -EPERM);
	assert_null(df.f.private_data);
	kstub_caps = 1ULL << CAP_SYS_RAWIO;
	dev_open(&df);
	dev_close(&df);
}

/* Unknown or malformed ioctl numbers: -ENOTTY, before the argument is read. */
static void test_dev_enotty(void **state)
{
	struct iovaq_kshim_bind b = { .size = sizeof(b) };
	struct devfile df = { 0 };

	dev_open(&df);
	assert_int_equal(dev_ioctl(&df, _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BENCH + 1), &b),
			 -ENOTTY);
	assert_int_equal(dev_ioctl(&df, _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BASE - 1), &b),
			 -ENOTTY);
	assert_int_equal(dev_ioctl(&df, _IO('T', IOVAQ_KSHIM_CMD_BIND), &b), -ENOTTY);
	assert_int_equal(dev_ioctl(&df, _IOW(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BIND, u32), &b),
			 -ENOTTY);
	/* The size lives in the struct, never in the number: a non-zero _IOC_SIZE is refused. */
	assert_int_equal(dev_ioctl(&df, _IOC(_IOC_NONE, IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BIND,
					     sizeof(b)), &b), -ENOTTY);
	assert_int_equal(dev_ioctl(&df, _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BENCH + 1), NULL),
			 -ENOTTY);
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, NULL), -EFAULT);
	assert_int_equal(drv.n_claim, 0);
	dev_close(&df);
}

/*
 * Size prefixes: below the ioctl's minimum -EINVAL; larger than the module knows with a
 * non-zero byte beyond -E2BIG; larger with zeros accepted and written back at the module's
 * size; reserved fields and unknown flags -EINVAL; unbound -ENXIO.
 */
static void test_dev_sizes_and_reserved(void **state)
{
	struct {
		struct iovaq_kshim_bind b;
		u8 tail[16];
	} big = { 0 };
	struct {
		struct iovaq_kshim_caps c;
		u64 tail;
	} caps = { 0 };
	struct iovaq_kshim_bind b = { .size = sizeof(b), .pci_devfn = 3 << 3 };
	struct iovaq_kshim_counters cnt = { .size = sizeof(cnt) };
	struct iovaq_kshim_unmap u = { .size = sizeof(u) };
	struct iovaq_kshim_map m = { .size = sizeof(m) };
	struct iovaq_kshim_flush fl = { .size = sizeof(fl) };
	struct devfile df = { 0 };

	dev_open(&df);
	/* Unbound: the ioctls that need a device say -ENXIO. */
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_COUNTERS, &cnt), -ENXIO);

	b.size = 4;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), -EINVAL);
	b.size = offsetofend(struct iovaq_kshim_bind, reserved) - 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), -EINVAL);
	b.size = sizeof(b);
	b.flags = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), -EINVAL);
	b.flags = 0;
	b.reserved = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), -EINVAL);
	b.reserved = 0;

	big.b = b;
	big.b.size = sizeof(big);
	big.tail[15] = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &big), -E2BIG);
	assert_int_equal(drv.n_claim, 0);
	big.tail[15] = 0;
	big.b.pci_devfn = 4 << 3;	/* no such device */
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &big), -ENODEV);
	assert_int_equal(pdev.dev.refs, 0);
	big.b.pci_devfn = 3 << 3;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &big), 0);	/* zero tail: fine */
	assert_int_equal(pdev.dev.refs, 2);	/* the file's and the backend's */
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), -EBUSY);

	/* Output structs are written back up to the smaller size, with that size. */
	caps.c.size = sizeof(caps);
	caps.tail = 0;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_CAPS, &caps), 0);
	assert_int_equal(caps.c.size, sizeof(caps.c));
	assert_int_equal(caps.c.granule, PAGE_SIZE);
	assert_int_equal(caps.c.n_apertures, 2);
	assert_int_equal(caps.tail, 0);
	caps.c.size = offsetofend(struct iovaq_kshim_caps, apertures) - 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_CAPS, &caps), -EINVAL);

	cnt.reserved = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_COUNTERS, &cnt), -EINVAL);
	u.out_flags = 1;
	u.iova = 0x10000;
	u.length = PAGE_SIZE;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_UNMAP, &u), -EINVAL);
	m.prot = 0;
	m.iova = 0x10000;
	m.length = PAGE_SIZE;
	m.uaddr = (uintptr_t)&big;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_MAP, &m), -EINVAL);
	m.prot = 1u << 5;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_MAP, &m), -EINVAL);
	m.prot = IOVAQ_KSHIM_PROT_READ;
	m.uaddr = kstub_task_size;	/* beyond the user address space: access_ok() fails */
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_MAP, &m), -EINVAL);
	fl.n_cmds = IOVAQ_KSHIM_MAX_CMDS + 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_FLUSH, &fl), -E2BIG);
	fl.n_cmds = 1;
	fl.cmds_uptr = 0;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_FLUSH, &fl), -EFAULT);
	assert_int_equal(drv.n_map_sg + drv.n_unmap_fast + drv.n_sync, 0);
	dev_close(&df);	/* closes the backend and drops the device */
	assert_int_equal(drv.n_release, 1);
}

/* The whole path through the device file: map, unmap (no sync), flush (one sync), counters. */
static void test_dev_map_unmap_flush(void **state)
{
	struct iovaq_kshim_bind b = { .size = sizeof(b), .pci_devfn = 3 << 3 };
	struct iovaq_kshim_counters cnt = { .size = sizeof(cnt) };
	struct iovaq_kshim_unmap u = { .size = sizeof(u), .iova = 0x40000, .length = 2 * PAGE_SIZE };
	struct iovaq_kshim_inval inv = { .kind = IOVAQ_INVAL_PAGES, .am = 1, .iova = 0x40000 };
	struct iovaq_kshim_flush fl = { .size = sizeof(fl), .n_cmds = 1 };
	struct iovaq_kshim_map m = { .size = sizeof(m), .prot = IOVAQ_KSHIM_PROT_READ,
				     .iova = 0x40000, .length = 2 * PAGE_SIZE };
	struct devfile df = { 0 };
	char *buf = ubuf(2);

	dev_open(&df);
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_BIND, &b), 0);
	m.uaddr = (uintptr_t)buf;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_MAP, &m), 0);
	assert_int_equal(drv.n_map_sg, 1);
	assert_int_equal(drv.map_log[0].iova, 0x40000);
	assert_int_equal(drv.map_log[0].len, 2 * PAGE_SIZE);
	drv.tables_per_unmap = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_UNMAP, &u), 0);
	assert_int_equal(u.out_flags, IOVAQ_KSHIM_UNMAP_FREED_TABLES);
	assert_int_equal(drv.n_sync, 0);
	fl.cmds_uptr = (uintptr_t)&inv;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_FLUSH, &fl), 0);
	assert_int_equal(drv.n_sync, 2);	/* the command, then the table pages */
	assert_int_equal(drv.syncs[0].start, 0x40000);
	assert_int_equal(drv.syncs[0].end, 0x41fff);
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_COUNTERS, &cnt), 0);
	assert_int_equal(cnt.maps, 1);
	assert_int_equal(cnt.unmaps, 1);
	assert_int_equal(cnt.syncs, 2);
	assert_int_equal(cnt.sync_tables, 1);
	assert_int_equal(cnt.pinned_pages, 0);
	assert_int_equal(cnt.unpinned_pages, 2);
	assert_int_equal(cnt.live_maps, 0);
	/* A bad command is refused by the backend wrapper; the copy is freed. */
	inv.reserved[0] = 1;
	assert_int_equal(dev_ioctl(&df, IOVAQ_KSHIM_FLUSH, &fl), -EINVAL);
	drv.tables_per_unmap = 0;
	dev_close(&df);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest backend[] = {
		cmocka_unit_test_setup_teardown(test_open_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caching_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_one_map_sg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_kernel_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_wrong_mm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_sg_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_alloc_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapv_kernel_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapv_kernel_outside_linear_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapv_alloc_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapv_user_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapv_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmap_flush_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmap_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapping_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freed_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_releases_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_nth_param, setup, teardown),
	};
	const struct CMUnitTest core[] = {
		cmocka_unit_test_setup_teardown(test_arena_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arena_linkv_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_deferred_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_flusher_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_map_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_create_alloc_sweep, setup, teardown),
	};
	const struct CMUnitTest dev[] = {
		cmocka_unit_test_setup_teardown(test_dev_open_needs_rawio, dev_setup, dev_teardown),
		cmocka_unit_test_setup_teardown(test_dev_enotty, dev_setup, dev_teardown),
		cmocka_unit_test_setup_teardown(test_dev_sizes_and_reserved, dev_setup, dev_teardown),
		cmocka_unit_test_setup_teardown(test_dev_map_unmap_flush, dev_setup, dev_teardown),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("kglue backend (iovaq_backend.c)", backend, NULL, NULL);
	failed += cmocka_run_group_tests_name("kglue through the core (src/core/, kernel build)", core,
					      NULL, NULL);
	failed += cmocka_run_group_tests_name("kglue /dev/iovaq (iovaq_dev.c)", dev, NULL, NULL);
	return failed ? 1 : 0;
}
