"""Entropy, cross-entropy, KL and Jensen-Shannon over rows of class probabilities or logits.

Every kernel here has the same shape: a ``prange`` over chunks of rows (see ``_common``), a
serial per-row formula giving the loss in nats, then

    value  = loss_nats / ln_base * sample_weight       (ln_base = 1.0 for nats)
    weight = class_weight[y] * sample_weight            (what ``"mean"`` divides by)

emitted to ``out`` and/or the exact accumulators. Zero target probabilities contribute exactly
0 (0 log 0 = 0), predicted probabilities are clipped to [eps, 1 - eps] inside their log, and a
NaN anywhere in a row's inputs makes that row's value NaN. Kernels never raise: they flag
invalid input in ``bad`` and the Python layer reports it.

Class weights enter the per-sample loss as in ``torch.nn.functional.cross_entropy``: with a
class-index target the loss is scaled by ``w[y]`` and the mean divides by ``sum w[y]``; with
soft targets ``w_c`` multiplies each class term and the mean divides by the number of samples.
An empty ``class_weight`` or ``sample_weight`` array means "no weights".
"""

import numpy as np
from numba import njit, prange

from ._common import chunk_bounds, clip, emit, is_probability, weight_at
from ._math import exp, log, log1p
from .exactsum import acc_add
from .logsumexp import lse_parts, row_max

# Ratios p/q inside this range are safe to divide: log(p/q) is then more accurate than
# log(p) - log(q) when p and q are close (one rounding instead of two cancelling logs).
_RATIO_LO = 2.0**-1000
_RATIO_HI = 2.0**1000


@njit(inline="always", cache=True)
def log_ratio(p, q):
    """log(p / q) for p, q > 0, accurate when p is close to q and safe for extreme ratios."""
    r = p / q
    if r > _RATIO_LO and r < _RATIO_HI:
        return log(r)
    return log(p) - log(q)


@njit(inline="always", cache=True)
def smoothed(p, smoothing, n_classes):
    """Label smoothing of a target probability, as PyTorch: (1 - s) p + s / C."""
    if smoothing == 0.0:
        return p
    return (1.0 - smoothing) * p + smoothing / n_classes


# ---------------------------------------------------------------------------------------------
# Per-row formulas (nats). Each returns (loss, ok) where ok is False if an input was invalid.


@njit(inline="always", cache=True)
def entropy_probs_row(p):
    """H(p) = -sum p log p."""
    h = 0.0
    ok = True
    for col in range(p.shape[0]):
        v = np.float64(p[col])
        ok &= is_probability(v)
        if v != 0.0:
            h -= v * log(v)
    return h, ok


@njit(inline="always", cache=True)
def entropy_logits_row(x):
    """H(softmax(x)) = t / s + log1p(s'), with e_c = exp(x_c - m), s' = sum_{c != j} e_c,
    s = 1 + s' and t = sum_c e_c (m - x_c).

    Both terms are >= 0, so nothing cancels. A term with e_c == 0 (x_c = -inf, or far below
    the maximum) contributes exactly 0 rather than 0 * inf.
    """
    m, j = row_max(x)
    if m == -np.inf:
        return np.nan  # the softmax of a row of -inf (or of nothing) is undefined
    s_others = 0.0
    t = 0.0
    for col in range(x.shape[0]):
        if col != j:
            d = np.float64(x[col]) - m
            e = exp(d)
            s_others += e
            if e != 0.0:
                t -= e * d
    return t / (1.0 + s_others) + log1p(s_others)


@njit(inline="always", cache=True)
def nll_probs_row(q, y, eps, class_weight, smoothing):
    """Class-index cross-entropy on probabilities, label smoothing and class weights included.

    (1 - s) w_y (-log q_y) + (s / C) sum_c w_c (-log q_c). Every entry of the row is read, so
    that a NaN or an out-of-range probability anywhere in it is noticed.
    """
    c = q.shape[0]
    ok = True
    nan_seen = 0.0
    smooth_sum = 0.0
    for col in range(c):
        v = np.float64(q[col])
        ok &= is_probability(v)
        if v != v:
            nan_seen = v
        if smoothing != 0.0:
            smooth_sum -= weight_at(class_weight, col) * log(clip(v, eps))
    loss = -weight_at(class_weight, y) * log(clip(np.float64(q[y]), eps))
    if smoothing != 0.0:
        loss = (1.0 - smoothing) * loss + (smoothing / c) * smooth_sum
    return loss + nan_seen, ok


