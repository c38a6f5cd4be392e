# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Spaces, caches and counters through the bindings."""

import pytest

import iovaq

G = 4096


def test_alloc_is_top_down_aligned_and_below_limit(space):
    a = space.alloc(16, limit=0xFFFFFFFF)
    assert a % (16 * G) == 0
    assert a + 16 * G - 1 <= 0xFFFFFFFF
    b = space.alloc(1, limit=0x0FFFFFFF)
    assert b + G - 1 <= 0x0FFFFFFF
    assert space.allocations() == sorted([(a, 16), (b, 1)])
    space.free(a, 16)
    space.free(b, 1)
    assert space.allocations() == []
    space.check()


def test_reserved_holes_are_never_handed_out(space):
    # 1 MiB below the MSI window and the window itself: alloc_fixed of the hole is -EBUSY.
    with pytest.raises(iovaq.BusyError) as ei:
        space.alloc_fixed(iovaq.IOVAQ_X86_MSI_START, 1)
    assert ei.value.errno == 16 and ei.value.function == "iovaq_space_alloc_fixed"
    with pytest.raises(iovaq.BusyError):
        space.alloc_fixed(0, 1)  # IOVA 0 is always reserved
    space.alloc_fixed(0x10000, 4)
    with pytest.raises(iovaq.BusyError):
        space.alloc_fixed(0x12000, 1)
    space.free(0x10000, 4)


def test_exhaustion_is_nospace():
    with iovaq.Space([(0, 16 * G - 1)]) as sp:
        got = [sp.alloc(1) for _ in range(15)]  # granule 0 is reserved
        assert len(set(got)) == 15
        with pytest.raises(iovaq.NoSpaceError):
            sp.alloc(1)
        st = sp.stats()
        assert st["space_alloc_fail"] == 1 and st["free_granules"] == 0
        assert st["allocated_granules"] == 15 and st["granule"] == G


def test_granule_and_stats_json(space):
    assert space.granule == G
    st = space.stats()
    assert st["version"] == 1
    assert st["total_granules"] == 1 << 20
    assert st["reserved_granules"] == 256 + 1  # MSI window and granule 0
    assert st["classes"] == []


def test_walk_stops_and_propagates(space):
    for _ in range(4):
        space.alloc(1)
    seen = []
    assert space.walk(lambda i, n: seen.append(i) or len(seen) == 2) is True
    assert len(seen) == 2

    def boom(i, n):
        raise KeyError("from the walk callback")
    with pytest.raises(KeyError, match="walk callback"):
        space.walk(boom)
    space.check()  # the lock was released


def test_cache_rounds_caches_and_drains(space):
    c = iovaq.Cache(space, max_cached_granules=64)
    a = c.alloc(3)  # rounded up to 4 granules, 4-aligned
    assert a % (4 * G) == 0
    assert (a, 4) in space.allocations()
    c.free(a, 3)
    st = c.stats()
    assert st["cache_frees"] == 1 and st["cached_granules"] == 4
    assert [k["granules"] for k in st["classes"]] == [1, 2, 4, 8, 16, 32, 64]
    assert c.alloc(4) == a  # served from the cache
    assert c.stats()["classes"][2]["hits"] == 1
    c.free(a, 4)
    c.drain()
    assert c.stats()["cached_granules"] == 0
    assert space.allocations() == []
    c.check()
    assert c.space is space
    c.close()
    space.check()


def test_cache_checked_rejects_double_free(space):
    with iovaq.Cache(space, flags=2) as c:  # IOVAQ_CACHE_CHECKED
        a = c.alloc(1)
        c.free(a, 1)
        with pytest.raises(iovaq.InvalidArgumentError):
            c.free(a, 1)


def test_bad_cache_options(space):
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Cache(space, max_cached_granules=3)  # not a power of two
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Cache(space, flags=1 << 20)
    with pytest.raises(OverflowError):
        iovaq.Cache(space, front_cap=1 << 32)


def test_bad_space_options():
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Space([])
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Space([(0, 4095)], granule=3000)
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Space([(0, 100)])  # not granule-aligned
    with pytest.raises(TypeError):
        iovaq.Space([(0,)])
    with pytest.raises(TypeError):
        iovaq.Space(42)


def test_version_and_strerror():
    assert iovaq.version() == "0.1.0"
    assert iovaq.version_number() == 0x000100
    assert iovaq.strerror(-28) == iovaq.strerror(28) == "IOVA space exhausted"
    assert iovaq.strerror(-9999) == "unknown error"
    with pytest.raises(TypeError):
        iovaq.strerror("x")


def test_default_alloc_hooks_work():
    import ctypes
    alloc, free, _ctx = iovaq.default_alloc_hooks()
    assert alloc and free
    a = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)(alloc)
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(free)
    p = a(None, 256, 64)
    assert p and p % 64 == 0
    ctypes.memset(p, 0xAB, 256)
    f(None, p, 256)
