"""fastce.dask: every function on Dask arrays gives the in-memory bits, for any chunking of the
batch axes, under the synchronous and threaded schedulers and on a real distributed cluster,
also when a worker process dies in the middle of a computation."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from dask.delayed import Delayed  # noqa: E402

import fastce  # noqa: E402
import fastce.dask as fd  # noqa: E402
from fastce import _dask_blocks  # noqa: E402

from .registry import REGISTRY, weights  # noqa: E402

N = 37
N_CLASSES = 5
# Chunkings of the batch axis (the target gets a different one, so that chunks are unified).
CHUNKINGS = [(37,), (10, 10, 10, 7), (1, 1, 35), (17, 3, 17)]
OTHER = {(37,): (20, 17), (10, 10, 10, 7): (37,), (1, 1, 35): (5,) * 7 + (2,), (17, 3, 17): 9}


def same_bits(got, want):
    """Equal dtype, shape and bits (NaN payloads and the sign of zero included)."""
    got_arr, want_arr = np.asarray(got), np.asarray(want)
    assert type(got) is type(want), (type(got), type(want))
    assert got_arr.dtype == want_arr.dtype, (got_arr.dtype, want_arr.dtype)
    assert got_arr.shape == want_arr.shape, (got_arr.shape, want_arr.shape)
    kind = {2: np.uint16, 4: np.uint32, 8: np.uint64}[got_arr.dtype.itemsize]
    np.testing.assert_array_equal(got_arr.view(kind), want_arr.view(kind))


def to_dask(x, chunks):
    """A Dask array of ``x`` chunked along axis 0 (every other axis whole)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return da.from_array(x)
    return da.from_array(x, chunks=(chunks,) + x.shape[1:])


def dask_args(args, n, chunks):
    """The positional arrays as Dask arrays; the first (target) chunked differently."""
    out = []
    for i, a in enumerate(args):
        a = np.asarray(a)
        c = OTHER[chunks] if i == 0 and len(args) == 2 else chunks
        out.append(to_dask(a, c) if a.ndim and a.shape[0] == n else a)
    return out


CASES = [
    (key, i, variant)
    for key, entry in REGISTRY.items()
    if entry.reduces
    for i, variant in enumerate(entry.variants)
]


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("key", "index", "variant"), CASES, ids=[f"{k}-{i}" for k, i, _ in CASES])
def test_losses_match_in_memory_bits(key, index, variant, dtype, scheduler):
    entry = REGISTRY[key]
    rng = np.random.default_rng(1000 + 10 * index + (dtype == np.float32))
    args, kwargs = entry.make(rng, (N,), N_CLASSES, dtype, variant)
    sample_weight = weights(rng, (N,))
    fast = getattr(fastce, entry.name)
    lazy = getattr(fd, entry.name)
    with dask.config.set(scheduler=scheduler):
        for chunks in CHUNKINGS:
            dargs = dask_args(args, N, chunks)
            w = to_dask(sample_weight, OTHER[chunks])
            for reduction in ("none", "sum", "mean"):
                for sw, dsw in [(None, None), (sample_weight, w)]:
                    want = fast(*args, **kwargs, reduction=reduction, sample_weight=sw)
                    got = lazy(*dargs, **kwargs, reduction=reduction, sample_weight=dsw)
                    if reduction == "none":
                        assert isinstance(got, da.Array)
                        assert got.dtype == want.dtype
                        got = got.compute()
                    same_bits(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_batch_axes_and_other_class_axes(dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 4, 7)).astype(dtype) * 3
    p = fastce.softmax(x, axis=1)
    y = rng.integers(0, 4, size=(6, 7))
    w = weights(rng, (6, 7))
    dx = da.from_array(x, chunks=(4, 4, 3))
    dp = da.from_array(p, chunks=(2, 4, (3, 1, 3)))
    dy = da.from_array(y, chunks=(3, 5))
    dw = da.from_array(w, chunks=(6, 2))
    for reduction in ("none", "sum", "mean"):
        for kw in [{"from_logits": True}, {"from_logits": True, "class_weight": [1, 2, 0, 0.5]}]:
            want = fastce.cross_entropy(y, x, axis=1, reduction=reduction, sample_weight=w, **kw)
            got = fd.cross_entropy(dy, dx, axis=1, reduction=reduction, sample_weight=dw, **kw)
            same_bits(got.compute() if reduction == "none" else got, want)
        want = fastce.kl_divergence(p, x, axis=-2, from_logits=True, reduction=reduction)
        got = fd.kl_divergence(dp, dx, axis=-2, from_logits=True, reduction=reduction)
        same_bits(got.compute() if reduction == "none" else got, want)
        want = fastce.entropy(p, axis=1, base=2, reduction=reduction)
        got = fd.entropy(dp, axis=1, base=2, reduction=reduction)
        same_bits(got.compute() if reduction == "none" else got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_of_two_sets_of_logits_and_batchmean(dtype):
    """Teacher and student logits of (batch, classes, sequence), chunked on every axis: the
    in-memory bits for every reduction, ``"batchmean"`` dividing by the batch axis."""
    rng = np.random.default_rng(8)
    t = (rng.normal(size=(6, 5, 7)) * 3).astype(dtype)
    s = (t + rng.normal(size=t.shape)).astype(dtype)
    w = weights(rng, (6, 7))
    dt = da.from_array(t, chunks=(4, 5, 3))
    ds = da.from_array(s, chunks=(2, 5, (3, 1, 3)))
    dw = da.from_array(w, chunks=(6, 2))
    kw = {"axis": 1, "from_logits": True, "target_from_logits": True}
    for reduction in ("none", "sum", "mean", "batchmean"):
        for sw, dsw in [(None, None), (w, dw)]:
            want = fastce.kl_divergence(t, s, reduction=reduction, sample_weight=sw, **kw)
            got = fd.kl_divergence(dt, ds, reduction=reduction, sample_weight=dsw, **kw)
            same_bits(got.compute() if reduction == "none" else got, want)
    want = fastce.js_divergence(t, s, reduction="mean", **kw)
    same_bits(fd.js_divergence(dt, ds, reduction="mean", **kw), want)
    with pytest.raises(ValueError, match="'batchmean' is kl_divergence's"):
        fd.js_divergence(dt, ds, reduction="batchmean", **kw)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64])
