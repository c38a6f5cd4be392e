/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/iommu.h> (6.12): the structs the glue reads and the calls it
 * makes. The calls are only declared: tests/kglue-unit/test_kglue.c defines __wrap_<name> for
 * each and links with -Wl,--wrap=<name>.
 *
 * Differences from the kernel, on purpose: iommu_iotlb_sync() and iommu_flush_iotlb_all() are
 * static inlines there that call domain->ops; here they are plain declarations so that they
 * can be wrapped and counted (their kernel versions re-initialise the gather after the sync,
 * which the test's wrapper does too). iommu_iotlb_gather_init() is the kernel's inline.
 */
#ifndef KSTUB_LINUX_IOMMU_H
#define KSTUB_LINUX_IOMMU_H

#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/device.h>

typedef u64 dma_addr_t;
typedef u64 phys_addr_t;

#define IOMMU_READ (1 << 0)
#define IOMMU_WRITE (1 << 1)

struct iommu_domain_geometry {
	dma_addr_t aperture_start;
	dma_addr_t aperture_end;
	bool force_aperture;
};

struct iommu_domain {
	unsigned int type;
	unsigned long pgsize_bitmap;
	struct iommu_domain_geometry geometry;
};

struct iommu_iotlb_gather {
	unsigned long start;
	unsigned long end;
	size_t pgsize;
	struct list_head freelist;
	bool queued;
};

static inline void iommu_iotlb_gather_init(struct iommu_iotlb_gather *gather)
{
	*gather = (struct iommu_iotlb_gather){
		.start = ULONG_MAX,
		.freelist = LIST_HEAD_INIT(gather->freelist),
	};
}

struct iommu_domain *iommu_paging_domain_alloc(struct device *dev);
void iommu_domain_free(struct iommu_domain *domain);
int iommu_attach_device(struct iommu_domain *domain, struct device *dev);
void iommu_detach_device(struct iommu_domain *domain, struct device *dev);
int iommu_device_claim_dma_owner(struct device *dev, void *owner);
void iommu_device_release_dma_owner(struct device *dev);
int iommu_map(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr, size_t size,
	      int prot, gfp_t gfp);
size_t iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size);
size_t iommu_unmap_fast(struct iommu_domain *domain, unsigned long iova, size_t size,
			struct iommu_iotlb_gather *iotlb_gather);
ssize_t iommu_map_sg(struct iommu_domain *domain, unsigned long iova, struct scatterlist *sg,
		     unsigned int nents, int prot, gfp_t gfp);
void iommu_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *iotlb_gather);
void iommu_flush_iotlb_all(struct iommu_domain *domain);

#endif
