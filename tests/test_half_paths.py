"""float16 and bfloat16 through every way in: in memory, the Accumulator in random batches,
``score_file`` (float16: .npy and Parquet; NumPy cannot save bfloat16 with its type) and
``fastce.dask``: the same bits as each other, and as the same values in float32."""

from __future__ import annotations

import numpy as np
import pytest

import fastce

N, C = 3001, 7


def bits(x):
    return np.float64(x).tobytes()


def _half(name):
    if name == "bfloat16":
        return pytest.importorskip("ml_dtypes").bfloat16
    return np.float16


def _cases(dtype):
    rng = np.random.default_rng(17)
    x = (rng.normal(size=(N, C)) * 3).astype(dtype)
    t = (rng.normal(size=(N, C)) * 2).astype(dtype)
    y = rng.integers(0, C, N)
    m = rng.random(N) < 0.8
    yb = (rng.random((N, C)) < 0.3).astype(dtype)
    return [
        ("cross_entropy", (y, x), {"from_logits": True}),
        ("perplexity", (y, x), {"from_logits": True}),
        ("kl_divergence", (t, x), {"from_logits": True, "target_from_logits": True}),
        ("js_divergence", (t, x), {"from_logits": True, "target_from_logits": True}),
        ("entropy", (x,), {"from_logits": True, "temperature": 2.0}),
        ("binary_cross_entropy", (yb, x), {"from_logits": True}),
    ], m


def _in_memory(measure, arrays, options, where):
    if measure == "perplexity":
        return fastce.cross_entropy(*arrays, reduction="mean", where=where, **options)
    return getattr(fastce, measure)(*arrays, reduction="mean", where=where, **options)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_in_memory_accumulator_and_dask_agree_with_float32(name):
    da = pytest.importorskip("dask.array")
    import dask

    import fastce.dask as fdask

    dtype = _half(name)
    cases, m = _cases(dtype)
    rng = np.random.default_rng(3)
    for measure, arrays, options in cases:
        where = m if measure != "binary_cross_entropy" else m[:, None]
        want = _in_memory(measure, arrays, options, where)
        wide = tuple(a.astype(np.float32) if a.dtype == dtype else a for a in arrays)
        assert bits(want) == bits(_in_memory(measure, wide, options, where)), measure
        assert want.dtype == np.float32
        acc = fastce.Accumulator(measure, **options)
        cuts = np.sort(rng.choice(np.arange(1, N), 9, replace=False))
        for lo, hi in zip([0, *cuts], [*cuts, N], strict=True):
            acc.update(*(a[lo:hi] for a in arrays), where=where[lo:hi])
        assert bits(acc.result().mean) == bits(want), measure
        blocks = ((500, 1000, 1, 1500),)
        dask_arrays = [da.from_array(a, chunks=blocks + a.shape[1:]) for a in arrays]
        with dask.config.set(scheduler="threads"):
            got = getattr(fdask, measure if measure != "perplexity" else "cross_entropy")(
                *dask_arrays, reduction="mean", where=da.from_array(where), **options
            )
        assert bits(got) == bits(want), measure


def test_float16_files_give_the_in_memory_bits(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    cases, m = _cases(np.float16)
    for k, (measure, arrays, options) in enumerate(cases):
        if measure == "binary_cross_entropy":
            continue  # an element-wise mask: covered in memory and on Dask above
        want = _in_memory(measure, arrays, options, m)
        names = ["pred"] if len(arrays) == 1 else ["target", "pred"]
        paths = {}
        for name, a in zip(names, arrays, strict=True):
            paths[name] = str(tmp_path / f"{name}{k}.npy")
            np.save(paths[name], a)
        np.save(tmp_path / f"m{k}.npy", m)
        got = fastce.score_file(
            None, measure, where=str(tmp_path / f"m{k}.npy"), chunk_bytes=4096, **paths,
            **options,
        )  # fmt: skip
        assert bits(got.mean) == bits(want), measure
        columns = {
            name: (pa.array(list(a), type=pa.list_(pa.float16())) if a.ndim == 2 else a)
            for name, a in zip(names, arrays, strict=True)
        }
        pq.write_table(pa.table({**columns, "m": m}), tmp_path / f"t{k}.parquet")
        got = fastce.score_file(
            tmp_path / f"t{k}.parquet", measure, where="m", chunk_bytes=4096,
            **{name: name for name in names}, **options,
        )  # fmt: skip
        assert bits(got.mean) == bits(want), measure


def test_a_bfloat16_npy_file_says_what_happened(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.zeros((4, 3), ml_dtypes.bfloat16)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=r"bfloat16 array saved with np\.save loses its type"):
        fastce.score_file(None, "entropy", pred=str(tmp_path / "x.npy"), from_logits=True)