def test_transforms(dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(9, 4, 6)) * 5).astype(dtype)
    dx = da.from_array(x, chunks=(2, 3, 6))
    for name in ("logsumexp", "log_softmax", "softmax"):
        got = getattr(fd, name)(dx)
        want = getattr(fastce, name)(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        same_bits(got.compute(), want)
        got = getattr(fd, name)(da.from_array(x, chunks=(4, 4, 3)), axis=1)
        same_bits(got.compute(), getattr(fastce, name)(x, axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_chunked_on_every_axis(dtype):
    rng = np.random.default_rng(11)
    y = (rng.random((23, 6)) < 0.4).astype(dtype)
    p = rng.random((23, 6)).astype(dtype)
    pos = rng.random(6) * 3
    row_w = weights(rng, (23,))
    elem_w = weights(rng, (23, 6))
    dy = da.from_array(y, chunks=(5, 6))
    dp = da.from_array(p, chunks=(7, 6))
    cases = [({}, {}), ({"sample_weight": row_w}, {"sample_weight": da.from_array(row_w, 4)})]
    cases.append(({"sample_weight": elem_w}, {"sample_weight": da.from_array(elem_w, (9, 6))}))
    for mem, lazy in cases:
        for reduction in ("none", "sum", "mean"):
            want = fastce.binary_cross_entropy(y, p, pos_weight=pos, reduction=reduction, **mem)
            got = fd.binary_cross_entropy(dy, dp, pos_weight=pos, reduction=reduction, **lazy)
            same_bits(got.compute() if reduction == "none" else got, want)
    # "none" with pos_weight on a chunked label axis; "mean" needs that axis whole.
    chunked = da.from_array(p, chunks=(7, 4))
    got = fd.binary_cross_entropy(dy, chunked, pos_weight=pos).compute()
    same_bits(got, fastce.binary_cross_entropy(y, p, pos_weight=pos))
    with pytest.raises(
        ValueError, match=r"pred has its axis along which pos_weight varies \(axis 1"
    ):
        fd.binary_cross_entropy(dy, chunked, pos_weight=pos, reduction="mean")
    with pytest.raises(ValueError, match=r"target has its axis .*target\.rechunk\(\{1: -1\}\)"):
        fd.binary_cross_entropy(dy.rechunk((5, 3)), dp, pos_weight=pos, reduction="sum")
    # A 1-D weight of the length of the last axis broadcasts along it, even in square blocks.
    square = da.from_array(p[:6], chunks=(3, 3))
    w6 = weights(rng, (6,))
    for reduction in ("none", "mean"):
        want = fastce.binary_cross_entropy(y[:6], p[:6], sample_weight=w6, reduction=reduction)
        got = fd.binary_cross_entropy(y[:6], square, sample_weight=w6, reduction=reduction)
        same_bits(got.compute() if reduction == "none" else got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_perplexity_and_log_loss(dtype):
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(41, 4)) * 2).astype(dtype)
    p = fastce.softmax(x)
    y = rng.integers(0, 4, 41)
    y[rng.random(41) < 0.2] = -1
    w = weights(rng, (41,))
    for chunks in [(41,), (8,) * 5 + (1,), (1, 40)]:
        dx, dp = to_dask(x, chunks), to_dask(p, chunks)
        dy, dw = to_dask(y, OTHER.get(chunks, 13)), to_dask(w, 7)
        for kw in [{}, {"ignore_index": -1, "sample_weight": w}]:
            lazy_kw = dict(kw, sample_weight=dw) if "sample_weight" in kw else kw
            yy = y if kw else np.abs(y)
            dyy = dy if kw else abs(dy)
            same_bits(
                fd.perplexity(dyy, dx, from_logits=True, **lazy_kw),
                fastce.perplexity(yy, x, from_logits=True, **kw),
            )
        names = np.array(["a", "b", "c", "d"])[np.abs(y)]
        dnames = to_dask(names, 9)
        for normalize in (True, False):
            for sw, dsw in [(None, None), (w, dw)]:
                want = fastce.log_loss(
                    names, p, labels=list("abcd"), normalize=normalize, sample_weight=sw
                )
                got = fd.log_loss(
                    dnames, dp, labels=list("abcd"), normalize=normalize, sample_weight=dsw
                )
                same_bits(got, want)
        binary = p[:, 0] / (p[:, 0] + p[:, 1])
        yb = (y > 1).astype(int)
        same_bits(
            fd.log_loss(to_dask(yb, 5), to_dask(binary, chunks), labels=[0, 1]),
            fastce.log_loss(yb, binary, labels=[0, 1]),
        )


def test_accumulate_is_lazy_and_equals_the_accumulator():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(50, 3))
    y = rng.integers(0, 3, 50)
    dx, dy = da.from_array(x, chunks=7), da.from_array(y, chunks=11)
    lazy_ce = fd.accumulate("cross_entropy", dy, dx, from_logits=True, base=2, split_every=2)
    lazy_h = fd.accumulate("entropy", dx, from_logits=True)
    assert isinstance(lazy_ce, Delayed)
    ce, h = dask.compute(lazy_ce, lazy_h, scheduler="threads")
    assert (
        ce == fastce.Accumulator("cross_entropy", from_logits=True, base=2).update(y, x).result()
    )
    assert h == fastce.Accumulator("entropy", from_logits=True).update(x).result()
    for split_every in (2, 3, 100):
        (again,) = dask.compute(
            fd.accumulate(
                "cross_entropy", dy, dx, from_logits=True, base=2, split_every=split_every
            )
        )
        assert again == ce
    (ppl,) = dask.compute(fd.accumulate("perplexity", dy, dx, from_logits=True, split_every=3))
    assert ppl == fastce.Accumulator("perplexity", from_logits=True).update(y, x).result()
    assert ppl.perplexity == fastce.perplexity(y, x, from_logits=True)
    with pytest.raises(ValueError, match="measure must be one of"):
        fd.accumulate("crossentropy", dy, dx)
    with pytest.raises(TypeError, match="takes two arrays"):
        fd.accumulate("cross_entropy", dx)
    with pytest.raises(ValueError, match="split_every"):
        fd.accumulate("entropy", dx, split_every=1)


def test_edge_shapes():
    # one distribution (no batch axis), empty batches, NumPy and list inputs
    p = np.array([0.5, 0.25, 0.25])
    same_bits(
        fd.entropy(da.from_array(p), base=2).compute(), np.asarray(fastce.entropy(p, base=2))
    )
    same_bits(fd.entropy(p, base=2, reduction="sum"), fastce.entropy(p, base=2, reduction="sum"))
    empty = np.zeros((0, 4), np.float32)
    for reduction in ("sum", "mean"):
        same_bits(
            fd.entropy(empty, reduction=reduction), fastce.entropy(empty, reduction=reduction)
        )
    assert fd.entropy(empty).compute().shape == (0,)
    lists = [[0.1, 0.9], [0.6, 0.4]]
    same_bits(
        fd.cross_entropy([1, 0], lists, reduction="mean"),
        fastce.cross_entropy([1, 0], lists, reduction="mean"),
    )


def test_errors_name_the_argument():
    p = da.from_array(np.full((10, 4), 0.25), chunks=(5, 2))
    y = da.zeros(10, dtype=int, chunks=5)
    with pytest.raises(ValueError, match=r"pred has its class axis \(axis 1, length 4\) split"):
        fd.cross_entropy(y, p)
    with pytest.raises(ValueError, match=r"p has its class axis .*p.rechunk\(\{1: -1\}\)"):
        fd.entropy(p)
    good = p.rechunk({1: -1})
    with pytest.raises(ValueError, match="target has shape"):
        fd.cross_entropy(da.zeros(9, dtype=int, chunks=5), good)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        fd.entropy(good, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="class_weight"):
        fd.cross_entropy(y, good, class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="reduction must be one of"):
        fd.entropy(good, reduction="median")
    with pytest.raises(ValueError, match="base"):
        fd.entropy(good, base=1)
    with pytest.raises(TypeError, match="p must be a real numeric array"):
        fd.entropy(da.from_array(np.array([["a", "b"]])))
    with pytest.raises(ValueError, match="axis 2 is out of bounds for p"):
        fd.entropy(good, axis=2)
    with pytest.raises(ValueError, match="needs labels="):
        fd.log_loss(y, good)
    unknown = good[good[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fd.entropy(unknown)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_bad_values_are_reported_at_their_position_in_the_whole_array(reduction):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    y[33] = 7
    with pytest.raises(ValueError) as in_memory:
        fastce.cross_entropy(y, x, from_logits=True, reduction=reduction)
    dy, dx = da.from_array(y, chunks=10), da.from_array(x, chunks=(6, 3))
    with pytest.raises(ValueError) as blocked:
        got = fd.cross_entropy(dy, dx, from_logits=True, reduction=reduction)
        if reduction == "none":
            got.compute()
    assert "at position 33" in str(in_memory.value)
    # The in-memory message, then the block that raised: the target's 10-row chunks unified
    # with pred's 6-row ones give 9 blocks, and row 33 is in the 8th (rows 30 to 35).
    assert str(blocked.value) == (
        f"{in_memory.value} (fastce.dask: cross_entropy in block (7,) of (9,), samples [30:36])"
    )
    p = fastce.softmax(x)
    p[21, 2] = 1.5
    with pytest.raises(ValueError) as in_memory:
        fastce.entropy(p)
    with pytest.raises(ValueError) as blocked:
        fd.entropy(da.from_array(p, chunks=(8, 3))).compute()
    assert "at position (21, 2)" in str(blocked.value)
    assert str(blocked.value) == (
        f"{in_memory.value} (fastce.dask: entropy in block (2,) of (5,), samples [16:24])"
    )


# A block that raises: the caller learns which block (issue 6, part 4)

SENTINEL = 1234.5
"""A logit value that makes the faulty function below raise (a fault on one block only)."""


def _faulty(function):
    @functools.wraps(function)  # the accumulator reads the options from the signature
    def call(*args, **kwargs):
        if np.any(np.asarray(args[-1]) == SENTINEL):
            raise RuntimeError("injected fault")
        return function(*args, **kwargs)

    return call


def _fault_data():
    x = np.random.default_rng(5).normal(size=(40, 3))
    x[27, 1] = SENTINEL
    return x


def _install_fault(dask_worker=None):
    """Make entropy raise on blocks holding SENTINEL, in this process (a worker's, through
    client.run, or the test's own)."""
    import dataclasses

    from fastce import _measures, accumulator, losses

    m = dataclasses.replace(_measures.MEASURES["entropy"], function=_faulty(losses.entropy))
    _measures.MEASURES["entropy"] = accumulator.MEASURES["entropy"] = m


def _remove_fault(dask_worker=None):
    import dataclasses

    from fastce import _measures, accumulator, losses

    m = dataclasses.replace(_measures.MEASURES["entropy"], function=losses.entropy)
    _measures.MEASURES["entropy"] = accumulator.MEASURES["entropy"] = m


@pytest.fixture
def fault():
    _install_fault()
    try:
        yield
    finally:
        _remove_fault()


def _block_note(exc):
    return " ".join(getattr(exc, "__notes__", []))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_a_fault_in_one_block_names_the_block(fault, reduction):
    dx = da.from_array(_fault_data(), chunks=(8, 3))
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError) as info:
        got = fd.entropy(dx, from_logits=True, reduction=reduction)
        if reduction == "none":
            got.compute()
    assert str(info.value) == "injected fault"  # the worker's exception, as it was raised
    assert _block_note(info.value) == (
        "fastce.dask: raised by entropy in block (3,) of (5,), samples [24:32]"
    )


def test_a_bad_value_without_a_position_names_the_block():
    # log_loss reports NaN as scikit-learn does, with no position: the block says where.
    x = fastce.softmax(_fault_data())
    x[27, 1] = np.nan
    y = np.arange(40) % 3
    with pytest.raises(ValueError, match="Input contains NaN") as in_memory:
        fastce.log_loss(y, x, labels=[0, 1, 2])
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError) as blocked:
        fd.log_loss(da.from_array(y, chunks=8), da.from_array(x, chunks=(8, 3)), labels=[0, 1, 2])
    assert str(blocked.value) == (
        f"{in_memory.value} (fastce.dask: log_loss in block (3,) of (5,), samples [24:32])"
    )
    # Element-wise functions name the block in elements, every axis.
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError) as blocked:
        t = np.full((40, 3), 0.5)
        t[27, 1] = 2.0
        fd.binary_cross_entropy(da.from_array(t, chunks=(8, 3)), x).compute()
    assert str(blocked.value) == (
        "target must hold probabilities in [0, 1]; got 2.0 at position (27, 1) (fastce.dask: "
        "binary_cross_entropy in block (3, 0) of (5, 1), elements [24:32, 0:3])"
    )


