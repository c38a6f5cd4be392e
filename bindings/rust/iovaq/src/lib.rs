// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! Safe Rust API of libiovaq: IOVA spaces, magazine caches, IOMMU backends (with the `sim`
//! software IOMMU) and domains that map host buffers under an invalidation policy.
//!
//! ```
//! use iovaq::{Backend, DmaBuf, Domain, DomainOptions, Policy, Prot, SimOptions};
//! let be = Backend::open_sim(&SimOptions::default()).unwrap();
//! let dom = Domain::new(&be, &DomainOptions { policy: Policy::Strict, ..Default::default() }).unwrap();
//! let m = dom.map(DmaBuf::new(4096), Prot::RW, iovaq::LIMIT_NONE).unwrap();
//! be.sim().unwrap().dma_write(m.iova(), b"hello").unwrap();
//! let buf = dom.unmap(m, 0).unwrap().expect("strict hands the buffer back at once");
//! assert_eq!(&buf[..5], b"hello");
//! ```
//!
//! # Ownership
//! Every handle is an RAII type that frees its C object on drop. Borrowing encodes the C
//! lifetime rules: a [`Cache`] borrows its [`Space`], a [`Domain`] its [`Backend`], a
//! [`Mapping`] and an [`Arena`] their domain, so the owner cannot be dropped first.
//!
//! Host memory is a [`DmaBuf`] (owned, page-aligned). Mapping moves it into a [`Mapping`];
//! unmapping gives it back when it is safe to: at once for strict (after the invalidation),
//! deferred (Linux's lazy mode: the device may still reach it, as that policy means) and
//! passthrough; for safe-deferred only at t_safe, through the completion (closure or
//! [`Domain::poll`]). Dropping a `Mapping` unmaps it with cookie 0. A leaked (forgotten)
//! `Mapping` leaks its buffer, never frees memory the device may still write.
//!
//! # Threads
//! `Send`/`Sync` follow the C documentation: spaces, caches, backends, sims and domains are
//! `Send + Sync` because every call on them is documented thread-safe, except the invariant
//! checks, which need a quiescent object and so take `&mut self`. An [`Arena`] is used by
//! one thread at a time: `Send`, not `Sync`. Destruction is `Drop`, which has `&mut self`.
//!
//! # Completions (safe-deferred)
//! With [`Domain::with_completion`] the closure is called with each cookie and the buffers it
//! returns, at t_safe, on whichever thread completed the flush: a thread inside
//! `map`/`unmap`/`sync`/`poll` on this domain (inline flusher) or the library's flusher
//! thread. Hence `Fn + Send + Sync`. It may borrow data that outlives the domain (`'a`); it is
//! called for the last time before [`Drop`] of the domain returns (destroy delivers what is
//! pending) and is dropped right after. No domain lock is held while it runs; it must not drop
//! the domain (it cannot: it has no ownership) and should not block for long. A panic in it
//! is caught at the C boundary (unwinding into C would abort the process), and the next
//! [`Domain::sync`] or [`Domain::poll`] resumes it on the caller's thread; a panic raised
//! while the domain is dropped is discarded. Without a closure, [`Domain::poll`] returns
//! the completions.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use iovaq_sys as sys;
pub use sys::{
    iovaq_backend_caps as Caps, iovaq_class_stats as ClassStats,
    iovaq_domain_stats as DomainStats, iovaq_fault as Fault, iovaq_inval as Inval,
    iovaq_range as Range, iovaq_seg as Seg, iovaq_sim_access as Access, iovaq_sim_cost as SimCost,
    iovaq_sim_counters as SimCounters, iovaq_window_bucket as WindowBucket,
    iovaq_window_report as WindowReport,
};

/// The largest limit: any IOVA (a 64-bit DMA mask).
pub const LIMIT_NONE: u64 = sys::IOVAQ_LIMIT_NONE;
/// The default granule, in bytes.
pub const GRANULE: usize = sys::IOVAQ_DEFAULT_GRANULE as usize;

/// A positive errno from a libiovaq call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSPC: Errno = Errno(28);
    pub const ENOMEM: Errno = Errno(12);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const ENOENT: Errno = Errno(2);
    pub const EFAULT: Errno = Errno(14);
    pub const EIO: Errno = Errno(5);
    pub const EOPNOTSUPP: Errno = Errno(95);
    pub const ENODEV: Errno = Errno(19);

    /// The library's message for it (`iovaq_strerror()`).
    pub fn message(self) -> &'static str {
        strerror(self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {})", self.0, self.message())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message(), self.0)
    }
}

impl std::error::Error for Errno {}

pub type Result<T> = std::result::Result<T, Errno>;

fn check(r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(Errno(r.checked_neg().unwrap_or(i32::MAX)))
    } else {
        Ok(r)
    }
}

fn static_str(p: *const sys::c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the library returns static, NUL-terminated strings.
    unsafe { CStr::from_ptr(p as *const _) }.to_str().unwrap_or("?")
}

/// The loaded library's version string.
pub fn version() -> &'static str {
    static_str(unsafe { sys::iovaq_version() })
}

/// major << 16 | minor << 8 | patch of the loaded library.
pub fn version_number() -> u32 {
    unsafe { sys::iovaq_version_number() }
}

/// The library's message for an errno (either sign).
pub fn strerror(err: i32) -> &'static str {
    static_str(unsafe { sys::iovaq_strerror(err) })
}

/// The library's default metadata allocator hooks (static, immutable).
pub fn default_alloc_hooks() -> &'static sys::iovaq_alloc_hooks {
    // SAFETY: documented to return a pointer to static, immutable hooks.
    unsafe { &*sys::iovaq_default_alloc_hooks() }
}

/// `[start, last]`, inclusive, in bytes.
pub fn range(start: u64, last: u64) -> Range {
    Range { start, last }
}

