/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The "kshim" backend: libiovaq's kernel-glue module (kernel-glue/, docs/kernel-glue.md)
 * through /dev/iovaq and its uapi (include/uapi/iovaq/kshim.h); options in struct
 * iovaq_kshim_opts (include/iovaq/backend.h). DESIGN.md §5: the one backend where the
 * library's planner batches real IOTLB invalidations.
 *
 * Open: /dev/iovaq, IOVAQ_KSHIM_BIND of the PCI device (the module claims its DMA ownership,
 * allocates a paging domain and attaches it), IOVAQ_KSHIM_CAPS; or adopt a file the caller
 * opened and bound. Map is IOVAQ_KSHIM_MAP (pin_user_pages + one iommu_map_sg()); unmap is
 * IOVAQ_KSHIM_UNMAP, iommu_unmap_fast() into a gather that is not synced: the IOTLB may keep
 * the translation, and the module keeps the pages pinned, until IOVAQ_KSHIM_FLUSH executes a
 * command covering the range (one iommu_iotlb_sync() per command). Hence the caps lack
 * IOVAQ_CAP_UNMAP_INVALIDATES and IOVAQ_CAP_INVAL_PER_MAPPING: one page-selective command
 * invalidates many separately mapped pages at once.
 *
 * The module checks the backend contract itself (-EEXIST, whole mappings only, nothing
 * changed on failure). The record of areas (vfio_common.h) is kept for an adopted file, which
 * may hold the caller's own mappings: unmap then removes ours one by one, never the caller's
 * in a gap, and close takes back exactly ours.
 *
 * Locking: @lock protects @areas; the module serialises the ioctls of one file.
 *
 * Without include/uapi/iovaq/kshim.h or linux/types.h at build time the backend is a stub:
 * iovaq_backend_open() fails with -EOPNOTSUPP and iovaq_kshim_missing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backend_priv.h"

#if defined(__linux__) && defined(__has_include)
#if __has_include(<uapi/iovaq/kshim.h>) && __has_include(<linux/types.h>)
#include <uapi/iovaq/kshim.h>
#define IOVAQ_HAVE_KSHIM 1
#endif
#endif

#ifdef IOVAQ_HAVE_KSHIM

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_common.h"

/* The uapi's command is libiovaq's, byte for byte: flush passes the caller's array as is. */
_Static_assert(sizeof(struct iovaq_kshim_inval) == sizeof(struct iovaq_inval), "inval size");
_Static_assert(offsetof(struct iovaq_kshim_inval, am) == offsetof(struct iovaq_inval, am),
	       "inval am");
_Static_assert(offsetof(struct iovaq_kshim_inval, iova) == offsetof(struct iovaq_inval, iova),
	       "inval iova");
_Static_assert(offsetof(struct iovaq_kshim_inval, last) == offsetof(struct iovaq_inval, last),
	       "inval last");
_Static_assert((unsigned int)IOVAQ_KSHIM_CAP_CACHING_MODE == (unsigned int)IOVAQ_CAP_CACHING_MODE,
	       "caps flag");
_Static_assert((unsigned int)IOVAQ_KSHIM_PROT_READ == (unsigned int)IOVAQ_PROT_READ &&
		       (unsigned int)IOVAQ_KSHIM_PROT_WRITE == (unsigned int)IOVAQ_PROT_WRITE,
	       "prot");

struct ksh {
	struct iovaq_backend be;
	int fd;			/* /dev/iovaq, bound; the caller's when adopted */
	int adopted;
	iovaq_lock_t lock;
	struct vfio_areas areas;	/* ours; protected by @lock */
};

static const struct iovaq_backend_ops ksh_ops;

