"""``score_file(..., groups=...)`` and ``fastce score --groups``: one result per group key.

Each group's figures must be the bits of the in-memory function run on that group's rows
alone, whatever the chunking (small budgets here, so every group straddles many chunks), for
integer keys that are not dense (negative, huge) and string keys, from ``.npy`` files,
Parquet (plain, dictionary and large strings, a dataset), CSV and ``.npz``, with sample
weights and ``where=`` masks. String keys must keep their names through Parquet, CSV and JSON
tables, and the command must write what the function returns. Bad keys fail naming the file,
the column and the row.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import fastce
from fastce import _io
from fastce._group_table import KeyTable
from fastce.scoring import GroupTable

from .registry import logits, probabilities

N, C, L = 1501, 5, 3
BUDGET = 2048  # bytes: tens of rows per chunk, so every group straddles many chunks
INT_KEYS = np.array([-7, 0, 3, 1_000_003, 2**40, 2**62])
STR_KEYS = np.array(["zebra", "ant", "Éclair", "", "ant b", "日本"])


def bits(x):
    return np.float64(x).tobytes()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(31)
    pick = rng.integers(0, INT_KEYS.size, N)
    pick[: INT_KEYS.size] = np.arange(INT_KEYS.size)  # every key at least once
    keep = rng.random(N) < 0.8
    keep[pick == 1] = True  # (a group with every row kept)
    return {
        "int_keys": INT_KEYS[pick],
        "str_keys": STR_KEYS[pick],
        "labels": rng.integers(0, C, N),
        "logits": logits(rng, (N, C), np.float32),
        "p": probabilities(rng, (N, C), np.float64),
        "q": probabilities(rng, (N, C), np.float64),
        "y01": (rng.random((N, L)) < 0.4).astype(np.float64),
        "binary_logits": rng.normal(size=(N, L)).astype(np.float32),
        "weight": rng.random(N) * 3,
        "keep": keep,
    }


@pytest.fixture
def pa():
    return pytest.importorskip("pyarrow")


# (measure, target key, pred key, options)
CASES = [
    ("cross_entropy", "labels", "logits", {"from_logits": True}),
    ("kl_divergence", "p", "q", {"base": 2}),
    ("binary_cross_entropy", "y01", "binary_logits", {"from_logits": True}),
    ("perplexity", "labels", "logits", {"from_logits": True}),
]


def expected_group(measure, data, target, pred, rows, weighted, masked, options):
    """The in-memory figures of one group's rows alone: {field: value}."""
    function = getattr(fastce, measure)
    arrays = (data[target][rows], data[pred][rows])
    extra = {}
    if weighted:
        extra["sample_weight"] = data["weight"][rows]
    if masked:
        extra["where"] = data["keep"][rows]
    if measure == "perplexity":
        ce = {"reduction": "mean", **extra, **options}
        return {
            "perplexity": function(*arrays, **extra, **options),
            "mean": fastce.cross_entropy(*arrays, **ce),
            "sum": fastce.cross_entropy(*arrays, **{**ce, "reduction": "sum"}),
        }
    return {
        "mean": function(*arrays, reduction="mean", **extra, **options),
        "sum": function(*arrays, reduction="sum", **extra, **options),
    }


def assert_groups(table, measure, data, keys_name, target, pred, options, weighted, masked):
    """Every group of ``table[measure]`` against the function on that group's rows alone."""
    keys = data[keys_name]
    kept = data["keep"] if masked else np.ones(N, bool)
    present = np.unique(keys[kept])  # where= filters the rows before they are grouped
    assert table.keys.tolist() == present.tolist()
    if keys_name == "str_keys":
        assert table.keys.dtype == object
        assert all(type(k) is str for k in table.keys)
    else:
        assert table.keys.dtype == np.int64
    result = table[measure]
    per_sample = L if measure == "binary_cross_entropy" else 1
    for i, key in enumerate(table.keys):
        rows = keys == key
        want = expected_group(measure, data, target, pred, rows, weighted, masked, options)
        for field, value in want.items():
            got = getattr(result, field)[i]
            assert bits(got) == bits(value), (measure, key, field, got, value)
            assert got.dtype == np.asarray(value).dtype
        assert result.count[i] == np.count_nonzero(rows & kept) * per_sample
        w = data["weight"][rows & kept] if weighted else np.ones(np.count_nonzero(rows & kept))
        if measure != "binary_cross_entropy":
            assert result.weight[i] == pytest.approx(w.sum(), rel=1e-12)


