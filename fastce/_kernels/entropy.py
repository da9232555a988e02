"""Entropy H(p) of rows of probabilities, or of the softmax of rows of logits.

The row kernel, and for a few long rows the tile and fold kernels (``_launch.Split``); the
partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._common import chunk_bounds, emit, weight_at
from ._math import (
    block_sum,
    is_float32,
    keep,
    log,
    log1p,
    unowned,
)
from .logsumexp import (
    COL_BLOCK,
    block_bounds,
    buffer_len,
    lse_block,
    lse_merge,
    n_blocks,
)
from .partials import (
    check_block,
    get,
    put,
    shift,
    sum_merge,
)


@njit(cache=True, error_model="numpy")
def entropy_block(row, c0, c1, from_logits, buf, buf64, wbuf):
    p = row[c0:c1]
    n = c1 - c0
    f32 = is_float32(row)
    if not from_logits:
        # The block is copied into buf padded with 1.0 to a multiple of 16 (the checks taken
        # in the same pass), so that the loop of logs runs whole vectors: at 100 classes its
        # scalar remainder of 4 logs cost a fifth of the row (measured: 2.56 ns per element
        # against 2.0 at 96 or 104). The sum still takes the n terms of the block.
        n16 = (n + 15) & ~15
        if n16 > 0:
            tail = buf[n16 - 16 : n16]
            for k in range(16):
                tail[k] = 1.0
        for k in range(n):
            buf[k] = np.float64(p[k])
        padded = buf[:n16]
        for k in range(n16):
            v = padded[k]
            buf64[k] = -(v * log(v)) if v != 0.0 else 0.0
        bad, nan = check_block(p)
        return block_sum(buf64, n, f32), 0.0, 0.0, 0.0, bad, nan
    # H(softmax(x)) = T / S + log1p(s'), S = 1 + s', T = sum_c e_c (M - x_c): a term with
    # e_c == 0 (x_c = -inf, or far below the maximum) contributes 0 rather than 0 * inf.
    m, s = lse_block(p, buf)
    if m == -np.inf or m == np.inf:
        return m, s, 0.0, 0.0, 0.0, 0.0
    for k in range(n):
        e = np.float64(buf[k])
        buf64[k] = e * (m - np.float64(p[k])) if e != 0.0 else 0.0
    return m, s, block_sum(buf64, n, f32), 0.0, 0.0, 0.0


@njit(inline="always", cache=True)
def entropy_merge(st, part, from_logits):
    if not from_logits:
        return sum_merge(st, part)
    m_acc, s_acc, t_acc = st[0], st[1], st[2]
    m, s, t = part[0], part[1], part[2]
    m_new, s_new, old, new = lse_merge(m_acc, s_acc, m, s)
    t_new = 0.0
    if old != 0.0:
        t_new += old * shift(t_acc, 1.0 + s_acc, m_new - m_acc)
    if new != 0.0:
        t_new += new * shift(t, 1.0 + s, m_new - m)
    return m_new, s_new, t_new, 0.0, 0.0, 0.0


@njit(inline="always", cache=True)
def entropy_finish(st, from_logits):
    if not from_logits:
        return (st[0] + st[1]) + st[5], st[4] == 0.0
    m, s, t = st[0], st[1], st[2]
    if m == -np.inf or m == np.inf:
        return np.nan, True  # the softmax of a row of -inf (or with +inf) is undefined
    return t / (1.0 + s) + log1p(s), True


@njit(cache=True, error_model="numpy")
def entropy_row(row, from_logits, buf, buf64, wbuf):
    """The folded partial of a whole row: its blocks in column order."""
    c = row.shape[0]
    st = entropy_block(row, 0, min(c, COL_BLOCK), from_logits, buf, buf64, wbuf)
    for b in range(1, n_blocks(c)):
        c0, c1 = block_bounds(c, b)
        st = entropy_merge(
            st, entropy_block(row, c0, c1, from_logits, buf, buf64, wbuf), from_logits
        )
    return st


@njit(nogil=True, cache=True, error_model="numpy")
def entropy_kernel(p, from_logits, ln_base, sample_weight, out, acc, counts, bad):
    n, c = p.shape
    nchunks = counts.shape[0]
    blen = buffer_len(c)
    scratch, empty = np.empty((nchunks, 2, blen)), np.empty(0)
    p, sample_weight, out, acc = unowned(p), unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc, wbuf = unowned(counts), unowned(bad), unowned(scratch), unowned(empty)
    for k in range(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        buf, buf64 = sc[k, 0], sc[k, 1]
        for i in range(lo, hi):
            if c <= COL_BLOCK:  # one block: no fold
                st = entropy_block(p[i], 0, c, from_logits, buf, buf64, wbuf)
            else:
                st = entropy_row(p[i], from_logits, buf, buf64, wbuf)
            h, ok = entropy_finish(st, from_logits)
            if not ok:
                bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, h / ln_base * sw, sw, out, acc, counts)
    keep(scratch)
    keep(empty)


@njit(nogil=True, cache=True, error_model="numpy")
def entropy_tiles(p, from_logits, ln_base, sample_weight, lo, t0, t1, part):
    """Partials of tiles [t0, t1) of the rows from ``lo`` on (tile t: row lo + t // nb, column
    block t % nb), for a few long rows whose blocks are spread over threads."""
    c = p.shape[1]
    nb = n_blocks(c)
    scratch, wbuf = np.empty((2, buffer_len(c))), np.empty(0)
    for t in range(t0, t1):
        c0, c1 = block_bounds(c, t % nb)
        put(
            part,
            t,
            entropy_block(p[lo + t // nb], c0, c1, from_logits, scratch[0], scratch[1], wbuf),
        )


@njit(nogil=True, cache=True, error_model="numpy")
def entropy_fold(p, from_logits, ln_base, sample_weight, lo, hi, part, out, acc, counts, bad):
    """Rows [lo, hi) from their tiles' partials, folded in block order as ``entropy_row``."""
    nb = n_blocks(p.shape[1])
    for r in range(hi - lo):
        st = get(part, r * nb)
        for b in range(1, nb):
            st = entropy_merge(st, get(part, r * nb + b), from_logits)
        h, ok = entropy_finish(st, from_logits)
        if not ok:
            bad[0] = 1
        sw = weight_at(sample_weight, lo + r)
        emit(lo + r, 0, h / ln_base * sw, sw, out, acc, counts)
