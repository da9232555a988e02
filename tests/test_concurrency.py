"""Concurrency, processes and memory: every public function from many threads at once, in
forked children, on every Numba threading layer, and without leaks. The results are the same
bits on every path: parallel kernel or serial twin, with or without the launch lock, in the
parent or in a forked child, under omp, workqueue or tbb.

Some tests run this module as a script in a subprocess (``python -m tests.test_concurrency``),
to choose the threading layer (``NUMBA_THREADING_LAYER``) before Numba starts its pool.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytest

import fastce
from fastce import _threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_THREADS = 8
# A forked child or a subprocess that takes longer than this is hung or dead.
TIMEOUT_S = 300

# Forking a process that runs threads (Numba's pool) is what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")


# --- the cases ----------------------------------------------------------------------------------


def _inputs(n: int, c: int, dtype: type, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    p = rng.random((n, c)) + 0.05
    p /= p.sum(axis=1, keepdims=True)
    q = rng.random((n, c)) + 0.05
    q /= q.sum(axis=1, keepdims=True)
    return {
        "logits": logits,
        "p": p.astype(dtype),
        "q": q.astype(dtype),
        "labels": rng.integers(0, c, n),
        "weights": rng.random(n) + 0.5,
        "bits": (rng.random((n, c)) < 0.3).astype(dtype),
        "prob": rng.uniform(0.01, 0.99, (n, c)).astype(dtype),
    }


# Over 65,536 values a call takes the parallel kernels (2048 x 64 = 131,072); the small inputs
# take the serial twins; a few long rows take the column-split kernels.
SIZES = {
    "large64": (2048, 64, np.float64),
    "large32": (2048, 64, np.float32),
    "small": (16, 8, np.float64),
    "long": (3, 50_000, np.float64),
}
INPUTS = {
    name: _inputs(n, c, dtype, seed) for seed, (name, (n, c, dtype)) in enumerate(SIZES.items())
}


def _accumulate(d: dict[str, Any]) -> tuple[float, ...]:
    acc = fastce.Accumulator("cross_entropy", from_logits=True)
    other = fastce.Accumulator("cross_entropy", from_logits=True)
    n = d["labels"].shape[0]
    half = n // 2
    acc.update(d["labels"][:half], d["logits"][:half], sample_weight=d["weights"][:half])
    other.update(d["labels"][half:], d["logits"][half:], sample_weight=d["weights"][half:])
    result = acc.merge(other).result()
    return (result.mean, result.sum, float(result.count), result.weight)


FUNCTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "entropy": lambda d: fastce.entropy(d["p"]),
    "entropy_logits_mean": lambda d: fastce.entropy(
        d["logits"], from_logits=True, reduction="mean", sample_weight=d["weights"]
    ),
    "cross_entropy_labels": lambda d: fastce.cross_entropy(
        d["labels"], d["logits"], from_logits=True, reduction="mean"
    ),
    "cross_entropy_labels_none": lambda d: fastce.cross_entropy(d["labels"], d["p"]),
    "cross_entropy_soft": lambda d: fastce.cross_entropy(d["q"], d["p"], reduction="sum"),
    "cross_entropy_soft_none": lambda d: fastce.cross_entropy(
        d["q"], d["logits"], from_logits=True
    ),
    "binary_cross_entropy": lambda d: fastce.binary_cross_entropy(
        d["bits"], d["prob"], reduction="mean"
    ),
    "binary_cross_entropy_logits": lambda d: fastce.binary_cross_entropy(
        d["bits"], d["logits"], from_logits=True
    ),
    "kl_divergence": lambda d: fastce.kl_divergence(d["p"], d["q"], reduction="mean"),
    "kl_divergence_none": lambda d: fastce.kl_divergence(d["p"], d["q"]),
    "js_divergence": lambda d: fastce.js_divergence(d["p"], d["q"], reduction="sum"),
    "js_divergence_none": lambda d: fastce.js_divergence(d["p"], d["q"]),
    "perplexity": lambda d: fastce.perplexity(d["labels"], d["logits"], from_logits=True),
    "logsumexp": lambda d: fastce.logsumexp(d["logits"]),
    "log_softmax": lambda d: fastce.log_softmax(d["logits"]),
    "softmax": lambda d: fastce.softmax(d["logits"]),
    "log_loss": lambda d: fastce.log_loss(
        d["labels"], d["p"], labels=np.arange(d["p"].shape[1]), sample_weight=d["weights"]
    ),
    "accumulator_update_merge": _accumulate,
}

CASES = [(f"{fn}[{size}]", fn, size) for size in SIZES for fn in FUNCTIONS]


def _bits(result: Any) -> bytes:
    """The exact bits of a result, with its dtype and shape."""
    a = np.asarray(result)
    return f"{a.dtype.str}{a.shape}".encode() + a.tobytes()


def _run(key: str) -> bytes:
    _, fn, size = next(case for case in CASES if case[0] == key)
    return _bits(FUNCTIONS[fn](INPUTS[size]))


def _digests() -> dict[str, str]:
    """Every case computed once, in the calling thread: {case: sha256 of its bits}."""
    return {key: hashlib.sha256(_run(key)).hexdigest() for key, _, _ in CASES}


def _hammer(rounds: int, threads: int = N_THREADS) -> dict[str, Any]:
    """``threads`` Python threads, released together, each calling every case ``rounds`` times
    in its own shuffled order; every result compared with the one computed serially first."""
    expected = _digests()
    start = threading.Barrier(threads)

    def worker(seed: int) -> tuple[list[str], int]:
        order = [key for key, _, _ in CASES]
        shuffle = random.Random(seed)
        wrong, calls = [], 0
        start.wait()
        for _ in range(rounds):
            shuffle.shuffle(order)
            for key in order:
                if hashlib.sha256(_run(key)).hexdigest() != expected[key]:
                    wrong.append(key)
                calls += 1
        return wrong, calls

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(worker, range(threads)))
    return {
        "expected": expected,
        "wrong": sorted({key for wrong, _ in outcomes for key in wrong}),
        "calls": sum(calls for _, calls in outcomes),
    }


def _child_digests(conn: Any) -> None:
    conn.send({"digests": _digests(), "status": _threading.status()})
    conn.close()


def _in_forked_child() -> dict[str, Any]:
    """Every case computed in a child made with multiprocessing's fork start method."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_digests, args=(send,))
    child.start()
    send.close()
    try:
        if not receive.poll(TIMEOUT_S):
            child.kill()
            raise AssertionError(f"the forked child gave no result in {TIMEOUT_S} s")
        try:
            answer = receive.recv()
        except EOFError:
            child.join(TIMEOUT_S)
            raise AssertionError(
                f"the forked child died with exit code {child.exitcode}"
            ) from None
    finally:
        child.join(TIMEOUT_S)
        receive.close()
    assert child.exitcode == 0, child.exitcode
    return dict(answer)


