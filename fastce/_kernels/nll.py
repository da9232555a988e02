"""Cross-entropy with class-index targets (negative log-likelihood), from probabilities or
logits, with class weights, label smoothing and ``ignore_index``; and scikit-learn's
``log_loss`` with its input checks fused into the one pass.

A body per kind of input and ``KERNELS``, the table ``_driver`` makes their kernels from;
kernels of their own for the hot path (``HOT``: ``nll_hot_kernel``, and
``nll_hot_lanes_kernel`` for float32 rows of at most 16 classes), and small calls' entry points
(``SMALL``). The partials and their merges are described in ``partials``.
"""

import numpy as np
from numba import njit

from ._common import clip, emit, half_value, kept, weight_at
from ._driver import Body, define_kernels, row_kernels, skip_row, small_call
from ._math import (
    block_sum,
    exp_diff,
    exp_lite,
    is_float32,
    keep,
    log,
    log1p,
    unowned,
)
from .exactsum import BLOCK, acc_add, acc_add_block
from .logsumexp import (
    _SUBTRACT_FROM,
    COLUMN_TILE,
    LANE_TILE,
    buffer_len,
    lse_block,
    lse_block_half,
    lse_columns,
    lse_rows8,
)
from .partials import (
    add_merge,
    check_block,
    fill_class_weights,
    label_status,
    lin_merge,
    shifted_terms,
)


@njit(inline="always", cache=True)
def nll_status(ops, i, params):
    """0: a valid class index; 1: ignored; 2: invalid (out of range or not integral)."""
    return label_status(ops[1][i], ops[0].shape[1], params[3], params[4])


@njit(inline="always", cache=True)
def smooth_loss(loss, smooth, smoothing, n_classes):
    """(1 - s) loss + s / C smooth: label smoothing's mix, nothing without it."""
    if smoothing != 0.0:
        return (1.0 - smoothing) * loss + (smoothing / n_classes) * smooth
    return loss


@njit(cache=True, error_model="numpy")
def nll_probs_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """(q_y, S, nan, 0, bad, 0): the target's own probability when y is in the block, and the
    smoothing sum S = sum_c w_c (-log clip(q_c)) (see ``_driver``)."""
    eps, class_weight, smoothing = params[0], params[1], params[2]
    row = ops[0][i]
    y = np.int64(ops[1][i])
    n = c1 - c0
    x = row[c0:c1]
    q_y = np.float64(row[y]) if (y >= c0 and y < c1) else 0.0
    smooth = 0.0
    if smoothing != 0.0:
        fill_class_weights(class_weight, c0, c1, wbuf)
        for k in range(n):
            buf64[k] = wbuf[k] * log(clip(np.float64(x[k]), eps))
        smooth = -block_sum(buf64, n, is_float32(row))
    bad, nan = check_block(x)
    return q_y, smooth, nan, 0.0, bad, 0.0


@njit(cache=True, error_model="numpy")
def nll_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    """(m, s', A = sum w_c (m - x_c), W = sum w_c, bad = 0, x_y): the block's log-sum-exp, the
    smoothing sum relative to its maximum, and the target's logit when y is in the block
    (``lin_merge`` sums slot 5, where only the target's block has a non-zero entry)."""
    class_weight, smoothing = params[1], params[2]
    row = ops[0][i]
    y = np.int64(ops[1][i])
    x = row[c0:c1]
    m, s = lse_block(x, buf)
    x_y = np.float64(row[y]) if (y >= c0 and y < c1) else 0.0
    a = 0.0
    wsum = 0.0
    if smoothing != 0.0:
        fill_class_weights(class_weight, c0, c1, wbuf)
        wsum = block_sum(wbuf, c1 - c0, is_float32(row), 0)
        if m == -np.inf and s == 0.0:
            # every logit of the block is -inf: smoothing mass there is an infinite loss
            return m, s, (np.inf if wsum != 0.0 else 0.0), 0.0, 0.0, x_y
        a = shifted_terms(x, m, wbuf, buf64, is_float32(row))
    return m, s, a, wsum, 0.0, x_y