def save_npy(folder, data, names):
    paths = {}
    for name in names:
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], data[name])
    return paths


# ---------------------------------------------------------------------------------------------
# Bit for bit, every way in


@pytest.mark.parametrize(("measure", "target", "pred", "options"), CASES)
@pytest.mark.parametrize("keys", ["int_keys", "str_keys"])
def test_npy_groups_are_the_function_on_each_groups_rows(
    tmp_path, data, measure, target, pred, options, keys
):
    files = save_npy(tmp_path, data, [target, pred, keys, "weight", "keep"])
    assert _count_chunks(None, files, target, pred, keys) > 20
    for weighted, masked in [(False, False), (True, True)]:
        table = fastce.score_file(
            None,
            measure,
            target=files[target],
            pred=files[pred],
            groups=files[keys],
            weight=files["weight"] if weighted else None,
            where=files["keep"] if masked else None,
            chunk_bytes=BUDGET,
            **options,
        )
        assert isinstance(table, GroupTable)
        assert table.measures == [measure]
        assert_groups(table, measure, data, keys, target, pred, options, weighted, masked)


def _count_chunks(path, files, target, pred, keys):
    source = _io.open_source(
        path, target=files[target], pred=files[pred], groups=files[keys], chunk_bytes=BUDGET
    )
    return sum(1 for _ in _io.iter_chunks(source))


def parquet_table(pa, data, string_type="string"):
    def lists(name):
        a = data[name]
        return pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), a.shape[1])

    keys = data["str_keys"].tolist()
    if string_type == "dictionary":
        strings = pa.array(keys).dictionary_encode()
    else:
        strings = pa.array(keys, pa.large_string() if string_type == "large_string" else None)
    return pa.table(
        {
            "label": data["labels"],
            "logits": lists("logits"),
            "p": lists("p"),
            "q": lists("q"),
            "y01": lists("y01"),
            "binary_logits": lists("binary_logits"),
            "int_keys": data["int_keys"],
            "str_keys": strings,
            "weight": data["weight"],
            "keep": data["keep"],
        }
    )


COLUMNS = {"labels": "label"}


@pytest.mark.parametrize("string_type", ["string", "large_string", "dictionary"])
def test_parquet_several_measures_in_one_pass(tmp_path, pa, data, string_type):
    import pyarrow.parquet as pq

    path = tmp_path / "scores.parquet"
    pq.write_table(parquet_table(pa, data, string_type), path, row_group_size=200)
    for keys in ("int_keys", "str_keys"):
        for measure, target, pred, options in CASES:
            table = fastce.score_file(
                path,
                [measure, "entropy"] if measure != "binary_cross_entropy" else [measure],
                target=COLUMNS.get(target, target),
                pred=pred,
                groups=keys,
                weight="weight",
                where="keep",
                chunk_bytes=BUDGET,
                **options,
            )
            assert_groups(table, measure, data, keys, target, pred, options, True, True)
            if "entropy" in table:  # (which takes each case's options too)
                for i, key in enumerate(table.keys):
                    rows = data[keys] == key
                    want = fastce.entropy(
                        data[pred][rows],
                        reduction="mean",
                        sample_weight=data["weight"][rows],
                        where=data["keep"][rows],
                        **options,
                    )
                    assert bits(table["entropy"].mean[i]) == bits(want)


