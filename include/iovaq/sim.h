/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq "sim" backend: a software model of a VT-d-like IOMMU, and the reference backend of
 * the tests.
 *
 * What it models:
 *  - a 4-level IO page table (4 KiB granule, 512-entry tables, read/write bits, optional 2 MiB
 *    leaves at level 2), whose table pages come and go with the mappings. As in Linux's VT-d
 *    driver, an unmap frees exactly the table pages whose whole span it covers (and reports it,
 *    IOVAQ_UNMAP_FREED_TABLES); a freed table is released only by a non-leaf invalidation of
 *    its range, since a paging-structure cache may still point to it. Tables under the first
 *    512 GiB are never freed (no unmap can start at IOVA 0);
 *  - an IOTLB (sets x ways, LRU) and paging-structure caches for the three upper levels (the
 *    "PTcache" L1/L2/L3 of F&S, SOSP'24: entries cache a pointer to the next-level table);
 *  - invalidation commands: page-selective with an address mask, range, domain, global, with
 *    the leaf-only hint;
 *  - a device that reads and writes IOVAs (iovaq_sim_dma()) through all of that, copying
 *    real bytes to or from the mapped host memory, faulting on unmapped or forbidden access,
 *    and flagging stale hits: accesses that succeed only because a cached translation
 *    survived an unmap;
 *  - a cost model, native or nested (a guest IO page table over a host one: a 2-D walk, and
 *    with caching mode a trap per invalidation and per map), with every constant a named
 *    parameter (struct iovaq_sim_cost).
 *
 * Every sim function is thread-safe (one lock per sim); DMA may race with map, unmap and flush.
 * The sim is deterministic: the same seed and the same calls in the same order give the same
 * counters.
 */
#ifndef IOVAQ_SIM_H
#define IOVAQ_SIM_H

#include <iovaq/common.h>
#include <iovaq/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovaq_sim;

/*
 * struct iovaq_sim_cost - the cost model's constants, in nanoseconds.
 *
 * Defaults (iovaq_sim_cost_defaults()) and their sources:
 * @mem_ref_ns: one memory reference of a page walk: 90, a DRAM access (IO page walks miss the
 *	CPU caches; F&S, SOSP'24, attribute strict mode's loss to this latency).
 * @iotlb_hit_ns: a translation served by the IOTLB: 2.
 * @inval_cmd_ns: CPU time to queue one invalidation descriptor: 50.
 * @inval_wait_ns: CPU time to submit a batch and wait for its wait descriptor: 1000 (a
 *	queued-invalidation round trip; Linux 6.12 batches 16 descriptors per submit to save
 *	~800 cycles each, FACTS.md).
 * @trap_ns: one trap to the hypervisor and back (nested with caching mode): 2500, the cost of a
 *	trapped invalidation measured on this project's QEMU testbed (FACTS.md).
 * @rewalk_ns: hypervisor work per granule an invalidation covers under caching mode (its
 *	shadow or pinning update): 20. A page-selective command covers 2^am granules. A domain-wide command covers every mapped page, which is
 *	why Linux refuses lazy mode under a vIOMMU (FACTS.md).
 * @map_ns: CPU time per page to write a leaf entry: 30.
 * @unmap_ns: CPU time per page to clear a leaf entry: 30.
 * @table_ns: CPU time to allocate or free one table page: 200.
 */
struct iovaq_sim_cost {
	uint64_t mem_ref_ns;
	uint64_t iotlb_hit_ns;
	uint64_t inval_cmd_ns;
	uint64_t inval_wait_ns;
	uint64_t trap_ns;
	uint64_t rewalk_ns;
	uint64_t map_ns;
	uint64_t unmap_ns;
	uint64_t table_ns;
};

/**
 * iovaq_sim_cost_defaults() - the default cost constants.
 * @cost: filled with the defaults documented at struct iovaq_sim_cost.
 */
IOVAQ_API void iovaq_sim_cost_defaults(struct iovaq_sim_cost *cost);

/* Flags of struct iovaq_sim_opts. */
enum {
	/* A guest IO page table over a host one: 2-D walks (up to 24 references). */
	IOVAQ_SIM_NESTED = 1u << 0,
	/* Caching mode (vIOMMU): every invalidation command and every map traps. */
	IOVAQ_SIM_CACHING_MODE = 1u << 1,
	/* Map with 2 MiB leaves where IOVA, host address and length allow. */
	IOVAQ_SIM_LARGE_PAGES = 1u << 2,
};

#define IOVAQ_SIM_DEFAULT_IOTLB_SETS 64
#define IOVAQ_SIM_DEFAULT_IOTLB_WAYS 8
#define IOVAQ_SIM_DEFAULT_PSC_ENTRIES 16
#define IOVAQ_SIM_DEFAULT_MAX_AM 18	/* QEMU's intel-iommu reports MAMV 18 */
#define IOVAQ_SIM_MAX_PSC_ENTRIES 1024

/**
 * struct iovaq_sim_opts - sim configuration; use IOVAQ_OPTS(). Zero fields take defaults.
 * @sz: sizeof(struct iovaq_sim_opts).
 * @seed: salts the IOTLB set index, so that different seeds give different conflict
 *	patterns; the same seed always gives the same behaviour.
 * @flags: IOVAQ_SIM_* flags.
 * @iotlb_sets: IOTLB sets, a power of two up to 4096 (default 64).
 * @iotlb_ways: IOTLB ways, 1 to 64 (default 8).
 * @psc_entries: entries of each paging-structure cache, [0] for pointers to level-3 tables
 *	(cached level-4 entries), [1] to level-2, [2] to level-1 tables; 1 to
 *	IOVAQ_SIM_MAX_PSC_ENTRIES each (default 16).
 * @max_am: largest address mask of a page-selective command, 1 to 51 (0: default 18); 2^51
 *	granules of 4 KiB is the most a 64-bit address can span.
 * @aperture_bits: the IOVA width, 32 to 48 (default 48); the aperture is [4 KiB, 2^bits - 1].
 * @cost: cost constants, or NULL for iovaq_sim_cost_defaults().
 */
struct iovaq_sim_opts {
	size_t sz;
	uint64_t seed;
	uint32_t flags;
	uint32_t iotlb_sets;
	uint32_t iotlb_ways;
	uint32_t psc_entries[3];
	uint32_t max_am;
	uint32_t aperture_bits;
	const struct iovaq_sim_cost *cost;
};

/**
 * iovaq_sim_of() - the sim behind a backend handle.
 * @be: a backend.
 * Return: the sim, or NULL if @be is NULL or not a sim.
 */
IOVAQ_API struct iovaq_sim *iovaq_sim_of(struct iovaq_backend *be);

/**
 * struct iovaq_sim_access - the outcome of one iovaq_sim_dma() call.
 * @t_ns: when the access started (monotonic ns, as iovaq's clock).
 * @pages: granules translated.
 * @stale_pages: of those, translated through an IOTLB entry or table pointer that survived an
 *	unmap (the access succeeded only because an invalidation had not happened yet). The sim
 *	does not touch host memory for them: it may have been freed.
 * @iotlb_misses: translations that needed a walk.
 * @walk_refs: memory references of those walks (2-D references when nested).
 * @modeled_ns: modelled device time for the translations.
 */
struct iovaq_sim_access {
	uint64_t t_ns;
	uint64_t pages;
	uint64_t stale_pages;
	uint64_t iotlb_misses;
	uint64_t walk_refs;
	uint64_t modeled_ns;
};

/**
 * iovaq_sim_dma() - the simulated device reads or writes IOVAs.
 * @sim: the sim.
 * @iova: first byte accessed.
 * @buf: for a write, the bytes the device writes to host memory; for a read, where the bytes
 *	read from host memory go.
 * @len: bytes, > 0; may cross granules and mappings.
 * @write: non-zero for a device write (needs IOVAQ_PROT_WRITE), zero for a read.
 * @res: if not NULL, filled with the outcome (also on failure, up to the fault).
 *
 * Granules are translated in order; the first failing one ends the access (the granules
 * before it were accessed) and is logged in the fault log.
 *
 * Context: thread-safe.
 * Return: 0 if every granule translated (stale hits included), -EFAULT on a fault, -EINVAL
 * for bad arguments.
 */
IOVAQ_API int iovaq_sim_dma(struct iovaq_sim *sim, iovaq_iova_t iova, void *buf, size_t len,
			    int write, struct iovaq_sim_access *res);

/**
 * struct iovaq_sim_counters - cumulative counters of a sim; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_sim_counters).
 * @dma_calls: iovaq_sim_dma() calls.
 * @dma_pages: granules translated by DMA.
 * @iotlb_hits: translations served by the IOTLB.
 * @iotlb_misses: translations that walked.
 * @psc_hits: paging-structure cache hits per level ([0] level-4 entries ... [2] level-2).
 * @psc_misses: lookups that missed, per level.
 * @walk_refs: memory references of all walks (2-D when nested).
 * @faults: device accesses that faulted.
 * @stale_hits: granules translated through state that survived an unmap.
 * @bad_leaf_invals: leaf-only commands that covered a freed table page.
 * @inval_cmds: commands executed, per enum iovaq_inval_kind.
 * @inval_leaf: of those, leaf-only ones.
 * @flushes: iovaq_backend_flush() calls that executed.
 * @maps: map calls that succeeded.
 * @unmaps: unmap calls that succeeded.
 * @mapped_pages: granules mapped now.
 * @table_pages: table pages allocated now (the root included).
 * @table_pages_freed: table pages freed so far (after the invalidation that made it safe).
 * @traps: modelled traps to the hypervisor (nested with caching mode).
 * @device_ns: modelled device time of all translations.
 * @cpu_map_ns: modelled CPU time of maps (traps included).
 * @cpu_unmap_ns: modelled CPU time of unmaps.
 * @cpu_flush_ns: modelled CPU time of flushes (submission, wait, traps, re-walks).
 * @cpu_flush_submit_ns: of @cpu_flush_ns, queueing the commands (traps and re-walks included).
 * @cpu_flush_wait_ns: of @cpu_flush_ns, waiting for their completion.
 */
struct iovaq_sim_counters {
	size_t sz;
	uint64_t dma_calls;
	uint64_t dma_pages;
	uint64_t iotlb_hits;
	uint64_t iotlb_misses;
	uint64_t psc_hits[3];
	uint64_t psc_misses[3];
	uint64_t walk_refs;
	uint64_t faults;
	uint64_t stale_hits;
	uint64_t bad_leaf_invals;
	uint64_t inval_cmds[IOVAQ_INVAL_NR_KINDS];
	uint64_t inval_leaf;
	uint64_t flushes;
	uint64_t maps;
	uint64_t unmaps;
	uint64_t mapped_pages;
	uint64_t table_pages;
	uint64_t table_pages_freed;
	uint64_t traps;
	uint64_t device_ns;
	uint64_t cpu_map_ns;
	uint64_t cpu_unmap_ns;
	uint64_t cpu_flush_ns;
	uint64_t cpu_flush_submit_ns;
	uint64_t cpu_flush_wait_ns;
};

/**
 * iovaq_sim_get_counters() - read the counters.
 * @sim: the sim.
 * @out: filled up to @out->sz.
 *
 * Context: thread-safe.
 * Return: 0, or -EINVAL for NULL arguments or @out->sz too small.
 */
IOVAQ_API int iovaq_sim_get_counters(struct iovaq_sim *sim, struct iovaq_sim_counters *out);

/**
 * iovaq_sim_reset_counters() - zero the cumulative counters (not mapped_pages/table_pages).
 * @sim: the sim.
 *
 * Context: thread-safe.
 */
IOVAQ_API void iovaq_sim_reset_counters(struct iovaq_sim *sim);

/* Operations the fault hook can fail. */
enum iovaq_sim_op {
	IOVAQ_SIM_OP_MAP = 0,
	IOVAQ_SIM_OP_UNMAP = 1,
	IOVAQ_SIM_OP_FLUSH = 2,
	IOVAQ_SIM_OP_NR
};

/**
 * iovaq_sim_fail_nth() - make the @nth next call of an operation fail.
 * @sim: the sim.
 * @op: which operation.
 * @nth: 1 fails the next call, 2 the one after, ...; 0 disarms.
 * @err: the negative errno it returns (for example -EIO); it changes nothing.
 *
 * Fires once. For the failure sweeps of the tests (iommufd's fail_nth is the model).
 *
 * Context: thread-safe.
 * Return: 0, or -EINVAL for a bad @op or a non-negative @err.
 */
IOVAQ_API int iovaq_sim_fail_nth(struct iovaq_sim *sim, enum iovaq_sim_op op, uint64_t nth,
				 int err);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_SIM_H */
