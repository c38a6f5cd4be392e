// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! Every struct's size, alignment and field offsets and sizes, and every constant, against
//! what a C compiler sees through the headers: the output of bindings/layout/layout.c (the
//! program in $IOVAQ_LAYOUT, or compiled here with $CC and the include directory).
use iovaq_sys::*;
use std::collections::BTreeMap;
use std::mem::{align_of, size_of, MaybeUninit};
use std::path::PathBuf;
use std::process::Command;

struct CLayout {
    structs: BTreeMap<String, (usize, usize)>,
    fields: BTreeMap<String, Vec<(String, usize, usize)>>,
    consts: BTreeMap<String, u64>,
}

fn layout_text() -> String {
    let exe = match std::env::var("IOVAQ_LAYOUT") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../layout/layout.c");
            let inc = option_env!("IOVAQ_SYS_INCLUDE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include"));
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iovaq-layout");
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            let st = Command::new(cc).arg("-std=gnu11").arg("-I").arg(&inc).arg("-o").arg(&out).arg(&src)
                .status().expect("run the C compiler for layout.c");
            assert!(st.success(), "compiling layout.c failed");
            out
        }
    };
    let out = Command::new(&exe).output().expect("run the layout program");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn parse(text: &str) -> CLayout {
    let mut l = CLayout { structs: BTreeMap::new(), fields: BTreeMap::new(), consts: BTreeMap::new() };
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "struct" => {
                l.structs.insert(w[1].into(), (w[2].parse().unwrap(), w[3].parse().unwrap()));
                l.fields.insert(w[1].into(), Vec::new());
            }
            "field" => l.fields.get_mut(w[1]).unwrap().push((w[2].into(), w[3].parse().unwrap(), w[4].parse().unwrap())),
            "const" => {
                l.consts.insert(w[1].into(), w[2].parse().unwrap());
            }
            _ => panic!("bad layout line {:?}", line),
        }
    }
    l
}

/// (offset, size) of a field without `offset_of!` (works on older compilers too).
macro_rules! field {
    ($t:ty, $f:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        let base = u.as_ptr();
        // SAFETY: addr_of! on a field of an uninitialised value only computes an address.
        let p = unsafe { std::ptr::addr_of!((*base).$f) };
        fn size_of_pointee<T>(_: *const T) -> usize { size_of::<T>() }
        (p as usize - base as usize, size_of_pointee(p))
    }};
}

macro_rules! check_structs {
    ($l:expr, $seen:expr, $($t:ident { $($f:ident),* $(,)? })*) => {$(
        let name = stringify!($t);
        let (size, align) = $l.structs.get(name).copied().unwrap_or_else(|| panic!("{} not in C", name));
        assert_eq!(size_of::<$t>(), size, "sizeof(struct {})", name);
        assert_eq!(align_of::<$t>(), align, "alignof(struct {})", name);
        let mine: Vec<(String, usize, usize)> = vec![$({
            let (o, s) = field!($t, $f);
            (stringify!($f).to_string(), o, s)
        }),*];
        assert_eq!(&mine, &$l.fields[name], "fields of struct {}", name);
        $seen.push(name.to_string());
    )*};
}

macro_rules! check_consts {
    ($l:expr, $($c:ident),* $(,)?) => {{
        let mut seen = Vec::new();
        $(
            let v = $c as u64;
            assert_eq!(Some(&v), $l.consts.get(stringify!($c)), "constant {}", stringify!($c));
            seen.push(stringify!($c).to_string());
        )*
        seen
    }};
}

#[test]
fn structs_match_c() {
    let l = parse(&layout_text());
    let mut seen: Vec<String> = Vec::new();
    check_structs!(l, seen,
        iovaq_range { start, last }
        iovaq_alloc_hooks { alloc, free, ctx }
        iovaq_space_opts { sz, granule, apertures, n_apertures, reserved, n_reserved, hooks }
        iovaq_cache_opts { sz, max_cached_granules, depot_max, front_cap, flags, n_cpus }
        iovaq_class_stats { granules, hits, misses, frees, cached, depot_mags, trimmed }
        iovaq_stats { sz, version, n_classes, granule, total_granules, reserved_granules,
            free_granules, allocated_granules, cached_granules, space_allocs, space_frees,
            space_alloc_fail, tree_nodes, cache_allocs, cache_frees, cache_alloc_fail,
            cache_retries, metadata_bytes, classes }
        iovaq_inval { kind, flags, am, reserved, iova, last }
        iovaq_seg { host, len }
        iovaq_backend_caps { sz, flags, n_apertures, page_sizes, granule, apertures, inval_kinds,
            max_am, leaf_hint, reserved, cost_flush_ns, cost_cmd_ns, cost_domain_ns, cost_map_ns,
            cost_unmap_ns, cost_trap_ns, cost_domain_page_ns, cost_inval_page_ns }
        iovaq_fault { iova, reason, write, t_ns }
        iovaq_backend_opts { sz, name, backend_opts, hooks }
        iovaq_iommufd_opts { sz, device, iommufd, ioas_id, flags }
        iovaq_vfio_type1_opts { sz, device, container, flags }
        iovaq_kshim_opts { sz, device, fd, flags }
        iovaq_sim_cost { mem_ref_ns, iotlb_hit_ns, inval_cmd_ns, inval_wait_ns, trap_ns, rewalk_ns,
            map_ns, unmap_ns, table_ns }
        iovaq_sim_opts { sz, seed, flags, iotlb_sets, iotlb_ways, psc_entries, max_am,
            aperture_bits, cost }
        iovaq_sim_access { t_ns, pages, stale_pages, iotlb_misses, walk_refs, modeled_ns }
        iovaq_sim_counters { sz, dma_calls, dma_pages, iotlb_hits, iotlb_misses, psc_hits,
            psc_misses, walk_refs, faults, stale_hits, bad_leaf_invals, inval_cmds, inval_leaf,
            flushes, maps, unmaps, mapped_pages, table_pages, table_pages_freed, traps,
            device_ns, cpu_map_ns, cpu_unmap_ns, cpu_flush_ns, cpu_flush_submit_ns,
            cpu_flush_wait_ns }
        iovaq_domain_opts { sz, backend, policy, flusher, ring_entries, ring_layout,
            max_window_ns, max_reachable_pages, domain_threshold, reserved, n_reserved, cache,
            complete, complete_arg, hooks, teardown_ns, teardown_entries, flags,
            teardown_bytes }
        iovaq_window_report { sz, releases, released_pages, window_p50_ns, window_p99_ns,
            window_p999_ns, window_max_ns, exposure_page_ns, reachable_pages,
            reachable_pages_max, unsafe_reuse, violations, max_window_ns, max_reachable_pages }
        iovaq_window_bucket { upper_ns, count }
        iovaq_domain_stats { sz, maps, unmaps, map_errors, unmap_errors, mapped_pages,
            queued_pages, queued_entries_max, flushes, flush_errors, last_flush_error,
            inval_cmds, inval_domain_cmds, inval_leaf_cmds, invalidated_pages, flush_full,
            flush_age, flush_reachable, flush_sync, flush_nospc, flush_strict, completions,
            teardown_hits, teardown_evictions, rings, time_alloc_ns, time_map_ns,
            time_unmap_ns, time_plan_ns, time_flush_ns }
    );
    seen.sort();
    let c: Vec<String> = l.structs.keys().cloned().collect();
    assert_eq!(seen, c, "every C struct is declared and checked here");
}