def test_parquet_dataset_csv_and_npz(tmp_path, pa, data):
    import pyarrow.parquet as pq

    measure, target, pred, options = CASES[0]
    table = parquet_table(pa, data)
    folder = tmp_path / "dataset"
    folder.mkdir()
    for k, lo in enumerate(range(0, N, 400)):  # groups straddle the files too
        pq.write_table(table.slice(lo, 400), folder / f"part-{k}.parquet", row_group_size=90)
    # CSV: integer keys read as integers, strings as strings; the logits as columns
    csv_path = tmp_path / "scores.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["label", *[f"x{j}" for j in range(C)], "int_keys", "str_keys"])
        for i in range(N):
            x = [repr(float(v)) for v in data["logits"][i]]
            writer.writerow([data["labels"][i], *x, data["int_keys"][i], data["str_keys"][i]])
    np.savez(tmp_path / "scores.npz", y=data["labels"], x=data["logits"], g=data["str_keys"])
    for keys in ("int_keys", "str_keys"):
        got = fastce.score_file(
            folder, measure, target="label", pred="logits", groups=keys, chunk_bytes=BUDGET,
            **options,
        )  # fmt: skip
        assert_groups(got, measure, data, keys, target, pred, options, False, False)
    # CSV holds the float32 logits as float64 text: compare with the float64 values
    as_read = {**data, "logits": data["logits"].astype(np.float64)}
    for keys in ("int_keys", "str_keys"):
        got = fastce.score_file(
            csv_path, measure, target="label", pred="x*", groups=keys, chunk_bytes=1 << 16,
            **options,
        )  # fmt: skip
        assert_groups(got, measure, as_read, keys, target, pred, options, False, False)
    got = fastce.score_file(
        tmp_path / "scores.npz", measure, target="y", pred="x", groups="g", chunk_bytes=BUDGET,
        **options,
    )  # fmt: skip
    assert_groups(got, measure, data, "str_keys", target, pred, options, False, False)


def test_chunking_does_not_change_a_bit(tmp_path, data):
    files = save_npy(tmp_path, data, ["labels", "logits", "int_keys", "weight"])
    tables = [
        fastce.score_file(
            None,
            ["cross_entropy", "perplexity"],
            target=files["labels"],
            pred=files["logits"],
            groups=files["int_keys"],
            weight=files["weight"],
            from_logits=True,
            chunk_bytes=budget,
        )
        for budget in (300, BUDGET, 1 << 20)
    ]
    first = tables[0]
    for other in tables[1:]:
        assert np.array_equal(first.keys, other.keys)
        for measure in first.measures:
            assert first[measure] == other[measure]


def test_ignored_labels_and_masks_within_groups(tmp_path, data):
    """A key whose rows are all masked out has no row (the mask filters first); a group whose
    every label is ignored has a row with count 0, sum 0.0 and a NaN mean, as the function
    on those rows alone."""
    labels = data["labels"].copy()
    keys = data["int_keys"]
    keep = np.ones(N, bool)
    keep[keys == 3] = False  # never kept: no row
    labels[keys == 0] = -100  # every label ignored: an empty group
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "x.npy", data["logits"])
    np.save(tmp_path / "g.npy", keys)
    np.save(tmp_path / "keep.npy", keep)
    table = fastce.score_file(
        None,
        "cross_entropy",
        target=tmp_path / "y.npy",
        pred=tmp_path / "x.npy",
        groups=tmp_path / "g.npy",
        where=tmp_path / "keep.npy",
        from_logits=True,
        ignore_index=-100,
        chunk_bytes=BUDGET,
    )
    assert 3 not in table.keys.tolist()
    assert table.keys.tolist() == sorted(set(keys.tolist()) - {3})
    res = table["cross_entropy"]
    empty = table.keys.tolist().index(0)
    assert res.count[empty] == 0 and res.weight[empty] == 0.0 and res.sum[empty] == 0.0
    assert np.isnan(res.mean[empty])
    rows = keys == 0
    alone = fastce.cross_entropy(
        labels[rows], data["logits"][rows], from_logits=True, ignore_index=-100, reduction="mean"
    )
    assert np.isnan(alone)


