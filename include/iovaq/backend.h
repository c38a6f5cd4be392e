/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq backends: the IOMMU behind a domain.
 *
 * A backend maps IOVA ranges to host memory, unmaps them, and executes invalidation commands.
 * Each backend is a const table of operations inside the library (src/backend/<name>.c); the
 * public handle is opaque. Backends:
 *   "sim"        a software model of a VT-d-like IOMMU (see iovaq/sim.h); always built;
 *   "iommufd"    Linux /dev/iommu with a VFIO device cdev (struct iovaq_iommufd_opts); built
 *                when linux/iommufd.h (kernel >= 6.2 uapi) is there, else open fails with
 *                -EOPNOTSUPP;
 *   "vfio-type1" Linux VFIO group and type1 container (struct iovaq_vfio_type1_opts);
 *   "kshim"      the kernel-glue module iovaq.ko through /dev/iovaq (struct iovaq_kshim_opts;
 *                docs/kernel-glue.md): the one backend whose unmap does not invalidate, so
 *                that the domain's planner batches real IOTLB invalidations.
 *
 * Contract of every backend (the contract suite in tests/contract/ checks it):
 *  - map() never replaces a mapping: overlapping an existing one fails with -EEXIST;
 *  - unmap() removes whole earlier mappings only: a range that would split a mapping fails
 *    with -EINVAL (as iommufd does), one that holds no mapping with -ENOENT;
 *  - after unmap() returns, the device may still reach the range through its IOTLB and
 *    paging-structure caches until a flush() whose commands cover it has returned, unless the
 *    caps say IOVAQ_CAP_UNMAP_INVALIDATES;
 *  - every operation that fails changes nothing.
 */
#ifndef IOVAQ_BACKEND_H
#define IOVAQ_BACKEND_H

#include <iovaq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovaq_backend;

#define IOVAQ_BACKEND_MAX_APERTURES 16

/* Access permissions of a mapping. */
enum {
	IOVAQ_PROT_READ = 1u << 0,	/* the device may read host memory */
	IOVAQ_PROT_WRITE = 1u << 1,	/* the device may write host memory */
};

/* Kinds of invalidation command (append-only). */
enum iovaq_inval_kind {
	/*
	 * Page-selective: 2^am granules starting at @iova, which must be aligned to that size
	 * (VT-d's address mask, "AM"); am <= caps.max_am.
	 */
	IOVAQ_INVAL_PAGES = 0,
	/* An arbitrary granule-aligned range [iova, last] (backends with range invalidation). */
	IOVAQ_INVAL_RANGE = 1,
	/* Everything this domain has cached. */
	IOVAQ_INVAL_DOMAIN = 2,
	/* Everything the IOMMU has cached, for every domain. */
	IOVAQ_INVAL_GLOBAL = 3,
	IOVAQ_INVAL_NR_KINDS
};

/* Flags of an invalidation command. */
enum {
	/*
	 * Leaf-only hint (VT-d's IH): only leaf translations changed, so paging-structure
	 * caches may be kept. Wrong (and caught by sim) if an unmap freed a table page in the
	 * range since the last non-leaf invalidation of it.
	 */
	IOVAQ_INVAL_LEAF = 1u << 0,
};

/**
 * struct iovaq_inval - one invalidation command.
 * @kind: an enum iovaq_inval_kind.
 * @flags: IOVAQ_INVAL_* flags.
 * @am: for IOVAQ_INVAL_PAGES, log2 of the number of granules; 0 otherwise.
 * @reserved: must be zero.
 * @iova: first byte covered (PAGES, RANGE); 0 otherwise.
 * @last: last byte covered, inclusive (RANGE); 0 otherwise.
 */
struct iovaq_inval {
	uint8_t kind;
	uint8_t flags;
	uint8_t am;
	uint8_t reserved[5];
	iovaq_iova_t iova;
	iovaq_iova_t last;
};

