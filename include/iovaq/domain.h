/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq domain: IOVAs for host buffers on one backend, with an invalidation policy and
 * safety-window accounting.
 *
 * State of every IOVA granule of the domain (DESIGN.md §1), at every moment exactly one of:
 * FREE (in the space), CACHED (in the magazine cache), ALLOCATED (mapped for a caller) or
 * QUEUED (unmapped, waiting for the invalidation that makes it unreachable). A QUEUED range is
 * never handed out again before the flush that covers it has completed.
 *
 * Safety window (DESIGN.md §2). For one unmap released by the caller at t_release, t_safe is
 * when the backend guarantees that no device access can translate any page of it (the flush
 * covering it returned). window = t_safe - t_release; exposure = pages x window; reachable
 * pages = pages released and not yet safe; an unsafe reuse is a buffer handed back to the
 * caller before its t_safe. Policies:
 *
 *   policy         unmap returns   IOVA reused    buffer handed back           window
 *   strict         after t_safe    after t_safe   on return                    the call itself
 *   deferred       at once         after t_safe   on return (unsafe reuse)     <= bound
 *   safe-deferred  at once         after t_safe   at t_safe, by its cookie     <= bound, safe
 *   passthrough    at once         at once        on return                    unbounded
 *
 * Bounds: max_window_ns and max_reachable_pages. The queue flushes before either would be
 * exceeded (full ring, oldest entry's age, reachable pages, iovaq_domain_sync(), allocation
 * failure). With the inline flusher the age is checked on every call into the domain; the
 * thread flusher also checks it on its own, so the bound holds when the caller is idle.
 */
#ifndef IOVAQ_DOMAIN_H
#define IOVAQ_DOMAIN_H

#include <iovaq/common.h>
#include <iovaq/backend.h>
#include <iovaq/cache.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovaq_domain;

/* Invalidation policies (append-only). */
enum iovaq_policy {
	IOVAQ_POLICY_STRICT = 0,
	IOVAQ_POLICY_DEFERRED = 1,
	IOVAQ_POLICY_SAFE_DEFERRED = 2,
	IOVAQ_POLICY_PASSTHROUGH = 3,
	IOVAQ_POLICY_NR
};

/* Who runs flushes of the queue. */
enum iovaq_flusher {
	/* The calling thread, when a trigger fires during one of its calls. */
	IOVAQ_FLUSHER_INLINE = 0,
	/* A dedicated thread (vIOMMU's "sidecore", Amit et al., ATC'11), plus the caller on a
	 * full ring. */
	IOVAQ_FLUSHER_THREAD = 1,
};

/*
 * How the invalidation queue is laid out (Linux's dma-iommu makes the same choice: per-CPU
 * queues natively, one large queue when a hypervisor shadows every flush).
 */
enum iovaq_ring_layout {
	/* Shared when the backend reports caching mode or a flush costing more than
	 * IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS, per-CPU otherwise. */
	IOVAQ_RING_AUTO = 0,
	/* One ring for all threads: the longest batches; every release takes its lock. */
	IOVAQ_RING_SHARED = 1,
	/* One ring per CPU (at most 64, none smaller than 64 entries): a release takes only
	 * its CPU's ring lock, or the next ring's with room when its own is full; one flush
	 * drains every ring, when all are full or any has aged. */
	IOVAQ_RING_PERCPU = 2,
};

/* Domain flags (struct iovaq_domain_opts.flags). */
/* Measure the CPU time of allocation, backend map and unmap, planning and flushes
 * (struct iovaq_domain_stats.time_*): two clock reads per measured step. */
#define IOVAQ_DOMAIN_TIMING (1u << 0)

/* A flush estimated (cost_flush_ns) above this makes IOVAQ_RING_AUTO pick one shared ring. */
#define IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS 10000ull

