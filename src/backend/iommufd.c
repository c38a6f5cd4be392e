/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The "iommufd" backend: Linux /dev/iommu (kernel >= 6.2 uapi; DESIGN.md §5), options in
 * struct iovaq_iommufd_opts (include/iovaq/backend.h).
 *
 * Open: /dev/iommu, then the device's VFIO cdev, VFIO_DEVICE_BIND_IOMMUFD, IOMMU_IOAS_ALLOC,
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT; or adopt an iommufd and IOAS the caller owns. The aperture is
 * read with IOMMU_IOAS_IOVA_RANGES after the attach: attaching a device adds its reserved
 * regions (the x86 MSI window) and can narrow the ranges to the IOMMU's address width.
 *
 * Map is IOMMU_IOAS_MAP with IOMMU_IOAS_MAP_FIXED_IOVA: the library owns IOVA choice. Unmap is
 * IOMMU_IOAS_UNMAP, which invalidates the IOTLB before it returns, one invalidation per area
 * it removes (measured: FACTS.md), hence IOVAQ_CAP_UNMAP_INVALIDATES and
 * IOVAQ_CAP_INVAL_PER_MAPPING; flush() executes nothing. Fewer, larger mappings (arenas) are
 * what batching means here.
 *
 * Locking: @lock serialises map and unmap, so that the record of areas (vfio_common.h) and the
 * kernel's IOAS change together. Everything else is set at open and constant.
 *
 * Without linux/iommufd.h at build time the backend is a stub: iovaq_iommufd_ops is NULL and
 * iovaq_backend_open() fails with -EOPNOTSUPP and iovaq_iommufd_missing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backend_priv.h"

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/iommufd.h>) && __has_include(<linux/vfio.h>)
#include <linux/iommufd.h>
#include <linux/vfio.h>
#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(VFIO_DEVICE_ATTACH_IOMMUFD_PT) && defined(IOMMU_IOAS_MAP)
#define IOVAQ_HAVE_IOMMUFD 1
#endif
#endif
#endif

#ifdef IOVAQ_HAVE_IOMMUFD

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_common.h"

/* VT-d capability register, Caching Mode (VT-d spec 11.4.2). */
#define VTD_CAP_CM (1ull << 7)

struct ifd {
	struct iovaq_backend be;
	int fd;			/* /dev/iommu */
	int dev_fd;		/* VFIO device cdev, -1 when adopted */
	uint32_t ioas_id;
	uint32_t dev_id;
	int adopted;
	iovaq_lock_t lock;
	struct vfio_areas areas;	/* protected by @lock */
};

static struct ifd *to_ifd(const struct iovaq_backend *be)
{
	return iovaq_container_of(be, struct ifd, be);
}

static const struct iovaq_backend_ops ifd_ops;

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

/* errno of a failed open() of a device node, with a reason naming it. */
static int open_fail(const char *path, const char *what)
{
	int err = -errno;

	if (err == -ENOENT)
		return fail(-ENODEV, "%s missing (%s)", path, what);
	if (err == -EACCES || err == -EPERM)
		return fail(err, "permission denied opening %s (%s)", path, what);
	return fail(err, "cannot open %s: %s", path, strerror(-err));
}

