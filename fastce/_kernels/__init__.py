"""Numba kernels (private). No validation here: see fastce/_validate.py.

Numba's on-disk cache decides whether a cached kernel is fresh from the source of the file that
defines it, but kernels inline helpers from other files here (``vmath``, ``exactsum``,
``_common``): an edit to a helper would leave every caller's cached machine code stale. So the
kernels of this package are cached under a stamp that covers *all* of its source files: any
change to any of them recompiles every kernel once. Only files in this directory are affected;
Numba's behaviour for other code is unchanged.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            with open(os.path.join(_HERE, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def _install_package_stamp() -> None:
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - Numba is a hard dependency
        return
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "_CacheLocator", None)
    if impl is None or base is None or not hasattr(impl, "_locator_classes"):
        return  # an unknown Numba layout: keep its default per-file stamps
    if any(getattr(cls, "_fastce", False) for cls in impl._locator_classes):
        return
    others = list(impl._locator_classes)
    digest = _sources_digest()

    class PackageStampLocator(base):  # type: ignore[misc, valid-type]
        """Numba's own locator for the file, with the package-wide source stamp."""

        _fastce = True

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def ensure_cache_path(self) -> None:
            self._inner.ensure_cache_path()

        def get_cache_path(self) -> str:
            return self._inner.get_cache_path()

        def get_source_stamp(self) -> Any:
            return (self._inner.get_source_stamp(), digest)

        def get_disambiguator(self) -> str:
            return self._inner.get_disambiguator()

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None
            for other in others:
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
            return None

    impl._locator_classes = [PackageStampLocator, *others]


_install_package_stamp()


_SERIAL: dict[int, Any] = {}


def serial(kernel: Any) -> Any:
    """``kernel`` (a ``parallel=True`` dispatcher) compiled without ``parallel``.

    The same Python function, so the same per-sample arithmetic and the same bits: ``prange``
    runs as ``range``. Used when a call has a single chunk of work, where starting the thread
    pool (tens of microseconds, more on a busy machine) would cost more than the work. The twin
    gets its own qualified name, hence its own entries in the on-disk cache (Numba keys cache
    files on the qualified name; its index does not record the ``parallel`` flag).
    """
    twin = _SERIAL.get(id(kernel))
    if twin is not None:
        return twin
    import types

    from numba import njit

    f = kernel.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__)
    g.__qualname__ = f.__qualname__ + "_serial"
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
    twin = njit(cache=True, **options)(g)
    _SERIAL[id(kernel)] = twin
    return twin