#define IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS 10000000ull	/* 10 ms, Linux's per-CPU FQ timeout */
#define IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE 4096ull	/* pages (16 MiB with 4 KiB pages) */
#define IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD 512ull	/* granules per flush (Arm SMMUv3) */

/**
 * typedef iovaq_complete_fn - safe-deferred completion callback.
 * @arg: the callback argument given at creation.
 * @cookie: the cookie of an unmap whose range just became unreachable (t_safe passed).
 *
 * Runs on the thread that completed the flush: a caller of iovaq_domain_map(),
 * iovaq_domain_unmap() or iovaq_domain_sync() with the inline flusher, or the flusher thread.
 * No domain lock is held: it may call any iovaq_domain_*() function on the same domain except
 * iovaq_domain_destroy(). It must not block for long: other completions wait behind it.
 */
typedef void (*iovaq_complete_fn)(void *arg, uint64_t cookie);

/**
 * struct iovaq_domain_opts - how to build a domain; use IOVAQ_OPTS(). Zero fields take
 * defaults.
 * @sz: sizeof(struct iovaq_domain_opts).
 * @backend: the backend (required). The domain uses it and never closes it; it must outlive
 *	the domain, and its mappings should be made only through this domain.
 * @policy: an enum iovaq_policy (default strict).
 * @flusher: an enum iovaq_flusher (default inline).
 * @ring_entries: capacity of the invalidation queue, all rings together (default 4096, or
 *	32768 when the backend reports caching mode: Linux's choice of one large queue where a
 *	hypervisor shadows each flush). Per-CPU rings split it evenly, with fewer rings than
 *	CPUs if a ring would hold fewer than 64 entries. A ring that is full when its flush
 *	fails grows (doubles) rather than drop a release.
 * @ring_layout: an enum iovaq_ring_layout (default IOVAQ_RING_AUTO).
 * @max_window_ns: bound on every release's window (default 10 ms).
 * @max_reachable_pages: bound on reachable pages (default 4096).
 * @domain_threshold: granules per flush above which one domain-wide command may replace the
 *	page-selective list, if the backend's cost hints say it is cheaper (default 512).
 * @reserved: holes never handed out, [start, last] bytes; IOVA 0 is always reserved.
 * @n_reserved: entries in @reserved.
 * @cache: magazine cache options, or NULL for defaults.
 * @complete: safe-deferred completion callback, or NULL: then completed cookies wait for
 *	iovaq_domain_poll().
 * @complete_arg: passed to @complete.
 * @hooks: metadata allocator for the domain, its space and its cache; NULL means
 *	iovaq_default_alloc_hooks().
 * @teardown_ns: optimistic teardown (vIOMMU, Amit et al., ATC'11), deferred policy only: an
 *	unmapped buffer keeps its mapping for up to this long, and a map of the same buffer
 *	(address, length, permissions) within that time reuses it with no map and no
 *	invalidation. 0 (default) turns it off. Its window runs from the unmap until the
 *	mapping is really invalidated, or until it is mapped again.
 * @teardown_entries: at most this many buffers kept so (default 256 when @teardown_ns is set).
 * @teardown_bytes: and at most this many bytes (0: no byte budget). Kept buffers stay mapped,
 *	and through a real backend pinned: this is coIOMMU's lazy unpinning (Tian et al., ATC'20)
 *	with its budget. Over the count or the budget, the oldest kept buffer that was not
 *	reused since it was last kept is unmapped first (a second chance, as coIOMMU's sweep);
 *	over @teardown_ns, the oldest goes whatever its use.
 * @flags: IOVAQ_DOMAIN_* flags; unknown bits are -EINVAL.
 */
struct iovaq_domain_opts {
	size_t sz;
	struct iovaq_backend *backend;
	uint32_t policy;
	uint32_t flusher;
	uint32_t ring_entries;
	uint32_t ring_layout;
	uint64_t max_window_ns;
	uint64_t max_reachable_pages;
	uint64_t domain_threshold;
	const struct iovaq_range *reserved;
	size_t n_reserved;
	const struct iovaq_cache_opts *cache;
	iovaq_complete_fn complete;
	void *complete_arg;
	const struct iovaq_alloc_hooks *hooks;
	uint64_t teardown_ns;
	uint64_t teardown_entries;
	uint64_t flags;
	uint64_t teardown_bytes;
};

