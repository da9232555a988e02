"""``groups=`` on fastce.dask: each block updates a grouped accumulator with its block of ids,
the states merge exactly, and the result is the in-memory ``groups=`` result, bit for bit,
whatever the chunking of the data and of the ids."""

from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import fastce  # noqa: E402
import fastce.dask as fd  # noqa: E402

N, C, G = 97, 5, 6


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def bits(x):
    return np.asarray(x, dtype=np.float64).tobytes()


def _lazy(a, chunks):
    return da.from_array(a, chunks=chunks) if isinstance(a, np.ndarray) else a


def _cases(dtype, rng):
    """(name, arrays, their chunks, options): uneven blocks, each input chunked its own way."""
    x = (rng.normal(size=(N, C)) * 3).astype(dtype)
    y = rng.integers(0, C, N)
    p = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    q = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    y_ign = np.where(rng.random(N) < 0.15, -100, y)
    sw = rng.random(N) * 2
    m = rng.random(N) < 0.8
    yb = (rng.random((N, 3)) < 0.5).astype(dtype)
    pb = rng.random((N, 3)).astype(dtype)
    per_sample = {"sample_weight": (sw, 23), "where": (m, 31)}
    return [
        ("entropy", [(p, (13, C))], {}, per_sample),
        ("entropy", [(x, (40, C))], {"from_logits": True}, {"where": (m, 9)}),
        ("cross_entropy", [(y_ign, 17), (x, (13, C))],
         {"from_logits": True, "ignore_index": -100}, per_sample),
        ("cross_entropy", [(q, (50, C)), (p, (13, C))], {"label_smoothing": 0.1}, {}),
        ("perplexity", [(y_ign, 30), (x, (13, C))],
         {"from_logits": True, "ignore_index": -100}, {"where": (m, 9)}),
        ("kl_divergence", [(p, (13, C)), (q, (29, C))], {}, per_sample),
        ("js_divergence", [(p, (13, C)), (x, (29, C))], {"from_logits": True},
         {"sample_weight": (sw, 41)}),
        ("binary_cross_entropy", [(yb, (20, 2)), (pb, (13, 3))], {},
         {"sample_weight": (sw, 23), "where": (m, 31)}),
        ("binary_cross_entropy", [(yb, (20, 2)), (pb, (13, 3))], {"pos_weight": 2.0},
         {"where": (rng.random((N, 3)) < 0.7, (17, 1))}),
    ]  # fmt: skip


def _reductions(name):
    return [None] if name == "perplexity" else ["sum", "mean"]


def _both(name, arrays, options, per_sample, g, g_chunks, **extra):
    """(fastce.dask's result, the in-memory result) of one grouped call."""
    eager = {k: a for k, (a, _) in per_sample.items()}
    lazy = {k: _lazy(a, c) for k, (a, c) in per_sample.items()}
    got = getattr(fd, name)(
        *(_lazy(a, c) for a, c in arrays),
        groups=da.from_array(g, chunks=g_chunks),
        **options,
        **lazy,
        **extra,
    )
    want = getattr(fastce, name)(*(a for a, _ in arrays), groups=g, **options, **eager, **extra)
    return got, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_measure_gives_the_in_memory_bits(dtype):
    rng = np.random.default_rng(7)
    g = rng.integers(0, G, N)
    g[g == 2] = 3  # group 2 empty: sum 0.0, mean NaN
    for name, arrays, options, per_sample in _cases(dtype, rng):
        for reduction in _reductions(name):
            extra = {} if reduction is None else {"reduction": reduction}
            for n_groups in (None, G + 3):
                got, want = _both(
                    name, arrays, options, per_sample, g, 11, n_groups=n_groups, **extra
                )
                assert isinstance(got, np.ndarray) and got.ndim == 1, name
                assert got.dtype == want.dtype == dtype, (name, reduction)
                assert got.shape == want.shape == (n_groups or G,), (name, reduction)
                assert bits(got) == bits(want), (name, reduction, n_groups)


def test_the_chunking_of_the_ids_does_not_matter():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, N)
    g = rng.integers(0, 40, N)
    want = fastce.cross_entropy(y, x, from_logits=True, groups=g, reduction="mean")
    for g_chunks in (1, 7, N):
        for x_chunks in ((5, C), (N, C)):
            got = fd.cross_entropy(
                da.from_array(y, chunks=19),
                da.from_array(x, chunks=x_chunks),
                from_logits=True,
                groups=da.from_array(g, chunks=g_chunks),
                reduction="mean",
            )
            assert bits(got) == bits(want)
    # NumPy ids, and many small blocks (a deeper merge tree): the same bits
    got = fd.cross_entropy(y, da.from_array(x, chunks=(3, C)), from_logits=True, groups=g,
                           reduction="mean")  # fmt: skip
    assert bits(got) == bits(want)


