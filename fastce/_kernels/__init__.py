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


# Vector width. LLVM tunes Intel cores with AVX-512 (Skylake-SP .. Sapphire Rapids) to prefer
# 256-bit vectors, so their loops use ymm registers; AMD Zen 4 gets zmm. fastce's kernels are
# long vectorised polynomial loops (exp/log) that run 1.5-1.7x faster with zmm on such an Intel
# core (measured: docs/performance.md), so their functions carry LLVM's per-function
# "prefer-vector-width"="512" attribute. It only widens what LLVM already vectorises: the code
# has no reassociation or contraction, so every value is the same bits at any width. A CPU
# without AVX-512 ignores it. FASTCE_PREFER_VECTOR_WIDTH=256 (or any width LLVM accepts) sets
# another preference; the setting is part of the cache stamp below.
PREFER_VECTOR_WIDTH = os.environ.get("FASTCE_PREFER_VECTOR_WIDTH", "512").strip() or "512"
_KERNEL_NAME_MARK = "6fastce8_kernels"  # "fastce._kernels" as Numba's name mangling writes it


def _install_vector_width() -> None:
    try:
        from numba.core import codegen
    except ImportError:  # pragma: no cover - Numba is a hard dependency
        return
    library = getattr(codegen, "CPUCodeLibrary", None)
    original = getattr(library, "add_ir_module", None)
    if original is None or getattr(original, "_fastce", False):
        return
    attribute = f'"prefer-vector-width"="{PREFER_VECTOR_WIDTH}"'

    def add_ir_module(self: Any, ir_module: Any) -> Any:
        try:
            defined = [f for f in ir_module.functions if not f.is_declaration]
            if any(_KERNEL_NAME_MARK in f.name for f in defined):
                for f in defined:
                    # llvmlite only accepts the attributes it knows by name; a string
                    # attribute is written verbatim into the function's definition line.
                    set.add(f.attributes, attribute)
        except Exception:  # pragma: no cover - an unknown llvmlite layout: leave the IR alone
            pass
        return original(self, ir_module)

    add_ir_module._fastce = True  # type: ignore[attr-defined]
    library.add_ir_module = add_ir_module


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
    digest = _sources_digest() + "-vw" + PREFER_VECTOR_WIDTH

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
_install_vector_width()