/**
 * iovaq_domain_create() - create a domain on a backend.
 * @opts: options (required).
 * @out: receives the domain; untouched on failure.
 *
 * The IOVA space is the backend's apertures minus the reserved holes.
 *
 * Context: any thread; allocates; with IOVAQ_FLUSHER_THREAD starts a thread.
 * Return: 0; -EINVAL for a missing backend, bad policy, flusher or bounds, or optimistic
 * teardown with a policy other than deferred; -E2BIG for
 * unknown non-zero trailing bytes; -ENOMEM; -EAGAIN if the thread could not start.
 */
IOVAQ_API int iovaq_domain_create(const struct iovaq_domain_opts *opts,
				  struct iovaq_domain **out);

/**
 * iovaq_domain_destroy() - flush what is queued, unmap what is still mapped, free the domain.
 * @dom: the domain, or NULL.
 *
 * Pending completions are delivered. If the final flush fails, the ranges stay unmapped but
 * uninvalidated in the backend; the failure is counted in the stats of nothing (the domain is
 * gone), so callers that care call iovaq_domain_sync() first and check it.
 *
 * Context: no other call on @dom may run concurrently or afterwards; stops the flusher thread.
 */
IOVAQ_API void iovaq_domain_destroy(struct iovaq_domain *dom);

/**
 * iovaq_domain_map() - map a host buffer and return its IOVA.
 * @dom: the domain.
 * @buf: host buffer, aligned to the backend's granule.
 * @len: bytes, a non-zero multiple of the granule.
 * @prot: IOVAQ_PROT_READ and/or IOVAQ_PROT_WRITE.
 * @limit: highest IOVA (inclusive) the range may touch: the device's DMA mask.
 * @iova: receives the IOVA (with passthrough, the buffer's address).
 *
 * Context: thread-safe; may block in the backend; may run a flush (inline flusher).
 * Return: 0; -EINVAL for bad arguments; -ENOSPC if no IOVA range fits even after flushing
 * the queue, or if the backend is out of mappings (VFIO type1's limit; iovaq_backend_why()
 * names it) even after the mappings optimistic teardown kept were unmapped (one backend
 * unmap per run of IOVA-adjacent ones) and the queue flushed; -ENOMEM; or the backend's error
 * (then nothing is mapped or allocated). Deferred releases hold no backend mapping where the
 * backend's unmap invalidates (iommufd, vfio-type1): their unmap ran at release.
 */
IOVAQ_API int iovaq_domain_map(struct iovaq_domain *dom, void *buf, size_t len,
			       unsigned int prot, iovaq_iova_t limit, iovaq_iova_t *iova);

/**
 * iovaq_domain_unmap() - release a mapping.
 * @dom: the domain.
 * @iova: the IOVA iovaq_domain_map() returned.
 * @len: the length that was mapped.
 * @cookie: handed back at t_safe under safe-deferred (callback or iovaq_domain_poll());
 *	ignored by the other policies.
 *
 * Strict returns after t_safe; deferred and safe-deferred queue the range and return at once;
 * passthrough only forgets the mapping.
 *
 * Context: thread-safe; may block in the backend; may run a flush.
 * Return:
 * * 0 on success.
 * * -EINVAL: no mapping at @iova, or not of length @len (also a double unmap); nothing
 *   changes.
 * * -ENOMEM: safe-deferred without a callback could not reserve the completion slot its
 *   cookie needs (so that handing it back later cannot fail); nothing changes.
 * * the backend's unmap error: nothing changes, the mapping stays.
 * * strict only: the flush's error. The range is then QUEUED (never reused) and the next
 *   iovaq_domain_sync() retries it.
 */
