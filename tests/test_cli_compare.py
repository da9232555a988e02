"""``fastce compare``: two models' predictions in files (.npy memory-mapped, half precision
included; Parquet columns), streamed chunk by chunk into one Comparison. The exact figures are
the in-memory ``fastce.compare``'s, bit for bit (JSON floats round-trip); bad files are one
line naming the file and the row, never a traceback."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastce
from fastce import _compare_files, cli

from .test_compare import EXACT, EXACT_DISTRIBUTION

pytest.importorskip("datasketches")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N, C = 5000, 6
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(17)
    ref = (rng.normal(size=(N, C)) * 2).astype(np.float32)
    cand = (ref + 0.3 * rng.normal(size=(N, C))).astype(np.float32)
    labels = rng.integers(0, C, N)
    labels[rng.random(N) < 0.05] = -100
    weight = rng.random(N) * 2
    keep = rng.random(N) < 0.9
    return {"ref": ref, "cand": cand, "y": labels, "w": weight, "keep": keep}


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("compare")
    ref, cand, labels = data["ref"], data["cand"], data["y"]
    arrays = {
        "ref.npy": ref,
        "cand.npy": cand,
        "ref16.npy": ref.astype(np.float16),
        "cand16.npy": cand.astype(np.float16),
        "pref.npy": fastce.softmax(ref.astype(np.float64)),
        "pcand.npy": fastce.softmax(cand.astype(np.float64)),
        "y.npy": labels,
        "w.npy": data["w"],
        "keep.npy": data["keep"],
        "cand_short.npy": cand[:-1],
        "y_short.npy": labels[:4000],
        "cand_wide.npy": np.concatenate([cand, cand[:, :1]], axis=1),
    }
    bad = np.where(labels == -100, 0, labels)
    bad[4321] = C
    arrays["y_bad.npy"] = bad
    for name, array in arrays.items():
        np.save(folder / name, array)
    whole = (folder / "ref.npy").read_bytes()
    (folder / "ref_truncated.npy").write_bytes(whole[: len(whole) - 1000])
    table = pa.table(
        {
            "label": labels,
            "ref": pa.FixedSizeListArray.from_arrays(pa.array(ref.ravel()), C),
            "cand": pa.array(list(cand)),  # a list column
            "weight": data["w"],
            "keep": data["keep"],
            **{f"c_{k}": cand[:, k] for k in range(C)},  # one column per class
            "bad_label": bad,
        }
    )
    pq.write_table(table, folder / "s.parquet", row_group_size=1500)
    whole = (folder / "s.parquet").read_bytes()
    (folder / "s_truncated.parquet").write_bytes(whole[: len(whole) // 2])
    return folder


def compare_cli(*argv, cwd=None):
    """``fastce compare ARGV`` in this process, in the folder ``cwd``: (exit status, stdout,
    stderr)."""
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["compare", *map(str, argv)])
    here = os.getcwd()
    os.chdir(cwd or here)
    try:
        status = cli.run_compare(args, out=out, err=err)
    finally:
        os.chdir(here)
    return status, out.getvalue(), err.getvalue()


def same_exact_figures(got, want):
    """The JSON of the command against the in-memory result's to_dict(): equal floats."""
    for key in EXACT:
        assert _same(got[key], want[key]), (key, got[key], want[key])
    for name in ("kl", "delta_p"):
        if want[name] is None:
            assert got[name] is None
            continue
        for key in EXACT_DISTRIBUTION:
            assert _same(got[name][key], want[name][key]), (name, key, got[name], want[name])
        assert got[name]["method"] == "req" and want[name]["method"] == "exact"


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def kl_ranks_within_bounds(got, kl_values):
    """Each streamed KL quantile's rank among the per-sample values is within its rank error
    (plus a few samples for the sketch's float32 values and ties) of q."""
    slack = 4.0 / kl_values.size
    for q in ("p50", "p90", "p99"):
        level = {"p50": 0.5, "p90": 0.9, "p99": 0.99}[q]
        quantile, error = got["kl"]["quantiles"][q], got["kl"]["rank_error"][q]
        assert np.mean(kl_values <= quantile) >= level - error - slack, q
        assert np.mean(kl_values < quantile) <= level + error + slack, q


