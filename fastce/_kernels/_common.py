"""Plumbing shared by every kernel: emitting a per-sample value, reading weights, clipping.

A kernel runs over the rows (or elements) it is given, serially: the launcher
(``fastce._launch``) cuts a call into chunks and runs each chunk as one kernel call on views of
its rows, from a pool of threads. Each row's value is computed by a serial loop over its
columns, so a per-sample value never depends on the thread count. Reductions go through an
exact accumulator (one per thread, merged exactly afterwards), so ``"sum"``/``"mean"`` do not
depend on it either.

Conventions for the arrays every kernel receives:

``out``    (n,) output of the input's dtype, or shape (0,) when only a reduction is wanted.
``acc``    (1, 2, ACC_LEN) int64 exact accumulator of the running thread: ``acc[0, 0]`` sums
           the values, ``acc[0, 1]`` their weights; the last axis has length 0 for ``"none"``.
``where``  (n,) bool mask of the samples to score, or shape (0,) for every sample: a masked-out
           sample's row is never read; its output is 0 and it counts for nothing.
``counts`` (1,) int64: samples that were not ignored (or masked out).
``bad``    (1,) int64: set to 1 by a kernel that met an invalid input (a label out of range, a
           probability outside [0, 1]); the Python layer then finds and reports it.
"""

import numpy as np
from numba import njit

from ._simd import bits_to_float
from .exactsum import acc_add, acc_merge, acc_value

# The block geometry and a partial's store and load are small functions of their own, not
# inlined by Numba: LLVM inlines them where they are called, and a kernel's compile does not
# inline and type them again (measured ~0.2 s less per kernel).

COL_BLOCK = 2048
"""Columns per block (a row longer than this is folded block by block, in column order): a
float64 buffer of this many values (16 KiB) stays in L1."""