#[test]
fn constants_match_c() {
    let l = parse(&layout_text());
    let mut seen = check_consts!(l,
        IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST, IOVAQ_LIMIT_NONE, IOVAQ_VERSION_MAJOR,
        IOVAQ_VERSION_MINOR, IOVAQ_VERSION_PATCH, IOVAQ_VERSION_NUMBER,
        IOVAQ_SPACE_MAX_APERTURES, IOVAQ_SPACE_MAX_RESERVED, IOVAQ_DEFAULT_GRANULE,
        IOVAQ_CACHE_MAX_CLASSES, IOVAQ_CACHE_DEFAULT_MAX_GRANULES, IOVAQ_CACHE_DEFAULT_FRONT_CAP,
        IOVAQ_CACHE_MAX_FRONT_CAP, IOVAQ_CACHE_NO_FRONT, IOVAQ_CACHE_CHECKED, IOVAQ_CACHE_BYPASS,
        IOVAQ_STATS_VERSION, IOVAQ_BACKEND_MAX_APERTURES, IOVAQ_PROT_READ, IOVAQ_PROT_WRITE,
        IOVAQ_INVAL_PAGES, IOVAQ_INVAL_RANGE, IOVAQ_INVAL_DOMAIN, IOVAQ_INVAL_GLOBAL,
        IOVAQ_INVAL_NR_KINDS, IOVAQ_INVAL_LEAF, IOVAQ_CAP_UNMAP_INVALIDATES,
        IOVAQ_CAP_INVAL_PER_MAPPING, IOVAQ_CAP_CACHING_MODE, IOVAQ_CAP_FAULTS,
        IOVAQ_FAULT_NOT_MAPPED, IOVAQ_FAULT_PERM, IOVAQ_FAULT_STALE_TABLE,
        IOVAQ_FAULT_BAD_LEAF_INVAL, IOVAQ_UNMAP_FREED_TABLES, IOVAQ_VFIO_TYPE1_ADOPT, IOVAQ_KSHIM_OPTS_ADOPT,
        IOVAQ_SIM_NESTED,
        IOVAQ_SIM_CACHING_MODE, IOVAQ_SIM_LARGE_PAGES, IOVAQ_SIM_DEFAULT_IOTLB_SETS,
        IOVAQ_SIM_DEFAULT_IOTLB_WAYS, IOVAQ_SIM_DEFAULT_PSC_ENTRIES, IOVAQ_SIM_DEFAULT_MAX_AM,
        IOVAQ_SIM_MAX_PSC_ENTRIES, IOVAQ_SIM_OP_MAP, IOVAQ_SIM_OP_UNMAP, IOVAQ_SIM_OP_FLUSH,
        IOVAQ_SIM_OP_NR, IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED, IOVAQ_POLICY_SAFE_DEFERRED,
        IOVAQ_POLICY_PASSTHROUGH, IOVAQ_POLICY_NR, IOVAQ_FLUSHER_INLINE, IOVAQ_FLUSHER_THREAD,
        IOVAQ_RING_AUTO, IOVAQ_RING_SHARED, IOVAQ_RING_PERCPU, IOVAQ_DOMAIN_TIMING,
        IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS, IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS,
        IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE, IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD,
    );
    seen.sort();
    let c: Vec<String> = l.consts.keys().cloned().collect();
    assert_eq!(seen, c, "every C constant is declared and checked here");
}

#[test]
fn opts_sets_size() {
    let o: iovaq_domain_stats = unsafe { iovaq_opts() };
    assert_eq!(o.sz, size_of::<iovaq_domain_stats>());
    assert_eq!(o.maps, 0);
}
