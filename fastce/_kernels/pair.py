"""Two rows per sample: cross-entropy with soft targets, KL divergence, Jensen-Shannon.

Each measure is a named body per kind of input (its block partial; merges and finishes are
shared), and ``KERNELS`` is the family's table: ``_driver`` makes each entry's kernels. The
partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._common import clip
from ._driver import Body, row_kernels
from ._math import (
    block_sum,
    exp_diff,
    fma,
    is_float32,
    log,
    log1p,
    sum8,
)
from .logsumexp import lse_block_beside, lse_row_beside
from .partials import (
    check_block,
    fill_class_weights,
    lin_merge,
    shifted_terms,
    smoothed,
    sum_finish,
    sum_merge,
)

# Ratios p/q inside this range are safe to divide: log(p/q) is then more accurate than
# log(p) - log(q) when p and q are close (one rounding instead of two cancelling logs).
_RATIO_LO = 2.0**-1000
_RATIO_HI = 2.0**1000


@njit(inline="always", cache=True)
def log_ratio(p, q):
    """log(p / q) for p, q > 0, accurate when p is close to q and safe for extreme ratios."""
    r = p / q
    return log(r) if (r > _RATIO_LO and r < _RATIO_HI) else log(p) - log(q)


@njit(inline="always", cache=True)
def kl_terms(p, x, eps, buf64, float32_result):
    """buf64[k] = p_k log(p_k / clip(q_k)): one log per term, of the ratio r = fl(p / q), plus
    the rounding error of that ratio. p = r q + rho with rho exact (one fused multiply-add), so
    p log(p / q) = p log r + p log(1 + rho / (r q)) = p log r + rho to within u |rho|: without
    rho, a term carries an absolute error of up to p u / 2 (the ratio's rounding), which is all
    of a KL of nearly equal rows. (For a float32 result that error is far below its bound, and
    rho is left out.) The ratio can leave the safe range only without clipping (q tiny,
    eps = 0) or for subnormal p; those rare terms are redone as log p - log q."""
    n = p.shape[0]
    extreme = 0
    for k in range(n):
        pv = np.float64(p[k])
        qv = clip(np.float64(x[k]), eps)
        r = pv / qv
        extreme |= (pv != 0.0) & ((r <= _RATIO_LO) | (r >= _RATIO_HI))
        if float32_result:
            buf64[k] = pv * log(r) if pv != 0.0 else 0.0
        else:
            buf64[k] = fma(pv, log(r), fma(-r, qv, pv)) if pv != 0.0 else 0.0
    if extreme:
        for k in range(n):
            pv = np.float64(p[k])
            qv = clip(np.float64(x[k]), eps)
            r = pv / qv
            if pv != 0.0 and (r <= _RATIO_LO or r >= _RATIO_HI):
                buf64[k] = pv * log_ratio(pv, qv)


# JS terms: |r| = |p - q| / (p + q) up to this use the small-difference form (see js_term);
# the switch point balances the two forms' rounding errors (at most 5.4 ulp per term measured).
_JS_SMALL = 0.6
_TWO_P1000 = 2.0**1000


@njit(inline="always", cache=True)
def js_term(pv, qv):
    """1/2 [p log(2p / (p + q)) + q log(2q / (p + q))] for p, q in [0, 1]: non-negative and
    accurate to a few ulps of itself, however close p and q are.

    Written as the textbook sum, the two halves cancel when p ~ q (their sum is ~ (p - q)^2 /
    (8 (p + q)) while each is ~ |p - q| / 2), and the rounding of (p + q) / 2 alone is an error
    of u (p + q): a JS of nearly equal rows came out as noise, negative at times. Instead, with
    hi >= lo the two values, s = hi + lo, d = hi - lo, r = d / s in [0, 1], the term is
    (s / 4) g(r) with g(r) = (1 + r) log(1 + r) + (1 - r) log(1 - r) >= 0, evaluated as

        r <= 0.6:  g = r log1p(d / lo) + log1p(-r^2)        (~ 2 r^2 - r^2: no deep cancellation)
        r >  0.6:  g = (1 + r) log1p(r) - b log1p(d / (2 lo)),    b = 2 lo / s

    (log(hi / lo) = log1p(d / lo), log(1 - r) = -log1p(d / (2 lo)), log(1 + r) = log1p(r)). Both
    forms are two log1p of arguments chosen by a select, so the loop still vectorises; three
    divisions (d / s, d / lo, 2 lo / s; not a reciprocal of s, which overflows for a
    subnormal s) where the textbook form has two. lo = 0 gives b = 0 and
    s / 2 log 2 = hi log 2 / 2; p = q = 0 gives 0; p = q gives exactly 0.
    """
    hi = pv if pv >= qv else qv
    lo = qv if pv >= qv else pv
    s = hi + lo
    d = hi - lo
    r = d / s
    ratio = d / lo  # hi / lo - 1: inf for lo = 0
    small = r <= _JS_SMALL
    u1 = ratio if small else r
    u2 = -(r * r) if small else min(0.5 * ratio, _TWO_P1000)  # lo tiny or 0: b log b ~ 0
    c1 = r if small else 1.0 + r
    c2 = 1.0 if small else -(2.0 * lo / s)
    l1 = log1p(u1)
    l2 = log1p(u2)
    g = c1 * l1 + (c2 * l2 if c2 != 0.0 else 0.0)
    return 0.25 * s * g if s != 0.0 else 0.0


@njit(inline="always", cache=True)
def row_blocks(ops, i, c0, c1):
    """(p, x, float32 result, n_classes): the block [c0, c1) of row i of both operands."""
    p_row, x_row = ops[0][i], ops[1][i]
    f32 = is_float32(p_row) and is_float32(x_row)
    return p_row[c0:c1], x_row[c0:c1], f32, x_row.shape[0]


@njit(inline="always", cache=True)
def checked(p, x):
    """(bad, nan) flags of a block of two rows of probabilities."""
    bad_p, nan_p = check_block(p)
    bad_q, nan_q = check_block(x)
    return max(bad_p, bad_q), nan_p + nan_q


@njit(inline="always", cache=True)
def terms_partial(buf64, n, f32, bad, nan):
    """The partial of a block whose terms are in ``buf64``; a NaN in q must reach the value
    even where p_c == 0 dropped its term (``nan``)."""
    return block_sum(buf64, n, f32), 0.0, 0.0, 0.0, bad, nan


@njit(inline="always", cache=True)
def logits_partial(x, m, s, wbuf, buf64, f32, extra, bad_p, nan_p):
    """(m, s', A, P, bad, nan + extra) of a block of logits x with (m, s') its log-sum-exp and
    ``wbuf`` the coefficients a_c of (m - x_c) (``partials.lin_merge``); ``extra`` a plain sum
    that rides in the nan slot (KL's sum of p log p)."""
    n = x.shape[0]
    a = shifted_terms(x, m, wbuf, buf64, f32)
    if m == -np.inf and s == 0.0:
        # every logit of the block is -inf: target mass there makes the loss infinite
        mass = sum8(wbuf, n)
        a = np.inf if mass != 0.0 else 0.0
        return m, s, a, 0.0, bad_p, extra + nan_p
    return m, s, a, block_sum(wbuf, n, f32, 0), bad_p, extra + nan_p


@njit(cache=True, error_model="numpy")
def soft_ce_probs_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """Soft-target cross-entropy  -sum_c w_c p_c log clip(q_c)  over a block (see ``_driver``).

    q and p's coefficients are copied into buffers padded to a multiple of 16 (q with 1.0, p and
    the weights with 0, a term of 0), so that the loop of logs runs whole vectors: at 100
    classes its scalar remainder cost ~19% of the row (3.09 ns per element against 2.6 at 96
    or 104, one thread). The sum takes the n terms."""
    eps, class_weight, smoothing = params
    p, x, f32, n_classes = row_blocks(ops, i, c0, c1)
    n = c1 - c0
    bad, nan = checked(p, x)
    fill_class_weights(class_weight, c0, c1, wbuf)
    n16 = (n + 15) & ~15
    for k in range(n):
        buf[k] = np.float64(x[k])
        buf64[k] = smoothed(np.float64(p[k]), smoothing, n_classes)
    q_tail, p_tail, w_tail = buf[n:n16], buf64[n:n16], wbuf[n:n16]
    for k in range(n16 - n):
        q_tail[k] = 1.0
        p_tail[k] = 0.0
        w_tail[k] = 0.0
    for k in range(n16):
        pv = buf64[k]
        t = -wbuf[k] * pv * log(clip(buf[k], eps))
        buf64[k] = t if pv != 0.0 else 0.0
    return terms_partial(buf64, n, f32, bad, nan)


@njit(cache=True, error_model="numpy")
def soft_ce_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """Soft-target cross-entropy from logits: a_c = w_c p_c (smoothed)."""
    class_weight, smoothing = params[1], params[2]
    p, x, f32, n_classes = row_blocks(ops, i, c0, c1)
    bad_p, nan_p = check_block(p)
    fill_class_weights(class_weight, c0, c1, wbuf)
    m, s = lse_block_beside(x, p, buf)
    for k in range(c1 - c0):
        wbuf[k] = smoothed(np.float64(p[k]), smoothing, n_classes) * wbuf[k]
    return logits_partial(x, m, s, wbuf, buf64, f32, 0.0, bad_p, nan_p)


@njit(cache=True, error_model="numpy")
def kl_probs_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """KL divergence  sum_c p_c log(p_c / clip(q_c))  over a block (``kl_terms``)."""
    p, x, f32, _ = row_blocks(ops, i, c0, c1)
    bad, nan = checked(p, x)
    kl_terms(p, x, params[0], buf64, f32)
    return terms_partial(buf64, c1 - c0, f32, bad, nan)


@njit(cache=True, error_model="numpy")
def kl_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """KL divergence from logits: a_c = p_c, and the block's sum of p_c log p_c."""
    p, x, f32, _ = row_blocks(ops, i, c0, c1)
    n = c1 - c0
    bad_p, nan_p = check_block(p)
    m, s = lse_block_beside(x, p, buf)
    for k in range(n):
        wbuf[k] = np.float64(p[k])
        pv = np.float64(p[k])
        buf64[k] = pv * log(pv) if pv != 0.0 else 0.0
    extra = block_sum(buf64, n, f32)
    return logits_partial(x, m, s, wbuf, buf64, f32, extra, bad_p, nan_p)


@njit(cache=True, error_model="numpy")
def js_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """Jensen-Shannon divergence  1/2 sum_c [p log(p/m) + q log(q/m)],  m = (p + q) / 2."""
    p, x, f32, _ = row_blocks(ops, i, c0, c1)
    bad, nan = checked(p, x)
    for k in range(c1 - c0):
        buf64[k] = js_term(np.float64(p[k]), np.float64(x[k]))
    return terms_partial(buf64, c1 - c0, f32, bad, nan)


# Target logits. A row of target logits (``target_from_logits``) has its log-sum-exp taken
# first (the prologue: the row is then in cache), so that each block forms its softmax
# P_c = e^(a_c - M) / S and log P_c = (a_c - M) - log S at once; every term then has the form
# of the probability bodies', and the partials are plain sums. Predicted logits beside them
# are normalised the same way. A row whose maximum is not finite (all -inf, a NaN, a +inf)
# gives NaN through IEEE arithmetic: its softmax is undefined.

# (M, S, log S) of an operand that holds probabilities: S = 0 marks it (a row of logits has
# S >= 1, or NaN)
_NO_LSE = (0.0, 0.0, 0.0)


@njit(inline="always", cache=True)
def is_logits(lse):
    return lse[1] != 0.0


@njit(inline="always", cache=True)
def undefined(lse):
    """NaN for a row of logits with no softmax (no classes, or all -inf), else 0.0: added to a
    block's nan slot, it makes the row's value NaN even where no term is formed (C = 0)."""
    return np.nan if is_logits(lse) and lse[0] == -np.inf else 0.0


@njit(inline="always", cache=True)
def row_lse(row, other, buf):
    """(M, S, log S) of a row of logits: its maximum M, S = sum_c e^(x_c - M) (1 + s'), to the
    precision of the result (``lse_block_beside``)."""
    m, s = lse_row_beside(row, other, buf)
    return m, 1.0 + s, log1p(s)


@njit(inline="always", cache=True)
def target_lse(ops, i, params, buf):
    """Prologue of target logits against probabilities: the target row's (M, S, log S)."""
    p, q = ops[0][i], ops[1][i]
    return params[0], params[1], params[2], row_lse(p, q, buf), _NO_LSE


@njit(inline="always", cache=True)
def pred_lse(ops, i, params, buf):
    """Prologue of target probabilities against logits (Jensen-Shannon, whose terms need
    both softmax values)."""
    p, q = ops[0][i], ops[1][i]
    return params[0], params[1], params[2], _NO_LSE, row_lse(q, p, buf)


@njit(inline="always", cache=True)
def both_lse(ops, i, params, buf):
    """Prologue of two rows of logits."""
    p, q = ops[0][i], ops[1][i]
    return params[0], params[1], params[2], row_lse(p, q, buf), row_lse(q, p, buf)


@njit(inline="always", cache=True)
def softmax_at(v, lse):
    """P_c of a logit: e^(v - M) / S (the rounding of v - M put back: ``exp_diff``)."""
    return exp_diff(v, lse[0]) / lse[1]


@njit(inline="always", cache=True)
def log_softmax_at(v, lse):
    """log P_c of a logit: (v - M) - log S."""
    return (v - lse[0]) - lse[2]


@njit(cache=True, error_model="numpy")
def kl_target_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """KL divergence from target logits,  sum_c P_c (log P_c - log Q_c),  against predicted
    probabilities (log clip(q_c)) or logits (log Q_c = (b_c - M_q) - log S_q). Of two equal
    rows of logits each term is exactly 0."""
    eps, p_lse, q_lse = params[0], params[3], params[4]
    a, b, f32, _ = row_blocks(ops, i, c0, c1)
    n = c1 - c0
    q_logits = is_logits(q_lse)
    bad, nan = (0.0, 0.0) if q_logits else check_block(b)
    nan += undefined(p_lse) + undefined(q_lse)
    for k in range(n):
        av = np.float64(a[k])
        bv = np.float64(b[k])
        pv = softmax_at(av, p_lse)
        if q_logits:
            # (a - M_p) - (b - M_q) before the logs of the sums: exact 0 for equal rows
            d = ((av - p_lse[0]) - (bv - q_lse[0])) - (p_lse[2] - q_lse[2])
        else:
            d = log_softmax_at(av, p_lse) - log(clip(bv, eps))
        buf64[k] = pv * d if pv != 0.0 else 0.0
    return terms_partial(buf64, n, f32, bad, nan)


@njit(cache=True, error_model="numpy")
def soft_ce_target_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """Soft-target cross-entropy from target logits:  -sum_c w_c P~_c log Q_c,  P~ the target's
    softmax, smoothed; Q clipped probabilities or the softmax of predicted logits."""
    eps, class_weight, smoothing, p_lse, q_lse = params
    a, b, f32, n_classes = row_blocks(ops, i, c0, c1)
    n = c1 - c0
    q_logits = is_logits(q_lse)
    bad, nan = (0.0, 0.0) if q_logits else check_block(b)
    nan += undefined(p_lse) + undefined(q_lse)
    fill_class_weights(class_weight, c0, c1, wbuf)
    for k in range(n):
        pv = smoothed(softmax_at(np.float64(a[k]), p_lse), smoothing, n_classes)
        bv = np.float64(b[k])
        lq = log_softmax_at(bv, q_lse) if q_logits else log(clip(bv, eps))
        buf64[k] = -wbuf[k] * pv * lq if pv != 0.0 else 0.0
    return terms_partial(buf64, n, f32, bad, nan)


@njit(cache=True, error_model="numpy")
def js_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """Jensen-Shannon divergence where either row (or both) holds logits: the terms of
    ``js_term`` of the two softmax values (or probabilities)."""
    p_lse, q_lse = params[3], params[4]
    a, b, f32, _ = row_blocks(ops, i, c0, c1)
    n = c1 - c0
    p_logits = is_logits(p_lse)
    q_logits = is_logits(q_lse)
    bad_p, nan_p = (0.0, 0.0) if p_logits else check_block(a)
    bad_q, nan_q = (0.0, 0.0) if q_logits else check_block(b)
    for k in range(n):
        av = np.float64(a[k])
        bv = np.float64(b[k])
        pv = softmax_at(av, p_lse) if p_logits else av
        qv = softmax_at(bv, q_lse) if q_logits else bv
        buf64[k] = js_term(pv, qv)
    nan = nan_p + nan_q + undefined(p_lse) + undefined(q_lse)
    return terms_partial(buf64, n, f32, max(bad_p, bad_q), nan)


@njit(inline="always", cache=True)
def logits_finish(st, ops, i, params):
    m, s, a, mass, bad, extra = st
    if m == -np.inf:
        return np.nan, 1.0, bad == 0.0  # the softmax of a row of -inf is undefined
    lp = log1p(s)
    return extra + (a + lp * mass) + 0.0 * lp, 1.0, bad == 0.0


# The family: one entry per measure and kind of input, each with kernels of its own
# (``_driver``). Operands (p, x): target probabilities and predicted probabilities or logits;
# every measure takes the family's parameters (KL and JS: no class weights, no smoothing).
KERNELS = row_kernels(
    __name__,
    operands=("p", "x"),
    params=("eps", "class_weight", "smoothing"),
    array_params=("class_weight",),
    bodies={
        "soft_ce_probs": Body(soft_ce_probs_block, sum_merge, sum_finish),
        "soft_ce_logits": Body(soft_ce_logits_block, lin_merge, logits_finish),
        "kl_probs": Body(kl_probs_block, sum_merge, sum_finish),
        "kl_logits": Body(kl_logits_block, lin_merge, logits_finish),
        "js_probs": Body(js_block, sum_merge, sum_finish),
        # target logits (``target_from_logits``), and Jensen-Shannon of logits
        "soft_ce_target_logits_probs": Body(
            soft_ce_target_logits_block, sum_merge, sum_finish, prologue=target_lse
        ),
        "soft_ce_target_logits_logits": Body(
            soft_ce_target_logits_block, sum_merge, sum_finish, prologue=both_lse
        ),
        "kl_target_logits_probs": Body(
            kl_target_logits_block, sum_merge, sum_finish, prologue=target_lse
        ),
        "kl_target_logits_logits": Body(
            kl_target_logits_block, sum_merge, sum_finish, prologue=both_lse
        ),
        "js_logits": Body(js_logits_block, sum_merge, sum_finish, prologue=pred_lse),
        "js_target_logits_probs": Body(
            js_logits_block, sum_merge, sum_finish, prologue=target_lse
        ),
        "js_target_logits_logits": Body(js_logits_block, sum_merge, sum_finish, prologue=both_lse),
    },
)
