"""``where=`` masks on every way in: in memory, through the Accumulator in random batches,
through ``score_file`` (``.npy`` files, Parquet, CSV, ``.npz``), ``fastce score --where`` and
``fastce.dask``, with identical bits on all of them.

Every case puts NaN, out-of-range probabilities and out-of-range labels at masked-out samples
only: no path may read them (nothing raised, nothing propagated).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastce

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastce.dask as fdask  # noqa: E402

N, C, L = 203, 5, 3
BLOCKS = (80, 1, 45, 77)  # uneven Dask blocks of the batch axis
MASK_BLOCKS = (13, 120, 70)  # the mask's own chunks: unified with the inputs'


def bits(x):
    return np.float64(x).tobytes()


def _probs(rng, shape, dtype):
    p = rng.dirichlet(np.full(shape[-1], 0.7), size=shape[:-1])
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


def _spoil(a, rows, values):
    """``a`` with ``values`` (NaN, out of range) written into ``rows`` in turn."""
    a = a.copy()
    for k, row in enumerate(rows):
        a[row] = values[k % len(values)]
    return a


def cases(dtype):
    """(name, measure, target or None, pred, mask, options): the inputs spoiled where masked."""
    rng = np.random.default_rng(17)
    mask = rng.random(N) < 0.7
    mask[:3] = [True, False, True]
    out = np.flatnonzero(~mask)
    logits = (rng.normal(size=(N, C)) * 2).astype(dtype)
    labels = rng.integers(0, C, N)
    p, q = _probs(rng, (N, C), dtype), _probs(rng, (N, C), dtype)
    bad_labels = _spoil(labels, out, [C + 7, -5, 10**9])
    bad_logits = _spoil(logits, out, [np.nan, np.inf])
    bad_p, bad_q = _spoil(p, out, [np.nan, 5.0, -1.0]), _spoil(q, out, [2.0, np.nan])
    y01 = (rng.random((N, L)) < 0.4).astype(dtype)
    proba = rng.uniform(0.01, 0.99, (N, L)).astype(dtype)
    element_mask = rng.random((N, L)) < 0.6
    return [
        ("entropy", "entropy", None, bad_p, mask, {"base": 2}),
        ("ce_labels", "cross_entropy", bad_labels, bad_logits, mask, {"from_logits": True}),
        ("ce_soft", "cross_entropy", bad_p, bad_q, mask, {}),
        ("perplexity", "perplexity", bad_labels, bad_logits, mask, {"from_logits": True}),
        ("kl", "kl_divergence", bad_p, bad_q, mask, {}),
        ("js", "js_divergence", bad_p, bad_q, mask, {"base": 2}),
        (
            "bce_rows",
            "binary_cross_entropy",
            _spoil(y01, out, [np.nan, 2.0]),
            _spoil(proba, out, [1.5, np.nan]),
            mask,
            {},
        ),
        (
            "bce_elements",
            "binary_cross_entropy",
            np.where(element_mask, y01, np.nan).astype(dtype),
            np.where(element_mask, proba, -3.0).astype(dtype),
            element_mask,
            {},
        ),
    ]


def ids(dtype):
    return [case[0] for case in cases(dtype)]


def in_memory(measure, arrays, mask, options):
    """The reductions of the whole arrays: {"sum", "mean"} (perplexity: {"perplexity"};
    kl_divergence also "batchmean")."""
    f = getattr(fastce, measure)
    if measure == "perplexity":
        return {"perplexity": f(*arrays, where=mask, **options)}
    want = {r: f(*arrays, reduction=r, where=mask, **options) for r in ("sum", "mean")}
    if measure == "kl_divergence":
        want["batchmean"] = f(*arrays, reduction="batchmean", where=mask, **options)
    return want


def from_result(res, want):
    """The fields of a :class:`fastce.Result` that ``want`` (from :func:`in_memory`) has."""
    return {key: getattr(res, key) for key in want}


def assert_bits(got, want, label):
    for key in want:
        assert bits(got[key]) == bits(want[key]), (label, key, got[key], want[key])


def _accumulated(measure, arrays, mask, options, rng):
    acc = fastce.Accumulator(measure, **options)
    cuts = np.sort(rng.choice(np.arange(1, N), size=6, replace=False))
    for lo, hi in zip([0, *cuts, cuts[-1]], [*cuts, cuts[-1], N], strict=True):  # one empty
        acc.update(*(a[lo:hi] for a in arrays), where=mask[lo:hi])
    return acc.result()


def _save_npy(folder, arrays, mask):
    names = ["target", "pred"][-len(arrays) :]
    paths = {}
    for name, a in zip(names, arrays, strict=True):
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], a)
    paths["where"] = str(folder / "where.npy")
    np.save(paths["where"], mask)
    return paths


def _column(pa, a):
    """A Parquet column of ``a``: one value per row, or a fixed-size list per row."""
    if a.ndim == 1:
        return pa.array(a)
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])


def _save_parquet(pa, path, arrays, mask):
    import pyarrow.parquet as pq

    names = ["target", "pred"][-len(arrays) :]
    columns = {name: _column(pa, a) for name, a in zip(names, arrays, strict=True)}
    columns["keep"] = _column(pa, mask)
    pq.write_table(pa.table(columns), path, row_group_size=64)


def _dask(measure, arrays, mask, options, want):
    dask_arrays = [da.from_array(a, chunks=(BLOCKS, *a.shape[1:])) for a in arrays]
    dask_mask = da.from_array(mask, chunks=(MASK_BLOCKS, *mask.shape[1:]))
    g = getattr(fdask, measure)
    with dask.config.set(scheduler="threads"):
        if measure == "perplexity":
            return {"perplexity": g(*dask_arrays, where=dask_mask, **options)}
        return {r: g(*dask_arrays, reduction=r, where=dask_mask, **options) for r in want}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_path_gives_the_in_memory_bits(tmp_path, dtype):
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(5)
    for name, measure, target, pred, mask, options in cases(dtype):
        arrays = (pred,) if target is None else (target, pred)
        want = in_memory(measure, arrays, mask, options)
        # A masked-out sample is as if it were absent (batchmean still counts its position).
        if measure != "perplexity":
            kept = [a[mask] for a in arrays]
            f = getattr(fastce, measure)
            for r in ("sum", "mean"):
                assert bits(f(*kept, reduction=r, **options)) == bits(want[r]), (name, r)
        for key, value in want.items():
            assert np.isfinite(value), (name, key, value)

        acc = _accumulated(measure, arrays, mask, options, rng)
        assert_bits(from_result(acc, want), want, (name, "Accumulator"))
        per_mask_entry = L if measure == "binary_cross_entropy" and mask.ndim == 1 else 1
        assert acc.count == int(mask.sum()) * per_mask_entry, name

        folder = tmp_path / name
        folder.mkdir()
        paths = _save_npy(folder, arrays, mask)
        streamed = fastce.score_file(None, measure, **paths, chunk_bytes=4096, **options)
        assert_bits(from_result(streamed, want), want, (name, "score_file .npy"))

        parquet = folder / "data.parquet"
        _save_parquet(pa, parquet, arrays, mask)
        columns = {"target": "target"} if target is not None else {}
        from_parquet = fastce.score_file(
            parquet, measure, **columns, pred="pred", where="keep", chunk_bytes=4096, **options
        )
        assert_bits(from_result(from_parquet, want), want, (name, "score_file Parquet"))

        assert_bits(_dask(measure, arrays, mask, options, want), want, (name, "fastce.dask"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dask_none_is_the_in_memory_array(dtype):
    for name, measure, target, pred, mask, options in cases(dtype):
        if measure == "perplexity":
            continue
        arrays = (pred,) if target is None else (target, pred)
        want = getattr(fastce, measure)(*arrays, where=mask, **options)
        dask_arrays = [da.from_array(a, chunks=(BLOCKS, *a.shape[1:])) for a in arrays]
        dask_mask = da.from_array(mask, chunks=(MASK_BLOCKS, *mask.shape[1:]))
        with dask.config.set(scheduler="threads"):
            got = getattr(fdask, measure)(*dask_arrays, where=dask_mask, **options).compute()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), name
        assert not got[~mask].any(), name  # 0.0 where masked out


def test_dask_where_broadcasts_and_accumulates():
    rng = np.random.default_rng(3)
    p = _probs(rng, (6, 10, C), np.float64)
    keep_steps = rng.random(10) < 0.5  # one mask for every sequence: broadcast along axis 0
    dp = da.from_array(p, chunks=(4, 3, C))
    for reduction in ("none", "sum", "mean"):
        want = fastce.entropy(p, where=keep_steps, reduction=reduction)
        got = fdask.entropy(dp, where=keep_steps, reduction=reduction)
        got = got.compute() if reduction == "none" else got
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), reduction
    (res,) = dask.compute(fdask.accumulate("entropy", dp, where=da.from_array(keep_steps, 4)))
    assert res.count == 6 * int(keep_steps.sum())
    assert bits(res.mean) == bits(fastce.entropy(p, where=keep_steps, reduction="mean"))
    # A 1-D mask of length N masks whole rows of a binary cross-entropy, as in memory.
    y = (rng.random((6, 6)) < 0.5).astype(float)
    x = rng.random((6, 6))
    rows = np.array([True, False, True, True, False, True])
    want = fastce.binary_cross_entropy(y, x, where=rows, reduction="sum")
    got = fdask.binary_cross_entropy(da.from_array(y, 3), da.from_array(x, 3), where=rows)
    assert got.compute().tobytes() == fastce.binary_cross_entropy(y, x, where=rows).tobytes()
    square = fdask.binary_cross_entropy(
        da.from_array(y, 3), da.from_array(x, 3), where=da.from_array(rows, 2), reduction="sum"
    )
    assert bits(square) == bits(want)


def test_dask_where_errors():
    p = da.from_array(np.full((10, 4), 0.25), chunks=(5, 4))
    y = da.zeros(10, dtype=int, chunks=5)
    with pytest.raises(TypeError, match="where must be a boolean array"):
        fdask.entropy(p, where=da.ones(10, dtype=int, chunks=5), reduction="sum")
    with pytest.raises(TypeError, match="where must be a boolean array"):
        fdask.cross_entropy(y, p, where=np.ones(10))
    with pytest.raises(ValueError, match=r"where has shape \(9,\), which does not broadcast"):
        fdask.entropy(p, where=np.ones(9, bool), reduction="mean")
    unknown = da.from_array(np.ones(10, bool), chunks=5)
    unknown = unknown[unknown]  # NaN chunk sizes
    with pytest.raises(ValueError, match=r"where has unknown chunk sizes"):
        fdask.entropy(p, where=unknown)
    with pytest.raises(TypeError, match="'log_loss' takes no where= mask"):
        fdask.accumulate("log_loss", y, p, labels=[0, 1, 2, 3], where=np.ones(10, bool))
    with pytest.raises(TypeError, match="where"):
        fdask.log_loss(y, p, labels=[0, 1, 2, 3], where=np.ones(10, bool))
    # A mask chunked across an axis along which pos_weight varies: one accumulator per block
    # holds one pos_weight, so every block must span that axis (as for the inputs).
    t = da.from_array(np.ones((8, 6)), chunks=(4, 6))
    keep = da.from_array(np.ones((8, 6), bool), chunks=(4, 3))
    with pytest.raises(ValueError, match=r"where has its axis along which pos_weight varies"):
        fdask.binary_cross_entropy(t, t, where=keep, pos_weight=np.arange(1, 7), reduction="sum")
    # Chunked unlike the batch otherwise: the chunks are unified, the bits the same.
    got = fdask.entropy(p, where=da.from_array(np.arange(10) % 3 > 0, chunks=3), reduction="sum")
    want = fastce.entropy(np.full((10, 4), 0.25), where=np.arange(10) % 3 > 0, reduction="sum")
    assert bits(got) == bits(want)


def test_signatures_and_docs_name_where():
    import inspect

    for name in ("entropy", "cross_entropy", "perplexity", "kl_divergence", "js_divergence",
                 "binary_cross_entropy"):  # fmt: skip
        params = list(inspect.signature(getattr(fdask, name)).parameters)
        assert params[params.index("sample_weight") + 1] == "where", name
        doc = getattr(fdask, name).__doc__
        assert "sample_weight, where, groups : dask.array.Array" in doc, name
        per_sample = doc.split("sample_weight, where, groups : ")[1]
        lines = per_sample.splitlines()
        options = next(ln for ln in lines if ln.startswith("    ") and ln[4] != " ")
        assert "where" not in options and "sample_weight" not in options, (name, options)
    assert "where" not in inspect.signature(fdask.log_loss).parameters
    assert "where" in inspect.signature(fdask.accumulate).parameters
    assert "where" in inspect.signature(fastce.score_file).parameters


# ---------------------------------------------------------------------------------------------
# score_file's readers and the command line


@pytest.fixture
def labelled(tmp_path):
    rng = np.random.default_rng(8)
    n = 150
    labels = rng.integers(0, C, n)
    proba = _probs(rng, (n, C), np.float64)
    keep = rng.random(n) < 0.6
    labels[~keep] = 77  # out of range, masked out
    return tmp_path, labels, proba, keep


def _csv(path, labels, proba, columns):
    with open(path, "w") as fp:
        fp.write(",".join(["label", *(f"p{c}" for c in range(C)), *columns]) + "\n")
        for row in range(len(labels)):
            values = [str(labels[row]), *(repr(float(v)) for v in proba[row])]
            fp.write(",".join(values + [columns[c][row] for c in columns]) + "\n")


def test_csv_where_of_booleans_or_of_0_and_1(labelled):
    folder, labels, proba, keep = labelled
    two = np.where(keep, "1", "0")
    two[40] = "2"
    _csv(
        folder / "s.csv",
        labels,
        proba,
        {
            "keep": np.where(keep, "true", "false"),
            "keep01": np.where(keep, "1", "0"),
            "keep_mixed": np.where(keep, "True", "0"),
            "word": np.where(keep, "yes", "no"),
            "two": two,
            "real": np.where(keep, "1.0", "0.0"),
        },
    )
    want = fastce.cross_entropy(labels, proba, where=keep, reduction="mean")
    for column in ("keep", "keep01", "keep_mixed"):
        res = fastce.score_file(
            folder / "s.csv", "cross_entropy", target="label", pred="p*", where=column,
            chunk_bytes=4096,
        )  # fmt: skip
        assert bits(res.mean) == bits(want) and res.count == keep.sum(), column
    expected = r"expected booleans \(true/false\) or the integers 0 and 1"
    for column, where in [("word", ", row 0"), ("two", ", row 40"), ("real", "")]:
        with pytest.raises(ValueError, match=rf"s\.csv: column '{column}'{where}: .*{expected}"):
            fastce.score_file(
                folder / "s.csv", "cross_entropy", target="label", pred="p*", where=column
            )


def test_score_file_where_errors(labelled):
    folder, labels, proba, keep = labelled
    np.save(folder / "y.npy", labels)
    np.save(folder / "p.npy", proba)
    np.save(folder / "real.npy", keep.astype(np.float64))
    np.save(folder / "short.npy", keep[:-1])
    paths = {"target": str(folder / "y.npy"), "pred": str(folder / "p.npy")}
    with pytest.raises(ValueError, match=r"real\.npy: the where array: holds data of dtype float"):
        fastce.score_file(None, "cross_entropy", **paths, where=str(folder / "real.npy"))
    with pytest.raises(ValueError, match=r"short\.npy \(where\) has 149 rows but .*has 150"):
        fastce.score_file(None, "cross_entropy", **paths, where=str(folder / "short.npy"))
    with pytest.raises(ValueError, match=r"without a PATH, where must be a \.npy file"):
        fastce.score_file(None, "cross_entropy", **paths, where="keep")
    with pytest.raises(ValueError, match=r"where= does not apply to 'log_loss'"):
        fastce.score_file(
            None, ["cross_entropy", "log_loss"], **paths, where=str(folder / "short.npy"),
            labels=list(range(C)),
        )  # fmt: skip
    # Unmasked, the out-of-range labels are found.
    with pytest.raises(ValueError, match=r"y\.npy: the target array, row \d+: .*label 77"):
        fastce.score_file(None, "cross_entropy", **paths)
    np.savez(folder / "s.npz", y=labels, p=proba, keep=keep, counts=keep.astype(np.int8) * 3)
    res = fastce.score_file(
        folder / "s.npz", "perplexity", target="y", pred="p", where="keep", chunk_bytes=4096
    )
    assert bits(res.perplexity) == bits(fastce.perplexity(labels, proba, where=keep))
    first = int(np.argmax(keep))
    with pytest.raises(ValueError, match=rf"member 'counts', row {first}: holds 3 \(where\)"):
        fastce.score_file(folder / "s.npz", "cross_entropy", target="y", pred="p", where="counts")
    with pytest.raises(ValueError, match=r"member 'kep': no such member \(where\)"):
        fastce.score_file(folder / "s.npz", "cross_entropy", target="y", pred="p", where="kep")


def test_cli_where(labelled):
    folder, labels, proba, keep = labelled
    np.save(folder / "y.npy", labels)
    np.save(folder / "p.npy", proba)
    np.save(folder / "keep.npy", keep)

    # The fastce under test, whatever the working directory of the command.
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastce.__file__)))
    path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])

    def score(*args):
        return subprocess.run(
            [sys.executable, "-m", "fastce", "score", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": path},
        )

    run = score(
        "--target", "y.npy", "--pred", "p.npy", "--where", "keep.npy", "--measure",
        "cross_entropy,perplexity", "--json", "--memory", "4K", "--no-progress",
    )  # fmt: skip
    assert run.returncode == 0 and run.stderr == "", run.stderr
    parsed = json.loads(run.stdout)
    for name in ("cross_entropy", "perplexity"):
        res = fastce.Result(**parsed[name])
        assert res.count == int(keep.sum())
        assert bits(res.mean) == bits(
            fastce.cross_entropy(labels, proba, where=keep, reduction="mean")
        )
    run = score("--target", "y.npy", "--pred", "p.npy", "--measure", "cross_entropy")
    assert run.returncode == 1 and "label 77" in run.stderr
    run = score(
        "--target", "y.npy", "--pred", "p.npy", "--where", "keep.npy", "--measure", "log_loss",
        "--labels", "0,1,2,3,4",
    )  # fmt: skip
    assert run.returncode == 2 and "--where does not apply to 'log_loss'" in run.stderr
    assert "where=" not in run.stderr
    run = score("--help")
    assert run.returncode == 0 and "--where COLUMN" in run.stdout
