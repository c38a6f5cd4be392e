# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Low-level ctypes declarations of libiovaq's C ABI (include/iovaq/*.h).

Everything here mirrors the C headers one to one: constants, ``ctypes.Structure`` classes with
the C field names, and one prototype per exported function in :data:`PROTOTYPES`. The layout
test (tests/test_layout.py) compares all of it with what a C compiler sees, and the ABI test
(bindings/abi/check_abi.py) checks that every exported symbol has a prototype here.

The library is found, in this order, by :func:`load`'s ``path`` argument, the environment
variable ``IOVAQ_LIBRARY`` (a file path), the installed ``iovaq.pc`` (``pkg-config
--variable=libdir iovaq``, honouring ``PKG_CONFIG_PATH``) and finally the dynamic loader's
own search for ``libiovaq.so.0``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from ctypes import (POINTER, c_char_p, c_int, c_size_t, c_uint, c_uint8, c_uint32,
                    c_int64, c_uint64, c_void_p)
from typing import Dict, Optional, Tuple

SONAME_MAJOR = 0

# --- constants (common.h, version.h) -------------------------------------------------------
IOVAQ_X86_MSI_START = 0xFEE00000
IOVAQ_X86_MSI_LAST = 0xFEEFFFFF
IOVAQ_LIMIT_NONE = (1 << 64) - 1
IOVAQ_VERSION_MAJOR = 0
IOVAQ_VERSION_MINOR = 1
IOVAQ_VERSION_PATCH = 0
IOVAQ_VERSION_NUMBER = (IOVAQ_VERSION_MAJOR << 16) | (IOVAQ_VERSION_MINOR << 8) | IOVAQ_VERSION_PATCH
# space.h
IOVAQ_SPACE_MAX_APERTURES = 64
IOVAQ_SPACE_MAX_RESERVED = 256
IOVAQ_DEFAULT_GRANULE = 4096
# cache.h, stats.h
IOVAQ_CACHE_MAX_CLASSES = 21
IOVAQ_CACHE_DEFAULT_MAX_GRANULES = 512
IOVAQ_CACHE_DEFAULT_FRONT_CAP = 32
IOVAQ_CACHE_MAX_FRONT_CAP = 256
IOVAQ_CACHE_NO_FRONT = 1 << 0
IOVAQ_CACHE_CHECKED = 1 << 1
IOVAQ_CACHE_BYPASS = 1 << 2
IOVAQ_STATS_VERSION = 1
# backend.h
IOVAQ_BACKEND_MAX_APERTURES = 16
IOVAQ_PROT_READ = 1 << 0
IOVAQ_PROT_WRITE = 1 << 1
IOVAQ_INVAL_PAGES = 0
IOVAQ_INVAL_RANGE = 1
IOVAQ_INVAL_DOMAIN = 2
IOVAQ_INVAL_GLOBAL = 3
IOVAQ_INVAL_NR_KINDS = 4
IOVAQ_INVAL_LEAF = 1 << 0
IOVAQ_CAP_UNMAP_INVALIDATES = 1 << 0
IOVAQ_CAP_INVAL_PER_MAPPING = 1 << 1
IOVAQ_CAP_CACHING_MODE = 1 << 2
IOVAQ_CAP_FAULTS = 1 << 3
IOVAQ_FAULT_NOT_MAPPED = 1
IOVAQ_FAULT_PERM = 2
IOVAQ_FAULT_STALE_TABLE = 3
IOVAQ_FAULT_BAD_LEAF_INVAL = 4
IOVAQ_UNMAP_FREED_TABLES = 1
IOVAQ_VFIO_TYPE1_ADOPT = 1 << 0
IOVAQ_KSHIM_OPTS_ADOPT = 1 << 0
# sim.h
IOVAQ_SIM_NESTED = 1 << 0
IOVAQ_SIM_CACHING_MODE = 1 << 1
IOVAQ_SIM_LARGE_PAGES = 1 << 2
IOVAQ_SIM_DEFAULT_IOTLB_SETS = 64
IOVAQ_SIM_DEFAULT_IOTLB_WAYS = 8
IOVAQ_SIM_DEFAULT_PSC_ENTRIES = 16
IOVAQ_SIM_DEFAULT_MAX_AM = 18
IOVAQ_SIM_MAX_PSC_ENTRIES = 1024
IOVAQ_SIM_OP_MAP = 0
IOVAQ_SIM_OP_UNMAP = 1
IOVAQ_SIM_OP_FLUSH = 2
IOVAQ_SIM_OP_NR = 3
# domain.h
IOVAQ_POLICY_STRICT = 0
IOVAQ_POLICY_DEFERRED = 1
IOVAQ_POLICY_SAFE_DEFERRED = 2
IOVAQ_POLICY_PASSTHROUGH = 3
IOVAQ_POLICY_NR = 4
IOVAQ_FLUSHER_INLINE = 0
IOVAQ_FLUSHER_THREAD = 1
IOVAQ_RING_AUTO = 0
IOVAQ_RING_SHARED = 1
IOVAQ_RING_PERCPU = 2
IOVAQ_DOMAIN_TIMING = 1 << 0
IOVAQ_DOMAIN_PERCPU_MAX_FLUSH_NS = 10000
IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS = 10000000
IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE = 4096
IOVAQ_DOMAIN_DEFAULT_DOMAIN_THRESHOLD = 512

