/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * /dev/iovaq: the userspace interface of the kernel-glue module (iovaq.ko), shared by the
 * module and by libiovaq's "kshim" backend.
 *
 * Conventions, after iommufd's uapi: every ioctl takes one struct whose first field is its
 * size in bytes, set by the caller to sizeof the struct it knows. The kernel accepts any size
 * from the struct's first version on (the minimum sizes below); fields it does not know must
 * be zero (else -E2BIG), reserved fields and unknown flags must be zero (else -EINVAL), and
 * output fields are written up to the smaller of the two sizes. An unknown ioctl fails with
 * -ENOTTY. Opening the device needs CAP_SYS_RAWIO besides the file's permissions (0600).
 *
 * One open file drives one device: IOVAQ_KSHIM_BIND claims the device's DMA ownership (it must
 * have no driver), gives it a private IOMMU paging domain and attaches it; closing the file
 * (or the module refusing to unload while a file is open) undoes it. Then MAP, UNMAP and FLUSH
 * are the raw operations of a libiovaq backend: UNMAP does not invalidate the IOTLB (the
 * library's planner batches the invalidations and FLUSH executes them, one iommu_iotlb_sync
 * per command), and user pages stay pinned until a FLUSH covering them returns. BENCH runs a
 * whole map/unmap loop inside the kernel through the library's domain.
 */
#ifndef _UAPI_IOVAQ_KSHIM_H
#define _UAPI_IOVAQ_KSHIM_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define IOVAQ_KSHIM_DEVICE "/dev/iovaq"
#define IOVAQ_KSHIM_ABI_VERSION 1

#define IOVAQ_KSHIM_TYPE 'Q'

enum {
	IOVAQ_KSHIM_CMD_BASE = 0x80,
	IOVAQ_KSHIM_CMD_BIND = IOVAQ_KSHIM_CMD_BASE,
	IOVAQ_KSHIM_CMD_CAPS,
	IOVAQ_KSHIM_CMD_MAP,
	IOVAQ_KSHIM_CMD_UNMAP,
	IOVAQ_KSHIM_CMD_FLUSH,
	IOVAQ_KSHIM_CMD_COUNTERS,
	IOVAQ_KSHIM_CMD_BENCH,
};

/**
 * struct iovaq_kshim_bind - IOVAQ_KSHIM_BIND: take a PCI device.
 * @size: sizeof(struct iovaq_kshim_bind).
 * @flags: must be 0.
 * @pci_domain: PCI segment ("0000" of 0000:00:03.0).
 * @pci_bus: bus number.
 * @pci_devfn: device << 3 | function.
 * @reserved: must be 0.
 *
 * Errors: -ENODEV no such device or no IOMMU, -EBUSY a driver is bound or the file is bound
 * already, -EPERM the caller lacks CAP_SYS_RAWIO.
 */
struct iovaq_kshim_bind {
	__u32 size;
	__u32 flags;
	__u32 pci_domain;
	__u8 pci_bus;
	__u8 pci_devfn;
	__u16 reserved;
};
#define IOVAQ_KSHIM_BIND _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BIND)

/* struct iovaq_kshim_caps.flags (the same values as libiovaq's IOVAQ_CAP_*). */
enum {
	IOVAQ_KSHIM_CAP_CACHING_MODE = 1u << 2,
};

/**
 * struct iovaq_kshim_caps - IOVAQ_KSHIM_CAPS: the bound device's IOMMU domain (output).
 * @size: sizeof(struct iovaq_kshim_caps).
 * @flags: IOVAQ_KSHIM_CAP_* (output).
 * @granule: smallest page size, bytes.
 * @page_sizes: supported page sizes (bit k: 2^k bytes).
 * @n_apertures: valid entries of @apertures.
 * @inval_kinds: bitmap of invalidation kinds (libiovaq's enum iovaq_inval_kind).
 * @max_am: largest address mask of a page-selective command.
 * @leaf_hint: 1 if the leaf-only hint is honoured.
 * @reserved: 0.
 * @cost_*_ns: cost hints (libiovaq's struct iovaq_backend_caps).
 * @apertures: usable IOVA ranges, [start, last] pairs in bytes.
 */