IOVAQ_API int iovaq_domain_unmap(struct iovaq_domain *dom, iovaq_iova_t iova, size_t len,
				 uint64_t cookie);

/**
 * iovaq_domain_sync() - make everything released so far unreachable.
 * @dom: the domain.
 *
 * Really unmaps the mappings optimistic teardown kept, finishes arenas whose release the
 * backend refused (iovaq_arena_release()), flushes the queue, returns the IOVAs to the cache
 * and delivers safe-deferred completions.
 *
 * Context: thread-safe; blocks for the flush.
 * Return: 0 when everything released before the call is unreachable; otherwise the backend's
 * flush error (the entries stay queued), or failing that its unmap error for a kept mapping
 * or an arena (they stay mapped). A later sync retries all of them.
 */
IOVAQ_API int iovaq_domain_sync(struct iovaq_domain *dom);

/**
 * iovaq_domain_poll() - take completed safe-deferred cookies (when no callback was given).
 * @dom: the domain.
 * @cookies: array of @max entries.
 * @max: room in @cookies.
 *
 * Also runs a flush if one is due.
 *
 * Context: thread-safe.
 * Return: the number of cookies written, or -EINVAL.
 */
IOVAQ_API int iovaq_domain_poll(struct iovaq_domain *dom, uint64_t *cookies, size_t max);

/**
 * struct iovaq_window_report - the safety-window account of a domain; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_window_report).
 * @releases: unmaps accounted (each has one window).
 * @released_pages: granules released.
 * @window_p50_ns: median window (histogram bucket bound, within 1/8 of the true value).
 * @window_p99_ns: 99th percentile.
 * @window_p999_ns: 99.9th percentile.
 * @window_max_ns: largest window (exact).
 * @exposure_page_ns: sum over releases of pages x window.
 * @reachable_pages: granules released and not yet safe, now.
 * @reachable_pages_max: the most there ever were at once.
 * @unsafe_reuse: releases whose buffer went back to the caller before t_safe (every deferred
 *	and passthrough unmap).
 * @violations: releases whose window exceeded max_window_ns, plus releases that made the
 *	reachable pages exceed max_reachable_pages (except one release larger than that bound
 *	by itself, which nothing could prevent; it is flushed at once). Must stay 0.
 * @max_window_ns: the bound in force.
 * @max_reachable_pages: the bound in force.
 */
struct iovaq_window_report {
	size_t sz;
	uint64_t releases;
	uint64_t released_pages;
	uint64_t window_p50_ns;
	uint64_t window_p99_ns;
	uint64_t window_p999_ns;
	uint64_t window_max_ns;
	uint64_t exposure_page_ns;
	uint64_t reachable_pages;
	uint64_t reachable_pages_max;
	uint64_t unsafe_reuse;
	uint64_t violations;
	uint64_t max_window_ns;
	uint64_t max_reachable_pages;
};

/**
 * struct iovaq_domain_stats - counters of a domain; use IOVAQ_OPTS().
 * @sz: sizeof(struct iovaq_domain_stats).
 * @maps: successful maps.
 * @unmaps: successful unmaps.
 * @map_errors: failed maps.
 * @unmap_errors: failed unmaps.
 * @mapped_pages: granules mapped now.
 * @queued_pages: granules QUEUED now.
 * @queued_entries_max: the fullest the queue has been (per-CPU rings: the sum of each ring's
 *	fullest, an upper bound).
 * @flushes: flushes that completed.
 * @flush_errors: flushes that failed.
 * @last_flush_error: the latest flush error (negative errno), 0 if none.
 * @inval_cmds: commands issued by completed flushes.
 * @inval_domain_cmds: of those, domain-wide.
 * @inval_leaf_cmds: of those, leaf-only.
 * @invalidated_pages: granules covered by the released ranges of completed flushes.
 * @flush_full: flushes triggered by a full ring.
 * @flush_age: by the oldest entry's age.
 * @flush_reachable: by the reachable-pages bound.
 * @flush_sync: by iovaq_domain_sync() (and destroy).
 * @flush_nospc: by an allocation failure.
 * @flush_strict: strict unmaps' own flushes.
 * @completions: safe-deferred cookies delivered (callback or poll).
 * @teardown_hits: maps served by optimistic teardown (no map, no invalidation).
 * @teardown_evictions: kept mappings really unmapped (age or count).
 * @rings: invalidation rings in use (1 for the shared layout).
 * @time_alloc_ns: with IOVAQ_DOMAIN_TIMING, ns spent allocating IOVAs (cache and tree).
 * @time_map_ns: ... in the backend's map calls.
 * @time_unmap_ns: ... in the backend's unmap calls.
 * @time_plan_ns: ... planning flushes (merge, widen, tile, choose).
 * @time_flush_ns: ... in the backend's flush calls (submission and wait).
 */
