"""Partials of a row's column blocks, shared by the row kernels (entropy, nll, pair).

Every row measure (``entropy``, ``nll``, ``pair``) has the same shape, run by ``_driver``. A row
is cut into column blocks (``COL_BLOCK`` columns, boundaries fixed by the column index); a
*block function* reduces one block to a partial (a 6-tuple of float64), a *merge* folds the
partials of a row in block order, a *finish* turns the folded partial into the loss in nats, and

    value  = loss_nats / ln_base * sample_weight       (ln_base = 1.0 for nats)
    weight = class_weight[y] * sample_weight            (what ``"mean"`` divides by)

is emitted to ``out`` and/or the exact accumulators. The launcher spreads chunks of rows over
threads; for a few very long rows it spreads the blocks of each row instead (the ``*_tiles``
kernels) and folds them afterwards in the same order (``*_fold``), so a row's value is the
same bits for every thread count.

Inside a block every sweep is a vectorised map into a small buffer followed by ``block_sum``
(eight explicit float64 lanes, compensated for long blocks of a float64 result), with no
fast-math flags; sums of probability terms are folded across blocks with compensation too
(``sum_merge``). The exps of float32 logits are taken in
float32 (16 lanes per register) for class-index cross-entropy, the hot path whose loss keeps
its relative accuracy; entropy, soft-target cross-entropy and KL, which subtract terms of
similar size, take them in float64. Zero target probabilities contribute exactly
0 (0 log 0 = 0), predicted probabilities are clipped to [eps, 1 - eps] inside their log, and a
NaN anywhere in a row's inputs makes that row's value NaN. Kernels never raise: they flag
invalid input in ``bad`` and the Python layer reports it.

Class weights enter the per-sample loss as in ``torch.nn.functional.cross_entropy``: with a
class-index target the loss is scaled by ``w[y]`` and the mean divides by ``sum w[y]``; with
soft targets ``w_c`` multiplies each class term and the mean divides by the number of samples.
An empty ``class_weight`` or ``sample_weight`` array means "no weights".
"""

import numpy as np
from numba import njit

from ._math import (
    any_nan,
    any_not_probability,
    block_sum,
    two_sum,
)
from .logsumexp import (
    lse_merge,
)

_BAD = 1.0  # a partial's "invalid input" slot holds 1.0 when the block has a bad value


@njit(inline="always", cache=True)
def smoothed(p, smoothing, n_classes):
    """Label smoothing of a target probability, as PyTorch: (1 - s) p + s / C."""
    return p if smoothing == 0.0 else (1.0 - smoothing) * p + smoothing / n_classes


@njit(inline="always", cache=True)
def shift(a, w, delta):
    """a + delta * w, where w is the mass of the terms whose reference point moves by delta;
    nothing moves when there is no mass (delta may then be infinite)."""
    return a + delta * w if w != 0.0 else a


# The merges are functions of their own, not inlined: a row folds them once per column block
# (rows longer than COL_BLOCK only), so a call costs nothing, while every kernel that inlined
# one re-typed it (Numba's inlining and typing were most of a kernel's compile time). Each is
# compiled once per process, for every kernel and dtype (partials are float64 tuples).


@njit(cache=True)
def lin_merge(st, part):
    """Fold (m, s', A, P, bad, nan) partials: A = sum_c a_c (m - x_c) is a sum of terms
    measured from the block maximum, P = sum_c a_c their weights; moving the reference from m
    to M adds (M - m) P."""
    m_acc, s_acc, a_acc, p_acc, bad_acc, nan_acc = st
    m, s, a, p, bad, nan = part
    m_new, s_new, _, _ = lse_merge(m_acc, s_acc, m, s)
    a_new = shift(a_acc, p_acc, m_new - m_acc) + shift(a, p, m_new - m)
    return m_new, s_new, a_new, p_acc + p, max(bad_acc, bad), nan_acc + nan


@njit(cache=True)
def add_merge(st, part):
    """Fold partials that are plain sums (and flags)."""
    return (
        st[0] + part[0],
        st[1] + part[1],
        st[2] + part[2],
        st[3] + part[3],
        max(st[4], part[4]),
        st[5] + part[5],
    )


@njit(cache=True)
def sum_merge(st, part):
    """Fold partials whose slot 0 is a sum of terms, compensated: slot 1 collects the rounding
    error of each fold (TwoSum), which the finish adds back. A row of 100,000 equal terms
    folds 49 equal block sums; plainly added they were 3.6 ulp off. An infinite or NaN sum
    keeps no error term (it would be NaN)."""
    total, err = two_sum(st[0], part[0])
    if not (abs(total) < np.inf):
        err = 0.0
    return (
        total,
        st[1] + part[1] + err,
        st[2] + part[2],
        st[3] + part[3],
        max(st[4], part[4]),
        st[5] + part[5],
    )


@njit(inline="always", cache=True)
def sum_finish(st, ops, i, params):
    """(value, weight 1, ok) of a folded ``sum_merge`` partial: the compensated sum, plus the
    nan slot (NaN when the row held one)."""
    return (st[0] + st[1]) + st[5], 1.0, st[4] == 0.0


@njit(inline="always", cache=True)
def check_block(seg):
    """(bad, nan) flags of a probability block as floats."""
    return (_BAD if any_not_probability(seg) else 0.0), (np.nan if any_nan(seg) else 0.0)


@njit(inline="always", cache=True)
def shifted_terms(seg, m, weights, buf64, float32_result):
    """A = sum_c a_c (m - x_c) over the block, with a_c = weights[k] (a buffer of the block's
    weights). A zero weight contributes 0 even against x_c = -inf. Summed with compensation
    for float64 results, as the log-sum-exp it is added to."""
    n = seg.shape[0]
    for k in range(n):
        a = weights[k]
        buf64[k] = a * (m - np.float64(seg[k])) if a != 0.0 else 0.0
    return block_sum(buf64, n, float32_result, 0)


@njit(inline="always", cache=True)
def label_status(lab, c, has_ignore, ignore_index):
    """0: a valid class index; 1: ignored; 2: invalid (out of range or not integral)."""
    if has_ignore and lab == ignore_index:
        return 1
    if not (lab >= 0 and lab < c):
        return 2
    if lab != np.int64(lab):
        return 2
    return 0


@njit(inline="always", cache=True)
def fill_class_weights(class_weight, c0, c1, wbuf):
    n = c1 - c0
    if class_weight.shape[0] == 0:
        for k in range(n):
            wbuf[k] = 1.0
    else:
        for k in range(n):  # (indexed, not a view: no reference count to touch per block)
            wbuf[k] = class_weight[c0 + k]
