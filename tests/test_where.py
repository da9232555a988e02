"""``where=`` masks: a masked-out sample is as if absent, and is never read for its values.

Each property is checked bit for bit against the same call on the kept samples alone (the
sums are exact, so leaving a sample out and masking it must give the same bits), on every
kernel a mask can reach: the general row driver, split long rows, the class-index hot paths
(lanes, two-class pairs, class-major columns), tempered and half-precision tiles, and the
element-wise kernel; then against PyTorch with the mask applied by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastce

REDUCTIONS = ["none", "sum", "mean"]


def bits(x):
    return np.asarray(x, dtype=np.float64).tobytes()


def _mask(rng, shape, frac=0.7):
    m = rng.random(shape) < frac
    m.reshape(-1)[0] = True  # at least one kept
    m.reshape(-1)[-1] = False  # at least one masked
    return m


def _poison_rows(a, m):
    """``a`` with every masked-out sample's row set to NaN (rows along the last axis)."""
    a = a.copy()
    a[~m] = np.nan
    return a


def _check(f, arrays, dropped, mask, reduction, **kw):
    got = f(*arrays, where=mask, reduction=reduction, **kw)
    want = f(*dropped, reduction=reduction, **kw)
    if reduction == "none":
        assert got.shape == mask.shape
        assert (got[~mask] == 0).all()
        assert bits(got[mask]) == bits(want)
        assert got.dtype == want.dtype
    else:
        assert bits(got) == bits(want), (got, want)
        assert type(got) is type(want)


def _dirichlet(rng, n, c, dtype):
    return rng.dirichlet(np.full(c, 0.7), size=n).astype(dtype)


