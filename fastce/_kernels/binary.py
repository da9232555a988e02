"""Element-wise binary cross-entropy (log loss) on probabilities or logits.

Per element, with target y in [0, 1], positive-class weight w+ (1 without ``pos_weight``):

    probabilities:  -(w+ y log p + (1 - y) log(1 - p)),   p clipped to [eps, 1 - eps]
    logits:         (1 - y) softplus(x) + w+ y softplus(-x),
                    softplus(z) = max(z, 0) + log1p(exp(-|z|))

The logits form equals PyTorch's ``(1 - y) x + (1 + (w+ - 1) y) softplus(-x)`` and is stable
for any x. A zero coefficient drops its term (0 log 0 = 0, and 0 * inf is not evaluated), and
``log(1 - p)`` is ``log(hi) + lo / hi`` from the exact split ``1 - p = hi + lo``, accurate for
small p (``log_complement``); a segment whose labels are all 0 or 1 takes only the log its
element needs, with the same operations, so the same bits. softplus(x) and softplus(-x) share
their transcendental part ``log1p(exp(-|x|))``, computed once per element in the logits' own
dtype in a loop of its own (float32 logits: 16 lanes per AVX-512 vector; in one loop with the
float64 combination it ran at 8), then combined in float64.

The kernel walks a 2-D (rows, L) view, the box of elements that the launcher gave it (boxes of
whole rows, or ranges of columns of a few long rows: a single long row, a 1-D input seen as
(1, N), is still split across threads). Each contiguous run of a row is one vectorised map
into a small float64 buffer, then a pass that stores the values and/or adds them to the exact
accumulator, ``BLOCK`` values at a time (``acc_add_block``: vectorised integer sums per unit
instead of one bin update per value).
"""

import numpy as np
from numba import njit

from ._common import clip
from ._math import exp_native, fma, keep, log, log1p_native, unowned
from .exactsum import BLOCK, acc_add_block

SEGMENT = 2048
"""Elements per buffered segment (a 16 KiB float64 buffer)."""


@njit(inline="always", cache=True)
def log_complement(hi, lo, log_hi):
    """log(1 - p) from ``1 - p = hi + lo`` (exactly) and ``log_hi = log(hi)``.

    log(hi + lo) = log(hi) + lo / hi - ..., with |lo| <= 2**-54 and hi in (0.5, 1] whenever
    lo != 0; 1 / hi is taken as (2 - hi)(1 + d**2), d = 1 - hi, off by d**4 relative: the
    correction's error is below 2**-54 p**3, far under an ulp of |log(1 - p)| >= p.
    """
    d = 1.0 - hi
    return fma(lo, (2.0 - hi) * fma(d, d, 1.0), log_hi)


@njit(inline="always", cache=True)
def split_complement(pc):
    """(hi, lo) with hi = fl(1 - pc) and hi + lo = 1 - pc exactly, for pc in [0, 1]: for
    pc >= 1/2, 1 - pc is exact (lo = 0); below, 1 - hi is exact and within a factor 2 of pc
    (or 0), so (1 - hi) - pc is exact too (Sterbenz)."""
    hi = 1.0 - pc
    return hi, (1.0 - hi) - pc


@njit(inline="always", cache=True)
def bce_probs_elem(y, p, pos_weight, eps):
    pc = clip(p, eps)
    hi, lo = split_complement(pc)
    a = -(pos_weight * y) * log(pc) if y != 0.0 else 0.0
    b = -(1.0 - y) * log_complement(hi, lo, log(hi)) if y != 1.0 else 0.0
    return a + b


@njit(inline="always", cache=True)
def bce_probs_hard(y, p, pos_weight, eps):
    """``bce_probs_elem`` for y in {0, 1}, with one log instead of two: the same operations on
    the one term that is not dropped, so the same bits."""
    pc = clip(p, eps)
    hi, lo = split_complement(pc)
    one = y == 1.0
    lg = log(pc if one else hi)
    if one:
        return -(pos_weight * y) * lg + 0.0
    return 0.0 + -(1.0 - y) * log_complement(hi, lo, lg)


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


