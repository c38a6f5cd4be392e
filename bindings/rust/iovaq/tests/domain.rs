// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! The domain's core semantics through the safe API, on the sim: map, device DMA, unmap under
//! each policy, safe-deferred completion (closure and poll), stats and window; arenas; spaces,
//! caches and the raw backend.
use iovaq::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const G: usize = GRANULE;

fn sim() -> Backend {
    Backend::open_sim(&SimOptions { seed: 1, ..Default::default() }).unwrap()
}

fn opts(policy: Policy) -> DomainOptions {
    DomainOptions { policy, ..Default::default() }
}

#[test]
fn strict_map_dma_unmap() {
    let be = sim();
    let s = be.sim().unwrap();
    let dom = Domain::new(&be, &opts(Policy::Strict)).unwrap();
    let m = dom.map(DmaBuf::new(2 * G), Prot::RW, 0xffff_ffff).unwrap();
    assert_eq!(m.iova() % G as u64, 0);
    assert!(m.iova() + 2 * G as u64 - 1 <= 0xffff_ffff);
    let acc = s.dma_write(m.iova() + G as u64 - 2, b"abcd").unwrap();
    assert_eq!((acc.pages, acc.stale_pages), (2, 0));
    assert_eq!(&m.buf()[G - 2..G + 2], b"abcd");
    let iova = m.iova();
    let buf = dom.unmap(m, 0).unwrap().expect("strict returns the buffer");
    assert_eq!(&buf[G - 2..G + 2], b"abcd");
    let mut out = [0u8; 1];
    let (e, acc) = s.dma_read(iova, &mut out).unwrap_err();
    assert_eq!((e, acc.pages), (Errno::EFAULT, 0));
    assert_eq!(be.faults(4).unwrap()[0].reason, sys::IOVAQ_FAULT_NOT_MAPPED);
    let st = dom.stats().unwrap();
    assert_eq!((st.maps, st.unmaps, st.mapped_pages, st.flush_strict), (1, 1, 0, 1));
    let w = dom.window().unwrap();
    assert_eq!((w.releases, w.unsafe_reuse), (1, 0));
}

#[test]
fn deferred_is_reachable_until_sync() {
    let be = sim();
    let s = be.sim().unwrap();
    let mut dom = Domain::new(&be, &opts(Policy::Deferred)).unwrap();
    {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        let iova = m.iova();
        s.dma_write(iova, b"warm").unwrap();
        let buf = dom.unmap(m, 5).unwrap();
        assert!(buf.is_some(), "deferred hands the buffer back at once");
        let mut out = [0u8; 4];
        assert_eq!(s.dma_read(iova, &mut out).unwrap().stale_pages, 1);
        assert_eq!(dom.stats().unwrap().queued_pages, 1);
        dom.sync().unwrap();
        assert!(s.dma_read(iova, &mut out).is_err());
        assert_eq!(dom.window().unwrap().unsafe_reuse, 1);
    }
    dom.check().unwrap();
}

#[test]
fn safe_deferred_closure_gets_cookie_and_buffer_at_t_safe() {
    let be = sim();
    let got: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let g2 = got.clone();
    let dom = Domain::with_completion(&be, &opts(Policy::SafeDeferred), move |cookie, bufs| {
        g2.lock().unwrap().push((cookie, bufs.len()));
    })
    .unwrap();
    for c in 0..4u64 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        assert!(dom.unmap(m, 100 + c).unwrap().is_none(), "safe-deferred keeps the buffer");
    }
    assert!(got.lock().unwrap().is_empty());
    dom.sync().unwrap();
    assert_eq!(*got.lock().unwrap(), vec![(100, 1), (101, 1), (102, 1), (103, 1)]);
    let w = dom.window().unwrap();
    assert_eq!((w.releases, w.unsafe_reuse), (4, 0));
    assert_eq!(dom.stats().unwrap().completions, 4);
}