fn opts<T>() -> T {
    // SAFETY: used only with the size-prefixed structs of iovaq-sys (all-zero is valid).
    unsafe { sys::iovaq_opts::<T>() }
}

fn read_json(f: impl Fn(*mut sys::c_char, usize) -> c_int) -> Result<String> {
    let n = check(f(ptr::null_mut(), 0))? as usize;
    let mut buf = vec![0u8; n + 1];
    let m = check(f(buf.as_mut_ptr() as *mut sys::c_char, buf.len()))? as usize;
    buf.truncate(m.min(n));
    String::from_utf8(buf).map_err(|_| Errno::EINVAL)
}

// --- counters ---------------------------------------------------------------------------------
/// Counters of a space or cache (`struct iovaq_stats`).
#[derive(Clone, Copy, Debug)]
pub struct Stats(pub sys::iovaq_stats);

impl Stats {
    /// The valid per-class counters.
    pub fn classes(&self) -> &[ClassStats] {
        let n = (self.0.n_classes as usize).min(sys::IOVAQ_CACHE_MAX_CLASSES);
        &self.0.classes[..n]
    }

    /// The library's JSON form (`iovaq_stats_json()`).
    pub fn json(&self) -> Result<String> {
        read_json(|b, l| unsafe { sys::iovaq_stats_json(&self.0, b, l) })
    }
}

impl std::ops::Deref for Stats {
    type Target = sys::iovaq_stats;
    fn deref(&self) -> &sys::iovaq_stats {
        &self.0
    }
}

// --- space ------------------------------------------------------------------------------------
/// An IOVA space (`iovaq/space.h`). Sizes in granules, IOVAs in bytes.
pub struct Space {
    ptr: NonNull<sys::iovaq_space>,
}

// SAFETY: every iovaq_space_* call but destroy is documented thread-safe (space lock);
// destroy runs in Drop, which has exclusive access.
unsafe impl Send for Space {}
unsafe impl Sync for Space {}

impl Space {
    /// Create a space over `apertures` minus `reserved` holes; `granule` 0 means 4 KiB.
    pub fn new(apertures: &[Range], reserved: &[Range], granule: u64) -> Result<Space> {
        let mut o: sys::iovaq_space_opts = opts();
        o.granule = granule;
        o.apertures = apertures.as_ptr();
        o.n_apertures = apertures.len();
        o.reserved = if reserved.is_empty() { ptr::null() } else { reserved.as_ptr() };
        o.n_reserved = reserved.len();
        let mut out = ptr::null_mut();
        check(unsafe { sys::iovaq_space_create(&o, &mut out) })?;
        Ok(Space { ptr: NonNull::new(out).ok_or(Errno::ENOMEM)? })
    }

    fn raw(&self) -> *mut sys::iovaq_space {
        self.ptr.as_ptr()
    }

    /// Allocate `n_granules` (a power of two is size-aligned) below `limit`.
    pub fn alloc(&self, n_granules: u64, limit: u64) -> Result<u64> {
        let mut iova = 0;
        check(unsafe { sys::iovaq_space_alloc(self.raw(), n_granules, limit, &mut iova) })?;
        Ok(iova)
    }

    pub fn alloc_fixed(&self, iova: u64, n_granules: u64) -> Result<()> {
        check(unsafe { sys::iovaq_space_alloc_fixed(self.raw(), iova, n_granules) }).map(drop)
    }

    pub fn free(&self, iova: u64, n_granules: u64) -> Result<()> {
        check(unsafe { sys::iovaq_space_free(self.raw(), iova, n_granules) }).map(drop)
    }

    /// The granule, in bytes.
    pub fn granule(&self) -> u64 {
        unsafe { sys::iovaq_space_granule(self.raw()) }
    }

    pub fn stats(&self) -> Result<Stats> {
        let mut st: sys::iovaq_stats = opts();
        check(unsafe { sys::iovaq_space_stats(self.raw(), &mut st) })?;
        Ok(Stats(st))
    }

    /// Verify the invariants (-EUCLEAN on a violation).
    pub fn check(&self) -> Result<()> {
        check(unsafe { sys::iovaq_space_check(self.raw()) }).map(drop)
    }

    /// Visit every live allocation `(iova, n_granules)` in address order; `f` returning true
    /// stops the walk (then `Ok(true)`). `f` runs with the space lock held and cannot reach
    /// the space (it is borrowed). A panic in `f` stops the walk and is resumed here.
    pub fn walk<F: FnMut(u64, u64) -> bool>(&self, mut f: F) -> Result<bool> {
        struct Ctx<'f> {
            f: &'f mut dyn FnMut(u64, u64) -> bool,
            panic: Option<Box<dyn Any + Send>>,
        }
        unsafe extern "C" fn tramp(arg: *mut c_void, iova: u64, n: u64) -> c_int {
            let ctx = &mut *(arg as *mut Ctx<'_>);
            match panic::catch_unwind(AssertUnwindSafe(|| (ctx.f)(iova, n))) {
                Ok(stop) => stop as c_int,
                Err(p) => {
                    ctx.panic = Some(p);
                    1
                }
            }
        }
        let mut ctx = Ctx { f: &mut f, panic: None };
        let r = unsafe {
            sys::iovaq_space_walk(self.raw(), Some(tramp), &mut ctx as *mut Ctx<'_> as *mut c_void)
        };
        if let Some(p) = ctx.panic {
            panic::resume_unwind(p);
        }
        Ok(check(r)? != 0)
    }

    /// Every live allocation as `(iova, n_granules)`.
    pub fn allocations(&self) -> Result<Vec<(u64, u64)>> {
        let mut v = Vec::new();
        self.walk(|i, n| {
            v.push((i, n));
            false
        })?;
        Ok(v)
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        unsafe { sys::iovaq_space_destroy(self.raw()) }
    }
}

// --- cache ------------------------------------------------------------------------------------
/// Cache options (`struct iovaq_cache_opts`); zero fields take the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheOptions {
    pub max_cached_granules: u64,
    pub depot_max: u32,
    pub front_cap: u32,
    pub flags: u32,
    pub n_cpus: u32,
}

