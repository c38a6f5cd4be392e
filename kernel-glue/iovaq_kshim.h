/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq.ko: what the module's files share, and the kernel API it exports to other modules
 * (EXPORT_SYMBOL_GPL): the core's domain, arena and stats calls (include/iovaq/domain.h) plus
 * the kernel IOMMU backend below. Every call is process context and may sleep (the core's
 * locks are mutexes: src/core/port_kernel.h).
 */
#ifndef IOVAQ_KSHIM_H
#define IOVAQ_KSHIM_H

#include <linux/device.h>
#include <linux/pci.h>
#include <linux/limits.h>

/* The public headers name the C99 limit; the kernel calls it U64_MAX. */
#ifndef UINT64_MAX
#define UINT64_MAX U64_MAX
#endif

#include <iovaq/backend.h>
#include <iovaq/domain.h>

struct iovaq_backend;

/* Host addresses the backend maps. */
enum iovaq_khost {
	IOVAQ_KHOST_KERNEL = 0,	/* kernel virtual addresses (lowmem or vmalloc) */
	IOVAQ_KHOST_USER = 1,	/* user addresses of the opening task's mm, pinned at map */
};

/* Counters of the kernel backend: the IOMMU API calls it made. */
struct iovaq_kbe_counters {
	u64 maps;		/* iommu_map_sg() calls (each syncs the map side once) */
	u64 map_pages;
	u64 unmaps;		/* iommu_unmap_fast() calls */
	u64 unmap_pages;
	u64 syncs;		/* iommu_iotlb_sync() calls */
	u64 sync_tables;	/* of which, extra syncs that freed page-table pages */
	u64 flush_all;		/* iommu_flush_iotlb_all() calls */
	u64 pinned_pages;	/* now */
	u64 unpinned_pages;	/* released after their invalidation */
	u64 live_maps;		/* now */
	u64 op_ns;		/* module parameter timing: ns in map, unmap and flush */
	u64 iommu_ns;		/* ... of which in the IOMMU calls they make */
};

/**
 * iovaq_kbackend_open() - a backend driving the kernel IOMMU API for @dev.
 * @dev: a device behind an IOMMU, with no driver using the DMA API: the backend claims its DMA
 *	ownership (iommu_device_claim_dma_owner), allocates a paging domain and attaches it.
 * @host: an enum iovaq_khost.
 * @out: receives the backend, to be given to iovaq_domain_create() as opts.backend and closed
 *	with iovaq_backend_close() after the domain is destroyed.
 *
 * Unmap is iommu_unmap_fast() into a gather and does not invalidate; flush runs one
 * iommu_iotlb_sync() per planned command (and one more over the ranges that freed
 * page-table pages, which the IOMMU driver frees after it), then unpins user pages whose
 * invalidation completed.
 *
 * Context: process context; may sleep.
 * Return: 0; -ENODEV (no IOMMU group), -EBUSY (owned, or a driver is bound), -ENOMEM, or the
 * IOMMU core's error.
 */
int iovaq_kbackend_open(struct device *dev, enum iovaq_khost host, struct iovaq_backend **out);

/** iovaq_kbackend_counters() - copy the backend's counters. Context: any. */
void iovaq_kbackend_counters(struct iovaq_backend *be, struct iovaq_kbe_counters *c);

/** iovaq_kbackend_domain() - the IOMMU domain the device is attached to. */
struct iommu_domain *iovaq_kbackend_domain(struct iovaq_backend *be);

/* Failure injection (module parameter fail_nth, docs/kernel-glue.md). */
bool iovaq_kfail(const char *site);

/* /dev/iovaq (iovaq_dev.c). */
int iovaq_dev_init(void);
void iovaq_dev_exit(void);

/* The in-kernel loop behind IOVAQ_KSHIM_BENCH (iovaq_bench.c). */
struct iovaq_kshim_bench;
int iovaq_kbench_run(struct iovaq_backend *be, struct iovaq_kshim_bench *b);

#endif /* IOVAQ_KSHIM_H */
