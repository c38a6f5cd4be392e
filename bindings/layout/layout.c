/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-layout: print the C ABI the language bindings must match, as seen by this compiler
 * through the public headers. The Python and Rust layout tests read its output and compare
 * every struct's size and every field's offset and size, and every constant, with their own
 * declarations (bindings/python/tests/test_layout.py, bindings/rust/iovaq-sys/tests/layout.rs).
 *
 * Output, one item per line:
 *	struct NAME SIZE ALIGN
 *	field NAME FIELD OFFSET SIZE		(in declaration order, after its struct line)
 *	const NAME VALUE			(decimal, unsigned 64-bit)
 *
 * A struct or constant added to the public headers must be added here too; the ABI test
 * (bindings/abi/check_abi.py) checks that every public struct appears.
 */
#include <iovaq/iovaq.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>

#define S(T) printf("struct %s %zu %zu\n", #T, sizeof(struct T), alignof(struct T))
#define F(T, f)                                                                            \
	printf("field %s %s %zu %zu\n", #T, #f, offsetof(struct T, f),                       \
	       sizeof(((struct T *)0)->f))
#define C(name) printf("const %s %llu\n", #name, (unsigned long long)(name))

int main(void)
{
	S(iovaq_range);
	F(iovaq_range, start);
	F(iovaq_range, last);

	S(iovaq_alloc_hooks);
	F(iovaq_alloc_hooks, alloc);
	F(iovaq_alloc_hooks, free);
	F(iovaq_alloc_hooks, ctx);

	S(iovaq_space_opts);
	F(iovaq_space_opts, sz);
	F(iovaq_space_opts, granule);
	F(iovaq_space_opts, apertures);
	F(iovaq_space_opts, n_apertures);
	F(iovaq_space_opts, reserved);
	F(iovaq_space_opts, n_reserved);
	F(iovaq_space_opts, hooks);

	S(iovaq_cache_opts);
	F(iovaq_cache_opts, sz);
	F(iovaq_cache_opts, max_cached_granules);
	F(iovaq_cache_opts, depot_max);
	F(iovaq_cache_opts, front_cap);
	F(iovaq_cache_opts, flags);
	F(iovaq_cache_opts, n_cpus);

	S(iovaq_class_stats);
	F(iovaq_class_stats, granules);
	F(iovaq_class_stats, hits);
	F(iovaq_class_stats, misses);
	F(iovaq_class_stats, frees);
	F(iovaq_class_stats, cached);
	F(iovaq_class_stats, depot_mags);
	F(iovaq_class_stats, trimmed);

	S(iovaq_stats);
	F(iovaq_stats, sz);
	F(iovaq_stats, version);
	F(iovaq_stats, n_classes);
	F(iovaq_stats, granule);
	F(iovaq_stats, total_granules);
	F(iovaq_stats, reserved_granules);
	F(iovaq_stats, free_granules);
	F(iovaq_stats, allocated_granules);
	F(iovaq_stats, cached_granules);
	F(iovaq_stats, space_allocs);
	F(iovaq_stats, space_frees);
	F(iovaq_stats, space_alloc_fail);
	F(iovaq_stats, tree_nodes);
	F(iovaq_stats, cache_allocs);
	F(iovaq_stats, cache_frees);
	F(iovaq_stats, cache_alloc_fail);
	F(iovaq_stats, cache_retries);
	F(iovaq_stats, metadata_bytes);
	F(iovaq_stats, classes);

	S(iovaq_inval);
	F(iovaq_inval, kind);
	F(iovaq_inval, flags);
	F(iovaq_inval, am);
	F(iovaq_inval, reserved);
	F(iovaq_inval, iova);
	F(iovaq_inval, last);

	S(iovaq_seg);
	F(iovaq_seg, host);
	F(iovaq_seg, len);

	S(iovaq_backend_caps);
	F(iovaq_backend_caps, sz);
	F(iovaq_backend_caps, flags);
	F(iovaq_backend_caps, n_apertures);
	F(iovaq_backend_caps, page_sizes);
	F(iovaq_backend_caps, granule);
	F(iovaq_backend_caps, apertures);
	F(iovaq_backend_caps, inval_kinds);
	F(iovaq_backend_caps, max_am);
	F(iovaq_backend_caps, leaf_hint);
	F(iovaq_backend_caps, reserved);
	F(iovaq_backend_caps, cost_flush_ns);
	F(iovaq_backend_caps, cost_cmd_ns);
	F(iovaq_backend_caps, cost_domain_ns);
	F(iovaq_backend_caps, cost_map_ns);
	F(iovaq_backend_caps, cost_unmap_ns);
	F(iovaq_backend_caps, cost_trap_ns);
	F(iovaq_backend_caps, cost_domain_page_ns);
	F(iovaq_backend_caps, cost_inval_page_ns);

	S(iovaq_fault);
	F(iovaq_fault, iova);
	F(iovaq_fault, reason);
	F(iovaq_fault, write);
	F(iovaq_fault, t_ns);

	S(iovaq_backend_opts);
	F(iovaq_backend_opts, sz);
	F(iovaq_backend_opts, name);
	F(iovaq_backend_opts, backend_opts);
	F(iovaq_backend_opts, hooks);

	S(iovaq_iommufd_opts);
	F(iovaq_iommufd_opts, sz);
	F(iovaq_iommufd_opts, device);
	F(iovaq_iommufd_opts, iommufd);
	F(iovaq_iommufd_opts, ioas_id);
	F(iovaq_iommufd_opts, flags);

	S(iovaq_vfio_type1_opts);
	F(iovaq_vfio_type1_opts, sz);
	F(iovaq_vfio_type1_opts, device);
	F(iovaq_vfio_type1_opts, container);
	F(iovaq_vfio_type1_opts, flags);

	S(iovaq_kshim_opts);
	F(iovaq_kshim_opts, sz);
	F(iovaq_kshim_opts, device);
	F(iovaq_kshim_opts, fd);
	F(iovaq_kshim_opts, flags);

	S(iovaq_sim_cost);
	F(iovaq_sim_cost, mem_ref_ns);
	F(iovaq_sim_cost, iotlb_hit_ns);
	F(iovaq_sim_cost, inval_cmd_ns);
	F(iovaq_sim_cost, inval_wait_ns);
	F(iovaq_sim_cost, trap_ns);
	F(iovaq_sim_cost, rewalk_ns);
	F(iovaq_sim_cost, map_ns);
	F(iovaq_sim_cost, unmap_ns);
	F(iovaq_sim_cost, table_ns);

	S(iovaq_sim_opts);
	F(iovaq_sim_opts, sz);
	F(iovaq_sim_opts, seed);
	F(iovaq_sim_opts, flags);
	F(iovaq_sim_opts, iotlb_sets);
	F(iovaq_sim_opts, iotlb_ways);
	F(iovaq_sim_opts, psc_entries);
	F(iovaq_sim_opts, max_am);
	F(iovaq_sim_opts, aperture_bits);
	F(iovaq_sim_opts, cost);

	S(iovaq_sim_access);
	F(iovaq_sim_access, t_ns);
	F(iovaq_sim_access, pages);
	F(iovaq_sim_access, stale_pages);
	F(iovaq_sim_access, iotlb_misses);
	F(iovaq_sim_access, walk_refs);
	F(iovaq_sim_access, modeled_ns);

	S(iovaq_sim_counters);
	F(iovaq_sim_counters, sz);
	F(iovaq_sim_counters, dma_calls);
	F(iovaq_sim_counters, dma_pages);
	F(iovaq_sim_counters, iotlb_hits);
	F(iovaq_sim_counters, iotlb_misses);
	F(iovaq_sim_counters, psc_hits);
	F(iovaq_sim_counters, psc_misses);
	F(iovaq_sim_counters, walk_refs);
	F(iovaq_sim_counters, faults);
	F(iovaq_sim_counters, stale_hits);
	F(iovaq_sim_counters, bad_leaf_invals);
	F(iovaq_sim_counters, inval_cmds);
	F(iovaq_sim_counters, inval_leaf);
	F(iovaq_sim_counters, flushes);
	F(iovaq_sim_counters, maps);
	F(iovaq_sim_counters, unmaps);
	F(iovaq_sim_counters, mapped_pages);
	F(iovaq_sim_counters, table_pages);
	F(iovaq_sim_counters, table_pages_freed);
	F(iovaq_sim_counters, traps);
	F(iovaq_sim_counters, device_ns);
	F(iovaq_sim_counters, cpu_map_ns);
	F(iovaq_sim_counters, cpu_unmap_ns);
	F(iovaq_sim_counters, cpu_flush_ns);
	F(iovaq_sim_counters, cpu_flush_submit_ns);
	F(iovaq_sim_counters, cpu_flush_wait_ns);

	S(iovaq_domain_opts);
	F(iovaq_domain_opts, sz);
	F(iovaq_domain_opts, backend);
	F(iovaq_domain_opts, policy);
	F(iovaq_domain_opts, flusher);
	F(iovaq_domain_opts, ring_entries);
	F(iovaq_domain_opts, ring_layout);
	F(iovaq_domain_opts, max_window_ns);
	F(iovaq_domain_opts, max_reachable_pages);
	F(iovaq_domain_opts, domain_threshold);
	F(iovaq_domain_opts, reserved);
	F(iovaq_domain_opts, n_reserved);
	F(iovaq_domain_opts, cache);
	F(iovaq_domain_opts, complete);
	F(iovaq_domain_opts, complete_arg);
	F(iovaq_domain_opts, hooks);
	F(iovaq_domain_opts, teardown_ns);
	F(iovaq_domain_opts, teardown_entries);
	F(iovaq_domain_opts, flags);
	F(iovaq_domain_opts, teardown_bytes);

	S(iovaq_window_report);
	F(iovaq_window_report, sz);
	F(iovaq_window_report, releases);
	F(iovaq_window_report, released_pages);
	F(iovaq_window_report, window_p50_ns);
	F(iovaq_window_report, window_p99_ns);
	F(iovaq_window_report, window_p999_ns);
	F(iovaq_window_report, window_max_ns);
	F(iovaq_window_report, exposure_page_ns);
	F(iovaq_window_report, reachable_pages);
	F(iovaq_window_report, reachable_pages_max);
	F(iovaq_window_report, unsafe_reuse);
	F(iovaq_window_report, violations);
	F(iovaq_window_report, max_window_ns);
	F(iovaq_window_report, max_reachable_pages);

	S(iovaq_window_bucket);
	F(iovaq_window_bucket, upper_ns);
	F(iovaq_window_bucket, count);

	S(iovaq_domain_stats);
	F(iovaq_domain_stats, sz);
	F(iovaq_domain_stats, maps);
	F(iovaq_domain_stats, unmaps);
	F(iovaq_domain_stats, map_errors);
	F(iovaq_domain_stats, unmap_errors);
	F(iovaq_domain_stats, mapped_pages);
	F(iovaq_domain_stats, queued_pages);
	F(iovaq_domain_stats, queued_entries_max);
	F(iovaq_domain_stats, flushes);
	F(iovaq_domain_stats, flush_errors);
	F(iovaq_domain_stats, last_flush_error);
	F(iovaq_domain_stats, inval_cmds);
	F(iovaq_domain_stats, inval_domain_cmds);
	F(iovaq_domain_stats, inval_leaf_cmds);
	F(iovaq_domain_stats, invalidated_pages);
	F(iovaq_domain_stats, flush_full);
	F(iovaq_domain_stats, flush_age);
	F(iovaq_domain_stats, flush_reachable);
	F(iovaq_domain_stats, flush_sync);
	F(iovaq_domain_stats, flush_nospc);
	F(iovaq_domain_stats, flush_strict);
	F(iovaq_domain_stats, completions);
	F(iovaq_domain_stats, teardown_hits);
	F(iovaq_domain_stats, teardown_evictions);
	F(iovaq_domain_stats, rings);
	F(iovaq_domain_stats, time_alloc_ns);
	F(iovaq_domain_stats, time_map_ns);
	F(iovaq_domain_stats, time_unmap_ns);
	F(iovaq_domain_stats, time_plan_ns);
	F(iovaq_domain_stats, time_flush_ns);

	/* common.h, version.h */
	C(IOVAQ_X86_MSI_START);
	C(IOVAQ_X86_MSI_LAST);
	C(IOVAQ_LIMIT_NONE);
	C(IOVAQ_VERSION_MAJOR);
	C(IOVAQ_VERSION_MINOR);
	C(IOVAQ_VERSION_PATCH);
	C(IOVAQ_VERSION_NUMBER);
	/* space.h */
	C(IOVAQ_SPACE_MAX_APERTURES);
	C(IOVAQ_SPACE_MAX_RESERVED);
	C(IOVAQ_DEFAULT_GRANULE);
	/* cache.h, stats.h */
	C(IOVAQ_CACHE_MAX_CLASSES);
	C(IOVAQ_CACHE_DEFAULT_MAX_GRANULES);
	C(IOVAQ_CACHE_DEFAULT_FRONT_CAP);
	C(IOVAQ_CACHE_MAX_FRONT_CAP);
	C(IOVAQ_CACHE_NO_FRONT);
	C(IOVAQ_CACHE_CHECKED);
	C(IOVAQ_CACHE_BYPASS);
	C(IOVAQ_STATS_VERSION);
	/* backend.h */
	C(IOVAQ_BACKEND_MAX_APERTURES);
	C(IOVAQ_PROT_READ);
	C(IOVAQ_PROT_WRITE);
	C(IOVAQ_INVAL_PAGES);
	C(IOVAQ_INVAL_RANGE);
	C(IOVAQ_INVAL_DOMAIN);
	C(IOVAQ_INVAL_GLOBAL);
	C(IOVAQ_INVAL_NR_KINDS);
	C(IOVAQ_INVAL_LEAF);
	C(IOVAQ_CAP_UNMAP_INVALIDATES);
	C(IOVAQ_CAP_INVAL_PER_MAPPING);
	C(IOVAQ_CAP_CACHING_MODE);
	C(IOVAQ_CAP_FAULTS);
	C(IOVAQ_FAULT_NOT_MAPPED);
	C(IOVAQ_FAULT_PERM);
	C(IOVAQ_FAULT_STALE_TABLE);
	C(IOVAQ_FAULT_BAD_LEAF_INVAL);
	C(IOVAQ_UNMAP_FREED_TABLES);
	C(IOVAQ_VFIO_TYPE1_ADOPT);
	C(IOVAQ_KSHIM_OPTS_ADOPT);
	/* sim.h */
	C(IOVAQ_SIM_NESTED);
	C(IOVAQ_SIM_CACHING_MODE);
	C(IOVAQ_SIM_LARGE_PAGES);
	C(IOVAQ_SIM_DEFAULT_IOTLB_SETS);
	C(IOVAQ_SIM_DEFAULT_IOTLB_WAYS);
	C(IOVAQ_SIM_DEFAULT_PSC_ENTRIES);
	C(IOVAQ_SIM_DEFAULT_MAX_AM);
	C(IOVAQ_SIM_MAX_PSC_ENTRIES);
	C(IOVAQ_SIM_OP_MAP);
	C(IOVAQ_SIM_OP_UNMAP);
	C(IOVAQ_SIM_OP_FLUSH);
	C(IOVAQ_SIM_OP_NR);
	/* domain.h */
	C(IOVAQ_POLICY_STRICT);
	C(IOVAQ_POLICY_DEFERRED);
	C(IOVAQ_POLICY_SAFE_DEFERRED);
	C(IOVAQ_POLICY_PASSTHROUGH);
	C(IOVAQ_POLICY_NR);
	C(IOVAQ_FLUSHER_INLINE);
	C(IOVAQ_FLUSHER_THREAD);
	C(IOVAQ_RING_AUTO);
	C(IOVAQ_RING_SHARED);
	C(IOVAQ_RING_PERCPU);
	C(IOVAQ_DOMAIN_TIMING);
	C(IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS);
	C(IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS);
	C(IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE);
	C(IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD);
	return 0;
}