struct iovaq_domain_stats {
	size_t sz;
	uint64_t maps;
	uint64_t unmaps;
	uint64_t map_errors;
	uint64_t unmap_errors;
	uint64_t mapped_pages;
	uint64_t queued_pages;
	uint64_t queued_entries_max;
	uint64_t flushes;
	uint64_t flush_errors;
	int64_t last_flush_error;
	uint64_t inval_cmds;
	uint64_t inval_domain_cmds;
	uint64_t inval_leaf_cmds;
	uint64_t invalidated_pages;
	uint64_t flush_full;
	uint64_t flush_age;
	uint64_t flush_reachable;
	uint64_t flush_sync;
	uint64_t flush_nospc;
	uint64_t flush_strict;
	uint64_t completions;
	uint64_t teardown_hits;
	uint64_t teardown_evictions;
	uint64_t rings;
	uint64_t time_alloc_ns;
	uint64_t time_map_ns;
	uint64_t time_unmap_ns;
	uint64_t time_plan_ns;
	uint64_t time_flush_ns;
};

/**
 * iovaq_domain_get_stats() - read the counters.
 * @dom: the domain.
 * @st: filled up to @st->sz.
 * Context: thread-safe.
 * Return: 0, or -EINVAL.
 */
IOVAQ_API int iovaq_domain_get_stats(struct iovaq_domain *dom, struct iovaq_domain_stats *st);

/**
 * iovaq_domain_window() - read the safety-window account.
 * @dom: the domain.
 * @rep: filled up to @rep->sz.
 * Context: thread-safe.
 * Return: 0, or -EINVAL.
 */
IOVAQ_API int iovaq_domain_window(struct iovaq_domain *dom, struct iovaq_window_report *rep);

/**
 * struct iovaq_window_bucket - one bucket of the window histogram.
 * @upper_ns: the largest window the bucket holds, in ns (inclusive; the bucket holds windows
 *	above the previous bucket's bound). Exact below 16 ns; above, 8 buckets per power of
 *	two, so a bound is within 1/8 of any window it holds.
 * @count: releases whose window fell in the bucket.
 */
struct iovaq_window_bucket {
	uint64_t upper_ns;
	uint64_t count;
};

/**
 * iovaq_domain_window_hist() - read the histogram of every release's window.
 * @dom: the domain.
 * @out: array of @max buckets, or NULL when @max is 0 (to ask how many there are).
 * @max: room in @out.
 *
 * The non-empty buckets, smallest bound first; their counts add up to the report's
 * releases (iovaq_domain_window()). This is what the report's percentiles are read from: a
 * whole cumulative distribution, for plots.
 *
 * Context: thread-safe.
 * Return: the number of non-empty buckets (snprintf-like: only the first @max are written),
 * or -EINVAL for a NULL @dom, or a NULL @out with @max > 0.
 */
IOVAQ_API int iovaq_domain_window_hist(struct iovaq_domain *dom, struct iovaq_window_bucket *out,
				       size_t max);

