// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! Raw, hand-written declarations of libiovaq's C API (`include/iovaq/*.h`), one to one: the
//! C names, `#[repr(C)]` structs with the C field order, the constants. Every function returns
//! 0 (or a count) or a negative errno, as documented in the C headers; see the `iovaq` crate
//! for a safe API.
//!
//! `tests/layout.rs` compares every struct's size, alignment and field offsets and every
//! constant with what a C compiler sees through the headers; `bindings/abi/check_abi.py`
//! checks that every symbol the library exports is declared here.
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::c_void;
use core::marker::{PhantomData, PhantomPinned};
use core::option::Option;

pub type c_char = i8;
pub type c_int = i32;
pub type c_uint = u32;

/// An IO virtual address, in bytes.
pub type iovaq_iova_t = u64;

macro_rules! opaque {
    ($($name:ident),*) => {$(
        /// An opaque handle of the C library.
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}
opaque!(iovaq_space, iovaq_cache, iovaq_backend, iovaq_sim, iovaq_domain, iovaq_arena);

// --- common.h, version.h ---------------------------------------------------------------------
pub const IOVAQ_X86_MSI_START: u64 = 0xfee0_0000;
pub const IOVAQ_X86_MSI_LAST: u64 = 0xfeef_ffff;
pub const IOVAQ_LIMIT_NONE: u64 = u64::MAX;
pub const IOVAQ_VERSION_MAJOR: u32 = 0;
pub const IOVAQ_VERSION_MINOR: u32 = 1;
pub const IOVAQ_VERSION_PATCH: u32 = 0;
pub const IOVAQ_VERSION_NUMBER: u32 =
    (IOVAQ_VERSION_MAJOR << 16) | (IOVAQ_VERSION_MINOR << 8) | IOVAQ_VERSION_PATCH;
// space.h
pub const IOVAQ_SPACE_MAX_APERTURES: usize = 64;
pub const IOVAQ_SPACE_MAX_RESERVED: usize = 256;
pub const IOVAQ_DEFAULT_GRANULE: u64 = 4096;
// cache.h, stats.h
pub const IOVAQ_CACHE_MAX_CLASSES: usize = 21;
pub const IOVAQ_CACHE_DEFAULT_MAX_GRANULES: u64 = 512;
pub const IOVAQ_CACHE_DEFAULT_FRONT_CAP: u32 = 32;
pub const IOVAQ_CACHE_MAX_FRONT_CAP: u32 = 256;
pub const IOVAQ_CACHE_NO_FRONT: u32 = 1 << 0;
pub const IOVAQ_CACHE_CHECKED: u32 = 1 << 1;
pub const IOVAQ_CACHE_BYPASS: u32 = 1 << 2;
pub const IOVAQ_STATS_VERSION: u32 = 1;
// backend.h
pub const IOVAQ_BACKEND_MAX_APERTURES: usize = 16;
pub const IOVAQ_PROT_READ: c_uint = 1 << 0;
pub const IOVAQ_PROT_WRITE: c_uint = 1 << 1;
pub const IOVAQ_INVAL_PAGES: u8 = 0;
pub const IOVAQ_INVAL_RANGE: u8 = 1;
pub const IOVAQ_INVAL_DOMAIN: u8 = 2;
pub const IOVAQ_INVAL_GLOBAL: u8 = 3;
pub const IOVAQ_INVAL_NR_KINDS: usize = 4;
pub const IOVAQ_INVAL_LEAF: u8 = 1 << 0;
pub const IOVAQ_CAP_UNMAP_INVALIDATES: u32 = 1 << 0;
pub const IOVAQ_CAP_INVAL_PER_MAPPING: u32 = 1 << 1;
pub const IOVAQ_CAP_CACHING_MODE: u32 = 1 << 2;
pub const IOVAQ_CAP_FAULTS: u32 = 1 << 3;
pub const IOVAQ_FAULT_NOT_MAPPED: u32 = 1;
pub const IOVAQ_FAULT_PERM: u32 = 2;
pub const IOVAQ_FAULT_STALE_TABLE: u32 = 3;
pub const IOVAQ_FAULT_BAD_LEAF_INVAL: u32 = 4;
pub const IOVAQ_UNMAP_FREED_TABLES: c_int = 1;
pub const IOVAQ_VFIO_TYPE1_ADOPT: u32 = 1 << 0;
pub const IOVAQ_KSHIM_OPTS_ADOPT: u32 = 1 << 0;
// sim.h
pub const IOVAQ_SIM_NESTED: u32 = 1 << 0;
pub const IOVAQ_SIM_CACHING_MODE: u32 = 1 << 1;
pub const IOVAQ_SIM_LARGE_PAGES: u32 = 1 << 2;
pub const IOVAQ_SIM_DEFAULT_IOTLB_SETS: u32 = 64;
pub const IOVAQ_SIM_DEFAULT_IOTLB_WAYS: u32 = 8;
pub const IOVAQ_SIM_DEFAULT_PSC_ENTRIES: u32 = 16;
pub const IOVAQ_SIM_DEFAULT_MAX_AM: u32 = 18;
pub const IOVAQ_SIM_MAX_PSC_ENTRIES: u32 = 1024;
/// `enum iovaq_sim_op` (an int in the C ABI).
pub type iovaq_sim_op = c_int;
pub const IOVAQ_SIM_OP_MAP: iovaq_sim_op = 0;
pub const IOVAQ_SIM_OP_UNMAP: iovaq_sim_op = 1;
pub const IOVAQ_SIM_OP_FLUSH: iovaq_sim_op = 2;
pub const IOVAQ_SIM_OP_NR: iovaq_sim_op = 3;
// domain.h
pub const IOVAQ_POLICY_STRICT: u32 = 0;
pub const IOVAQ_POLICY_DEFERRED: u32 = 1;
pub const IOVAQ_POLICY_SAFE_DEFERRED: u32 = 2;
pub const IOVAQ_POLICY_PASSTHROUGH: u32 = 3;
pub const IOVAQ_POLICY_NR: u32 = 4;
pub const IOVAQ_FLUSHER_INLINE: u32 = 0;
pub const IOVAQ_FLUSHER_THREAD: u32 = 1;
pub const IOVAQ_RING_AUTO: u32 = 0;
pub const IOVAQ_RING_SHARED: u32 = 1;
pub const IOVAQ_RING_PERCPU: u32 = 2;
pub const IOVAQ_DOMAIN_TIMING: u64 = 1 << 0;
pub const IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS: u64 = 10_000;
pub const IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS: u64 = 10_000_000;
pub const IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE: u64 = 4096;
pub const IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD: u64 = 512;

// --- structs ---------------------------------------------------------------------------------
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_range {
    pub start: iovaq_iova_t,
    pub last: iovaq_iova_t,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct iovaq_alloc_hooks {
    pub alloc: Option<unsafe extern "C" fn(ctx: *mut c_void, size: usize, align: usize) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(ctx: *mut c_void, ptr: *mut c_void, size: usize)>,
    pub ctx: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_space_opts {
    pub sz: usize,
    pub granule: u64,
    pub apertures: *const iovaq_range,
    pub n_apertures: usize,
    pub reserved: *const iovaq_range,
    pub n_reserved: usize,
    pub hooks: *const iovaq_alloc_hooks,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct iovaq_cache_opts {
    pub sz: usize,
    pub max_cached_granules: u64,
    pub depot_max: u32,
    pub front_cap: u32,
    pub flags: u32,
    pub n_cpus: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_class_stats {
    pub granules: u64,
    pub hits: u64,
    pub misses: u64,
    pub frees: u64,
    pub cached: u64,
    pub depot_mags: u64,
    pub trimmed: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct iovaq_stats {
    pub sz: usize,
    pub version: u32,
    pub n_classes: u32,
    pub granule: u64,
    pub total_granules: u64,
    pub reserved_granules: u64,
    pub free_granules: u64,
    pub allocated_granules: u64,
    pub cached_granules: u64,
    pub space_allocs: u64,
    pub space_frees: u64,
    pub space_alloc_fail: u64,
    pub tree_nodes: u64,
    pub cache_allocs: u64,
    pub cache_frees: u64,
    pub cache_alloc_fail: u64,
    pub cache_retries: u64,
    pub metadata_bytes: u64,
    pub classes: [iovaq_class_stats; IOVAQ_CACHE_MAX_CLASSES],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_inval {
    pub kind: u8,
    pub flags: u8,
    pub am: u8,
    pub reserved: [u8; 5],
    pub iova: iovaq_iova_t,
    pub last: iovaq_iova_t,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_seg {
    pub host: *mut c_void,
    pub len: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct iovaq_backend_caps {
    pub sz: usize,
    pub flags: u32,
    pub n_apertures: u32,
    pub page_sizes: u64,
    pub granule: u64,
    pub apertures: [iovaq_range; IOVAQ_BACKEND_MAX_APERTURES],
    pub inval_kinds: u32,
    pub max_am: u8,
    pub leaf_hint: u8,
    pub reserved: [u8; 2],
    pub cost_flush_ns: u64,
    pub cost_cmd_ns: u64,
    pub cost_domain_ns: u64,
    pub cost_map_ns: u64,
    pub cost_unmap_ns: u64,
    pub cost_trap_ns: u64,
    pub cost_domain_page_ns: u64,
    pub cost_inval_page_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_fault {
    pub iova: iovaq_iova_t,
    pub reason: u32,
    pub write: u32,
    pub t_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_backend_opts {
    pub sz: usize,
    pub name: *const c_char,
    pub backend_opts: *const c_void,
    pub hooks: *const iovaq_alloc_hooks,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_iommufd_opts {
    pub sz: usize,
    pub device: *const c_char,
    pub iommufd: c_int,
    pub ioas_id: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_vfio_type1_opts {
    pub sz: usize,
    pub device: *const c_char,
    pub container: c_int,
    pub flags: u32,
}

/// Options of the "kshim" backend (the kernel-glue module through /dev/iovaq).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_kshim_opts {
    pub sz: usize,
    pub device: *const c_char,
    pub fd: c_int,
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_sim_cost {
    pub mem_ref_ns: u64,
    pub iotlb_hit_ns: u64,
    pub inval_cmd_ns: u64,
    pub inval_wait_ns: u64,
    pub trap_ns: u64,
    pub rewalk_ns: u64,
    pub map_ns: u64,
    pub unmap_ns: u64,
    pub table_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_sim_opts {
    pub sz: usize,
    pub seed: u64,
    pub flags: u32,
    pub iotlb_sets: u32,
    pub iotlb_ways: u32,
    pub psc_entries: [u32; 3],
    pub max_am: u32,
    pub aperture_bits: u32,
    pub cost: *const iovaq_sim_cost,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_sim_access {
    pub t_ns: u64,
    pub pages: u64,
    pub stale_pages: u64,
    pub iotlb_misses: u64,
    pub walk_refs: u64,
    pub modeled_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct iovaq_sim_counters {
    pub sz: usize,
    pub dma_calls: u64,
    pub dma_pages: u64,
    pub iotlb_hits: u64,
    pub iotlb_misses: u64,
    pub psc_hits: [u64; 3],
    pub psc_misses: [u64; 3],
    pub walk_refs: u64,
    pub faults: u64,
    pub stale_hits: u64,
    pub bad_leaf_invals: u64,
    pub inval_cmds: [u64; IOVAQ_INVAL_NR_KINDS],
    pub inval_leaf: u64,
    pub flushes: u64,
    pub maps: u64,
    pub unmaps: u64,
    pub mapped_pages: u64,
    pub table_pages: u64,
    pub table_pages_freed: u64,
    pub traps: u64,
    pub device_ns: u64,
    pub cpu_map_ns: u64,
    pub cpu_unmap_ns: u64,
    pub cpu_flush_ns: u64,
    pub cpu_flush_submit_ns: u64,
    pub cpu_flush_wait_ns: u64,
}

/// `iovaq_complete_fn`: safe-deferred completion callback.
pub type iovaq_complete_fn = Option<unsafe extern "C" fn(arg: *mut c_void, cookie: u64)>;
/// `iovaq_space_walk_fn`.
pub type iovaq_space_walk_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, iova: iovaq_iova_t, n_granules: u64) -> c_int>;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct iovaq_domain_opts {
    pub sz: usize,
    pub backend: *mut iovaq_backend,
    pub policy: u32,
    pub flusher: u32,
    pub ring_entries: u32,
    pub ring_layout: u32,
    pub max_window_ns: u64,
    pub max_reachable_pages: u64,
    pub domain_threshold: u64,
    pub reserved: *const iovaq_range,
    pub n_reserved: usize,
    pub cache: *const iovaq_cache_opts,
    pub complete: iovaq_complete_fn,
    pub complete_arg: *mut c_void,
    pub hooks: *const iovaq_alloc_hooks,
    pub teardown_ns: u64,
    pub teardown_entries: u64,
    pub flags: u64,
    pub teardown_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_window_report {
    pub sz: usize,
    pub releases: u64,
    pub released_pages: u64,
    pub window_p50_ns: u64,
    pub window_p99_ns: u64,
    pub window_p999_ns: u64,
    pub window_max_ns: u64,
    pub exposure_page_ns: u64,
    pub reachable_pages: u64,
    pub reachable_pages_max: u64,
    pub unsafe_reuse: u64,
    pub violations: u64,
    pub max_window_ns: u64,
    pub max_reachable_pages: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_window_bucket {
    pub upper_ns: u64,
    pub count: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct iovaq_domain_stats {
    pub sz: usize,
    pub maps: u64,
    pub unmaps: u64,
    pub map_errors: u64,
    pub unmap_errors: u64,
    pub mapped_pages: u64,
    pub queued_pages: u64,
    pub queued_entries_max: u64,
    pub flushes: u64,
    pub flush_errors: u64,
    pub last_flush_error: i64,
    pub inval_cmds: u64,
    pub inval_domain_cmds: u64,
    pub inval_leaf_cmds: u64,
    pub invalidated_pages: u64,
    pub flush_full: u64,
    pub flush_age: u64,
    pub flush_reachable: u64,
    pub flush_sync: u64,
    pub flush_nospc: u64,
    pub flush_strict: u64,
    pub completions: u64,
    pub teardown_hits: u64,
    pub teardown_evictions: u64,
    pub rings: u64,
    pub time_alloc_ns: u64,
    pub time_map_ns: u64,
    pub time_unmap_ns: u64,
    pub time_plan_ns: u64,
    pub time_flush_ns: u64,
}

/// A zeroed size-prefixed struct with `sz` set, as `IOVAQ_OPTS()` declares one.
///
/// # Safety
/// `T` must be one of this crate's `#[repr(C)]` structs whose first field is `sz: usize`
/// and for which all-zero bytes are a valid value (every options and stats struct here).
pub unsafe fn iovaq_opts<T>() -> T {
    let mut v: T = core::mem::zeroed();
    *(&mut v as *mut T as *mut usize) = core::mem::size_of::<T>();
    v
}

extern "C" {
    // common.h, version.h
    pub fn iovaq_default_alloc_hooks() -> *const iovaq_alloc_hooks;
    pub fn iovaq_strerror(err: c_int) -> *const c_char;
    pub fn iovaq_version() -> *const c_char;
    pub fn iovaq_version_number() -> c_uint;
    // space.h
    pub fn iovaq_space_create(opts: *const iovaq_space_opts, out: *mut *mut iovaq_space) -> c_int;
    pub fn iovaq_space_destroy(sp: *mut iovaq_space);
    pub fn iovaq_space_alloc(sp: *mut iovaq_space, n_granules: u64, limit: iovaq_iova_t,
                             out: *mut iovaq_iova_t) -> c_int;
    pub fn iovaq_space_alloc_fixed(sp: *mut iovaq_space, iova: iovaq_iova_t, n_granules: u64)
        -> c_int;
    pub fn iovaq_space_free(sp: *mut iovaq_space, iova: iovaq_iova_t, n_granules: u64) -> c_int;
    pub fn iovaq_space_granule(sp: *const iovaq_space) -> u64;
    pub fn iovaq_space_stats(sp: *mut iovaq_space, st: *mut iovaq_stats) -> c_int;
    pub fn iovaq_space_check(sp: *mut iovaq_space) -> c_int;
    pub fn iovaq_space_walk(sp: *mut iovaq_space, f: iovaq_space_walk_fn, arg: *mut c_void)
        -> c_int;
    // cache.h
    pub fn iovaq_cache_create(sp: *mut iovaq_space, opts: *const iovaq_cache_opts,
                              out: *mut *mut iovaq_cache) -> c_int;
    pub fn iovaq_cache_destroy(c: *mut iovaq_cache);
    pub fn iovaq_cache_alloc(c: *mut iovaq_cache, n_granules: u64, limit: iovaq_iova_t,
                             out: *mut iovaq_iova_t) -> c_int;
    pub fn iovaq_cache_free(c: *mut iovaq_cache, iova: iovaq_iova_t, n_granules: u64) -> c_int;
    pub fn iovaq_cache_drain(c: *mut iovaq_cache);
    pub fn iovaq_cache_space(c: *const iovaq_cache) -> *mut iovaq_space;
    pub fn iovaq_cache_stats(c: *mut iovaq_cache, st: *mut iovaq_stats) -> c_int;
    pub fn iovaq_cache_check(c: *mut iovaq_cache) -> c_int;
    // stats.h
    pub fn iovaq_stats_json(st: *const iovaq_stats, buf: *mut c_char, len: usize) -> c_int;
    // backend.h
    pub fn iovaq_backend_open(opts: *const iovaq_backend_opts, out: *mut *mut iovaq_backend)
        -> c_int;
    pub fn iovaq_backend_close(be: *mut iovaq_backend);
    pub fn iovaq_backend_why() -> *const c_char;
    pub fn iovaq_backend_name(be: *const iovaq_backend) -> *const c_char;
    pub fn iovaq_backend_get_caps(be: *const iovaq_backend, caps: *mut iovaq_backend_caps)
        -> c_int;
    pub fn iovaq_backend_map(be: *mut iovaq_backend, iova: iovaq_iova_t, host: *mut c_void,
                             len: usize, prot: c_uint) -> c_int;
    pub fn iovaq_backend_mapv(be: *mut iovaq_backend, iova: iovaq_iova_t, segs: *const iovaq_seg,
                              nsegs: usize, prot: c_uint) -> c_int;
    pub fn iovaq_backend_unmap(be: *mut iovaq_backend, iova: iovaq_iova_t, len: usize) -> c_int;
    pub fn iovaq_backend_flush(be: *mut iovaq_backend, cmds: *const iovaq_inval, n: usize)
        -> c_int;
    pub fn iovaq_backend_faults(be: *mut iovaq_backend, out: *mut iovaq_fault, max: usize)
        -> c_int;
    pub fn iovaq_backend_device_fd(be: *const iovaq_backend) -> c_int;
    pub fn iovaq_backend_pinned_bytes(be: *mut iovaq_backend) -> u64;
    // sim.h
    pub fn iovaq_sim_cost_defaults(cost: *mut iovaq_sim_cost);
    pub fn iovaq_sim_of(be: *mut iovaq_backend) -> *mut iovaq_sim;
    pub fn iovaq_sim_dma(sim: *mut iovaq_sim, iova: iovaq_iova_t, buf: *mut c_void, len: usize,
                         write: c_int, res: *mut iovaq_sim_access) -> c_int;
    pub fn iovaq_sim_get_counters(sim: *mut iovaq_sim, out: *mut iovaq_sim_counters) -> c_int;
    pub fn iovaq_sim_reset_counters(sim: *mut iovaq_sim);
    pub fn iovaq_sim_fail_nth(sim: *mut iovaq_sim, op: iovaq_sim_op, nth: u64, err: c_int)
        -> c_int;
    // domain.h
    pub fn iovaq_domain_create(opts: *const iovaq_domain_opts, out: *mut *mut iovaq_domain)
        -> c_int;
    pub fn iovaq_domain_destroy(dom: *mut iovaq_domain);
    pub fn iovaq_domain_map(dom: *mut iovaq_domain, buf: *mut c_void, len: usize, prot: c_uint,
                            limit: iovaq_iova_t, iova: *mut iovaq_iova_t) -> c_int;
    pub fn iovaq_domain_unmap(dom: *mut iovaq_domain, iova: iovaq_iova_t, len: usize,
                              cookie: u64) -> c_int;
    pub fn iovaq_domain_sync(dom: *mut iovaq_domain) -> c_int;
    pub fn iovaq_domain_poll(dom: *mut iovaq_domain, cookies: *mut u64, max: usize) -> c_int;
    pub fn iovaq_domain_get_stats(dom: *mut iovaq_domain, st: *mut iovaq_domain_stats) -> c_int;
    pub fn iovaq_domain_window(dom: *mut iovaq_domain, rep: *mut iovaq_window_report) -> c_int;
    pub fn iovaq_domain_window_hist(dom: *mut iovaq_domain, out: *mut iovaq_window_bucket,
                                    max: usize) -> c_int;
    pub fn iovaq_domain_json(dom: *mut iovaq_domain, buf: *mut c_char, len: usize) -> c_int;
    pub fn iovaq_domain_cache(dom: *const iovaq_domain) -> *mut iovaq_cache;
    pub fn iovaq_domain_check(dom: *mut iovaq_domain) -> c_int;
    pub fn iovaq_arena_reserve(dom: *mut iovaq_domain, pages: u64, limit: iovaq_iova_t,
                               out: *mut *mut iovaq_arena) -> c_int;
    pub fn iovaq_arena_base(a: *const iovaq_arena) -> iovaq_iova_t;
    pub fn iovaq_arena_link(a: *mut iovaq_arena, idx: u64, buf: *mut c_void, len: usize,
                            prot: c_uint, iova: *mut iovaq_iova_t) -> c_int;
    pub fn iovaq_arena_linkv(a: *mut iovaq_arena, idx: u64, segs: *const iovaq_seg, nsegs: usize,
                             prot: c_uint, iova: *mut iovaq_iova_t) -> c_int;
    pub fn iovaq_arena_unlink(a: *mut iovaq_arena, idx: u64, len: usize) -> c_int;
    pub fn iovaq_arena_sync(a: *mut iovaq_arena, cookie: u64) -> c_int;
    pub fn iovaq_arena_release(a: *mut iovaq_arena);
}