def _subprocess(
    mode: str, *args: str, layer: str | None = None, timeout: float = TIMEOUT_S, **env: str
) -> dict[str, Any]:
    environ = {**os.environ, **env}
    environ.pop("NUMBA_THREADING_LAYER", None)
    if layer is not None:
        environ["NUMBA_THREADING_LAYER"] = layer
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_concurrency", mode, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _tbb_installed() -> bool:
    return _threading._tbb_library_path() is not None


needs_tbb = pytest.mark.skipif(
    not _tbb_installed(),
    reason="the tbb wheel is not installed (pip install '.[tbb]' from a checkout of fastce)",
)


# --- threads ------------------------------------------------------------------------------------


def test_cases_take_the_parallel_and_the_serial_paths():
    from fastce import _reduce

    assert _reduce.n_chunks(*SIZES["large64"][:2]) > 1 or numba.get_num_threads() == 1
    assert _reduce.n_chunks(*SIZES["small"][:2]) == 1


def test_threads_call_every_function_at_once():
    outcome = _hammer(rounds=2)
    assert outcome["wrong"] == []
    assert outcome["calls"] == N_THREADS * 2 * len(CASES)


@pytest.mark.slow
def test_threads_call_every_function_1000_times():
    # Each function 1,000 times per thread (250 rounds over the four sizes).
    outcome = _hammer(rounds=1000 // len(SIZES))
    assert outcome["wrong"] == []


def test_threads_share_one_accumulator():
    d = INPUTS["large64"]
    shared = fastce.Accumulator("cross_entropy", from_logits=True)
    batches = [slice(k, k + 256) for k in range(0, 2048, 256)]
    start = threading.Barrier(N_THREADS)

    def worker(_: int) -> None:
        start.wait()
        for s in batches:
            shared.update(d["labels"][s], d["logits"][s])

    with concurrent.futures.ThreadPoolExecutor(N_THREADS) as pool:
        list(pool.map(worker, range(N_THREADS)))
    serial = fastce.Accumulator("cross_entropy", from_logits=True)
    for _ in range(N_THREADS):
        serial.update(d["labels"], d["logits"])
    assert shared.result() == serial.result()
    assert shared.to_bytes() == serial.to_bytes()


def test_serial_twins_lock_and_thread_count_give_the_same_bits(monkeypatch):
    expected = _digests()
    # The serial twins of the parallel kernels, on the same chunks (a forked child's path).
    with monkeypatch.context() as m:
        m.setattr(_threading, "_serial_only", True)
        assert _digests() == expected
    # Every launch under the lock (the workqueue path).
    with monkeypatch.context() as m:
        m.setattr(_threading, "_layer", "workqueue")
        assert _threading.status()["lock"]
        assert _digests() == expected
    # One Numba thread: fewer chunks.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert _digests() == expected
    finally:
        numba.set_num_threads(threads)


def test_workqueue_layer_is_locked_instead_of_aborting():
    """Under workqueue, two parallel kernels at once abort the process; fastce takes turns."""
    here = _digests()
    there = _subprocess("threads", "2", layer="workqueue")
    assert there["layer"] == "workqueue"
    assert there["status"]["lock"] is True
    assert there["wrong"] == []
    assert there["expected"] == here


def test_omp_layer_runs_threads_without_a_lock():
    there = _subprocess("threads", "1", layer="omp")
    assert there["layer"] == "omp"
    assert there["status"]["lock"] is False
    assert there["wrong"] == []
    assert there["expected"] == _digests()


def _dask_threads() -> dict[str, Any]:
    """fastce.dask over blocks large enough for the parallel kernels, on Dask's threaded
    scheduler (several blocks at once), against the in-memory result."""
    import dask
    import dask.array as da

    import fastce.dask as fd

    d = _inputs(8192, 64, np.float64, 11)
    labels = da.from_array(d["labels"], chunks=2048)
    logits = da.from_array(d["logits"], chunks=(2048, 64))
    with dask.config.set(scheduler="threads", num_workers=4):
        lazy = [
            fd.cross_entropy(labels, logits, from_logits=True, reduction="mean"),
            fd.log_softmax(logits),
        ]
        got = dask.compute(*lazy)
    want = [
        fastce.cross_entropy(d["labels"], d["logits"], from_logits=True, reduction="mean"),
        fastce.log_softmax(d["logits"]),
    ]
    return {"same": [_bits(g) == _bits(w) for g, w in zip(got, want, strict=True)]}


def test_dask_threaded_scheduler_under_workqueue():
    pytest.importorskip("dask.array")
    there = _subprocess("dask", layer="workqueue")
    assert there["layer"] == "workqueue"
    assert there["same"] == [True, True]


@needs_tbb
def test_tbb_wheel_is_loaded_and_selected():
    there = _subprocess("threads", "1")
    assert there["layer"] == "tbb"
    assert there["status"]["tbb_preloaded"]
    assert there["wrong"] == []
    assert there["expected"] == _digests()
    # A layer the user names is left alone.
    omp = _subprocess("threads", "1", layer="omp")
    assert omp["layer"] == "omp"
    assert omp["status"]["tbb_preloaded"] is None


# --- processes ----------------------------------------------------------------------------------


def test_forked_child_computes_the_same_bits():
    """After parallel calls here (the pool has started), a forked child gets every result."""
    expected = _digests()
    answer = _in_forked_child()
    assert answer["digests"] == expected
    layer = _threading.active_layer()
    assert answer["status"]["serial_only"] is (not _threading.fork_safe(layer))


@pytest.mark.parametrize("layer", ["omp", "workqueue"])
def test_forked_child_under_each_layer(layer):
    there = _subprocess("fork", layer=layer)
    assert there["layer"] == layer
    assert there["child"]["digests"] == there["expected"] == _digests()
    # GNU OpenMP kills a forked child that enters a parallel kernel: serial twins there.
    assert there["child"]["status"]["serial_only"] is (layer == "omp")


@needs_tbb
def test_forked_child_under_tbb_stays_parallel():
    there = _subprocess("fork")
    assert there["layer"] == "tbb"
    assert there["child"]["digests"] == there["expected"] == _digests()
    assert there["child"]["status"]["serial_only"] is False


def test_fork_before_the_pool_starts_leaves_the_child_parallel():
    there = _subprocess("fork-first", layer="omp")
    assert there["child"]["status"]["serial_only"] is False
    assert there["child"]["digests"] == _digests()


# --- memory -------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


MEMORY_FUNCTIONS = {
    "cross_entropy": lambda d: fastce.cross_entropy(
        d["labels"], d["logits"], from_logits=True, reduction="mean"
    ),
    "kl_divergence": lambda d: fastce.kl_divergence(d["p"], d["q"]),
    "binary_cross_entropy": lambda d: fastce.binary_cross_entropy(
        d["bits"], d["prob"], reduction="sum"
    ),
    "log_softmax": lambda d: fastce.log_softmax(d["logits"]),
    "log_loss": lambda d: fastce.log_loss(d["labels"], d["p"], labels=np.arange(100)),
    "accumulator": lambda d: fastce.Accumulator("entropy").update(d["p"]).result(),
}


def _memory(calls: int) -> dict[str, Any]:
    """RSS and Numba's allocation counts after 100 calls and after ``calls`` calls of each
    function on a 10,000 x 100 input, the functions taking turns."""
    from numba.core.runtime import rtsys

    d = _inputs(10_000, 100, np.float64, 7)
    functions = list(MEMORY_FUNCTIONS.values())
    points = {}
    for done in range(1, calls + 1):
        for fn in functions:
            fn(d)
        if done in (100, calls):
            stats = rtsys.get_allocation_stats()
            points[done] = {"rss": _rss_bytes(), "live": stats.alloc - stats.free}
    return {"after_100": points[100], "after_all": points[calls], "calls": calls}


def _assert_no_leak(calls: int) -> None:
    # About 16 ms a round of the six functions here (2 cores); ample room for a busy machine.
    there = _subprocess("memory", str(calls), timeout=60 + calls * 0.2, NUMBA_NRT_STATS="1")
    grown = there["after_all"]["rss"] - there["after_100"]["rss"]
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB from 100 to {calls} calls"
    assert there["after_all"]["live"] == there["after_100"]["live"]


def test_no_leak_over_300_rounds():
    _assert_no_leak(300)


@pytest.mark.slow
def test_no_leak_over_10000_rounds():
    _assert_no_leak(10_000)


# --- the subprocess side ------------------------------------------------------------------------


def _main(argv: list[str]) -> dict[str, Any]:
    mode = argv[0]
    if mode == "threads":
        outcome = _hammer(rounds=int(argv[1]))
    elif mode == "fork":
        outcome = {"expected": _digests()}  # the pool has started
        outcome["child"] = _in_forked_child()
    elif mode == "fork-first":
        outcome = {"child": _in_forked_child()}  # before the pool started
    elif mode == "dask":
        outcome = _dask_threads()
    elif mode == "memory":
        outcome = _memory(int(argv[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    outcome["layer"] = _threading.active_layer()
    outcome["status"] = _threading.status()
    return outcome


if __name__ == "__main__":
    print(json.dumps(_main(sys.argv[1:])))