iova_t = c_uint64


class _Opts(ctypes.Structure):
    """A size-prefixed struct: ``new()`` sets ``sz`` as IOVAQ_OPTS() does."""

    @classmethod
    def new(cls, **fields):
        obj = cls(**fields)
        obj.sz = ctypes.sizeof(cls)
        return obj


# --- structs -------------------------------------------------------------------------------
class iovaq_range(ctypes.Structure):
    _fields_ = [("start", iova_t), ("last", iova_t)]


_alloc_fn = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_size_t, c_size_t)
_free_fn = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)


class iovaq_alloc_hooks(ctypes.Structure):
    _fields_ = [("alloc", _alloc_fn), ("free", _free_fn), ("ctx", c_void_p)]


class iovaq_space_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("granule", c_uint64), ("apertures", POINTER(iovaq_range)),
                ("n_apertures", c_size_t), ("reserved", POINTER(iovaq_range)),
                ("n_reserved", c_size_t), ("hooks", POINTER(iovaq_alloc_hooks))]


class iovaq_cache_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("max_cached_granules", c_uint64), ("depot_max", c_uint32),
                ("front_cap", c_uint32), ("flags", c_uint32), ("n_cpus", c_uint32)]


class iovaq_class_stats(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in
                ("granules", "hits", "misses", "frees", "cached", "depot_mags", "trimmed")]


class iovaq_stats(_Opts):
    _fields_ = ([("sz", c_size_t), ("version", c_uint32), ("n_classes", c_uint32)] +
                [(n, c_uint64) for n in
                 ("granule", "total_granules", "reserved_granules", "free_granules",
                  "allocated_granules", "cached_granules", "space_allocs", "space_frees",
                  "space_alloc_fail", "tree_nodes", "cache_allocs", "cache_frees",
                  "cache_alloc_fail", "cache_retries", "metadata_bytes")] +
                [("classes", iovaq_class_stats * IOVAQ_CACHE_MAX_CLASSES)])


class iovaq_inval(ctypes.Structure):
    _fields_ = [("kind", c_uint8), ("flags", c_uint8), ("am", c_uint8),
                ("reserved", c_uint8 * 5), ("iova", iova_t), ("last", iova_t)]


class iovaq_seg(ctypes.Structure):
    _fields_ = [("host", c_void_p), ("len", c_size_t)]


class iovaq_backend_caps(_Opts):
    _fields_ = ([("sz", c_size_t), ("flags", c_uint32), ("n_apertures", c_uint32),
                 ("page_sizes", c_uint64), ("granule", c_uint64),
                 ("apertures", iovaq_range * IOVAQ_BACKEND_MAX_APERTURES),
                 ("inval_kinds", c_uint32), ("max_am", c_uint8), ("leaf_hint", c_uint8),
                 ("reserved", c_uint8 * 2)] +
                [(n, c_uint64) for n in
                 ("cost_flush_ns", "cost_cmd_ns", "cost_domain_ns", "cost_map_ns",
                  "cost_unmap_ns", "cost_trap_ns", "cost_domain_page_ns",
                  "cost_inval_page_ns")])


class iovaq_fault(ctypes.Structure):
    _fields_ = [("iova", iova_t), ("reason", c_uint32), ("write", c_uint32),
                ("t_ns", c_uint64)]


class iovaq_backend_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("name", c_char_p), ("backend_opts", c_void_p),
                ("hooks", POINTER(iovaq_alloc_hooks))]


