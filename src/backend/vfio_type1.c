/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The "vfio-type1" backend: Linux VFIO's group and container API with the type1v2 IOMMU
 * (DESIGN.md §5), options in struct iovaq_vfio_type1_opts (include/iovaq/backend.h). The stock
 * Debian kernel has it where it lacks iommufd.
 *
 * Open: /dev/vfio/vfio (API version, type1v2 extension), the device's group /dev/vfio/N, which
 * must be viable, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU, VFIO_GROUP_GET_DEVICE_FD; or adopt
 * a container the caller set up. VFIO_IOMMU_GET_INFO's capability chain gives the IOVA ranges
 * (the aperture) and how many more mappings the container may hold (dma_avail: 65535 by
 * default, the module parameter dma_entry_limit).
 *
 * Map is VFIO_IOMMU_MAP_DMA at the library's IOVA; unmap VFIO_IOMMU_UNMAP_DMA, which unmaps,
 * invalidates (one IOTLB sync per up to 512 areas, FACTS.md) and unpins before it returns:
 * IOVAQ_CAP_UNMAP_INVALIDATES and IOVAQ_CAP_INVAL_PER_MAPPING, flush() executes nothing. A map
 * beyond the container's limit fails with -ENOSPC, and iovaq_backend_why() then names the
 * limit.
 *
 * Locking: @lock serialises map and unmap with the record of areas (vfio_common.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backend_priv.h"

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/vfio.h>)
#include <linux/vfio.h>
#if defined(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) && defined(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
#define IOVAQ_HAVE_VFIO_TYPE1 1
#endif
#endif
#endif

#ifdef IOVAQ_HAVE_VFIO_TYPE1

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_common.h"

struct vt1 {
	struct iovaq_backend be;
	int container;		/* -1 never; the caller's when adopted */
	int group_fd;		/* -1 when adopted */
	int dev_fd;		/* -1 when adopted */
	int adopted;
	uint32_t dma_limit;	/* mappings the container could hold at open (ours + avail) */
	iovaq_lock_t lock;
	struct vfio_areas areas;	/* protected by @lock */
};

static const struct iovaq_backend_ops vt1_ops;

static struct vt1 *to_vt1(const struct iovaq_backend *be)
{
	return iovaq_container_of(be, struct vt1, be);
}

static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	iovaq__backend_set_why(msg);
	return err;
}

static int open_fail(const char *path, const char *what)
{
	int err = -errno;

	if (err == -ENOENT)
		return fail(-ENODEV, "%s missing (%s)", path, what);
	if (err == -EACCES || err == -EPERM)
		return fail(err, "permission denied opening %s (%s)", path, what);
	return fail(err, "cannot open %s: %s", path, strerror(-err));
}

static int open_device(struct vt1 *v, const char *device)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char bdf[13], drv[64], why[256] = "", path[64];
	int group, err, type = VFIO_TYPE1v2_IOMMU;

	if (!device || !*device)
		return fail(-EINVAL, "vfio-type1: no device given (struct iovaq_vfio_type1_opts."
				     "device or IOVAQ_VFIO_DEVICE)");
	if (vfio_pci_addr(device, bdf))
		return fail(-EINVAL, "vfio-type1: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
			    device);
	err = vfio_pci_driver(bdf, drv, sizeof(drv), why, sizeof(why));
	if (err)
		return fail(err, "%s", why);
	if (strcmp(drv, "vfio-pci"))
		return fail(-ENODEV, "PCI device %s is bound to %s, not vfio-pci", bdf,
			    drv[0] ? drv : "no driver");
	err = vfio_pci_group(bdf, &group, why, sizeof(why));
	if (err)
		return fail(err, "%s", why);

	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		return open_fail("/dev/vfio/vfio", "kernel without VFIO, or vfio not loaded");
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return fail(-EOPNOTSUPP, "/dev/vfio/vfio: unknown VFIO API version");
	if (ioctl(v->container, VFIO_CHECK_EXTENSION, type) <= 0)
		return fail(-EOPNOTSUPP, "/dev/vfio/vfio: no VFIO_TYPE1v2_IOMMU (vfio_iommu_type1 "
					 "not loaded?)");
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	v->group_fd = open(path, O_RDWR | O_CLOEXEC);
	if (v->group_fd < 0)
		return open_fail(path, "the device's IOMMU group");
	if (ioctl(v->group_fd, VFIO_GROUP_GET_STATUS, &st))
		return fail(-errno, "VFIO_GROUP_GET_STATUS on %s: %s", path, strerror(errno));
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return fail(-EBUSY, "IOMMU group %d of %s is not viable: every device in it must "
				    "be bound to vfio-pci or to no driver", group, bdf);
	if (ioctl(v->group_fd, VFIO_GROUP_SET_CONTAINER, &v->container))
		return fail(-errno, "VFIO_GROUP_SET_CONTAINER for %s: %s", path, strerror(errno));
	if (ioctl(v->container, VFIO_SET_IOMMU, type))
		return fail(-errno, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): %s", strerror(errno));
	v->dev_fd = ioctl(v->group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->dev_fd < 0)
		return fail(-errno, "VFIO_GROUP_GET_DEVICE_FD %s: %s", bdf, strerror(errno));
	return 0;
}

