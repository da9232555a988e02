"""score_file and ``fastce score``: real files, every format, bit-identical to in memory.

Every file is written to ``tmp_path`` and scored with a small chunk budget, so a file of a few
thousand rows is read in tens of chunks; the result must be the in-memory ``"mean"``/``"sum"``
of the same arrays bit for bit. Bad files must fail with a ValueError naming the file, the
column and the row. A subprocess test bounds the peak anonymous memory (``RssAnon``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest

import fastce
from fastce import _io
from fastce.scoring import parse_size

from .registry import logits, probabilities

N, C = 3001, 5
BUDGET = 2048  # bytes: about 20-40 rows per chunk here, so ~100 chunks per file


def bits(x):
    return np.float64(x).tobytes()


def assert_same(result, function, *arrays, **options):
    """``result`` is the in-memory mean and sum of ``function`` bit for bit (sign included)."""
    mean = function(*arrays, reduction="mean", **options)
    total = function(*arrays, reduction="sum", **options)
    assert bits(result.mean) == bits(mean), (result.mean, float(mean))
    assert bits(result.sum) == bits(total), (result.sum, float(total))
    if function is fastce.kl_divergence:
        assert bits(result.batchmean) == bits(function(*arrays, reduction="batchmean", **options))


def count_chunks(path, **kwargs):
    kwargs.setdefault("chunk_bytes", BUDGET)
    return sum(1 for _ in _io.iter_chunks(_io.open_source(path, **kwargs)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    return {
        "labels": rng.integers(0, C, N),
        "logits": logits(rng, (N, C), np.float32),
        "teacher": logits(rng, (N, C), np.float32),
        "proba": probabilities(rng, (N, C), np.float64),
        "soft": probabilities(rng, (N, C), np.float64),
        "weight": rng.random(N) * 3,
        "binary_target": (rng.random(N) < 0.4).astype(np.float64),
        "binary_proba": rng.random(N),
        "multilabel_target": rng.random((N, 3)),
        "multilabel_logits": rng.normal(size=(N, 3)).astype(np.float32),
    }


@pytest.fixture
def pa():
    return pytest.importorskip("pyarrow")


# (measure, target key, pred key, options): each scored from files and compared with memory.
CASES = [
    ("cross_entropy", "labels", "logits", {"from_logits": True}),
    ("cross_entropy", "labels", "proba", {"base": 2}),
    ("cross_entropy", "soft", "proba", {}),
    ("entropy", None, "proba", {}),
    ("entropy", None, "logits", {"from_logits": True, "base": 2}),
    ("kl_divergence", "soft", "proba", {}),
    ("js_divergence", "soft", "proba", {"base": 2}),
    ("kl_divergence", "teacher", "logits", {"from_logits": True, "target_from_logits": True}),
    ("js_divergence", "teacher", "logits", {"from_logits": True, "target_from_logits": True}),
    ("cross_entropy", "teacher", "proba", {"target_from_logits": True}),
    ("binary_cross_entropy", "binary_target", "binary_proba", {}),
    ("binary_cross_entropy", "multilabel_target", "multilabel_logits", {"from_logits": True}),
]


def in_memory(measure, data, target, pred, **options):
    function = getattr(fastce, measure)
    arrays = (data[pred],) if target is None else (data[target], data[pred])
    return function, arrays, options


# ---------------------------------------------------------------------------------------------
# .npy pairs


@pytest.mark.parametrize(("measure", "target", "pred", "options"), CASES)
def test_npy_pair_is_bit_identical(tmp_path, data, measure, target, pred, options):
    files = {}
    for key in (target, pred):
        if key is not None:
            files[key] = tmp_path / f"{key}.npy"
            np.save(files[key], data[key])
    result = fastce.score_file(
        None,
        measure,
        target=None if target is None else files[target],
        pred=files[pred],
        chunk_bytes=BUDGET,
        **options,
    )
    function, arrays, options = in_memory(measure, data, target, pred, **options)
    assert_same(result, function, *arrays, **options)
    assert result.count == data[pred].size // (1 if measure == "binary_cross_entropy" else C)


def test_npy_pair_is_read_in_many_chunks_of_whole_rows(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"])
    np.save(tmp_path / "p.npy", data["logits"])
    chunks = list(
        _io.iter_chunks(
            _io.open_source(
                None, target=tmp_path / "y.npy", pred=tmp_path / "p.npy", chunk_bytes=BUDGET
            )
        )
    )
    assert len(chunks) > 50
    assert [c.offset for c in chunks] == sorted(c.offset for c in chunks)
    assert sum(len(c.pred) for c in chunks) == N
    for c in chunks:
        assert c.pred.shape[1:] == (C,)  # rows never split
        assert not c.pred.flags.owndata  # views of the memory map, no copy
        np.testing.assert_array_equal(c.pred, data["logits"][c.offset : c.offset + len(c.pred)])


def test_npy_weights_fortran_order_and_several_measures(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"].astype(np.int32))
    np.save(tmp_path / "p.npy", np.asfortranarray(data["proba"]))
    np.save(tmp_path / "w.npy", data["weight"])
    results = fastce.score_file(
        None,
        ["cross_entropy", "entropy"],
        target=tmp_path / "y.npy",
        pred=tmp_path / "p.npy",
        weight=tmp_path / "w.npy",
        chunk_bytes=BUDGET,
    )
    assert set(results) == {"cross_entropy", "entropy"}
    w = data["weight"]
    assert_same(
        results["cross_entropy"],
        fastce.cross_entropy,
        data["labels"],
        data["proba"],
        sample_weight=w,
    )
    assert_same(results["entropy"], fastce.entropy, data["proba"], sample_weight=w)
    assert bits(results["entropy"].weight) == bits(
        fastce.Accumulator("entropy").update(data["proba"], sample_weight=w).result().weight
    )


def test_chunking_does_not_change_a_bit(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"])
    np.save(tmp_path / "p.npy", data["logits"])
    results = {
        fastce.score_file(
            None,
            "cross_entropy",
            target=tmp_path / "y.npy",
            pred=tmp_path / "p.npy",
            from_logits=True,
            chunk_bytes=budget,
        )
        for budget in (1, 333, 4096, "1M", None)
    }
    assert len(results) == 1


def test_log_loss_and_string_labels(tmp_path, data):
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    np.save(tmp_path / "y.npy", names[data["labels"]])  # fixed-width strings, not pickled
    np.save(tmp_path / "p.npy", data["proba"])
    labels = ["eel", "dog", "cat", "bee", "ant"]  # any order: columns follow the sorted labels
    with pytest.warns(UserWarning, match="ordered lexicographically"):  # as log_loss's
        results = fastce.score_file(
            None,
            ["log_loss", "cross_entropy"],
            target=tmp_path / "y.npy",
            pred=tmp_path / "p.npy",
            labels=labels,
            chunk_bytes=BUDGET,
        )
    with pytest.warns(UserWarning, match="ordered lexicographically"):
        mean = fastce.log_loss(names[data["labels"]], data["proba"], labels=labels)
    total = fastce.log_loss(
        names[data["labels"]], data["proba"], labels=sorted(labels), normalize=False
    )
    assert bits(results["log_loss"].mean) == bits(mean)
    assert bits(results["log_loss"].sum) == bits(total)
    assert_same(results["cross_entropy"], fastce.cross_entropy, data["labels"], data["proba"])


def test_log_loss_needs_labels_and_strings_need_labels(tmp_path, data):
    np.save(tmp_path / "y.npy", np.array(["a", "b"] * 5))
    np.save(tmp_path / "p.npy", np.full((10, 2), 0.5))
    with pytest.raises(ValueError, match="log_loss needs labels="):
        fastce.score_file(None, "log_loss", target=tmp_path / "y.npy", pred=tmp_path / "p.npy")
    with pytest.raises(ValueError, match=r"y\.npy: the target array, row 0: .*labels="):
        fastce.score_file(
            None, "cross_entropy", target=tmp_path / "y.npy", pred=tmp_path / "p.npy"
        )
    with pytest.raises(ValueError, match=r"y\.npy: the target array, row 1: label 'b' is not"):
        fastce.score_file(
            None,
            "cross_entropy",
            target=tmp_path / "y.npy",
            pred=tmp_path / "p.npy",
            labels=["a", "c"],
        )


def test_empty_files_give_an_empty_result(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(0, np.int64))
    np.save(tmp_path / "p.npy", np.zeros((0, 3)))
    res = fastce.score_file(
        None, "cross_entropy", target=tmp_path / "y.npy", pred=tmp_path / "p.npy"
    )
    assert res.count == 0 and res.sum == 0.0 and np.isnan(res.mean)


# ---------------------------------------------------------------------------------------------
# .npz


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize(("measure", "target", "pred", "options"), CASES[::2])
def test_npz_members_are_streamed(tmp_path, data, compressed, measure, target, pred, options):
    path = tmp_path / "scores.npz"
    arrays = {pred: data[pred], **({} if target is None else {target: data[target]})}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    with zipfile.ZipFile(path) as z:
        kinds = {info.compress_type for info in z.infolist()}
    assert kinds == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    result = fastce.score_file(
        path, measure, target=target, pred=pred, chunk_bytes=BUDGET, **options
    )
    function, arrays, options = in_memory(measure, data, target, pred, **options)
    assert_same(result, function, *arrays, **options)
    assert count_chunks(path, target=target, pred=pred) > 20


def test_npz_member_names_with_suffix_and_weights(tmp_path, data):
    path = tmp_path / "s.npz"
    np.savez_compressed(path, y=data["labels"], p=data["logits"], w=data["weight"])
    res = fastce.score_file(
        path,
        "cross_entropy",
        target="y.npy",
        pred="p",
        weight="w",
        from_logits=True,
        chunk_bytes=BUDGET,
    )
    assert_same(
        res,
        fastce.cross_entropy,
        data["labels"],
        data["logits"],
        from_logits=True,
        sample_weight=data["weight"],
    )


# ---------------------------------------------------------------------------------------------
# Parquet


def parquet_table(pa, data, list_kind="fixed"):
    def rows(values):
        flat = pa.array(values.reshape(-1))
        if list_kind == "fixed":
            return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        offsets = np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), flat)

    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    columns = {
        "label": pa.array(data["labels"]),
        "name": pa.array(names[data["labels"]]),
        "logits": rows(data["logits"]),
        "proba": rows(data["proba"]),
        "soft": rows(data["soft"]),
        "w": pa.array(data["weight"]),
        "y": pa.array(data["binary_target"]),
        "p": pa.array(data["binary_proba"]),
    }
    for i in range(C):
        columns[f"q_{i}"] = pa.array(data["proba"][:, i])
    return pa.table(columns)


@pytest.mark.parametrize("list_kind", ["fixed", "list"])
def test_parquet_file_list_columns(tmp_path, pa, data, list_kind):
    import pyarrow.parquet as pq

    path = tmp_path / "scores.parquet"
    pq.write_table(parquet_table(pa, data, list_kind), path, row_group_size=700)
    cases = [
        ("cross_entropy", "label", "logits", "labels", "logits", {"from_logits": True}),
        ("cross_entropy", "soft", "proba", "soft", "proba", {}),
        ("kl_divergence", "soft", "proba", "soft", "proba", {"base": 2}),
        ("js_divergence", "soft", "proba", "soft", "proba", {}),
        ("entropy", None, "proba", None, "proba", {}),
        ("binary_cross_entropy", "y", "p", "binary_target", "binary_proba", {}),
    ]
    for measure, target, pred, target_key, pred_key, options in cases:
        result = fastce.score_file(
            path, measure, target=target, pred=pred, chunk_bytes=BUDGET, **options
        )
        function, arrays, kwargs = in_memory(measure, data, target_key, pred_key, **options)
        assert_same(result, function, *arrays, **kwargs)
    assert count_chunks(path, target="label", pred="logits") > 20


@pytest.mark.parametrize(
    "pred", ["q_*", "q_0,q_1,q_2,q_3,q_4", ("q_0", "q_1", "q_2", "q_3", "q_4")]
)
def test_parquet_numeric_columns_weights_and_string_labels(tmp_path, pa, data, pred):
    import pyarrow.parquet as pq

    path = tmp_path / "scores.parquet"
    pq.write_table(parquet_table(pa, data), path, row_group_size=1000)
    labels = ["ant", "bee", "cat", "dog", "eel"]
    results = fastce.score_file(
        path,
        ["cross_entropy", "log_loss"],
        target="name",
        pred=pred,
        weight="w",
        labels=labels,
        chunk_bytes=BUDGET,
    )
    w = data["weight"]
    assert_same(
        results["cross_entropy"],
        fastce.cross_entropy,
        data["labels"],
        data["proba"],
        sample_weight=w,
    )
    names = np.array(labels)[data["labels"]]
    mean = fastce.log_loss(names, data["proba"], labels=labels, sample_weight=w)
    assert bits(results["log_loss"].mean) == bits(mean)


def test_parquet_directory_dataset(tmp_path, pa, data):
    import pyarrow.parquet as pq

    table = parquet_table(pa, data)
    folder = tmp_path / "dataset"
    folder.mkdir()
    for k, (lo, hi) in enumerate([(0, 1000), (1000, 1001), (1001, 2500), (2500, N)]):
        pq.write_table(table.slice(lo, hi - lo), folder / f"part-{k}.parquet", row_group_size=300)
    (folder / "_SUCCESS").write_text("")  # metadata files are skipped as pyarrow does
    result = fastce.score_file(
        folder,
        "cross_entropy",
        target="label",
        pred="logits",
        from_logits=True,
        chunk_bytes=BUDGET,
    )
    assert_same(result, fastce.cross_entropy, data["labels"], data["logits"], from_logits=True)


def test_parquet_without_pyarrow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=re.escape("pip install pyarrow")):
        fastce.score_file(path, "entropy", pred="p")


# ---------------------------------------------------------------------------------------------
# CSV


def write_csv(path, columns):
    names = list(columns)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in zip(*(columns[n] for n in names), strict=True):
            items = (v.item() if hasattr(v, "item") else v for v in row)
            f.write(",".join(v if isinstance(v, str) else repr(v) for v in items))
            f.write("\n")


def test_csv_numeric_columns(tmp_path, pa, data):
    path = tmp_path / "scores.csv"
    columns = {
        "label": data["labels"],
        "name": np.array(["a", "b", "c", "d", "e"])[data["labels"]],
    }
    for i in range(C):
        columns[f"p{i}"] = data["proba"][:, i]  # repr(float) round-trips: the same float64s
    columns["w"] = data["weight"]
    write_csv(path, columns)
    results = fastce.score_file(
        path,
        ["cross_entropy", "entropy"],
        target="label",
        pred="p*",
        weight="w",
        chunk_bytes=BUDGET,
    )
    w = data["weight"]
    assert_same(
        results["cross_entropy"],
        fastce.cross_entropy,
        data["labels"],
        data["proba"],
        sample_weight=w,
    )
    assert_same(results["entropy"], fastce.entropy, data["proba"], sample_weight=w)
    by_name = fastce.score_file(
        path,
        "log_loss",
        target="name",
        pred="p0,p1,p2,p3,p4",
        labels=list("abcde"),
        chunk_bytes=BUDGET,
    )
    assert bits(by_name.sum) == bits(
        fastce.log_loss(data["labels"], data["proba"], labels=range(C), normalize=False)
    )


def test_csv_gzip_and_nan_is_a_number(tmp_path, pa):
    import gzip

    path = tmp_path / "scores.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("y,p\n1,0.25\n0,nan\n1,0.75\n")
    res = fastce.score_file(path, "binary_cross_entropy", target="y", pred="p")
    assert res.count == 3 and np.isnan(res.mean)  # NaN propagates, as in memory


# ---------------------------------------------------------------------------------------------
# Bad files: a ValueError naming the file, the column and the row


def test_missing_columns_and_members(tmp_path, pa, data):
    import pyarrow.parquet as pq

    pq.write_table(parquet_table(pa, data), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: column 'labelz': no such column"):
        fastce.score_file(tmp_path / "t.parquet", "cross_entropy", target="labelz", pred="proba")
    with pytest.raises(ValueError, match=r"column 'z_\*': no column matches"):
        fastce.score_file(tmp_path / "t.parquet", "entropy", pred="z_*")
    write_csv(tmp_path / "t.csv", {"a": np.arange(3), "b": np.ones(3)})
    with pytest.raises(ValueError, match=r"t\.csv: column 'c': no such column .*: a, b"):
        fastce.score_file(tmp_path / "t.csv", "entropy", pred="b,c")
    np.savez(tmp_path / "t.npz", y=np.arange(3))
    with pytest.raises(ValueError, match=r"t\.npz: member 'p': no such member .*holds: y"):
        fastce.score_file(tmp_path / "t.npz", "cross_entropy", target="y", pred="p")


def test_ragged_and_null_list_columns(tmp_path, pa):
    import pyarrow.parquet as pq

    n = 5000
    lengths = np.full(n, 3)
    lengths[4321] = 2
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.full(offsets[-1], 1 / 3)
    ragged = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    pq.write_table(pa.table({"p": ragged}), tmp_path / "ragged.parquet", row_group_size=1000)
    with pytest.raises(
        ValueError, match=r"ragged\.parquet: column 'p', row 4321: ragged list column .* 2 values"
    ):
        fastce.score_file(tmp_path / "ragged.parquet", "entropy", pred="p", chunk_bytes=BUDGET)

    rows = [[0.5, 0.5]] * n
    rows[3210] = None
    pq.write_table(pa.table({"p": pa.array(rows)}), tmp_path / "nulls.parquet")
    with pytest.raises(ValueError, match=r"nulls\.parquet: column 'p', row 3210: a null list"):
        fastce.score_file(tmp_path / "nulls.parquet", "entropy", pred="p", chunk_bytes=BUDGET)

    rows = [[0.5, 0.5]] * n
    rows[2345] = [0.5, None]
    pq.write_table(pa.table({"p": pa.array(rows)}), tmp_path / "inner.parquet")
    with pytest.raises(ValueError, match=r"inner\.parquet: column 'p', row 2345: a null value"):
        fastce.score_file(tmp_path / "inner.parquet", "entropy", pred="p", chunk_bytes=BUDGET)

    labels = pa.array([1] * 4000 + [None] + [0] * 10)
    pq.write_table(
        pa.table({"y": labels, "p": pa.array([[0.5, 0.5]] * 4011)}), tmp_path / "y.parquet"
    )
    with pytest.raises(ValueError, match=r"y\.parquet: column 'y', row 4000: a null value"):
        fastce.score_file(
            tmp_path / "y.parquet", "cross_entropy", target="y", pred="p", chunk_bytes=BUDGET
        )


def test_truncated_npy(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"])
    np.save(tmp_path / "p.npy", data["proba"])
    size = os.path.getsize(tmp_path / "p.npy")
    with open(tmp_path / "p.npy", "r+b") as f:
        f.truncate(size - 1000)
    header = size - N * C * 8
    complete = (size - 1000 - header) // (C * 8)
    with pytest.raises(
        ValueError, match=rf"p\.npy: the pred array, row {complete}: truncated \.npy file"
    ):
        fastce.score_file(
            None, "cross_entropy", target=tmp_path / "y.npy", pred=tmp_path / "p.npy"
        )
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"junk\.npy: the pred array: not a readable \.npy"):
        fastce.score_file(None, "entropy", pred=tmp_path / "junk.npy")


def test_corrupt_parquet_footer(tmp_path, pa, data):
    import pyarrow.parquet as pq

    path = tmp_path / "broken.parquet"
    pq.write_table(parquet_table(pa, data), path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(ValueError, match=r"broken\.parquet: not a readable Parquet file"):
        fastce.score_file(path, "cross_entropy", target="label", pred="proba")


def test_pickled_object_arrays_are_never_unpickled(tmp_path):
    objects = np.array([[0.5, 0.5], None], dtype=object)
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy: the pred array: holds a pickled object"):
        fastce.score_file(None, "entropy", pred=tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", p=objects)
    with pytest.raises(ValueError, match=r"obj\.npz: member 'p': holds a pickled object"):
        fastce.score_file(tmp_path / "obj.npz", "entropy", pred="p")


def test_labels_out_of_range_deep_inside(tmp_path, pa, data):
    import pyarrow.parquet as pq

    labels = data["labels"].copy()
    labels[2777] = 99
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "p.npy", data["proba"])
    pattern = r"y\.npy: the target array, row 2777: cross_entropy: target holds label 99; expected"
    with pytest.raises(ValueError, match=pattern):
        fastce.score_file(
            None,
            "cross_entropy",
            target=tmp_path / "y.npy",
            pred=tmp_path / "p.npy",
            chunk_bytes=BUDGET,
        )

    folder = tmp_path / "ds"
    folder.mkdir()
    table = parquet_table(pa, data).set_column(0, "label", pa.array(labels))
    pq.write_table(table.slice(0, 2000), folder / "a.parquet", row_group_size=500)
    pq.write_table(table.slice(2000), folder / "b.parquet", row_group_size=500)
    pattern = (
        r"b\.parquet: column 'label' \(row 2777 of the dataset .*ds\), row 777: "
        r"cross_entropy: target holds label 99"
    )
    with pytest.raises(ValueError, match=pattern):
        fastce.score_file(
            folder, "cross_entropy", target="label", pred="proba", chunk_bytes=BUDGET
        )

    write_csv(
        tmp_path / "t.csv", {"y": labels, **{f"p{i}": data["proba"][:, i] for i in range(C)}}
    )
    with pytest.raises(ValueError, match=r"t\.csv: column 'y', row 2777: cross_entropy: target"):
        fastce.score_file(
            tmp_path / "t.csv", "cross_entropy", target="y", pred="p*", chunk_bytes=BUDGET
        )


def test_bad_probability_deep_inside_names_the_row(tmp_path, data):
    proba = data["proba"].copy()
    proba[1999, 3] = 1.5
    np.savez_compressed(tmp_path / "s.npz", p=proba)
    pattern = (
        r"s\.npz: member 'p', row 1999: entropy: p must hold probabilities in \[0, 1\]; got 1\.5 "
        r"at index 3 within the row"
    )
    with pytest.raises(ValueError, match=pattern):
        fastce.score_file(tmp_path / "s.npz", "entropy", pred="p", chunk_bytes=BUDGET)
    np.save(tmp_path / "y.npy", data["labels"])
    np.save(tmp_path / "p.npy", proba)
    # log_loss's messages (scikit-learn's) give no position: the row is found by a scan.
    with pytest.raises(ValueError, match=r"p\.npy: the pred array, row 1999: log_loss: y_prob"):
        fastce.score_file(
            None,
            "log_loss",
            target=tmp_path / "y.npy",
            pred=tmp_path / "p.npy",
            labels=range(C),
            chunk_bytes=BUDGET,
        )


def test_corrupt_and_truncated_npz_members(tmp_path, data):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, p=data["proba"])
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # clobber compressed data in the middle
    path.write_bytes(bytes(raw))
    # Garbage that inflates: the values it gives are checked as any (a negative probability
    # here), and the CRC-32 would catch the rest at the end of the member.
    with pytest.raises(ValueError, match=r"c\.npz: member 'p', row \d+: "):
        fastce.score_file(path, "entropy", pred="p", chunk_bytes=BUDGET)

    # A flipped low mantissa bit in a stored member: valid values, caught by the CRC-32 only,
    # after the last chunk: still an error, never a result.
    stored = tmp_path / "crc.npz"
    np.savez(stored, p=data["proba"])
    raw = bytearray(stored.read_bytes())
    with zipfile.ZipFile(stored) as z:
        info = z.getinfo("p.npy")
    name_and_extra = int.from_bytes(
        raw[info.header_offset + 26 : info.header_offset + 28], "little"
    )
    name_and_extra += int.from_bytes(
        raw[info.header_offset + 28 : info.header_offset + 30], "little"
    )
    data_start = info.header_offset + 30 + name_and_extra
    flip = data_start + info.file_size - 8 * 7  # a value in the last row
    raw[flip] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"crc\.npz: member 'p': corrupt member data: Bad CRC"):
        fastce.score_file(stored, "entropy", pred="p", chunk_bytes=BUDGET)

    # A member whose header promises more rows than its data holds.
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w", zipfile.ZIP_DEFLATED) as z, z.open("p.npy", "w") as f:
        header = {"descr": "<f8", "fortran_order": False, "shape": (1000, 2)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.full((600, 2), 0.5).tobytes())
    with pytest.raises(
        ValueError, match=r"short\.npz: member 'p', row 600: truncated or corrupt member"
    ):
        fastce.score_file(short, "entropy", pred="p", chunk_bytes=BUDGET)

    fortran = tmp_path / "f.npz"
    np.savez(fortran, p=np.asfortranarray(data["proba"]))
    with pytest.raises(ValueError, match=r"f\.npz: member 'p': stored in Fortran order"):
        fastce.score_file(fortran, "entropy", pred="p")

    (tmp_path / "nozip.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match=r"nozip\.npz: not a readable \.npz"):
        fastce.score_file(tmp_path / "nozip.npz", "entropy", pred="p")


def test_argument_errors(tmp_path, data):
    np.save(tmp_path / "p.npy", data["proba"])
    np.save(tmp_path / "y.npy", data["labels"][:-1])
    p = tmp_path / "p.npy"
    with pytest.raises(ValueError, match="target is required for cross_entropy"):
        fastce.score_file(None, "cross_entropy", pred=p)
    with pytest.raises(ValueError, match=r"has 3000 rows but .*p\.npy \(pred\) has 3001"):
        fastce.score_file(None, "cross_entropy", target=tmp_path / "y.npy", pred=p)
    with pytest.raises(ValueError, match="option base=2 does not apply to 'perplexity'"):
        fastce.score_file(None, ["cross_entropy", "perplexity"], pred=p, target=p, base=2)
    with pytest.raises(ValueError, match=r"option base=2 does not apply to 'log_loss'"):
        fastce.score_file(None, ["cross_entropy", "log_loss"], pred=p, labels=[0, 1], base=2)
    with pytest.raises(TypeError, match="name the weight column"):
        fastce.score_file(None, "entropy", pred=p, sample_weight=np.ones(N))
    with pytest.raises(ValueError, match=r"a \.npy file holds one array"):
        fastce.score_file(p, "entropy", pred="x")
    with pytest.raises(ValueError, match="cannot read the memory size"):
        fastce.score_file(None, "entropy", pred=p, chunk_bytes="lots")
    with pytest.raises(ValueError, match=r"nothere\.npy \(pred\): cannot open"):
        fastce.score_file(None, "entropy", pred=tmp_path / "nothere.npy")


def test_parse_size():
    assert parse_size("256M") == 256 << 20
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("64KiB") == 64 << 10
    assert parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("0")


# ---------------------------------------------------------------------------------------------
# The command line


def fastce_score(*args, check=True):
    out = subprocess.run(
        [sys.executable, "-m", "fastce", "score", *map(str, args)],
        capture_output=True,
        text=True,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_cli_json_round_trips_the_bits(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"])
    np.save(tmp_path / "p.npy", data["logits"])
    out = fastce_score(
        "--target",
        tmp_path / "y.npy",
        "--pred",
        tmp_path / "p.npy",
        "--measure",
        "cross_entropy",
        "--measure",
        "entropy",
        "--from-logits",
        "--base",
        "2",
        "--json",
        "--memory",
        "4K",
        "--no-progress",
    )
    assert out.stderr == ""
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    parsed = json.loads(lines[0])
    assert list(parsed) == ["cross_entropy", "entropy"]
    assert set(parsed["entropy"]) == {"mean", "sum", "count", "weight"}
    for name in parsed:
        res = fastce.Result(**parsed[name])
        function, arrays, options = in_memory(
            name,
            data,
            None if name == "entropy" else "labels",
            "logits",
            from_logits=True,
            base=2,
        )
        assert_same(res, function, *arrays, **options)
        assert parsed[name]["count"] == N


def test_cli_table_and_npz_form(tmp_path, data):
    np.savez(tmp_path / "s.npz", y=data["labels"], p=data["proba"])
    out = fastce_score(
        tmp_path / "s.npz",
        "--target",
        "y",
        "--pred",
        "p",
        "--measure",
        "cross_entropy",
        "--base",
        "2",
    )
    assert "rows/s" in out.stdout and "3,001 rows" in out.stdout
    assert "cross_entropy" in out.stdout and "bits" in out.stdout
    mean = fastce.cross_entropy(data["labels"], data["proba"], base=2, reduction="mean")
    assert repr(float(mean)) in out.stdout


def test_cli_errors_exit_non_zero_with_one_line(tmp_path, data):
    labels = data["labels"].copy()
    labels[1234] = -3
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "p.npy", data["proba"])
    out = fastce_score(
        "--target",
        tmp_path / "y.npy",
        "--pred",
        tmp_path / "p.npy",
        "--measure",
        "cross_entropy",
        "--json",
        check=False,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert re.search(r"y\.npy: the target array, row 1234: .*label -3", out.stderr)
    missing = fastce_score(
        "--pred", tmp_path / "p.npy", "--measure", "entropy", "--memory", "nonsense", check=False
    )
    assert missing.returncode == 1 and "memory size" in missing.stderr
    usage = fastce_score("--measure", "entropy", check=False)  # no --pred
    assert usage.returncode == 2 and "--pred" in usage.stderr
    labels[1234] = -100  # PyTorch's padding label: the error says which flag leaves it out
    np.save(tmp_path / "y.npy", labels)
    padded = fastce_score(
        "--target", tmp_path / "y.npy", "--pred", tmp_path / "p.npy", "--measure",
        "cross_entropy", "--no-progress", check=False,
    )  # fmt: skip
    assert padded.returncode == 1 and len(padded.stderr.strip().splitlines()) == 1
    assert "row 1234" in padded.stderr and "pass --ignore-index -100" in padded.stderr


def test_cli_labels_for_log_loss(tmp_path, data):
    np.save(tmp_path / "y.npy", data["labels"] + 10)
    np.save(tmp_path / "p.npy", data["proba"])
    out = fastce_score(
        "--target",
        tmp_path / "y.npy",
        "--pred",
        tmp_path / "p.npy",
        "--measure",
        "log_loss",
        "--labels",
        "10,11,12,13,14",
        "--json",
    )
    parsed = json.loads(out.stdout)["log_loss"]
    assert bits(parsed["mean"]) == bits(
        fastce.log_loss(data["labels"] + 10, data["proba"], labels=range(10, 15))
    )


# ---------------------------------------------------------------------------------------------
# Memory: peak anonymous memory stays within the budget plus a fixed overhead

CHILD = textwrap.dedent(
    """
    import json, sys
    import fastce
    spec = json.loads(sys.argv[1])
    for warm in spec["warm"]:  # imports, kernels (compiled or from the cache)
        fastce.score_file(**warm)
    print("ready", flush=True)
    sys.stdin.readline()
    res = fastce.score_file(**spec["run"])
    print(json.dumps(res.as_dict()), flush=True)
    """
)

# What the process may allocate beyond the chunk budget while it scores: the accumulators'
# state and the kernels' scratch (under 1 MiB), NumPy/Numba dispatch caches and the C
# allocator's slack. Measured here: 0.1-3 MiB over the budget.
OVERHEAD_MIB = 16
# pyarrow's readers add their allocator's cache and the CSV reader's blocks in flight.
# Measured here: Parquet either 0.3 or 40 MiB (bimodal, the same for files of 1, 2.5 and 5
# million rows: it does not grow with the file), CSV 4-7 MiB.
ARROW_OVERHEAD_MIB = 48


def rss_anon_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def peak_anon_delta_mib(warm, run):
    """Run score_file(**run) in a child after score_file(**warm) with a big and a tiny
    budget; the parent samples the
    child's RssAnon every ~0.5 ms from "go" until the child has printed its result (so the
    interpreter's own shutdown is not measured). Returns (peak - baseline in MiB, result)."""
    spec = json.dumps({"warm": [warm, {**warm, "chunk_bytes": 4096}], "run": run})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, spec],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        assert child.stdout.readline().strip() == "ready"
        baseline = min(rss_anon_kib(child.pid) for _ in range(5))
        peak = baseline
        reader = threading.Thread(target=lambda: lines.append(child.stdout.readline()))
        reader.start()
        child.stdin.write("go\n")
        child.stdin.flush()
        while reader.is_alive():
            sample = rss_anon_kib(child.pid)
            if sample is not None:
                peak = max(peak, sample)
            time.sleep(0.0005)
        child.stdin.close()
        child.wait(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
    return (peak - baseline) / 1024, json.loads(lines[0])


def make_big_npy(folder, rows, classes, block=1 << 20):
    """Labels and float32 logits written block by block (never whole in memory)."""
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.int64, (rows,))
    p = np.lib.format.open_memmap(folder / "p.npy", "w+", np.float32, (rows, classes))
    rng = np.random.default_rng(0)
    for lo in range(0, rows, block):
        hi = min(rows, lo + block)
        y[lo:hi] = rng.integers(0, classes, hi - lo)
        p[lo:hi] = rng.normal(size=(hi - lo, classes)).astype(np.float32)
    y.flush()
    p.flush()
    del y, p
    return folder / "y.npy", folder / "p.npy"


