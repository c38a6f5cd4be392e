// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * iovaq.ko: libiovaq's portable core (src/core/) in the kernel, its kernel IOMMU backend,
 * /dev/iovaq, and the exported kernel API (iovaq_kshim.h). docs/kernel-glue.md.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/atomic.h>
#include <linux/string.h>

#include "iovaq_kshim.h"
#include <iovaq/iovaq.h>

/*
 * Failure injection: "site:N" fails the Nth call (1-based, counted from when the parameter was
 * written) at a site: alloc (the core's metadata), map, unmap, flush, open. Written through
 * /sys/module/iovaq/parameters/fail_nth; reads back what is armed.
 */
static char fail_site[16];
static atomic_t fail_left = ATOMIC_INIT(0);
static DEFINE_SPINLOCK(fail_lock);

static int fail_set(const char *val, const struct kernel_param *kp)
{
	const char *colon = strchr(val, ':');
	size_t len = colon ? colon - val : 0;
	unsigned int n;

	if (!len || len >= sizeof(fail_site) || kstrtouint(colon + 1, 10, &n))
		return -EINVAL;
	spin_lock(&fail_lock);
	memcpy(fail_site, val, len);
	fail_site[len] = '\0';
	atomic_set(&fail_left, n);
	spin_unlock(&fail_lock);
	return 0;
}

static int fail_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s:%d\n", fail_site[0] ? fail_site : "none",
			  atomic_read(&fail_left));
}

static const struct kernel_param_ops fail_ops = { .set = fail_set, .get = fail_get };
module_param_cb(fail_nth, &fail_ops, NULL, 0600);
MODULE_PARM_DESC(fail_nth, "site:N fails the Nth call at site (alloc, map, unmap, flush, open)");

bool iovaq_kfail(const char *site)
{
	bool hit = false;

	if (likely(!atomic_read(&fail_left)))
		return false;
	spin_lock(&fail_lock);
	if (!strcmp(site, fail_site) && atomic_read(&fail_left) > 0 &&
	    atomic_dec_return(&fail_left) == 0) {
		hit = true;
		fail_site[0] = '\0';
	}
	spin_unlock(&fail_lock);
	if (hit)
		pr_info("iovaq: injected failure at %s\n", site);
	return hit;
}

/*
 * Metadata for the core: kvmalloc, process context. kmalloc returns naturally aligned objects
 * for power-of-two sizes and multiples of the cache line for the size classes the core asks
 * for (sizes rounded up to @align); anything else (or a slab debug layout) falls back to
 * vmalloc, which is page-aligned.
 */
static void *kalloc_hook(void *ctx, size_t size, size_t align)
{
	size_t sz = round_up(size ?: 1, align ?: 1);
	void *p;

	if (iovaq_kfail("alloc"))
		return NULL;
	p = kvmalloc(sz, GFP_KERNEL);
	if (p && !IS_ALIGNED((unsigned long)p, align)) {
		kvfree(p);
		p = align <= PAGE_SIZE ? vmalloc(sz) : NULL;
	}
	return p;
}

static void kfree_hook(void *ctx, void *p, size_t size)
{
	kvfree(p);
}

static const struct iovaq_alloc_hooks kernel_hooks = { .alloc = kalloc_hook, .free = kfree_hook };

const struct iovaq_alloc_hooks *iovaq_default_alloc_hooks(void)
{
	return &kernel_hooks;
}
EXPORT_SYMBOL_GPL(iovaq_default_alloc_hooks);

/* The core's API, for other kernel code (include/iovaq/, Context: process, may sleep). */
EXPORT_SYMBOL_GPL(iovaq_domain_create);
EXPORT_SYMBOL_GPL(iovaq_domain_destroy);
EXPORT_SYMBOL_GPL(iovaq_domain_map);
EXPORT_SYMBOL_GPL(iovaq_domain_unmap);
EXPORT_SYMBOL_GPL(iovaq_domain_sync);
EXPORT_SYMBOL_GPL(iovaq_domain_poll);
EXPORT_SYMBOL_GPL(iovaq_domain_get_stats);
EXPORT_SYMBOL_GPL(iovaq_domain_window);
EXPORT_SYMBOL_GPL(iovaq_domain_window_hist);
EXPORT_SYMBOL_GPL(iovaq_domain_json);
EXPORT_SYMBOL_GPL(iovaq_domain_cache);
EXPORT_SYMBOL_GPL(iovaq_domain_check);
EXPORT_SYMBOL_GPL(iovaq_arena_reserve);
EXPORT_SYMBOL_GPL(iovaq_arena_base);
EXPORT_SYMBOL_GPL(iovaq_arena_link);
EXPORT_SYMBOL_GPL(iovaq_arena_linkv);
EXPORT_SYMBOL_GPL(iovaq_arena_unlink);
EXPORT_SYMBOL_GPL(iovaq_arena_sync);
EXPORT_SYMBOL_GPL(iovaq_arena_release);
EXPORT_SYMBOL_GPL(iovaq_space_create);
EXPORT_SYMBOL_GPL(iovaq_space_destroy);
EXPORT_SYMBOL_GPL(iovaq_space_alloc);
EXPORT_SYMBOL_GPL(iovaq_space_free);
EXPORT_SYMBOL_GPL(iovaq_cache_create);
EXPORT_SYMBOL_GPL(iovaq_cache_destroy);
EXPORT_SYMBOL_GPL(iovaq_cache_alloc);
EXPORT_SYMBOL_GPL(iovaq_cache_free);
EXPORT_SYMBOL_GPL(iovaq_strerror);
EXPORT_SYMBOL_GPL(iovaq_version);

static int __init iovaq_init(void)
{
	int err = iovaq_dev_init();

	if (err)
		return err;
	pr_info("iovaq: libiovaq %s, /dev/iovaq ready\n", iovaq_version());
	return 0;
}

static void __exit iovaq_exit(void)
{
	iovaq_dev_exit();
}

module_init(iovaq_init);
module_exit(iovaq_exit);
MODULE_DESCRIPTION("libiovaq: IOVA allocation and batched IOTLB invalidation for the kernel IOMMU API");
MODULE_LICENSE("Dual BSD/GPL");