@njit(inline="always", cache=True)
def half_logits_block(ops, i, c0, c1, bfloat16, buf):
    """``nll_logits_block`` with no label smoothing for half-precision logits (their 16 bits),
    widened in the block's own buffer: the bits of the same values in float32."""
    row = ops[0][i]
    y = np.int64(ops[1][i])
    m, s = lse_block_half(row[c0:c1], buf, bfloat16)
    x_y = np.float64(half_value(row[y], bfloat16)) if (y >= c0 and y < c1) else 0.0
    return m, s, 0.0, 0.0, 0.0, x_y


@njit(cache=True, error_model="numpy")
def nll_bf16_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    return half_logits_block(ops, i, c0, c1, True, buf)


@njit(cache=True, error_model="numpy")
def nll_f16_logits_block(ops, i, c0, c1, params, buf, buf64, wbuf):
    return half_logits_block(ops, i, c0, c1, False, buf)


@njit(inline="always", cache=True)
def nll_probs_finish(st, ops, i, params):
    eps, class_weight, smoothing = params[0], params[1], params[2]
    y = np.int64(ops[1][i])
    w_y = weight_at(class_weight, y)
    q_y, smooth, nan, _, bad, _ = st
    loss = smooth_loss(-w_y * log(clip(q_y, eps)), smooth, smoothing, ops[0].shape[1])
    return loss + nan, w_y, bad == 0.0


@njit(inline="always", cache=True)
def nll_logits_finish(st, ops, i, params):
    class_weight, smoothing = params[1], params[2]
    y = np.int64(ops[1][i])
    w_y = weight_at(class_weight, y)
    m, s, a, wsum, _, x_y = st
    lp = log1p(s)
    loss = w_y * ((m - x_y) + lp)
    return smooth_loss(loss, a + lp * wsum, smoothing, ops[0].shape[1]), w_y, True


# Operands (x, labels): predicted probabilities or logits, and class indices.
PARAMS = ("eps", "class_weight", "smoothing", "has_ignore", "ignore_index")
KERNELS = row_kernels(
    __name__,
    operands=("x", "labels"),
    params=PARAMS,
    array_params=("class_weight",),
    bodies={
        "nll_probs": Body(nll_probs_block, add_merge, nll_probs_finish, nll_status),
        "nll_logits": Body(nll_logits_block, lin_merge, nll_logits_finish, nll_status),
        # rows longer than a block of bfloat16 or float16 logits (their 16 bits), with no
        # label smoothing: each block widened as it is read, no tile of float32 rows
        "nll_bf16_logits": Body(nll_bf16_logits_block, lin_merge, nll_logits_finish, nll_status),
        "nll_f16_logits": Body(nll_f16_logits_block, lin_merge, nll_logits_finish, nll_status),
    },
)


ROW_GROUP = 16
"""Rows whose log1p is taken in one vector loop (block buffers hold at least 16 values)."""


@njit(inline="always", cache=True)
def log1p_group(v):
    """v[:ROW_GROUP] = log1p(v[:ROW_GROUP]), one vector loop of fixed length."""
    for j in range(ROW_GROUP):
        v[j] = log1p(v[j])


@njit(inline="always", cache=True)
def no_prologue(x, g0, g1, c, tiles):
    pass


@njit(inline="always", cache=True)
def lanes_prologue(x, g0, g1, c, tiles):
    """(m, s') of the group's rows, eight rows per vector (``lse_rows8``; the same bits)."""
    lse_rows8(x, g0, min(g1, g0 + 8), c, tiles[0])
    if g1 > g0 + 8:
        lse_rows8(x, g0 + 8, g1, c, tiles[1])


@njit(inline="always", cache=True)
def block_lse(x, i, g0, buf, tiles):
    return lse_block(x[i], buf)


