"""Plumbing shared by every kernel: row chunking, emitting a per-sample value, reading rows.

A kernel is a ``prange`` over ``nchunks`` contiguous chunks of rows; inside a chunk the rows are
visited serially and each row's value is computed by a serial loop over its columns, so a
per-sample value never depends on the thread count. Reductions go through an exact accumulator
(one per chunk, merged exactly afterwards), so ``"sum"``/``"mean"`` do not depend on it either.

Conventions for the arrays every kernel receives:

``out``    (n,) output of the input's dtype, or shape (0,) when only a reduction is wanted.
``acc``    (nchunks, 2, ACC_LEN) int64 exact accumulators: ``acc[k, 0]`` sums the values of
           chunk k, ``acc[k, 1]`` their weights; the last axis has length 0 for ``"none"``.
``counts`` (nchunks,) int64: samples that were not ignored, per chunk.
``bad``    (nchunks,) int64: set to 1 by a chunk that met an invalid input (a label out of
           range, a probability outside [0, 1]); the Python layer then finds and reports it.
"""

from numba import njit

from .exactsum import acc_add, acc_merge, acc_value


@njit(inline="always", cache=True)
def chunk_bounds(n, nchunks, k):
    size = (n + nchunks - 1) // nchunks
    lo = k * size
    hi = min(n, lo + size)
    return lo, hi


@njit(inline="always", cache=True)
def emit(i, k, value, weight, out, acc, counts):
    if out.shape[0] > 0:
        out[i] = value
    if acc.shape[2] > 0:
        acc_add(acc[k, 0], value)
        acc_add(acc[k, 1], weight)
    counts[k] += 1


@njit(inline="always", cache=True)
def weight_at(weights, i):
    """``weights[i]``, or 1.0 where no weights were given (an empty array)."""
    return weights[i] if weights.shape[0] > 0 else 1.0


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