impl CacheOptions {
    fn raw(&self) -> sys::iovaq_cache_opts {
        let mut o: sys::iovaq_cache_opts = opts();
        o.max_cached_granules = self.max_cached_granules;
        o.depot_max = self.depot_max;
        o.front_cap = self.front_cap;
        o.flags = self.flags;
        o.n_cpus = self.n_cpus;
        o
    }
}

/// A magazine cache in front of a space (`iovaq/cache.h`), or a domain's own cache.
pub struct Cache<'s> {
    ptr: NonNull<sys::iovaq_cache>,
    owned: bool,
    _space: PhantomData<&'s Space>,
}

// SAFETY: alloc, free, drain and stats are documented thread-safe; check takes &mut self.
unsafe impl Send for Cache<'_> {}
unsafe impl Sync for Cache<'_> {}

impl<'s> Cache<'s> {
    pub fn new(space: &'s Space, o: &CacheOptions) -> Result<Cache<'s>> {
        let ro = o.raw();
        let mut out = ptr::null_mut();
        check(unsafe { sys::iovaq_cache_create(space.raw(), &ro, &mut out) })?;
        let c = Cache { ptr: NonNull::new(out).ok_or(Errno::ENOMEM)?, owned: true, _space: PhantomData };
        debug_assert_eq!(unsafe { sys::iovaq_cache_space(c.raw()) }, space.raw());
        Ok(c)
    }

    fn raw(&self) -> *mut sys::iovaq_cache {
        self.ptr.as_ptr()
    }

    /// Whether this cache works in front of `space`.
    pub fn is_over(&self, space: &Space) -> bool {
        unsafe { sys::iovaq_cache_space(self.raw()) == space.raw() }
    }

    pub fn alloc(&self, n_granules: u64, limit: u64) -> Result<u64> {
        let mut iova = 0;
        check(unsafe { sys::iovaq_cache_alloc(self.raw(), n_granules, limit, &mut iova) })?;
        Ok(iova)
    }

    /// Give back an allocation; `n_granules` as passed to `alloc`.
    pub fn free(&self, iova: u64, n_granules: u64) -> Result<()> {
        check(unsafe { sys::iovaq_cache_free(self.raw(), iova, n_granules) }).map(drop)
    }

    pub fn drain(&self) {
        unsafe { sys::iovaq_cache_drain(self.raw()) }
    }

    pub fn stats(&self) -> Result<Stats> {
        let mut st: sys::iovaq_stats = opts();
        check(unsafe { sys::iovaq_cache_stats(self.raw(), &mut st) })?;
        Ok(Stats(st))
    }

    /// Verify the invariants; needs a quiescent cache, hence `&mut self`.
    pub fn check(&mut self) -> Result<()> {
        check(unsafe { sys::iovaq_cache_check(self.raw()) }).map(drop)
    }
}

impl Drop for Cache<'_> {
    fn drop(&mut self) {
        if self.owned {
            unsafe { sys::iovaq_cache_destroy(self.raw()) }
        }
    }
}

// --- host buffers -----------------------------------------------------------------------------
/// Owned, zeroed, page-aligned host memory for DMA.
///
/// The device (or the sim's DMA engine) writes it through its mapping, outside Rust's view:
/// as with any DMA buffer, read it after the device is done (for example after the DMA call
/// returned), not while a device write may be in flight.
pub struct DmaBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain owned memory.
unsafe impl Send for DmaBuf {}
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    const ALIGN: usize = 4096;

    /// `len` bytes (rounded up to whole pages), zeroed. Panics if `len` is 0 or too large.
    pub fn new(len: usize) -> DmaBuf {
        assert!(len > 0, "DmaBuf::new: zero length");
        let alloc = (len + Self::ALIGN - 1) / Self::ALIGN * Self::ALIGN;
        let layout = std::alloc::Layout::from_size_align(alloc, Self::ALIGN).expect("DmaBuf size");
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        DmaBuf { ptr: NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)), len }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for DmaBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for DmaBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        let alloc = (self.len + Self::ALIGN - 1) / Self::ALIGN * Self::ALIGN;
        let layout = std::alloc::Layout::from_size_align(alloc, Self::ALIGN).unwrap();
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaBuf({:p}, {} bytes)", self.ptr, self.len)
    }
}

// --- backend and sim --------------------------------------------------------------------------
/// Device access permissions (`IOVAQ_PROT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot(pub u32);

impl Prot {
    pub const READ: Prot = Prot(sys::IOVAQ_PROT_READ);
    pub const WRITE: Prot = Prot(sys::IOVAQ_PROT_WRITE);
    pub const RW: Prot = Prot(sys::IOVAQ_PROT_READ | sys::IOVAQ_PROT_WRITE);
}

/// Sim configuration (`struct iovaq_sim_opts`); zero fields take the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimOptions {
    pub seed: u64,
    pub flags: u32,
    pub iotlb_sets: u32,
    pub iotlb_ways: u32,
    pub psc_entries: [u32; 3],
    pub max_am: u32,
    pub aperture_bits: u32,
    pub cost: Option<SimCost>,
}

/// The sim's default cost constants.
pub fn sim_cost_defaults() -> SimCost {
    let mut c = SimCost::default();
    unsafe { sys::iovaq_sim_cost_defaults(&mut c) };
    c
}

