"""The checker's floating-point environment around its own arithmetic.

An implementation under test runs in the sweep's worker process, and it, or a library it loads
(one built with ``-ffast-math`` sets flush-to-zero and denormals-are-zero when it is loaded),
may leave the processor flushing subnormals.  The checker's binary32 arithmetic -- numpy's
float32 arrays, the compiled exact level's conversions -- would then flush too, and a flushing
implementation would match it.  So the checker draws and judges in the environment this module
found when it was imported (the process's own, before any implementation was loaded: round to
nearest, subnormals kept), and gives the implementation its own back afterwards.

The C library's ``fegetenv``/``fesetenv`` (through ctypes) save and set it; where the C library
cannot be found, nothing is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from typing import Iterator

__all__ = ["checker_environment", "flushes_subnormals"]

#: Bytes reserved for a ``fenv_t`` (32 on x86-64 glibc, 8 on aarch64; more than any).
_ENV_BYTES = 512


def _libm():
    for name in (ctypes.util.find_library("m"), ctypes.util.find_library("c"), None):
        try:
            lib = ctypes.CDLL(name)
            lib.fegetenv.argtypes = lib.fesetenv.argtypes = [ctypes.c_void_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIBM = _libm()
_DEFAULT = ctypes.create_string_buffer(_ENV_BYTES)
if _LIBM is not None and _LIBM.fegetenv(_DEFAULT) != 0:
    _LIBM = None


@contextlib.contextmanager
def checker_environment() -> Iterator[None]:
    """Run the block in the floating-point environment found at import; restore the caller's
    (the implementation's) afterwards."""
    if _LIBM is None:
        yield
        return
    saved = ctypes.create_string_buffer(_ENV_BYTES)
    _LIBM.fegetenv(saved)
    _LIBM.fesetenv(_DEFAULT)
    try:
        yield
    finally:
        _LIBM.fesetenv(saved)


def flushes_subnormals() -> bool:
    """Whether binary32 arithmetic here flushes a subnormal operand or result to zero."""
    import numpy as np

    tiny = np.array([2.0 ** -130], dtype=np.float32)
    return float((tiny * np.float32(0.5))[0]) != 2.0 ** -131