struct iovaq_kshim_caps {
	__u32 size;
	__u32 flags;
	__u64 granule;
	__u64 page_sizes;
	__u32 n_apertures;
	__u32 inval_kinds;
	__u8 max_am;
	__u8 leaf_hint;
	__u8 reserved[6];
	__u64 cost_flush_ns;
	__u64 cost_cmd_ns;
	__u64 cost_domain_ns;
	__u64 cost_map_ns;
	__u64 cost_unmap_ns;
	__u64 cost_trap_ns;
	__u64 cost_domain_page_ns;
	__u64 cost_inval_page_ns;
	__u64 apertures[16][2];
};
#define IOVAQ_KSHIM_CAPS _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_CAPS)

/* Access of a mapping: what the device may do to host memory. */
enum {
	IOVAQ_KSHIM_PROT_READ = 1u << 0,
	IOVAQ_KSHIM_PROT_WRITE = 1u << 1,
};

/**
 * struct iovaq_kshim_map - IOVAQ_KSHIM_MAP: pin and map user memory at a fixed IOVA.
 * @size: sizeof(struct iovaq_kshim_map).
 * @prot: IOVAQ_KSHIM_PROT_* (at least one).
 * @iova: first byte, granule-aligned, inside one aperture.
 * @uaddr: user address of the buffer, granule-aligned.
 * @length: bytes, a non-zero multiple of the granule.
 *
 * The pages are pinned (pin_user_pages, FOLL_LONGTERM) and mapped with one iommu_map_sg()
 * (one map-side sync). Errors: -EEXIST overlap, -EINVAL alignment or aperture, -EFAULT the
 * memory is not mapped in the caller, -ENOMEM.
 */
struct iovaq_kshim_map {
	__u32 size;
	__u32 prot;
	__u64 iova;
	__u64 uaddr;
	__u64 length;
};
#define IOVAQ_KSHIM_MAP _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_MAP)

/* struct iovaq_kshim_unmap.out_flags */
enum {
	IOVAQ_KSHIM_UNMAP_FREED_TABLES = 1u << 0,	/* page-table pages were freed */
};

/**
 * struct iovaq_kshim_unmap - IOVAQ_KSHIM_UNMAP: unmap whole mappings, without invalidating.
 * @size: sizeof(struct iovaq_kshim_unmap).
 * @out_flags: IOVAQ_KSHIM_UNMAP_* (output).
 * @iova: first byte.
 * @length: bytes.
 *
 * The device may still reach the range through the IOTLB until a FLUSH covering it returns;
 * the pages stay pinned until then. Errors: -EINVAL the range splits a mapping, -ENOENT it
 * holds none.
 */
struct iovaq_kshim_unmap {
	__u32 size;
	__u32 out_flags;
	__u64 iova;
	__u64 length;
};
#define IOVAQ_KSHIM_UNMAP _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_UNMAP)

/**
 * struct iovaq_kshim_inval - one invalidation command (libiovaq's struct iovaq_inval).
 * @kind: 0 page-selective (2^@am granules at @iova, aligned), 1 range [@iova, @last],
 *	2 the whole domain.
 * @flags: bit 0: leaf-only hint.
 * @am: address mask of a page-selective command.
 * @reserved: 0.
 * @iova: first byte.
 * @last: last byte of a range command; 0 otherwise.
 */
struct iovaq_kshim_inval {
	__u8 kind;
	__u8 flags;
	__u8 am;
	__u8 reserved[5];
	__u64 iova;
	__u64 last;
};

#define IOVAQ_KSHIM_MAX_CMDS 4096

/**
 * struct iovaq_kshim_flush - IOVAQ_KSHIM_FLUSH: execute invalidation commands and wait.
 * @size: sizeof(struct iovaq_kshim_flush).
 * @n_cmds: entries at @cmds_uptr, at most IOVAQ_KSHIM_MAX_CMDS.
 * @cmds_uptr: user pointer to an array of struct iovaq_kshim_inval.
 *
 * One iommu_iotlb_sync() per command (one iommu_flush_iotlb_all() for a domain command), then
 * the pinned pages of every mapping a command covers are released.
 */
struct iovaq_kshim_flush {
	__u32 size;
	__u32 n_cmds;
	__u64 cmds_uptr;
};
#define IOVAQ_KSHIM_FLUSH _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_FLUSH)

/**
 * struct iovaq_kshim_counters - IOVAQ_KSHIM_COUNTERS: what this file's backend did (output).
 * @size: sizeof(struct iovaq_kshim_counters).
 * @reserved: 0.
 * @maps: iommu_map_sg() calls; @map_pages: pages they mapped.
 * @unmaps: iommu_unmap_fast() calls; @unmap_pages: pages they unmapped.
 * @syncs: iommu_iotlb_sync() calls; @sync_tables: of which those freeing table pages.
 * @flush_all: iommu_flush_iotlb_all() calls.
 * @pinned_pages: pages pinned now; @unpinned_pages: pages released after their flush.
 * @live_maps: mappings not yet released.
 */