/* Capability flags. */
enum {
	/* unmap() itself invalidates before it returns: flush() has nothing to do. */
	IOVAQ_CAP_UNMAP_INVALIDATES = 1u << 0,
	/*
	 * Invalidation is per mapped area: unmapping N separately mapped areas costs N
	 * invalidations even in one call (iommufd, VFIO type1: FACTS.md). Batching there means
	 * fewer, larger mappings.
	 */
	IOVAQ_CAP_INVAL_PER_MAPPING = 1u << 1,
	/* Caching mode (a virtual IOMMU): every invalidation and every map traps. */
	IOVAQ_CAP_CACHING_MODE = 1u << 2,
	/* iovaq_backend_faults() can report device faults. */
	IOVAQ_CAP_FAULTS = 1u << 3,
};

/**
 * struct iovaq_backend_caps - what a backend offers; filled by iovaq_backend_get_caps().
 * @sz: sizeof(struct iovaq_backend_caps), set by the caller.
 * @flags: IOVAQ_CAP_* flags.
 * @page_sizes: bitmap of supported page sizes in bytes (bit k set: 2^k bytes).
 * @granule: the smallest page size, in bytes.
 * @n_apertures: valid entries in @apertures.
 * @apertures: usable IOVA ranges, [start, last] in bytes.
 * @inval_kinds: bitmap of supported enum iovaq_inval_kind (bit k: kind k).
 * @max_am: largest address mask of IOVAQ_INVAL_PAGES.
 * @leaf_hint: 1 if IOVAQ_INVAL_LEAF is honoured (keeps paging-structure caches).
 * @cost_flush_ns: estimated cost of one flush() call besides its commands (submit, wait).
 * @cost_cmd_ns: estimated cost of one page-selective or range command.
 * @cost_domain_ns: estimated fixed cost of one domain-wide command.
 * @cost_domain_page_ns: what a domain-wide command costs in addition per mapped page (under
 *	caching mode the hypervisor re-walks every mapping); 0 when negligible.
 * @cost_inval_page_ns: what a page-selective or range command costs in addition per granule
 *	it covers (under caching mode the hypervisor re-walks that range); 0 when negligible.
 * @cost_map_ns: estimated cost of one map() call.
 * @cost_unmap_ns: estimated cost of one unmap() call.
 * @cost_trap_ns: cost of one trap to a hypervisor, 0 on bare metal.
 *
 * Costs are hints for planning (which commands, when to flush), in nanoseconds: modelled on
 * sim, measured or estimated on real backends.
 */
struct iovaq_backend_caps {
	size_t sz;
	uint32_t flags;
	uint32_t n_apertures;
	uint64_t page_sizes;
	uint64_t granule;
	struct iovaq_range apertures[IOVAQ_BACKEND_MAX_APERTURES];
	uint32_t inval_kinds;
	uint8_t max_am;
	uint8_t leaf_hint;
	uint8_t reserved[2];
	uint64_t cost_flush_ns;
	uint64_t cost_cmd_ns;
	uint64_t cost_domain_ns;
	uint64_t cost_map_ns;
	uint64_t cost_unmap_ns;
	uint64_t cost_trap_ns;
	uint64_t cost_domain_page_ns;
	uint64_t cost_inval_page_ns;
};

/* Why a device access failed. */
enum iovaq_fault_reason {
	IOVAQ_FAULT_NOT_MAPPED = 1,	/* no translation */
	IOVAQ_FAULT_PERM = 2,		/* translation lacks the needed permission */
	IOVAQ_FAULT_STALE_TABLE = 3,	/* walk through a cached pointer to a freed table page */
	IOVAQ_FAULT_BAD_LEAF_INVAL = 4,	/* leaf-only invalidation after a table page was freed */
};

/**
 * struct iovaq_fault - one entry of a backend's fault log.
 * @iova: the faulting address (bytes).
 * @reason: an enum iovaq_fault_reason.
 * @write: 1 for a device write, 0 for a read.
 * @t_ns: when it happened (iovaq's monotonic clock, ns).
 */