static struct ksh *to_ksh(const struct iovaq_backend *be)
{
	return iovaq_container_of(be, struct ksh, be);
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

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

/* Open /dev/iovaq and bind @device to it. */
static int bind_device(struct ksh *k, const char *device)
{
	struct iovaq_kshim_bind b = { .size = sizeof(b) };
	unsigned int seg, bus, slot, fn;
	char bdf[13], drv[64], why[256];
	int err;

	if (!device || !*device)
		return fail(-EINVAL, "kshim: no device given (struct iovaq_kshim_opts.device or "
				     "IOVAQ_KSHIM_DEVICE)");
	if (vfio_pci_addr(device, bdf) ||
	    sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &slot, &fn) != 4)
		return fail(-EINVAL, "kshim: \"%s\" is not a PCI address (DDDD:BB:DD.F)", device);
	k->fd = open(IOVAQ_KSHIM_DEVICE, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		err = -errno;
		if (err == -ENOENT || err == -ENXIO || err == -ENODEV)
			return fail(-ENODEV, "%s missing (iovaq.ko not loaded? kernel-glue/, "
					     "docs/kernel-glue.md)", IOVAQ_KSHIM_DEVICE);
		if (err == -EACCES || err == -EPERM)
			return fail(err, "permission denied opening %s (mode 0600, and the module "
					 "asks for CAP_SYS_RAWIO)", IOVAQ_KSHIM_DEVICE);
		return fail(err, "cannot open %s: %s", IOVAQ_KSHIM_DEVICE, strerror(-err));
	}
	b.pci_domain = seg;
	b.pci_bus = (uint8_t)bus;
	b.pci_devfn = (uint8_t)(slot << 3 | fn);
	err = xioctl(k->fd, IOVAQ_KSHIM_BIND, &b);
	if (err == -EBUSY) {
		if (!vfio_pci_driver(bdf, drv, sizeof(drv), why, sizeof(why)) && drv[0])
			return fail(err, "PCI device %s is bound to %s: unbind it first", bdf, drv);
		return fail(err, "PCI device %s is in use (its DMA is owned by another user)",
			    bdf);
	}
	if (err == -ENODEV)
		return fail(err, "no PCI device %s, or it is not behind an IOMMU", bdf);
	if (err)
		return fail(err, "IOVAQ_KSHIM_BIND %s: %s", bdf, strerror(-err));
	return 0;
}

static int read_caps(struct ksh *k)
{
	struct iovaq_kshim_caps kc = { .size = sizeof(kc) };
	struct iovaq_backend_caps *c = &k->be.caps;
	uint32_t i;
	int err;

	err = xioctl(k->fd, IOVAQ_KSHIM_CAPS, &kc);
	if (err == -ENXIO)
		return fail(-EINVAL, "kshim: the adopted file is not bound to a device");
	if (err)
		return fail(err, "IOVAQ_KSHIM_CAPS: %s", strerror(-err));
	if (kc.granule < 4096 || (kc.granule & (kc.granule - 1)) || !kc.n_apertures)
		return fail(-EOPNOTSUPP, "kshim: unusable caps (granule %llu, %u apertures)",
			    (unsigned long long)kc.granule, kc.n_apertures);
	c->sz = sizeof(*c);
	/* Unmap does not invalidate, and one command covers many mappings: no flag for it. */
	c->flags = kc.flags & IOVAQ_CAP_CACHING_MODE;
	c->granule = kc.granule;
	c->page_sizes = kc.page_sizes;
	c->n_apertures = 0;
	for (i = 0; i < kc.n_apertures && i < IOVAQ_BACKEND_MAX_APERTURES; i++)
		c->apertures[c->n_apertures++] =
			(struct iovaq_range){ kc.apertures[i][0], kc.apertures[i][1] };
	c->inval_kinds = kc.inval_kinds & ((1u << IOVAQ_INVAL_NR_KINDS) - 1);
	c->max_am = kc.max_am;
	c->leaf_hint = kc.leaf_hint;
	/* The module's hints are for in-kernel callers; each of our calls adds an ioctl. */
	c->cost_flush_ns = kc.cost_flush_ns + 500;
	c->cost_cmd_ns = kc.cost_cmd_ns;
	c->cost_domain_ns = kc.cost_domain_ns;
	c->cost_map_ns = kc.cost_map_ns + 500;
	c->cost_unmap_ns = kc.cost_unmap_ns + 500;
	c->cost_trap_ns = kc.cost_trap_ns;
	c->cost_domain_page_ns = kc.cost_domain_page_ns;
	c->cost_inval_page_ns = kc.cost_inval_page_ns;
	return 0;
}