@njit(inline="always", cache=True)
def lanes_lse(x, i, g0, buf, tiles):
    """Row i's (m, s') from its group's ``lanes_prologue``."""
    tile = tiles[0] if i < g0 + 8 else tiles[1]
    lane = (i - g0) % 8
    return tile[256 + lane], tile[264 + lane]


@njit(inline="always", cache=True)
def columns_prologue(x, g0, g1, c, tiles):
    """For float32 rows stored class-major: at the start of each ``COLUMN_TILE`` rows, their
    (m, s') from ``lse_columns`` (the bits of the row kernel) into tiles[0]; tiles[1] is its
    block buffer."""
    if g0 % COLUMN_TILE == 0:
        r1 = min(x.shape[0], g0 + COLUMN_TILE)
        t = tiles[0]
        lanes = t[2 * COLUMN_TILE :].reshape((8, COLUMN_TILE))
        column = np.empty(c, x.dtype)  # a row handed back to lse_block32, once per tile
        m, s = t[:COLUMN_TILE], t[COLUMN_TILE : 2 * COLUMN_TILE]
        lse_columns(x.T[:, g0:r1], m, s, lanes, column, tiles[1])


@njit(inline="always", cache=True)
def columns_lse(x, i, g0, buf, tiles):
    """Row i's (m, s') from its tile's ``columns_prologue``."""
    k = i % COLUMN_TILE
    return tiles[0][k], tiles[0][COLUMN_TILE + k]