def test_empty_file_gives_an_empty_table(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(0, np.int64))
    np.save(tmp_path / "x.npy", np.zeros((0, 4), np.float32))
    np.save(tmp_path / "g.npy", np.zeros(0, np.int64))
    table = fastce.score_file(
        None, "cross_entropy", target=tmp_path / "y.npy", pred=tmp_path / "x.npy",
        groups=tmp_path / "g.npy",
    )  # fmt: skip
    assert table.n_groups == 0 and table.keys.dtype == np.int64
    assert table["cross_entropy"].count.size == 0
    assert table.rows() == []
    for name in ("empty.csv", "empty.json"):
        table.write(tmp_path / name)
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    header = (tmp_path / "empty.csv").read_text().splitlines()
    assert header == [
        "group,cross_entropy_count,cross_entropy_weight,cross_entropy_sum,cross_entropy_mean"
    ]


def test_progress_bar_as_without_groups(tmp_path, data, capsys):
    pytest.importorskip("tqdm")
    files = save_npy(tmp_path, data, ["labels", "logits", "str_keys"])
    table = fastce.score_file(
        None, "cross_entropy", target=files["labels"], pred=files["logits"],
        groups=files["str_keys"], from_logits=True, chunk_bytes=BUDGET, progress=True,
    )  # fmt: skip
    assert table.n_groups == STR_KEYS.size
    bar = capsys.readouterr().err
    assert "logits.npy" in bar and "rows" in bar


# ---------------------------------------------------------------------------------------------
# The table and its files


def string_table(tmp_path, data, measures=("cross_entropy", "perplexity")):
    files = save_npy(tmp_path, data, ["labels", "logits", "str_keys", "weight"])
    return fastce.score_file(
        None,
        list(measures),
        target=files["labels"],
        pred=files["logits"],
        groups=files["str_keys"],
        weight=files["weight"],
        from_logits=True,
        chunk_bytes=BUDGET,
    )


def assert_rows_are_the_table(rows, table):
    """Rows read back from a file (values as read) hold the table's keys and bits."""
    columns = table.columns()
    assert [row["group"] for row in rows] == table.keys.tolist()
    if rows:
        assert list(rows[0]) == list(columns)
    for name, values in columns.items():
        if name == "group":
            continue
        read = np.array([row[name] for row in rows], dtype=np.float64).astype(values.dtype)
        assert read.tobytes() == values.tobytes(), name


def test_columns_and_rows(tmp_path, data):
    table = string_table(tmp_path, data)
    assert list(table.columns()) == [
        "group",
        *[f"cross_entropy_{f}" for f in ("count", "weight", "sum", "mean")],
        *[f"perplexity_{f}" for f in ("count", "weight", "sum", "mean", "perplexity")],
    ]
    assert table.keys.tolist() == sorted(STR_KEYS.tolist())
    rows = table.rows()
    assert len(rows) == table.n_groups == STR_KEYS.size
    assert all(type(row["cross_entropy_count"]) is int for row in rows)
    assert all(type(row["cross_entropy_mean"]) is float for row in rows)
    assert_rows_are_the_table(rows, table)
    assert table.measures == list(table.results) == ["cross_entropy", "perplexity"]
    assert "perplexity" in table and "entropy" not in table
    assert len(table) == table.n_groups
    with pytest.raises(KeyError, match="not scored here"):
        table["entropy"]
    with pytest.raises(TypeError, match="not iterable"):
        iter(table)
    assert "6 groups" in repr(table)