#[test]
fn safe_deferred_poll_without_closure() {
    let be = sim();
    let dom = Domain::new(&be, &opts(Policy::SafeDeferred)).unwrap();
    let mut m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
    m.buf_mut()[0] = 0x5a;
    dom.unmap(m, 42).unwrap();
    assert!(dom.poll().unwrap().is_empty());
    dom.sync().unwrap();
    let done = dom.poll().unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, 42);
    assert_eq!(done[0].1[0][0], 0x5a, "the very buffer comes back");
}

#[test]
fn flusher_thread_delivers_on_age() {
    let be = sim();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let o = DomainOptions { policy: Policy::SafeDeferred, flusher: Flusher::Thread,
                            max_window_ns: 2_000_000, ..Default::default() };
    let dom = Domain::with_completion(&be, &o, move |c, _| g2.lock().unwrap().push(c)).unwrap();
    let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
    dom.unmap(m, 7).unwrap();
    let t0 = Instant::now();
    while got.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(*got.lock().unwrap(), vec![7]);
    assert!(dom.stats().unwrap().flush_age >= 1);
}

#[test]
fn drop_unmaps_and_delivers() {
    let be = sim();
    let got = Arc::new(Mutex::new(Vec::new()));
    {
        let g2 = got.clone();
        let dom = Domain::with_completion(&be, &opts(Policy::SafeDeferred), move |c, _| g2.lock().unwrap().push(c)).unwrap();
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        dom.unmap(m, 9).unwrap();
        let _kept = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        // _kept unmaps itself (cookie 0), then the domain's drop flushes both.
    }
    let mut v = got.lock().unwrap().clone();
    v.sort();
    assert_eq!(v, vec![0, 9]);
    assert_eq!(be.sim().unwrap().counters().unwrap().mapped_pages, 0);
}

#[test]
fn stats_window_and_json_agree() {
    let be = sim();
    let dom = Domain::new(&be, &opts(Policy::Deferred)).unwrap();
    for _ in 0..3 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        dom.unmap(m, 0).unwrap();
    }
    dom.sync().unwrap();
    let st = dom.stats().unwrap();
    let w = dom.window().unwrap();
    let j = dom.json().unwrap();
    assert!(j.starts_with("{\"policy\":\"deferred\",\"backend\":\"sim\""), "{}", j);
    assert!(j.contains(&format!("\"maps\":{}", st.maps)));
    assert!(j.contains(&format!("\"releases\":{}", w.releases)));
    assert!(j.contains(&format!("\"max\":{}", w.window_max_ns)));
    assert_eq!((st.maps, w.releases, w.max_window_ns), (3, 3, 10_000_000));
}

#[test]
fn arena_links_and_syncs_with_one_command() {
    let be = sim();
    let s = be.sim().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let mut dom = Domain::with_completion(&be, &opts(Policy::SafeDeferred), move |c, b| g2.lock().unwrap().push((c, b.len()))).unwrap();
    {
        let mut ar = dom.arena(8, LIMIT_NONE).unwrap();
        let base = ar.base();
        assert_eq!(base % (8 * G as u64), 0);
        for i in 0..3u64 {
            assert_eq!(ar.link(i, DmaBuf::new(G), Prot::RW).unwrap(), base + i * G as u64);
        }
        let e = ar.link(0, DmaBuf::new(G), Prot::RW).unwrap_err();
        assert_eq!(e.errno, Errno::EBUSY);
        s.reset_counters();
        for i in 0..3 {
            ar.unlink(i).unwrap();
        }
        assert_eq!(ar.unlink(0), Err(Errno::EINVAL));
        assert!(ar.sync(77).unwrap().is_empty());
        dom.sync().unwrap();
        assert_eq!(*got.lock().unwrap(), vec![(77, 3)]);
        assert_eq!(s.counters().unwrap().inval_cmds[0], 1);
    }
    dom.check().unwrap();
}

