"""Shifted log-sum-exp over rows: logsumexp, log_softmax, softmax.

For a row x with maximum m at (first) position j:

    logsumexp(x) = m + log1p(s'),   s' = sum_{c != j} exp(x_c - m)

Leaving the maximum's own term (exactly 1) out of the sum and adding it back through ``log1p``
keeps the relative accuracy of a logsumexp, or of a loss ``m - x_y + log1p(s')``, that is close
to zero. Every term of s' is at most 1, so nothing overflows.
"""

import numpy as np
from numba import njit, prange

from ._common import chunk_bounds
from ._math import exp, log1p


@njit(inline="always", cache=True)
def row_max(row):
    """Maximum of the row as float64 and the position of its first occurrence.

    A NaN in the row is not chosen as the maximum unless it comes first; either way it reaches
    the result through the sum of exponentials (``exp(nan - m)`` is NaN). An empty row gives
    (-inf, -1).
    """
    c = row.shape[0]
    if c == 0:
        return -np.inf, -1
    m = np.float64(row[0])
    j = 0
    for col in range(1, c):
        v = np.float64(row[col])
        if v > m:
            m = v
            j = col
    return m, j


@njit(inline="always", cache=True)
def sum_exp_others(row, m, j):
    """s' = sum over c != j of exp(x_c - m), in float64.

    A row whose maximum is -inf (all -inf, or empty) has s' = 0 so that its logsumexp is -inf;
    one whose maximum is +inf has s' = 0 too (logsumexp +inf, even with several +inf) unless it
    holds a NaN.
    """
    if m == -np.inf:
        return 0.0
    if m == np.inf:
        s = 0.0
        for col in range(row.shape[0]):
            v = np.float64(row[col])
            if v != v:
                s = v
        return s
    s = 0.0
    for col in range(row.shape[0]):
        if col != j:
            s += exp(np.float64(row[col]) - m)
    return s


@njit(inline="always", cache=True)
def lse_parts(row):
    """(m, j, log1p(s')) for a row: logsumexp = m + log1p(s')."""
    m, j = row_max(row)
    return m, j, log1p(sum_exp_others(row, m, j))


@njit(parallel=True, cache=True)
def logsumexp_rows(x, out):
    n = x.shape[0]
    nchunks = min(n, 64)
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            m, _, lp = lse_parts(x[i])
            out[i] = m + lp


@njit(parallel=True, cache=True)
def log_softmax_rows(x, out):
    n, c = x.shape
    nchunks = min(n, 64)
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            row = x[i]
            m, _, lp = lse_parts(row)
            for col in range(c):
                # (x - m) - log1p(s') rather than x - lse: exact for the maximum's own entry.
                out[i, col] = (np.float64(row[col]) - m) - lp


@njit(parallel=True, cache=True)
def softmax_rows(x, out):
    n, c = x.shape
    nchunks = min(n, 64)
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            row = x[i]
            m, j = row_max(row)
            # A +inf logit makes every entry of the softmax undefined (inf / inf): NaN, as in
            # SciPy and PyTorch, not a row of zeros with one NaN.
            total = 1.0 + sum_exp_others(row, m, j) if m != np.inf else np.nan
            for col in range(c):
                out[i, col] = exp(np.float64(row[col]) - m) / total