static void ksh_free(struct ksh *k)
{
	/* Closing our file unmaps, invalidates and unpins everything, then frees the device. */
	if (!k->adopted && k->fd >= 0)
		close(k->fd);
	vfio_areas_fini(&k->areas);
	iovaq_lock_destroy(&k->lock);
	iovaq_hooks_free(k->be.hooks, k, sizeof(*k));
}

static int ksh_open(const void *backend_opts, const struct iovaq_alloc_hooks *hooks,
		    struct iovaq_backend **out)
{
	const struct iovaq_kshim_opts *o = backend_opts;
	uint32_t flags = 0;
	const char *device;
	struct ksh *k;
	int err;

	if (o) {
		err = iovaq_opts_check(o, sizeof(o->sz), sizeof(*o));
		if (err)
			return err;
		flags = IOVAQ_OPTS_GET(o, flags, 0);
		if (flags & ~(uint32_t)IOVAQ_KSHIM_OPTS_ADOPT)
			return fail(-EINVAL, "kshim: unknown flags");
		if ((flags & IOVAQ_KSHIM_OPTS_ADOPT) && IOVAQ_OPTS_GET(o, fd, -1) < 0)
			return fail(-EINVAL, "kshim: IOVAQ_KSHIM_OPTS_ADOPT without a file descriptor");
	}
	k = iovaq_hooks_alloc(hooks, sizeof(*k), IOVAQ_CACHELINE);
	if (!k)
		return -ENOMEM;
	iovaq_memset(k, 0, sizeof(*k));
	k->be.ops = &ksh_ops;
	k->be.hooks = hooks;
	k->fd = -1;
	iovaq_lock_init(&k->lock);
	vfio_areas_init(&k->areas, hooks);
	if (flags & IOVAQ_KSHIM_OPTS_ADOPT) {
		k->adopted = 1;
		k->fd = o->fd;
		err = 0;
	} else {
		device = IOVAQ_OPTS_GET(o, device, NULL);
		if (!device)
			device = getenv("IOVAQ_KSHIM_DEVICE");
		err = bind_device(k, device);
	}
	if (!err)
		err = read_caps(k);
	if (err) {
		ksh_free(k);
		return err;
	}
	*out = &k->be;
	return 0;
}

static void ksh_close(struct iovaq_backend *be)
{
	struct ksh *k = to_ksh(be);

	/* An adopted file outlives us: take back exactly what we mapped, and invalidate it. */
	if (k->adopted && k->areas.n) {
		struct iovaq_kshim_inval all = { .kind = IOVAQ_INVAL_DOMAIN };
		struct iovaq_kshim_flush fl = { .size = sizeof(fl), .n_cmds = 1,
						.cmds_uptr = (uintptr_t)&all };

		for (size_t i = 0; i < k->areas.n; i++) {
			struct iovaq_kshim_unmap u = {
				.size = sizeof(u),
				.iova = k->areas.a[i].iova,
				.length = k->areas.a[i].last - k->areas.a[i].iova + 1,
			};

			(void)xioctl(k->fd, IOVAQ_KSHIM_UNMAP, &u);
		}
		(void)xioctl(k->fd, IOVAQ_KSHIM_FLUSH, &fl);
	}
	ksh_free(k);
}