@njit(inline="always", cache=True)
def hot_path(
    prologue, row_lse, tile_len, x, labels, class_weight, has_ignore, ignore_index, ln_base,
    sample_weight, where, out, acc, counts, bad,
):  # fmt: skip
    """What the driver computes for ``nll_logits`` with no smoothing and one block per row,
    without building and folding partials, ``ROW_GROUP`` rows at a time so that their log1p
    runs as one vector loop (a scalar log1p per row was ~15% of a C = 100 row); each row's
    (m, s') from ``row_lse`` after the group's ``prologue``."""
    n, c = x.shape
    scratch = np.empty((3, buffer_len(c)))
    lane_tiles = np.empty((2, tile_len))
    x, labels, class_weight = unowned(x), unowned(labels), unowned(class_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc, tiles = unowned(counts), unowned(bad), unowned(scratch), unowned(lane_tiles)
    where = unowned(where)
    buf, lse_terms, log_terms = sc[0], sc[1], sc[2]
    for g0 in range(0, n, ROW_GROUP):
        g1 = min(n, g0 + ROW_GROUP)
        prologue(x, g0, g1, c, tiles)
        for i in range(g0, g1):
            if kept(where, i) and label_status(labels[i], c, has_ignore, ignore_index) == 0:
                m, s = row_lse(x, i, g0, buf, tiles)
                lse_terms[i - g0] = m - np.float64(x[i, np.int64(labels[i])])
                log_terms[i - g0] = s
            else:
                lse_terms[i - g0] = 0.0
                log_terms[i - g0] = 0.0
        log1p_group(log_terms)
        for i in range(g0, g1):
            status = label_status(labels[i], c, has_ignore, ignore_index) if kept(where, i) else 1
            if status != 0:
                skip_row(status, i, out, bad)
                continue
            w_y = weight_at(class_weight, np.int64(labels[i]))
            loss = w_y * (lse_terms[i - g0] + log_terms[i - g0])
            sw = weight_at(sample_weight, i)
            emit(i, loss / ln_base * sw, w_y * sw, out, acc, counts)
    keep(scratch)
    keep(lane_tiles)


@njit(cache=True, error_model="numpy")
def pair_terms(x, labels, lse_terms, log_terms, ms, los):
    """For each two-class row [a, b] of x: lse_terms = m - x_y and log_terms = s', the same
    bits as ``lse_rows8`` (float32 rows) or ``lse_block`` (float64 rows) give: m = max(a, b)
    (a on a tie), s' = e**(lo - m) for the other entry lo (through ``1 + e - 1`` where that
    sum is at least ``_SUBTRACT_FROM``, for float32 rows, as theirs); a label that is not 1
    reads a (the caller skips rows whose label is not valid). ``ms``, ``los``: scratch.

    Each step is a loop of its own over contiguous float64 buffers, with selects instead of
    branches, so that each vectorises (one loop doing it all ran 4.5x slower: the exp's
    polynomial did not vectorise behind the stride-2 reads and the selects)."""
    n = x.shape[0]
    for k in range(n):
        ms[k] = np.float64(x[k, 0])
        los[k] = np.float64(x[k, 1])
    for k in range(n):
        a = ms[k]
        b = los[k]
        first = a >= b  # NaN: b is m, and the NaN reaches s' through the exp
        ms[k] = a if first else b
        los[k] = b if first else a
        lse_terms[k] = ms[k] - (b if labels[k] == 1 else a)
    if is_float32(x):
        for k in range(n):
            log_terms[k] = exp_lite(los[k] - ms[k])  # exact in float64
        for k in range(n):
            e = log_terms[k]
            t = 1.0 + e
            log_terms[k] = t - 1.0 if t >= _SUBTRACT_FROM else e
    else:
        for k in range(n):
            log_terms[k] = exp_diff(los[k], ms[k])
    for k in range(n):
        m = ms[k]
        lo = los[k]
        if m == np.inf or m == -np.inf:  # s' = 0, or NaN where the row holds one
            log_terms[k] = 0.0 if lo == lo else lo
    for k in range(n):
        log_terms[k] = log1p(log_terms[k])


@njit(cache=True, error_model="numpy")
def pair_values(
    labels, lse_terms, log_terms, class_weight, sample_weight, where, ln_base, has_ignore,
    ignore_index, values, weights,
):  # fmt: skip
    """values = w_y ((m - x_y) + log1p(s')) / ln_base * s_i and weights = w_y s_i for each row
    of a block whose label is valid (and that ``where`` keeps), 0 for the others; returns (any
    invalid label, how many valid). A function of its own, with selects, so that it
    vectorises (inside the kernel its loop ran 7x slower); the unweighted, natural-log case
    skips the division (x / 1 is x)."""
    bad = 0
    valid = 0
    if class_weight.shape[0] == 0 and sample_weight.shape[0] == 0 and ln_base == 1.0:
        for k in range(labels.shape[0]):
            status = label_status(labels[k], 2, has_ignore, ignore_index) if kept(where, k) else 1
            bad |= status == 2
            valid += status == 0
            values[k] = lse_terms[k] + log_terms[k] if status == 0 else 0.0
        return bad, valid
    for k in range(labels.shape[0]):
        lab = labels[k]
        status = label_status(lab, 2, has_ignore, ignore_index) if kept(where, k) else 1
        ok = status == 0
        bad |= status == 2
        valid += ok
        w_y = weight_at(class_weight, np.int64(lab) if ok else 0)
        sw = weight_at(sample_weight, k)
        values[k] = w_y * (lse_terms[k] + log_terms[k]) / ln_base * sw if ok else 0.0
        weights[k] = w_y * sw if ok else 0.0
    return bad, valid


@njit(nogil=True, cache=True, error_model="numpy")
def nll_pairs_kernel(
    x, labels, eps, class_weight, smoothing, has_ignore, ignore_index, ln_base, sample_weight,
    where, out, acc, counts, bad,
):  # fmt: skip
    """The hot path's kernel for two-class rows: ``BLOCK`` rows at a time, their m - x_y and
    log1p(s') in vector loops across the rows (``pair_terms``: a two-class row costs a few of
    its elements, not the set-up of a row's sweeps), then their values (``pair_values``),
    added to the exact accumulator a block at a time (``acc_add_block``). The same per-row
    bits as ``hot_path``."""
    n = x.shape[0]
    reduce = acc.shape[2] > 0
    store = out.shape[0] > 0
    weighted_rows = sample_weight.shape[0] > 0
    masked = where.shape[0] > 0
    weighted = class_weight.shape[0] > 0 or weighted_rows
    scratch = np.empty((6, BLOCK))
    x, labels, class_weight = unowned(x), unowned(labels), unowned(class_weight)
    sample_weight, out, acc = unowned(sample_weight), unowned(out), unowned(acc)
    counts, bad, sc = unowned(counts), unowned(bad), unowned(scratch)
    where = unowned(where)
    lse_terms, log_terms, values, weights = sc[0], sc[1], sc[2], sc[3]
    flags = 0
    valid = 0
    for i0 in range(0, n, BLOCK):
        k1 = min(BLOCK, n - i0)
        pair_terms(x[i0 : i0 + k1], labels[i0 : i0 + k1], lse_terms, log_terms, sc[4], sc[5])
        sw = sample_weight[i0 : i0 + k1] if weighted_rows else sample_weight
        wh = where[i0 : i0 + k1] if masked else where
        bad_labels, block_valid = pair_values(
            labels[i0 : i0 + k1], lse_terms, log_terms, class_weight, sw, wh, ln_base,
            has_ignore, ignore_index, values, weights,
        )  # fmt: skip
        flags |= bad_labels
        valid += block_valid
        if store:
            for k in range(k1):
                out[i0 + k] = values[k]
        if reduce:
            acc_add_block(acc[0, 0], values, k1)
            if weighted:
                acc_add_block(acc[0, 1], weights, k1)
            else:  # every weight is 1: their sum is the count, exactly
                acc_add(acc[0, 1], np.float64(block_valid))
    counts[0] += valid
    if flags:
        bad[0] = 1
    keep(scratch)


_HOT_TEMPLATE = """
def {name}_kernel(x, labels, eps, class_weight, smoothing, has_ignore, ignore_index, ln_base,
                  sample_weight, where, out, acc, counts, bad):
    hot_path(prologue, row_lse, tile_len, x, labels, class_weight, has_ignore, ignore_index,
             ln_base, sample_weight, where, out, acc, counts, bad)
"""

# The hot path (logits, no smoothing, at most COL_BLOCK classes; ``smoothing`` is taken as 0):
# kernels of their own, with ``nll_logits_rows``'s arguments and values, so that a first call
# compiles only what it runs. ``lanes``: float32 rows of at most 16 classes, eight rows per
# vector; ``logits``: any other.
HOT = {
    key: define_kernels(
        __name__,
        _HOT_TEMPLATE,
        name,
        {"hot_path": hot_path, "prologue": prologue, "row_lse": row_lse, "tile_len": tile_len},
        ("kernel",),
    )[0]
    for key, name, prologue, row_lse, tile_len in [
        ("logits", "nll_hot", no_prologue, block_lse, 0),
        ("lanes", "nll_hot_lanes", lanes_prologue, lanes_lse, LANE_TILE),
        # float32 rows stored class-major (a class axis that is not the last one), read in
        # place: (m, s', the eight sum lanes) of COLUMN_TILE rows, and a block buffer
        ("columns", "nll_hot_columns", columns_prologue, columns_lse, 10 * COLUMN_TILE),
    ]
}
HOT["pairs"] = nll_pairs_kernel
LANES_MAX_CLASSES = 16


# A small call from logits or probabilities, every option at its default: one compiled call
# (``_driver.small_call``) of the kernel that a large call of the same inputs runs.
SMALL = {
    key: small_call(__name__, f"nll_small_{key}", kernel, ("x", "labels", *PARAMS))
    for key, kernel in [
        ("probs", KERNELS["nll_probs"].rows),
        ("logits", HOT["logits"]),
        ("lanes", HOT["lanes"]),
        ("pairs", HOT["pairs"]),
    ]
}


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