struct iovaq_fault {
	iovaq_iova_t iova;
	uint32_t reason;
	uint32_t write;
	uint64_t t_ns;
};

/**
 * struct iovaq_backend_opts - how to open a backend; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_backend_opts).
 * @name: backend name ("sim", ...); NULL means the IOVAQ_BACKEND environment variable, and
 *	"sim" if that is unset.
 * @backend_opts: the backend's own options struct (for "sim": struct iovaq_sim_opts), or
 *	NULL for its defaults.
 * @hooks: metadata allocator; NULL means iovaq_default_alloc_hooks().
 */
struct iovaq_backend_opts {
	size_t sz;
	const char *name;
	const void *backend_opts;
	const struct iovaq_alloc_hooks *hooks;
};

/**
 * iovaq_backend_open() - open a backend.
 * @opts: options, or NULL for the default backend with its defaults.
 * @out: receives the backend; untouched on failure.
 *
 * Context: any thread; allocates; a real backend may open devices.
 * Return:
 * * 0 on success.
 * * -EINVAL: @out NULL, @opts->sz too small, bad backend options.
 * * -E2BIG: non-zero bytes beyond the fields this library knows.
 * * -ENOENT: no backend of that name.
 * * -EOPNOTSUPP: the backend exists but was not built here (iovaq_backend_why() says what
 *   is missing).
 * * -ENOMEM: allocation failed.
 * * other negative errnos from the backend's device.
 */
IOVAQ_API int iovaq_backend_open(const struct iovaq_backend_opts *opts,
				 struct iovaq_backend **out);

/**
 * iovaq_backend_close() - close a backend; its mappings disappear with it.
 * @be: the backend, or NULL.
 *
 * Context: no other call on @be may run concurrently or afterwards.
 */
IOVAQ_API void iovaq_backend_close(struct iovaq_backend *be);

/**
 * iovaq_backend_why() - why the last iovaq_backend_open() of this thread failed, or the last
 * map that ran out of backend mappings (-ENOSPC: vfio-type1 names its limit, the module
 * parameter dma_entry_limit, and the number of live mappings).
 *
 * Context: any thread (the message is per thread).
 * Return: a human-readable reason, "" if there is none.
 */
IOVAQ_API const char *iovaq_backend_why(void);

/**
 * iovaq_backend_name() - the name of an open backend.
 * @be: the backend (not NULL).
 * Return: a static string.
 */
IOVAQ_API const char *iovaq_backend_name(const struct iovaq_backend *be);

/**
 * iovaq_backend_get_caps() - the capabilities of an open backend.
 * @be: the backend.
 * @caps: filled up to @caps->sz.
 *
 * Context: any thread.
 * Return: 0, or -EINVAL for NULL arguments or @caps->sz too small.
 */
IOVAQ_API int iovaq_backend_get_caps(const struct iovaq_backend *be, struct iovaq_backend_caps *caps);

/**
 * iovaq_backend_map() - map host memory at an IOVA.
 * @be: the backend.
 * @iova: first byte, aligned to the backend's granule.
 * @host: host memory, aligned to the granule; it must stay valid until the range is unmapped
 *	and flushed.
 * @len: bytes, a non-zero multiple of the granule.
 * @prot: IOVAQ_PROT_READ and/or IOVAQ_PROT_WRITE (at least one).
 *
 * Context: thread-safe; may block (a real backend makes a system call).
 * Return:
 * * 0 on success.
 * * -EINVAL: misaligned @iova, @host or @len, @len 0, bad @prot, or the range not inside
 *   one aperture.
 * * -EEXIST: part of the range is already mapped.
 * * -ENOMEM: no memory for page tables or bookkeeping.
 * * other negative errnos from a real backend (or sim's injected faults).
 */
IOVAQ_API int iovaq_backend_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host,
				size_t len, unsigned int prot);

