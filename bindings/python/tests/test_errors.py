# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Bad input: wrong types, negative and oversized numbers, use after close, double close,
callbacks that raise, buffers the device cannot use. Each gives a clear exception and leaves
the objects usable (the asan configuration also checks that nothing leaks or crashes)."""

import errno
import gc
import subprocess
import sys

import pytest

import iovaq
from conftest import HERE

G = 4096


@pytest.mark.parametrize("value, exc", [
    (-1, ValueError), (1 << 64, OverflowError), ("16", TypeError), (1.5, TypeError),
    (None, TypeError), (True, TypeError),
])
def test_bad_sizes_never_reach_c(space, value, exc):
    with pytest.raises(exc):
        space.alloc(value)
    with pytest.raises(exc):
        space.free(value, 1)
    assert space.stats()["space_allocs"] == 0


def test_zero_and_huge_sizes_are_c_errors(space, backend):
    with pytest.raises(iovaq.InvalidArgumentError):
        space.alloc(0)
    with pytest.raises(iovaq.NoSpaceError):
        space.alloc(1 << 40)
    with pytest.raises(iovaq.InvalidArgumentError):
        space.alloc((1 << 64) - 1)  # the byte size overflows
    with iovaq.Domain(backend) as dom:
        buf = iovaq.dma_buffer(G)
        with pytest.raises(iovaq.InvalidArgumentError):
            dom.map(buf, length=0)
        with pytest.raises(ValueError):
            dom.map(buf, length=2 * G)  # longer than the buffer: refused before C
        with pytest.raises(iovaq.InvalidArgumentError):
            dom.map(buf, offset=1, length=G - 1)  # misaligned
        with pytest.raises(iovaq.InvalidArgumentError):
            dom.unmap(0x1000, G)  # never mapped
        with pytest.raises(iovaq.InvalidArgumentError):
            dom.map(buf, prot=0)
        with pytest.raises(OverflowError):
            dom.map(buf, prot=1 << 40)
        assert dom.stats()["mapped_pages"] == 0
        buf.close()  # every failed map released its export


def test_unusable_buffers(backend):
    with iovaq.Domain(backend) as dom:
        with pytest.raises(TypeError):
            dom.map(b"\0" * G)  # read-only
        with pytest.raises(TypeError):
            dom.map(12345)
        with pytest.raises(TypeError):
            dom.map(memoryview(bytearray(2 * G))[::2])  # not contiguous
        ba = bytearray(3 * G)
        import ctypes
        off = -ctypes.addressof(ctypes.c_char.from_buffer(ba)) % G
        iova = dom.map(ba, offset=off, length=G)  # an aligned window of a bytearray works
        with pytest.raises(BufferError):
            ba.extend(b"x")  # cannot move while mapped
        dom.unmap(iova)


def test_wrong_object_types(backend, space):
    with pytest.raises(TypeError):
        iovaq.Domain(space)
    with pytest.raises(TypeError):
        iovaq.Cache(backend)
    with pytest.raises(ValueError, match="unknown policy"):
        iovaq.Domain(backend, "lazy")
    with pytest.raises(iovaq.InvalidArgumentError):
        iovaq.Domain(backend, 17)
    with pytest.raises(TypeError):
        iovaq.Domain(backend, on_complete=5)
    with pytest.raises(ValueError):
        iovaq.Domain(backend, cache={"bogus": 1})
    with pytest.raises(ValueError):
        iovaq.Backend.open_sim(bogus=1)
    with pytest.raises(TypeError):
        iovaq.Backend(name=5)
    with pytest.raises(ValueError):
        backend.flush([{"kind": 0, "oops": 1}])
    with pytest.raises(TypeError):
        backend.flush([(0, 0)])
    with pytest.raises(ValueError):
        backend.sim.fail_nth("map", 1, 5)  # must be a negative errno
    with pytest.raises(ValueError):
        backend.sim.fail_nth("nothing", 1, -5)


def test_unknown_backend_is_not_found_with_reason():
    with pytest.raises(iovaq.NotFoundError) as ei:
        iovaq.Backend("no-such-backend")
    assert ei.value.errno == errno.ENOENT
    assert isinstance(ei.value, FileNotFoundError)
    assert "no-such-backend" in str(ei.value) or iovaq.Backend.why() in str(ei.value)


def test_use_after_close_and_double_close(space, backend):
    c = iovaq.Cache(space)
    c.close()
    c.close()  # double close is a no-op
    with pytest.raises(iovaq.ClosedError):
        c.alloc(1)
    with pytest.raises(iovaq.ClosedError):
        c.stats()
    dom = iovaq.Domain(backend)
    sim = backend.sim
    ar = dom.arena(4)
    iova = dom.map(iovaq.dma_buffer(G))
    backend.close()  # closes the arena and the domain first, in that order
    assert ar.closed and dom.closed and backend.closed
    for call in (lambda: dom.map(iovaq.dma_buffer(G)), lambda: dom.unmap(iova),
                 lambda: dom.stats(), lambda: ar.base, lambda: sim.counters(),
                 lambda: backend.caps(), lambda: dom.cache):
        with pytest.raises(iovaq.ClosedError):
            call()
    dom.close()
    backend.close()
    with pytest.raises(iovaq.ClosedError):
        with backend:
            pass


def test_closing_a_space_closes_its_caches_first(space):
    c = iovaq.Cache(space)
    a = c.alloc(2)
    c.free(a, 2)  # cached: destroy must return it to the space before the space goes
    space.close()
    assert c.closed


def test_objects_collected_without_close():
    be = iovaq.Backend.open_sim()
    dom = iovaq.Domain(be, "safe-deferred")
    dom.unmap(dom.map(iovaq.dma_buffer(G)), cookie=1)
    sp = iovaq.Space([(0, (1 << 30) - 1)])
    iovaq.Cache(sp).alloc(1)
    del dom, be, sp
    gc.collect()  # finalizers free everything (the asan run would report a leak)


def test_on_complete_that_raises(backend):
    seen = []

    def cb(cookie):
        seen.append(cookie)
        if cookie == 2:
            raise RuntimeError("callback failed on %d" % cookie)

    dom = iovaq.Domain(backend, "safe-deferred", on_complete=cb)
    for c in (1, 2, 3):
        dom.unmap(dom.map(iovaq.dma_buffer(G)), cookie=c)
    with pytest.raises(RuntimeError, match="on 2"):
        dom.sync()
    assert seen == [1, 2]
    assert dom.poll() == [3]  # the rest stayed queued
    assert seen == [1, 2, 3]
    dom.unmap(dom.map(iovaq.dma_buffer(G)), cookie=2)
    with pytest.raises(RuntimeError):
        dom.close()  # destroyed anyway, then the exception
    assert dom.closed


def test_errno_classes():
    for e, cls in [(errno.EINVAL, iovaq.InvalidArgumentError), (errno.ENOSPC, iovaq.NoSpaceError),
                   (errno.ENOMEM, iovaq.OutOfMemoryError), (errno.E2BIG, iovaq.TooBigError),
                   (errno.EBUSY, iovaq.BusyError), (errno.EEXIST, iovaq.ExistsError),
                   (errno.ENOENT, iovaq.NotFoundError), (errno.EOPNOTSUPP, iovaq.NotSupportedError),
                   (errno.EUCLEAN, iovaq.InconsistentError), (errno.EFAULT, iovaq.DeviceFaultError),
                   (errno.EAGAIN, iovaq.TryAgainError), (errno.EIO, iovaq.IovaqError)]:
        assert iovaq.error_class(-e) is cls
        assert issubclass(cls, OSError)
    assert issubclass(iovaq.InvalidArgumentError, ValueError)


def test_library_path_errors():
    code = ("import sys; sys.path.insert(0, %r); import iovaq, os; "
            "iovaq.load(os.environ['X'])" % HERE.rsplit("/", 1)[0])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"X": "/nonexistent/libiovaq.so.0", "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "cannot load libiovaq" in r.stderr
    lib = iovaq.load()
    assert iovaq.load(lib.path) is lib
    with pytest.raises(RuntimeError, match="already loaded"):
        iovaq.load("/usr/lib/other/libiovaq.so.0")


def test_real_backends_fail_cleanly_without_a_device(backend):
    with pytest.raises(iovaq.NoDeviceError):
        backend.device_fd
    assert backend.pinned_bytes == 0
    for name, kw in (("iommufd", {"iommufd": {"device": "/nonexistent/vfio0"}}),
                     ("vfio-type1", {"vfio_type1": {"device": "0000:ff:1f.7"}}),
                     ("kshim", {"kshim": {"device": "0000:ff:1f.7"}})):
        with pytest.raises(iovaq.IovaqError) as ei:
            iovaq.Backend(name, **kw)
        assert ei.value.function == "iovaq_backend_open"
        assert iovaq.Backend.why()  # the library says what is missing
    with pytest.raises(ValueError):
        iovaq.Backend("iommufd", iommufd={"bogus": 1})
    with pytest.raises(ValueError):
        iovaq.Backend("sim", sim={}, iommufd={})
    with pytest.raises(ValueError):
        iovaq.Backend("iommufd", iommufd={"iommufd": -1})
    with pytest.raises(ValueError):
        iovaq.Backend("kshim", kshim={"fd": -1})
    with pytest.raises(iovaq.IovaqError):  # adopt (flag 1) stdin: not a bound /dev/iovaq
        iovaq.Backend("kshim", kshim={"fd": 0, "flags": 1})
    assert "IOVAQ_KSHIM_CAPS" in iovaq.Backend.why()