/// An IOMMU backend (`iovaq/backend.h`).
pub struct Backend {
    ptr: NonNull<sys::iovaq_backend>,
}

// SAFETY: map, unmap, flush, faults, caps and name are documented thread-safe or "any
// thread"; close runs in Drop.
unsafe impl Send for Backend {}
unsafe impl Sync for Backend {}

impl Backend {
    fn open_raw(name: Option<&str>, backend_opts: *const c_void) -> Result<Backend> {
        let cname = match name {
            Some(n) => Some(CString::new(n).map_err(|_| Errno::EINVAL)?),
            None => None,
        };
        let mut o: sys::iovaq_backend_opts = opts();
        o.name = cname.as_ref().map_or(ptr::null(), |c| c.as_ptr() as *const sys::c_char);
        o.backend_opts = backend_opts;
        let mut out = ptr::null_mut();
        check(unsafe { sys::iovaq_backend_open(&o, &mut out) })?;
        Ok(Backend { ptr: NonNull::new(out).ok_or(Errno::ENOMEM)? })
    }

    /// Open a backend by name with its defaults (None: `$IOVAQ_BACKEND`, else "sim"). On
    /// failure [`Backend::why`] tells why.
    pub fn open(name: Option<&str>) -> Result<Backend> {
        Backend::open_raw(name, ptr::null())
    }

    /// Open the "sim" software IOMMU.
    pub fn open_sim(o: &SimOptions) -> Result<Backend> {
        let mut so: sys::iovaq_sim_opts = opts();
        so.seed = o.seed;
        so.flags = o.flags;
        so.iotlb_sets = o.iotlb_sets;
        so.iotlb_ways = o.iotlb_ways;
        so.psc_entries = o.psc_entries;
        so.max_am = o.max_am;
        so.aperture_bits = o.aperture_bits;
        so.cost = o.cost.as_ref().map_or(ptr::null(), |c| c as *const SimCost);
        Backend::open_raw(Some("sim"), &so as *const sys::iovaq_sim_opts as *const c_void)
    }

    /// Open the "iommufd" backend. `device`: a VFIO cdev path or PCI address (None:
    /// `$IOVAQ_IOMMUFD_DEVICE`); or adopt `(iommufd, ioas_id)` that the caller keeps open.
    pub fn open_iommufd(device: Option<&str>, adopt: Option<(i32, u32)>) -> Result<Backend> {
        let dev = device.map(CString::new).transpose().map_err(|_| Errno::EINVAL)?;
        let mut o: sys::iovaq_iommufd_opts = opts();
        o.device = dev.as_ref().map_or(ptr::null(), |c| c.as_ptr() as *const sys::c_char);
        if let Some((fd, ioas)) = adopt {
            o.iommufd = fd;
            o.ioas_id = ioas;
        }
        Backend::open_raw(Some("iommufd"), &o as *const sys::iovaq_iommufd_opts as *const c_void)
    }

    /// Open the "vfio-type1" backend. `device`: a PCI address (None: `$IOVAQ_VFIO_DEVICE`);
    /// or adopt `container`, a type1 container the caller keeps open.
    pub fn open_vfio_type1(device: Option<&str>, container: Option<i32>) -> Result<Backend> {
        let dev = device.map(CString::new).transpose().map_err(|_| Errno::EINVAL)?;
        let mut o: sys::iovaq_vfio_type1_opts = opts();
        o.device = dev.as_ref().map_or(ptr::null(), |c| c.as_ptr() as *const sys::c_char);
        if let Some(fd) = container {
            o.container = fd;
            o.flags = sys::IOVAQ_VFIO_TYPE1_ADOPT;
        }
        Backend::open_raw(Some("vfio-type1"), &o as *const sys::iovaq_vfio_type1_opts as *const c_void)
    }

    /// Open the "kshim" backend (the kernel-glue module through /dev/iovaq). `device`: a PCI
    /// address of a device with no driver (None: `$IOVAQ_KSHIM_DEVICE`); or adopt `fd`, an
    /// open /dev/iovaq the caller bound and keeps open.
    pub fn open_kshim(device: Option<&str>, fd: Option<i32>) -> Result<Backend> {
        let dev = device.map(CString::new).transpose().map_err(|_| Errno::EINVAL)?;
        let mut o: sys::iovaq_kshim_opts = opts();
        o.device = dev.as_ref().map_or(ptr::null(), |c| c.as_ptr() as *const sys::c_char);
        if let Some(fd) = fd {
            o.fd = fd;
            o.flags = sys::IOVAQ_KSHIM_OPTS_ADOPT;
        }
        Backend::open_raw(Some("kshim"), &o as *const sys::iovaq_kshim_opts as *const c_void)
    }

    /// The VFIO device file descriptor the backend opened and owns (ENODEV for sim and for
    /// adopted iommufd/containers). It is closed with the backend: do not close it.
    pub fn device_fd(&self) -> Result<i32> {
        check(unsafe { sys::iovaq_backend_device_fd(self.raw()) })
    }

    /// Host bytes the kernel keeps pinned for this backend's mappings (0 for sim).
    pub fn pinned_bytes(&self) -> u64 {
        unsafe { sys::iovaq_backend_pinned_bytes(self.raw()) }
    }

    /// Why this thread's last open failed.
    pub fn why() -> String {
        static_str(unsafe { sys::iovaq_backend_why() }).to_string()
    }

    fn raw(&self) -> *mut sys::iovaq_backend {
        self.ptr.as_ptr()
    }

    pub fn name(&self) -> &str {
        static_str(unsafe { sys::iovaq_backend_name(self.raw()) })
    }

    pub fn caps(&self) -> Result<Caps> {
        let mut c: Caps = opts();
        check(unsafe { sys::iovaq_backend_get_caps(self.raw(), &mut c) })?;
        Ok(c)
    }