/* Fill caps.apertures from IOMMU_IOAS_IOVA_RANGES, granule-aligned, IOVA 0 excluded. */
static int read_apertures(struct ifd *d)
{
	struct iommu_iova_range r[IOVAQ_BACKEND_MAX_APERTURES * 2];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = d->ioas_id,
		.num_iovas = IOVAQ_ARRAY_SIZE(r),
		.allowed_iovas = (uintptr_t)r,
	};
	struct iovaq_backend_caps *c = &d->be.caps;
	uint64_t g = c->granule;
	uint32_t i;

	if (ioctl(d->fd, IOMMU_IOAS_IOVA_RANGES, &q)) {
		if (errno == EMSGSIZE)
			return fail(-E2BIG, "IOMMU_IOAS_IOVA_RANGES: more than %zu ranges", IOVAQ_ARRAY_SIZE(r));
		return fail(-errno, "IOMMU_IOAS_IOVA_RANGES failed: %s", strerror(errno));
	}
	if (q.out_iova_alignment > g)
		return fail(-EOPNOTSUPP, "IOAS needs IOVA alignment above 4 KiB");
	c->n_apertures = 0;
	for (i = 0; i < q.num_iovas && c->n_apertures < IOVAQ_BACKEND_MAX_APERTURES; i++) {
		uint64_t s = (r[i].start + g - 1) & ~(g - 1);
		uint64_t l = r[i].last;

		if (s < g)
			s = g;
		if (l != UINT64_MAX)
			l = ((l + 1) & ~(g - 1)) - 1;
		if (s < r[i].start || l < s || l + 1 - s < g)
			continue;
		c->apertures[c->n_apertures++] = (struct iovaq_range){ s, l };
	}
	if (!c->n_apertures)
		return fail(-ENOSPC, "IOAS has no usable IOVA range (aperture too small)");
	return 0;
}

/* Caching mode from the VT-d capability register, when the IOMMU is VT-d. */
static uint32_t hw_flags(struct ifd *d)
{
	struct iommu_hw_info_vtd vtd;
	struct iommu_hw_info q = {
		.size = sizeof(q),
		.dev_id = d->dev_id,
		.data_len = sizeof(vtd),
		.data_uptr = (uintptr_t)&vtd,
	};

	if (d->adopted)
		return 0;
	memset(&vtd, 0, sizeof(vtd));
	if (ioctl(d->fd, IOMMU_GET_HW_INFO, &q) ||
	    q.out_data_type != IOMMU_HW_INFO_TYPE_INTEL_VTD)
		return 0;
	return (vtd.cap_reg & VTD_CAP_CM) ? IOVAQ_CAP_CACHING_MODE : 0;
}

/* Open the device named by @device, bind it to d->fd, attach it to a new IOAS. */
static int open_device(struct ifd *d, const char *device)
{
	char bdf[13], path[PATH_MAX], why[256];
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	int err;

	if (!device || !*device)
		return fail(-EINVAL, "iommufd: no device given (struct iovaq_iommufd_opts.device or "
				     "IOVAQ_IOMMUFD_DEVICE)");
	if (!vfio_pci_addr(device, bdf)) {
		err = vfio_pci_cdev(bdf, path, sizeof(path), why, sizeof(why));
		if (err)
			return fail(err, "%s", why);
	} else {
		snprintf(path, sizeof(path), "%s", device);
	}
	d->fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return open_fail("/dev/iommu", "kernel without CONFIG_IOMMUFD?");
	d->dev_fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->dev_fd < 0)
		return open_fail(path, "the device's VFIO cdev");
	bind.iommufd = d->fd;
	if (ioctl(d->dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		err = -errno;
		return fail(err, "VFIO_DEVICE_BIND_IOMMUFD on %s: %s", path, strerror(-err));
	}
	d->dev_id = bind.out_devid;
	if (ioctl(d->fd, IOMMU_IOAS_ALLOC, &ia))
		return fail(-errno, "IOMMU_IOAS_ALLOC: %s", strerror(errno));
	d->ioas_id = ia.out_ioas_id;
	at.pt_id = d->ioas_id;
	if (ioctl(d->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at)) {
		err = -errno;
		return fail(err, "VFIO_DEVICE_ATTACH_IOMMUFD_PT of %s: %s", path, strerror(-err));
	}
	return 0;
}

static void ifd_free(struct ifd *d)
{
	/* Closing the device fd detaches and unbinds it; closing /dev/iommu frees the IOAS. */
	if (d->dev_fd >= 0)
		close(d->dev_fd);
	if (!d->adopted && d->fd >= 0)
		close(d->fd);
	vfio_areas_fini(&d->areas);
	iovaq_lock_destroy(&d->lock);
	iovaq_hooks_free(d->be.hooks, d, sizeof(*d));
}