/**
 * struct iovaq_seg - one piece of host memory of a scatter-gather map or link.
 * @host: host address, aligned to the backend's granule.
 * @len: bytes, a non-zero multiple of the granule.
 */
struct iovaq_seg {
	void *host;
	size_t len;
};

/**
 * iovaq_backend_mapv() - map host segments at consecutive IOVAs from @iova.
 * @be: the backend.
 * @iova: first byte, aligned to the backend's granule.
 * @segs: the segments, mapped in order: segs[i] at @iova plus the lengths before it. Each must
 *	stay valid until its range is unmapped and flushed.
 * @nsegs: number of segments, at least one.
 * @prot: IOVAQ_PROT_READ and/or IOVAQ_PROT_WRITE (at least one).
 *
 * A backend that can map scattered memory at once (the kernel backend: one iommu_map_sg(), so
 * one map-side sync under caching mode) makes it one mapping. The others map each segment as a
 * mapping of its own, in order; when segment k fails, segments 0 to k - 1 are unmapped (one
 * call for their whole range, one per segment if the backend refuses that) and, unless unmap
 * already invalidates (IOVAQ_CAP_UNMAP_INVALIDATES), invalidated with one non-leaf command
 * (a range, else the aligned page-selective block that encloses them, else the domain), and
 * segment k's error is returned. Either way an unmap of the whole range removes everything,
 * and an unmap that splits the range may fail with -EINVAL. One segment is exactly
 * iovaq_backend_map().
 *
 * Context: thread-safe; may block.
 * Return: as iovaq_backend_map(); -EINVAL also for @nsegs 0, NULL @segs, a misaligned or empty
 * segment, or a total length that overflows or leaves the aperture. On any error nothing is
 * mapped (nor reachable), unless the rollback's own unmap (or invalidation) fails as well: a
 * backend failure the caller could not repair either.
 */
IOVAQ_API int iovaq_backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova,
				 const struct iovaq_seg *segs, size_t nsegs, unsigned int prot);

/**
 * iovaq_backend_unmap() - unmap whole earlier mappings, without invalidating where possible.
 * @be: the backend.
 * @iova: first byte, granule-aligned.
 * @len: bytes, a non-zero multiple of the granule.
 *
 * Until a flush covering the range returns, the device may still use cached translations
 * (unless IOVAQ_CAP_UNMAP_INVALIDATES).
 *
 * Context: thread-safe; may block.
 * Return:
 * * 0 on success, or IOVAQ_UNMAP_FREED_TABLES (positive) on success when page-table pages
 *   were freed: the invalidation of this range must then not be leaf-only.
 * * -EINVAL: misaligned or zero @len, outside the apertures, or the range splits a mapping.
 * * -ENOENT: no mapping inside the range.
 * * other negative errnos from a real backend (or sim's injected faults).
 */
IOVAQ_API int iovaq_backend_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len);

/* Positive return of iovaq_backend_unmap(): page-table pages were freed. */
#define IOVAQ_UNMAP_FREED_TABLES 1

/**
 * iovaq_backend_flush() - execute invalidation commands and wait for their completion.
 * @be: the backend.
 * @cmds: the commands, executed in order.
 * @n: number of commands; 0 is allowed and does nothing.
 *
 * When it returns 0, no translation covered by the commands survives in any cache.
 *
 * Context: thread-safe; may block.
 * Return:
 * * 0 on success.
 * * -EINVAL: NULL @cmds with @n > 0, an unknown or unsupported kind, unknown flags, non-zero
 *   reserved bytes, a misaligned address, @am above caps.max_am. Nothing is executed.
 * * other negative errnos from a real backend (or sim's injected faults); then no command is
 *   known to have completed.
 */
IOVAQ_API int iovaq_backend_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds,
				  size_t n);