/* Aperture and mapping budget from VFIO_IOMMU_GET_INFO's capability chain. */
static int read_info(struct vt1 *v)
{
	struct iovaq_backend_caps *c = &v->be.caps;
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) }, *info;
	const uint64_t g = c->granule;
	uint32_t off, avail = 0, have_avail = 0;
	int err = 0;

	if (ioctl(v->container, VFIO_IOMMU_GET_INFO, &probe))
		return fail(-errno, "VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	if (!(probe.flags & VFIO_IOMMU_INFO_CAPS) || probe.argsz <= sizeof(probe))
		return fail(-EOPNOTSUPP, "VFIO_IOMMU_GET_INFO reports no capabilities (kernel "
					 "older than 5.4?)");
	if (!(probe.flags & VFIO_IOMMU_INFO_PGSIZES) || !(probe.iova_pgsizes & g))
		return fail(-EOPNOTSUPP, "the type1 IOMMU does not map 4 KiB pages");
	info = calloc(1, probe.argsz);
	if (!info)
		return -ENOMEM;
	info->argsz = probe.argsz;
	if (ioctl(v->container, VFIO_IOMMU_GET_INFO, info)) {
		err = fail(-errno, "VFIO_IOMMU_GET_INFO: %s", strerror(errno));
		goto out;
	}
	c->n_apertures = 0;
	for (off = info->cap_offset; off && off + sizeof(struct vfio_info_cap_header) <= info->argsz;) {
		const struct vfio_info_cap_header *h = (const void *)((const char *)info + off);

		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			const struct vfio_iommu_type1_info_cap_iova_range *r = (const void *)h;

			for (uint32_t i = 0; i < r->nr_iovas &&
					     c->n_apertures < IOVAQ_BACKEND_MAX_APERTURES; i++) {
				uint64_t s = (r->iova_ranges[i].start + g - 1) & ~(g - 1);
				uint64_t l = r->iova_ranges[i].end; /* inclusive */

				if (s < g)
					s = g;
				if (l != UINT64_MAX)
					l = ((l + 1) & ~(g - 1)) - 1;
				if (s < r->iova_ranges[i].start || l < s || l + 1 - s < g)
					continue;
				c->apertures[c->n_apertures++] = (struct iovaq_range){ s, l };
			}
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			avail = ((const struct vfio_iommu_type1_info_dma_avail *)(const void *)h)->avail;
			have_avail = 1;
		}
		if (h->next <= off)
			break;
		off = h->next;
	}
	if (!c->n_apertures)
		err = fail(-ENOSPC, "the container reports no usable IOVA range (aperture too "
				    "small)");
	v->dma_limit = have_avail ? avail : 65535;
out:
	free(info);
	return err;
}

static void vt1_free(struct vt1 *v)
{
	/* Order matters: the device, then the group (leaves the container), then the container. */
	if (v->dev_fd >= 0)
		close(v->dev_fd);
	if (v->group_fd >= 0)
		close(v->group_fd);
	if (!v->adopted && v->container >= 0)
		close(v->container);
	vfio_areas_fini(&v->areas);
	iovaq_lock_destroy(&v->lock);
	iovaq_hooks_free(v->be.hooks, v, sizeof(*v));
}

static int vt1_open(const void *backend_opts, const struct iovaq_alloc_hooks *hooks,
		    struct iovaq_backend **out)
{
	const struct iovaq_vfio_type1_opts *o = backend_opts;
	uint32_t flags = IOVAQ_OPTS_GET(o, flags, 0);
	struct iovaq_backend_caps *c;
	const char *device;
	struct vt1 *v;
	int err;

	if (o) {
		err = iovaq_opts_check(o, sizeof(o->sz), sizeof(*o));
		if (err)
			return err;
	}
	if (flags & ~(uint32_t)IOVAQ_VFIO_TYPE1_ADOPT)
		return fail(-EINVAL, "vfio-type1: unknown flags 0x%x", flags);
	v = iovaq_hooks_alloc(hooks, sizeof(*v), IOVAQ_CACHELINE);
	if (!v)
		return -ENOMEM;
	iovaq_memset(v, 0, sizeof(*v));
	v->be.ops = &vt1_ops;
	v->be.hooks = hooks;
	v->container = v->group_fd = v->dev_fd = -1;
	iovaq_lock_init(&v->lock);
	vfio_areas_init(&v->areas, hooks);
	c = &v->be.caps;
	c->sz = sizeof(*c);
	c->granule = 4096;
	c->page_sizes = 4096;