static int ifd_open(const void *backend_opts, const struct iovaq_alloc_hooks *hooks,
		    struct iovaq_backend **out)
{
	const struct iovaq_iommufd_opts *o = backend_opts;
	struct iovaq_backend_caps *c;
	const char *device;
	struct ifd *d;
	int err;

	if (o) {
		err = iovaq_opts_check(o, sizeof(o->sz), sizeof(*o));
		if (err)
			return err;
		if (IOVAQ_OPTS_GET(o, flags, 0))
			return fail(-EINVAL, "iommufd: unknown flags");
	}
	d = iovaq_hooks_alloc(hooks, sizeof(*d), IOVAQ_CACHELINE);
	if (!d)
		return -ENOMEM;
	iovaq_memset(d, 0, sizeof(*d));
	d->be.ops = &ifd_ops;
	d->be.hooks = hooks;
	d->fd = d->dev_fd = -1;
	iovaq_lock_init(&d->lock);
	vfio_areas_init(&d->areas, hooks);

	if (IOVAQ_OPTS_GET(o, ioas_id, 0)) {
		d->adopted = 1;
		d->fd = o->iommufd;
		d->ioas_id = o->ioas_id;
		err = 0;
	} else {
		device = IOVAQ_OPTS_GET(o, device, NULL);
		if (!device)
			device = getenv("IOVAQ_IOMMUFD_DEVICE");
		err = open_device(d, device);
	}
	c = &d->be.caps;
	c->sz = sizeof(*c);
	c->granule = 4096;
	c->page_sizes = 4096;
	if (!err)
		err = read_apertures(d);
	if (err) {
		ifd_free(d);
		return err;
	}
	c->flags = IOVAQ_CAP_UNMAP_INVALIDATES | IOVAQ_CAP_INVAL_PER_MAPPING | hw_flags(d);
	/* Every kind is accepted and costs nothing: the unmap already invalidated. */
	c->inval_kinds = (1u << IOVAQ_INVAL_PAGES) | (1u << IOVAQ_INVAL_RANGE) |
			 (1u << IOVAQ_INVAL_DOMAIN) | (1u << IOVAQ_INVAL_GLOBAL);
	c->max_am = 51; /* 2^51 granules of 4 KiB: the whole 64-bit space */
	c->leaf_hint = 0;
	/*
	 * Cost hints from the VM testbed (FACTS.md): a map + unmap pair of one page 21-28 us under
	 * TCG with caching mode, one trapped invalidation 2-7 us. On bare metal a system call and
	 * an invalidation cost about a microsecond each.
	 */
	if (c->flags & IOVAQ_CAP_CACHING_MODE) {
		c->cost_trap_ns = 4000;
		c->cost_map_ns = 10000;
		c->cost_unmap_ns = 12000;
	} else {
		c->cost_map_ns = 1500;
		c->cost_unmap_ns = 2000;
	}
	*out = &d->be;
	return 0;
}

static void ifd_close(struct iovaq_backend *be)
{
	struct ifd *d = to_ifd(be);

	/* An adopted IOAS outlives us: take back what we mapped there. */
	if (d->adopted) {
		for (size_t i = 0; i < d->areas.n; i++) {
			struct iommu_ioas_unmap u = {
				.size = sizeof(u),
				.ioas_id = d->ioas_id,
				.iova = d->areas.a[i].iova,
				.length = d->areas.a[i].last - d->areas.a[i].iova + 1,
			};

			(void)ioctl(d->fd, IOMMU_IOAS_UNMAP, &u);
		}
	}
	ifd_free(d);
}

