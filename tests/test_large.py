"""Indexing beyond 2**31 elements (issue 6, part 3).

A 32-bit index or offset anywhere (a row offset ``i * C``, a column block's start, an output
position, a count) would wrap past 2**31 elements and read the wrong values, or outside the
array. Two checks:

* default suite: stride-0 views (``np.broadcast_to``) of more than 2**31 elements, which take
  no memory, through the paths that size and fill outputs and count values (cross_entropy's
  rows, "none" and "mean"; logsumexp over one row of 2**31 + 16 classes, the column split);
* ``slow``: a real float32 array of more than 2**31 elements (8.6 GB), whose last rows are
  checked against fastce.reference and whose ``"sum"`` is checked, bit for bit, against the
  exact sum of its pieces (each piece well inside 32-bit range).

``python -m pytest -m slow tests/test_large.py`` runs the slow one (about 9 GB of memory;
skipped when less than 12 GiB is available).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastce
from fastce import reference

C = 100
N = 2**31 // C + 1_000  # N * C = 2,147,583,600 > 2**31 elements
assert N * C > 2**31


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_stride0_rows_beyond_2_31_elements():
    row = np.linspace(-3, 5, C, dtype=np.float32)
    logits = np.broadcast_to(row, (N, C))
    labels = np.broadcast_to(np.int64(7), (N,))
    one = fastce.cross_entropy(labels[:1], logits[:1], from_logits=True)
    got = fastce.cross_entropy(labels, logits, from_logits=True)
    assert got.shape == (N,) and got.dtype == np.float32
    # every output position written, none twice or outside: all equal to the one-row value
    assert np.array_equal(got, np.broadcast_to(one, (N,)))
    mean = fastce.cross_entropy(labels, logits, from_logits=True, reduction="mean")
    assert mean == one[0]  # the exact mean of N equal values is that value


def test_stride0_one_row_beyond_2_31_elements():
    # One row of 2**31 + 16 classes: the column-split path (fixed 2048-column blocks); a
    # block start held in 32 bits would wrap.
    n = 2**31 + 16
    x = np.broadcast_to(np.float64(0.25), (1, n))
    lse = fastce.logsumexp(x)
    assert lse.shape == (1,)
    assert math.isclose(lse[0], 0.25 + math.log(n), rel_tol=1e-12)


@pytest.mark.slow
def test_a_real_float32_array_beyond_2_31_elements():
    if _available_bytes() < 12 * 2**30:
        pytest.skip("needs about 9 GB of free memory")
    rng = np.random.default_rng(2031)
    logits = np.empty((N, C), dtype=np.float32)
    flat = logits.reshape(-1)
    # The bulk: a random period of 1,000 rows (100,000 elements; 2**32 is not a multiple of
    # it nor of C, so a wrapped offset reads a different row at a different phase).
    period = rng.normal(0, 3, size=100_000).astype(np.float32)
    step = 64 * 100_000
    tile = np.tile(period, 64)
    for start in range(0, flat.size, step):
        stop = min(start + step, flat.size)
        flat[start:stop] = tile[: stop - start]
    # The last 2,000 rows (past 2**31 elements) and the first 10: fresh values.
    tail = slice(N - 2_000, N)
    logits[tail] = rng.normal(0, 3, size=(2_000, C)).astype(np.float32)
    logits[:10] = rng.normal(0, 3, size=(10, C)).astype(np.float32)
    labels = rng.integers(0, C, size=N)

    got = fastce.cross_entropy(labels, logits, from_logits=True)
    for rows in (tail, slice(0, 10), slice(N // 2, N // 2 + 10)):
        want = reference.cross_entropy(labels[rows], logits[rows], from_logits=True)
        np.testing.assert_allclose(got[rows], want, rtol=1e-6, atol=1e-6)
        # and the same bits as the kernel on the copied rows (32-bit-safe offsets)
        small = fastce.cross_entropy(labels[rows], logits[rows].copy(), from_logits=True)
        assert np.array_equal(got[rows], small)

    lse = fastce.logsumexp(logits)
    np.testing.assert_allclose(lse[tail], reference.logsumexp(logits[tail]), rtol=1e-6, atol=1e-6)

    # "sum" over all rows equals the exact sum of its pieces, bit for bit.
    total = fastce.cross_entropy(labels, logits, from_logits=True, reduction="sum")
    acc = fastce.Accumulator("cross_entropy", from_logits=True)
    rows_per_piece = 2_000_000
    for start in range(0, N, rows_per_piece):
        stop = start + rows_per_piece
        acc.update(labels[start:stop], logits[start:stop])
    assert acc.result().count == N
    assert total == np.float32(acc.result().sum)

    # One row of all N * C elements: the column-split path.
    row = flat.reshape(1, -1)
    big = fastce.logsumexp(row)
    parts = []
    for s in range(0, flat.size, 2**26):
        piece = flat[s : s + 2**26].astype(np.float64)
        top = piece.max()
        parts.append(top + math.log(math.fsum(np.exp(piece - top))))
    m = max(parts)
    expect = m + math.log(math.fsum(math.exp(v - m) for v in parts))
    assert math.isclose(float(big[0]), expect, rel_tol=1e-6)
