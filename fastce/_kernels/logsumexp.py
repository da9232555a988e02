"""Shifted log-sum-exp over rows, in fixed column blocks: logsumexp, log_softmax, softmax.

For a block of columns with maximum m at (first) position j:

    sum_c exp(x_c - m) = 1 + s',   s' = sum_{c != j} exp(x_c - m)

and logsumexp = m + log1p(s'). Leaving the maximum's own term (exactly 1) out of the sum and
adding it back through ``log1p`` keeps the relative accuracy of a logsumexp, or of a loss
``(m - x_y) + log1p(s')``, that is close to zero. Every term of s' is at most 1.

A row longer than ``COL_BLOCK`` is split into blocks of that many columns (boundaries fixed by
the column index alone); each block gives a partial (m_b, s'_b) and the partials are folded in
block order with ``lse_merge``. The same fold runs whether the blocks of a row are computed by
one thread or spread over all of them (``split=True``, for a few very long rows), so a row's
value is the same bits for every thread count.

Each block is three vectorised sweeps over data in L1: the copy into a padded buffer with its
maximum (``copy_max``: one pass for float32 rows, 16 lanes; ``copy_max_index`` for float64 rows,
which also gives the maximum's first position, so that its entry is taken out before the exps),
the exps of ``x - m`` into that buffer, and their sum with eight explicit lanes (``block_sum``,
compensated for float64 rows).
No fast-math flags anywhere. For float64 rows, ``x - m`` is rounded; its rounding error is found
exactly and put back into the exp (``exp_diff``), so that a term far below the maximum keeps its
relative accuracy (the loss of a dominant class is such a term).

The buffers are float64 for float32 rows too: ``x - m`` of two float32 values is exact in
float64 but not in float32, where its rounding error (up to |x - m| * 2**-24) becomes a relative
error of exp(x - m), about 3e-7 (2.5 float32 ulps) for a term near e**-5, more than the 2 ulps
promised for a float32 loss. Their exps are ``exp_lite`` (``exp64_lite``: float64 arithmetic,
relative error below 2**-34, terms below 2**-1022 flushed to 0), which is all a float32 result
can show and costs about half the vector operations of the full float64 exp.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._common import COL_BLOCK, block_bounds, buffer_len, half_value, n_blocks
from ._driver import Transform, define_kernels
from ._math import (
    any_nan,
    block_max,
    block_sum,
    copy_max,
    copy_max_index,
    exp_diff,
    exp_lite,
    first_index,
    fma,
    is_float32,
    keep,
    lane_sum16,
    lanes_max16,
    lanes_sum16,
    log1p,
    pad_block,
    two_sum,
    unowned,
)

ROWS_PER_BATCH = 4096
"""Rows whose (M, S') are kept at once when rows are split across threads (bounds scratch)."""


# float32 rows (or buffers) whose sum of exps S = 1 + s' is at least this take s' = S - 1 (the
# rounding of S is a relative error below 2**-40 in s', invisible in a float32 result); below
# it, or for float64 rows, the maximum's own term is removed from the buffer and the rest
# summed again, so a tiny s' keeps every bit.
_SUBTRACT_FROM = 1.0 + 2.0**-10


def lse_block(seg, buf):
    """(m, s') of a block (a slice of a row): m its maximum (float64), s' = sum_{c != j}
    e^(x_c - m) with j the first position of the maximum; ``buf`` a float64 buffer of at least
    the block's length rounded up to 16.

    The block is copied into ``buf`` padded with -inf to a multiple of 16 entries, so that
    every sweep (exps, sum) is a vector loop with no scalar remainder; the copy finds the
    maximum. On return ``buf[:len(seg)]`` holds e^(x_c - m) (the maximum's entry 1 or 0).
    A block of -inf (or an empty one) has m = -inf and s' = 0, or NaN if it holds a NaN; a
    block whose maximum is +inf has s' = 0 (or NaN): its logsumexp is +inf however many
    entries are +inf.

    ``lse_block32`` for float32 blocks, ``lse_block64`` for others, chosen when the caller is
    compiled: a kernel compiles only the one its dtype takes (as one function with a branch on
    the dtype, each dtype's compile typed and lowered both, ~40% of its time).
    """


@overload(lse_block)
def _lse_block(seg, buf):
    impl = lse_block32 if seg.dtype == types.float32 else lse_block64
    return lambda seg, buf: impl(seg, buf)


def lse_block_beside(seg, other, buf):
    """``lse_block`` of a block of logits read beside ``other`` (the row's other operand):
    ``lse_block32`` only when both are float32 (a float32 result), otherwise the float64
    precision of ``lse_block64``, also for float32 logits beside float64 target probabilities,
    whose result is float64."""


@overload(lse_block_beside)
def _lse_block_beside(seg, other, buf):
    both32 = seg.dtype == types.float32 and other.dtype == types.float32
    impl = lse_block32 if both32 else lse_block64
    return lambda seg, other, buf: impl(seg, buf)


@njit(cache=True, error_model="numpy")
def lse_block64(seg, buf):
    """``lse_block`` of a float64 block: ``copy_max_index`` gives the maximum's first position
    j too, whose entry becomes -inf before the exps (its exp is +0.0, what s' needs) and the sum
    does not wait for a search of the row after the exps (measured 60 ns of ~290 per row); the
    exps are ``exp_diff``."""
    n = seg.shape[0]
    n16 = (n + 15) & ~15
    m, j = copy_max_index(seg, buf)
    padded = buf[:n16]
    if m == -np.inf or m == np.inf:
        return np.float64(m), (np.nan if any_nan(seg) else 0.0)
    if j < n:  # not found only when m is NaN, and then every term is NaN anyway
        padded[j] = -np.inf
    for k in range(n16):
        padded[k] = exp_diff(padded[k], m)
    return np.float64(m), block_sum(padded, n16, False, 0)


@njit(cache=True, error_model="numpy")
def lse_block32(seg, buf):
    """``lse_block`` of a float32 block: ``copy_max`` (one pass, 16 lanes), then the exps
    ``exp_lite`` of x - m (exact in float64)."""
    n = seg.shape[0]
    n16 = (n + 15) & ~15
    m = copy_max(seg, buf)
    padded = buf[:n16]
    if m == -np.inf or m == np.inf:
        return np.float64(m), (np.nan if any_nan(seg) else 0.0)
    for k in range(n16):  # x - m is exact in float64
        padded[k] = exp_lite(padded[k] - m)
    total = block_sum(padded, n16, True, 0)
    if total >= _SUBTRACT_FROM:
        # A float32 result needs s' to about 2**-26 only; S - 1 is within 2**-42 of it.
        return np.float64(m), total - 1.0
    j = first_index(seg, m)
    if j < n:  # not found only when m is NaN, and then every term is NaN anyway
        padded[j] = 0.0
    return np.float64(m), block_sum(padded, n16, True, 0)


@njit(cache=True, error_model="numpy")
def lse_block_half(seg, buf, bfloat16):
    """``lse_block32`` of a block of half-precision logits (``seg`` their 16 bits, ``uint16``)
    widened to their float32 values as it copies them into ``buf``: the same operations on
    the same numbers as ``lse_block32`` of the float32 block, hence the same bits, with no
    float32 copy of the row."""
    n = seg.shape[0]
    n16 = (n + 15) & ~15
    pad_block(buf, n16)
    for k in range(n):
        buf[k] = np.float64(half_value(seg[k], bfloat16))
    m = np.float64(block_max(buf, n16))
    padded = buf[:n16]
    if m == -np.inf or m == np.inf:
        return m, (np.nan if any_nan(buf[:n]) else 0.0)
    for k in range(n16):  # x - m is exact in float64
        padded[k] = exp_lite(padded[k] - m)
    total = block_sum(padded, n16, True, 0)
    if total >= _SUBTRACT_FROM:
        return m, total - 1.0
    j = n
    for k in range(n):
        j = min(j, k if np.float64(half_value(seg[k], bfloat16)) == m else n)
    if j < n:
        padded[j] = 0.0
    return m, block_sum(padded, n16, True, 0)


LANE_TILE = 8 * 16 * 2 + 16
"""Scratch of ``lse_rows8``: a 16-column tile of eight rows, its broadcast maxima, (m, s')."""


@njit(cache=True, error_model="numpy")
def lse_rows8(x, i0, i1, ncols, tile):
    """``lse_block`` of rows i0 .. i1 - 1 (at most 8) of a float32 x with at most 16 columns,
    one row per vector lane: tile[256 + l] = m and tile[264 + l] = s' of row i0 + l, the same
    bits as ``lse_block(x[i0 + l], buf)``.

    A row of up to 16 classes is one padded block of 16 entries; eight of them side by side
    (column-major) make each sweep (maximum, exps, sum) one run of full vectors instead of
    eight runs of two, and the per-row sweep set-up that dominated such rows goes away. Only
    the ``ncols`` real columns (x's, passed at run time so that LLVM vectorises the exp loop
    rather than unrolling it) take exps: the padding is -inf for the maximum, then the 0 that
    its exp would be for the sum (a two-class row costs 2 exps, not 16).
    """
    c = x.shape[1]
    nk = 8 * ncols
    cols = tile[:128]
    ms = tile[256:264]
    ss = tile[264:272]
    for lane in range(8):
        i = i0 + lane
        if i < i1:
            row = x[i]
            for col in range(c):
                cols[8 * col + lane] = np.float64(row[col])
        else:
            for col in range(c):
                cols[8 * col + lane] = 0.0
    pad = cols[nk:]
    for k in range(128 - nk):
        pad[k] = -np.inf
    lanes_max16(cols, ms)
    wide = tile[128 : 128 + nk]
    for col in range(ncols):
        for lane in range(8):
            wide[8 * col + lane] = ms[lane]
    for k in range(nk):
        cols[k] = exp_lite(cols[k] - wide[k])
    for k in range(128 - nk):
        pad[k] = 0.0  # exp(-inf - m)
    lanes_sum16(cols, ss)
    for lane in range(i1 - i0):
        m = ms[lane]
        if m == -np.inf or m == np.inf:
            ss[lane] = np.nan if any_nan(x[i0 + lane]) else 0.0
        elif ss[lane] >= _SUBTRACT_FROM:
            ss[lane] = ss[lane] - 1.0
        else:
            j = first_index(x[i0 + lane], m)
            if j < c:
                cols[8 * j + lane] = 0.0
            ss[lane] = lane_sum16(cols, lane)


COLUMN_TILE = 512
"""Rows (positions) whose class-major (m, s') ``lse_columns`` computes at once."""


@njit(cache=True, error_model="numpy")
def columns_max(xt, m):
    """m[r] = max_c xt[c, r] in float64 for a (classes, rows) float32 tile; a NaN is skipped
    unless it comes first (its row's sum is NaN, and the caller redoes that row)."""
    nc, t = xt.shape
    first = np.ascontiguousarray(xt[0])  # a view: the caller's rows are adjacent
    for r in range(t):
        m[r] = np.float64(first[r])
    for c in range(1, nc):
        row = np.ascontiguousarray(xt[c])
        for r in range(t):
            v = np.float64(row[r])
            m[r] = v if v > m[r] else m[r]


@njit(cache=True, error_model="numpy")
def columns_sum(xt, m, lanes):
    """lanes[j, r] = sum over the classes c = j (mod 8) of e**(x[c, r] - m[r]), in class
    order from 0.0: the eight lanes of ``sum8`` over row r's padded block (whose padding adds
    +0.0), each a vector loop across the rows."""
    nc, t = xt.shape
    for j in range(8):
        lane = lanes[j]
        for r in range(t):
            lane[r] = 0.0
    for c in range(nc):
        row = np.ascontiguousarray(xt[c])
        lane = lanes[c % 8]
        for r in range(t):
            lane[r] += exp_lite(np.float64(row[r]) - m[r])  # exact in float64


@njit(cache=True, error_model="numpy")
def lse_columns(xt, m, s, lanes, column, buf):
    """(m, s') of each row r of a class-major float32 tile ``xt`` (classes, rows) into m[r],
    s[r]: the bits ``lse_block32`` gives the row xt[:, r] (at most ``COL_BLOCK`` classes),
    without reading it row by row (each class a cache line of its own). The maximum and the
    lanes of the sum run across the rows; the lanes are combined as ``sum8`` combines them.
    A row whose sum is below ``_SUBTRACT_FROM`` (its maximum's term must leave the sum), or
    whose maximum is not finite, or which holds a NaN, is copied into ``column`` (float32)
    and given to ``lse_block32`` itself."""
    nc, t = xt.shape
    columns_max(xt, m)
    columns_sum(xt, m, lanes)
    for r in range(t):
        total = ((lanes[0, r] + lanes[1, r]) + (lanes[2, r] + lanes[3, r])) + (
            (lanes[4, r] + lanes[5, r]) + (lanes[6, r] + lanes[7, r])
        )
        total = total + 0.0
        mr = m[r]
        if total >= _SUBTRACT_FROM and mr != np.inf and mr != -np.inf:
            s[r] = total - 1.0
        else:
            for c in range(nc):
                column[c] = xt[c, r]
            m[r], s[r] = lse_block32(column[:nc], buf)


@njit(inline="always", cache=True)
def lse_merge(m_acc, s_acc, m, s):
    """Fold the block partial (m, s') into the running (M, S') of the blocks before it.

    Returns (M', S', old_scale, new_scale): the factors that bring terms relative to the old M
    and to the block's m to the new M'. A block that is entirely -inf (m = -inf, s' = 0)
    contributes nothing; the first block that is not replaces an all -inf start.
    """
    if m > m_acc:
        if m_acc == -np.inf and s_acc == 0.0:
            return m, s, 0.0, 1.0
        old = exp_diff(m_acc, m)
        return m, s + old * (1.0 + s_acc), old, 1.0
    if m == m_acc:
        if m == -np.inf:
            return m_acc, s_acc + s, 1.0, 0.0
        return m_acc, s_acc + (1.0 + s), 1.0, 1.0
    if m == -np.inf and s == 0.0:
        return m_acc, s_acc, 1.0, 0.0
    new = exp_diff(m, m_acc)
    return m_acc, s_acc + new * (1.0 + s), 1.0, new


@njit(cache=True, error_model="numpy")
def lse_row(row, buf):
    """(M, S') of a whole row, folding its column blocks in order."""
    return lse_row_beside(row, row, buf)


@njit(cache=True, error_model="numpy")
def lse_row_beside(row, other, buf):
    """``lse_row`` of a row of logits read beside ``other`` (``lse_block_beside``)."""
    c = row.shape[0]
    m_acc, s_acc = lse_block_beside(row[: min(c, COL_BLOCK)], other, buf)
    for b in range(1, n_blocks(c)):
        c0, c1 = block_bounds(c, b)
        m, s = lse_block_beside(row[c0:c1], other, buf)
        m_acc, s_acc, _, _ = lse_merge(m_acc, s_acc, m, s)
    return m_acc, s_acc


@njit(nogil=True, cache=True, error_model="numpy")
def lse_tiles(x, lo, t0, t1, part_m, part_s):
    """(m, s') of tiles [t0, t1) of the rows from ``lo`` on (tile t: row lo + t // nb, column
    block t % nb): the column blocks of a few long rows, spread over threads."""
    c = x.shape[1]
    nb = n_blocks(c)
    buf = np.empty(buffer_len(c))
    for t in range(t0, t1):
        c0, c1 = block_bounds(c, t % nb)
        part_m[t], part_s[t] = lse_block(x[lo + t // nb, c0:c1], buf)


@njit(nogil=True, cache=True, error_model="numpy")
def lse_fold(nb, rows, part_m, part_s, m_out, s_out):
    """(M, S') of each of ``rows`` rows from its tiles, folded in block order as ``lse_row``."""
    for i in range(rows):
        m_acc, s_acc = part_m[i * nb], part_s[i * nb]
        for b in range(1, nb):
            m_acc, s_acc, _, _ = lse_merge(m_acc, s_acc, part_m[i * nb + b], part_s[i * nb + b])
        m_out[i] = m_acc
        s_out[i] = s_acc


@njit(inline="always", cache=True)
def write_logsumexp(x, out, i, c0, c1, m, s):
    if c0 == 0:  # once per row (the first of its tiles)
        out[i] = m + log1p(s)


@njit(inline="always", cache=True)
def write_log_softmax(x, out, i, c0, c1, m, s):
    row, out_row = x[i], out[i]
    lp = log1p(s)
    for col in range(c0, c1):
        # (x - m) - log1p(s') rather than x - lse: exact for the maximum's own entry.
        out_row[col] = (np.float64(row[col]) - m) - lp


@njit(inline="always", cache=True)
def write_softmax(x, out, i, c0, c1, m, s):
    row, out_row = x[i], out[i]
    # A +inf logit makes every entry undefined (inf / inf): NaN, as SciPy and PyTorch.
    total, total_err = two_sum(1.0, s)
    if m == np.inf:
        total = np.nan
    # 1 / (1 + s') as inv + inv_lo (the rounding of 1 + s' and of the reciprocal put back:
    # rem = 1 - total * inv is exact), so each entry is e * (inv + inv_lo) rounded once, within
    # about one rounding of e**(x - m) / (1 + s'). A multiply and an FMA per entry instead of a
    # division.
    inv = 1.0 / total
    inv_lo = (fma(-total, inv, 1.0) - total_err * inv) / total
    if is_float32(row):
        for col in range(c0, c1):
            e = exp_lite(np.float64(row[col]) - m)  # x - m is exact in float64
            out_row[col] = fma(e, inv, e * inv_lo)
    else:
        for col in range(c0, c1):
            e = exp_diff(row[col], m)
            out_row[col] = fma(e, inv, e * inv_lo)


@njit(inline="always", cache=True)
def each_row(write, x, out):
    """``write`` each row of x into ``out`` from the row's (M, S')."""
    c = x.shape[1]
    scratch = np.empty(buffer_len(c))
    x, out, buf = unowned(x), unowned(out), unowned(scratch)
    for i in range(x.shape[0]):
        m, s = lse_row(x[i], buf)
        write(x, out, i, 0, c, m, s)
    keep(scratch)


@njit(inline="always", cache=True)
def each_tile(write, x, out, lo, t0, t1, m_row, s_row):
    """``write`` tiles [t0, t1) of a batch of long rows (from row ``lo`` on) from the rows'
    folded (M, S') (``lse_tiles``, ``lse_fold``)."""
    c = x.shape[1]
    nb = n_blocks(c)
    for t in range(t0, t1):
        i = t // nb
        c0, c1 = block_bounds(c, t % nb)
        write(x, out, lo + i, c0, c1, m_row[i], s_row[i])


_TRANSFORM = """
def {name}_rows(x, out):
    each_row(write, x, out)

def {name}_tiles(x, out, lo, t0, t1, m_row, s_row):
    each_tile(write, x, out, lo, t0, t1, m_row, s_row)
"""

# A row in, a row (or a value) out: each transform is its ``write`` (see ``_driver``).
TRANSFORMS = {
    name: Transform(
        *define_kernels(
            __name__,
            _TRANSFORM,
            name,
            {"each_row": each_row, "each_tile": each_tile, "write": write},
            Transform._fields,
        )
    )
    for name, write in [
        ("logsumexp", write_logsumexp),
        ("log_softmax", write_log_softmax),
        ("softmax", write_softmax),
    ]
}