@pytest.mark.parametrize(
    ("ref", "cand", "kind", "dtype"),
    [
        ("ref.npy", "cand.npy", "--from-logits", np.float32),
        ("ref16.npy", "cand16.npy", "--from-logits", np.float16),
        ("ref16.npy", "cand.npy", "--from-logits", None),  # float16 against float32
        ("pref.npy", "pcand.npy", "--probabilities", np.float64),
    ],
)
def test_npy_files_give_the_in_memory_figures(files, ref, cand, kind, dtype):
    status, out, err = compare_cli(
        "--reference", ref, "--candidate", cand, "--target", "y.npy", kind,
        "--ignore-index", "-100", "--memory", "48K", "--json", cwd=files,
    )  # fmt: skip
    assert status == 0 and err == "", err
    got = json.loads(out)
    reference, candidate = np.load(files / ref), np.load(files / cand)
    labels = np.load(files / "y.npy")
    want = fastce.compare(
        reference, candidate, labels, from_logits=kind == "--from-logits", ignore_index=-100
    )
    if dtype is not None:
        assert np.asarray(want.kl.mean).dtype == np.result_type(dtype, np.float32)
    same_exact_figures(got, want.to_dict())
    assert got["n_samples"] == np.count_nonzero(labels != -100)
    kl = fastce.kl_divergence(
        reference, candidate, from_logits=kind == "--from-logits",
        target_from_logits=kind == "--from-logits", where=labels != -100,
    )  # fmt: skip
    kl_ranks_within_bounds(got, np.maximum(kl[labels != -100], 0.0))


def test_the_chunk_budget_does_not_change_the_exact_figures(files):
    runs = []
    for memory in ("16K", "100K", "64M"):
        status, out, _ = compare_cli(
            "--reference", "ref.npy", "--candidate", "cand.npy", "--target", "y.npy",
            "--weight", "w.npy", "--where", "keep.npy", "--ignore-index", "-100",
            "--from-logits", "--base", "2", "--json", "--memory", memory, cwd=files,
        )  # fmt: skip
        assert status == 0
        runs.append(json.loads(out))
    data = {k: np.load(files / f"{k}.npy") for k in ("ref", "cand", "y", "w", "keep")}
    want = fastce.compare(
        data["ref"], data["cand"], data["y"], from_logits=True, base=2, ignore_index=-100,
        sample_weight=data["w"], where=data["keep"],
    ).to_dict()  # fmt: skip
    for got in runs:
        same_exact_figures(got, want)
    assert runs[0]["unit"] == "bits" and runs[0]["n_masked"] == np.count_nonzero(~data["keep"])


def test_parquet_columns_give_the_in_memory_figures(files, data):
    """A fixed-size-list reference, a list candidate (or a glob of one column per class), a
    label column, weights and a mask: one row group at a time."""
    want = fastce.compare(
        data["ref"], data["cand"], data["y"], from_logits=True, ignore_index=-100,
        sample_weight=data["w"], where=data["keep"], temperature=2.0,
    ).to_dict()  # fmt: skip
    for candidate in ("cand", "c_*"):
        status, out, err = compare_cli(
            "s.parquet", "--reference", "ref", "--candidate", candidate, "--target", "label",
            "--weight", "weight", "--where", "keep", "--ignore-index", "-100",
            "--temperature", "2", "--from-logits", "--json", "--memory", "64K", cwd=files,
        )  # fmt: skip
        assert status == 0, err
        same_exact_figures(json.loads(out), want)
    # no target: KL and agreement only
    status, out, _ = compare_cli(
        "s.parquet", "--reference", "ref", "--candidate", "cand", "--from-logits", "--json",
        cwd=files,
    )  # fmt: skip
    got = json.loads(out)
    same_exact_figures(got, fastce.compare(data["ref"], data["cand"], from_logits=True).to_dict())
    assert got["delta_p"] is None and got["reference_cross_entropy"] is None


