"""Numba kernels (private). No validation here: see fastce/_validate.py.

Everything below Numba's public API (LLVM IR intrinsics, patches of Numba internals) lives in
``_simd``; importing this package applies its patches (``_simd.install``): among them, the disk
cache of these kernels is stamped with the source of every file here, so an edit to a helper
that kernels inline (``vmath``, ``exactsum``, ``_math``, ...) recompiles them.
"""

from ._simd import PREFER_VECTOR_WIDTH, install

__all__ = ["PREFER_VECTOR_WIDTH"]

install()
