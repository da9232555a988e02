"""In memory, streamed from a file, on a Dask cluster: the same bits for every measure.

The scale issue's promise in one place: for each measure with a ``"mean"``, the in-memory
``reduction="sum"``/``"mean"``, ``fastce.score_file`` over ``.npy`` files read in many chunks,
and ``fastce.dask`` over many blocks (threaded scheduler) agree to the last bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastce

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastce.dask as fdask  # noqa: E402

N, C = 3001, 7


def _probs(rng, dtype):
    p = rng.dirichlet(np.full(C, 0.6), size=N)
    p[rng.random((N, C)) < 0.05] = 0.0
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def cases(dtype):
    """(measure, target or None, pred, options) for every measure."""
    rng = np.random.default_rng(11)
    logits = (rng.normal(size=(N, C)) * 3).astype(dtype)
    labels = rng.integers(0, C, N)
    p, q = _probs(rng, dtype), _probs(rng, dtype)
    y01 = (rng.random((N, C)) < 0.3).astype(dtype)
    q64 = q.astype(np.float64)
    q64 /= q64.sum(axis=1, keepdims=True)  # rows that sum to one for log_loss's check
    return [
        ("entropy", None, p, {"base": 2}),
        ("cross_entropy", labels, logits, {"from_logits": True}),
        ("cross_entropy", p, q, {}),
        ("binary_cross_entropy", y01, q, {}),
        ("kl_divergence", p, q, {}),
        ("js_divergence", p, q, {"base": 2}),
        ("log_loss", labels, q64, {}),
    ]


def bits(x):
    return np.float64(x).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_memory_file_and_dask_agree_to_the_bit(tmp_path, dtype):
    for k, (measure, target, pred, options) in enumerate(cases(dtype)):
        arrays = (pred,) if target is None else (target, pred)
        if measure == "log_loss":
            want_sum = fastce.log_loss(*arrays, normalize=False)
            want_mean = fastce.log_loss(*arrays)
        else:
            f = getattr(fastce, measure)
            want_sum = f(*arrays, reduction="sum", **options)
            want_mean = f(*arrays, reduction="mean", **options)

        # Streamed from .npy files in chunks of a few rows.
        pred_path = tmp_path / f"pred{k}.npy"
        np.save(pred_path, pred)
        target_path = None
        if target is not None:
            target_path = tmp_path / f"target{k}.npy"
            np.save(target_path, target)
        extra = {"labels": np.arange(C)} if measure == "log_loss" else {}
        streamed = fastce.score_file(
            None,
            measure,
            target=None if target_path is None else str(target_path),
            pred=str(pred_path),
            chunk_bytes=4096,
            **extra,
            **options,
        )

        # On Dask arrays cut into uneven blocks.
        blocks = (500, 1000, 1, 1500)
        dask_arrays = [da.from_array(a, chunks=(blocks, *a.shape[1:])) for a in arrays]
        g = getattr(fdask, measure)
        with dask.config.set(scheduler="threads"):
            if measure == "log_loss":
                dask_sum = g(*dask_arrays, normalize=False, labels=np.arange(C))
                dask_mean = g(*dask_arrays, labels=np.arange(C))
            else:
                dask_sum = g(*dask_arrays, reduction="sum", **options)
                dask_mean = g(*dask_arrays, reduction="mean", **options)

        for name, got_sum, got_mean in [
            ("file", streamed.sum, streamed.mean),
            ("dask", dask_sum, dask_mean),
        ]:
            assert bits(got_sum) == bits(want_sum), (measure, name, got_sum, want_sum)
            assert bits(got_mean) == bits(want_mean), (measure, name, got_mean, want_mean)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_where_mask_agrees_on_the_three_paths(tmp_path, dtype):
    """The same with a ``where=`` mask (a file of booleans; a Dask array chunked otherwise)."""
    keep = np.random.default_rng(12).random(N) < 0.6
    np.save(tmp_path / "keep.npy", keep)
    dask_keep = da.from_array(keep, chunks=(700, 2301))
    for k, (measure, target, pred, options) in enumerate(cases(dtype)):
        if measure == "log_loss":  # it takes no mask
            continue
        arrays = (pred,) if target is None else (target, pred)
        f = getattr(fastce, measure)
        want = [f(*arrays, reduction=r, where=keep, **options) for r in ("sum", "mean")]
        paths = {"pred": str(tmp_path / f"pred{k}.npy")}
        np.save(paths["pred"], pred)
        if target is not None:
            paths["target"] = str(tmp_path / f"target{k}.npy")
            np.save(paths["target"], target)
        streamed = fastce.score_file(
            None, measure, **paths, where=str(tmp_path / "keep.npy"), chunk_bytes=4096, **options
        )
        blocks = (500, 1000, 1, 1500)
        dask_arrays = [da.from_array(a, chunks=(blocks, *a.shape[1:])) for a in arrays]
        g = getattr(fdask, measure)
        with dask.config.set(scheduler="threads"):
            lazy = [
                g(*dask_arrays, reduction=r, where=dask_keep, **options) for r in ("sum", "mean")
            ]
        for name, got in [("file", [streamed.sum, streamed.mean]), ("dask", lazy)]:
            assert [bits(x) for x in got] == [bits(x) for x in want], (measure, name, got, want)
