"""``groups=``: one ``"sum"``/``"mean"`` per group, each the bits of the same call on that
group's samples alone (the sums are exact, so the grouping of a sample cannot move a bit)."""

from __future__ import annotations

import numpy as np
import pytest

import fastce

N, C, G = 1500, 6, 7


def bits(x):
    return np.asarray(x, dtype=np.float64).tobytes()


def _alone(f, args, kwargs, sel, reduction):
    """``f`` on the samples ``sel`` only: per-sample arrays of the batch's length sliced."""
    n = len(sel)
    per_sample = {
        k: (a[sel] if isinstance(a, np.ndarray) and a.shape[:1] == (n,) else a)
        for k, a in kwargs.items()
    }
    return f(*(a[sel] for a in args), reduction=reduction, **per_sample)


def _cases(dtype, rng):
    x = (rng.normal(size=(N, C)) * 3).astype(dtype)
    y = rng.integers(0, C, N)
    p = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    q = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    sw, cw = rng.random(N) * 2, rng.random(C) * 2
    m = rng.random(N) < 0.8
    y_ign = np.where(rng.random(N) < 0.15, -100, y)
    both = {"from_logits": True, "target_from_logits": True}
    weighted = {"from_logits": True, "class_weight": cw, "sample_weight": sw}
    return [
        (fastce.cross_entropy, (y, x), {"from_logits": True}),
        (fastce.cross_entropy, (y, p), {"base": 2}),
        (fastce.cross_entropy, (y_ign, x), dict(weighted, ignore_index=-100, where=m)),
        (fastce.cross_entropy, (p, x), {"from_logits": True, "label_smoothing": 0.1}),
        (fastce.entropy, (p,), {"where": m, "sample_weight": sw}),
        (fastce.entropy, (x,), {"from_logits": True, "temperature": 2.0}),
        (fastce.kl_divergence, (p, q), {"where": m}),
        (fastce.kl_divergence, (x, x[::-1]), both),
        (fastce.js_divergence, (p, x), {"from_logits": True, "sample_weight": sw}),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_each_group_is_the_call_on_its_samples_alone(dtype, reduction):
    rng = np.random.default_rng(1)
    g = rng.integers(0, G, N)
    g[g == 3] = 4  # group 3 empty: sum 0.0, mean NaN
    for f, args, kwargs in _cases(dtype, rng):
        got = f(*args, reduction=reduction, groups=g, n_groups=G + 1, **kwargs)
        assert got.shape == (G + 1,) and got.dtype == dtype, f.__name__
        for k in range(G + 1):
            want = _alone(f, args, kwargs, g == k, reduction)
            assert bits(got[k]) == bits(want), (f.__name__, kwargs, k, got[k], want)
        # without n_groups: the largest id plus one
        assert f(*args, reduction=reduction, groups=g, **kwargs).shape == (G,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_groups_of_elements_and_rows(dtype):
    rng = np.random.default_rng(2)
    y = (rng.random((N, 4)) < 0.4).astype(dtype)
    x = rng.normal(size=(N, 4)).astype(dtype)
    rows = rng.integers(0, G, N)  # 1-D: one group per row, as a 1-D sample_weight
    elements = rng.integers(0, G, (N, 4))
    sw = rng.random((N, 4))
    for reduction in ("sum", "mean"):
        got = fastce.binary_cross_entropy(y, x, from_logits=True, groups=rows, reduction=reduction)
        per_elem = fastce.binary_cross_entropy(
            y, x, from_logits=True, groups=elements, sample_weight=sw, reduction=reduction
        )
        for k in range(G):
            sel = rows == k
            want = fastce.binary_cross_entropy(y[sel], x[sel], from_logits=True,
                                               reduction=reduction)  # fmt: skip
            assert bits(got[k]) == bits(want)
            e = elements == k
            want = fastce.binary_cross_entropy(y[e], x[e], from_logits=True, sample_weight=sw[e],
                                               reduction=reduction)  # fmt: skip
            assert bits(per_elem[k]) == bits(want)


def test_per_sequence_perplexity():
    """The docs' recipe: one perplexity per sequence of a (batch, sequence, vocabulary)
    input, padding left out, each the perplexity of that sequence alone."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 40, 13)).astype(np.float32)
    labels = rng.integers(0, 13, (5, 40))
    labels[:, 30:] = -100  # padding
    got = fastce.perplexity(
        labels, logits, from_logits=True, ignore_index=-100, groups=np.arange(5)[:, None]
    )
    assert got.shape == (5,) and got.dtype == np.float32
    for b in range(5):
        want = fastce.perplexity(labels[b], logits[b], from_logits=True, ignore_index=-100)
        assert bits(got[b]) == bits(want)
    # per token is one number: the perplexity of every token together
    token = fastce.perplexity(labels, logits, from_logits=True, ignore_index=-100)
    assert bits(token) == bits(
        fastce.perplexity(labels, logits, from_logits=True, ignore_index=-100,
                          groups=np.zeros((5, 1), np.int64))[0]
    )  # fmt: skip


def test_masked_samples_leave_their_group_and_are_not_checked():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3))
    y = rng.integers(0, 3, 100)
    g = rng.integers(0, 4, 100)
    m = rng.random(100) < 0.7
    g_bad = np.where(m, g, -5)  # ids at masked samples are not looked at
    got = fastce.cross_entropy(y, x, from_logits=True, where=m, groups=g_bad, reduction="sum")
    want = fastce.cross_entropy(y[m], x[m], from_logits=True, groups=g[m], reduction="sum")
    assert bits(got) == bits(want)


def test_errors():
    x = np.zeros((6, 3))
    y = np.zeros(6, np.int64)
    g = np.array([0, 1, 2, -1, 0, 1])
    with pytest.raises(ValueError, match=r"groups holds -1 at position 3"):
        fastce.cross_entropy(y, x, from_logits=True, groups=g, reduction="mean")
    with pytest.raises(ValueError, match=r"groups holds 2 at position 2; .* < n_groups=2"):
        fastce.cross_entropy(y, x, from_logits=True, groups=abs(g), n_groups=2, reduction="sum")
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        fastce.entropy(x, from_logits=True, groups=abs(g))
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        fastce.kl_divergence(x, x, groups=abs(g), reduction="batchmean")
    with pytest.raises(TypeError, match="groups must hold integer group ids"):
        fastce.entropy(x, from_logits=True, groups=abs(g) * 1.0, reduction="sum")
    with pytest.raises(ValueError, match=r"groups has shape \(4,\)"):
        fastce.entropy(x, from_logits=True, groups=np.zeros(4, np.int64), reduction="sum")
    with pytest.raises(ValueError, match="n_groups= counts the groups of groups="):
        fastce.entropy(x, from_logits=True, n_groups=3, reduction="sum")
    # no samples at all: G groups of sum 0.0 and mean NaN
    empty = fastce.entropy(np.zeros((0, 3)), groups=np.zeros(0, np.int64), n_groups=2,
                           reduction="mean")  # fmt: skip
    assert empty.shape == (2,) and np.isnan(empty).all()


def test_the_streaming_paths_take_groups():
    # (the Accumulator takes groups= with each batch: tests/test_group_accumulator.py;
    # score_file a column or file of keys: tests/test_score_groups.py; fastce.dask a Dask
    # array of ids: tests/test_dask_groups.py)
    with pytest.raises(TypeError, match="score_file has no option 'n_groups'"):
        fastce.score_file(None, "entropy", pred="p.npy", groups="g.npy", n_groups=2)
    pytest.importorskip("dask")
    import fastce.dask as fdask

    got = fdask.entropy(np.full((4, 2), 0.5), groups=np.zeros(4, np.int64), reduction="sum")
    want = fastce.entropy(np.full((4, 2), 0.5), groups=np.zeros(4, np.int64), reduction="sum")
    assert bits(got) == bits(want)