class iovaq_iommufd_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("device", c_char_p), ("iommufd", c_int),
                ("ioas_id", c_uint32), ("flags", c_uint32)]


class iovaq_vfio_type1_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("device", c_char_p), ("container", c_int),
                ("flags", c_uint32)]


class iovaq_kshim_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("device", c_char_p), ("fd", c_int), ("flags", c_uint32)]


class iovaq_sim_cost(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in
                ("mem_ref_ns", "iotlb_hit_ns", "inval_cmd_ns", "inval_wait_ns", "trap_ns",
                 "rewalk_ns", "map_ns", "unmap_ns", "table_ns")]


class iovaq_sim_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("seed", c_uint64), ("flags", c_uint32),
                ("iotlb_sets", c_uint32), ("iotlb_ways", c_uint32),
                ("psc_entries", c_uint32 * 3), ("max_am", c_uint32),
                ("aperture_bits", c_uint32), ("cost", POINTER(iovaq_sim_cost))]


class iovaq_sim_access(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in
                ("t_ns", "pages", "stale_pages", "iotlb_misses", "walk_refs", "modeled_ns")]


class iovaq_sim_counters(_Opts):
    _fields_ = ([("sz", c_size_t), ("dma_calls", c_uint64), ("dma_pages", c_uint64),
                 ("iotlb_hits", c_uint64), ("iotlb_misses", c_uint64),
                 ("psc_hits", c_uint64 * 3), ("psc_misses", c_uint64 * 3)] +
                [(n, c_uint64) for n in
                 ("walk_refs", "faults", "stale_hits", "bad_leaf_invals")] +
                [("inval_cmds", c_uint64 * IOVAQ_INVAL_NR_KINDS)] +
                [(n, c_uint64) for n in
                 ("inval_leaf", "flushes", "maps", "unmaps", "mapped_pages", "table_pages",
                  "table_pages_freed", "traps", "device_ns", "cpu_map_ns", "cpu_unmap_ns",
                  "cpu_flush_ns", "cpu_flush_submit_ns", "cpu_flush_wait_ns")])


complete_fn = ctypes.CFUNCTYPE(None, c_void_p, c_uint64)


class iovaq_domain_opts(_Opts):
    _fields_ = [("sz", c_size_t), ("backend", c_void_p), ("policy", c_uint32),
                ("flusher", c_uint32), ("ring_entries", c_uint32), ("ring_layout", c_uint32),
                ("max_window_ns", c_uint64), ("max_reachable_pages", c_uint64),
                ("domain_threshold", c_uint64), ("reserved", POINTER(iovaq_range)),
                ("n_reserved", c_size_t), ("cache", POINTER(iovaq_cache_opts)),
                ("complete", complete_fn), ("complete_arg", c_void_p),
                ("hooks", POINTER(iovaq_alloc_hooks)), ("teardown_ns", c_uint64),
                ("teardown_entries", c_uint64), ("flags", c_uint64),
                ("teardown_bytes", c_uint64)]


class iovaq_window_report(_Opts):
    _fields_ = [("sz", c_size_t)] + [(n, c_uint64) for n in
                ("releases", "released_pages", "window_p50_ns", "window_p99_ns",
                 "window_p999_ns", "window_max_ns", "exposure_page_ns", "reachable_pages",
                 "reachable_pages_max", "unsafe_reuse", "violations", "max_window_ns",
                 "max_reachable_pages")]


class iovaq_window_bucket(ctypes.Structure):
    _fields_ = [("upper_ns", c_uint64), ("count", c_uint64)]


class iovaq_domain_stats(_Opts):
    _fields_ = ([("sz", c_size_t)] +
                [(n, c_uint64) for n in
                 ("maps", "unmaps", "map_errors", "unmap_errors", "mapped_pages",
                  "queued_pages", "queued_entries_max", "flushes", "flush_errors")] +
                [("last_flush_error", c_int64)] +
                [(n, c_uint64) for n in
                 ("inval_cmds", "inval_domain_cmds", "inval_leaf_cmds", "invalidated_pages",
                  "flush_full", "flush_age", "flush_reachable", "flush_sync", "flush_nospc",
                  "flush_strict", "completions", "teardown_hits", "teardown_evictions",
                  "rings", "time_alloc_ns", "time_map_ns", "time_unmap_ns", "time_plan_ns",
                  "time_flush_ns")])