    /// Map `len` bytes at `host` to `iova`, bypassing any domain.
    ///
    /// # Safety
    /// `host..host+len` must stay valid memory until the range is unmapped, and the backend
    /// must not be used by a domain for that range.
    pub unsafe fn map(&self, iova: u64, host: *mut u8, len: usize, prot: Prot) -> Result<()> {
        check(sys::iovaq_backend_map(self.raw(), iova, host as *mut c_void, len, prot.0)).map(drop)
    }

    /// Map the segments at consecutive IOVAs from `iova`, in order; on an error nothing stays
    /// mapped. An unmap of the whole range removes them all.
    ///
    /// # Safety
    /// As [`Backend::map`], for every segment.
    pub unsafe fn mapv(&self, iova: u64, segs: &[Seg], prot: Prot) -> Result<()> {
        check(sys::iovaq_backend_mapv(self.raw(), iova, segs.as_ptr(), segs.len(), prot.0)).map(drop)
    }

    /// Unmap whole earlier mappings without invalidating; true when table pages were freed
    /// (the next invalidation of the range must then not be leaf-only).
    pub fn unmap(&self, iova: u64, len: usize) -> Result<bool> {
        Ok(check(unsafe { sys::iovaq_backend_unmap(self.raw(), iova, len) })?
            == sys::IOVAQ_UNMAP_FREED_TABLES)
    }

    /// Execute invalidation commands and wait for them.
    pub fn flush(&self, cmds: &[Inval]) -> Result<()> {
        check(unsafe { sys::iovaq_backend_flush(self.raw(), cmds.as_ptr(), cmds.len()) }).map(drop)
    }

    /// Take up to `max` fault log entries, oldest first.
    pub fn faults(&self, max: usize) -> Result<Vec<Fault>> {
        let mut v = vec![Fault::default(); max];
        let n = check(unsafe { sys::iovaq_backend_faults(self.raw(), v.as_mut_ptr(), max) })?;
        v.truncate(n as usize);
        Ok(v)
    }

    /// The simulated IOMMU, if this is "sim".
    pub fn sim(&self) -> Option<Sim<'_>> {
        NonNull::new(unsafe { sys::iovaq_sim_of(self.raw()) })
            .map(|ptr| Sim { ptr, _be: PhantomData })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        unsafe { sys::iovaq_backend_close(self.raw()) }
    }
}

/// Operations the sim can be told to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimOp {
    Map = sys::IOVAQ_SIM_OP_MAP as isize,
    Unmap = sys::IOVAQ_SIM_OP_UNMAP as isize,
    Flush = sys::IOVAQ_SIM_OP_FLUSH as isize,
}

/// The sim behind a backend (`iovaq/sim.h`); every call is thread-safe.
pub struct Sim<'b> {
    ptr: NonNull<sys::iovaq_sim>,
    _be: PhantomData<&'b Backend>,
}

// SAFETY: "Every sim function is thread-safe (one lock per sim)".
unsafe impl Send for Sim<'_> {}
unsafe impl Sync for Sim<'_> {}

impl Sim<'_> {
    fn raw(&self) -> *mut sys::iovaq_sim {
        self.ptr.as_ptr()
    }

    /// The device writes `data` at `iova`. On a fault: `Err((EFAULT, partial outcome))`.
    pub fn dma_write(&self, iova: u64, data: &[u8]) -> std::result::Result<Access, (Errno, Access)> {
        let mut a = Access::default();
        // The sim only reads `data` for a device write.
        let r = unsafe {
            sys::iovaq_sim_dma(self.raw(), iova, data.as_ptr() as *mut c_void, data.len(), 1, &mut a)
        };
        check(r).map(|_| a).map_err(|e| (e, a))
    }

    /// The device reads `out.len()` bytes at `iova` into `out`.
    pub fn dma_read(&self, iova: u64, out: &mut [u8]) -> std::result::Result<Access, (Errno, Access)> {
        let mut a = Access::default();
        let r = unsafe {
            sys::iovaq_sim_dma(self.raw(), iova, out.as_mut_ptr() as *mut c_void, out.len(), 0, &mut a)
        };
        check(r).map(|_| a).map_err(|e| (e, a))
    }

    pub fn counters(&self) -> Result<SimCounters> {
        let mut c: SimCounters = opts();
        check(unsafe { sys::iovaq_sim_get_counters(self.raw(), &mut c) })?;
        Ok(c)
    }

    pub fn reset_counters(&self) {
        unsafe { sys::iovaq_sim_reset_counters(self.raw()) }
    }

    /// Make the `nth` next call of `op` fail with `err` (a positive errno here).
    pub fn fail_nth(&self, op: SimOp, nth: u64, err: Errno) -> Result<()> {
        check(unsafe { sys::iovaq_sim_fail_nth(self.raw(), op as c_int, nth, -err.0) }).map(drop)
    }
}