	if (flags & IOVAQ_VFIO_TYPE1_ADOPT) {
		v->adopted = 1;
		v->container = o->container;
		err = 0;
	} else {
		device = IOVAQ_OPTS_GET(o, device, NULL);
		if (!device)
			device = getenv("IOVAQ_VFIO_DEVICE");
		err = open_device(v, device);
	}
	if (!err)
		err = read_info(v);
	if (err) {
		vt1_free(v);
		return err;
	}
	c->flags = IOVAQ_CAP_UNMAP_INVALIDATES | IOVAQ_CAP_INVAL_PER_MAPPING;
	c->inval_kinds = (1u << IOVAQ_INVAL_PAGES) | (1u << IOVAQ_INVAL_RANGE) |
			 (1u << IOVAQ_INVAL_DOMAIN) | (1u << IOVAQ_INVAL_GLOBAL);
	c->max_am = 51;
	/* See iommufd.c; type1 cannot tell caching mode, so assume bare metal. */
	c->cost_map_ns = 1500;
	c->cost_unmap_ns = 2000;
	*out = &v->be;
	return 0;
}

static void vt1_close(struct iovaq_backend *be)
{
	struct vt1 *v = to_vt1(be);

	if (v->adopted) {
		for (size_t i = 0; i < v->areas.n; i++) {
			struct vfio_iommu_type1_dma_unmap u = {
				.argsz = sizeof(u),
				.iova = v->areas.a[i].iova,
				.size = v->areas.a[i].last - v->areas.a[i].iova + 1,
			};

			(void)ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &u);
		}
	}
	vt1_free(v);
}

static int vt1_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot)
{
	struct vt1 *v = to_vt1(be);
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = ((prot & IOVAQ_PROT_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
			 ((prot & IOVAQ_PROT_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = (uintptr_t)host,
		.iova = iova,
		.size = len,
	};
	size_t pos;
	int err;

	iovaq_lock(&v->lock);
	err = vfio_areas_check_add(&v->areas, iova, iova + len - 1, &pos);
	if (!err)
		err = vfio_areas_insert(&v->areas, pos, iova, iova + len - 1);
	if (!err && ioctl(v->container, VFIO_IOMMU_MAP_DMA, &m)) {
		err = -errno;
		vfio_areas_remove(&v->areas, pos, 1);
		if (err == -ENOSPC)
			fail(err, "vfio-type1: the container's mapping limit is reached: %zu live "
				  "mappings of this backend, %u allowed at open (vfio_iommu_type1 "
				  "module parameter dma_entry_limit, 65535 by default)",
			     v->areas.n, v->dma_limit);
	}
	iovaq_unlock(&v->lock);
	return err;
}

static int vt1_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	struct vt1 *v = to_vt1(be);
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = len };
	size_t first, n;
	int err;

	iovaq_lock(&v->lock);
	err = vfio_areas_find(&v->areas, iova, iova + len - 1, &first, &n);
	if (!err) {
		/* As in iommufd.c: one call unless an adopted container may hold others' maps. */
		if (!v->adopted) {
			if (ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &u))
				err = -errno;
		} else {
			for (size_t i = first; i < first + n && !err; i++) {
				u.iova = v->areas.a[i].iova;
				u.size = v->areas.a[i].last - u.iova + 1;
				if (ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &u))
					err = -errno;
			}
		}
		vfio_areas_remove(&v->areas, first, n);
	}
	iovaq_unlock(&v->lock);
	return err;
}

static int vt1_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	(void)be;
	(void)cmds;
	(void)n;
	return 0; /* VFIO_IOMMU_UNMAP_DMA has invalidated already */
}

static int vt1_device_fd(const struct iovaq_backend *be)
{
	const struct vt1 *v = to_vt1(be);

	return v->dev_fd >= 0 ? v->dev_fd : -ENODEV;
}

static uint64_t vt1_pinned_bytes(struct iovaq_backend *be)
{
	struct vt1 *v = to_vt1(be);
	uint64_t b;

	iovaq_lock(&v->lock);
	b = v->areas.bytes;
	iovaq_unlock(&v->lock);
	return b;
}

static const struct iovaq_backend_ops vt1_ops = {
	.name = "vfio-type1",
	.open = vt1_open,
	.close = vt1_close,
	.map = vt1_map,
	.unmap = vt1_unmap,
	.flush = vt1_flush,
	.device_fd = vt1_device_fd,
	.pinned_bytes = vt1_pinned_bytes,
};

const struct iovaq_backend_ops *const iovaq_vfio_type1_ops = &vt1_ops;
const char iovaq_vfio_type1_missing[] = "";

#else /* !IOVAQ_HAVE_VFIO_TYPE1 */

const struct iovaq_backend_ops *const iovaq_vfio_type1_ops = NULL;
const char iovaq_vfio_type1_missing[] =
	"the vfio-type1 backend was built without a linux/vfio.h that has the type1 IOVA-range "
	"and DMA-avail capabilities (kernel >= 5.10 uapi)";

#endif
