"""Element-wise binary cross-entropy (log loss) on probabilities or logits.

Per element, with target y in [0, 1], positive-class weight w+ (1 without ``pos_weight``):

    probabilities:  -(w+ y log p + (1 - y) log(1 - p)),   p clipped to [eps, 1 - eps]
    logits:         (1 - y) softplus(x) + w+ y softplus(-x),
                    softplus(z) = max(z, 0) + log1p(exp(-|z|))

The logits form equals PyTorch's ``(1 - y) x + (1 + (w+ - 1) y) softplus(-x)`` and is stable
for any x. A zero coefficient drops its term (0 log 0 = 0, and 0 * inf is not evaluated), and
``log(1 - p)`` is computed as ``log1p(-p)``, exact for small p. softplus(x) and softplus(-x) share
their transcendental part ``log1p(exp(-|x|))``, computed once per element in the logits' own
dtype in a loop of its own (float32 logits: 16 lanes per AVX-512 vector; in one loop with the
float64 combination it ran at 8), then combined in float64.

The kernel walks a 2-D (rows, L) view in ``nchunks`` contiguous chunks of the flattened element
range, so a single long row (a 1-D input seen as (1, N)) is still split across threads. Each
contiguous run of a row is one vectorised map into a small float64 buffer, then a pass that
stores the values and/or adds them to the exact accumulator.
"""

import numpy as np
from numba import njit, prange

from ._common import chunk_bounds, clip
from ._math import exp_native, keep, log, log1p, log1p_native, unowned
from .exactsum import acc_add

SEGMENT = 2048
"""Elements per buffered segment (a 16 KiB float64 buffer)."""


@njit(inline="always", cache=True)
def bce_probs_elem(y, p, pos_weight, eps):
    pc = clip(p, eps)
    a = -(pos_weight * y) * log(pc) if y != 0.0 else 0.0
    b = -(1.0 - y) * log1p(-pc) if y != 1.0 else 0.0
    return a + b


@njit(inline="always", cache=True)
def bce_logits_elem(y, x, tail, pos_weight):
    """The logits loss from x and its ``tail = log1p(e**-|x|)``, the part softplus(x) and
    softplus(-x) share (computed beforehand in x's own dtype)."""
    xd = np.float64(x)
    t = np.float64(tail)
    pos = xd if x > 0 else 0.0  # NaN: 0 here, NaN through the tail
    neg = -xd if x < 0 else 0.0
    a = (1.0 - y) * (pos + t) if y != 1.0 else 0.0
    b = (pos_weight * y) * (neg + t) if y != 0.0 else 0.0
    return a + b


@njit(inline="always", cache=True)
def weight2(weights, i, j):
    return np.float64(weights[i, j]) if weights.shape[0] > 0 else 1.0


@njit(parallel=True, cache=True, error_model="numpy")
def bce_kernel(
    target,
    pred,
    from_logits,
    eps,
    ln_base,
    pos_weight,
    sample_weight,
    out,
    acc,
    counts,
    bad,
):
    n_rows, n_cols = pred.shape
    total = n_rows * n_cols
    nchunks = counts.shape[0]
    reduce = acc.shape[2] > 0
    store = out.shape[0] > 0
    scale = ln_base != 1.0 or sample_weight.shape[0] > 0
    scratch = np.empty((nchunks, SEGMENT))
    tails = np.empty((nchunks, SEGMENT if from_logits else 0), pred.dtype)
    tl = unowned(tails)
    target, pred, pos_weight = unowned(target), unowned(pred), unowned(pos_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc = unowned(counts), unowned(bad), unowned(scratch)
    for k in prange(nchunks):
        lo, hi = chunk_bounds(total, nchunks, k)
        buf = sc[k]
        flags = 0
        e = lo
        while e < hi:
            i = e // n_cols
            j0 = e - i * n_cols
            j1 = min(n_cols, j0 + min(hi - e, SEGMENT))
            n = j1 - j0
            # Slices from 0 (unit-stride loops from 0 vectorise; an offset range of a longer
            # row became gathers and scatters: measured 2.7x slower on float32 logits).
            ys = target[i, j0:j1]
            xs = pred[i, j0:j1]
            if from_logits:
                # the transcendental part alone, in x's dtype (16 float32 lanes per vector),
                # then the float64 combination
                tail = tl[k]
                for t in range(n):
                    tail[t] = log1p_native(exp_native(-abs(xs[t])))
                for t in range(n):
                    y = np.float64(ys[t])
                    flags |= (y < 0) | (y > 1)
                    buf[t] = bce_logits_elem(y, xs[t], tail[t], weight2(pos_weight, i, j0 + t))
            else:
                for t in range(n):
                    y = np.float64(ys[t])
                    p = np.float64(xs[t])
                    flags |= (y < 0) | (y > 1) | (p < 0) | (p > 1)
                    buf[t] = bce_probs_elem(y, p, weight2(pos_weight, i, j0 + t), eps)
            if scale:  # (x / 1) * 1 is x: nats without weights skip the pass
                for t in range(n):
                    buf[t] = buf[t] / ln_base * weight2(sample_weight, i, j0 + t)
            if store:
                os = out[i, j0:j1]
                for t in range(n):
                    os[t] = buf[t]
            if reduce:
                for t in range(n):
                    acc_add(acc[k, 0], buf[t])
                if sample_weight.shape[0] > 0:
                    for t in range(n):
                        acc_add(acc[k, 1], sample_weight[i, j0 + t])
            counts[k] += n
            e += n
        if flags:
            bad[k] = 1
    keep(scratch)
    keep(tails)