@njit(cache=True, error_model="numpy")
def logits_segment(ys, xs, tail, pos_weight, i, j0, eps, buf):
    """buf[:n] = the logits losses of one segment (n = len(xs)); returns the flag of a label
    outside [0, 1]. The transcendental part first, alone in its loop and in x's dtype (16
    float32 lanes per vector), then the float64 combination."""
    n = xs.shape[0]
    # Two loops, not one: in one loop the exp's and the log1p's constants spilled (1.07 ns per
    # float32 element, against 0.23 + 0.36 for the two apart); the same operations either way.
    for t in range(n):
        tail[t] = exp_native(-abs(xs[t]))
    for t in range(n):
        tail[t] = log1p_native(tail[t])
    flags = 0
    if pos_weight.shape[0] > 0:
        for t in range(n):
            y = np.float64(ys[t])
            flags |= (y < 0) | (y > 1)
            buf[t] = bce_logits_elem(y, xs[t], tail[t], np.float64(pos_weight[i, j0 + t]))
    else:
        for t in range(n):
            y = np.float64(ys[t])
            flags |= (y < 0) | (y > 1)
            buf[t] = bce_logits_elem(y, xs[t], tail[t], 1.0)
    return flags


@njit(cache=True, error_model="numpy")
def tempered_segment(ys, xs, tail, pos_weight, i, j0, temperature, buf):
    """``logits_segment`` of the logits divided by ``temperature`` in float64 (the kernel passes
    the temperature where the others pass eps, which logits do not use): ``tail`` holds the
    segment's tempered logits after its own ``SEGMENT`` entries."""
    n = xs.shape[0]
    scaled = tail[SEGMENT : SEGMENT + n]
    for t in range(n):
        scaled[t] = np.float64(xs[t]) / temperature
    return logits_segment(ys, scaled, tail[:SEGMENT], pos_weight, i, j0, 0.0, buf)


@njit(cache=True, error_model="numpy")
def probs_segment(ys, xs, tail, pos_weight, i, j0, eps, buf):
    """buf[:n] = the probability losses of one segment; returns the flag of a label or a
    probability outside [0, 1]. Labels all 0 or 1 (the usual case) take one log per element.
    (``tail`` is not used: the same arguments as ``logits_segment``.)"""
    n = xs.shape[0]
    soft = 0
    for t in range(n):
        v = ys[t]
        soft |= (v != 0) & (v != 1)
    flags = 0
    if soft:
        for t in range(n):
            y = np.float64(ys[t])
            p = np.float64(xs[t])
            flags |= (y < 0) | (y > 1) | (p < 0) | (p > 1)
            buf[t] = bce_probs_elem(y, p, weight2(pos_weight, i, j0 + t), eps)
    else:
        for t in range(n):
            y = np.float64(ys[t])
            p = np.float64(xs[t])
            flags |= (p < 0) | (p > 1)
            buf[t] = bce_probs_hard(y, p, weight2(pos_weight, i, j0 + t), eps)
    return flags


@njit(cache=True)
def masked_flags(ys, xs, keep_seg, probs):
    """A segment's flag of an invalid value, among the elements ``keep_seg`` keeps only: a
    label outside [0, 1], or (``probs``) a probability outside [0, 1]."""
    flags = 0
    for t in range(ys.shape[0]):
        if keep_seg[t]:
            y = np.float64(ys[t])
            flags |= (y < 0) | (y > 1)
            if probs:
                p = np.float64(xs[t])
                flags |= (p < 0) | (p > 1)
    return flags


@njit(cache=True)
def add_segment(acc, buf, n):
    """Add buf[:n] to the exact accumulator ``acc``, ``BLOCK`` values at a time."""
    for t in range(0, n, BLOCK):
        acc_add_block(acc, buf[t:], min(BLOCK, n - t))