// --- domain -----------------------------------------------------------------------------------
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Strict = sys::IOVAQ_POLICY_STRICT as isize,
    Deferred = sys::IOVAQ_POLICY_DEFERRED as isize,
    SafeDeferred = sys::IOVAQ_POLICY_SAFE_DEFERRED as isize,
    Passthrough = sys::IOVAQ_POLICY_PASSTHROUGH as isize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flusher {
    Inline = sys::IOVAQ_FLUSHER_INLINE as isize,
    Thread = sys::IOVAQ_FLUSHER_THREAD as isize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingLayout {
    Auto = sys::IOVAQ_RING_AUTO as isize,
    Shared = sys::IOVAQ_RING_SHARED as isize,
    PerCpu = sys::IOVAQ_RING_PERCPU as isize,
}

/// Domain options (`struct iovaq_domain_opts`); zero fields take the defaults.
#[derive(Clone, Debug)]
pub struct DomainOptions {
    pub policy: Policy,
    pub flusher: Flusher,
    pub ring_entries: u32,
    pub ring_layout: RingLayout,
    pub max_window_ns: u64,
    pub max_reachable_pages: u64,
    pub domain_threshold: u64,
    pub reserved: Vec<Range>,
    pub cache: Option<CacheOptions>,
    pub teardown_ns: u64,
    pub teardown_entries: u64,
    pub flags: u64,
    /// Byte budget of the mappings optimistic teardown keeps (coIOMMU's lazy unpinning);
    /// 0: none.
    pub teardown_bytes: u64,
}

impl Default for DomainOptions {
    fn default() -> Self {
        DomainOptions {
            policy: Policy::Strict,
            flusher: Flusher::Inline,
            ring_entries: 0,
            ring_layout: RingLayout::Auto,
            max_window_ns: 0,
            max_reachable_pages: 0,
            domain_threshold: 0,
            reserved: Vec::new(),
            cache: None,
            teardown_ns: 0,
            teardown_entries: 0,
            flags: 0,
            teardown_bytes: 0,
        }
    }
}

type Callback<'a> = Box<dyn Fn(u64, Vec<DmaBuf>) + Send + Sync + 'a>;

/// State shared with the C completion trampoline (boxed: its address is `complete_arg`).
struct Shared<'a> {
    callback: Option<Callback<'a>>,
    next_token: AtomicU64,
    pending: Mutex<HashMap<u64, (u64, Vec<DmaBuf>)>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    retired: Mutex<Vec<DmaBuf>>,
}

impl Shared<'_> {
    fn register(&self, cookie: u64, bufs: Vec<DmaBuf>) -> u64 {
        let tok = self.next_token.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(tok, (cookie, bufs));
        tok
    }

    fn take(&self, tok: u64) -> Option<(u64, Vec<DmaBuf>)> {
        lock(&self.pending).remove(&tok)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn complete_tramp(arg: *mut c_void, token: u64) {
    let sh = &*(arg as *const Shared<'_>);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        if let Some((cookie, bufs)) = sh.take(token) {
            if let Some(cb) = &sh.callback {
                cb(cookie, bufs);
            }
        }
    }));
    if let Err(p) = r {
        let mut slot = lock(&sh.panic);
        if slot.is_none() {
            *slot = Some(p);
        }
    }
}

/// A domain (`iovaq/domain.h`): IOVAs for host buffers on a backend, with a policy.
pub struct Domain<'a> {
    ptr: NonNull<sys::iovaq_domain>,
    policy: Policy,
    shared: Box<Shared<'a>>,
    _be: PhantomData<&'a Backend>,
}

// SAFETY: map, unmap, sync, poll, stats, window and json are documented thread-safe; check
// needs quiescence and takes &mut self; destroy runs in Drop. The callback is Send + Sync.
unsafe impl Send for Domain<'_> {}
unsafe impl Sync for Domain<'_> {}

/// A host buffer mapped in a domain. Dropping it unmaps it (cookie 0).
pub struct Mapping<'d> {
    dom: &'d Domain<'d>,
    iova: u64,
    buf: Option<DmaBuf>,
}

/// A failed map: the errno, and the buffer back.
#[derive(Debug)]
pub struct MapError {
    pub errno: Errno,
    pub buf: DmaBuf,
}

/// A failed scatter-gather link: the errno, and the buffers back.
#[derive(Debug)]
pub struct MapvError {
    pub errno: Errno,
    pub bufs: Vec<DmaBuf>,
}