#[test]
fn arena_linkv_is_one_link_of_scattered_buffers() {
    let be = sim();
    let s = be.sim().unwrap();
    let mut dom = Domain::new(&be, &opts(Policy::Deferred)).unwrap();
    {
        let mut ar = dom.arena(8, LIMIT_NONE).unwrap();
        let base = ar.base();
        let mut bufs = vec![DmaBuf::new(G), DmaBuf::new(2 * G), DmaBuf::new(G)];
        for (i, b) in bufs.iter_mut().enumerate() {
            b.fill(0x10 + i as u8);
        }
        assert_eq!(ar.linkv(2, bufs, Prot::RW).unwrap(), base + 2 * G as u64);
        let st = dom.stats().unwrap();
        assert_eq!((st.maps, st.mapped_pages), (1, 4));
        let mut out = vec![0u8; 4 * G];
        assert_eq!(s.dma_read(base + 2 * G as u64, &mut out).unwrap().stale_pages, 0);
        assert!(out[..G].iter().all(|&b| b == 0x10));
        assert!(out[G..3 * G].iter().all(|&b| b == 0x11));
        assert!(out[3 * G..].iter().all(|&b| b == 0x12));
        assert_eq!(ar.link(5, DmaBuf::new(G), Prot::RW).unwrap_err().errno, Errno::EBUSY);
        // A map fault at the 2nd segment: the buffers come back, nothing stays mapped.
        s.fail_nth(SimOp::Map, 2, Errno::EIO).unwrap();
        let e = ar.linkv(6, vec![DmaBuf::new(G), DmaBuf::new(G)], Prot::RW).unwrap_err();
        assert_eq!((e.errno, e.bufs.len()), (Errno::EIO, 2));
        assert_eq!(s.counters().unwrap().mapped_pages, 4);
        assert_eq!(ar.linkv(6, Vec::new(), Prot::RW).unwrap_err().errno, Errno::EINVAL);
        assert_eq!(ar.linkv(6, e.bufs, Prot::RW).unwrap(), base + 6 * G as u64);
        ar.unlink(6).unwrap();
        ar.unlink(2).unwrap(); // the whole link
        assert_eq!(s.counters().unwrap().mapped_pages, 0);
        assert_eq!(ar.sync(0).unwrap().len(), 5, "the five buffers come back");
    }
    dom.sync().unwrap();
    dom.check().unwrap();
}

#[test]
fn backend_mapv_maps_in_order_and_rolls_back() {
    let be = sim();
    let s = be.sim().unwrap();
    let mut bufs = vec![DmaBuf::new(G), DmaBuf::new(G), DmaBuf::new(G)];
    for (i, b) in bufs.iter_mut().enumerate() {
        b.fill(0x20 + i as u8);
    }
    let segs: Vec<Seg> = bufs.iter().map(|b| Seg { host: b.as_ptr().cast(), len: b.len() }).collect();
    let other = DmaBuf::new(G);
    unsafe { be.map(0x102000, other.as_ptr(), G, Prot::RW).unwrap() }; // where the 3rd goes
    assert_eq!(unsafe { be.mapv(0x100000, &segs, Prot::RW) }, Err(Errno::EEXIST));
    let c = s.counters().unwrap();
    assert_eq!((c.mapped_pages, c.unmaps, c.flushes), (1, 1, 1));
    let mut out = vec![0u8; 3 * G];
    assert!(s.dma_read(0x100000, &mut out[..8]).is_err());
    unsafe { be.mapv(0x200000, &segs, Prot::READ).unwrap() };
    s.dma_read(0x200000, &mut out).unwrap();
    assert!(out.chunks(G).enumerate().all(|(i, p)| p.iter().all(|&b| b == 0x20 + i as u8)));
    assert_eq!(unsafe { be.mapv(0x300000, &[], Prot::RW) }, Err(Errno::EINVAL));
    be.unmap(0x200000, 3 * G).unwrap();
    be.unmap(0x102000, G).unwrap();
    assert_eq!(s.counters().unwrap().mapped_pages, 0);
}