@njit(inline="always", cache=True)
def bce_elements(
    segment, target, pred, eps, ln_base, pos_weight, sample_weight, where, out, acc, counts, bad,
    tail, probs,
):  # fmt: skip
    """The element-wise kernel's work, each segment's losses from ``segment``
    (``logits_segment`` or ``probs_segment``, of probabilities: ``probs``; ``tail`` its
    scratch). Elements that ``where`` masks out give 0 and count for nothing; what they hold
    is computed with the rest of their segment (one vector loop) but never used, and never
    flagged."""
    n_rows, n_cols = pred.shape
    total = n_rows * n_cols
    reduce = acc.shape[2] > 0
    store = out.shape[0] > 0
    scale = ln_base != 1.0 or sample_weight.shape[0] > 0
    scratch = np.empty(SEGMENT)
    target, pred, pos_weight = unowned(target), unowned(pred), unowned(pos_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, buf = unowned(counts), unowned(bad), unowned(scratch)
    where = unowned(where)
    masked = where.shape[0] > 0
    flags = 0
    e = 0
    while e < total:
        i = e // n_cols
        j0 = e - i * n_cols
        j1 = min(n_cols, j0 + min(total - e, SEGMENT))
        n = j1 - j0
        # Slices from 0 (unit-stride loops from 0 vectorise; an offset range of a longer
        # row became gathers and scatters: measured 2.7x slower on float32 logits).
        ys = target[i, j0:j1]
        xs = pred[i, j0:j1]
        # Each segment's map and exact add are functions of their own: inlined into this
        # one big function, their loops spilled registers and re-tested loop-invariant
        # conditions every iteration (1.5x slower, measured).
        seg_flags = segment(ys, xs, tail, pos_weight, i, j0, eps, buf)
        if scale:  # (x / 1) * 1 is x: nats without weights skip the pass
            for t in range(n):
                buf[t] = buf[t] / ln_base * weight2(sample_weight, i, j0 + t)
        kept_n = n
        if masked:  # (after the scaling: a masked entry is +0.0 in every base)
            keep_seg = where[i, j0:j1]
            if seg_flags:
                seg_flags = masked_flags(ys, xs, keep_seg, probs)
            kept_n = 0
            for t in range(n):
                kept_n += keep_seg[t]
                buf[t] = buf[t] if keep_seg[t] else 0.0
        flags |= seg_flags
        if store:
            os = out[i, j0:j1]
            for t in range(n):
                os[t] = buf[t]
        if reduce:
            add_segment(acc[0, 0], buf, n)
            if sample_weight.shape[0] > 0:
                # the weights through buf (free now): one compiled add_segment, not a second
                # one for the weights' read-only type
                ws = sample_weight[i, j0:j1]
                for t in range(n):
                    buf[t] = ws[t]
                if masked:
                    wseg = where[i, j0:j1]
                    for t in range(n):
                        buf[t] = buf[t] if wseg[t] else 0.0
                add_segment(acc[0, 1], buf, n)
        counts[0] += kept_n
        e += n
    if flags:
        bad[0] = 1
    keep(scratch)


# One kernel per kind of input, so that a first call compiles only its own segment function
# and transcendental functions (one kernel with a run-time ``from_logits`` compiled both:
# ~0.8 s more). ``from_logits`` stays an argument: the launcher's arguments are the same.


@njit(nogil=True, cache=True, error_model="numpy")
def bce_logits_kernel(
    target, pred, from_logits, eps, ln_base, pos_weight, sample_weight, where, out, acc, counts,
    bad,
):  # fmt: skip
    """Binary cross-entropy from logits over a (rows, L) box of elements (see the module)."""
    tails = np.empty(SEGMENT, pred.dtype)
    bce_elements(
        logits_segment, target, pred, eps, ln_base, pos_weight, sample_weight, where, out, acc,
        counts, bad, unowned(tails), False,
    )  # fmt: skip
    keep(tails)


@njit(nogil=True, cache=True, error_model="numpy")
def bce_probs_kernel(
    target, pred, from_logits, eps, ln_base, pos_weight, sample_weight, where, out, acc, counts,
    bad,
):  # fmt: skip
    """Binary cross-entropy from probabilities over a (rows, L) box of elements."""
    tails = np.empty(0, pred.dtype)
    bce_elements(
        probs_segment, target, pred, eps, ln_base, pos_weight, sample_weight, where, out, acc,
        counts, bad, tails, True,
    )  # fmt: skip


@njit(nogil=True, cache=True, error_model="numpy")
def bce_tempered_kernel(
    target, pred, temperature, eps, ln_base, pos_weight, sample_weight, where, out, acc,
    counts, bad,
):  # fmt: skip
    """Binary cross-entropy from logits divided by ``temperature`` (in float64, a segment at a
    time: no copy of the input), over a (rows, L) box of elements."""
    tails = np.empty(2 * SEGMENT)
    bce_elements(
        tempered_segment, target, pred, temperature, ln_base, pos_weight, sample_weight, where,
        out, acc, counts, bad, unowned(tails), False,
    )  # fmt: skip
    keep(tails)


KERNELS = {"logits": bce_logits_kernel, "probs": bce_probs_kernel, "tempered": bce_tempered_kernel}