@njit(inline="always", cache=True)
def nll_logits_row(x, y, class_weight, smoothing):
    """Class-index cross-entropy from logits: (m - x_y) + log1p(s'), smoothing and weights as
    in ``nll_probs_row`` with -log q_c = (m - x_c) + log1p(s')."""
    m, _, lp = lse_parts(x)
    loss = weight_at(class_weight, y) * ((m - np.float64(x[y])) + lp)
    if smoothing != 0.0:
        c = x.shape[0]
        smooth_sum = 0.0
        for col in range(c):
            smooth_sum += weight_at(class_weight, col) * ((m - np.float64(x[col])) + lp)
        loss = (1.0 - smoothing) * loss + (smoothing / c) * smooth_sum
    return loss


@njit(inline="always", cache=True)
def soft_ce_probs_row(p, q, eps, class_weight, smoothing):
    """H(p, q) = -sum_c w_c p_c log q_c with soft (optionally smoothed) targets p."""
    c = q.shape[0]
    ok = True
    nan_seen = 0.0
    loss = 0.0
    for col in range(c):
        pv = np.float64(p[col])
        qv = np.float64(q[col])
        ok &= is_probability(pv) & is_probability(qv)
        if qv != qv:
            nan_seen = qv
        pv = smoothed(pv, smoothing, c)
        if pv != 0.0:
            loss -= weight_at(class_weight, col) * pv * log(clip(qv, eps))
    return loss + nan_seen, ok


@njit(inline="always", cache=True)
def soft_ce_logits_row(p, x, class_weight, smoothing):
    """H(p, softmax(x)) = sum_c w_c p_c ((m - x_c) + log1p(s'))."""
    c = x.shape[0]
    m, _, lp = lse_parts(x)
    ok = True
    loss = 0.0
    for col in range(c):
        pv = np.float64(p[col])
        ok &= is_probability(pv)
        pv = smoothed(pv, smoothing, c)
        if pv != 0.0:
            loss += weight_at(class_weight, col) * pv * ((m - np.float64(x[col])) + lp)
    # lp is finite or NaN: this adds 0, or passes on a NaN logit even where every p_c is 0.
    return loss + 0.0 * lp, ok


@njit(inline="always", cache=True)
def kl_probs_row(p, q, eps):
    """KL(p || q) = sum_c p_c log(p_c / q_c), q clipped."""
    ok = True
    nan_seen = 0.0
    kl = 0.0
    for col in range(p.shape[0]):
        pv = np.float64(p[col])
        qv = np.float64(q[col])
        ok &= is_probability(pv) & is_probability(qv)
        if qv != qv:
            nan_seen = qv
        if pv != 0.0:
            kl += pv * log_ratio(pv, clip(qv, eps))
    return kl + nan_seen, ok


@njit(inline="always", cache=True)
def kl_logits_row(p, x):
    """KL(p || softmax(x)) = sum_c p_c (log p_c - x_c + m + log1p(s'))."""
    m, _, lp = lse_parts(x)
    ok = True
    kl = 0.0
    for col in range(p.shape[0]):
        pv = np.float64(p[col])
        ok &= is_probability(pv)
        if pv != 0.0:
            kl += pv * ((log(pv) + (m - np.float64(x[col]))) + lp)
    return kl + 0.0 * lp, ok


@njit(inline="always", cache=True)
def js_row(p, q):
    """JS(p, q) = 1/2 sum_c [p_c log(p_c / m_c) + q_c log(q_c / m_c)], m = (p + q) / 2."""
    ok = True
    js = 0.0
    for col in range(p.shape[0]):
        pv = np.float64(p[col])
        qv = np.float64(q[col])
        ok &= is_probability(pv) & is_probability(qv)
        mv = 0.5 * (pv + qv)
        if pv != 0.0:
            js += pv * log(pv / mv)
        if qv != 0.0:
            js += qv * log(qv / mv)
    return 0.5 * js, ok


# ---------------------------------------------------------------------------------------------
# Kernels. ``x``/``p``/``q`` are 2-D (n, C) strided views; ``labels`` is 1-D of any integer or
# float dtype (float labels must hold integral values).


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


@njit(parallel=True, cache=True)
def entropy_kernel(p, from_logits, ln_base, sample_weight, out, acc, counts, bad):
    n = p.shape[0]
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            if from_logits:
                h = entropy_logits_row(p[i])
            else:
                h, ok = entropy_probs_row(p[i])
                if not ok:
                    bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, h / ln_base * sw, sw, out, acc, counts)


