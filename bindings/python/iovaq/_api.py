# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""The object API: spaces, caches, backends, sims, domains and arenas.

Ownership and lifetime
----------------------
Every object owns one C handle and frees it in ``close()`` (also on ``with`` exit and, as a
last resort, when it is garbage collected). ``close()`` may be called any number of times;
any other method of a closed object raises :class:`ClosedError`. A dependent object keeps its
owner alive (a cache its space, a domain its backend, an arena its domain), and closing an
owner first closes what depends on it, in the order the C library requires (cache before
space, arena before domain, domain before backend), so no C object is ever used after it was
freed.

Host buffers given to ``map``/``link`` are exported (``memoryview``-style) for as long as the
device may use them, so they can neither be freed nor resized meanwhile (a ``bytearray``
cannot grow, an ``mmap`` cannot be closed): until the unmap returns for strict, deferred and
passthrough domains, and until the completion is delivered for safe-deferred ones.

Threads
-------
Every call releases the GIL while it is inside the C library (ctypes.CDLL). The C thread-safety
rules apply unchanged: the functions documented thread-safe may be called from several Python
threads at once, ``check()`` needs a quiescent object, an arena is used by one thread at a
time, and ``close()`` must not race with other calls on the same object.

Completions (safe-deferred)
---------------------------
No Python code ever runs on a thread the library owns, nor from inside a C call that holds one
of its locks. The domain is created without a C completion callback: the library keeps
completed cookies, and :meth:`Domain.poll` (also called by :meth:`Domain.sync` and
:meth:`Domain.close`) takes them and calls ``on_complete(cookie)`` on the calling Python
thread. With the flusher thread, ranges become safe in the background and their completions
wait until the next ``poll()``. If ``on_complete`` raises, the exception propagates out of
``poll()``/``sync()``; the cookie that raised counts as delivered, and the ones after it stay
queued for the next ``poll()``. ``close()`` delivers everything, then re-raises the first
exception once the domain is destroyed.
"""

from __future__ import annotations

import collections
import ctypes
import enum
import json
import mmap
import operator
import threading
import weakref
from ctypes import byref, c_uint64, c_void_p
from typing import (Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple,
                    Union)

from . import _ffi
from ._errors import ClosedError, DeviceFaultError, make_error

U64_MAX = (1 << 64) - 1
LIMIT_NONE = U64_MAX
Range = Tuple[int, int]
Buffer = Any  # any writable, contiguous buffer-protocol object


class Policy(enum.IntEnum):
    STRICT = _ffi.IOVAQ_POLICY_STRICT
    DEFERRED = _ffi.IOVAQ_POLICY_DEFERRED
    SAFE_DEFERRED = _ffi.IOVAQ_POLICY_SAFE_DEFERRED
    PASSTHROUGH = _ffi.IOVAQ_POLICY_PASSTHROUGH


class Flusher(enum.IntEnum):
    INLINE = _ffi.IOVAQ_FLUSHER_INLINE
    THREAD = _ffi.IOVAQ_FLUSHER_THREAD


class RingLayout(enum.IntEnum):
    AUTO = _ffi.IOVAQ_RING_AUTO
    SHARED = _ffi.IOVAQ_RING_SHARED
    PERCPU = _ffi.IOVAQ_RING_PERCPU


class Prot(enum.IntFlag):
    READ = _ffi.IOVAQ_PROT_READ
    WRITE = _ffi.IOVAQ_PROT_WRITE
    RW = _ffi.IOVAQ_PROT_READ | _ffi.IOVAQ_PROT_WRITE


class InvalKind(enum.IntEnum):
    PAGES = _ffi.IOVAQ_INVAL_PAGES
    RANGE = _ffi.IOVAQ_INVAL_RANGE
    DOMAIN = _ffi.IOVAQ_INVAL_DOMAIN
    GLOBAL = _ffi.IOVAQ_INVAL_GLOBAL


class SimOp(enum.IntEnum):
    MAP = _ffi.IOVAQ_SIM_OP_MAP
    UNMAP = _ffi.IOVAQ_SIM_OP_UNMAP
    FLUSH = _ffi.IOVAQ_SIM_OP_FLUSH


def _lib() -> _ffi.Library:
    return _ffi.load()


# --- argument checking ---------------------------------------------------------------------
def _uint(name: str, value: Any, bits: int = 64) -> int:
    """An unsigned integer argument: TypeError, ValueError or OverflowError, never a wrap."""
    if isinstance(value, bool):
        raise TypeError("%s must be an integer, not bool" % name)
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    if v < 0:
        raise ValueError("%s must not be negative (got %d)" % (name, v))
    if v >> bits:
        raise OverflowError("%s does not fit in %d bits (got %d)" % (name, bits, v))
    return v


def _enum(cls: Any, name: str, value: Any) -> int:
    if isinstance(value, str):
        key = value.upper().replace("-", "_")
        try:
            return int(cls[key])
        except KeyError:
            raise ValueError("unknown %s %r (one of: %s)" % (
                name, value, ", ".join(m.name.lower().replace("_", "-") for m in cls))) from None
    return _uint(name, value, 32)


def _ranges(name: str, ranges: Optional[Iterable[Range]]) -> Tuple[Any, int]:
    if ranges is None:
        return None, 0
    items = list(ranges)
    arr = (_ffi.iovaq_range * max(len(items), 1))()
    for i, r in enumerate(items):
        try:
            start, last = r
        except (TypeError, ValueError):
            raise TypeError("%s[%d] must be a (start, last) pair" % (name, i)) from None
        arr[i].start = _uint("%s[%d].start" % (name, i), start)
        arr[i].last = _uint("%s[%d].last" % (name, i), last)
    return arr, len(items)


def _check(err: int, function: str) -> int:
    if err < 0:
        msg = _lib().iovaq_strerror(err).decode()
        raise make_error(err, msg, function)
    return err


def _json(fn: Callable[..., int], name: str, *args: Any) -> dict:
    n = _check(fn(*args, None, 0), name)
    buf = ctypes.create_string_buffer(n + 1)
    m = _check(fn(*args, buf, n + 1), name)
    if m != n:
        raise RuntimeError("%s: length changed between calls (%d, %d)" % (name, n, m))
    return json.loads(buf.value.decode())


def _struct_dict(st: ctypes.Structure) -> dict:
    out = {}
    for name, _type in st._fields_:
        if name in ("sz", "reserved"):
            continue
        v = getattr(st, name)
        if isinstance(v, ctypes.Array):
            v = [_struct_dict(x) if isinstance(x, ctypes.Structure) else x for x in v]
        elif isinstance(v, ctypes.Structure):
            v = _struct_dict(v)
        out[name] = v
    return out


class _Pinned:
    """A host buffer exported for the device: its address stays valid while this lives."""

    __slots__ = ("obj", "arr", "addr", "len")

    def __init__(self, obj: Buffer, offset: int, length: Optional[int]):
        if isinstance(obj, (bytes, str)) or not _has_buffer(obj):
            raise TypeError("buffer must be a writable buffer object (bytearray, mmap, "
                            "memoryview, iovaq.dma_buffer()), not %s" % type(obj).__name__)
        size = memoryview(obj).nbytes
        offset = _uint("offset", offset)
        if length is None:
            length = size - offset if offset <= size else 0
        length = _uint("length", length)
        if offset + length > size:
            raise ValueError("offset %d + length %d exceeds the buffer (%d bytes)"
                             % (offset, length, size))
        try:
            whole = (ctypes.c_char * size).from_buffer(obj)
        except TypeError as e:
            raise TypeError("buffer must be writable and contiguous: %s" % e) from None
        self.obj = obj
        self.arr = whole
        self.addr = ctypes.addressof(whole) + offset
        self.len = length


def _segs(bufs: Iterable[Buffer]) -> Tuple[List[_Pinned], Any]:
    """Pin each whole buffer, in order, and build their ``struct iovaq_seg`` array."""
    pins = [_Pinned(b, 0, None) for b in bufs]
    arr = (_ffi.iovaq_seg * max(len(pins), 1))()
    for i, p in enumerate(pins):
        arr[i].host = p.addr
        arr[i].len = p.len
    return pins, arr


def _has_buffer(obj: Any) -> bool:
    try:
        memoryview(obj)
        return True
    except TypeError:
        return False


def dma_buffer(nbytes: int) -> mmap.mmap:
    """A page-aligned, zeroed, writable host buffer of ``nbytes`` (anonymous ``mmap``).

    Mapping needs granule-aligned memory, which ``bytearray`` does not guarantee.
    """
    nbytes = _uint("nbytes", nbytes)
    if nbytes == 0:
        raise ValueError("nbytes must be positive")
    return mmap.mmap(-1, nbytes)


# --- handles ---------------------------------------------------------------------------------
class _Handle:
    """Owns one C handle; closes it (and its dependents first) exactly once."""

    _destroy_fn: Optional[str] = None

    def __init__(self) -> None:
        self._ptr: Optional[int] = None
        self._children: "weakref.WeakSet[_Handle]" = weakref.WeakSet()
        self._close_lock = threading.RLock()

    def _h(self) -> int:
        p = self._ptr
        if p is None:
            raise ClosedError("%s is closed" % type(self).__name__)
        return p

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _adopt(self, child: "_Handle") -> None:
        self._children.add(child)

    def _destroy(self, ptr: int) -> None:
        if self._destroy_fn:
            getattr(_lib(), self._destroy_fn)(ptr)

    def _close_children(self) -> Optional[BaseException]:
        first: Optional[BaseException] = None
        for child in list(self._children):
            try:
                child.close()
            except Exception as e:  # noqa: BLE001 - close every child, then report
                first = first or e
        return first

    def close(self) -> None:
        """Free the C object (after closing every dependent object); idempotent."""
        with self._close_lock:
            if self._ptr is None:
                return
            first = self._close_children()
            ptr, self._ptr = self._ptr, None
            self._destroy(ptr)
        if first is not None:
            raise first

    def __enter__(self):
        self._h()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing can be reported from a finalizer
            pass


def _stats_dict(fn: Callable[..., int], name: str, ptr: int) -> dict:
    st = _ffi.iovaq_stats.new()
    _check(fn(ptr, byref(st)), name)
    return _json(_lib().iovaq_stats_json, "iovaq_stats_json", byref(st))


class Space(_Handle):
    """An IOVA space (``iovaq/space.h``): granules from apertures minus reserved holes.

    ``apertures`` and ``reserved`` are sequences of inclusive ``(start, last)`` byte ranges;
    ``granule`` is in bytes (0: 4 KiB). Sizes below are in granules, IOVAs in bytes.
    """

    _destroy_fn = "iovaq_space_destroy"

    def __init__(self, apertures: Sequence[Range], reserved: Optional[Sequence[Range]] = None,
                 granule: int = 0):
        super().__init__()
        lib = _lib()
        ap, n_ap = _ranges("apertures", apertures)
        rs, n_rs = _ranges("reserved", reserved)
        opts = _ffi.iovaq_space_opts.new(granule=_uint("granule", granule), n_apertures=n_ap,
                                         n_reserved=n_rs)
        if ap is not None:
            opts.apertures = ctypes.cast(ap, ctypes.POINTER(_ffi.iovaq_range))
        if rs is not None and n_rs:
            opts.reserved = ctypes.cast(rs, ctypes.POINTER(_ffi.iovaq_range))
        out = c_void_p()
        _check(lib.iovaq_space_create(byref(opts), byref(out)), "iovaq_space_create")
        self._ptr = out.value

    def alloc(self, n_granules: int, limit: int = LIMIT_NONE) -> int:
        """Allocate ``n_granules`` (a power of two is size-aligned) below ``limit``; the IOVA."""
        out = c_uint64()
        _check(_lib().iovaq_space_alloc(self._h(), _uint("n_granules", n_granules),
                                        _uint("limit", limit), byref(out)), "iovaq_space_alloc")
        return out.value

    def alloc_fixed(self, iova: int, n_granules: int) -> None:
        """Allocate the ``n_granules`` at ``iova``."""
        _check(_lib().iovaq_space_alloc_fixed(self._h(), _uint("iova", iova),
                                              _uint("n_granules", n_granules)),
               "iovaq_space_alloc_fixed")

    def free(self, iova: int, n_granules: int) -> None:
        """Free exactly one earlier allocation."""
        _check(_lib().iovaq_space_free(self._h(), _uint("iova", iova),
                                       _uint("n_granules", n_granules)), "iovaq_space_free")

    @property
    def granule(self) -> int:
        """The granule in bytes."""
        return _lib().iovaq_space_granule(self._h())

    def stats(self) -> dict:
        """Counters (``struct iovaq_stats``) as a dict parsed from ``iovaq_stats_json()``."""
        return _stats_dict(_lib().iovaq_space_stats, "iovaq_space_stats", self._h())

    def check(self) -> None:
        """Verify the invariants; raises :class:`InconsistentError` on a violation."""
        _check(_lib().iovaq_space_check(self._h()), "iovaq_space_check")

    def walk(self, fn: Callable[[int, int], Optional[bool]]) -> bool:
        """Call ``fn(iova, n_granules)`` per live allocation in address order.

        ``fn`` runs on the calling thread with the space lock held: it must not call into
        this space. A true return value stops the walk (``walk`` then returns True). An
        exception stops the walk and propagates.
        """
        raised: List[BaseException] = []

        def tramp(_arg: Any, iova: int, n: int) -> int:
            try:
                return 1 if fn(iova, n) else 0
            except BaseException as e:  # noqa: BLE001 - re-raised below
                raised.append(e)
                return 1

        cb = _ffi.space_walk_fn(tramp)
        r = _check(_lib().iovaq_space_walk(self._h(), cb, None), "iovaq_space_walk")
        if raised:
            raise raised[0]
        return r != 0

    def allocations(self) -> List[Range]:
        """Every live allocation as ``(iova, n_granules)``, in address order."""
        out: List[Range] = []
        self.walk(lambda iova, n: out.append((iova, n)))
        return out


class Cache(_Handle):
    """A magazine cache in front of a :class:`Space` (``iovaq/cache.h``).

    Options as in ``struct iovaq_cache_opts`` (0 means the default). A cache obtained from
    :attr:`Domain.cache` belongs to its domain: closing it only forgets it.
    """

    _destroy_fn = "iovaq_cache_destroy"

    def __init__(self, space: Space, max_cached_granules: int = 0, depot_max: int = 0,
                 front_cap: int = 0, flags: int = 0, n_cpus: int = 0):
        super().__init__()
        if not isinstance(space, Space):
            raise TypeError("space must be an iovaq.Space, not %s" % type(space).__name__)
        opts = _ffi.iovaq_cache_opts.new(
            max_cached_granules=_uint("max_cached_granules", max_cached_granules),
            depot_max=_uint("depot_max", depot_max, 32), front_cap=_uint("front_cap", front_cap, 32),
            flags=_uint("flags", flags, 32), n_cpus=_uint("n_cpus", n_cpus, 32))
        out = c_void_p()
        with space._close_lock:
            _check(_lib().iovaq_cache_create(space._h(), byref(opts), byref(out)),
                   "iovaq_cache_create")
            self._ptr = out.value
            self._owner: Any = space
            space._adopt(self)

    @classmethod
    def _borrowed(cls, ptr: int, owner: "_Handle") -> "Cache":
        c = cls.__new__(cls)
        _Handle.__init__(c)
        c._ptr = ptr
        c._owner = owner
        c._destroy_fn = None  # the owner frees it
        owner._adopt(c)
        return c

    @property
    def space(self) -> Optional[Space]:
        """The space behind the cache (None for a domain's cache, whose space is private)."""
        ptr = _lib().iovaq_cache_space(self._h())
        owner = self._owner
        return owner if isinstance(owner, Space) and owner._ptr == ptr else None

    def alloc(self, n_granules: int, limit: int = LIMIT_NONE) -> int:
        out = c_uint64()
        _check(_lib().iovaq_cache_alloc(self._h(), _uint("n_granules", n_granules),
                                        _uint("limit", limit), byref(out)), "iovaq_cache_alloc")
        return out.value

    def free(self, iova: int, n_granules: int) -> None:
        """Give back an allocation; ``n_granules`` as passed to :meth:`alloc`."""
        _check(_lib().iovaq_cache_free(self._h(), _uint("iova", iova),
                                       _uint("n_granules", n_granules)), "iovaq_cache_free")

    def drain(self) -> None:
        """Return cached IOVAs to the space."""
        _lib().iovaq_cache_drain(self._h())

    def stats(self) -> dict:
        """Counters of the cache and its space, parsed from ``iovaq_stats_json()``."""
        return _stats_dict(_lib().iovaq_cache_stats, "iovaq_cache_stats", self._h())

    def check(self) -> None:
        """Verify the invariants (no other thread may use the cache meanwhile)."""
        _check(_lib().iovaq_cache_check(self._h()), "iovaq_cache_check")


def sim_cost_defaults() -> Dict[str, int]:
    """The sim's default cost constants (``iovaq_sim_cost_defaults()``), in ns."""
    c = _ffi.iovaq_sim_cost()
    _lib().iovaq_sim_cost_defaults(byref(c))
    return _struct_dict(c)


class Backend(_Handle):
    """An IOMMU backend (``iovaq/backend.h``); ``Backend.open_sim()`` for the simulator.

    ``name`` None means the ``IOVAQ_BACKEND`` environment variable, else "sim". The low-level
    ``map``/``unmap``/``flush`` bypass any domain: use them only on a backend no domain uses.
    """

    _destroy_fn = "iovaq_backend_close"

    def __init__(self, name: Optional[str] = "sim", sim: Optional[Dict[str, Any]] = None,
                 iommufd: Optional[Dict[str, Any]] = None,
                 vfio_type1: Optional[Dict[str, Any]] = None,
                 kshim: Optional[Dict[str, Any]] = None):
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be a str or None")
        given = [k for k, v in (("sim", sim), ("iommufd", iommufd), ("vfio_type1", vfio_type1),
                                ("kshim", kshim))
                 if v is not None]
        if len(given) > 1:
            raise ValueError("give the options of one backend only (got %s)" % ", ".join(given))
        keep: List[Any] = []
        opts = _ffi.iovaq_backend_opts.new(name=name.encode() if name is not None else None)
        bo: Any = None
        if sim is not None:
            bo = _sim_opts(sim, keep)
        elif iommufd is not None:
            bo = _fields_opts(_ffi.iovaq_iommufd_opts, "iommufd", iommufd,
                              {"device": None, "iommufd": 31, "ioas_id": 32, "flags": 32})
        elif vfio_type1 is not None:
            bo = _fields_opts(_ffi.iovaq_vfio_type1_opts, "vfio_type1", vfio_type1,
                              {"device": None, "container": 31, "flags": 32})
        elif kshim is not None:
            bo = _fields_opts(_ffi.iovaq_kshim_opts, "kshim", kshim,
                              {"device": None, "fd": 31, "flags": 32})
        if bo is not None:
            keep.append(bo)
            opts.backend_opts = ctypes.cast(byref(bo), c_void_p)
        out = c_void_p()
        err = _lib().iovaq_backend_open(byref(opts), byref(out))
        if err < 0:
            why = _lib().iovaq_backend_why().decode()
            exc = make_error(err, _lib().iovaq_strerror(err).decode() +
                             (": " + why if why else ""), "iovaq_backend_open")
            raise exc
        self._ptr = out.value
        self._mapped: Dict[int, _Pinned] = {}
        self._lock = threading.Lock()

    @classmethod
    def open_sim(cls, **sim_opts: Any) -> "Backend":
        """Open the "sim" backend; keyword arguments are ``struct iovaq_sim_opts`` fields
        (``seed``, ``flags``, ``iotlb_sets``, ``iotlb_ways``, ``psc_entries`` (3 ints),
        ``max_am``, ``aperture_bits``, ``cost`` (a dict of ``struct iovaq_sim_cost``))."""
        return cls("sim", sim=sim_opts)

    @property
    def device_fd(self) -> int:
        """The VFIO device file descriptor the backend opened (it keeps owning it);
        :class:`NoDeviceError` for sim and for backends that adopted the caller's fd."""
        return _check(_lib().iovaq_backend_device_fd(self._h()), "iovaq_backend_device_fd")

    @property
    def pinned_bytes(self) -> int:
        """Host bytes the kernel keeps pinned for this backend's mappings (0 for sim)."""
        return _lib().iovaq_backend_pinned_bytes(self._h())

    @staticmethod
    def why() -> str:
        """Why this thread's last backend open failed (``iovaq_backend_why()``)."""
        return _lib().iovaq_backend_why().decode()

    @property
    def name(self) -> str:
        return _lib().iovaq_backend_name(self._h()).decode()

    def caps(self) -> dict:
        """``struct iovaq_backend_caps`` as a dict (apertures as ``(start, last)`` pairs)."""
        c = _ffi.iovaq_backend_caps.new()
        _check(_lib().iovaq_backend_get_caps(self._h(), byref(c)), "iovaq_backend_get_caps")
        d = _struct_dict(c)
        d["apertures"] = [(a["start"], a["last"]) for a in d["apertures"][:c.n_apertures]]
        return d

    @property
    def sim(self) -> Optional["Sim"]:
        """The simulated IOMMU behind this backend, or None if it is not "sim"."""
        ptr = _lib().iovaq_sim_of(self._h())
        return Sim(ptr, self) if ptr else None

    def map(self, iova: int, buf: Buffer, prot: int = Prot.RW, offset: int = 0,
            length: Optional[int] = None) -> None:
        """Map ``buf[offset:offset+length]`` at ``iova``; the buffer stays exported until
        :meth:`unmap`."""
        pin = _Pinned(buf, offset, length)
        iova = _uint("iova", iova)
        with self._lock:
            _check(_lib().iovaq_backend_map(self._h(), iova, pin.addr, pin.len,
                                            _uint("prot", prot, 32)), "iovaq_backend_map")
            self._mapped[iova] = pin

    def mapv(self, iova: int, bufs: Sequence[Buffer], prot: int = Prot.RW) -> None:
        """Map the whole buffers at consecutive IOVAs from ``iova``, in order
        (``iovaq_backend_mapv``); on an error nothing stays mapped. :meth:`unmap` of the
        whole range removes them all."""
        pins, arr = _segs(bufs)
        iova = _uint("iova", iova)
        with self._lock:
            _check(_lib().iovaq_backend_mapv(self._h(), iova, arr, len(pins),
                                             _uint("prot", prot, 32)), "iovaq_backend_mapv")
            for p in pins:
                self._mapped[iova] = p
                iova += p.len

    def unmap(self, iova: int, length: int) -> bool:
        """Unmap whole earlier mappings in ``[iova, iova + length)`` without invalidating.

        Returns True when page-table pages were freed (the next invalidation of the range
        must not be leaf-only)."""
        iova, length = _uint("iova", iova), _uint("length", length)
        with self._lock:
            r = _check(_lib().iovaq_backend_unmap(self._h(), iova, length),
                       "iovaq_backend_unmap")
            for k in [k for k in self._mapped if iova <= k < iova + length]:
                del self._mapped[k]
        return r == _ffi.IOVAQ_UNMAP_FREED_TABLES

    def flush(self, commands: Sequence[Dict[str, int]]) -> None:
        """Execute invalidation commands, each a dict with ``kind`` (:class:`InvalKind`),
        and optionally ``flags``, ``am``, ``iova``, ``last``; wait for their completion."""
        cmds = list(commands)
        arr = (_ffi.iovaq_inval * max(len(cmds), 1))()
        for i, c in enumerate(cmds):
            if not isinstance(c, dict):
                raise TypeError("commands[%d] must be a dict" % i)
            unknown = set(c) - {"kind", "flags", "am", "iova", "last"}
            if unknown:
                raise ValueError("commands[%d]: unknown keys %s" % (i, sorted(unknown)))
            arr[i].kind = _uint("kind", c.get("kind", 0), 8)
            arr[i].flags = _uint("flags", c.get("flags", 0), 8)
            arr[i].am = _uint("am", c.get("am", 0), 8)
            arr[i].iova = _uint("iova", c.get("iova", 0))
            arr[i].last = _uint("last", c.get("last", 0))
        _check(_lib().iovaq_backend_flush(self._h(), arr, len(cmds)), "iovaq_backend_flush")

    def faults(self, max_entries: int = 64) -> List[dict]:
        """Take up to ``max_entries`` entries of the fault log, oldest first."""
        n = _uint("max_entries", max_entries)
        arr = (_ffi.iovaq_fault * max(n, 1))()
        got = _check(_lib().iovaq_backend_faults(self._h(), arr, n), "iovaq_backend_faults")
        return [_struct_dict(arr[i]) for i in range(got)]

    def _destroy(self, ptr: int) -> None:
        _lib().iovaq_backend_close(ptr)
        self._mapped.clear()


def _fields_opts(cls: Any, what: str, d: Dict[str, Any], bits: Dict[str, Optional[int]]) -> Any:
    """Options of a real backend: ``device`` is a str, the rest unsigned (file descriptors
    non-negative, 31 bits)."""
    if not isinstance(d, dict):
        raise TypeError("%s options must be a dict" % what)
    o = cls.new()
    for k, v in d.items():
        if k not in bits:
            raise ValueError("unknown %s option %r" % (what, k))
        if bits[k] is None:
            if v is not None and not isinstance(v, str):
                raise TypeError("%s must be a str" % k)
            setattr(o, k, v.encode() if v is not None else None)
        else:
            setattr(o, k, _uint(k, v, bits[k]))
    return o


def _sim_opts(d: Dict[str, Any], keep: List[Any]) -> _ffi.iovaq_sim_opts:
    if not isinstance(d, dict):
        raise TypeError("sim options must be a dict")
    so = _ffi.iovaq_sim_opts.new()
    for k, v in d.items():
        if k == "psc_entries":
            vals = list(v)
            if len(vals) != 3:
                raise ValueError("psc_entries must have 3 entries")
            for i, x in enumerate(vals):
                so.psc_entries[i] = _uint("psc_entries[%d]" % i, x, 32)
        elif k == "cost":
            cost = _ffi.iovaq_sim_cost()
            _lib().iovaq_sim_cost_defaults(byref(cost))
            for ck, cv in dict(v).items():
                if ck not in dict(cost._fields_):
                    raise ValueError("unknown sim cost field %r" % ck)
                setattr(cost, ck, _uint(ck, cv))
            keep.append(cost)
            so.cost = ctypes.pointer(cost)
        elif k in ("seed",):
            so.seed = _uint(k, v)
        elif k in ("flags", "iotlb_sets", "iotlb_ways", "max_am", "aperture_bits"):
            setattr(so, k, _uint(k, v, 32))
        else:
            raise ValueError("unknown sim option %r" % k)
    return so


class Sim:
    """The simulated IOMMU of a "sim" backend (``iovaq/sim.h``); valid while the backend is
    open. Every method is thread-safe."""

    def __init__(self, ptr: int, backend: Backend):
        self._ptr = ptr
        self._backend = backend

    def _h(self) -> int:
        self._backend._h()  # raises ClosedError once the backend is closed
        return self._ptr

    def _dma(self, iova: int, buf: Any, n: int, write: bool) -> dict:
        acc = _ffi.iovaq_sim_access()
        err = _lib().iovaq_sim_dma(self._h(), _uint("iova", iova), buf, n, 1 if write else 0,
                                   byref(acc))
        if err < 0:
            exc = make_error(err, _lib().iovaq_strerror(err).decode(), "iovaq_sim_dma")
            if isinstance(exc, DeviceFaultError):
                exc.access = _struct_dict(acc)
            raise exc
        return _struct_dict(acc)

    def dma_write(self, iova: int, data: bytes) -> dict:
        """The device writes ``data`` at ``iova``; returns ``struct iovaq_sim_access``.

        Raises :class:`DeviceFaultError` (with ``.access``) on a fault."""
        data = bytes(data)
        buf = ctypes.create_string_buffer(data, len(data))
        return self._dma(iova, buf, len(data), True)

    def dma_read(self, iova: int, length: int) -> Tuple[bytes, dict]:
        """The device reads ``length`` bytes at ``iova``: ``(data, access)``."""
        length = _uint("length", length)
        buf = ctypes.create_string_buffer(max(length, 1))
        acc = self._dma(iova, buf, length, False)
        return buf.raw[:length], acc

    def counters(self) -> dict:
        """``struct iovaq_sim_counters`` as a dict."""
        c = _ffi.iovaq_sim_counters.new()
        _check(_lib().iovaq_sim_get_counters(self._h(), byref(c)), "iovaq_sim_get_counters")
        return _struct_dict(c)

    def reset_counters(self) -> None:
        _lib().iovaq_sim_reset_counters(self._h())

    def fail_nth(self, op: Union[SimOp, str, int], nth: int, err: int) -> None:
        """Make the ``nth`` next call of ``op`` fail with the negative errno ``err``."""
        if isinstance(err, bool) or not isinstance(err, int):
            raise TypeError("err must be a negative errno (int)")
        if not -(1 << 31) <= err < 0:
            raise ValueError("err must be a negative errno")
        _check(_lib().iovaq_sim_fail_nth(self._h(), _enum(SimOp, "op", op), _uint("nth", nth),
                                         err), "iovaq_sim_fail_nth")


class Domain(_Handle):
    """IOVAs for host buffers on a backend, with an invalidation policy (``iovaq/domain.h``).

    ``policy``, ``flusher`` and ``ring_layout`` take the enums or their names ("strict",
    "deferred", "safe-deferred", "passthrough"; "inline", "thread"; "auto", "shared",
    "percpu"). Other options are ``struct iovaq_domain_opts`` fields (0: default); ``cache`` is
    a dict of :class:`Cache` options. ``on_complete(cookie)`` receives safe-deferred cookies:
    see the module documentation for when and on which thread.
    """

    _destroy_fn = "iovaq_domain_destroy"

    def __init__(self, backend: Backend, policy: Union[Policy, str, int] = Policy.STRICT,
                 flusher: Union[Flusher, str, int] = Flusher.INLINE,
                 on_complete: Optional[Callable[[int], Any]] = None, *,
                 ring_entries: int = 0, ring_layout: Union[RingLayout, str, int] = 0,
                 max_window_ns: int = 0, max_reachable_pages: int = 0,
                 domain_threshold: int = 0, reserved: Optional[Sequence[Range]] = None,
                 cache: Optional[Dict[str, int]] = None, teardown_ns: int = 0,
                 teardown_entries: int = 0, flags: int = 0, teardown_bytes: int = 0):
        super().__init__()
        if not isinstance(backend, Backend):
            raise TypeError("backend must be an iovaq.Backend, not %s" % type(backend).__name__)
        if on_complete is not None and not callable(on_complete):
            raise TypeError("on_complete must be callable")
        rs, n_rs = _ranges("reserved", reserved)
        opts = _ffi.iovaq_domain_opts.new(
            policy=_enum(Policy, "policy", policy), flusher=_enum(Flusher, "flusher", flusher),
            ring_entries=_uint("ring_entries", ring_entries, 32),
            ring_layout=_enum(RingLayout, "ring_layout", ring_layout),
            max_window_ns=_uint("max_window_ns", max_window_ns),
            max_reachable_pages=_uint("max_reachable_pages", max_reachable_pages),
            domain_threshold=_uint("domain_threshold", domain_threshold), n_reserved=n_rs,
            teardown_ns=_uint("teardown_ns", teardown_ns),
            teardown_entries=_uint("teardown_entries", teardown_entries),
            flags=_uint("flags", flags), teardown_bytes=_uint("teardown_bytes", teardown_bytes))
        if rs is not None and n_rs:
            opts.reserved = ctypes.cast(rs, ctypes.POINTER(_ffi.iovaq_range))
        if cache is not None:
            if not isinstance(cache, dict):
                raise TypeError("cache must be a dict of cache options")
            known = {"max_cached_granules": 64, "depot_max": 32, "front_cap": 32,
                     "flags": 32, "n_cpus": 32}
            for k in cache:
                if k not in known:
                    raise ValueError("unknown cache option %r" % k)
            co = _ffi.iovaq_cache_opts.new(**{k: _uint(k, v, known[k]) for k, v in cache.items()})
            opts.cache = ctypes.pointer(co)
        self.policy = Policy(opts.policy) if opts.policy < _ffi.IOVAQ_POLICY_NR else None
        self._on_complete = on_complete
        self._lock = threading.Lock()
        self._mapped: Dict[int, _Pinned] = {}
        self._pending: Dict[int, Tuple[int, List[_Pinned]]] = {}  # token -> (cookie, buffers)
        self._ready: Deque[int] = collections.deque()
        self._retired: List[_Pinned] = []  # buffers of released safe-deferred arenas
        self._next_token = 1
        self._cache: Optional[Cache] = None
        out = c_void_p()
        with backend._close_lock:
            opts.backend = backend._h()
            _check(_lib().iovaq_domain_create(byref(opts), byref(out)), "iovaq_domain_create")
            self._ptr = out.value
            self._backend = backend
            backend._adopt(self)

    # -- mapping -------------------------------------------------------------------------
    def map(self, buf: Buffer, prot: int = Prot.RW, limit: int = LIMIT_NONE, offset: int = 0,
            length: Optional[int] = None) -> int:
        """Map ``buf[offset:offset+length]`` (granule-aligned, e.g. :func:`dma_buffer`) and
        return its IOVA. The buffer stays exported while the device may reach it."""
        pin = _Pinned(buf, offset, length)
        out = c_uint64()
        _check(_lib().iovaq_domain_map(self._h(), pin.addr, pin.len, _uint("prot", prot, 32),
                                       _uint("limit", limit), byref(out)), "iovaq_domain_map")
        with self._lock:
            self._mapped[out.value] = pin
        return out.value

    def _token(self, cookie: int, pins: List[_Pinned]) -> int:
        tok = self._next_token
        self._next_token += 1
        self._pending[tok] = (cookie, pins)
        return tok

    def unmap(self, iova: int, length: Optional[int] = None, cookie: int = 0) -> None:
        """Release the mapping at ``iova`` (``length`` defaults to the mapped length).

        Under safe-deferred, ``cookie`` comes back through :meth:`poll` once the range is
        unreachable, and the buffer stays exported until then."""
        iova, cookie = _uint("iova", iova), _uint("cookie", cookie)
        h = self._h()
        safe = self.policy == Policy.SAFE_DEFERRED
        with self._lock:
            pin = self._mapped.get(iova)
            n = pin.len if (length is None and pin is not None) else _uint("length", length or 0)
            tok = self._token(cookie, [pin] if pin else []) if safe else 0
        err = _lib().iovaq_domain_unmap(h, iova, n, tok)
        with self._lock:
            if err < 0:
                self._pending.pop(tok, None)
            elif pin is not None and self._mapped.get(iova) is pin:
                del self._mapped[iova]
        _check(err, "iovaq_domain_unmap")

    def sync(self) -> None:
        """Make everything released so far unreachable, then deliver completions."""
        _check(_lib().iovaq_domain_sync(self._h()), "iovaq_domain_sync")
        self.poll()

    def poll(self) -> List[int]:
        """Take completed safe-deferred cookies (running a flush if one is due), call
        ``on_complete`` for each, and return them in completion order."""
        self._collect()
        return self._deliver()

    def _collect(self) -> None:
        lib = _lib()
        arr = (c_uint64 * 64)()
        while True:
            n = _check(lib.iovaq_domain_poll(self._h(), arr, 64), "iovaq_domain_poll")
            with self._lock:
                for i in range(n):
                    cookie, _pins = self._pending.pop(arr[i], (None, None))
                    if cookie is None:
                        raise RuntimeError("iovaq_domain_poll returned unknown token %d" % arr[i])
                    self._ready.append(cookie)
            if n < 64:
                return

    def _deliver(self) -> List[int]:
        done: List[int] = []
        while True:
            with self._lock:
                if not self._ready:
                    return done
                cookie = self._ready.popleft()
            done.append(cookie)
            if self._on_complete is not None:
                self._on_complete(cookie)  # an exception leaves the rest queued

    # -- reports -------------------------------------------------------------------------
    def json(self) -> dict:
        """``iovaq_domain_json()`` parsed: ``policy``, ``backend``, ``stats``, ``window``."""
        return _json(_lib().iovaq_domain_json, "iovaq_domain_json", self._h())

    def stats(self) -> dict:
        """Domain counters (``struct iovaq_domain_stats``) parsed from the library's JSON."""
        return self.json()["stats"]

    def window_report(self) -> dict:
        """The safety-window account (``struct iovaq_window_report``) from the JSON."""
        return self.json()["window"]

    def stats_struct(self) -> _ffi.iovaq_domain_stats:
        """The raw ``struct iovaq_domain_stats`` (``iovaq_domain_get_stats()``)."""
        st = _ffi.iovaq_domain_stats.new()
        _check(_lib().iovaq_domain_get_stats(self._h(), byref(st)), "iovaq_domain_get_stats")
        return st

    def window_struct(self) -> _ffi.iovaq_window_report:
        """The raw ``struct iovaq_window_report`` (``iovaq_domain_window()``)."""
        w = _ffi.iovaq_window_report.new()
        _check(_lib().iovaq_domain_window(self._h(), byref(w)), "iovaq_domain_window")
        return w

    def window_hist(self) -> list:
        """The window histogram (``iovaq_domain_window_hist()``): a list of
        ``(upper_ns, count)`` pairs, non-empty buckets only, smallest bound first. Their counts
        add up to the report's ``releases``; the cumulative sums give the window's CDF."""
        lib = _lib()
        for _ in range(8):  # releases may add buckets between sizing and reading
            n = _check(lib.iovaq_domain_window_hist(self._h(), None, 0),
                       "iovaq_domain_window_hist")
            buf = (_ffi.iovaq_window_bucket * max(n, 1))()
            m = _check(lib.iovaq_domain_window_hist(self._h(), buf, n),
                       "iovaq_domain_window_hist")
            if m <= n:
                return [(buf[i].upper_ns, buf[i].count) for i in range(m)]
        raise RuntimeError("iovaq_domain_window_hist: the histogram kept growing")

    @property
    def cache(self) -> Cache:
        """The domain's magazine cache (its stats; IOVAs withheld from the domain)."""
        with self._lock:
            if self._cache is None or self._cache.closed:
                self._cache = Cache._borrowed(_lib().iovaq_domain_cache(self._h()), self)
            return self._cache

    def check(self) -> None:
        """Verify the state invariant (quiescent domain only)."""
        _check(_lib().iovaq_domain_check(self._h()), "iovaq_domain_check")

    def arena(self, pages: int, limit: int = LIMIT_NONE) -> "Arena":
        """Reserve a contiguous chunk of ``pages`` granules (rounded up to a power of two)."""
        return Arena(self, pages, limit)

    def _destroy(self, ptr: int) -> None:
        _lib().iovaq_domain_destroy(ptr)
        self._finish_close()

    def close(self) -> None:
        """Destroy the domain (queued ranges are flushed, mappings removed) and deliver every
        outstanding completion; re-raises the first exception ``on_complete`` raised."""
        with self._close_lock:
            if self._ptr is None:
                return
            first = self._close_children()
            try:
                # Cookies completed before the destroy are taken while the domain exists.
                self._collect()
            except Exception:  # noqa: BLE001 - the domain is destroyed regardless
                pass
            ptr, self._ptr = self._ptr, None
            self._destroy(ptr)
        while True:
            try:
                self._deliver()
                break
            except Exception as e:  # noqa: BLE001
                if first is None:
                    first = e
        if first is not None:
            raise first

    def _finish_close(self) -> None:
        # iovaq_domain_destroy() flushed every queued range: what is still pending is safe
        # now (its cookie was never polled), so it is delivered in token order.
        with self._lock:
            for tok in sorted(self._pending):
                self._ready.append(self._pending[tok][0])
            self._pending.clear()
            self._mapped.clear()
            self._retired.clear()

    def __del__(self) -> None:
        try:
            _Handle.close(self)
        except Exception:  # noqa: BLE001
            pass


class Arena(_Handle):
    """A contiguous IOVA chunk of a domain (``iovaq_arena_*``); one thread at a time."""

    _destroy_fn = "iovaq_arena_release"

    def __init__(self, domain: Domain, pages: int, limit: int = LIMIT_NONE):
        super().__init__()
        if not isinstance(domain, Domain):
            raise TypeError("domain must be an iovaq.Domain")
        out = c_void_p()
        with domain._close_lock:
            _check(_lib().iovaq_arena_reserve(domain._h(), _uint("pages", pages),
                                              _uint("limit", limit), byref(out)),
                   "iovaq_arena_reserve")
            self._ptr = out.value
            self._domain = domain
            domain._adopt(self)
        self._linked: Dict[int, List[_Pinned]] = {}   # first page -> its buffers
        self._unlinked: List[_Pinned] = []      # unlinked since the last sync

    @property
    def base(self) -> int:
        """IOVA of page 0."""
        return _lib().iovaq_arena_base(self._h())

    def link(self, idx: int, buf: Buffer, prot: int = Prot.RW, offset: int = 0,
             length: Optional[int] = None) -> int:
        """Map ``buf`` at pages ``idx...``; returns its IOVA."""
        pin = _Pinned(buf, offset, length)
        idx = _uint("idx", idx)
        out = c_uint64()
        _check(_lib().iovaq_arena_link(self._h(), idx, pin.addr, pin.len,
                                       _uint("prot", prot, 32), byref(out)), "iovaq_arena_link")
        self._linked[idx] = [pin]
        return out.value

    def linkv(self, idx: int, bufs: Sequence[Buffer], prot: int = Prot.RW) -> int:
        """Map the whole buffers at consecutive pages from ``idx`` as one link
        (``iovaq_arena_linkv``); returns its IOVA. :meth:`unlink` takes it back whole."""
        pins, arr = _segs(bufs)
        idx = _uint("idx", idx)
        out = c_uint64()
        _check(_lib().iovaq_arena_linkv(self._h(), idx, arr, len(pins),
                                        _uint("prot", prot, 32), byref(out)), "iovaq_arena_linkv")
        self._linked[idx] = pins
        return out.value

    def unlink(self, idx: int, length: Optional[int] = None) -> None:
        """Unmap the link at page ``idx`` (``length`` defaults to its length); reachable
        until the next :meth:`sync` is safe."""
        idx = _uint("idx", idx)
        pins = self._linked.get(idx)
        n = (sum(p.len for p in pins) if (length is None and pins is not None)
             else _uint("length", length or 0))
        _check(_lib().iovaq_arena_unlink(self._h(), idx, n), "iovaq_arena_unlink")
        if pins is not None:
            del self._linked[idx]
            self._unlinked.extend(pins)

    def sync(self, cookie: int = 0) -> None:
        """Invalidate what was unlinked since the last sync, with one command."""
        d = self._domain
        cookie = _uint("cookie", cookie)
        h = self._h()
        tok = 0
        if d.policy == Policy.SAFE_DEFERRED:
            with d._lock:
                tok = d._token(cookie, self._unlinked)
        err = _lib().iovaq_arena_sync(h, tok)
        if err < 0:
            with d._lock:
                d._pending.pop(tok, None)
        _check(err, "iovaq_arena_sync")
        self._unlinked = []

    def _destroy(self, ptr: int) -> None:
        _lib().iovaq_arena_release(ptr)
        # Released arenas are synced by the library; safe-deferred buffers are kept by the
        # domain until it is closed (the release takes no cookie).
        d = self._domain
        if d.policy == Policy.SAFE_DEFERRED and (self._linked or self._unlinked):
            with d._lock:
                d._retired.extend([p for pins in self._linked.values() for p in pins] +
                                  self._unlinked)
        self._linked.clear()
        self._unlinked = []


def version() -> str:
    """The loaded library's version string (``iovaq_version()``)."""
    return _lib().iovaq_version().decode()


def version_number() -> int:
    """major << 16 | minor << 8 | patch of the loaded library."""
    return _lib().iovaq_version_number()


def strerror(err: int) -> str:
    """The library's message for an errno (either sign)."""
    if isinstance(err, bool) or not isinstance(err, int):
        raise TypeError("err must be an int")
    if not -(1 << 31) <= err < (1 << 31):
        raise OverflowError("err out of range")
    return _lib().iovaq_strerror(err).decode()


def default_alloc_hooks() -> Tuple[int, int, Optional[int]]:
    """Addresses of the library's default metadata hooks: ``(alloc, free, ctx)``.

    The bindings always use the default hooks (Python callbacks would run on library
    threads); this is for introspection and tests."""
    p = _lib().iovaq_default_alloc_hooks()
    h = p.contents
    return (ctypes.cast(h.alloc, c_void_p).value, ctypes.cast(h.free, c_void_p).value, h.ctx)