def test_numba_threads_per_task_thread():
    import threading

    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    seen = []

    def in_a_pool_thread():
        _dask_blocks._use_numba_threads()
        seen.append(numba.get_num_threads())

    with dask.config.set(num_workers=2):
        t = threading.Thread(target=in_a_pool_thread)
        t.start()
        t.join()
    assert seen == [max(1, limit // 2)]
    before = numba.get_num_threads()
    _dask_blocks._use_numba_threads()  # the main thread (synchronous scheduler) is left alone
    assert numba.get_num_threads() == before


def test_import_fastce_does_not_import_dask():
    code = "import sys, fastce; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# A real cluster: two worker processes on loopback


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _cluster_data(dtype):
    rng = np.random.default_rng(21)
    x = (rng.normal(size=(3000, 12)) * 4).astype(dtype)
    y = rng.integers(0, 12, 3000)
    y[rng.random(3000) < 0.1] = -100
    w = weights(rng, (3000,))
    return x, y, w, rng.random(12) * 2


def test_configure_workers(client, capsys):
    import numba

    setting = fd.configure_workers(client)
    said = capsys.readouterr().err.splitlines()
    assert [line.split("]")[0] for line in said[:-1]] == [
        "fastce.dask.configure_workers: [1/3",
        "fastce.dask.configure_workers: [2/3",
        "fastce.dask.configure_workers: [3/3",
    ], said
    assert "Numba cache warm in this process" in said[0]
    assert said[-1].startswith("fastce.dask.configure_workers: 2 worker(s) ready in "), said
    fd.configure_workers(client, progress=False, warmup=False)
    assert capsys.readouterr().err == ""
    cores = os.cpu_count() or 1
    assert setting == {a: max(1, cores // 2) for a in client.scheduler_info()["workers"]}
    used = client.submit(_numba_threads_in_a_task, pure=False).result()
    assert used == min(max(1, cores // 2), numba.config.NUMBA_NUM_THREADS)
    with pytest.raises(ValueError, match="numba_threads must be a positive integer"):
        fd.configure_workers(client, numba_threads=0)


def _numba_threads_in_a_task():
    import numba

    _dask_blocks._use_numba_threads()
    return numba.get_num_threads()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cluster_bits(client, dtype):
    x, y, w, cw = _cluster_data(dtype)
    kw = {"from_logits": True, "ignore_index": -100, "class_weight": cw, "base": 2}
    with dask.config.set(scheduler=client):
        for chunks in [(3000,), (1000, 1000, 1000), (7, 2000, 993), (256,) * 11 + (184,)]:
            dx = da.from_array(x, chunks=(chunks, 12))
            dy = da.from_array(y, chunks=333)
            dw = da.from_array(w, chunks=1000)
            for reduction in ("sum", "mean"):
                want = fastce.cross_entropy(y, x, reduction=reduction, sample_weight=w, **kw)
                got = fd.cross_entropy(dy, dx, reduction=reduction, sample_weight=dw, **kw)
                same_bits(got, want)
            same_bits(
                fd.cross_entropy(dy, dx, sample_weight=dw, **kw).compute(),
                fastce.cross_entropy(y, x, sample_weight=w, **kw),
            )
            p = fastce.softmax(x)
            same_bits(
                fd.js_divergence(da.from_array(p, chunks=(chunks, 12)), p[::-1], reduction="mean"),
                fastce.js_divergence(p, p[::-1], reduction="mean"),
            )


def test_cluster_a_block_that_raises_is_named(client):
    """On worker processes: a fault (any exception) and a bad value in one block both reach
    the caller, naming the block."""
    dx = da.from_array(_fault_data(), chunks=(8, 3))
    client.run(_install_fault)
    try:
        with dask.config.set(scheduler=client):
            for reduction in ("none", "mean"):
                with pytest.raises(RuntimeError, match="injected fault") as info:
                    got = fd.entropy(dx, from_logits=True, reduction=reduction)
                    if reduction == "none":
                        got.compute()
                assert _block_note(info.value) == (
                    "fastce.dask: raised by entropy in block (3,) of (5,), samples [24:32]"
                )
    finally:
        client.run(_remove_fault)
    y = np.arange(40) % 3
    y[27] = 5
    with dask.config.set(scheduler=client), pytest.raises(ValueError) as blocked:
        fd.cross_entropy(da.from_array(y, chunks=8), dx, from_logits=True, reduction="sum")
    assert str(blocked.value) == (
        "target holds label 5 at position 27; expected an integer class index 0 <= label < 3 "
        "(fastce.dask: cross_entropy in block (3,) of (5,), samples [24:32])"
    )


def _slow(block, log):
    """A block that takes 0.15 s, and notes in ``log`` that it is done."""
    time.sleep(0.15)
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return block


def test_cluster_survives_a_worker_killed_mid_computation(client, tmp_path):
    fd.configure_workers(client, warmup=False)
    x, y, w, cw = _cluster_data(np.float64)
    kw = {"from_logits": True, "ignore_index": -100, "class_weight": cw}
    want = fastce.cross_entropy(y, x, reduction="mean", sample_weight=w, **kw)
    blocks = 40
    log = tmp_path / "done.txt"
    log.touch()
    dx = da.from_array(x, chunks=(3000 // blocks, 12)).map_blocks(_slow, log, dtype=x.dtype)
    lazy = fd.accumulate(
        "cross_entropy", da.from_array(y, chunks=100), dx, sample_weight=w, split_every=4, **kw
    )
    pids = client.run(os.getpid)
    future = client.compute(lazy)
    victim = sorted(pids)[0]
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "the computation never got going"
        done = len(log.read_text().split())
        # Killed while it runs a fastce task or holds one's partial result (which the
        # reduction still needs): a condition that lasts while the slow blocks go on (~3 s),
        # not a race with a task of a few milliseconds.
        busy = client.run(_fastce_keys, workers=[victim]).get(victim, [])
        if done >= 2 and busy:
            break
        assert not future.done(), "finished before a worker could be killed"
        time.sleep(0.02)
    os.kill(pids[victim], signal.SIGKILL)
    res = future.result(timeout=120)
    same_bits(np.float64(res.mean), want)
    same_bits(
        np.float64(res.sum), fastce.cross_entropy(y, x, reduction="sum", sample_weight=w, **kw)
    )
    # The killed process is gone, and a new one took its place.
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    new_pids = client.run(os.getpid)
    assert pids[victim] not in new_pids.values()
    assert len(new_pids) == 2


def _fastce_keys(dask_worker):
    """The names of the fastce tasks this worker is running now or holds the results of."""
    keys = [ts.key for ts in dask_worker.state.executing] + list(dask_worker.data.keys())
    names = (str(k[0] if isinstance(k, tuple) else k) for k in keys)
    return [name for name in names if name.startswith("fastce-")]


def _compute_failed(client, needle):
    """The workers' log records of failed tasks whose text holds ``needle``."""
    return [
        text
        for records in client.get_worker_logs().values()
        for _, text in records
        if "Compute Failed" in text and needle in text
    ]


def _set_worker_log_level(level, dask_worker=None):
    import logging

    logger = logging.getLogger("distributed.worker")
    before = logger.level
    logger.setLevel(level)
    return before


def test_cluster_input_error_is_one_line_in_the_worker_log(client):
    """A bad label on worker processes: the client gets the clean ValueError alone (no chained
    error with the block's own position), and the worker's log one line, not the key, task
    and traceback over several lines; unless the worker's logging asks for DEBUG."""
    x = np.zeros((1000, 3), np.float32)
    y = np.zeros(1000, np.int64)
    y[777] = 9
    dx, dy = da.from_array(x, chunks=(250, 3)), da.from_array(y, chunks=250)
    with dask.config.set(scheduler=client), pytest.raises(ValueError) as info:
        fd.cross_entropy(dy, dx, from_logits=True, reduction="mean")
    message = (
        "target holds label 9 at position 777; expected an integer class index 0 <= label < 3 "
        "(fastce.dask: cross_entropy in block (3,) of (4,), samples [750:1000])"
    )
    assert str(info.value) == message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    deadline = time.monotonic() + 10
    while not (logged := _compute_failed(client, "at position 777")):
        assert time.monotonic() < deadline, client.get_worker_logs()
        time.sleep(0.05)
    assert len(logged) == 1 and len(logged[0].splitlines()) == 1, logged
    assert message in logged[0] and "Traceback" not in logged[0]

    # Asked for: the whole record, traceback included.
    before = client.run(_set_worker_log_level, "DEBUG")
    try:
        y[777], y[555] = 0, 7
        with dask.config.set(scheduler=client), pytest.raises(ValueError, match="label 7"):
            fd.cross_entropy(da.from_array(y, chunks=250), dx, from_logits=True, reduction="sum")
        deadline = time.monotonic() + 10
        while not (logged := _compute_failed(client, "at position 555")):
            assert time.monotonic() < deadline, client.get_worker_logs()
            time.sleep(0.05)
        assert "Traceback" in logged[0] and len(logged[0].splitlines()) > 3, logged
    finally:
        for address, level in before.items():
            client.run(_set_worker_log_level, level, workers=[address])


def test_worker_log_filter_keeps_other_failures_whole():
    import logging

    from fastce import _dask_worker as worker_side

    text = (
        "Compute Failed\nKey:       %s\nState:     %s\nTask:  %s\nException: %r\nTraceback: %r\n"
    )

    def record(key, exception_text):
        args = (key, "executing", "<Task ...>", exception_text, '  File "x.py", line 1\n')
        return logging.LogRecord("distributed.worker", logging.ERROR, "", 0, text, args, None)

    ours = "ValueError('target holds label 9 at position 7; ... (fastce.dask: cross_entropy in block (0,) of (1,), samples [0:10])')"  # noqa: E501
    one_line = record(("fastce-cross_entropy-state-abc", 0), ours)
    assert worker_side.InputErrorsInOneLine().filter(one_line)
    assert (
        one_line.getMessage().count("\n") == 0 and "label 9 at position 7" in one_line.getMessage()
    )
    for key, exception_text in [
        (("fastce-entropy-state-abc", 3), "RuntimeError('injected fault')"),  # a fault
        (("fastce-entropy-state-abc", 3), "MemoryError()"),
        (("user-task-abc", 0), ours),  # not fastce's task
    ]:
        kept = record(key, exception_text)
        assert worker_side.InputErrorsInOneLine().filter(kept)
        assert kept.getMessage().startswith("Compute Failed\nKey:")
        assert exception_text in kept.getMessage()
