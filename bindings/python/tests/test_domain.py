# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""The domain's core semantics through the bindings, on the sim: map, device DMA, unmap under
each policy, safe-deferred completion, stats and the window report; arenas; the raw backend."""

import threading
import time

import pytest

import iovaq

G = 4096


def fill(buf, byte):
    buf[:] = bytes([byte]) * len(buf)


def test_map_dma_unmap_strict(backend):
    sim = backend.sim
    with iovaq.Domain(backend, "strict") as dom:
        buf = iovaq.dma_buffer(2 * G)
        iova = dom.map(buf, iovaq.Prot.RW, limit=0xFFFFFFFF)
        assert iova % G == 0 and iova + 2 * G - 1 <= 0xFFFFFFFF
        acc = sim.dma_write(iova + G - 2, b"abcd")  # crosses a page
        assert acc["pages"] == 2 and acc["stale_pages"] == 0
        assert buf[G - 2:G + 2] == b"abcd"
        data, acc = sim.dma_read(iova + G - 2, 4)
        assert data == b"abcd"
        dom.unmap(iova)
        with pytest.raises(iovaq.DeviceFaultError) as ei:
            sim.dma_read(iova, 1)
        assert ei.value.access["pages"] == 0
        assert backend.faults()[0]["reason"] == 1  # IOVAQ_FAULT_NOT_MAPPED
        st = dom.stats()
        assert (st["maps"], st["unmaps"], st["mapped_pages"], st["flush_strict"]) == (1, 1, 0, 1)
        w = dom.window_report()
        assert w["releases"] == 1 and w["unsafe_reuse"] == 0
        dom.check()
        buf.close()  # no longer exported


def test_read_only_mapping_refuses_device_writes(backend):
    with iovaq.Domain(backend) as dom:
        buf = iovaq.dma_buffer(G)
        iova = dom.map(buf, iovaq.Prot.READ)
        with pytest.raises(iovaq.DeviceFaultError):
            backend.sim.dma_write(iova, b"x")
        assert backend.faults(8)[0]["reason"] == 2  # IOVAQ_FAULT_PERM
        dom.unmap(iova)


def test_deferred_leaves_range_reachable_until_sync(backend):
    sim = backend.sim
    with iovaq.Domain(backend, iovaq.Policy.DEFERRED) as dom:
        buf = iovaq.dma_buffer(G)
        iova = dom.map(buf)
        sim.dma_write(iova, b"warm")  # the IOTLB now caches the translation
        dom.unmap(iova, G, cookie=5)  # the cookie is ignored by deferred
        buf.close()  # deferred hands the buffer back at once
        _, acc = sim.dma_read(iova, 4)
        assert acc["stale_pages"] == 1  # reachable through the stale IOTLB entry
        assert dom.stats()["queued_pages"] == 1
        dom.sync()
        assert dom.poll() == []
        with pytest.raises(iovaq.DeviceFaultError):
            sim.dma_read(iova, 4)
        w = dom.window_report()
        assert w["unsafe_reuse"] == 1 and w["releases"] == 1
        assert dom.stats()["flush_sync"] == 1


def test_safe_deferred_hands_cookie_back_at_t_safe(backend):
    got = []
    with iovaq.Domain(backend, "safe-deferred", on_complete=got.append) as dom:
        bufs = [iovaq.dma_buffer(G) for _ in range(4)]
        iovas = [dom.map(b) for b in bufs]
        for i, iova in enumerate(iovas):
            dom.unmap(iova, cookie=100 + i)
        assert got == [] and dom.poll() == []  # not flushed yet: no completion
        with pytest.raises(BufferError):
            bufs[0].close()  # still exported: the device may reach it
        dom.sync()
        assert got == [100, 101, 102, 103]
        for b in bufs:
            b.close()
        w = dom.window_report()
        assert w["unsafe_reuse"] == 0 and w["releases"] == 4
        assert dom.stats()["completions"] == 4
        dom.check()


def test_safe_deferred_with_flusher_thread_and_poll(backend):
    with iovaq.Domain(backend, "safe-deferred", "thread", max_window_ns=2_000_000) as dom:
        buf = iovaq.dma_buffer(G)
        dom.unmap(dom.map(buf), cookie=42)
        deadline = time.monotonic() + 20
        done = []
        while not done and time.monotonic() < deadline:
            done = dom.poll()  # the flusher thread flushes on age; poll delivers
            time.sleep(0.002)
        assert done == [42]
        assert dom.stats()["flush_age"] >= 1


def test_close_delivers_pending_completions(backend):
    got = []
    dom = iovaq.Domain(backend, "safe-deferred", on_complete=got.append)
    buf = iovaq.dma_buffer(G)
    dom.unmap(dom.map(buf), cookie=9)
    dom.close()
    assert got == [9]
    buf.close()


def test_stats_json_matches_structs(backend):
    with iovaq.Domain(backend, "deferred") as dom:
        for _ in range(3):
            dom.unmap(dom.map(iovaq.dma_buffer(G)))
        dom.sync()
        st, raw = dom.stats(), dom.stats_struct()
        for k in ("maps", "unmaps", "flushes", "inval_cmds", "invalidated_pages", "rings"):
            assert st[k] == getattr(raw, k), k
        w, rw = dom.window_report(), dom.window_struct()
        assert w["releases"] == rw.releases == 3
        assert w["window_ns"]["max"] == rw.window_max_ns
        assert w["max_window_ns"] == rw.max_window_ns == 10_000_000
        full = dom.json()
        assert full["policy"] == "deferred" and full["backend"] == "sim"


def test_domain_cache_withholds_iovas(backend):
    with iovaq.Domain(backend) as dom:
        c = dom.cache
        assert c.space is None
        held = c.alloc(1)
        iova = dom.map(iovaq.dma_buffer(G))
        assert iova != held
        dom.unmap(iova)
        c.free(held, 1)
        assert dom.cache is c
        assert c.stats()["cache_allocs"] >= 2
        dom.check()
    assert c.closed


def test_arena_links_in_order_and_syncs_once(backend):
    sim = backend.sim
    got = []
    with iovaq.Domain(backend, "safe-deferred", on_complete=got.append) as dom:
        with dom.arena(8) as ar:
            base = ar.base
            assert base % (8 * G) == 0
            bufs = [iovaq.dma_buffer(G) for _ in range(3)]
            for i, b in enumerate(bufs):
                assert ar.link(i, b) == base + i * G
            sim.dma_write(base + G, b"mid")
            assert bufs[1][:3] == b"mid"
            with pytest.raises(iovaq.BusyError):
                ar.link(0, iovaq.dma_buffer(G))
            sim.reset_counters()
            for i in range(3):
                ar.unlink(i)
            ar.sync(cookie=77)
            dom.sync()
            assert got == [77]
            assert sim.counters()["inval_cmds"][0] == 1  # one page-selective command
        dom.check()


def test_arena_linkv_is_one_link_of_scattered_buffers(backend):
    sim = backend.sim
    with iovaq.Domain(backend, "deferred") as dom:
        with dom.arena(8) as ar:
            base = ar.base
            bufs = [iovaq.dma_buffer(G), iovaq.dma_buffer(2 * G), iovaq.dma_buffer(G)]
            for i, b in enumerate(bufs):
                fill(b, 0x10 + i)
            assert ar.linkv(2, bufs) == base + 2 * G
            assert dom.stats()["maps"] == 1 and dom.stats()["mapped_pages"] == 4
            _, res = sim.dma_read(base + 2 * G, 4 * G)
            assert res["stale_pages"] == 0
            data, _ = sim.dma_read(base + 2 * G, 4 * G)
            assert data == bytes([0x10]) * G + bytes([0x11]) * 2 * G + bytes([0x12]) * G
            sim.dma_write(base + 5 * G - 2, b"edge")  # the 2nd buffer's end, the 3rd's start
            assert bufs[1][-2:] == b"ed" and bufs[2][:2] == b"ge"
            with pytest.raises(iovaq.BusyError):
                ar.link(5, iovaq.dma_buffer(G))
            with pytest.raises(iovaq.InvalidArgumentError):
                ar.unlink(2, G)  # part of the link
            with pytest.raises(iovaq.InvalidArgumentError):
                ar.linkv(0, [])
            with pytest.raises(iovaq.InvalidArgumentError):
                ar.linkv(6, bufs)  # beyond the chunk
            pair = [iovaq.dma_buffer(G), iovaq.dma_buffer(G)]
            sim.fail_nth(iovaq.SimOp.MAP, 2, -5)  # the 2nd segment: the 1st is rolled back
            with pytest.raises(iovaq.IovaqError):
                ar.linkv(6, pair)
            assert sim.counters()["mapped_pages"] == 4
            dom.check()
            ar.linkv(6, pair)  # its pages stayed free
            ar.unlink(6)
            ar.unlink(2)  # the whole link, by default
            assert sim.counters()["mapped_pages"] == 0
            ar.sync()
            dom.sync()
            with pytest.raises(iovaq.DeviceFaultError):
                sim.dma_read(base + 2 * G, 8)
            assert ar.linkv(2, bufs) == base + 2 * G
        dom.check()


def test_backend_mapv_rolls_back(backend):
    sim = backend.sim
    bufs = [iovaq.dma_buffer(G), iovaq.dma_buffer(G), iovaq.dma_buffer(G)]
    for i, b in enumerate(bufs):
        fill(b, 0x20 + i)
    backend.map(0x102000, iovaq.dma_buffer(G))  # where the 3rd would go
    sim.reset_counters()
    with pytest.raises(iovaq.ExistsError):
        backend.mapv(0x100000, bufs)
    c = sim.counters()
    assert c["mapped_pages"] == 1 and c["unmaps"] == 1 and c["flushes"] == 1
    with pytest.raises(iovaq.DeviceFaultError):
        sim.dma_read(0x100000, 8)
    backend.mapv(0x200000, bufs)
    assert sim.dma_read(0x200000, 3 * G)[0] == bytes([0x20]) * G + bytes([0x21]) * G + \
        bytes([0x22]) * G
    with pytest.raises(iovaq.InvalidArgumentError):
        backend.mapv(0x300000, [])
    backend.unmap(0x200000, 3 * G)
    assert sim.counters()["mapped_pages"] == 1


def test_backend_raw_map_unmap_flush(backend):
    caps = backend.caps()
    assert backend.name == "sim"
    assert caps["granule"] == G and caps["max_am"] == 18
    assert caps["apertures"] == [(G, (1 << 48) - 1)]
    buf = iovaq.dma_buffer(G)
    backend.map(0x100000, buf, iovaq.Prot.RW)
    with pytest.raises(iovaq.ExistsError):
        backend.map(0x100000, iovaq.dma_buffer(G))
    sim = backend.sim
    sim.dma_write(0x100000, b"raw")
    assert buf[:3] == b"raw"
    backend.unmap(0x100000, G)
    assert sim.dma_read(0x100000, 3)[1]["stale_pages"] == 1
    backend.flush([{"kind": iovaq.InvalKind.PAGES, "iova": 0x100000, "am": 0}])
    with pytest.raises(iovaq.DeviceFaultError):
        sim.dma_read(0x100000, 3)
    with pytest.raises(iovaq.NotFoundError):
        backend.unmap(0x100000, G)
    with pytest.raises(iovaq.InvalidArgumentError):
        backend.flush([{"kind": 99}])
    backend.flush([])
    c = sim.counters()
    assert c["flushes"] == 1 and c["maps"] == 1 and c["unmaps"] == 1 and c["faults"] == 1
    buf.close()


def test_sim_options_and_costs():
    costs = iovaq.sim_cost_defaults()
    assert costs["trap_ns"] == 2500 and costs["mem_ref_ns"] == 90
    with iovaq.Backend.open_sim(flags=3, aperture_bits=32, cost={"trap_ns": 7},
                                psc_entries=[4, 4, 4]) as be:
        caps = be.caps()
        assert caps["apertures"] == [(G, (1 << 32) - 1)]
        assert caps["flags"] & 4  # IOVAQ_CAP_CACHING_MODE
        assert caps["cost_trap_ns"] == 7


def test_injected_backend_failure_changes_nothing(backend):
    with iovaq.Domain(backend) as dom:
        backend.sim.fail_nth(iovaq.SimOp.MAP, 1, -5)
        with pytest.raises(iovaq.IovaqError) as ei:
            dom.map(iovaq.dma_buffer(G))
        assert ei.value.errno == 5 and type(ei.value) is iovaq.IovaqError
        st = dom.stats()
        assert st["map_errors"] == 1 and st["mapped_pages"] == 0
        dom.check()
        backend.sim.fail_nth("flush", 1, -5)
        iova = dom.map(iovaq.dma_buffer(G))
        with pytest.raises(iovaq.IovaqError):
            dom.unmap(iova)  # strict: the flush failed, the range stays QUEUED
        assert dom.stats()["queued_pages"] == 1
        dom.sync()  # retried
        assert dom.stats()["queued_pages"] == 0


def test_threads_share_a_domain(backend):
    errors = []
    with iovaq.Domain(backend, "deferred") as dom:
        def worker():
            try:
                for _ in range(200):
                    b = iovaq.dma_buffer(G)
                    dom.unmap(dom.map(b))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dom.sync()
        assert errors == []
        assert dom.stats()["maps"] == 800
        # Every release accounted once (the window bound itself is wall-clock: not judged).
        assert dom.window_report()["releases"] == 800
        assert dom.stats()["queued_pages"] == 0
        dom.check()


def test_passthrough_maps_at_buffer_address(backend):
    import ctypes
    with iovaq.Domain(backend, "passthrough") as dom:
        buf = iovaq.dma_buffer(G)
        iova = dom.map(buf)
        assert iova == ctypes.addressof(ctypes.c_char.from_buffer(buf))
        dom.unmap(iova)


def test_window_hist_is_the_reports_distribution(backend):
    with iovaq.Domain(backend, iovaq.Policy.DEFERRED, max_window_ns=3600 * 10**9) as dom:
        assert dom.window_hist() == []
        bufs = [iovaq.dma_buffer(G) for _ in range(10)]
        for b in bufs:
            dom.unmap(dom.map(b))
            time.sleep(0.0002)  # windows from ~0 to ~2 ms: several buckets
        dom.sync()
        h = dom.window_hist()
        w = dom.window_report()
        assert len(h) > 1
        assert sum(c for _, c in h) == w["releases"] == 10
        assert all(c > 0 for _, c in h)
        assert [u for u, _ in h] == sorted(u for u, _ in h)
        assert h[-1][0] >= w["window_ns"]["max"]
        cum = 0
        for upper, count in h:  # the median is read off the same buckets
            cum += count
            if cum * 2 >= 10:
                assert w["window_ns"]["p50"] == min(upper, w["window_ns"]["max"])
                break
        for b in bufs:
            b.close()


def test_teardown_byte_budget(backend):
    """Optimistic teardown keeps released buffers mapped within teardown_bytes."""
    with iovaq.Domain(backend, iovaq.Policy.DEFERRED, teardown_ns=3600 * 10**9,
                      teardown_entries=100, teardown_bytes=3 * G) as dom:
        bufs = [iovaq.dma_buffer(G) for _ in range(4)]
        for b in bufs:
            dom.unmap(dom.map(b))
        st = dom.stats()
        assert st["teardown_evictions"] == 1
        assert backend.sim.counters()["mapped_pages"] == 3
        dom.sync()
        assert backend.sim.counters()["mapped_pages"] == 0
        for b in bufs:
            b.close()
