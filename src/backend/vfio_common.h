/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * What the two Linux backends (iommufd.c, vfio_type1.c) share: the record of their own
 * mappings, and finding a PCI device's VFIO pieces in sysfs.
 *
 * Why a record at all: neither kernel interface checks the backend contract by itself. An
 * IOMMU_IOAS_UNMAP or VFIO_IOMMU_UNMAP_DMA over a range that splits an area fails only when it
 * reaches that area, after unmapping the areas before it; type1 succeeds with nothing unmapped.
 * The record lets map and unmap refuse (-EEXIST, -EINVAL, -ENOENT) before the system call, so
 * that a failing call changes nothing (include/iovaq/backend.h).
 */
#ifndef IOVAQ_VFIO_COMMON_H
#define IOVAQ_VFIO_COMMON_H

#include "backend_priv.h"

/* One mapping: [iova, last], bytes. */
struct vfio_area {
	iovaq_iova_t iova;
	iovaq_iova_t last;
};

/*
 * Sorted, non-overlapping areas in one array: insert and remove move the tail (memmove of up to
 * 16 bytes per mapping); lookups are binary searches. Not locked: the backend's lock protects
 * it. @bytes is what is mapped now: every byte of it is pinned by the kernel.
 */
struct vfio_areas {
	struct vfio_area *a;
	size_t n, cap;
	uint64_t bytes;
	const struct iovaq_alloc_hooks *hooks;
};

void vfio_areas_init(struct vfio_areas *s, const struct iovaq_alloc_hooks *hooks);
void vfio_areas_fini(struct vfio_areas *s);
/* Record [iova, last]: 0, -EEXIST if it overlaps a recorded area, -ENOMEM. */
int vfio_areas_check_add(const struct vfio_areas *s, iovaq_iova_t iova, iovaq_iova_t last,
			 size_t *pos);
int vfio_areas_insert(struct vfio_areas *s, size_t pos, iovaq_iova_t iova, iovaq_iova_t last);
/*
 * The areas inside [iova, last]: indexes [*first, *first + *n). -EINVAL if an area straddles
 * either end, -ENOENT if there is none.
 */
int vfio_areas_find(const struct vfio_areas *s, iovaq_iova_t iova, iovaq_iova_t last,
		    size_t *first, size_t *n);
void vfio_areas_remove(struct vfio_areas *s, size_t first, size_t n);

/*
 * sysfs helpers for a PCI address "DDDD:BB:DD.F" (or "BB:DD.F", domain 0). Each returns 0 or a
 * negative errno and writes a reason into @why (for iovaq_backend_why()) on failure.
 */
/* Normalise @in to "DDDD:BB:DD.F" in @bdf (13 bytes); -EINVAL if it is not a PCI address. */
int vfio_pci_addr(const char *in, char bdf[13]);
/* The device's driver name into @drv ("" if none); -ENODEV if there is no such device. */
int vfio_pci_driver(const char *bdf, char *drv, size_t len, char *why, size_t why_len);
/* The IOMMU group number; -ENODEV without one (no IOMMU, or IOMMU off). */
int vfio_pci_group(const char *bdf, int *group, char *why, size_t why_len);
/* "/dev/vfio/devices/vfioN" of a device bound to vfio-pci with the cdev interface. */
int vfio_pci_cdev(const char *bdf, char *path, size_t len, char *why, size_t why_len);

/* Set the calling thread's iovaq_backend_why() text (backend.c). */
void iovaq__backend_set_why(const char *msg);

#endif /* IOVAQ_VFIO_COMMON_H */