#[test]
fn space_and_cache() {
    let sp = Space::new(&[range(0, (1 << 32) - 1)], &[range(sys::IOVAQ_X86_MSI_START, sys::IOVAQ_X86_MSI_LAST)], 0).unwrap();
    assert_eq!(sp.granule(), 4096);
    let a = sp.alloc(16, 0xffff_ffff).unwrap();
    assert_eq!(a % (16 * 4096), 0);
    assert_eq!(sp.alloc_fixed(sys::IOVAQ_X86_MSI_START, 1), Err(Errno::EBUSY));
    assert_eq!(sp.allocations().unwrap(), vec![(a, 16)]);
    let st = sp.stats().unwrap();
    assert_eq!((st.total_granules, st.reserved_granules), (1 << 20, 257));
    assert!(st.json().unwrap().contains("\"reserved_granules\":257"));
    sp.free(a, 16).unwrap();
    sp.check().unwrap();
    {
        let mut c = Cache::new(&sp, &CacheOptions { max_cached_granules: 64, ..Default::default() }).unwrap();
        assert!(c.is_over(&sp));
        let x = c.alloc(3, LIMIT_NONE).unwrap();
        assert_eq!(x % (4 * 4096), 0);
        c.free(x, 3).unwrap();
        assert_eq!(c.alloc(4, LIMIT_NONE).unwrap(), x, "served from the cache");
        c.free(x, 4).unwrap();
        let st = c.stats().unwrap();
        assert_eq!(st.classes().len(), 7);
        assert_eq!(st.classes()[2].hits, 1);
        c.drain();
        assert_eq!(c.stats().unwrap().cached_granules, 0);
        c.check().unwrap();
    }
    assert!(sp.allocations().unwrap().is_empty());
}

#[test]
fn threads_share_space_and_domain() {
    let be = sim();
    let dom = Domain::new(&be, &opts(Policy::Deferred)).unwrap();
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                for _ in 0..200 {
                    let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
                    dom.unmap(m, 0).unwrap();
                }
            });
        }
    });
    dom.sync().unwrap();
    assert_eq!(dom.stats().unwrap().maps, 800);
    // Every release accounted once (the window bound itself is wall-clock: not judged).
    assert_eq!(dom.window().unwrap().releases, 800);
    assert_eq!(dom.stats().unwrap().queued_pages, 0);
}

#[test]
fn backend_raw_map_unmap_flush() {
    let be = sim();
    assert_eq!(be.name(), "sim");
    let caps = be.caps().unwrap();
    assert_eq!((caps.granule, caps.max_am, caps.n_apertures), (4096, 18, 1));
    assert_eq!(caps.apertures[0], range(4096, (1 << 48) - 1));
    let mut buf = DmaBuf::new(G);
    unsafe { be.map(0x100000, buf.as_ptr(), G, Prot::RW).unwrap() };
    assert_eq!(unsafe { be.map(0x100000, buf.as_ptr(), G, Prot::RW) }, Err(Errno::EEXIST));
    let s = be.sim().unwrap();
    s.dma_write(0x100000, b"raw").unwrap();
    assert_eq!(&buf[..3], b"raw");
    be.unmap(0x100000, G).unwrap();
    let mut out = [0u8; 3];
    assert_eq!(s.dma_read(0x100000, &mut out).unwrap().stale_pages, 1);
    be.flush(&[Inval { kind: sys::IOVAQ_INVAL_PAGES, iova: 0x100000, ..Default::default() }]).unwrap();
    assert!(s.dma_read(0x100000, &mut out).is_err());
    assert_eq!(be.unmap(0x100000, G), Err(Errno::ENOENT));
    assert_eq!(be.flush(&[Inval { kind: 99, ..Default::default() }]), Err(Errno::EINVAL));
    buf[0] = 1;
    let c = s.counters().unwrap();
    assert_eq!((c.flushes, c.maps, c.unmaps, c.faults), (1, 1, 1, 1));
}