static int ksh_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot)
{
	struct ksh *k = to_ksh(be);
	struct iovaq_kshim_map m = {
		.size = sizeof(m),
		.prot = prot,
		.iova = iova,
		.uaddr = (uintptr_t)host,
		.length = len,
	};
	size_t pos;
	int err;

	iovaq_lock(&k->lock);
	err = vfio_areas_check_add(&k->areas, iova, iova + len - 1, &pos);
	if (!err)
		err = vfio_areas_insert(&k->areas, pos, iova, iova + len - 1);
	if (!err) {
		err = xioctl(k->fd, IOVAQ_KSHIM_MAP, &m);
		if (err)
			vfio_areas_remove(&k->areas, pos, 1);
	}
	iovaq_unlock(&k->lock);
	return err;
}

static int ksh_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	struct ksh *k = to_ksh(be);
	struct iovaq_kshim_unmap u = { .size = sizeof(u), .iova = iova, .length = len };
	size_t first, n, i;
	uint32_t freed = 0;
	int err;

	iovaq_lock(&k->lock);
	err = vfio_areas_find(&k->areas, iova, iova + len - 1, &first, &n);
	if (!err && (!k->adopted || n == 1)) {
		/* One call: the module unmaps every mapping in the range, or none. */
		err = xioctl(k->fd, IOVAQ_KSHIM_UNMAP, &u);
		freed = u.out_flags & IOVAQ_KSHIM_UNMAP_FREED_TABLES;
		if (!err)
			vfio_areas_remove(&k->areas, first, n);
	} else if (!err) {
		/* The caller's own mappings may sit in the gaps: ours one by one. */
		for (i = 0; i < n && !err; i++) {
			u = (struct iovaq_kshim_unmap){
				.size = sizeof(u),
				.iova = k->areas.a[first + i].iova,
				.length = k->areas.a[first + i].last - k->areas.a[first + i].iova + 1,
			};
			err = xioctl(k->fd, IOVAQ_KSHIM_UNMAP, &u);
			freed |= u.out_flags & IOVAQ_KSHIM_UNMAP_FREED_TABLES;
		}
		/* What the module took is gone: forget it even when a later one failed. */
		vfio_areas_remove(&k->areas, first, err ? i - 1 : n);
	}
	iovaq_unlock(&k->lock);
	if (err)
		return err;
	return freed ? IOVAQ_UNMAP_FREED_TABLES : 0;
}

static int ksh_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	struct ksh *k = to_ksh(be);
	int err = 0;

	while (n && !err) {
		size_t c = n < IOVAQ_KSHIM_MAX_CMDS ? n : IOVAQ_KSHIM_MAX_CMDS;
		struct iovaq_kshim_flush fl = {
			.size = sizeof(fl),
			.n_cmds = (uint32_t)c,
			.cmds_uptr = (uintptr_t)cmds,
		};

		err = xioctl(k->fd, IOVAQ_KSHIM_FLUSH, &fl);
		cmds += c;
		n -= c;
	}
	return err;
}

static uint64_t ksh_pinned_bytes(struct iovaq_backend *be)
{
	struct ksh *k = to_ksh(be);
	struct iovaq_kshim_counters c = { .size = sizeof(c) };

	if (xioctl(k->fd, IOVAQ_KSHIM_COUNTERS, &c))
		return 0;
	return c.pinned_pages * k->be.caps.granule;
}

static const struct iovaq_backend_ops ksh_ops = {
	.name = "kshim",
	.open = ksh_open,
	.close = ksh_close,
	.map = ksh_map,
	.unmap = ksh_unmap,
	.flush = ksh_flush,
	.pinned_bytes = ksh_pinned_bytes,
};

const struct iovaq_backend_ops *const iovaq_kshim_ops = &ksh_ops;
const char iovaq_kshim_missing[] = "";

#else /* !IOVAQ_HAVE_KSHIM */

const struct iovaq_backend_ops *const iovaq_kshim_ops = NULL;
const char iovaq_kshim_missing[] =
	"the kshim backend was built without include/uapi/iovaq/kshim.h and linux/types.h "
	"(Linux uapi headers: linux-libc-dev)";

#endif