/**
 * iovaq_domain_json() - stats and window report as one JSON object.
 * @dom: the domain.
 * @buf: output buffer, or NULL with @len 0 to measure.
 * @len: size of @buf; snprintf() semantics.
 * Context: thread-safe.
 * Return: the full length (without NUL), or -EINVAL.
 */
IOVAQ_API int iovaq_domain_json(struct iovaq_domain *dom, char *buf, size_t len);

/**
 * iovaq_domain_cache() - the magazine cache of a domain.
 * @dom: the domain (not NULL).
 *
 * For its stats, and to withhold IOVAs from the domain: an IOVA allocated here directly is
 * never handed out by iovaq_domain_map() until it is freed back here (iovaq-bench uses this to
 * scatter a workload's IOVAs). Never free through it an IOVA the domain handed out.
 * iovaq_domain_check() knows no owner for such IOVAs and reports -EUCLEAN while they are held.
 *
 * Return: the cache; valid until the domain is destroyed.
 */
IOVAQ_API struct iovaq_cache *iovaq_domain_cache(const struct iovaq_domain *dom);

/**
 * iovaq_domain_check() - verify the state invariant (debugging and tests).
 * @dom: the domain.
 *
 * Runs iovaq_cache_check() and checks that every live space allocation that is not cached is
 * exactly one mapping or one queued range, that none overlap, and that the counters agree.
 *
 * Context: the domain must be quiescent (no concurrent calls; the flusher thread is paused
 * while it runs).
 * Return: 0, -EINVAL for NULL, -ENOMEM, or -EUCLEAN on the first inconsistency.
 */
IOVAQ_API int iovaq_domain_check(struct iovaq_domain *dom);

/*
 * Arenas (F&S, SOSP'24; the kernel's newer dma_iova_* two-step API): one contiguous,
 * naturally aligned IOVA chunk reserved once (per descriptor or per ring), whose pages are
 * linked to host buffers in order and unlinked together, and invalidated with one command.
 * Contiguity keeps the device's paging-structure caches warm; one command per chunk replaces
 * one per page. The domain's policy applies to arena syncs as to unmaps: strict invalidates in
 * iovaq_arena_sync(); deferred and safe-deferred queue one entry for the chunk (its cookie
 * comes back at t_safe under safe-deferred). Pages unlinked but not yet safe cannot be linked
 * again (-EBUSY) until that entry's flush completes.
 */
struct iovaq_arena;

/**
 * iovaq_arena_reserve() - reserve a contiguous chunk of IOVAs.
 * @dom: the domain (not passthrough).
 * @pages: granules; rounded up to a power of two, the chunk aligned to its size.
 * @limit: highest IOVA (inclusive) the chunk may touch.
 * @out: receives the arena.
 *
 * Context: thread-safe. An arena itself is not: one thread uses it at a time.
 * Return: 0; -EINVAL (bad arguments, passthrough); -ENOSPC; -ENOMEM.
 */
IOVAQ_API int iovaq_arena_reserve(struct iovaq_domain *dom, uint64_t pages, iovaq_iova_t limit,
				  struct iovaq_arena **out);

/**
 * iovaq_arena_base() - the first IOVA of an arena's chunk.
 * @a: the arena (not NULL).
 * Return: the IOVA of page 0; page i is at base + i * granule.
 */
IOVAQ_API iovaq_iova_t iovaq_arena_base(const struct iovaq_arena *a);

/**
 * iovaq_arena_link() - map a host buffer at pages [@idx, @idx + len / granule) of the arena.
 * @a: the arena.
 * @idx: first page.
 * @buf: host buffer, granule-aligned.
 * @len: bytes, a non-zero multiple of the granule, inside the chunk.
 * @prot: IOVAQ_PROT_READ and/or IOVAQ_PROT_WRITE.
 * @iova: receives base + idx * granule (may be NULL).
 *
 * One call is one backend mapping, whatever its length: VFIO type1's mapping limit counts
 * links, not pages.
 *
 * Return: 0; -EINVAL; -EBUSY if a page is linked or not yet safe since its unlink; -ENOSPC if
 * the backend is out of mappings even after the domain's kept mappings were unmapped and the
 * queue flushed (as iovaq_domain_map()); or the backend's error (nothing linked).
 */