STRUCTS = {cls.__name__: cls for cls in (
    iovaq_range, iovaq_alloc_hooks, iovaq_space_opts, iovaq_cache_opts, iovaq_class_stats,
    iovaq_stats, iovaq_inval, iovaq_seg, iovaq_backend_caps, iovaq_fault, iovaq_backend_opts,
    iovaq_iommufd_opts, iovaq_vfio_type1_opts, iovaq_kshim_opts, iovaq_sim_cost, iovaq_sim_opts, iovaq_sim_access, iovaq_sim_counters, iovaq_domain_opts,
    iovaq_window_report, iovaq_window_bucket, iovaq_domain_stats)}

space_walk_fn = ctypes.CFUNCTYPE(c_int, c_void_p, iova_t, c_uint64)

# --- functions: name -> (restype, argtypes) -------------------------------------------------
# Handles are opaque pointers (c_void_p); the object classes in iovaq/_api.py own them.
_P = c_void_p
PROTOTYPES: Dict[str, Tuple[object, tuple]] = {
    # common.h, version.h
    "iovaq_default_alloc_hooks": (POINTER(iovaq_alloc_hooks), ()),
    "iovaq_strerror": (c_char_p, (c_int,)),
    "iovaq_version": (c_char_p, ()),
    "iovaq_version_number": (c_uint, ()),
    # space.h
    "iovaq_space_create": (c_int, (POINTER(iovaq_space_opts), POINTER(_P))),
    "iovaq_space_destroy": (None, (_P,)),
    "iovaq_space_alloc": (c_int, (_P, c_uint64, iova_t, POINTER(iova_t))),
    "iovaq_space_alloc_fixed": (c_int, (_P, iova_t, c_uint64)),
    "iovaq_space_free": (c_int, (_P, iova_t, c_uint64)),
    "iovaq_space_granule": (c_uint64, (_P,)),
    "iovaq_space_stats": (c_int, (_P, POINTER(iovaq_stats))),
    "iovaq_space_check": (c_int, (_P,)),
    "iovaq_space_walk": (c_int, (_P, space_walk_fn, c_void_p)),
    # cache.h
    "iovaq_cache_create": (c_int, (_P, POINTER(iovaq_cache_opts), POINTER(_P))),
    "iovaq_cache_destroy": (None, (_P,)),
    "iovaq_cache_alloc": (c_int, (_P, c_uint64, iova_t, POINTER(iova_t))),
    "iovaq_cache_free": (c_int, (_P, iova_t, c_uint64)),
    "iovaq_cache_drain": (None, (_P,)),
    "iovaq_cache_space": (_P, (_P,)),
    "iovaq_cache_stats": (c_int, (_P, POINTER(iovaq_stats))),
    "iovaq_cache_check": (c_int, (_P,)),
    # stats.h
    "iovaq_stats_json": (c_int, (POINTER(iovaq_stats), c_void_p, c_size_t)),
    # backend.h
    "iovaq_backend_open": (c_int, (POINTER(iovaq_backend_opts), POINTER(_P))),
    "iovaq_backend_close": (None, (_P,)),
    "iovaq_backend_why": (c_char_p, ()),
    "iovaq_backend_name": (c_char_p, (_P,)),
    "iovaq_backend_get_caps": (c_int, (_P, POINTER(iovaq_backend_caps))),
    "iovaq_backend_map": (c_int, (_P, iova_t, c_void_p, c_size_t, c_uint)),
    "iovaq_backend_mapv": (c_int, (_P, iova_t, POINTER(iovaq_seg), c_size_t, c_uint)),
    "iovaq_backend_unmap": (c_int, (_P, iova_t, c_size_t)),
    "iovaq_backend_flush": (c_int, (_P, POINTER(iovaq_inval), c_size_t)),
    "iovaq_backend_faults": (c_int, (_P, POINTER(iovaq_fault), c_size_t)),
    "iovaq_backend_device_fd": (c_int, (_P,)),
    "iovaq_backend_pinned_bytes": (c_uint64, (_P,)),
    # sim.h
    "iovaq_sim_cost_defaults": (None, (POINTER(iovaq_sim_cost),)),
    "iovaq_sim_of": (_P, (_P,)),
    "iovaq_sim_dma": (c_int, (_P, iova_t, c_void_p, c_size_t, c_int,
                              POINTER(iovaq_sim_access))),
    "iovaq_sim_get_counters": (c_int, (_P, POINTER(iovaq_sim_counters))),
    "iovaq_sim_reset_counters": (None, (_P,)),
    "iovaq_sim_fail_nth": (c_int, (_P, c_int, c_uint64, c_int)),
    # domain.h
    "iovaq_domain_create": (c_int, (POINTER(iovaq_domain_opts), POINTER(_P))),
    "iovaq_domain_destroy": (None, (_P,)),
    "iovaq_domain_map": (c_int, (_P, c_void_p, c_size_t, c_uint, iova_t, POINTER(iova_t))),
    "iovaq_domain_unmap": (c_int, (_P, iova_t, c_size_t, c_uint64)),
    "iovaq_domain_sync": (c_int, (_P,)),
    "iovaq_domain_poll": (c_int, (_P, POINTER(c_uint64), c_size_t)),
    "iovaq_domain_get_stats": (c_int, (_P, POINTER(iovaq_domain_stats))),
    "iovaq_domain_window": (c_int, (_P, POINTER(iovaq_window_report))),
    "iovaq_domain_window_hist": (c_int, (_P, POINTER(iovaq_window_bucket), c_size_t)),
    "iovaq_domain_json": (c_int, (_P, c_void_p, c_size_t)),
    "iovaq_domain_cache": (_P, (_P,)),
    "iovaq_domain_check": (c_int, (_P,)),
    "iovaq_arena_reserve": (c_int, (_P, c_uint64, iova_t, POINTER(_P))),
    "iovaq_arena_base": (iova_t, (_P,)),
    "iovaq_arena_link": (c_int, (_P, c_uint64, c_void_p, c_size_t, c_uint, POINTER(iova_t))),
    "iovaq_arena_linkv": (c_int, (_P, c_uint64, POINTER(iovaq_seg), c_size_t, c_uint,
                                  POINTER(iova_t))),
    "iovaq_arena_unlink": (c_int, (_P, c_uint64, c_size_t)),
    "iovaq_arena_sync": (c_int, (_P, c_uint64)),
    "iovaq_arena_release": (None, (_P,)),
}


