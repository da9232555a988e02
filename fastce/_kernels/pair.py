"""Two rows per sample: cross-entropy with soft targets, KL divergence, Jensen-Shannon.

The row kernel, and for a few long rows the tile and fold kernels (``_launch.Split``); the
partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._common import chunk_bounds, clip, emit, weight_at
from ._math import (
    block_sum,
    fma,
    is_float32,
    keep,
    log,
    log1p,
    sum8,
    unowned,
)
from .logsumexp import (
    COL_BLOCK,
    block_bounds,
    buffer_len,
    lse_block,
    n_blocks,
)
from .partials import (
    check_block,
    fill_class_weights,
    get,
    lin_merge,
    put,
    shifted_terms,
    smoothed,
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


@njit(cache=True, error_model="numpy")
def pair_block(
    kind,
    p_row,
    x_row,
    c0,
    c1,
    from_logits,
    eps,
    class_weight,
    smoothing,
    n_classes,
    buf,
    buf64,
    wbuf,
):
    """Partials of the two-distribution measures over one block.

    kind 0: soft cross-entropy  -sum w_c p_c log q_c
    kind 1: KL                   sum p_c log(p_c / q_c)
    kind 2: Jensen-Shannon       1/2 sum [p log(p/m) + q log(q/m)], m = (p + q) / 2
    From logits (kinds 0 and 1) the partial is (m, s', A, P, bad, nan) with the terms measured
    from the block maximum; from probabilities it is a plain sum.
    """
    n = c1 - c0
    p = p_row[c0:c1]
    x = x_row[c0:c1]
    f32 = is_float32(p_row) and is_float32(x_row)
    bad_p, nan_p = check_block(p)
    if kind == 0:
        fill_class_weights(class_weight, c0, c1, wbuf)
    if from_logits:
        m, s = lse_block(x, buf)
        # a_c: the coefficient of (m - x_c); for KL also the p log p part, kept in slot 5.
        extra = 0.0
        if kind == 0:
            for k in range(n):
                wbuf[k] = smoothed(np.float64(p[k]), smoothing, n_classes) * wbuf[k]
        else:
            for k in range(n):
                wbuf[k] = np.float64(p[k])
                pv = np.float64(p[k])
                buf64[k] = pv * log(pv) if pv != 0.0 else 0.0
            extra = block_sum(buf64, n, f32)
        a = shifted_terms(x, m, wbuf, buf64, f32)
        if m == -np.inf and s == 0.0:
            # every logit of the block is -inf: target mass there makes the loss infinite
            mass = sum8(wbuf, n)
            a = np.inf if mass != 0.0 else 0.0
            return m, s, a, 0.0, bad_p, extra + nan_p
        return m, s, a, block_sum(wbuf, n, f32, 0), bad_p, extra + nan_p
    bad_q, nan_q = check_block(x)
    if kind == 0:
        # q and p's coefficients are copied into buffers padded to a multiple of 16 (q with
        # 1.0, p and the weights with 0, a term of 0), so that the loop of logs runs whole
        # vectors: at 100 classes its scalar remainder cost ~19% of the row (3.09 ns per
        # element against 2.6 at 96 or 104, one thread). The sum takes the n terms.
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
    elif kind == 1:
        kl_terms(p, x, eps, buf64, f32)
    else:
        for k in range(n):
            buf64[k] = js_term(np.float64(p[k]), np.float64(x[k]))
    # a NaN in q must reach the value even where p_c == 0 dropped its term
    return block_sum(buf64, n, f32), 0.0, 0.0, 0.0, max(bad_p, bad_q), nan_p + nan_q


@njit(inline="always", cache=True)
def pair_merge(st, part, from_logits):
    if from_logits:
        return lin_merge(st, part)
    return sum_merge(st, part)


@njit(inline="always", cache=True)
def pair_finish(st, from_logits):
    if from_logits:
        m, s, a, mass, bad, extra = st
        if m == -np.inf:
            return np.nan, bad == 0.0  # the softmax of a row of -inf is undefined
        lp = log1p(s)
        return extra + (a + lp * mass) + 0.0 * lp, bad == 0.0
    return (st[0] + st[1]) + st[5], st[4] == 0.0


@njit(cache=True, error_model="numpy")
def pair_row(kind, p, x, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf):
    c = x.shape[0]
    st = pair_block(
        kind,
        p,
        x,
        0,
        min(c, COL_BLOCK),
        from_logits,
        eps,
        class_weight,
        smoothing,
        c,
        buf,
        buf64,
        wbuf,
    )
    for b in range(1, n_blocks(c)):
        c0, c1 = block_bounds(c, b)
        part = pair_block(
            kind, p, x, c0, c1, from_logits, eps, class_weight, smoothing, c, buf, buf64, wbuf
        )
        st = pair_merge(st, part, from_logits)
    return st


@njit(nogil=True, cache=True, error_model="numpy")
def pair_kernel(
    p,
    x,
    kind,
    from_logits,
    eps,
    class_weight,
    smoothing,
    ln_base,
    sample_weight,
    out,
    acc,
    counts,
    bad,
):
    n, c = x.shape
    nchunks = counts.shape[0]
    blen = buffer_len(c)
    scratch = np.empty((nchunks, 3, blen))
    p, x, class_weight, sample_weight = (
        unowned(p),
        unowned(x),
        unowned(class_weight),
        unowned(sample_weight),
    )
    out, acc, counts, bad, sc = (
        unowned(out),
        unowned(acc),
        unowned(counts),
        unowned(bad),
        unowned(scratch),
    )
    for k in range(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        buf, buf64, wbuf = sc[k, 0], sc[k, 1], sc[k, 2]
        for i in range(lo, hi):
            if c <= COL_BLOCK:  # one block: no fold
                st = pair_block(
                    kind,
                    p[i],
                    x[i],
                    0,
                    c,
                    from_logits,
                    eps,
                    class_weight,
                    smoothing,
                    c,
                    buf,
                    buf64,
                    wbuf,
                )
            else:
                st = pair_row(
                    kind, p[i], x[i], from_logits, eps, class_weight, smoothing, buf, buf64, wbuf
                )
            value, ok = pair_finish(st, from_logits)
            if not ok:
                bad[k] = 1
            sw = weight_at(sample_weight, i)
            emit(i, k, value / ln_base * sw, sw, out, acc, counts)
    keep(scratch)


@njit(nogil=True, cache=True, error_model="numpy")
def pair_tiles(
    p, x, kind, from_logits, eps, class_weight, smoothing, ln_base, sample_weight, lo, t0, t1, part
):
    """Partials of tiles [t0, t1) (see ``entropy_tiles``)."""
    c = x.shape[1]
    nb = n_blocks(c)
    scratch = np.empty((3, buffer_len(c)))
    for t in range(t0, t1):
        i = lo + t // nb
        c0, c1 = block_bounds(c, t % nb)
        v = pair_block(
            kind, p[i], x[i], c0, c1, from_logits, eps, class_weight, smoothing, c, scratch[0],
            scratch[1], scratch[2],
        )  # fmt: skip
        put(part, t, v)


@njit(nogil=True, cache=True, error_model="numpy")
def pair_fold(
    p,
    x,
    kind,
    from_logits,
    eps,
    class_weight,
    smoothing,
    ln_base,
    sample_weight,
    lo,
    hi,
    part,
    out,
    acc,
    counts,
    bad,
):
    """Rows [lo, hi) from their tiles' partials, folded in block order as ``pair_row``."""
    nb = n_blocks(x.shape[1])
    for r in range(hi - lo):
        st = get(part, r * nb)
        for b in range(1, nb):
            st = pair_merge(st, get(part, r * nb + b), from_logits)
        value, ok = pair_finish(st, from_logits)
        if not ok:
            bad[0] = 1
        sw = weight_at(sample_weight, lo + r)
        emit(lo + r, 0, value / ln_base * sw, sw, out, acc, counts)