def test_the_table(files):
    status, out, _ = compare_cli(
        "--reference", "ref.npy", "--candidate", "cand.npy", "--target", "y.npy",
        "--ignore-index", "-100", "--from-logits", cwd=files,
    )  # fmt: skip
    assert status == 0
    head, table = out.split("\n\n", 1)
    assert head.startswith(f"fastce compare: {N:,} rows of ref.npy in ")
    result = fastce.compare(
        np.load(files / "ref.npy"), np.load(files / "cand.npy"), np.load(files / "y.npy"),
        from_logits=True, ignore_index=-100,
    )  # fmt: skip
    lines = table.splitlines()
    assert lines[0] == "fastce comparison: reference vs candidate"
    assert f"mean KL (nats)        {float(result.kl.mean):.6g} ± " in table
    assert f"same top class        {float(result.top1_agreement):.6g}" in table
    assert f"PPL ratio             {float(result.perplexity_ratio):.6g}" in table
    assert lines[-1] == "  (quantiles from a REQ sketch; rank errors in to_dict())"


def test_nan_is_written_as_fastce_score_writes_it(tmp_path):
    ref = np.zeros((0, 3), np.float32)
    np.save(tmp_path / "r.npy", ref)
    status, out, _ = compare_cli(
        "--reference", "r.npy", "--candidate", "r.npy", "--from-logits", "--json", cwd=tmp_path
    )
    assert status == 0
    assert '"mean": NaN' in out
    assert math.isnan(json.loads(out)["kl"]["mean"]) and json.loads(out)["n_samples"] == 0


@pytest.mark.parametrize("target", [True, False])
def test_plot_writes_a_png(files, tmp_path, target):
    pytest.importorskip("matplotlib")
    path = tmp_path / "compare.png"
    argv = ["--reference", "ref.npy", "--candidate", "cand.npy", "--from-logits"]
    if target:
        argv += ["--target", "y.npy", "--ignore-index", "-100"]
    status, out, err = compare_cli(*argv, "--plot", path, "--json", cwd=files)
    assert status == 0
    json.loads(out)  # stdout is the JSON alone
    assert err == f"fastce compare: wrote {path}\n"
    assert path.read_bytes().startswith(PNG)


def test_plot_histograms_are_binned_chunk_by_chunk(files, data):
    """The histograms of a pass in small chunks are np.histogram of all the kept values."""
    compared = _compare_files.compare_files(
        None, reference=str(files / "ref.npy"), candidate=str(files / "cand.npy"),
        target=str(files / "y.npy"), ignore_index=-100, from_logits=True, chunk_bytes="16K",
        histograms=True,
    )  # fmt: skip
    h = compared.histograms
    keep = data["y"] != -100
    kl = fastce.kl_divergence(data["ref"], data["cand"], from_logits=True,
                              target_from_logits=True)[keep]  # fmt: skip
    kl = np.maximum(kl, 0.0)
    assert h.kl.sum() + h.kl_zeros + h.kl_below + h.kl_above + h.kl_nan == keep.sum()
    np.testing.assert_array_equal(h.kl, np.histogram(kl, _compare_files.KL_EDGES)[0])
    p_ref = fastce.softmax(data["ref"].astype(np.float64))
    p_cand = fastce.softmax(data["cand"].astype(np.float64))
    rows = np.flatnonzero(keep)
    dp = p_cand[rows, data["y"][rows]] - p_ref[rows, data["y"][rows]]
    assert h.delta_p.sum() == keep.sum()
    # Δp from float64 softmax, not the kernel's bits: a value on a bin edge may move one bin
    np.testing.assert_allclose(
        np.cumsum(h.delta_p), np.cumsum(np.histogram(dp, _compare_files.DELTA_P_EDGES)[0]),
        atol=2,
    )  # fmt: skip