# Shapes that reach each kernel: C = 2 (pairs), 7 (lanes for float32), 100, and long rows
# (3000 classes over 3 rows: split over the threads).
SHAPES = [(500, 2), (500, 7), (300, 100), (3, 3000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_labels_from_logits_equal_dropping_the_masked_rows(dtype, n, c, reduction):
    rng = np.random.default_rng(n * c)
    x = (rng.normal(size=(n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, n)
    m = _mask(rng, n)
    # what the masked rows hold must not matter: NaN logits, labels out of range
    xs, ys = _poison_rows(x, m), np.where(m, y, c + 5)
    f = fastce.cross_entropy
    _check(f, (ys, xs), (y[m], x[m]), m, reduction, from_logits=True)
    # from probabilities, and with ignore_index, class and sample weights combined
    p = _dirichlet(rng, n, c, dtype)
    _check(f, (ys, _poison_rows(p, m)), (y[m], p[m]), m, reduction)
    y_ign = np.where(rng.random(n) < 0.2, -100, y)
    cw, sw = rng.random(c) * 2, rng.random(n) * 3
    _check(
        lambda t, q, **kw: f(t, q, **kw), (np.where(m, y_ign, 10**6), xs), (y_ign[m], x[m]),
        m, reduction, from_logits=True, ignore_index=-100, class_weight=cw,
    )  # fmt: skip
    got = f(ys, xs, from_logits=True, where=m, sample_weight=sw, reduction=reduction)
    want = f(y[m], x[m], from_logits=True, sample_weight=sw[m], reduction=reduction)
    assert bits(got[m] if reduction == "none" else got) == bits(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_axis_not_last_and_temperature(dtype, reduction):
    """(N, C, d) logits (class-major rows: the columns kernel for float32) and tempered
    logits (tiles of rows divided by T), masked per (N, d) position."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(40, 9, 30)) * 2).astype(dtype)
    y = rng.integers(0, 9, (40, 30))
    m = _mask(rng, (40, 30))
    xs = np.moveaxis(_poison_rows(np.moveaxis(x, 1, -1), m), -1, 1)
    ys = np.where(m, y, -7)
    rows = np.moveaxis(x, 1, -1)[m]
    for t in (1.0, 2.5):
        got = fastce.cross_entropy(
            ys, xs, axis=1, from_logits=True, temperature=t, where=m, reduction=reduction
        )
        want = fastce.cross_entropy(
            y[m], rows, from_logits=True, temperature=t, reduction=reduction
        )
        assert bits(got[m] if reduction == "none" else got) == bits(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(400, 5), (300, 100), (3, 3000)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distribution_measures_equal_dropping_the_masked_rows(dtype, n, c, reduction):
    rng = np.random.default_rng(c)
    p, q = _dirichlet(rng, n, c, dtype), _dirichlet(rng, n, c, dtype)
    a, b = (rng.normal(size=(n, c)) * 2).astype(dtype), (rng.normal(size=(n, c))).astype(dtype)
    m = _mask(rng, n)
    pp, qq, aa, bb = (_poison_rows(z, m) for z in (p, q, a, b))
    _check(fastce.entropy, (pp,), (p[m],), m, reduction)
    _check(fastce.entropy, (aa,), (a[m],), m, reduction, from_logits=True)
    _check(fastce.cross_entropy, (pp, qq), (p[m], q[m]), m, reduction)
    _check(fastce.kl_divergence, (pp, qq), (p[m], q[m]), m, reduction)
    _check(fastce.js_divergence, (pp, qq), (p[m], q[m]), m, reduction)
    both = {"from_logits": True, "target_from_logits": True}
    _check(fastce.kl_divergence, (aa, bb), (a[m], b[m]), m, reduction, **both)
    _check(fastce.js_divergence, (pp, bb), (p[m], b[m]), m, reduction, from_logits=True)
    _check(fastce.cross_entropy, (aa, qq), (a[m], q[m]), m, reduction, target_from_logits=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_cross_entropy_per_element_and_per_row(dtype, reduction, from_logits):
    rng = np.random.default_rng(3)
    shape = (300, 13)
    y = (rng.random(shape) < 0.4).astype(dtype)
    x = rng.normal(size=shape).astype(dtype) if from_logits else rng.random(shape).astype(dtype)
    m = _mask(rng, shape)
    ys, xs = np.where(m, y, 3.0).astype(dtype), np.where(m, x, np.nan).astype(dtype)
    sw = rng.random(shape) * 2
    for kw in ({}, {"sample_weight": sw}, {"base": 2}):
        got = fastce.binary_cross_entropy(
            ys, xs, from_logits=from_logits, where=m, reduction=reduction, **kw
        )
        drop = {k: w[m] for k, w in kw.items() if k == "sample_weight"}
        rest = {k: w for k, w in kw.items() if k != "sample_weight"}
        want = fastce.binary_cross_entropy(
            y[m], x[m], from_logits=from_logits, reduction=reduction, **drop, **rest
        )
        if reduction == "none":
            assert (got[~m] == 0).all() and bits(got[m]) == bits(want)
        else:
            assert bits(got) == bits(want)
    # a 1-D mask masks whole rows, as a 1-D sample_weight weighs them
    rows = _mask(rng, shape[0])
    got = fastce.binary_cross_entropy(y, x, from_logits=from_logits, where=rows, reduction="sum")
    want = fastce.binary_cross_entropy(y[rows], x[rows], from_logits=from_logits, reduction="sum")
    assert bits(got) == bits(want)


def test_perplexity_and_batchmean():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 50, 11))
    y = rng.integers(0, 11, (4, 50))
    lengths = np.array([50, 31, 7, 44])
    m = np.arange(50)[None, :] < lengths[:, None]  # padding at the end of each sequence
    ys = np.where(m, y, -100)
    got = fastce.perplexity(ys, x, from_logits=True, where=m)
    assert bits(got) == bits(fastce.perplexity(y[m], x[m], from_logits=True))
    assert bits(got) == bits(fastce.perplexity(ys, x, from_logits=True, ignore_index=-100))
    # batchmean divides by the batch (masked positions included), not by the kept samples
    p, q = rng.dirichlet(np.ones(11), (4, 50)), rng.dirichlet(np.ones(11), (4, 50))
    total = fastce.kl_divergence(p, q, where=m, reduction="sum")
    assert bits(fastce.kl_divergence(p, q, where=m, reduction="batchmean")) == bits(total / 4)


def test_a_mask_that_broadcasts_and_edge_cases():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 5, 4))
    y = rng.integers(0, 4, (6, 5))
    per_seq = np.array([True, False, True, True, False, True])[:, None]  # (6, 1) -> (6, 5)
    got = fastce.cross_entropy(y, x, from_logits=True, where=per_seq, reduction="sum")
    keep = np.broadcast_to(per_seq, (6, 5))
    assert bits(got) == bits(fastce.cross_entropy(y[keep], x[keep], from_logits=True,
                                                  reduction="sum"))  # fmt: skip
    # all masked: "sum" is 0.0, "mean" NaN, "none" zeros; all kept: no mask at all
    none = np.zeros((6, 5), bool)
    assert fastce.cross_entropy(y, x, from_logits=True, where=none, reduction="sum") == 0.0
    assert np.isnan(fastce.cross_entropy(y, x, from_logits=True, where=none, reduction="mean"))
    assert not fastce.entropy(x, from_logits=True, where=none).any()
    all_kept = fastce.kl_divergence(x, x[::-1], from_logits=True, target_from_logits=True,
                                    where=np.ones((6, 5), bool), reduction="mean")  # fmt: skip
    assert bits(all_kept) == bits(fastce.kl_divergence(
        x, x[::-1], from_logits=True, target_from_logits=True, reduction="mean"))  # fmt: skip
    # a single distribution and a 0-d mask
    assert fastce.entropy([0.5, 0.5], where=False) == 0.0
    assert fastce.entropy([0.5, 0.5], where=np.True_) == fastce.entropy([0.5, 0.5])


def test_out_writes_zero_at_masked_positions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 6)).astype(np.float32)
    m = _mask(rng, 100)
    out = np.full(100, 123.0, np.float32)
    res = fastce.entropy(x, from_logits=True, where=m, out=out)
    assert res is out and (out[~m] == 0).all()
    assert bits(out[m]) == bits(fastce.entropy(x[m], from_logits=True))


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
def test_half_precision_with_a_mask(kind):
    ml_dtypes = pytest.importorskip("ml_dtypes") if kind == "bfloat16" else None
    dtype = ml_dtypes.bfloat16 if ml_dtypes else np.float16
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 33)).astype(dtype)
    y = rng.integers(0, 33, 200)
    m = _mask(rng, 200)
    got = fastce.cross_entropy(y, x, from_logits=True, where=m, reduction="mean")
    want = fastce.cross_entropy(y[m], x[m].astype(np.float32), from_logits=True, reduction="mean")
    assert bits(got) == bits(want) and got.dtype == np.float32


def test_accumulator_in_random_batches_equals_in_memory():
    rng = np.random.default_rng(12)
    n, c = 2000, 9
    x = rng.normal(size=(n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    m = _mask(rng, n)
    ys, xs = np.where(m, y, -1), _poison_rows(x, m)
    for measure in ("cross_entropy", "perplexity"):
        acc = fastce.Accumulator(measure, from_logits=True)
        cuts = np.sort(rng.choice(np.arange(1, n), 12, replace=False))
        for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
            acc.update(ys[lo:hi], xs[lo:hi], where=m[lo:hi])
        res = acc.result()
        assert res.count == m.sum()
        mean = fastce.cross_entropy(ys, xs, from_logits=True, where=m, reduction="mean")
        assert bits(res.mean) == bits(mean)
        if measure == "perplexity":
            assert bits(res.perplexity) == bits(fastce.perplexity(y[m], x[m], from_logits=True))


def test_errors_name_what_is_wrong():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3))
    y = np.array([0, 1, 2, 7, 1, 0, 2, 9, 1, 1])
    with pytest.raises(TypeError, match="where must be a boolean array"):
        fastce.cross_entropy(y, x, from_logits=True, where=np.ones(10))
    with pytest.raises(ValueError, match=r"where has shape \(4,\)"):
        fastce.entropy(x, from_logits=True, where=np.ones(4, bool))
    # the label at 3 is masked out, the one at 7 is kept: the error names 7
    m = np.ones(10, bool)
    m[3] = False
    with pytest.raises(ValueError, match="label 9 at position 7"):
        fastce.cross_entropy(y, x, from_logits=True, where=m)
    m[7] = False
    assert np.isfinite(fastce.cross_entropy(y, x, from_logits=True, where=m, reduction="sum"))
    p = np.abs(x) / np.abs(x).sum(1, keepdims=True)
    p[2, 1] = 1.5
    with pytest.raises(ValueError, match=r"got 1.5 at position \(2, 1\)"):
        fastce.entropy(p, where=m)
    m[2] = False
    assert np.isfinite(fastce.entropy(p, where=m, reduction="sum"))
    with pytest.raises(TypeError, match="takes no where"):
        acc = fastce.Accumulator("log_loss", labels=[0, 1])
        acc.update([0, 1], [0.2, 0.3], where=[True, False])


# --- against PyTorch, with the mask applied by hand ----------------------------------------


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_pytorch_with_a_mask_by_hand(dtype):
    torch = _torch()
    F = torch.nn.functional
    rng = np.random.default_rng(21)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    x = (rng.normal(size=(8, 64, 50)) * 2).astype(dtype)
    t = (rng.normal(size=(8, 64, 50)) * 2).astype(dtype)
    y = rng.integers(0, 50, (8, 64))
    m = _mask(rng, (8, 64))
    tx, tt, ty, tm = (torch.from_numpy(a) for a in (x, t, y, m))
    # cross-entropy: the per-token losses times the mask, over the number kept
    per_token = F.cross_entropy(tx.reshape(-1, 50), ty.reshape(-1), reduction="none")
    want = (per_token * tm.reshape(-1)).sum() / tm.sum()
    got = fastce.cross_entropy(y, x, from_logits=True, where=m, reduction="mean")
    np.testing.assert_allclose(got, want.item(), rtol=rtol)
    # distillation KL, both logits, masked tokens left out of the sum; batchmean over 8
    kl = F.kl_div(F.log_softmax(tx, -1), F.log_softmax(tt, -1), log_target=True,
                  reduction="none").sum(-1)  # fmt: skip
    got = fastce.kl_divergence(t, x, from_logits=True, target_from_logits=True, where=m,
                               reduction="batchmean")  # fmt: skip
    np.testing.assert_allclose(got, ((kl * tm).sum() / 8).item(), rtol=rtol)
    # binary cross-entropy from logits per element
    yb = (rng.random((8, 64, 5)) < 0.5).astype(dtype)
    xb = rng.normal(size=(8, 64, 5)).astype(dtype)
    mb = _mask(rng, (8, 64, 5))
    tyb, txb, tmb = (torch.from_numpy(a) for a in (yb, xb, mb))
    loss = F.binary_cross_entropy_with_logits(txb, tyb, reduction="none")
    want = (loss * tmb).sum() / tmb.sum()
    got = fastce.binary_cross_entropy(yb, xb, from_logits=True, where=mb, reduction="mean")
    np.testing.assert_allclose(got, want.item(), rtol=8 * rtol)
