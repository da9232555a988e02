"""The side-by-side benchmark (fastce.benchmark, ``fastce bench``, ``python -m bench.compare``):
it runs, writes the JSON it promises, and every installed peer agrees with fastce."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastce import benchmark, cli

# Every peer but torch.compile, whose first compile in a process takes 10-30 s (its own tests
# are marked slow).
UNCOMPILED = "torch,jax,scipy,sklearn,numpy"


def _load(path):
    return json.loads(path.read_text())


def test_w7_writes_the_json_structure(tmp_path):
    out = tmp_path / "bench.json"
    assert (
        benchmark.main(
            ["--workloads", "W7", "--repeat", "2", "--settle", "0", "--peers", UNCOMPILED]
            + ["--json", str(out)]
        )
        == 0
    )
    results = _load(out)
    assert set(results) >= {"settings", "machine", "bandwidth", "workloads"}
    machine = results["machine"]
    for key in ["cpu", "cores", "numba_threads", "versions"]:
        assert key in machine
    for dist in ["numpy", "numba", "torch", "jax", "scipy", "scikit-learn"]:
        assert dist in machine["versions"]  # None when not installed
    assert results["bandwidth"]["gbps"] > 0
    assert results["settings"]["repeat"] == 2
    [w7] = results["workloads"]
    assert w7["name"] == "W7" and w7["shape"] == [100, 10] and w7["per_call"]
    assert w7["input_bytes"] == 100 * 10 * 4 + 100 * 8
    fast, *peers = w7["results"]
    assert fast["library"] == "fastce" and fast["ratio"] == 1.0
    assert len(fast["times_s"]) == 2 and fast["calls_per_repeat"] >= 1
    assert 0 < fast["median_s"] < 1 and math.isfinite(fast["value"])
    assert 0 < fast["bandwidth_fraction"]
    assert "numpy" in {p["library"] for p in peers}
    for peer in peers:
        if "skipped" in peer:
            continue
        assert peer["agrees"], peer
        assert peer["ratio"] == pytest.approx(peer["median_s"] / fast["median_s"])
    assert "goal" not in w7
    timed = [p for p in peers if p.get("agrees")]
    best = min(timed, key=lambda p: p["median_s"])
    assert w7["fastest_peer"]["implementation"] == best["implementation"]
    assert w7["fastest_peer"]["speedup"] == best["ratio"]


def test_every_workload_at_small_scale(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "--scale",
        "0.01",
        "--repeat",
        "2",
        "--warmup",
        "1",
        "--settle",
        "0",
        "--peers",
        UNCOMPILED,
        "--json",
        str(out),
    ]
    assert benchmark.main(argv) == 0
    text = capsys.readouterr().out
    results = _load(out)
    names = [w["name"] for w in results["workloads"]]
    assert names == list(benchmark.WORKLOADS)
    for w in results["workloads"]:
        rows = benchmark.workload_rows(benchmark.WORKLOADS[w["name"]], 0.01)
        assert w["shape"][0] == rows
        fast = w["results"][0]
        assert fast["library"] == "fastce" and math.isfinite(fast["value"]), w["name"]
        for r in w["results"][1:]:
            if "skipped" in r:
                continue
            assert "error" not in r, (w["name"], r)
            assert r["agrees"], (w["name"], r["implementation"], r["value"], fast["value"])
        assert w["name"] in text
    assert "DISAGREES" not in text
    assert "W1c" in text and "GB/s" in text and "%bw" in text
    assert "goal" not in text.lower() and "issue 4" not in text


def test_scale_and_inputs_are_reproducible():
    w = benchmark.WORKLOADS["W1c"]
    assert benchmark.workload_rows(w, 1.0) == 8192
    assert benchmark.workload_rows(w, 0.01) == 82
    assert benchmark.workload_rows(benchmark.WORKLOADS["W7"], 0.01) == 100  # not scaled
    a = benchmark.make_inputs(benchmark.WORKLOADS["W2"], 0.001, seed=3)
    b = benchmark.make_inputs(benchmark.WORKLOADS["W2"], 0.001, seed=3)
    assert a.keys() == {"p", "q"} and a["p"].shape == (1000, 100)
    np.testing.assert_array_equal(a["p"], b["p"])
    np.testing.assert_allclose(a["p"].sum(axis=1), 1.0, rtol=1e-12)
    w1a = benchmark.make_inputs(benchmark.WORKLOADS["W1a"], 0.001, seed=0)
    assert w1a["x"].dtype == np.float32 and w1a["y"].dtype == np.int64


def test_memory_is_measured_in_a_subprocess(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--memory-only", "--workloads", "W5a", "--scale", "0.001", "--json", str(out)]
    assert benchmark.main(argv) == 0
    [m] = _load(out)["memory"]
    assert "error" not in m, m
    assert m["workload"] == "W5a" and m["input_bytes"] == 2 * 10_000 * 8
    assert m["extra_mib"] >= 0 and m["tracemalloc_peak_mib"] >= 0
    assert "Peak extra memory" in capsys.readouterr().out


def test_fastce_bench_subcommand(capsys):
    assert (
        cli.main(
            ["bench", "--workloads", "W7", "--repeat", "1", "--peers", "numpy", "--settle", "0"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "W7" in text and "numpy shifted logsumexp" in text
    table, summary = text.split("Fastest peer of each workload")
    rows = [line for line in table.splitlines() if line.startswith("W7 ")]
    assert [r.split()[1] for r in rows] == ["fastce", "numpy"]
    [fastest] = [line for line in summary.splitlines() if line.startswith("W7 ")]
    assert "numpy shifted logsumexp" in fastest
    assert "goal" not in text.lower()


def test_bad_workload_name_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as info:
        benchmark.main(["--workloads", "W99"])
    assert info.value.code == 2
    assert "unknown workload(s) W99" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_settle_must_be_a_finite_number_of_seconds(value, capsys):
    with pytest.raises(SystemExit) as info:
        benchmark.main(["--workloads", "W7", "--settle", value])
    assert info.value.code == 2
    assert "--settle: must be a number >= 0" in capsys.readouterr().err


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    argv = [
        "--workloads",
        "W7",
        "--repeat",
        "1",
        "--peers",
        "numpy",
        "--settle",
        "0",
        "--plot",
        str(png),
    ]
    assert benchmark.main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text)))


def test_fastce_bench_and_bench_compare_share_their_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    fastce_bench = capsys.readouterr().out
    root = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )
    compare = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert fastce_bench.startswith("usage: fastce bench")
    assert compare.startswith("usage: python -m bench.compare")
    options = _options(fastce_bench)
    assert options == _options(compare)
    for option in ["--plot", "--json", "--settle", "--workloads", "--peers", "--scale"]:
        assert option in options
    # Everything after the usage lines is the same text.
    assert fastce_bench.split("\n\n", 1)[1] == compare.split("\n\n", 1)[1]
    assert "goal" not in fastce_bench.lower()


def test_bad_peer_name_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as info:
        benchmark.main(["--workloads", "W7", "--peers", "torch,tensorflow"])
    assert info.value.code == 2
    assert "unknown peer(s) tensorflow" in capsys.readouterr().err


def test_w1e_and_w1f_shapes_follow_scale():
    w1e, w1f = benchmark.WORKLOADS["W1e"], benchmark.WORKLOADS["W1f"]
    assert benchmark.workload_shape(w1e, 1.0) == [64, 1000, 512]
    assert benchmark.workload_shape(w1e, 0.01) == [64, 1000, 5]  # d scaled, not N
    assert benchmark.workload_shape(w1f, 1.0) == [10_000_000, 2]
    assert benchmark.workload_shape(w1f, 0.001) == [10_000, 2]
    d = benchmark.make_inputs(w1e, 0.01, seed=0)
    assert d["x"].shape == (64, 1000, 5) and d["x"].dtype == np.float32
    assert d["y"].shape == (64, 5) and d["y"].dtype == np.int64
    assert d["y"].min() >= 0 and d["y"].max() < 1000
    d = benchmark.make_inputs(w1f, 0.001, seed=0)
    assert d["x"].shape == (10_000, 2) and d["x"].dtype == np.float32 and d["y"].shape == (10_000,)


def test_adding_workloads_keeps_the_inputs_of_the_others():
    # W2 drew from stream 4 before W1e and W1f were added between W1d and W2.
    rng = np.random.default_rng([3, 4])
    expected = benchmark.WORKLOADS["W2"].make(rng, 1000)
    got = benchmark.make_inputs(benchmark.WORKLOADS["W2"], 0.001, seed=3)
    np.testing.assert_array_equal(got["p"], expected["p"])


def test_w1e_and_w1f_agree_with_the_peers(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--workloads", "W1e,W1f", "--scale", "0.002", "--repeat", "1", "--warmup", "1"]
    argv += ["--settle", "0", "--peers", UNCOMPILED, "--json", str(out)]
    assert benchmark.main(argv) == 0
    w1e, w1f = _load(out)["workloads"]
    assert w1e["shape"] == [64, 1000, 1] and w1f["shape"] == [20_000, 2]
    for w in (w1e, w1f):
        fast, *peers = w["results"]
        assert fast["library"] == "fastce" and math.isfinite(fast["value"])
        assert "numpy" in {p["library"] for p in peers if "value" in p}
        for peer in peers:
            if "skipped" in peer:
                continue
            assert peer["agrees"], (w["name"], peer)
        assert w["fastest_peer"] is not None


def test_w1e_is_pytorchs_n_c_d_cross_entropy():
    torch = pytest.importorskip("torch")
    w1e = benchmark.WORKLOADS["W1e"]
    d = benchmark.make_inputs(w1e, 0.004, seed=0)
    fast = next(i for i in w1e.impls if i.library == "fastce").build(d)
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(d["x"]).double(), torch.from_numpy(d["y"])
    ).item()
    assert fast() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("name", "dtype"), [("W1a", "float32"), ("W1d", "float64")])
def test_jax_peer_keeps_the_input_dtype(name, dtype):
    pytest.importorskip("jax")
    workload = benchmark.WORKLOADS[name]
    d = benchmark.make_inputs(workload, 0.0001, seed=0)
    impl = next(i for i in workload.impls if i.library == "jax")
    assert impl.compiles
    call = impl.build(d)
    assert call is not None
    result = call()
    assert str(result.dtype) == dtype  # float64 enabled, float32 not promoted
    fast = next(i for i in workload.impls if i.library == "fastce").build(d)
    assert float(result) == pytest.approx(float(fast()), rel=benchmark.RTOL[dtype])


def test_jax_peers_are_timed_after_their_compile(tmp_path, capsys):
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    argv = ["--workloads", "W1e,W2,W3,W4,W5a,W5b,W7", "--scale", "0.001", "--repeat", "1"]
    argv += ["--warmup", "1", "--settle", "0", "--peers", "jax", "--json", str(out)]
    assert benchmark.main(argv) == 0
    text = capsys.readouterr().out
    assert "intra_op_parallelism_threads" in text or "jax imported before" in text
    for w in _load(out)["workloads"]:
        fast, jax_peer = w["results"]
        assert jax_peer["library"] == "jax", w["name"]
        assert "error" not in jax_peer, jax_peer
        assert jax_peer["agrees"], (w["name"], jax_peer["value"], fast["value"])
        assert jax_peer["compile_s"] > 0 and "compile_s" not in fast
        assert w["fastest_peer"]["library"] == "jax"


@pytest.mark.slow
def test_torch_compile_peers_agree_on_every_workload(tmp_path, capsys):
    # torch.compile's first compile in a process takes 10-30 s (Inductor, a C++ compiler).
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["--scale", "0.001", "--repeat", "1", "--warmup", "1", "--settle", "0"]
    argv += ["--peers", "torch,torch.compile", "--json", str(out)]
    assert benchmark.main(argv) == 0
    text = capsys.readouterr().out
    for w in _load(out)["workloads"]:
        compiled = [r for r in w["results"] if r["library"] == "torch.compile"]
        if w["name"] == "W6":  # log_loss's drop-in: no torch peer
            assert compiled == []
            continue
        [peer] = compiled
        assert "error" not in peer, (w["name"], peer)
        assert peer["agrees"], (w["name"], peer)
        assert peer["compile_s"] > 0
        eager = next(r for r in w["results"] if r["library"] == "torch")
        best = min([peer, eager], key=lambda r: r["median_s"])
        assert w["fastest_peer"]["implementation"] == best["implementation"]
    assert "torch.compile F.cross_entropy" in text and "compile" in text
