"""fastce.dask.compare: one Comparison per block, the states merged in a tree. Every exact
figure (means, standard errors, RMS, rates, cross-entropies, perplexities, counts, minima and
maxima) has the bits of the in-memory ``fastce.compare`` whatever the chunking, on a real
``distributed`` cluster and under the threaded scheduler; each streamed quantile lies within
its sketch's rank error of the in-memory values."""

from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
pytest.importorskip("datasketches")

import fastce  # noqa: E402
import fastce.dask as fd  # noqa: E402
from fastce.comparison import QUANTILES, _clamped, _Options, _scan  # noqa: E402

from . import test_dask  # noqa: E402
from .test_compare import EXACT, EXACT_DISTRIBUTION  # noqa: E402

# The two-process LocalCluster of the dask tests (a module-scoped fixture: one cluster here).
client = test_dask.client

N, C = 3000, 12
CHUNKINGS = [(3000,), (1000, 1000, 1000), (7, 2000, 993), (256,) * 11 + (184,)]


def _data(dtype, seed=21):
    rng = np.random.default_rng(seed)
    ref = (rng.normal(size=(N, C)) * 3).astype(dtype)
    cand = (ref + rng.normal(size=(N, C)) * 0.5).astype(dtype)
    y = rng.integers(0, C, N)
    y[rng.random(N) < 0.1] = -100
    w = rng.random(N) * 2
    keep = rng.random(N) < 0.9
    ids = rng.integers(0, 5, N)
    return ref, cand, y, w, keep, ids


def _figures(r):
    """Every exact figure of a ComparisonResult: name -> value."""
    out = {name: getattr(r, name) for name in EXACT}
    for name in ("kl", "delta_p"):
        dist = getattr(r, name)
        if dist is None:
            out[name] = None
            continue
        for part in EXACT_DISTRIBUTION:
            out[f"{name}.{part}"] = getattr(dist, part)
    return out


def same_figures(got, want):
    """The same exact figures, bit for bit, of the same types and dtypes."""
    a, b = _figures(got), _figures(want)
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        assert type(x) is type(y), (name, type(x), type(y))
        if x is None or isinstance(x, (str, int)):
            assert x == y, (name, x, y)
            continue
        x_arr, y_arr = np.asarray(x), np.asarray(y)
        assert x_arr.dtype == y_arr.dtype and x_arr.shape == y_arr.shape, name
        assert x_arr.tobytes() == y_arr.tobytes(), (name, x, y)


def _per_sample(ref, cand, y, options, where=None, sample_weight=None, groups=None):
    """The per-sample KL (a rounding below zero as 0.0) and Δp of the samples kept, and their
    group ids: the values whose quantiles a comparison reports."""
    opts = _Options.check(
        options.get("from_logits"),
        options.get("axis", -1),
        options.get("base"),
        options.get("ignore_index"),
        options.get("temperature", 1.0),
    )
    s = _scan(opts, ref, cand, y, where, sample_weight, groups)
    return {"kl": _clamped(s.kl), "delta_p": s.delta_p}, s.ids


def ranks_within_bounds(got, values, ids, n_groups):
    """Each streamed quantile's rank among the in-memory values is within its rank error (plus
    the float32 rounding of the sketch's values and ties: a few samples) of q."""
    for name, dist in (("kl", got.kl), ("delta_p", got.delta_p)):
        if dist is None:
            continue
        assert dist.method == "req"
        for g in range(n_groups or 1):
            vals = values[name] if ids is None else values[name][ids == g]
            slack = 4.0 / max(vals.size, 1)
            for q in QUANTILES:
                quantile = float(np.asarray(dist.quantiles[q]).reshape(-1)[g])
                error = float(np.asarray(dist.rank_error[q]).reshape(-1)[g])
                assert 0.0 <= error < 0.01, (name, g, q, error)
                below = np.count_nonzero(vals < quantile) / vals.size
                at_most = np.count_nonzero(vals <= quantile) / vals.size
                assert at_most >= q - error - slack, (name, g, q, quantile, at_most, error)
                assert below <= q + error + slack, (name, g, q, quantile, below, error)


