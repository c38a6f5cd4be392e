# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Exceptions: every negative errno of libiovaq becomes an :class:`IovaqError` subclass."""

from __future__ import annotations

import errno as _errno
from typing import Dict, Optional, Type


class IovaqError(OSError):
    """A libiovaq call returned a negative errno.

    ``errno`` is the positive errno, ``strerror`` the library's own message
    (``iovaq_strerror()``) and ``function`` the C function that failed.
    """

    function: Optional[str] = None

    def __str__(self) -> str:
        where = " (%s)" % self.function if self.function else ""
        return "[Errno %s] %s%s" % (self.errno, self.strerror, where)


class InvalidArgumentError(IovaqError, ValueError):
    """-EINVAL: the library rejected an argument."""


class NoSpaceError(IovaqError):
    """-ENOSPC: no free IOVA range fits."""


class OutOfMemoryError(IovaqError):
    """-ENOMEM: the library could not allocate metadata."""


class TooBigError(IovaqError):
    """-E2BIG: an options struct has bytes this library does not know."""


class BusyError(IovaqError):
    """-EBUSY: the range is allocated, reserved or not yet safe."""


class ExistsError(IovaqError, FileExistsError):
    """-EEXIST: already mapped."""


class NotFoundError(IovaqError, FileNotFoundError):
    """-ENOENT: no such backend, or nothing mapped there."""


class NotSupportedError(IovaqError):
    """-EOPNOTSUPP: the backend or this build lacks the feature."""


class InconsistentError(IovaqError):
    """-EUCLEAN: an invariant check failed."""


class DeviceFaultError(IovaqError):
    """-EFAULT: a simulated device access faulted; ``access`` holds the partial outcome."""

    access: Optional[dict] = None


class NoDeviceError(IovaqError):
    """-ENODEV: the backend has no device (sim, or an adopted iommufd/container)."""


class TryAgainError(IovaqError, BlockingIOError):
    """-EAGAIN."""


class ClosedError(ValueError):
    """The object was closed (or its owner was): use after close."""


_BY_ERRNO: Dict[int, Type[IovaqError]] = {
    _errno.EINVAL: InvalidArgumentError,
    _errno.ENOSPC: NoSpaceError,
    _errno.ENOMEM: OutOfMemoryError,
    _errno.E2BIG: TooBigError,
    _errno.EBUSY: BusyError,
    _errno.EEXIST: ExistsError,
    _errno.ENOENT: NotFoundError,
    _errno.EOPNOTSUPP: NotSupportedError,
    _errno.EUCLEAN: InconsistentError,
    _errno.EFAULT: DeviceFaultError,
    _errno.EAGAIN: TryAgainError,
    _errno.ENODEV: NoDeviceError,
}


def error_class(err: int) -> Type[IovaqError]:
    """The exception class for errno ``err`` (either sign)."""
    return _BY_ERRNO.get(abs(err), IovaqError)


def make_error(err: int, message: str, function: Optional[str] = None) -> IovaqError:
    """Build the exception for a negative errno ``err``."""
    exc = error_class(err)(abs(err), message)
    exc.function = function
    return exc
