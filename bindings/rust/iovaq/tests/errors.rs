// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//! Bad input and failures: errno values, unknown backends, zero and huge sizes, injected
//! backend failures, buffers returned on error, and panics in callbacks.
use iovaq::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const G: usize = GRANULE;

fn sim() -> Backend {
    Backend::open_sim(&SimOptions::default()).unwrap()
}

#[test]
fn errno_messages() {
    assert_eq!(Errno::ENOSPC.message(), "IOVA space exhausted");
    assert_eq!(strerror(-28), strerror(28));
    assert_eq!(strerror(-9999), "unknown error");
    assert_eq!(format!("{}", Errno::EINVAL), "invalid argument (errno 22)");
    let e: Box<dyn std::error::Error> = Box::new(Errno::EBUSY);
    assert!(e.to_string().contains("errno 16"));
}

#[test]
fn unknown_backend_and_bad_name() {
    assert_eq!(Backend::open(Some("no-such-backend")).err(), Some(Errno::ENOENT));
    assert!(!Backend::why().is_empty());
    assert_eq!(Backend::open(Some("si\0m")).err(), Some(Errno::EINVAL));
}

#[test]
fn bad_sizes_are_errors() {
    let sp = Space::new(&[range(0, (1 << 32) - 1)], &[], 0).unwrap();
    assert_eq!(sp.alloc(0, LIMIT_NONE), Err(Errno::EINVAL));
    assert_eq!(sp.alloc(u64::MAX, LIMIT_NONE), Err(Errno::EINVAL));
    assert_eq!(sp.alloc(1 << 40, LIMIT_NONE), Err(Errno::ENOSPC));
    assert_eq!(sp.free(0x1000, 1), Err(Errno::EINVAL));
    assert_eq!(Space::new(&[], &[], 0).err(), Some(Errno::EINVAL));
    assert_eq!(Space::new(&[range(0, 100)], &[], 0).err(), Some(Errno::EINVAL));
    assert_eq!(Space::new(&[range(0, 4095)], &[], 3000).err(), Some(Errno::EINVAL));
    assert_eq!(Cache::new(&sp, &CacheOptions { max_cached_granules: 3, ..Default::default() }).err().map(|_| ()), Some(()));
    assert_eq!(sp.stats().unwrap().space_allocs, 0);
}

#[test]
fn failed_map_returns_the_buffer() {
    let be = sim();
    let dom = Domain::new(&be, &DomainOptions::default()).unwrap();
    let mut b = DmaBuf::new(G);
    b[0] = 9;
    let e = dom.map(b, Prot(0), LIMIT_NONE).unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL);
    assert_eq!(e.buf[0], 9);
    be.sim().unwrap().fail_nth(SimOp::Map, 1, Errno::EIO).unwrap();
    let e = dom.map(e.buf, Prot::RW, LIMIT_NONE).unwrap_err();
    assert_eq!(e.errno, Errno::EIO);
    let st = dom.stats().unwrap();
    // An argument error is refused before the backend: only the injected failure counts.
    assert_eq!((st.map_errors, st.mapped_pages), (1, 0));
    assert_eq!(be.sim().unwrap().fail_nth(SimOp::Map, 1, Errno(-5)), Err(Errno::EINVAL));
}

#[test]
fn failed_strict_flush_keeps_range_queued() {
    let be = sim();
    let dom = Domain::new(&be, &DomainOptions::default()).unwrap();
    let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
    be.sim().unwrap().fail_nth(SimOp::Flush, 1, Errno::EIO).unwrap();
    // The unmap itself happened; only its flush failed: the buffer stays with the domain.
    let (e, m) = match dom.unmap(m, 0) {
        Err(x) => x,
        Ok(_) => panic!("the flush was told to fail"),
    };
    assert_eq!(e, Errno::EIO);
    assert_eq!(dom.stats().unwrap().queued_pages, 1);
    dom.sync().unwrap();
    assert_eq!(dom.stats().unwrap().queued_pages, 0);
    std::mem::forget(m); // its memory is leaked, never freed while reachable
}

#[test]
fn panicking_completion_is_resumed_by_sync() {
    let be = sim();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let o = DomainOptions { policy: Policy::SafeDeferred, ..Default::default() };
    let dom = Domain::with_completion(&be, &o, move |cookie, _| {
        c2.fetch_add(1, Ordering::SeqCst);
        if cookie == 2 {
            panic!("completion {} failed", cookie);
        }
    })
    .unwrap();
    for c in 1..=3 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        dom.unmap(m, c).unwrap();
    }
    let r = catch_unwind(AssertUnwindSafe(|| dom.sync()));
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<String>().map(|s| s.as_str()), Some("completion 2 failed"));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the others were delivered");
    dom.sync().unwrap(); // the panic was taken
}

#[test]
fn panicking_walk_is_resumed() {
    let sp = Space::new(&[range(0, (1 << 30) - 1)], &[], 0).unwrap();
    sp.alloc(1, LIMIT_NONE).unwrap();
    sp.alloc(1, LIMIT_NONE).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| sp.walk(|_, _| panic!("walk boom"))));
    assert!(r.is_err());
    sp.check().unwrap(); // the lock was released
    let mut n = 0;
    assert_eq!(sp.walk(|_, _| { n += 1; true }), Ok(true));
    assert_eq!(n, 1);
}

#[test]
fn cookie_values_may_repeat() {
    let be = sim();
    let dom = Domain::new(&be, &DomainOptions { policy: Policy::SafeDeferred, ..Default::default() }).unwrap();
    for _ in 0..3 {
        let m = dom.map(DmaBuf::new(G), Prot::RW, LIMIT_NONE).unwrap();
        dom.unmap(m, 1).unwrap();
    }
    dom.sync().unwrap();
    let done = dom.poll().unwrap();
    assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 1, 1]);
    assert!(done.iter().all(|d| d.1.len() == 1));
}

#[test]
fn real_backends_fail_cleanly_without_a_device() {
    let be = sim();
    assert_eq!(be.device_fd(), Err(Errno::ENODEV));
    assert_eq!(be.pinned_bytes(), 0);
    assert!(Backend::open_iommufd(Some("/nonexistent/vfio0"), None).is_err());
    assert!(!Backend::why().is_empty());
    assert!(Backend::open_vfio_type1(Some("0000:ff:1f.7"), None).is_err());
    assert!(!Backend::why().is_empty());
    assert_eq!(Backend::open_iommufd(Some("a\0b"), None).err(), Some(Errno::EINVAL));
    assert!(Backend::open_kshim(Some("0000:ff:1f.7"), None).is_err());
    assert!(!Backend::why().is_empty());
    assert_eq!(Backend::open_kshim(None, Some(-1)).err(), Some(Errno::EINVAL));
}