/**
 * iovaq_backend_faults() - take entries from the backend's fault log, oldest first.
 * @be: the backend.
 * @out: array of @max entries.
 * @max: room in @out.
 *
 * Context: thread-safe.
 * Return: number of entries written (0 if none), -EINVAL for bad arguments, -EOPNOTSUPP if
 * the backend has no fault reporting.
 */
IOVAQ_API int iovaq_backend_faults(struct iovaq_backend *be, struct iovaq_fault *out,
				   size_t max);

/**
 * struct iovaq_iommufd_opts - options of the "iommufd" backend; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_iommufd_opts).
 * @device: the device whose DMA the backend maps, bound to vfio-pci: its VFIO cdev
 *	("/dev/vfio/devices/vfio0") or its PCI address ("0000:00:03.0"). The backend opens
 *	/dev/iommu, binds the device (VFIO_DEVICE_BIND_IOMMUFD), allocates an IOAS and attaches
 *	the device to it; close undoes all of it. NULL means the IOVAQ_IOMMUFD_DEVICE
 *	environment variable. Ignored when @ioas_id is non-zero.
 * @iommufd: with @ioas_id: an open /dev/iommu file descriptor the caller owns.
 * @ioas_id: non-zero: adopt this IOAS of @iommufd (as a VMM does that has set up its own
 *	devices); the caller keeps both open until close, which unmaps what the backend mapped
 *	and closes nothing. 0: open @device.
 * @flags: must be 0.
 *
 * The aperture is the IOAS's allowed IOVA ranges (IOMMU_IOAS_IOVA_RANGES) after the attach,
 * granule-aligned, without IOVA 0. Maps use IOMMU_IOAS_MAP with IOMMU_IOAS_MAP_FIXED_IOVA (the
 * library picks IOVAs); the kernel invalidates inside every unmap, so the caps say
 * IOVAQ_CAP_UNMAP_INVALIDATES and IOVAQ_CAP_INVAL_PER_MAPPING, and flush() has nothing to do.
 * With a VT-d IOMMU, the caps say IOVAQ_CAP_CACHING_MODE when its capability register does.
 * With an adopted IOAS, the caller may detach its devices while the backend has mappings there
 * (VFIO_DEVICE_DETACH_IOMMUFD_PT): the device's DMA then faults, and the backend goes on
 * mapping and unmapping in the IOAS.
 */
struct iovaq_iommufd_opts {
	size_t sz;
	const char *device;
	int iommufd;
	uint32_t ioas_id;
	uint32_t flags;
};

/* Flags of struct iovaq_vfio_type1_opts. */
enum {
	/* Adopt @container (set up by the caller with VFIO_SET_IOMMU) instead of opening one. */
	IOVAQ_VFIO_TYPE1_ADOPT = 1u << 0,
};

/**
 * struct iovaq_vfio_type1_opts - options of the "vfio-type1" backend; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_vfio_type1_opts).
 * @device: PCI address ("0000:00:03.0") of a device bound to vfio-pci. The backend opens a
 *	container (/dev/vfio/vfio), the device's group (/dev/vfio/N, which must be viable: every
 *	device in it bound to vfio-pci or to no driver), sets the VFIO_TYPE1v2_IOMMU and opens
 *	the device; close undoes all of it. NULL means the IOVAQ_VFIO_DEVICE environment
 *	variable. Ignored with IOVAQ_VFIO_TYPE1_ADOPT.
 * @container: with IOVAQ_VFIO_TYPE1_ADOPT: a container file descriptor the caller owns, with
 *	its groups added and the type1 IOMMU set; close unmaps what the backend mapped and
 *	closes nothing.
 * @flags: IOVAQ_VFIO_TYPE1_* flags.
 *
 * The aperture is the container's IOVA ranges (VFIO_IOMMU_GET_INFO, capability
 * VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE), granule-aligned, without IOVA 0. The kernel limits the
 * number of mappings per container (module parameter dma_entry_limit, 65535 by default): a map
 * beyond it fails with -ENOSPC. Unmap invalidates, as with iommufd.
 */
