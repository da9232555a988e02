"""The ``fastce`` command: --version, ``python -m fastce``, and the demo."""

import io
import subprocess
import sys

import numpy as np
import pytest

import fastce
from fastce import cli, reference


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