impl<'a> Domain<'a> {
    /// A domain without a completion closure: safe-deferred completions come from `poll`.
    pub fn new(be: &'a Backend, o: &DomainOptions) -> Result<Domain<'a>> {
        Domain::create(be, o, None)
    }

    /// A domain whose safe-deferred completions call `f(cookie, buffers)` (see the crate
    /// documentation for when, on which thread, and what happens to a panic).
    pub fn with_completion<F>(be: &'a Backend, o: &DomainOptions, f: F) -> Result<Domain<'a>>
    where
        F: Fn(u64, Vec<DmaBuf>) + Send + Sync + 'a,
    {
        Domain::create(be, o, Some(Box::new(f)))
    }

    fn create(be: &'a Backend, o: &DomainOptions, cb: Option<Callback<'a>>) -> Result<Domain<'a>> {
        let shared = Box::new(Shared {
            callback: cb,
            next_token: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            panic: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
        });
        let co = o.cache.map(|c| c.raw());
        let mut ro: sys::iovaq_domain_opts = opts();
        ro.backend = be.raw();
        ro.policy = o.policy as u32;
        ro.flusher = o.flusher as u32;
        ro.ring_entries = o.ring_entries;
        ro.ring_layout = o.ring_layout as u32;
        ro.max_window_ns = o.max_window_ns;
        ro.max_reachable_pages = o.max_reachable_pages;
        ro.domain_threshold = o.domain_threshold;
        ro.reserved = if o.reserved.is_empty() { ptr::null() } else { o.reserved.as_ptr() };
        ro.n_reserved = o.reserved.len();
        ro.cache = co.as_ref().map_or(ptr::null(), |c| c as *const sys::iovaq_cache_opts);
        if shared.callback.is_some() {
            ro.complete = Some(complete_tramp);
            ro.complete_arg = &*shared as *const Shared<'a> as *mut c_void;
        }
        ro.teardown_ns = o.teardown_ns;
        ro.teardown_entries = o.teardown_entries;
        ro.flags = o.flags;
        ro.teardown_bytes = o.teardown_bytes;
        let mut out = ptr::null_mut();
        check(unsafe { sys::iovaq_domain_create(&ro, &mut out) })?;
        Ok(Domain { ptr: NonNull::new(out).ok_or(Errno::ENOMEM)?, policy: o.policy, shared, _be: PhantomData })
    }

    fn raw(&self) -> *mut sys::iovaq_domain {
        self.ptr.as_ptr()
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Map a buffer for the device; on failure the buffer comes back in the error.
    pub fn map(&self, buf: DmaBuf, prot: Prot, limit: u64) -> std::result::Result<Mapping<'_>, MapError> {
        let mut iova = 0;
        let r = unsafe {
            sys::iovaq_domain_map(self.raw(), buf.as_ptr() as *mut c_void, buf.len(), prot.0, limit, &mut iova)
        };
        match check(r) {
            Ok(_) => Ok(Mapping { dom: self_ref(self), iova, buf: Some(buf) }),
            Err(errno) => Err(MapError { errno, buf }),
        }
    }

    fn unmap_inner(&self, iova: u64, buf: DmaBuf, cookie: u64) -> std::result::Result<Option<DmaBuf>, (Errno, DmaBuf)> {
        let len = buf.len();
        if self.policy == Policy::SafeDeferred {
            let tok = self.shared.register(cookie, vec![buf]);
            let r = unsafe { sys::iovaq_domain_unmap(self.raw(), iova, len, tok) };
            if let Err(e) = check(r) {
                let (_, mut bufs) = self.shared.take(tok).expect("token registered above");
                return Err((e, bufs.pop().expect("one buffer")));
            }
            Ok(None)
        } else {
            match check(unsafe { sys::iovaq_domain_unmap(self.raw(), iova, len, cookie) }) {
                Ok(_) => Ok(Some(buf)),
                Err(e) => Err((e, buf)),
            }
        }
    }

    /// Release a mapping. Strict, deferred, passthrough: `Ok(Some(buffer))`. Safe-deferred:
    /// `Ok(None)`, and the buffer comes back with `cookie` at t_safe. On error the mapping is
    /// returned unchanged.
    pub fn unmap<'d>(&'d self, mut m: Mapping<'d>, cookie: u64) -> std::result::Result<Option<DmaBuf>, (Errno, Mapping<'d>)> {
        let buf = m.buf.take().expect("a live mapping has its buffer");
        match self.unmap_inner(m.iova, buf, cookie) {
            Ok(b) => Ok(b),
            Err((e, buf)) => {
                m.buf = Some(buf);
                Err((e, m))
            }
        }
    }

    fn resume_panic(&self) {
        if let Some(p) = lock(&self.shared.panic).take() {
            panic::resume_unwind(p);
        }
    }

    /// Make everything released so far unreachable (completions are delivered). Resumes a
    /// panic the completion closure raised.
    pub fn sync(&self) -> Result<()> {
        let r = check(unsafe { sys::iovaq_domain_sync(self.raw()) }).map(drop);
        self.resume_panic();
        r
    }

    /// Completed safe-deferred releases `(cookie, buffers)` of a domain without a closure
    /// (runs a flush if one is due). With a closure: always empty; resumes its panic.
    pub fn poll(&self) -> Result<Vec<(u64, Vec<DmaBuf>)>> {
        let mut out = Vec::new();
        let mut toks = [0u64; 64];
        loop {
            let n = check(unsafe { sys::iovaq_domain_poll(self.raw(), toks.as_mut_ptr(), toks.len()) })? as usize;
            for &t in &toks[..n] {
                if let Some(c) = self.shared.take(t) {
                    out.push(c);
                }
            }
            if n < toks.len() {
                break;
            }
        }
        self.resume_panic();
        Ok(out)
    }

    pub fn stats(&self) -> Result<DomainStats> {
        let mut s: DomainStats = opts();
        check(unsafe { sys::iovaq_domain_get_stats(self.raw(), &mut s) })?;
        Ok(s)
    }

    pub fn window(&self) -> Result<WindowReport> {
        let mut w: WindowReport = opts();
        check(unsafe { sys::iovaq_domain_window(self.raw(), &mut w) })?;
        Ok(w)
    }

    /// The window histogram: the non-empty buckets, smallest bound first; their counts add up
    /// to the report's `releases`, and their running sums are the window's distribution.
    pub fn window_hist(&self) -> Result<Vec<WindowBucket>> {
        loop {
            let n = check(unsafe {
                sys::iovaq_domain_window_hist(self.raw(), std::ptr::null_mut(), 0)
            })? as usize;
            let mut v = vec![WindowBucket::default(); n];
            let m = check(unsafe {
                sys::iovaq_domain_window_hist(self.raw(), v.as_mut_ptr(), n)
            })? as usize;
            if m <= n {
                v.truncate(m);
                return Ok(v);
            }
            // Releases from other threads filled new buckets meanwhile: ask again.
        }
    }

    /// Stats and window report as the library's JSON text.
    pub fn json(&self) -> Result<String> {
        read_json(|b, l| unsafe { sys::iovaq_domain_json(self.raw(), b, l) })
    }

    /// The domain's magazine cache (stats; IOVAs withheld from the domain).
    pub fn cache(&self) -> Cache<'_> {
        let p = unsafe { sys::iovaq_domain_cache(self.raw()) };
        Cache { ptr: NonNull::new(p).expect("a domain has a cache"), owned: false, _space: PhantomData }
    }

    /// Verify the state invariant; needs a quiescent domain, hence `&mut self`.
    pub fn check(&mut self) -> Result<()> {
        check(unsafe { sys::iovaq_domain_check(self.raw()) }).map(drop)
    }

    /// Reserve a contiguous chunk of `pages` granules (rounded up to a power of two).
    pub fn arena(&self, pages: u64, limit: u64) -> Result<Arena<'_>> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::iovaq_arena_reserve(self.raw(), pages, limit, &mut out) })?;
        Ok(Arena {
            ptr: NonNull::new(out).ok_or(Errno::ENOMEM)?,
            dom: self_ref(self),
            linked: HashMap::new(),
            unlinked: Vec::new(),
            _not_sync: PhantomData,
        })
    }
}