#[test]
fn sim_options_and_costs() {
    let d = sim_cost_defaults();
    assert_eq!((d.trap_ns, d.mem_ref_ns), (2500, 90));
    let cost = SimCost { trap_ns: 7, ..d };
    let be = Backend::open_sim(&SimOptions {
        flags: sys::IOVAQ_SIM_NESTED | sys::IOVAQ_SIM_CACHING_MODE,
        aperture_bits: 32, cost: Some(cost), psc_entries: [4, 4, 4], ..Default::default()
    }).unwrap();
    let caps = be.caps().unwrap();
    assert_ne!(caps.flags & sys::IOVAQ_CAP_CACHING_MODE, 0);
    assert_eq!(caps.cost_trap_ns, 7);
    assert_eq!(caps.apertures[0].last, (1 << 32) - 1);
}

#[test]
fn versions_and_hooks() {
    assert_eq!(version(), "0.1.0");
    assert_eq!(version_number(), sys::IOVAQ_VERSION_NUMBER);
    let h = default_alloc_hooks();
    let (alloc, free) = (h.alloc.unwrap(), h.free.unwrap());
    unsafe {
        let p = alloc(h.ctx, 256, 64);
        assert!(!p.is_null() && p as usize % 64 == 0);
        std::ptr::write_bytes(p as *mut u8, 0xab, 256);
        free(h.ctx, p, 256);
    }
}

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn thread_safety_markers() {
    assert_send_sync::<Space>();
    assert_send_sync::<Cache<'static>>();
    assert_send_sync::<Backend>();
    assert_send_sync::<Sim<'static>>();
    assert_send_sync::<Domain<'static>>();
    assert_send::<Arena<'static>>();
    assert_send_sync::<DmaBuf>();
}

#[test]
fn window_hist_is_the_reports_distribution() {
    let be = sim();
    let o = DomainOptions { policy: Policy::Deferred, max_window_ns: 3_600_000_000_000,
                            ..Default::default() };
    let dom = Domain::new(&be, &o).unwrap();
    assert!(dom.window_hist().unwrap().is_empty());
    for _ in 0..10 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        dom.unmap(m, 0).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    dom.sync().unwrap();
    let h = dom.window_hist().unwrap();
    let w = dom.window().unwrap();
    assert!(h.len() > 1, "{} buckets for windows of 0..2 ms", h.len());
    assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), w.releases);
    assert!(h.windows(2).all(|p| p[0].upper_ns < p[1].upper_ns));
    assert!(h.last().unwrap().upper_ns >= w.window_max_ns);
    let mut cum = 0;
    for b in &h {
        cum += b.count;
        if cum * 2 >= w.releases {
            assert_eq!(w.window_p50_ns, b.upper_ns.min(w.window_max_ns));
            break;
        }
    }
}

#[test]
fn teardown_keeps_released_buffers_within_the_byte_budget() {
    let be = sim();
    let o = DomainOptions { policy: Policy::Deferred, teardown_ns: 3_600_000_000_000,
                            teardown_entries: 100, teardown_bytes: 3 * G as u64,
                            ..Default::default() };
    let dom = Domain::new(&be, &o).unwrap();
    // Keep the buffers: a freed one could come back at the same address and be reused.
    let mut keep = Vec::new();
    for _ in 0..4 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        keep.push(dom.unmap(m, 0).unwrap().expect("deferred returns the buffer"));
    }
    assert_eq!(dom.stats().unwrap().teardown_hits, 0);
    assert_eq!(dom.stats().unwrap().teardown_evictions, 1);
    assert_eq!(be.sim().unwrap().counters().unwrap().mapped_pages, 3);
    dom.sync().unwrap();
    assert_eq!(be.sim().unwrap().counters().unwrap().mapped_pages, 0);
}
