"""Cross-entropy with class-index targets (negative log-likelihood), from probabilities or
logits, with class weights, label smoothing and ``ignore_index``; and scikit-learn's
``log_loss`` with its input checks fused into the one pass.

The row kernel, a small-call path, and for a few long rows the tile and fold kernels
(``_launch.Split``); the partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._common import chunk_bounds, clip, emit, weight_at
from ._math import (
    block_sum,
    is_float32,
    keep,
    log,
    log1p,
    unowned,
)
from .exactsum import ACC_LEN, acc_add, acc_value
from .logsumexp import (
    COL_BLOCK,
    LANE_TILE,
    block_bounds,
    buffer_len,
    lse_block,
    lse_rows8,
    n_blocks,
)
from .partials import (
    add_merge,
    check_block,
    fill_class_weights,
    get,
    label_status,
    lin_merge,
    put,
    shifted_terms,
)


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
    """Cross-entropy of each row with its class-index target: any options, rows of any length
    (column blocks folded in order). Calls that ``nll_logits_kernel`` takes (logits, no
    smoothing, one block) go there instead: the same values, with less compiled code each."""
    n, c = x.shape
    nchunks = counts.shape[0]
    blen = buffer_len(c)
    scratch, scratch64 = np.empty((nchunks, blen)), np.empty((nchunks, 2, blen))
    x, labels, class_weight = unowned(x), unowned(labels), unowned(class_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc, sc64 = unowned(counts), unowned(bad), unowned(scratch), unowned(scratch64)
    for k in range(nchunks):
        lo, hi = chunk_bounds(n, nchunks, k)
        buf, buf64, wbuf = sc[k], sc64[k, 0], sc64[k, 1]
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


@njit(nogil=True, cache=True, error_model="numpy")
def nll_logits_kernel(
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
    """``nll_kernel`` for logits with no label smoothing and rows of at most ``COL_BLOCK``
    classes (``from_logits`` and ``smoothing`` are taken as True and 0): the hot path, kept in a
    kernel of its own so that a first call compiles only what it runs."""
    n, c = x.shape
    nchunks = counts.shape[0]
    blen = buffer_len(c)
    # float32 rows of at most 16 classes: eight rows per vector (lse_rows8), the same bits
    lanes = is_float32(x) and c <= 16
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
        # The hot path (one block, no smoothing): what nll_row + nll_finish compute,
        # without building and folding partials, ROW_GROUP rows at a time so that their
        # log1p runs as one vector loop (a scalar log1p per row was ~15% of a C = 100 row).
        for g0 in range(lo, hi, ROW_GROUP):
            g1 = min(hi, g0 + ROW_GROUP)
            if lanes:
                lse_rows8(x, g0, min(g1, g0 + 8), c, tile)
                if g1 > g0 + 8:
                    lse_rows8(x, g0 + 8, g1, c, tile2)
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
    keep(scratch)
    keep(scratch64)
    keep(lane_tiles)


@njit(inline="always", cache=True)
def _small_buffers(reduce):
    acc = np.zeros((1, 2, ACC_LEN if reduce else 0), np.int64)
    return acc, np.zeros(1, np.int64), np.zeros(1, np.int64), np.empty(0, np.float64)


@njit(cache=True, error_model="numpy")
def nll_small_logits(x, labels, from_logits, eps, has_ignore, ignore_index, reduce, out):
    """A small ``cross_entropy`` call from logits with every option at its default, in one
    compiled call: ``nll_logits_kernel`` on one chunk (the same arithmetic and bits), its
    scratch allocated here and its exact sum folded here. Returns (sum of the values, bad): bad
    when a label is invalid (the caller then takes the general path, which explains it). The
    weights are all 1, so the divisor of a mean is the number of rows. ``from_logits``,
    ``has_ignore`` and ``ignore_index`` come from the caller (True, False, -100), not as
    constants here: Numba would compile the kernel again for their literal types, besides the
    variant that large calls use."""
    acc, counts, bad, none = _small_buffers(reduce)
    nll_logits_kernel(
        x, labels, from_logits, eps, none, 0.0, has_ignore, ignore_index, 1.0, none, out, acc,
        counts, bad,
    )  # fmt: skip
    if bad[0] != 0:
        return 0.0, True
    return (acc_value(acc[0, 0]) if reduce else 0.0), False


@njit(cache=True, error_model="numpy")
def nll_small_probabilities(x, labels, from_logits, eps, has_ignore, ignore_index, reduce, out):
    """``nll_small_logits`` for probabilities (``nll_kernel``)."""
    acc, counts, bad, none = _small_buffers(reduce)
    nll_kernel(
        x, labels, from_logits, eps, none, 0.0, has_ignore, ignore_index, 1.0, none, out, acc,
        counts, bad,
    )  # fmt: skip
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


@njit(nogil=True, cache=True, error_model="numpy")
def log_loss_kernel(proba, index, binary, round_f32, eps, sample_weight, acc, counts, stats):
    """Sum of ``-log(clip(q_y)) * s_i`` and of ``s_i`` as scikit-learn computes them.

    ``binary``: ``proba`` is (n, 1) holding P(positive) and q is ``[1 - p, p]``, with ``1 - p``
    rounded to the input dtype first (``round_f32``), exactly as scikit-learn's stacking does.
    ``stats[0]`` collects what scikit-learn checks, over every call on a thread's buffers
    (min, max start at +inf, -inf, the flags at 0): min, max, any NaN, any inf, and
    whether some row does not sum to one within ``1e-8 + sqrt(eps)`` (its ``isclose``).
    """
    n, c = proba.shape
    tol = 1e-8 + np.sqrt(eps)
    proba, index, sample_weight = unowned(proba), unowned(index), unowned(sample_weight)
    acc, counts, stats = unowned(acc), unowned(counts), unowned(stats)
    lowest = np.inf
    highest = -np.inf
    has_nan = 0.0
    has_inf = 0.0
    not_normalised = 0.0
    for i in range(n):
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
        acc_add(acc[0, 0], value)
        acc_add(acc[0, 1], sw)
    counts[0] += n
    stats[0, 0] = min(stats[0, 0], lowest)
    stats[0, 1] = max(stats[0, 1], highest)
    stats[0, 2] = max(stats[0, 2], has_nan)
    stats[0, 3] = max(stats[0, 3], has_inf)
    stats[0, 4] = max(stats[0, 4], not_normalised)