struct iovaq_vfio_type1_opts {
	size_t sz;
	const char *device;
	int container;
	uint32_t flags;
};

/* Flags of struct iovaq_kshim_opts. */
enum {
	/* Adopt @fd (an open /dev/iovaq, bound by the caller) instead of opening one. */
	IOVAQ_KSHIM_OPTS_ADOPT = 1u << 0,
};

/**
 * struct iovaq_kshim_opts - options of the "kshim" backend; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_kshim_opts).
 * @device: PCI address ("0000:00:03.0", or "00:03.0" in segment 0) of a device with no driver
 *	bound, behind an IOMMU. The backend opens /dev/iovaq (mode 0600, and CAP_SYS_RAWIO),
 *	binds the device (the module claims its DMA ownership, gives it a private IOMMU paging
 *	domain and attaches it); close unmaps everything, invalidates, unpins and releases the
 *	device. NULL means the IOVAQ_KSHIM_DEVICE environment variable. Ignored with
 *	IOVAQ_KSHIM_OPTS_ADOPT.
 * @fd: with IOVAQ_KSHIM_OPTS_ADOPT: an open /dev/iovaq file descriptor the caller owns and has
 *	bound (IOVAQ_KSHIM_BIND, include/uapi/iovaq/kshim.h); close unmaps and flushes what the
 *	backend mapped and closes nothing.
 * @flags: IOVAQ_KSHIM_OPTS_* flags.
 *
 * Map pins the buffer in the kernel (pin_user_pages, FOLL_LONGTERM) and maps it with one
 * iommu_map_sg(); unmap is iommu_unmap_fast() without a sync, so the caps do not say
 * IOVAQ_CAP_UNMAP_INVALIDATES: the device may reach an unmapped range, and its pages stay
 * pinned, until a flush() whose commands cover it has returned (one iommu_iotlb_sync() per
 * page-selective or range command, iommu_flush_iotlb_all() for a domain command). Every call
 * is one ioctl. The caps say IOVAQ_CAP_CACHING_MODE when the module reports a virtual IOMMU
 * (module parameter caching_mode; by default, when running under a hypervisor).
 */
struct iovaq_kshim_opts {
	size_t sz;
	const char *device;
	int fd;
	uint32_t flags;
};

/**
 * iovaq_backend_device_fd() - the VFIO device file descriptor a backend opened.
 * @be: the backend.
 *
 * A userspace driver programs its device through it (regions, interrupts); it stays owned by
 * the backend and is closed by iovaq_backend_close(). The backend registers no device-request
 * eventfd (VFIO_PCI_REQ_IRQ_INDEX): when the device is removed while open, the kernel's removal
 * waits for iovaq_backend_close(), and until then maps and unmaps keep working on the
 * container or IOAS. A driver that wants to be told registers its own eventfd here
 * (VFIO_DEVICE_SET_IRQS), and when it fires destroys its domains and closes the backend.
 *
 * Context: any thread.
 * Return: the descriptor (>= 0); -EINVAL for NULL; -ENODEV if the backend has no device
 * (sim, kshim, or a backend that adopted the caller's iommufd or container).
 */
IOVAQ_API int iovaq_backend_device_fd(const struct iovaq_backend *be);

/**
 * iovaq_backend_pinned_bytes() - host memory the kernel keeps pinned for this backend.
 * @be: the backend.
 *
 * The iommufd and vfio-type1 backends pin every mapped byte until it is unmapped; this is the
 * sum of the lengths of their live mappings. kshim keeps an unmapped buffer pinned until a
 * flush covering it: this is the module's count of pinned pages of the file (with an adopted
 * file, the caller's own mappings included).
 *
 * Context: thread-safe.
 * Return: bytes pinned; 0 for backends that pin nothing (sim).
 */
IOVAQ_API uint64_t iovaq_backend_pinned_bytes(struct iovaq_backend *be);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_BACKEND_H */