class Library:
    """The loaded shared library with every prototype of :data:`PROTOTYPES` set."""

    def __init__(self, path: str):
        self.path = path
        # CDLL releases the GIL around every call: a call that blocks (a flush, the flusher
        # thread's join in destroy) never stops other Python threads.
        self.dll = ctypes.CDLL(path)
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(self.dll, name)  # AttributeError: the library lacks the symbol
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, fn)


def _pkg_config_libdir() -> Optional[str]:
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--variable=libdir", "iovaq"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = out.stdout.strip()
    return libdir if out.returncode == 0 and libdir else None


def find_library() -> str:
    """Where :func:`load` looks when given no path (see the module docstring)."""
    env = os.environ.get("IOVAQ_LIBRARY")
    if env:
        return env
    libdir = _pkg_config_libdir()
    if libdir:
        for name in ("libiovaq.so.%d" % SONAME_MAJOR, "libiovaq.so"):
            cand = os.path.join(libdir, name)
            if os.path.exists(cand):
                return cand
    return "libiovaq.so.%d" % SONAME_MAJOR


_lock = threading.Lock()
_lib: Optional[Library] = None


def load(path: Optional[str] = None) -> Library:
    """Load libiovaq (once per process) and return it.

    ``path`` names the shared library explicitly; without it, :func:`find_library` decides.
    Later calls return the library loaded first; asking for a different ``path`` then raises
    ``RuntimeError``, since objects of two copies of the library must never meet.
    """
    global _lib
    with _lock:
        if _lib is not None:
            if path is not None and os.path.realpath(path) != os.path.realpath(_lib.path):
                raise RuntimeError("libiovaq already loaded from %s" % _lib.path)
            return _lib
        where = path or find_library()
        try:
            lib = Library(where)
        except OSError as e:
            raise ImportError("cannot load libiovaq (%s): %s; set IOVAQ_LIBRARY to its path "
                              "or install it where pkg-config finds iovaq.pc" % (where, e)) from e
        if lib.iovaq_version_number() >> 16 != IOVAQ_VERSION_MAJOR:
            raise ImportError("%s is libiovaq %s, these bindings need major version %d"
                              % (where, lib.iovaq_version().decode(), IOVAQ_VERSION_MAJOR))
        _lib = lib
        return lib