def test_string_keys_round_trip_through_parquet_csv_and_json(tmp_path, pa, data):
    import pyarrow.parquet as pq

    table = string_table(tmp_path, data)
    table.write(tmp_path / "t.parquet")
    read = pq.read_table(tmp_path / "t.parquet")
    assert read.column_names == list(table.columns())
    assert read.schema.field("group").type == pa.string()
    assert read.schema.field("cross_entropy_mean").type == pa.float32()  # the data's dtype
    assert read.schema.field("cross_entropy_count").type == pa.int64()
    assert_rows_are_the_table(read.to_pylist(), table)

    table.write(tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert_rows_are_the_table(rows, table)

    table.write(tmp_path / "t.json")
    rows = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
    assert_rows_are_the_table(rows, table)


def test_integer_keys_stay_integers_in_files(tmp_path, pa, data):
    import pyarrow.parquet as pq

    files = save_npy(tmp_path, data, ["labels", "logits", "int_keys"])
    table = fastce.score_file(
        None, "cross_entropy", target=files["labels"], pred=files["logits"],
        groups=files["int_keys"], from_logits=True,
    )  # fmt: skip
    table.write(tmp_path / "t.pq")
    assert pq.read_table(tmp_path / "t.pq").column("group").to_pylist() == sorted(INT_KEYS)
    table.write(tmp_path / "t.json")
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [row["group"] for row in rows] == sorted(INT_KEYS.tolist())  # 2**62 exactly


def test_nan_in_a_file_table(tmp_path, data):
    """An empty group's NaN mean: ``nan`` in CSV, ``NaN`` in JSON (as ``fastce score --json``
    prints NaN), NaN in Parquet."""
    labels = data["labels"].copy()
    labels[data["int_keys"] == 0] = -100
    np.save(tmp_path / "y.npy", labels)
    files = save_npy(tmp_path, data, ["logits", "int_keys"])
    table = fastce.score_file(
        None, "cross_entropy", target=tmp_path / "y.npy", pred=files["logits"],
        groups=files["int_keys"], from_logits=True, ignore_index=-100,
    )  # fmt: skip
    table.write(tmp_path / "t.csv")
    table.write(tmp_path / "t.json")
    assert "\n0,0,0.0,0.0,nan\n" in (tmp_path / "t.csv").read_text()
    assert '"cross_entropy_mean": NaN' in (tmp_path / "t.json").read_text()


def test_write_refuses_other_extensions_and_leaves_no_partial_file(tmp_path, data):
    table = string_table(tmp_path, data, ["cross_entropy"])
    for name in ("t.txt", "t", "t.csv.gz", "t.xlsx"):
        with pytest.raises(ValueError, match=r"unknown output format .*\.parquet.*\.csv.*\.json"):
            table.write(tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match="no folder"):
        table.write(tmp_path / "missing" / "t.csv")
    table.write(tmp_path / "T.JSON")  # the extension in any case
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_key_table_numbers_keys_as_first_seen_and_sorts_them():
    rng = np.random.default_rng(5)
    table = KeyTable()
    seen: dict[int, int] = {}
    for _ in range(60):
        chunk = rng.permutation(np.unique(rng.integers(-(10**6), 10**6, rng.integers(1, 400))))
        ids = table.ids(chunk.astype(np.int64))
        for key in chunk.tolist():  # a chunk's new keys in the order it gives them
            seen.setdefault(key, len(seen))
        assert ids.tolist() == [seen[key] for key in chunk.tolist()]
    assert table.size == len(seen)
    keys, ids = table.sorted()
    assert keys.tolist() == sorted(seen)
    assert ids.tolist() == [seen[k] for k in sorted(seen)]
    strings = KeyTable()
    strings.kind = "string"
    assert strings.ids(np.array(["b", "a"], object)).tolist() == [0, 1]
    assert strings.ids(np.array(["c", "a", "bb"], object)).tolist() == [2, 1, 3]
    keys, ids = strings.sorted()
    assert keys.dtype == object and keys.tolist() == ["a", "b", "bb", "c"]
    assert ids.tolist() == [1, 0, 3, 2] and strings.size == 4


# ---------------------------------------------------------------------------------------------
# Errors


def test_bad_keys_name_the_file_column_and_row(tmp_path, pa, data):
    import pyarrow.parquet as pq

    base = {"label": data["labels"], "x": data["weight"] / 3}  # (probabilities)
    nulls = pa.array([1] * 700 + [None] + [2] * (N - 701), pa.int64())
    columns = {
        "floats": data["weight"],
        "bools": data["keep"],
        "nulls": nulls,
        "null_strings": pa.array(["a"] * 900 + [None] + ["b"] * (N - 901)),
        "lists": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * N)), 2),
    }
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({**base, **columns}), path, row_group_size=500)
    expected = {
        "floats": r"column 'floats', row 0: holds floats of type double \(groups\); expected "
        "integer or string group keys",
        "bools": r"column 'bools', row 0: holds booleans \(groups\)",
        "nulls": r"column 'nulls', row 700: a null key \(groups\)",
        "null_strings": r"column 'null_strings', row 900: a null key \(groups\)",
        "lists": r"column 'lists', row 0: has type fixed_size_list.* \(groups\)",
    }
    for column, message in expected.items():
        with pytest.raises(ValueError, match=rf"bad\.parquet: {message}"):
            fastce.score_file(
                path, "binary_cross_entropy", target="x", pred="x", groups=column,
                chunk_bytes=BUDGET,
            )  # fmt: skip
    with pytest.raises(ValueError, match="groups names one column of keys; got 2"):
        fastce.score_file(path, "entropy", pred="x", groups="nulls,floats")
    # .npy: floats, booleans, bytes that are not text, keys beyond int64
    y = tmp_path / "y.npy"
    np.save(y, data["labels"])
    np.save(tmp_path / "x.npy", data["logits"])
    big = np.full(N, 5, np.uint64)
    big[1234] = 2**63 + 1
    arrays = {
        "f.npy": (data["weight"], r"f\.npy: the groups array, row 0: holds floats of type "),
        "b.npy": (data["keep"], r"b\.npy: the groups array, row 0: holds booleans"),
        "u.npy": (big, r"u\.npy: the groups array, row 1234: holds the key 9223372036854775809"),
        "s.npy": (np.array([b"\xff"] * N), r"s\.npy: the groups array: holds bytes that are not"),
        "2d.npy": (np.zeros((N, 2), np.int64), r"2d\.npy: the groups array: has shape \(2,\)"),
    }
    for name, (values, message) in arrays.items():
        np.save(tmp_path / name, values)
        with pytest.raises(ValueError, match=message):
            fastce.score_file(
                None, "cross_entropy", target=y, pred=tmp_path / "x.npy",
                groups=tmp_path / name, from_logits=True, chunk_bytes=BUDGET,
            )  # fmt: skip