@njit(parallel=True, cache=True)
def nll_kernel(
    x,
    labels,
    from_logits,
    eps,
    class_weight,
    smoothing,
    has_ignore,
    ignore_index,
    ln_base,
    sample_weight,
    out,
    acc,
    counts,
    bad,
):
    n, c = x.shape
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            status = label_status(labels[i], c, has_ignore, ignore_index)
            if status != 0:
                if status == 2:
                    bad[k] = 1
                if out.shape[0] > 0:
                    out[i] = 0.0
                continue
            y = np.int64(labels[i])
            if from_logits:
                loss = nll_logits_row(x[i], y, class_weight, smoothing)
            else:
                loss, ok = nll_probs_row(x[i], y, eps, class_weight, smoothing)
                if not ok:
                    bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, loss / ln_base * sw, weight_at(class_weight, y) * sw, out, acc, counts)


@njit(parallel=True, cache=True)
def soft_ce_kernel(
    p, x, from_logits, eps, class_weight, smoothing, ln_base, sample_weight, out, acc, counts, bad
):
    n = x.shape[0]
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            if from_logits:
                loss, ok = soft_ce_logits_row(p[i], x[i], class_weight, smoothing)
            else:
                loss, ok = soft_ce_probs_row(p[i], x[i], eps, class_weight, smoothing)
            if not ok:
                bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, loss / ln_base * sw, sw, out, acc, counts)


@njit(parallel=True, cache=True)
def kl_kernel(p, q, from_logits, eps, ln_base, sample_weight, out, acc, counts, bad):
    n = p.shape[0]
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            if from_logits:
                kl, ok = kl_logits_row(p[i], q[i])
            else:
                kl, ok = kl_probs_row(p[i], q[i], eps)
            if not ok:
                bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, kl / ln_base * sw, sw, out, acc, counts)


@njit(parallel=True, cache=True)
def js_kernel(p, q, ln_base, sample_weight, out, acc, counts, bad):
    n = p.shape[0]
    nchunks = counts.shape[0]
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        for i in range(lo, hi):
            js, ok = js_row(p[i], q[i])
            if not ok:
                bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, js / ln_base * sw, sw, out, acc, counts)


# ---------------------------------------------------------------------------------------------
# scikit-learn's log_loss, with its input checks fused into the one pass over the data.


@njit(parallel=True, cache=True)
def log_loss_kernel(proba, index, binary, round_f32, eps, sample_weight, acc, counts, stats):
    """Sum of ``-log(clip(q_y)) * s_i`` and of ``s_i`` as scikit-learn computes them.

    ``binary``: ``proba`` is (n, 1) holding P(positive) and q is ``[1 - p, p]``, with ``1 - p``
    rounded to the input dtype first (``round_f32``), exactly as scikit-learn's stacking does.
    ``stats[k]`` collects what scikit-learn checks, per chunk: min, max, any NaN, any inf, and
    whether some row does not sum to one within ``1e-8 + sqrt(eps)`` (its ``isclose``).
    """
    n, c = proba.shape
    nchunks = counts.shape[0]
    tol = 1e-8 + np.sqrt(eps)
    for k in prange(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        lowest = np.inf
        highest = -np.inf
        has_nan = 0.0
        has_inf = 0.0
        not_normalised = 0.0
        for i in range(lo, hi):
            row_sum = 0.0
            for col in range(c):
                v = np.float64(proba[i, col])
                if v != v:
                    has_nan = 1.0
                elif v == np.inf or v == -np.inf:
                    has_inf = 1.0
                lowest = min(lowest, v)
                highest = max(highest, v)
                row_sum += v
            if not binary and not abs(row_sum - 1.0) <= tol:
                not_normalised = 1.0
            y = index[i]
            if binary:
                p = np.float64(proba[i, 0])
                if y == 0:
                    p = 1.0 - p
                    if round_f32:
                        p = np.float64(np.float32(p))
            else:
                p = np.float64(proba[i, y])
            sw = weight_at(sample_weight, i)
            value = -log(clip(p, eps)) * sw
            acc_add(acc[k, 0], value)
            acc_add(acc[k, 1], sw)
        counts[k] += hi - lo if hi > lo else 0
        stats[k, 0] = lowest
        stats[k, 1] = highest
        stats[k, 2] = has_nan
        stats[k, 3] = has_inf
        stats[k, 4] = not_normalised