@pytest.fixture(scope="module")
def workers(client):
    """The cluster with a warm Numba cache (compare's kernels included) and its threads set."""
    fd.configure_workers(client, progress=False)
    return client


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cluster_bits(workers, dtype):
    ref, cand, y, w, keep, _ = _data(dtype)
    options = {"from_logits": True, "ignore_index": -100, "base": 2, "temperature": 1.5}
    want = fastce.compare(ref, cand, y, where=keep, sample_weight=w, **options)
    values, _ = _per_sample(ref, cand, y, options, keep, w)
    with dask.config.set(scheduler=workers):
        for chunks in CHUNKINGS:
            got = fd.compare(
                da.from_array(ref, chunks=(chunks, C)),
                da.from_array(cand, chunks=(CHUNKINGS[1], C)),
                da.from_array(y, chunks=333),
                where=da.from_array(keep, chunks=700),
                sample_weight=da.from_array(w, chunks=1000),
                **options,
            )
            assert isinstance(got, fastce.ComparisonResult)
            same_figures(got, want)
            assert got.n_samples == np.count_nonzero(keep & (y != -100))
            ranks_within_bounds(got, values, None, None)


def test_cluster_groups(workers):
    ref, cand, y, _, keep, ids = _data(np.float32, seed=5)
    options = {"from_logits": True, "ignore_index": -100}
    want = fastce.compare(ref, cand, y, where=keep, groups=ids, **options)
    values, kept_ids = _per_sample(ref, cand, y, options, keep, groups=ids)
    with dask.config.set(scheduler=workers):
        for chunks in CHUNKINGS[1:]:
            got = fd.compare(
                da.from_array(ref, chunks=(chunks, C)),
                da.from_array(cand, chunks=(chunks, C)),
                y,  # a NumPy array: converted
                where=keep,
                groups=da.from_array(ids, chunks=450),
                **options,
            )
            assert got.n_groups == want.n_groups == 5
            same_figures(got, want)
            ranks_within_bounds(got, values, kept_ids, 5)


@pytest.fixture
def threads():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_probabilities_without_a_target(threads, dtype):
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(C, 0.3), N).astype(dtype)
    q = rng.dirichlet(np.full(C, 0.3), N).astype(dtype)
    want = fastce.compare(p, q, from_logits=False, base=2)
    values, _ = _per_sample(p, q, None, {"from_logits": False, "base": 2})
    for chunks in CHUNKINGS:
        got = fd.compare(
            da.from_array(p, chunks=(chunks, C)), q, from_logits=False, base=2
        )  # q: a NumPy array, converted
        same_figures(got, want)
        assert got.delta_p is None and got.reference_cross_entropy is None
        ranks_within_bounds(got, values, None, None)