def test_row_count_mismatch_names_the_files(tmp_path, data):
    files = save_npy(tmp_path, data, ["labels", "logits"])
    np.save(tmp_path / "g.npy", data["int_keys"][:-1])
    with pytest.raises(ValueError, match=rf"g\.npy \(groups\) has {N - 1} rows but .*logits\.npy"):
        fastce.score_file(
            None, "cross_entropy", target=files["labels"], pred=files["logits"],
            groups=tmp_path / "g.npy",
        )  # fmt: skip


def test_integer_and_string_keys_in_one_dataset(tmp_path, pa):
    import pyarrow.parquet as pq

    folder = tmp_path / "mixed"
    folder.mkdir()
    x = np.full(10, 0.25)
    pq.write_table(pa.table({"x": x, "g": np.arange(10)}), folder / "a.parquet")
    pq.write_table(pa.table({"x": x, "g": ["k"] * 10}), folder / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet: column 'g'.*row 0.*string keys \(groups\)"):
        fastce.score_file(folder, "binary_cross_entropy", target="x", pred="x", groups="g")


def test_argument_errors(tmp_path, data):
    files = save_npy(tmp_path, data, ["labels", "logits", "int_keys"])
    common = {"target": files["labels"], "pred": files["logits"], "groups": files["int_keys"]}
    with pytest.raises(ValueError, match="groups= does not apply to 'log_loss'"):
        fastce.score_file(None, ["cross_entropy", "log_loss"], labels=list(range(C)), **common)
    with pytest.raises(TypeError, match="score_file has no option 'n_groups'"):
        fastce.score_file(None, "cross_entropy", n_groups=3, **common)
    with pytest.raises(ValueError, match=r"without a PATH, groups must be a \.npy file"):
        fastce.score_file(
            None, "cross_entropy", target=files["labels"], pred=files["logits"], groups="g"
        )


# ---------------------------------------------------------------------------------------------
# fastce score --groups


def fastce_score(*args, check=True):
    out = subprocess.run(
        [sys.executable, "-m", "fastce", "score", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_cli_writes_what_score_file_returns(tmp_path, pa, data):
    import pyarrow.parquet as pq

    files = save_npy(tmp_path, data, ["labels", "logits", "str_keys", "weight", "keep"])
    args = [
        "--target", files["labels"], "--pred", files["logits"], "--groups", files["str_keys"],
        "--weight", files["weight"], "--where", files["keep"], "--measure",
        "cross_entropy,perplexity", "--from-logits", "--memory", "4K",
    ]  # fmt: skip
    table = fastce.score_file(
        None,
        ["cross_entropy", "perplexity"],
        target=files["labels"],
        pred=files["logits"],
        groups=files["str_keys"],
        weight=files["weight"],
        where=files["keep"],
        from_logits=True,
    )
    for name in ("out.parquet", "out.csv", "out.json"):
        out = fastce_score(*args, "--out", tmp_path / name)
        assert out.stderr == ""
        assert f"{table.n_groups} groups" in out.stdout and f"to {tmp_path / name}" in out.stdout
    assert_rows_are_the_table(pq.read_table(tmp_path / "out.parquet").to_pylist(), table)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as file:
        assert_rows_are_the_table(list(csv.DictReader(file)), table)
    rows = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert_rows_are_the_table(rows, table)
    # --json: the same rows on stdout
    out = fastce_score(*args, "--json")
    assert_rows_are_the_table(json.loads(out.stdout), table)
    # no --out: a table on stdout, a line per group, every figure in full
    out = fastce_score(*args)
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"fastce score: {N:,} rows of ") and "6 groups" in lines[0]
    header = lines[2].split()
    assert header == list(table.columns())
    body = lines[4 : 4 + table.n_groups]
    mean = table["cross_entropy"].mean
    for i, line in enumerate(body):
        key = table.keys[i]
        assert line.startswith(key) if key else line.startswith(" ")
        assert repr(float(mean[i])) in line.split()
    assert lines[-1] == "(sums and means: cross_entropy in nats, perplexity in nats)"


def test_cli_parquet_integer_keys(tmp_path, pa, data):
    import pyarrow.parquet as pq

    path = tmp_path / "scores.parquet"
    pq.write_table(parquet_table(pa, data), path, row_group_size=250)
    out = fastce_score(
        path, "--target", "label", "--pred", "logits", "--groups", "int_keys",
        "--measure", "cross_entropy", "--from-logits", "--base", "2", "--json",
    )  # fmt: skip
    rows = json.loads(out.stdout)
    table = fastce.score_file(
        path, "cross_entropy", target="label", pred="logits", groups="int_keys",
        from_logits=True, base=2,
    )  # fmt: skip
    assert [row["group"] for row in rows] == sorted(INT_KEYS.tolist())
    assert_rows_are_the_table(rows, table)


def test_cli_errors(tmp_path, pa, data):
    files = save_npy(tmp_path, data, ["labels", "logits", "int_keys", "weight"])
    args = ["--target", files["labels"], "--pred", files["logits"], "--measure", "cross_entropy"]
    out = fastce_score(*args, "--groups", files["int_keys"], "--out", tmp_path / "t.txt",
                       check=False)  # fmt: skip
    assert out.returncode == 2
    assert "argument --out:" in out.stderr and "unknown output format '.txt'" in out.stderr
    out = fastce_score(*args, "--out", tmp_path / "t.csv", check=False)
    assert out.returncode == 2 and "give --groups" in out.stderr
    out = fastce_score(*args, "--groups", files["int_keys"], "--out", tmp_path / "t.csv",
                       "--json", check=False)  # fmt: skip
    assert out.returncode == 2 and "not allowed with argument --out" in out.stderr
    out = fastce_score(*args, "--groups", files["weight"], check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"fastce score: error: {files['weight']}: the groups array, row 0")
    out = fastce_score(*args, "--groups", files["int_keys"], "--out", tmp_path / "no" / "t.csv",
                       check=False)  # fmt: skip
    assert out.returncode == 1 and "no folder" in out.stderr
    out = fastce_score(
        *args, "--groups", files["int_keys"], "--measure", "log_loss", "--labels", "0,1,2,3,4",
        check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "--groups does not apply to 'log_loss'" in out.stderr
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())