/// Shorten `&'d Domain<'a>` to `&'d Domain<'d>` (`'a: 'd`; Domain is covariant in `'a`).
fn self_ref<'d, 'a: 'd>(d: &'d Domain<'a>) -> &'d Domain<'d> {
    d
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        // Delivers pending completions (the closure runs inside), unmaps what is mapped.
        unsafe { sys::iovaq_domain_destroy(self.raw()) };
        lock(&self.shared.panic).take();
        // Whatever is still pending is safe now: the destroy flushed it.
        lock(&self.shared.pending).clear();
        lock(&self.shared.retired).clear();
    }
}

impl Mapping<'_> {
    pub fn iova(&self) -> u64 {
        self.iova
    }

    pub fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// CPU access to the mapped buffer (see [`DmaBuf`] on device writes).
    pub fn buf(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }

    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or(&mut [])
    }
}

impl fmt::Debug for Mapping<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mapping(iova {:#x}, {} bytes)", self.iova, self.len())
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            if let Err((_, buf)) = self.dom.unmap_inner(self.iova, buf, 0) {
                // Still mapped: the memory must outlive the domain's mapping.
                lock(&self.dom.shared.retired).push(buf);
            }
        }
    }
}

/// A contiguous IOVA chunk of a domain (F&S, SOSP'24); used by one thread at a time.
pub struct Arena<'d> {
    ptr: NonNull<sys::iovaq_arena>,
    dom: &'d Domain<'d>,
    linked: HashMap<u64, Vec<DmaBuf>>, // first page -> the link's buffers
    unlinked: Vec<DmaBuf>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: "An arena itself is not [thread-safe]: one thread uses it at a time": it may move
// between threads (Send), never be shared (Cell makes it !Sync).
unsafe impl Send for Arena<'_> {}

impl Arena<'_> {
    fn raw(&self) -> *mut sys::iovaq_arena {
        self.ptr.as_ptr()
    }

    /// IOVA of page 0.
    pub fn base(&self) -> u64 {
        unsafe { sys::iovaq_arena_base(self.raw()) }
    }

    /// Map `buf` at pages `idx..`; returns its IOVA, or the errno and the buffer.
    pub fn link(&mut self, idx: u64, buf: DmaBuf, prot: Prot) -> std::result::Result<u64, MapError> {
        let mut iova = 0;
        let r = unsafe {
            sys::iovaq_arena_link(self.raw(), idx, buf.as_ptr() as *mut c_void, buf.len(), prot.0, &mut iova)
        };
        match check(r) {
            Ok(_) => {
                self.linked.insert(idx, vec![buf]);
                Ok(iova)
            }
            Err(errno) => Err(MapError { errno, buf }),
        }
    }

    /// Map `bufs` at consecutive pages from `idx` as one link (`iovaq_arena_linkv`); returns
    /// its IOVA, or the errno and the buffers. `unlink(idx)` takes the link back whole.
    pub fn linkv(&mut self, idx: u64, bufs: Vec<DmaBuf>, prot: Prot)
        -> std::result::Result<u64, MapvError> {
        let segs: Vec<Seg> =
            bufs.iter().map(|b| Seg { host: b.as_ptr() as *mut c_void, len: b.len() }).collect();
        let mut iova = 0;
        let r = unsafe {
            sys::iovaq_arena_linkv(self.raw(), idx, segs.as_ptr(), segs.len(), prot.0, &mut iova)
        };
        match check(r) {
            Ok(_) => {
                self.linked.insert(idx, bufs);
                Ok(iova)
            }
            Err(errno) => Err(MapvError { errno, bufs }),
        }
    }

    /// Unmap the link at page `idx`; reachable until the next `sync` is safe.
    pub fn unlink(&mut self, idx: u64) -> Result<()> {
        let len = self.linked.get(&idx).map(|v| v.iter().map(|b| b.len()).sum())
            .ok_or(Errno::EINVAL)?;
        check(unsafe { sys::iovaq_arena_unlink(self.raw(), idx, len) })?;
        let bufs = self.linked.remove(&idx).expect("checked above");
        self.unlinked.extend(bufs);
        Ok(())
    }

    /// Invalidate what was unlinked since the last sync with one command. Strict and
    /// deferred: the buffers come back now; safe-deferred: with `cookie` at t_safe.
    pub fn sync(&mut self, cookie: u64) -> Result<Vec<DmaBuf>> {
        let bufs = std::mem::take(&mut self.unlinked);
        if self.dom.policy == Policy::SafeDeferred {
            let tok = self.dom.shared.register(cookie, bufs);
            if let Err(e) = check(unsafe { sys::iovaq_arena_sync(self.raw(), tok) }) {
                self.unlinked = self.dom.shared.take(tok).map(|(_, b)| b).unwrap_or_default();
                return Err(e);
            }
            Ok(Vec::new())
        } else {
            match check(unsafe { sys::iovaq_arena_sync(self.raw(), cookie) }) {
                Ok(_) => Ok(bufs),
                Err(e) => {
                    self.unlinked = bufs;
                    Err(e)
                }
            }
        }
    }
}

impl Drop for Arena<'_> {
    fn drop(&mut self) {
        unsafe { sys::iovaq_arena_release(self.raw()) };
        // The release queues the chunk's invalidation without a cookie: the buffers live
        // until the domain is dropped, when everything is flushed.
        let mut keep = lock(&self.dom.shared.retired);
        keep.extend(self.linked.drain().flat_map(|(_, v)| v));
        keep.append(&mut self.unlinked);
    }
}