@pytest.mark.filterwarnings("ignore:Increasing number of chunks")
def test_another_class_axis_and_several_batch_axes(threads):
    """(batch, classes, sequence) logits chunked along both batch axes; the target, weights
    and mask of shape (batch, sequence), each chunked its own way."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(40, 7, 30)) * 2
    cand = ref + rng.normal(size=ref.shape) * 0.3
    y = rng.integers(0, 7, (40, 30))
    w = rng.random((40, 30))
    keep = rng.random((40, 30)) < 0.8
    options = {"from_logits": True, "axis": 1}
    want = fastce.compare(ref, cand, y, where=keep, sample_weight=w, **options)
    got = fd.compare(
        da.from_array(ref, chunks=(13, 7, 11)),
        da.from_array(cand, chunks=(40, 7, 7)),
        da.from_array(y, chunks=(9, 30)),
        where=da.from_array(keep, chunks=(40, 4)),
        sample_weight=da.from_array(w, chunks=(17, 17)),
        **options,
    )
    same_figures(got, want)
    values, _ = _per_sample(ref, cand, y, options, keep, w)
    ranks_within_bounds(got, values, None, None)
    # a mask that broadcasts over the batch: one flag per sequence position
    positions = rng.random(30) < 0.5
    want = fastce.compare(ref, cand, y, where=positions, **options)
    got = fd.compare(da.from_array(ref, chunks=(13, 7, 11)), cand, y, where=positions, **options)
    same_figures(got, want)


def test_blocks_of_one_sample(threads):
    """Blocks of one sample each (a lone sample in memory: tests/test_compare.py)."""
    ref, cand, y, _, _, _ = _data(np.float64, seed=2)
    ref, cand, y = ref[:5], cand[:5], np.abs(y[:5])
    want = fastce.compare(ref, cand, y, from_logits=True)
    assert want.top1_agreement == np.mean(ref.argmax(-1) == cand.argmax(-1))
    got = fd.compare(da.from_array(ref, chunks=(1, C)), cand, y, from_logits=True)
    same_figures(got, want)


def test_groups_count_is_the_largest_id_kept_over_every_block(threads):
    ref, cand, y, _, _, _ = _data(np.float64, seed=9)
    ids = np.zeros(N, np.int64)
    ids[2500] = 7  # in the last block only
    keep = np.ones(N, bool)
    keep[2999] = False
    ids[2999] = 12  # masked: not counted
    options = {"from_logits": True, "ignore_index": -100, "where": keep}
    want = fastce.compare(ref, cand, y, groups=ids, **options)
    dids = da.from_array(ids, chunks=1000)
    got = fd.compare(da.from_array(ref, chunks=(1000, C)), cand, y, groups=dids, **options)
    assert got.n_groups == want.n_groups == 8
    same_figures(got, want)


def test_errors(threads):
    ref, cand, y, _, _, _ = _data(np.float64)
    dref = da.from_array(ref, chunks=(1000, C))
    split = r"reference has its class axis \(axis 1, length 12\) split into 2 chunks "
    with pytest.raises(ValueError, match=split + r".*reference\.rechunk\(\{1: -1\}\)"):
        fd.compare(da.from_array(ref, chunks=(1000, 6)), cand, from_logits=True)
    with pytest.raises(ValueError, match=r"candidate has its class axis"):
        fd.compare(dref, da.from_array(cand, chunks=(1000, 5)), from_logits=True)
    shapes = r"reference has shape \(3000, 12\) but candidate has shape \(2999, 12\)"
    with pytest.raises(ValueError, match=shapes):
        fd.compare(dref, cand[:-1], from_logits=True)
    with pytest.raises(ValueError, match=r"target has shape \(2999,\); expected class indices"):
        fd.compare(dref, cand, y[:-1], from_logits=True)
    with pytest.raises(ValueError, match="ignore_index applies to the class indices of target"):
        fd.compare(dref, cand, from_logits=True, ignore_index=-100)
    with pytest.raises(TypeError, match="from_logits"):
        fd.compare(dref, cand)
    with pytest.raises(TypeError, match="groups must hold integer group ids"):
        fd.compare(dref, cand, from_logits=True, groups=np.zeros(N))
    with pytest.raises(ValueError, match="temperature"):
        fd.compare(dref, cand, from_logits=True, temperature=0.0)
    # the data, at compute time: its position in the whole array, and the block
    bad = np.where(y == -100, 0, y)
    bad[2345] = 12
    where = r"\(fastce\.dask: compare in block \(2,\) of \(3,\), samples \[2000:3000\]\)"
    with pytest.raises(ValueError, match=r"target holds label 12 at position 2345; .* " + where):
        fd.compare(dref, cand, da.from_array(bad, chunks=1000), from_logits=True)
    ids = np.zeros(N, np.int64)
    ids[1500] = -3
    with pytest.raises(ValueError, match=r"groups holds -3 at position 1500"):
        fd.compare(dref, cand, from_logits=True, groups=da.from_array(ids, chunks=700))


def test_the_merged_states_are_the_streaming_comparisons(threads):
    """The tree of merges is Comparison.merge: the result equals a Comparison updated with the
    blocks in order, quantiles included (the same sketches, merged as the tree merges them is
    not promised, so only the exact figures are compared)."""
    ref, cand, y, _, _, _ = _data(np.float32, seed=11)
    stream = fastce.Comparison(from_logits=True, ignore_index=-100)
    for lo in range(0, N, 256):
        stream.update(ref[lo : lo + 256], cand[lo : lo + 256], y[lo : lo + 256])
    got = fd.compare(
        da.from_array(ref, chunks=(256, C)), cand, y, from_logits=True, ignore_index=-100
    )
    same_figures(got, stream.result())
