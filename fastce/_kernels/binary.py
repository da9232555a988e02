"""Element-wise binary cross-entropy (log loss) on probabilities or logits.

Per element, with target y in [0, 1], positive-class weight w+ (1 without ``pos_weight``):

    probabilities:  -(w+ y log p + (1 - y) log(1 - p)),   p clipped to [eps, 1 - eps]
    logits:         (1 - y) softplus(x) + w+ y softplus(-x),
                    softplus(z) = max(z, 0) + log1p(exp(-|z|))

The logits form equals PyTorch's ``(1 - y) x + (1 + (w+ - 1) y) softplus(-x)`` and is stable
for any x. A zero coefficient drops its term (0 log 0 = 0, and 0 * inf is not evaluated), and
``log(1 - p)`` is computed as ``log1p(-p)``, exact for small p.

The kernel walks a 2-D (rows, L) view in ``nchunks`` contiguous chunks of the flattened element
range, so a single long row (a 1-D input seen as (1, N)) is still split across threads.
"""

import numpy as np
from numba import njit, prange

from ._common import chunk_bounds, clip, is_probability
from ._math import exp, log, log1p
from .exactsum import acc_add


@njit(inline="always", cache=True)
def softplus(z):
    pos = z if z > 0.0 else 0.0  # NaN gives 0 here and NaN through the log1p below
    return pos + log1p(exp(-abs(z)))


@njit(inline="always", cache=True)
def bce_probs_elem(y, p, pos_weight, eps):
    pc = clip(p, eps)
    loss = 0.0
    if y != 0.0:
        loss -= pos_weight * y * log(pc)
    if y != 1.0:
        loss -= (1.0 - y) * log1p(-pc)
    return loss


@njit(inline="always", cache=True)
def bce_logits_elem(y, x, pos_weight):
    loss = 0.0
    if y != 1.0:
        loss += (1.0 - y) * softplus(x)
    if y != 0.0:
        loss += pos_weight * y * softplus(-x)
    return loss


@njit(inline="always", cache=True)
def weight2(weights, i, j):
    return np.float64(weights[i, j]) if weights.shape[0] > 0 else 1.0


@njit(parallel=True, cache=True)
def bce_kernel(
    target, pred, from_logits, eps, ln_base, pos_weight, sample_weight, out, acc, counts, bad
):
    n_rows, n_cols = pred.shape
    total = n_rows * n_cols
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(total, nchunks, k)
        e = lo
        while e < hi:
            i = e // n_cols
            j0 = e - i * n_cols
            j1 = min(n_cols, j0 + (hi - e))
            for j in range(j0, j1):
                y = np.float64(target[i, j])
                p = np.float64(pred[i, j])
                pw = weight2(pos_weight, i, j)
                if from_logits:
                    ok = is_probability(y)
                    loss = bce_logits_elem(y, p, pw)
                else:
                    ok = is_probability(y) & is_probability(p)
                    loss = bce_probs_elem(y, p, pw, eps)
                if not ok:
                    bad[k] = 1
                sw = weight2(sample_weight, i, j)
                value = loss / ln_base * sw
                if out.shape[0] > 0:
                    out[i, j] = value
                if acc.shape[2] > 0:
                    acc_add(acc[k, 0], value)
                    acc_add(acc[k, 1], sw)
            counts[k] += j1 - j0
            e += j1 - j0
