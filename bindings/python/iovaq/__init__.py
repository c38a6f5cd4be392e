# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Python bindings of libiovaq (IOVA allocation and IOTLB-invalidation batching).

Built on the standard library's ctypes only. The shared library is loaded on first use:
``IOVAQ_LIBRARY`` (a path), else the installed ``iovaq.pc`` (pkg-config), else the dynamic
loader's search for ``libiovaq.so.0``; or call :func:`load` with a path first.

    import iovaq
    with iovaq.Backend.open_sim() as be, iovaq.Domain(be, "safe-deferred") as dom:
        buf = iovaq.dma_buffer(4096)
        iova = dom.map(buf)
        be.sim.dma_write(iova, b"hello")      # the simulated device writes host memory
        dom.unmap(iova, cookie=7)
        dom.sync()                            # returns once 7 is safe; poll() delivers it

See docs/bindings.md and the docstrings of :mod:`iovaq._api` for ownership, threads and
completions.
"""

from ._api import (LIMIT_NONE, Arena, Backend, Cache, Domain, Flusher, InvalKind, Policy, Prot,
                   RingLayout, Sim, SimOp, Space, default_alloc_hooks, dma_buffer,
                   sim_cost_defaults, strerror, version, version_number)
from ._errors import (BusyError, ClosedError, DeviceFaultError, ExistsError, InconsistentError,
                      InvalidArgumentError, IovaqError, NoDeviceError, NoSpaceError, NotFoundError,
                      NotSupportedError, OutOfMemoryError, TooBigError, TryAgainError,
                      error_class)
from ._ffi import IOVAQ_X86_MSI_LAST, IOVAQ_X86_MSI_START, find_library, load

__all__ = [
    "LIMIT_NONE", "IOVAQ_X86_MSI_START", "IOVAQ_X86_MSI_LAST",
    "Arena", "Backend", "Cache", "Domain", "Sim", "Space",
    "Flusher", "InvalKind", "Policy", "Prot", "RingLayout", "SimOp",
    "default_alloc_hooks", "dma_buffer", "find_library", "load", "sim_cost_defaults",
    "strerror", "version", "version_number",
    "IovaqError", "BusyError", "ClosedError", "DeviceFaultError", "ExistsError",
    "InconsistentError", "InvalidArgumentError", "NoDeviceError", "NoSpaceError", "NotFoundError",
    "NotSupportedError", "OutOfMemoryError", "TooBigError", "TryAgainError", "error_class",
]
