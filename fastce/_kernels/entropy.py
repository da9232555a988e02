"""Entropy H(p) of rows of probabilities, or of the softmax of rows of logits.

A body per kind of input, and ``KERNELS``, the table ``_driver`` makes their kernels from; the
partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._driver import Body, row_kernels
from ._math import block_sum, is_float32, log, log1p
from .logsumexp import lse_block, lse_merge
from .partials import check_block, shift, sum_finish, sum_merge


@njit(cache=True, error_model="numpy")
def entropy_probs_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """-sum_c p_c log p_c over a block.

    The block is copied into buf padded with 1.0 to a multiple of 16 (the checks taken in the
    same pass), so that the loop of logs runs whole vectors: at 100 classes its scalar
    remainder of 4 logs cost a fifth of the row (measured: 2.56 ns per element against 2.0 at
    96 or 104). The sum still takes the n terms of the block."""
    row = ops[0][i]
    p = row[c0:c1]
    n = c1 - c0
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
    return block_sum(buf64, n, is_float32(row)), 0.0, 0.0, 0.0, bad, nan


@njit(cache=True, error_model="numpy")
def entropy_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """(m, s', T): H(softmax(x)) = T / S + log1p(s'), S = 1 + s', T = sum_c e_c (M - x_c); a term
    with e_c == 0 (x_c = -inf, or far below the maximum) contributes 0 rather than 0 * inf."""
    row = ops[0][i]
    x = row[c0:c1]
    m, s = lse_block(x, buf)
    if m == -np.inf or m == np.inf:
        return m, s, 0.0, 0.0, 0.0, 0.0
    for k in range(c1 - c0):
        e = np.float64(buf[k])
        buf64[k] = e * (m - np.float64(x[k])) if e != 0.0 else 0.0
    return m, s, block_sum(buf64, c1 - c0, is_float32(row)), 0.0, 0.0, 0.0


@njit(cache=True)
def entropy_logits_merge(st, part):
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
def entropy_logits_finish(st, ops, i, params):
    m, s, t = st[0], st[1], st[2]
    if m == -np.inf or m == np.inf:
        return np.nan, 1.0, True  # the softmax of a row of -inf (or with +inf) is undefined
    return t / (1.0 + s) + log1p(s), 1.0, True


KERNELS = row_kernels(
    __name__,
    operands=("p",),
    params=(),
    bodies={
        "entropy_probs": Body(entropy_probs_block, sum_merge, sum_finish),
        "entropy_logits": Body(entropy_logits_block, entropy_logits_merge, entropy_logits_finish),
    },
)