def test_ids_that_broadcast_over_the_batch():
    # one group per sequence of a (B, T, C) batch, ids of shape (B, 1)
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(6, 8, C)).astype(np.float32)
    labels = np.where(rng.random((6, 8)) < 0.1, -100, rng.integers(0, C, (6, 8)))
    seq = np.arange(6).reshape(6, 1)
    want = fastce.perplexity(labels, logits, from_logits=True, ignore_index=-100, groups=seq)
    got = fd.perplexity(
        da.from_array(labels, chunks=(4, 3)),
        da.from_array(logits, chunks=(2, 5, C)),
        from_logits=True,
        ignore_index=-100,
        groups=da.from_array(seq, chunks=(5, 1)),
    )
    assert got.shape == (6,) and bits(got) == bits(want)


def test_accumulate_takes_groups():
    rng = np.random.default_rng(10)
    p = rng.dirichlet(np.ones(C), N)
    g = rng.integers(0, G, N)
    m = rng.random(N) < 0.7
    lazy = fd.accumulate(
        "entropy",
        da.from_array(p, chunks=(10, C)),
        groups=da.from_array(g, chunks=17),
        where=da.from_array(m, chunks=33),
        n_groups=G + 2,
        split_every=2,
    )
    (res,) = dask.compute(lazy)
    acc = fastce.Accumulator("entropy").update(p, groups=g, where=m)
    for field in ("mean", "sum", "count", "weight"):
        assert getattr(res, field).shape == (G + 2,)
        assert bits(getattr(res, field)[:G]) == bits(getattr(acc.result(), field)), field
    assert bits(res.mean) == bits(fastce.entropy(p, groups=g, where=m, n_groups=G + 2,
                                                 reduction="mean"))  # fmt: skip
    assert (res.count[G:] == 0).all() and (res.sum[G:] == 0).all()
    with pytest.raises(TypeError, match="takes no groups"):
        fd.accumulate("log_loss", [0, 1], [[0.5, 0.5]] * 2, labels=[0, 1], groups=[0, 0])


def test_masked_ids_are_not_checked():
    x = np.zeros((8, 3))
    y = np.zeros(8, np.int64)
    m = np.array([True] * 6 + [False] * 2)
    g = np.array([0, 1, 2, 0, 1, 2, -7, 99])
    want = fastce.cross_entropy(y, x, where=m, groups=g, n_groups=3, reduction="sum")
    got = fd.cross_entropy(da.from_array(y, chunks=3), da.from_array(x, chunks=(5, 3)),
                           where=da.from_array(m, chunks=2), groups=da.from_array(g, chunks=4),
                           n_groups=3, reduction="sum")  # fmt: skip
    assert bits(got) == bits(want)


def test_errors():
    x = da.from_array(np.full((12, 3), 1 / 3), chunks=(5, 3))
    y = da.from_array(np.zeros(12, np.int64), chunks=4)
    g = np.arange(12) % 4
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        fd.cross_entropy(y, x, groups=g)
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        fd.kl_divergence(x, x, groups=g, reduction="batchmean")
    with pytest.raises(TypeError, match="groups must hold integer group ids"):
        fd.entropy(x, groups=da.from_array(g * 1.0, chunks=5), reduction="sum")
    with pytest.raises(ValueError, match=r"groups has shape \(4,\)"):
        fd.entropy(x, groups=np.zeros(4, np.int64), reduction="sum")
    with pytest.raises(ValueError, match="n_groups= counts the groups of groups="):
        fd.entropy(x, n_groups=3, reduction="sum")
    with pytest.raises(TypeError, match="n_groups must be an integer"):
        fd.entropy(x, groups=g, n_groups=3.0, reduction="sum")
    with pytest.raises(ValueError, match="n_groups must be >= 0"):
        fd.entropy(x, groups=g, n_groups=-1, reduction="sum")
    # the ids, at compute time: their position in the whole array, and the block
    bad = g.copy()
    bad[9] = -1
    with pytest.raises(ValueError, match=r"groups holds -1 at position 9; .*in block \(\d+,\)"):
        fd.cross_entropy(y, x, groups=da.from_array(bad, chunks=6), reduction="mean")
    with pytest.raises(ValueError, match=r"groups holds 3 at position 11; .* < n_groups=3"):
        fd.cross_entropy(y, x, groups=np.minimum(g, 2) + (np.arange(12) == 11),
                         n_groups=3, reduction="sum")  # fmt: skip
    with pytest.raises(TypeError, match="groups"):
        fd.log_loss([0, 1], [[0.5, 0.5]] * 2, labels=[0, 1], groups=[0, 0])


def test_no_samples_gives_empty_groups():
    x = da.zeros((0, 3), chunks=(1, 3))
    got = fd.entropy(x, groups=np.zeros(0, np.int64), n_groups=2, reduction="mean")
    want = fastce.entropy(np.zeros((0, 3)), groups=np.zeros(0, np.int64), n_groups=2,
                          reduction="mean")  # fmt: skip
    assert got.shape == (2,) and bits(got) == bits(want)
    got = fd.entropy(x, groups=np.zeros(0, np.int64), reduction="sum")
    assert got.shape == (0,)
