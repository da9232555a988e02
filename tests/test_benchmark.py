"""The side-by-side benchmark (fastce.benchmark, ``fastce bench``, ``python -m bench.compare``):
it runs, writes the JSON it promises, and every installed peer agrees with fastce."""

import json
import math

import numpy as np
import pytest

from fastce import benchmark, cli


def _load(path):
    return json.loads(path.read_text())


def test_w7_writes_the_json_structure(tmp_path):
    out = tmp_path / "bench.json"
    assert (
        benchmark.main(["--workloads", "W7", "--repeat", "2", "--settle", "0", "--json", str(out)])
        == 0
    )
    results = _load(out)
    assert set(results) >= {"settings", "machine", "bandwidth", "workloads"}
    machine = results["machine"]
    for key in ["cpu", "cores", "numba_threads", "versions"]:
        assert key in machine
    for dist in ["numpy", "numba", "torch", "scipy", "scikit-learn"]:
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
        benchmark.main(["--workloads", "W9"])
    assert info.value.code == 2
    assert "unknown workload(s) W9" in capsys.readouterr().err


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