def test_plot_without_matplotlib_is_a_clear_error(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    path = tmp_path / "p.png"
    status, out, err = compare_cli(
        "--reference", "ref.npy", "--candidate", "cand.npy", "--from-logits", "--plot", path,
        cwd=files,
    )  # fmt: skip
    assert status == 1 and out == ""
    assert err.startswith("fastce compare: error: --plot needs matplotlib, which is not")
    assert not path.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--reference", "ref_truncated.npy", "--candidate", "cand.npy"],
            "ref_truncated.npy: the reference array, row 4958: truncated .npy file: its header "
            "says shape (5000, 6) of float32 (120128 bytes with the header) but the file has "
            "119128 bytes; the data ends in row 4958",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "cand_short.npy"],
            "cand_short.npy (candidate) has 4999 rows but ref.npy (reference) has 5000; every "
            "file must have one row per sample",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "cand.npy", "--target", "y_short.npy"],
            "y_short.npy (target) has 4000 rows but ref.npy (reference) has 5000; every file "
            "must have one row per sample",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "cand_wide.npy"],
            "cand_wide.npy (candidate) has shape (5000, 7) but ref.npy (reference) has shape "
            "(5000, 6); they must match",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "cand.npy", "--target", "y_bad.npy"],
            "y_bad.npy: the target array, row 4321: target holds label 6; expected an integer "
            "class index 0 <= label < 6",
        ),
        (
            ["s.parquet", "--reference", "ref", "--candidate", "cand", "--target", "bad_label"],
            "s.parquet: column 'bad_label', row 4321: target holds label 6; expected an "
            "integer class index 0 <= label < 6",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "s.parquet"],
            "without a PATH, candidate must be a .npy file; got 's.parquet' (for a Parquet, "
            "CSV or .npz file, give its path and name the columns or members)",
        ),
        (
            ["--reference", "ref.npy", "--candidate", "missing.npy"],
            "missing.npy (candidate): cannot open: No such file or directory",
        ),
    ],
)
def test_bad_files_are_one_line_naming_the_file_and_the_row(files, argv, message):
    status, out, err = compare_cli(*argv, "--from-logits", "--memory", "16K", cwd=files)
    assert status == 1 and out == ""
    assert err == f"fastce compare: error: {message}\n"


def test_a_truncated_parquet_file(files):
    status, out, err = compare_cli(
        "s_truncated.parquet", "--reference", "ref", "--candidate", "cand", "--from-logits",
        cwd=files,
    )  # fmt: skip
    assert status == 1 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(
        "fastce compare: error: s_truncated.parquet: not a readable Parquet file (corrupt or "
        "truncated footer?): "
    ), err


def test_probabilities_that_are_not_and_a_bfloat16_file(files, tmp_path):
    status, _, err = compare_cli(
        "--reference", "ref.npy", "--candidate", "cand.npy", "--probabilities", cwd=files
    )
    assert status == 1
    assert err.startswith(
        "fastce compare: error: ref.npy: the reference array, row 0: reference must hold "
        "probabilities in [0, 1]; got "
    )
    assert err.rstrip().endswith("(pass --from-logits if it holds logits)"), err
    ml_dtypes = pytest.importorskip("ml_dtypes")
    np.save(tmp_path / "b.npy", np.zeros((3, 4), ml_dtypes.bfloat16))  # stored as V2
    status, _, err = compare_cli(
        "--reference", tmp_path / "b.npy", "--candidate", tmp_path / "b.npy", "--from-logits"
    )
    assert status == 1 and "a bfloat16 array saved with np.save loses its type" in err, err


def test_usage_errors_exit_2(files, capsys):
    def usage(*argv):
        with pytest.raises(SystemExit) as info:
            cli.main(["compare", *argv])
        assert info.value.code == 2
        return capsys.readouterr().err

    err = usage("--reference", "ref.npy", "--candidate", "cand.npy")
    assert "one of the arguments --from-logits --probabilities is required" in err
    err = usage("--reference", "r.npy", "--candidate", "c.npy", "--from-logits", "--probabilities")
    assert "argument --probabilities: not allowed with argument --from-logits" in err
    err = usage("--reference", "ref.npy", "--from-logits")
    assert "the following arguments are required: --candidate" in err
    err = usage("--reference", "r.npy", "--candidate", "c.npy", "--from-logits",
                "--ignore-index", "-100")  # fmt: skip
    assert "--ignore-index applies to the classes of --target, which was not given" in err
    err = usage(str(files / "s.parquet"), "--reference", "ref", "--candidate", "cnad",
                "--from-logits")  # fmt: skip
    assert err.startswith("usage: fastce compare")
    assert "column 'cnad': no such column (candidate)" in err
    assert err.rstrip().endswith("did you mean 'cand'?")


def test_a_bad_file_from_the_shell_is_no_traceback(files):
    run = subprocess.run(
        [sys.executable, "-m", "fastce", "compare", "--reference", "ref_truncated.npy",
         "--candidate", "cand.npy", "--from-logits"],
        cwd=files, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("fastce compare: error: ref_truncated.npy: the reference array")
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