struct iovaq_kshim_counters {
	__u32 size;
	__u32 reserved;
	__u64 maps;
	__u64 map_pages;
	__u64 unmaps;
	__u64 unmap_pages;
	__u64 syncs;
	__u64 sync_tables;
	__u64 flush_all;
	__u64 pinned_pages;
	__u64 unpinned_pages;
	__u64 live_maps;
};
#define IOVAQ_KSHIM_COUNTERS _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_COUNTERS)

/* struct iovaq_kshim_bench.mode */
enum {
	IOVAQ_KSHIM_BENCH_DOMAIN = 0,	/* the library's domain, under @policy */
	IOVAQ_KSHIM_BENCH_ARENA = 1,	/* arenas of @arena_pages under @policy (not passthrough) */
	IOVAQ_KSHIM_BENCH_RAW_STRICT = 2,	/* iommu_map + iommu_unmap per page, no library */
	/*
	 * The IOMMU calls of ARENA mode (of DOMAIN mode under strict, with @arena_pages 1)
	 * without the library: per group of @arena_pages slots one iommu_map_sgtable() (its
	 * table built before the loop), one iommu_unmap_fast() and one iommu_iotlb_sync().
	 */
	IOVAQ_KSHIM_BENCH_RAW_ARENA = 3,
	/*
	 * RAW_ARENA, but each link describes its pages in the loop as cheaply as a caller
	 * holding them can (one reused scatterlist, sg_set_page() per page, physically adjacent
	 * pages merged): RAW_ARENA's calls plus describing the pages.
	 */
	IOVAQ_KSHIM_BENCH_RAW_ARENA_BUILD = 4,
};

/**
 * struct iovaq_kshim_bench - IOVAQ_KSHIM_BENCH: an in-kernel map+unmap loop on the bound
 * device (a private domain of its own; the file's MAP/UNMAP state is not touched).
 * @size: sizeof(struct iovaq_kshim_bench).
 * @mode: IOVAQ_KSHIM_BENCH_*.
 * @policy: libiovaq's enum iovaq_policy (DOMAIN and ARENA modes).
 * @arena_pages: ARENA and RAW_ARENA* modes: pages per arena (power of two, <= 4096, dividing
 *	@ring): the ring's slots in groups, each group one arena linked with one call (its pages
 *	vmapped before the loop: one iommu_map_sg()) and unlinked + synced with one command;
 *	when @count is not a multiple of it, the last link covers the count % @arena_pages
 *	first pages of its group.
 * @count: map+unmap pairs of one 4 KiB page each (1 .. 1000000).
 * @ring: pages in flight (nic-rx: a FIFO ring; 1 .. 4096).
 * @reserved: 0.
 * @elapsed_ns: (output) time of the loop, final sync included.
 * @maps: (output) iommu_map/_sg calls; @unmaps: iommu_unmap/_fast calls;
 * @syncs: (output) iommu_iotlb_sync()/flush-all calls (one invalidation batch each).
 * @flushes: (output) the domain's flushes; @inval_cmds: planned commands.
 * @window_p50_ns, @window_p99_ns, @window_max_ns: (output) safety window.
 * @unsafe_reuse: (output); @violations: (output) bound violations.
 * @backend_ns: (output, DOMAIN and ARENA modes, with the module parameter timing=1) ns spent
 *	in the kernel backend's map, unmap and flush; @iommu_ns: of which in the IOMMU calls
 *	they make. 0 without the parameter (the clock reads cost time of their own).
 */
struct iovaq_kshim_bench {
	__u32 size;
	__u32 mode;
	__u32 policy;
	__u32 arena_pages;
	__u32 count;
	__u32 ring;
	__u64 reserved;
	__u64 elapsed_ns;
	__u64 maps;
	__u64 unmaps;
	__u64 syncs;
	__u64 flushes;
	__u64 inval_cmds;
	__u64 window_p50_ns;
	__u64 window_p99_ns;
	__u64 window_max_ns;
	__u64 unsafe_reuse;
	__u64 violations;
	__u64 backend_ns;
	__u64 iommu_ns;
};
#define IOVAQ_KSHIM_BENCH _IO(IOVAQ_KSHIM_TYPE, IOVAQ_KSHIM_CMD_BENCH)

#endif /* _UAPI_IOVAQ_KSHIM_H */
