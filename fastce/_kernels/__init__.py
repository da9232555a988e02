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