static int ifd_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot)
{
	struct ifd *d = to_ifd(be);
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA |
			 ((prot & IOVAQ_PROT_READ) ? IOMMU_IOAS_MAP_READABLE : 0) |
			 ((prot & IOVAQ_PROT_WRITE) ? IOMMU_IOAS_MAP_WRITEABLE : 0),
		.ioas_id = d->ioas_id,
		.user_va = (uintptr_t)host,
		.length = len,
		.iova = iova,
	};
	size_t pos;
	int err;

	iovaq_lock(&d->lock);
	err = vfio_areas_check_add(&d->areas, iova, iova + len - 1, &pos);
	if (!err)
		err = vfio_areas_insert(&d->areas, pos, iova, iova + len - 1);
	if (!err && ioctl(d->fd, IOMMU_IOAS_MAP, &m)) {
		err = -errno;
		vfio_areas_remove(&d->areas, pos, 1);
	}
	iovaq_unlock(&d->lock);
	return err;
}

static int ifd_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	struct ifd *d = to_ifd(be);
	struct iommu_ioas_unmap u = {
		.size = sizeof(u),
		.ioas_id = d->ioas_id,
		.iova = iova,
		.length = len,
	};
	size_t first, n;
	int err;

	iovaq_lock(&d->lock);
	err = vfio_areas_find(&d->areas, iova, iova + len - 1, &first, &n);
	if (!err) {
		/*
		 * One call over the whole range when it holds only our areas; an adopted IOAS
		 * may hold the caller's own mappings in the gaps, so unmap ours one by one.
		 */
		if (!d->adopted || n == 1) {
			if (n == 1) {
				u.iova = d->areas.a[first].iova;
				u.length = d->areas.a[first].last - u.iova + 1;
			}
			if (ioctl(d->fd, IOMMU_IOAS_UNMAP, &u))
				err = -errno;
		} else {
			for (size_t i = first; i < first + n && !err; i++) {
				u.iova = d->areas.a[i].iova;
				u.length = d->areas.a[i].last - u.iova + 1;
				if (ioctl(d->fd, IOMMU_IOAS_UNMAP, &u))
					err = -errno;
			}
		}
		/*
		 * The kernel removed what it could before an error (device gone, IOAS
		 * destroyed): an area it still holds can only fail again, so forget them all.
		 */
		vfio_areas_remove(&d->areas, first, n);
	}
	iovaq_unlock(&d->lock);
	return err;
}

static int ifd_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	(void)be;
	(void)cmds;
	(void)n;
	return 0; /* IOMMU_IOAS_UNMAP has invalidated already */
}

static int ifd_device_fd(const struct iovaq_backend *be)
{
	const struct ifd *d = to_ifd(be);

	return d->dev_fd >= 0 ? d->dev_fd : -ENODEV;
}

static uint64_t ifd_pinned_bytes(struct iovaq_backend *be)
{
	struct ifd *d = to_ifd(be);
	uint64_t b;

	iovaq_lock(&d->lock);
	b = d->areas.bytes;
	iovaq_unlock(&d->lock);
	return b;
}

static const struct iovaq_backend_ops ifd_ops = {
	.name = "iommufd",
	.open = ifd_open,
	.close = ifd_close,
	.map = ifd_map,
	.unmap = ifd_unmap,
	.flush = ifd_flush,
	.device_fd = ifd_device_fd,
	.pinned_bytes = ifd_pinned_bytes,
};

const struct iovaq_backend_ops *const iovaq_iommufd_ops = &ifd_ops;
const char iovaq_iommufd_missing[] = "";

#else /* !IOVAQ_HAVE_IOMMUFD */

const struct iovaq_backend_ops *const iovaq_iommufd_ops = NULL;
const char iovaq_iommufd_missing[] =
	"the iommufd backend was built without linux/iommufd.h (kernel >= 6.2 uapi; Debian 12: "
	"linux-libc-dev from bookworm-backports, scripts/setup-vm.sh)";

#endif