@njit(cache=True)
def n_blocks(c):
    return max(1, (c + COL_BLOCK - 1) // COL_BLOCK)


@njit(cache=True)
def block_bounds(c, b):
    c0 = b * COL_BLOCK
    return c0, min(c, c0 + COL_BLOCK)


@njit(cache=True)
def buffer_len(c):
    """Length of a block buffer: a block's columns rounded up to a multiple of 16."""
    return (min(max(c, 1), COL_BLOCK) + 15) & ~15


@njit(cache=True)
def put(part, t, v):
    """Store the partial ``v`` of tile t in row t of ``part`` (a (tiles, 6) scratch)."""
    part[t, 0], part[t, 1], part[t, 2], part[t, 3], part[t, 4], part[t, 5] = v


@njit(cache=True)
def get(part, t):
    return part[t, 0], part[t, 1], part[t, 2], part[t, 3], part[t, 4], part[t, 5]


@njit(inline="always", cache=True)
def emit(i, value, weight, out, acc, counts):
    """Row i's value to ``out`` and its value and weight to the accumulator (as asked)."""
    if out.shape[0] > 0:
        out[i] = value
    if acc.shape[2] > 0:
        acc_add(acc[0, 0], value)
        acc_add(acc[0, 1], weight)
    counts[0] += 1


@njit(cache=True)
def emit_out_of_line(i, value, weight, out, acc, counts):
    """``emit`` as a function of its own, compiled once per process and shared by the kernels
    that call it once per long row (the fold of split rows), where a call costs nothing; each
    inlined copy costs a kernel's compile ~0.3 s. (In a kernel over short rows the call costs
    up to 25% of a row: measured at 4 classes.)"""
    emit(i, value, weight, out, acc, counts)


@njit(inline="always", cache=True)
def weight_at(weights, i):
    """``weights[i]``, or 1.0 where no weights were given (an empty array)."""
    return weights[i] if weights.shape[0] > 0 else 1.0


@njit(inline="always", cache=True)
def kept(where, i):
    """Sample i is scored: no mask was given (an empty array), or ``where[i]`` is True."""
    return where.shape[0] == 0 or where[i]


@njit(inline="always", cache=True)
def is_probability(v):
    """False for values outside [0, 1]; NaN passes (it propagates to the result instead)."""
    return v != v or (v >= 0.0 and v <= 1.0)


@njit(inline="always", cache=True)
def clip(q, eps):
    """Clip to [eps, 1 - eps], leaving NaN as NaN (``max``/``min`` would not)."""
    if q < eps:
        return eps
    if q > 1.0 - eps:
        return 1.0 - eps
    return q


@njit(cache=True)
def fold_chunks(acc):
    """Merge the per-chunk accumulators exactly; return (sum of values, sum of weights)."""
    for k in range(1, acc.shape[0]):
        acc_merge(acc[0, 0], acc[k, 0])
        acc_merge(acc[0, 1], acc[k, 1])
    return acc_value(acc[0, 0]), acc_value(acc[0, 1])


_F32_2P112 = np.float32(2.0**112)


@njit(inline="always", cache=True)
def half_value(h, bfloat16):
    """The float32 of a half-precision float's 16 bits (``uint16``), exactly: bfloat16 is
    float32's upper half; float16's exponent and mantissa moved to float32's places and scaled
    by 2**112 (its bias difference; subnormals come out normal), the all-ones exponent kept
    for inf and NaN. Integer moves and one multiply, so a row's loop vectorises."""
    bits = np.int64(h)
    if bfloat16:
        return bits_to_float(np.int32(bits << 16))
    em = (bits & 0x7FFF) << 13
    f = bits_to_float(np.int32(em)) * _F32_2P112
    if (bits & 0x7C00) == 0x7C00:
        f = bits_to_float(np.int32(em | 0x7F800000))
    return -f if bits & 0x8000 else f


@njit(nogil=True, cache=True)
def widen_rows(src, dst, bfloat16, temperature):
    """dst[:] = the half-precision values of ``src`` (their 16 bits, ``uint16``, any layout),
    divided by ``temperature`` in float64 unless it is 1, into a C-contiguous float32 (or,
    tempered, float64) ``dst``: the tile of rows a kernel reads from a float16 or bfloat16
    input, whose values are exact in float32."""
    m, c = src.shape
    if abs(src.strides[0]) < abs(src.strides[1]):  # rows adjacent: eight at a time
        for r0 in range(0, m, 8):
            for j in range(c):
                for r in range(r0, min(m, r0 + 8)):
                    v = half_value(src[r, j], bfloat16)
                    dst[r, j] = v if temperature == 1.0 else np.float64(v) / temperature
        return
    for r in range(m):
        row, out = src[r], dst[r]
        if temperature == 1.0:
            for j in range(c):
                out[j] = half_value(row[j], bfloat16)
        else:
            for j in range(c):
                out[j] = np.float64(half_value(row[j], bfloat16)) / temperature


@njit(nogil=True, cache=True)
def temper_rows(src, dst, temperature):
    """dst[:] = src / temperature, divided in float64, for a (rows, classes) ``src`` of
    logits in any layout and a C-contiguous float64 ``dst``: the tile of rows a kernel reads
    at a temperature. Rows adjacent in memory (a transposed ``src``) are read eight classes at
    a time, as ``transpose_rows`` does."""
    m, c = src.shape
    if abs(src.strides[0]) < abs(src.strides[1]):
        c8 = c - c % 8
        for j0 in range(0, c8, 8):
            for r in range(m):
                for j in range(j0, j0 + 8):
                    dst[r, j] = np.float64(src[r, j]) / temperature
        for j in range(c8, c):
            for r in range(m):
                dst[r, j] = np.float64(src[r, j]) / temperature
    else:
        for r in range(m):
            row, out = src[r], dst[r]
            for j in range(c):
                out[j] = np.float64(row[j]) / temperature


@njit(nogil=True, cache=True)
def transpose_rows(src, dst):
    """dst[:] = src for a (rows, classes) ``src`` whose rows are adjacent in memory and a
    C-contiguous ``dst``: eight classes at a time, so that both the eight columns read (runs
    along the rows) and the rows written (runs of eight) are contiguous."""
    m, c = src.shape
    c8 = c - c % 8
    for j0 in range(0, c8, 8):
        for r in range(m):
            for j in range(j0, j0 + 8):
                dst[r, j] = src[r, j]
    for j in range(c8, c):
        for r in range(m):
            dst[r, j] = src[r, j]