IOVAQ_API int iovaq_arena_link(struct iovaq_arena *a, uint64_t idx, void *buf, size_t len,
			       unsigned int prot, iovaq_iova_t *iova);

/**
 * iovaq_arena_linkv() - map scattered host segments as one link at consecutive arena pages.
 * @a: the arena.
 * @idx: first page.
 * @segs: the segments (struct iovaq_seg, iovaq/backend.h), each granule-aligned with a
 *	non-zero multiple of the granule as its length; segs[i] lands right after segs[i - 1].
 * @nsegs: number of segments, at least one.
 * @prot: IOVAQ_PROT_READ and/or IOVAQ_PROT_WRITE.
 * @iova: receives base + idx * granule (may be NULL).
 *
 * The F&S arena link of separately allocated buffers (a driver's page-pool pages, a VMM's
 * guest-memory pieces) without first making them contiguous in the host's address space. The
 * pages it covers form one link: iovaq_arena_unlink() takes it back whole. Backends that map
 * scattered memory at once (the kernel backend) make one mapping with one map-side sync; the
 * others one mapping per segment (so VFIO type1's mapping limit counts segments here).
 *
 * Return: as iovaq_arena_link(); -EINVAL also for @nsegs 0, NULL @segs, a bad segment, or
 * lengths whose sum overflows.
 */
IOVAQ_API int iovaq_arena_linkv(struct iovaq_arena *a, uint64_t idx, const struct iovaq_seg *segs,
				size_t nsegs, unsigned int prot, iovaq_iova_t *iova);

/**
 * iovaq_arena_unlink() - unmap pages [@idx, @idx + len / granule), without invalidating.
 * @a: the arena.
 * @idx: first page.
 * @len: bytes; every page in the range must be linked, by whole earlier links.
 *
 * The pages stay reachable until the next iovaq_arena_sync() of the arena is safe.
 * Return: 0; -EINVAL; or the backend's error (nothing unlinked).
 */
IOVAQ_API int iovaq_arena_unlink(struct iovaq_arena *a, uint64_t idx, size_t len);

/**
 * iovaq_arena_sync() - invalidate everything unlinked since the last sync, with one command.
 * @a: the arena.
 * @cookie: handed back at t_safe under safe-deferred.
 *
 * Strict: returns after t_safe. Deferred and safe-deferred: queues one entry and returns.
 * Unlink may have synced already on its own, to keep the reachable-pages bound; the cookie
 * then comes back once those syncs are safe (at once if they are).
 * Return: 0; -ENOMEM (safe-deferred without a callback: no completion slot; nothing changes);
 * or (strict) the flush error, the pages then stay QUEUED and the next iovaq_domain_sync(),
 * or the next iovaq_arena_sync() of this arena, retries (strict: a sync that returns 0 leaves
 * nothing of the arena reachable).
 */
IOVAQ_API int iovaq_arena_sync(struct iovaq_arena *a, uint64_t cookie);

/**
 * iovaq_arena_release() - unlink what is linked, sync, and give the chunk back.
 * @a: the arena, or NULL.
 *
 * The chunk returns to the cache once its last invalidation is safe (at once under strict).
 * If the backend refuses an unlink, the pages not yet unlinked stay mapped (and reachable)
 * and the arena belongs to the domain: the next iovaq_domain_sync() retries and reports the
 * error; iovaq_domain_destroy() unmaps what is left.
 * Context: no other call on @a concurrently or afterwards.
 */
IOVAQ_API void iovaq_arena_release(struct iovaq_arena *a);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_DOMAIN_H */
