"""The ``fastce`` command: --version, ``python -m fastce``, and the demo."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastce
from fastce import _warmup, cli, reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastce {fastce.__version__}"


def test_python_dash_m_runs_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "fastce", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"fastce {fastce.__version__}"


def test_demo_data_is_realistic():
    labels, true_probs, logits = cli.make_demo_data(200_000, 10, seed=0)
    assert labels.shape == (200_000,) and logits.shape == (200_000, 10)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(true_probs.sum(axis=1), 1.0, rtol=1e-12)
    accuracy = np.mean(logits.argmax(axis=1) == labels)
    assert 0.7 < accuracy < 0.95  # right most of the time, not always
    # Same seed, same data; another seed, other data.
    again = cli.make_demo_data(1000, 10, seed=0)[2]
    np.testing.assert_array_equal(again, cli.make_demo_data(1000, 10, seed=0)[2])
    assert not np.array_equal(again, cli.make_demo_data(1000, 10, seed=1)[2])


def _one_shot_demo_data(rows, classes, seed):
    """The demo data set as fastce 0.1.0 generated it, whole arrays at once: the chunked
    generator must give these numbers, so that a seed prints the same table as before."""
    rng = np.random.default_rng(seed)
    favoured = rng.integers(0, classes, size=rows)
    true_logits = rng.normal(0.0, 1.0, size=(rows, classes))
    true_logits[np.arange(rows), favoured] += 4.5
    true_probs = np.exp(true_logits - true_logits.max(axis=1, keepdims=True))
    true_probs /= true_probs.sum(axis=1, keepdims=True)
    cdf = np.cumsum(true_probs, axis=1)
    u = rng.random(rows)[:, None] * cdf[:, -1:]
    labels = np.minimum((cdf < u).sum(axis=1), classes - 1).astype(np.int64)
    noise = rng.normal(0.0, 0.7, size=(rows, classes))
    sharpen = np.where(rng.random(rows) < 0.2, 3.0, 1.0)[:, None]
    model_logits = ((true_logits + noise) * sharpen).astype(np.float32)
    return labels, true_probs, model_logits


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000, 5000])
def test_demo_chunks_are_the_one_shot_data_set(chunk_rows):
    expected = _one_shot_demo_data(2500, 6, 11)
    chunks = list(cli.demo_chunks(2500, 6, 11, chunk_rows))
    assert len(chunks) == -(-2500 // chunk_rows)
    assert max(len(c[0]) for c in chunks) == min(chunk_rows, 2500)
    for got, want in zip(zip(*chunks, strict=True), expected, strict=True):
        np.testing.assert_array_equal(np.concatenate(got), want)
        assert np.concatenate(got).dtype == want.dtype
    for got, want in zip(cli.make_demo_data(2500, 6, 11), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_chunked_demo_prints_the_in_memory_figures():
    """Scored a chunk at a time with exact accumulators, the figures are the bits of the
    in-memory functions over the whole data set, whatever the chunk size."""
    labels, true_probs, logits = _one_shot_demo_data(3000, 4, 5)
    ce = fastce.cross_entropy
    rest = fastce.logsumexp(logits[:, 1:])
    expected = {
        "cross-entropy [nats]": ce(labels, logits, from_logits=True, reduction="mean"),
        "cross-entropy [bits]": ce(labels, logits, from_logits=True, base=2, reduction="mean"),
        "perplexity [classes]": fastce.perplexity(labels, logits, from_logits=True),
        "KL(true || model) [nats]": fastce.kl_divergence(
            true_probs, logits, from_logits=True, reduction="mean"
        ),
        "entropy of predictions [nats]": fastce.entropy(
            logits, from_logits=True, reduction="mean"
        ),
        "entropy of true dist. [nats]": fastce.entropy(true_probs, reduction="mean"),
        "binary log loss (class 0 vs rest) [nats]": fastce.binary_cross_entropy(
            (labels == 0).astype(np.float32),
            (logits[:, 0] - rest).astype(np.float32),
            from_logits=True,
            reduction="mean",
        ),
    }
    for chunk_rows in (None, 1000, 999):
        out = io.StringIO()
        results = cli.run_demo(3000, 4, 5, out=out, chunk_rows=chunk_rows)
        assert results == {key: float(value) for key, value in expected.items()}
        accuracy = np.mean(np.argmax(logits, axis=1) == labels)
        assert f"right {accuracy:.1%} of the time" in out.getvalue()


def test_demo_says_how_long_the_kernels_took_to_compile_or_load(monkeypatch):
    run = [sys.executable, "-m", "fastce", "demo", "--rows", "3000", "--classes", "4"]
    subprocess.run(run, capture_output=True, text=True, check=True)
    # The cache is warm now: the next process loads every kernel.
    again = subprocess.run(run, capture_output=True, text=True, check=True)
    assert re.search(r"\(kernels loaded from Numba's cache in \d+\.\d\d s\)", again.stdout)

    # A cold cache (as a fresh install has): what Numba compiled is counted.
    @contextlib.contextmanager
    def compiling():
        yield ["cross_entropy_kernel"]

    monkeypatch.setattr(_warmup, "count_compiles", compiling)
    out = io.StringIO()
    cli.run_demo(3000, 4, 0, out=out)
    assert re.search(
        r"\(kernels compiled in \d+\.\d s: first use; later runs load them from Numba's "
        r"cache\)",
        out.getvalue(),
    )


def test_count_compiles_counts_compiles_not_cache_loads():
    import numba

    @numba.njit(cache=False)
    def twice(x):
        return 2 * x

    with _warmup.count_compiles() as compiled:
        twice(1.0)
        twice(2.0)  # compiled once per signature
    assert len(compiled) == 1 and "twice" in compiled[0]
    with _warmup.count_compiles() as compiled:
        twice(3.0)
    assert compiled == []


@pytest.mark.slow
def test_demo_memory_does_not_grow_with_the_rows():
    """5,000,000 x 50 float32 logits are 1 GB: the demo stays under 3 times that (it peaked at
    12 GB when it built the whole data set and its float64 temporaries)."""
    pytest.importorskip("resource")  # the child reads its peak RSS with it
    script = (
        "import resource, io, fastce.cli as c; "
        "c.run_demo(5_000_000, 50, 1, out=io.StringIO()); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    peak_kib = int(out.stdout.split()[-1])
    assert peak_kib * 1024 < 3 * 5_000_000 * 50 * 4, peak_kib


def test_demo_table_figures_agree_with_the_functions():
    out = io.StringIO()
    results = cli.run_demo(20_000, 5, 3, out=out)
    text = out.getvalue()
    for needle in [
        "cross-entropy",
        "perplexity",
        "KL(true || model)",
        "entropy of predictions",
        "binary log loss",
        "M rows/s",
        "How to read a mean log loss",
    ]:
        assert needle in text
    labels, true_probs, logits = cli.make_demo_data(20_000, 5, 3)
    nats = results["cross-entropy [nats]"]
    assert nats == pytest.approx(
        float(reference.cross_entropy(labels, logits, from_logits=True, reduction="mean")),
        rel=1e-6,
    )
    assert results["cross-entropy [bits]"] == pytest.approx(nats / np.log(2), rel=1e-6)
    assert results["perplexity [classes]"] == pytest.approx(np.exp(nats), rel=1e-6)
    # Cross-entropy against the true distribution = its entropy + the KL (soft-target view).
    soft_ce = fastce.cross_entropy(
        true_probs, logits.astype(np.float64), from_logits=True, reduction="mean"
    )
    assert soft_ce == pytest.approx(
        results["entropy of true dist. [nats]"] + results["KL(true || model) [nats]"], rel=1e-6
    )


def test_demo_command_line_options():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastce",
            "demo",
            "--rows",
            "5000",
            "--classes",
            "3",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "5,000 predictions over 3 classes" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fastce", "demo", "--classes", "1"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "--classes" in bad.stderr


# -- fastce score: errors in the file's and the command's terms ---------------------------------


def fastce_score(*argv, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fastce", "score", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """3000 rows of 4 classes: more rows than one chunk of a 16 KiB budget holds."""
    folder = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, 3000)
    logits = rng.normal(size=(3000, 4)).astype(np.float32)
    np.save(folder / "y.npy", labels)
    np.save(folder / "y_column.npy", labels[:, None])
    bad = labels.copy()
    bad[2500] = 9
    np.save(folder / "y_bad.npy", bad)
    np.save(folder / "logits.npy", logits)
    np.save(folder / "proba.npy", fastce.softmax(logits.astype(np.float64)))
    columns = ",".join(f"p{c}" for c in range(4))
    with open(folder / "s.csv", "w") as fp:
        fp.write(f"label,t0,t1,{columns}\n")
        for row, label in enumerate(labels):
            values = ",".join(repr(float(v)) for v in fastce.softmax(logits[row].astype(float)))
            fp.write(f"{label},0.5,0.5,{values}\n")
    return folder


def test_score_errors_give_the_files_shapes_not_a_chunks(files):
    run = fastce_score(
        "--target", "y_column.npy", "--pred", "proba.npy", "--measure", "cross_entropy",
        "--memory", "16K", cwd=files,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "target has shape (3000, 1) but pred has shape (3000, 4)" in run.stderr, run.stderr
    assert "of shape (3000,)" in run.stderr
    assert re.findall(r"\((\d+),", run.stderr) == ["3000"] * 4, run.stderr
    assert "in the rows" not in run.stderr
    # A CSV's row count is known only at its end: n stands for it.
    run = fastce_score(
        "s.csv", "--target", "t0,t1", "--pred", "p*", "--measure", "kl_divergence",
        "--memory", "16K", cwd=files,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "has shape (n, 2)" in run.stderr and "(n, 4)" in run.stderr, run.stderr
    # A bad value: its row in the file, whatever chunk it was in.
    run = fastce_score(
        "--target", "y_bad.npy", "--pred", "proba.npy", "--measure", "cross_entropy",
        "--memory", "16K", cwd=files,
    )  # fmt: skip
    assert run.returncode == 1
    assert re.search(r"y_bad\.npy: the target array, row 2500: .*label 9", run.stderr)


def test_score_speaks_of_its_flags_not_of_python_arguments(files):
    run = fastce_score(
        "--target", "y.npy", "--pred", "logits.npy", "--measure", "cross_entropy", cwd=files
    )
    assert run.returncode == 1
    assert "(pass --from-logits if it holds logits)" in run.stderr, run.stderr
    assert "from_logits" not in run.stderr
    run = fastce_score(
        "--target", "y.npy", "--pred", "proba.npy", "--measure", "log_loss", cwd=files
    )
    assert run.returncode == 2 and "log_loss needs --labels:" in run.stderr, run.stderr
    assert "labels=" not in run.stderr
    run = fastce_score(
        "--target", "y.npy", "--pred", "proba.npy", "--measure", "log_loss", "--labels",
        "0,1,2,3", "--base", "2", cwd=files,
    )  # fmt: skip
    assert run.returncode == 2
    assert "option --base 2.0 does not apply to 'log_loss'" in run.stderr, run.stderr


def test_score_usage_errors_exit_2_and_suggest_the_name_meant(files):
    run = fastce_score(
        "--target", "y.npy", "--pred", "logits.npy", "--measure", "crossentropy", cwd=files
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("usage: fastce score")
    assert "fastce score: error: argument --measure: invalid choice: 'crossentropy'" in run.stderr
    assert run.stderr.rstrip().endswith("did you mean 'cross_entropy'?"), run.stderr
    run = fastce_score(
        "s.csv", "--target", "lable", "--pred", "p*", "--measure", "cross_entropy", cwd=files
    )
    assert run.returncode == 2 and "usage: fastce score" in run.stderr
    assert "column 'lable': no such column (target)" in run.stderr
    assert run.stderr.rstrip().endswith("did you mean 'label'?"), run.stderr
    run = fastce_score("s.csv", "--pred", "p*", "--measure", "cross_entropy", cwd=files)
    assert run.returncode == 2 and "--target is required for cross_entropy" in run.stderr
    # The same names from Python: a ValueError with the suggestion.
    with pytest.raises(ValueError, match=r"got 'crossentropy'; did you mean 'cross_entropy'\?"):
        fastce.score_file(None, "crossentropy", target=files / "y.npy", pred=files / "proba.npy")
    with pytest.raises(ValueError, match=r"no such column \(target\).*did you mean 'label'\?"):
        fastce.score_file(files / "s.csv", "cross_entropy", target="lable", pred="p*")
    # Bad data is not a usage error.
    run = fastce_score("--pred", "y_column.npy", "--measure", "entropy", cwd=files)
    assert run.returncode == 1 and "usage:" not in run.stderr


def test_score_warns_of_unsorted_labels_as_log_loss_does(files):
    proba = np.load(files / "proba.npy")
    labels = np.load(files / "y.npy")
    with pytest.warns(UserWarning, match="ordered lexicographically") as expected:
        fastce.log_loss(labels, proba, labels=[3, 1, 2, 0])
    assert "labels=[0, 1, 2, 3]" in str(expected[0].message)
    with pytest.warns(UserWarning, match=re.escape("Pass the ordered labels=[0, 1, 2, 3]")):
        res = fastce.score_file(
            None, "log_loss", target=files / "y.npy", pred=files / "proba.npy", labels=[3, 1, 2, 0]
        )
    assert res.mean == fastce.log_loss(labels, proba)
    run = fastce_score(
        "--target", "y.npy", "--pred", "proba.npy", "--measure", "log_loss", "--labels",
        "3,1,2,0", "--json", cwd=files,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("fastce score: warning: The --labels 3,1,2,0 passed are not")
    assert "Pass the ordered --labels 0,1,2,3 and ensure" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    sorted_run = fastce_score(
        "--target", "y.npy", "--pred", "proba.npy", "--measure", "log_loss", "--labels",
        "0,1,2,3", "--json", cwd=files,
    )  # fmt: skip
    assert sorted_run.stderr == "" and sorted_run.stdout == run.stdout


# -- fastce warmup ------------------------------------------------------------------------------


def _two_calls(dtype):
    x = np.full((4, 3), 1 / 3, dtype)
    return [
        ("entropy 4x3", fastce.entropy, (x,), {}),
        ("logsumexp 4x3", fastce.logsumexp, (x,), {}),
    ]


def test_warmup_reports_each_step_and_the_total_time():
    script = (
        "import numpy as np, fastce, fastce._warmup as w, fastce.cli as c\n"
        "from tests.test_cli import _two_calls\n"
        "w._calls = _two_calls\n"
        "raise SystemExit(c.main(['warmup']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 5, run.stdout
    for k, (line, dtype, name) in enumerate(
        zip(lines, ["float64"] * 2 + ["float32"] * 2, ["entropy", "logsumexp"] * 2, strict=False),
        1,
    ):
        assert re.fullmatch(rf"\[{k}/4\] +{dtype}  {name} 4x3 +\d+\.\d\d s", line), line
    assert re.fullmatch(
        r"fastce warmup: 4 steps done in \d+\.\d s \((\d+ kernels compiled, the rest loaded "
        r"from Numba's cache|every kernel loaded from Numba's cache)\)",
        lines[-1],
    )
    assert run.stderr == ""  # not a terminal: no bar


def test_warmup_shows_a_bar_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(_warmup, "_calls", _two_calls)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    _warmup.warmup()
    assert "fastce warmup:" in terminal.getvalue() and "/4 [" in terminal.getvalue()
    assert out.getvalue().startswith("fastce warmup: 4 steps done in ")
    # Told where to write (fastce.dask's workers), or --no-progress: lines, no bar.
    terminal.seek(0)
    terminal.truncate()
    lines = io.StringIO()
    _warmup.warmup(out=lines)
    assert terminal.getvalue() == "" and lines.getvalue().startswith("[1/4]")
    assert cli.main(["warmup", "--no-progress"]) == 0
    assert terminal.getvalue() == "" and "[4/4]" in out.getvalue()


def test_score_two_sets_of_logits(files):
    """``--target-from-logits``: teacher logits as the target; the JSON has the in-memory bits
    of the mean and of ``"batchmean"``; without the flag, the error names it."""
    logits = np.load(files / "logits.npy")
    teacher = (logits * 1.5 + 0.25).astype(np.float32)
    np.save(files / "teacher.npy", teacher)
    argv = ["--target", "teacher.npy", "--pred", "logits.npy", "--measure", "kl_divergence"]
    run = fastce_score(*argv, "--from-logits", "--target-from-logits", "--json", cwd=files)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)["kl_divergence"]
    kw = {"from_logits": True, "target_from_logits": True}
    assert got["mean"] == float(fastce.kl_divergence(teacher, logits, reduction="mean", **kw))
    want = fastce.kl_divergence(teacher, logits, reduction="batchmean", **kw)
    assert got["batchmean"] == float(want)
    run = fastce_score(*argv, "--from-logits", cwd=files)
    assert run.returncode == 1
    assert "(pass --target-from-logits if it holds logits)" in run.stderr, run.stderr
