"""Entropy, cross-entropy, KL and Jensen-Shannon over rows of class probabilities or logits.

Every kernel here has the same shape. A row is cut into column blocks (``COL_BLOCK`` columns,
boundaries fixed by the column index); a *block function* reduces one block to a partial (a
6-tuple of float64), a *merge* folds the partials of a row in block order, a *finish* turns the
folded partial into the loss in nats, and

    value  = loss_nats / ln_base * sample_weight       (ln_base = 1.0 for nats)
    weight = class_weight[y] * sample_weight            (what ``"mean"`` divides by)

is emitted to ``out`` and/or the exact accumulators. Rows are spread over threads in fixed
chunks; with ``split=True`` (a few very long rows) the blocks of each row are spread over the
threads instead and folded afterwards in the same order, so a row's value is the same bits for
every thread count.

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

from ._common import chunk_bounds, clip, emit, weight_at
from ._math import (
    any_nan,
    any_not_probability,
    block_sum,
    fma,
    is_float32,
    keep,
    log,
    log1p,
    sum8,
    two_sum,
    unowned,
)
from .exactsum import ACC_LEN, acc_add, acc_value
from .logsumexp import (
    COL_BLOCK,
    LANE_TILE,
    block_bounds,
    buffer_len,
    lse_block,
    lse_merge,
    lse_rows8,
    n_blocks,
)

_BAD = 1.0  # a partial's "invalid input" slot holds 1.0 when the block has a bad value

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
def smoothed(p, smoothing, n_classes):
    """Label smoothing of a target probability, as PyTorch: (1 - s) p + s / C."""
    return p if smoothing == 0.0 else (1.0 - smoothing) * p + smoothing / n_classes


@njit(inline="always", cache=True)
def shift(a, w, delta):
    """a + delta * w, where w is the mass of the terms whose reference point moves by delta;
    nothing moves when there is no mass (delta may then be infinite)."""
    return a + delta * w if w != 0.0 else a


@njit(inline="always", cache=True)
def lin_merge(st, part):
    """Fold (m, s', A, P, bad, nan) partials: A = sum_c a_c (m - x_c) is a sum of terms
    measured from the block maximum, P = sum_c a_c their weights; moving the reference from m
    to M adds (M - m) P."""
    m_acc, s_acc, a_acc, p_acc, bad_acc, nan_acc = st
    m, s, a, p, bad, nan = part
    m_new, s_new, _, _ = lse_merge(m_acc, s_acc, m, s)
    a_new = shift(a_acc, p_acc, m_new - m_acc) + shift(a, p, m_new - m)
    return m_new, s_new, a_new, p_acc + p, max(bad_acc, bad), nan_acc + nan


@njit(inline="always", cache=True)
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


@njit(inline="always", cache=True)
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
def put(part, t, v):
    part[t, 0], part[t, 1], part[t, 2], part[t, 3], part[t, 4], part[t, 5] = v


@njit(inline="always", cache=True)
def get(part, t):
    return part[t, 0], part[t, 1], part[t, 2], part[t, 3], part[t, 4], part[t, 5]


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


# ---------------------------------------------------------------------------------------------
# Entropy


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


# ---------------------------------------------------------------------------------------------
# Cross-entropy with class-index targets


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
        cw = class_weight[c0:c1]
        for k in range(n):
            wbuf[k] = cw[k]


@njit(cache=True, error_model="numpy")
def nll_block(row, c0, c1, y, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf):
    """Partial for a class-index target: the target's own term when y is in the block, and the
    smoothing sum sum_c w_c (-log q_c) (relative to the block maximum for logits)."""
    n = c1 - c0
    x = row[c0:c1]
    in_block = y >= c0 and y < c1
    if from_logits:
        m, s = lse_block(x, buf)
        x_y = np.float64(row[y]) if in_block else 0.0
        a = 0.0
        wsum = 0.0
        if smoothing != 0.0:
            fill_class_weights(class_weight, c0, c1, wbuf)
            wsum = block_sum(wbuf, n, is_float32(row), 0)
            if m == -np.inf and s == 0.0:
                # every logit of the block is -inf: smoothing mass there is an infinite loss
                return m, s, (np.inf if wsum != 0.0 else 0.0), 0.0, 0.0, x_y
            a = shifted_terms(x, m, wbuf, buf64, is_float32(row))
        # (m, s', A = sum w_c (m - x_c), W = sum w_c, bad = 0, x_y): lin_merge sums slot 5,
        # where only the target's block has a non-zero entry.
        return m, s, a, wsum, 0.0, x_y
    q_y = np.float64(row[y]) if in_block else 0.0
    smooth = 0.0
    if smoothing != 0.0:
        fill_class_weights(class_weight, c0, c1, wbuf)
        for k in range(n):
            buf64[k] = wbuf[k] * log(clip(np.float64(x[k]), eps))
        smooth = -block_sum(buf64, n, is_float32(row))
    bad, nan = check_block(x)
    return q_y, smooth, nan, 0.0, bad, 0.0


@njit(inline="always", cache=True)
def nll_merge(st, part, from_logits):
    if from_logits:
        return lin_merge(st, part)
    return add_merge(st, part)


@njit(inline="always", cache=True)
def nll_finish(st, y, from_logits, eps, class_weight, smoothing, n_classes):
    w_y = weight_at(class_weight, y)
    if from_logits:
        m, s, a, wsum, _, x_y = st
        lp = log1p(s)
        loss = w_y * ((m - x_y) + lp)
        if smoothing != 0.0:
            smooth = a + lp * wsum
            loss = (1.0 - smoothing) * loss + (smoothing / n_classes) * smooth
        return loss, True
    q_y, smooth, nan, _, bad, _ = st
    loss = -w_y * log(clip(q_y, eps))
    if smoothing != 0.0:
        loss = (1.0 - smoothing) * loss + (smoothing / n_classes) * smooth
    return loss + nan, bad == 0.0


@njit(cache=True, error_model="numpy")
def nll_row(row, y, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf):
    c = row.shape[0]
    st = nll_block(
        row, 0, min(c, COL_BLOCK), y, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf
    )
    for b in range(1, n_blocks(c)):
        c0, c1 = block_bounds(c, b)
        part = nll_block(
            row, c0, c1, y, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf
        )
        st = nll_merge(st, part, from_logits)
    return st


@njit(inline="always", cache=True)
def skip_row(status, i, k, out, bad):
    """A row whose label is ignored (status 1) or invalid (2, flagged): its output is 0."""
    if status == 2:
        bad[k] = 1
    if out.shape[0] > 0:
        out[i] = 0.0


ROW_GROUP = 16
"""Rows whose log1p is taken in one vector loop (block buffers hold at least 16 values)."""


@njit(inline="always", cache=True)
def log1p_group(v):
    """v[:ROW_GROUP] = log1p(v[:ROW_GROUP]), one vector loop of fixed length."""
    for j in range(ROW_GROUP):
        v[j] = log1p(v[j])


@njit(nogil=True, cache=True, error_model="numpy")
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
    blen = buffer_len(c)
    short_logits = from_logits and smoothing == 0.0 and c <= COL_BLOCK
    # float32 rows of at most 16 classes: eight rows per vector (lse_rows8), the same bits
    lanes = short_logits and is_float32(x) and c <= 16
    scratch, scratch64 = np.empty((nchunks, blen)), np.empty((nchunks, 2, blen))
    lane_tiles = np.empty((nchunks, 2, LANE_TILE if lanes else 0))
    x, labels, class_weight = unowned(x), unowned(labels), unowned(class_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc, sc64 = unowned(counts), unowned(bad), unowned(scratch), unowned(scratch64)
    lt = unowned(lane_tiles)
    for k in range(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        buf, buf64, wbuf = sc[k], sc64[k, 0], sc64[k, 1]
        tile, tile2 = lt[k, 0], lt[k, 1]
        if short_logits:
            # The hot path (one block, no smoothing): what nll_row + nll_finish compute,
            # without building and folding partials, ROW_GROUP rows at a time so that their
            # log1p runs as one vector loop (a scalar log1p per row was ~15% of a C = 100 row).
            for g0 in range(lo, hi, ROW_GROUP):
                g1 = min(hi, g0 + ROW_GROUP)
                if lanes:
                    lse_rows8(x, g0, min(g1, g0 + 8), 16, tile)
                    if g1 > g0 + 8:
                        lse_rows8(x, g0 + 8, g1, 16, tile2)
                for i in range(g0, g1):
                    if label_status(labels[i], c, has_ignore, ignore_index) == 0:
                        if lanes:
                            t = tile if i < g0 + 8 else tile2
                            lane = (i - g0) % 8
                            m, s = t[256 + lane], t[264 + lane]
                        else:
                            m, s = lse_block(x[i], buf)
                        buf64[i - g0] = m - np.float64(x[i, np.int64(labels[i])])
                        wbuf[i - g0] = s
                    else:
                        buf64[i - g0] = 0.0
                        wbuf[i - g0] = 0.0
                log1p_group(wbuf)
                for i in range(g0, g1):
                    status = label_status(labels[i], c, has_ignore, ignore_index)
                    if status != 0:
                        skip_row(status, i, k, out, bad)
                        continue
                    y = np.int64(labels[i])
                    loss = weight_at(class_weight, y) * (buf64[i - g0] + wbuf[i - g0])
                    sw = weight_at(sample_weight, i)
                    emit(
                        i,
                        k,
                        loss / ln_base * sw,
                        weight_at(class_weight, y) * sw,
                        out,
                        acc,
                        counts,
                    )
        else:
            for i in range(lo, hi):
                status = label_status(labels[i], c, has_ignore, ignore_index)
                if status != 0:
                    skip_row(status, i, k, out, bad)
                    continue
                y = np.int64(labels[i])
                st = nll_row(x[i], y, from_logits, eps, class_weight, smoothing, buf, buf64, wbuf)
                loss, ok = nll_finish(st, y, from_logits, eps, class_weight, smoothing, c)
                if not ok:
                    bad[k] = 1
                sw = weight_at(sample_weight, i)
                emit(i, k, loss / ln_base * sw, weight_at(class_weight, y) * sw, out, acc, counts)
    keep(scratch)
    keep(scratch64)
    keep(lane_tiles)


@njit(cache=True, error_model="numpy")
def nll_small(x, labels, from_logits, eps, reduce, out):
    """A small ``cross_entropy`` call with every option at its default, in one compiled call:
    the serial ``nll_kernel`` on one chunk (the same arithmetic and bits), its scratch
    allocated here and its exact sum folded here. Returns (sum of the values, bad): bad when a
    label or probability is invalid (the caller then takes the general path, which explains
    it). The weights are all 1, so the divisor of a mean is the number of rows."""
    acc = np.zeros((1, 2, ACC_LEN if reduce else 0), np.int64)
    counts = np.zeros(1, np.int64)
    bad = np.zeros(1, np.int64)
    no_weight = np.empty(0, np.float64)
    nll_kernel(
        x,
        labels,
        from_logits,
        eps,
        no_weight,
        0.0,
        False,
        0,
        1.0,
        no_weight,
        out,
        acc,
        counts,
        bad,
    )
    if bad[0] != 0:
        return 0.0, True
    return (acc_value(acc[0, 0]) if reduce else 0.0), False


@njit(nogil=True, cache=True, error_model="numpy")
def nll_tiles(
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
    lo,
    t0,
    t1,
    part,
):
    """Partials of tiles [t0, t1) (see ``entropy_tiles``); rows with a label that is ignored
    or invalid are skipped (``nll_fold`` reports them)."""
    c = x.shape[1]
    nb = n_blocks(c)
    blen = buffer_len(c)
    buf, scratch64 = np.empty(blen), np.empty((2, blen))
    for t in range(t0, t1):
        i = lo + t // nb
        if label_status(labels[i], c, has_ignore, ignore_index) != 0:
            continue
        c0, c1 = block_bounds(c, t % nb)
        y = np.int64(labels[i])
        v = nll_block(
            x[i], c0, c1, y, from_logits, eps, class_weight, smoothing, buf, scratch64[0],
            scratch64[1],
        )  # fmt: skip
        put(part, t, v)


@njit(nogil=True, cache=True, error_model="numpy")
def nll_fold(
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
    lo,
    hi,
    part,
    out,
    acc,
    counts,
    bad,
):
    """Rows [lo, hi) from their tiles' partials, folded in block order as ``nll_row``."""
    c = x.shape[1]
    nb = n_blocks(c)
    for r in range(hi - lo):
        i = lo + r
        status = label_status(labels[i], c, has_ignore, ignore_index)
        if status != 0:
            skip_row(status, i, 0, out, bad)
            continue
        y = np.int64(labels[i])
        st = get(part, r * nb)
        for b in range(1, nb):
            st = nll_merge(st, get(part, r * nb + b), from_logits)
        loss, ok = nll_finish(st, y, from_logits, eps, class_weight, smoothing, c)
        if not ok:
            bad[0] = 1
        sw = weight_at(sample_weight, i)
        emit(i, 0, loss / ln_base * sw, weight_at(class_weight, y) * sw, out, acc, counts)


# ---------------------------------------------------------------------------------------------
# Cross-entropy with soft targets, KL divergence, Jensen-Shannon: two rows per sample.


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


# ---------------------------------------------------------------------------------------------
# scikit-learn's log_loss, with its input checks fused into the one pass over the data.


@njit(nogil=True, cache=True, error_model="numpy")
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
    proba, index, sample_weight = unowned(proba), unowned(index), unowned(sample_weight)
    acc, counts, stats = unowned(acc), unowned(counts), unowned(stats)
    for k in range(nchunks):
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