def warm_up_files(folder):
    """A small file pair of the same dtypes, big enough for the parallel kernels; scored with
    a big and a tiny budget (the serial kernels of small chunks: a file's last chunk can be
    small), it compiles (or loads) every kernel the big run uses before the baseline."""
    warm = folder / "warm"
    warm.mkdir()
    y, p = make_big_npy(warm, 20_000, 10)
    np.savez(warm / "warm.npz", y=np.load(y), p=np.load(p))
    return {"target": str(y), "pred": str(p)}, str(warm / "warm.npz")


def scoring_spec(path, target, pred, budget):
    return {
        "path": path,
        "measure": "cross_entropy",
        "target": str(target),
        "pred": str(pred),
        "from_logits": True,
        "chunk_bytes": budget,
    }


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_peak_anonymous_memory_is_bounded_npy_and_npz(tmp_path):
    budget = 8 << 20
    rows, classes = 2_000_000, 10  # 80 MB of logits + 16 MB of labels: 12x the budget
    y, p = make_big_npy(tmp_path, rows, classes)
    assert os.path.getsize(p) + os.path.getsize(y) > 8 * budget
    warm_npy, warm_npz = warm_up_files(tmp_path)
    warm = scoring_spec(None, warm_npy["target"], warm_npy["pred"], budget)
    delta, result = peak_anon_delta_mib(warm, scoring_spec(None, y, p, budget))
    print(f"npy: peak RssAnon - baseline = {delta:.1f} MiB (budget {budget >> 20} MiB)")
    assert result["count"] == rows
    assert delta <= (budget >> 20) + OVERHEAD_MIB

    # A stored .npz of the same arrays: members are read into reusable chunk buffers.
    np.savez(tmp_path / "big.npz", y=np.load(y, mmap_mode="r"), p=np.load(p, mmap_mode="r"))
    os.remove(p)
    delta_npz, result_npz = peak_anon_delta_mib(
        scoring_spec(warm_npz, "y", "p", budget),
        scoring_spec(str(tmp_path / "big.npz"), "y", "p", budget),
    )
    print(f"npz: peak RssAnon - baseline = {delta_npz:.1f} MiB (budget {budget >> 20} MiB)")
    assert result_npz == result
    assert delta_npz <= (budget >> 20) + OVERHEAD_MIB


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_peak_anonymous_memory_is_bounded_multi_gigabyte(tmp_path):
    budget = 64 << 20
    rows, classes = 50_000_000, 10  # 2 GB of float32 logits + 400 MB of labels: 36x the budget
    y, p = make_big_npy(tmp_path, rows, classes, block=4 << 20)
    warm_npy, _ = warm_up_files(tmp_path)
    warm = scoring_spec(None, warm_npy["target"], warm_npy["pred"], budget)
    delta, result = peak_anon_delta_mib(warm, scoring_spec(None, y, p, budget))
    print(f"npy 2.4 GB: peak RssAnon - baseline = {delta:.1f} MiB (budget {budget >> 20} MiB)")
    assert result["count"] == rows
    assert delta <= (budget >> 20) + OVERHEAD_MIB


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_peak_anonymous_memory_parquet_and_csv(tmp_path, pa):
    """Parquet is read a row group at a time (pyarrow decodes a whole one): the bound is the
    budget plus one row group plus Arrow's allocator cache; CSV blocks are 1/64 of the budget."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    budget = 8 << 20
    rows, classes, group_rows = 2_500_000, 10, 100_000
    rng = np.random.default_rng(1)
    logits_column = pa.FixedSizeListArray.from_arrays(
        pa.array(rng.normal(size=rows * classes).astype(np.float32)), classes
    )
    table = pa.table({"label": rng.integers(0, classes, rows), "logits": logits_column})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=group_rows)
    pq.write_table(
        table.slice(0, 2 * group_rows), tmp_path / "warm.parquet", row_group_size=group_rows
    )
    group_mib = group_rows * (classes * 4 + 8) / 2**20
    assert os.path.getsize(tmp_path / "big.parquet") > 8 * (budget + group_mib * 2**20)
    delta, result = peak_anon_delta_mib(
        scoring_spec(str(tmp_path / "warm.parquet"), "label", "logits", budget),
        scoring_spec(str(tmp_path / "big.parquet"), "label", "logits", budget),
    )
    print(
        f"parquet: peak RssAnon - baseline = {delta:.1f} MiB "
        f"(budget 8 MiB, row groups {group_mib:.1f} MiB)"
    )
    assert result["count"] == rows
    assert delta <= (budget >> 20) + group_mib + ARROW_OVERHEAD_MIB

    n_csv = 400_000
    columns = {"label": table.column("label").slice(0, n_csv)}
    values = np.asarray(logits_column.flatten()).reshape(rows, classes)[:n_csv].astype(np.float64)
    for i in range(classes):
        columns[f"x{i}"] = pa.array(values[:, i])
    pcsv.write_csv(pa.table(columns), tmp_path / "big.csv")
    pcsv.write_csv(pa.table(columns).slice(0, 50_000), tmp_path / "warm.csv")
    assert os.path.getsize(tmp_path / "big.csv") > 8 * budget
    delta_csv, result_csv = peak_anon_delta_mib(
        scoring_spec(str(tmp_path / "warm.csv"), "label", "x*", budget),
        scoring_spec(str(tmp_path / "big.csv"), "label", "x*", budget),
    )
    print(f"csv: peak RssAnon - baseline = {delta_csv:.1f} MiB (budget 8 MiB)")
    assert result_csv["count"] == n_csv
    assert delta_csv <= (budget >> 20) + ARROW_OVERHEAD_MIB


def test_csv_line_longer_than_a_block_asks_for_a_bigger_budget(tmp_path, pa):
    path = tmp_path / "wide.csv"
    write_csv(
        path, {"y": np.zeros(3, np.int64), **{f"p{i}": np.full(3, 1 / 7000) for i in range(7000)}}
    )
    with pytest.raises(ValueError, match=r"wide\.csv: a line is longer than the CSV block"):
        fastce.score_file(path, "cross_entropy", target="y", pred="p*", chunk_bytes=4096)
    res = fastce.score_file(path, "cross_entropy", target="y", pred="p*", chunk_bytes="16M")
    assert res.count == 3


def test_perplexity_from_files_and_the_cli(tmp_path, data):
    """``perplexity`` is a measure of score_file and ``fastce score``: cross-entropy in nats
    (mean, sum, count, weight) and, beside it, fastce.perplexity of the file bit for bit."""
    labels = data["labels"].copy()
    labels[::9] = -100
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "p.npy", data["logits"])
    options = {"from_logits": True, "ignore_index": -100}
    result = fastce.score_file(
        None, "perplexity", target=tmp_path / "y.npy", pred=tmp_path / "p.npy",
        chunk_bytes=BUDGET, **options,
    )  # fmt: skip
    assert_same(result, fastce.cross_entropy, labels, data["logits"], **options)
    want = fastce.perplexity(labels, data["logits"], **options)
    assert bits(result.perplexity) == bits(want)
    args = ["--target", tmp_path / "y.npy", "--pred", tmp_path / "p.npy", "--from-logits"]
    args += ["--ignore-index", "-100", "--measure", "perplexity,cross_entropy", "--no-progress"]
    parsed = json.loads(fastce_score(*args, "--json").stdout)
    assert bits(parsed["perplexity"]["perplexity"]) == bits(want)
    assert "perplexity" not in parsed["cross_entropy"]
    table = fastce_score(*args).stdout
    header = next(line for line in table.splitlines() if line.startswith("measure"))
    assert header.split() == ["measure", "mean", "sum", "count", "weight", "perplexity", "unit"]
    assert repr(float(want)) in table
