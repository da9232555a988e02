"""The two ways of running fastce's kernels in parallel, side by side on W1a and W5b.

* ``pool`` (what fastce does): the kernel is a serial ``@njit(nogil=True)`` function; the
  launcher (``fastce._launch``) calls it once per chunk of rows, on views of the chunk's rows
  and of its accumulator and counters, from a pool of Python threads (the caller works too).
* ``prange``: a ``parallel=True`` function whose ``prange`` over the same chunks calls the same
  serial kernel on each (as fastce did up to 0.4, with the chunk loop inside the kernel): one
  call, Numba's threading layer running the chunks, handed out one at a time
  (``numba.set_parallel_chunksize(1)``).

Both take the same chunks and the per-row arithmetic is the same source, so the exact sums must
be the same bits (checked before timing). Cold compile times are measured in fresh processes,
each with an empty ``NUMBA_CACHE_DIR``.

    python -m bench.parallel_designs              # speed of both designs, one process
    python -m bench.parallel_designs --compile    # and cold compile times (fresh processes)
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from functools import partial
from typing import Any

import numpy as np


def prange_variant(kernel: Any, axis: int = 0) -> Any:
    """A ``parallel=True`` function with ``kernel``'s arguments whose ``prange`` over the
    chunks (``counts.shape[0]`` of them) calls the serial ``kernel`` on each chunk's part of
    its two operands (ranges along ``axis``: rows, or the columns of a (1, N) view) with the
    chunk's accumulator, count and flag. The arguments between must not be per row (the
    benchmark passes no weights and no output)."""
    import numba

    names = list(inspect.signature(kernel.py_func).parameters)
    ops, middle = names[:2], names[2:-3]
    cut = "[lo:hi]" if axis == 0 else "[:, lo:hi]"
    source = textwrap.dedent(
        f"""
        def chunked({", ".join(names)}):
            nchunks = counts.shape[0]
            n = {ops[0]}.shape[{axis}]
            size = (n + nchunks - 1) // nchunks
            for k in numba.prange(nchunks):
                lo = min(n, k * size)
                hi = min(n, lo + size)
                kernel({ops[0]}{cut}, {ops[1]}{cut}, {", ".join(middle)}, acc[k : k + 1],
                       counts[k : k + 1], bad[k : k + 1])
        """
    )
    namespace = {"numba": numba, "kernel": kernel}
    exec(compile(source, f"<prange {kernel.py_func.__name__}>", "exec"), namespace)
    return numba.njit(parallel=True, error_model="numpy")(namespace["chunked"])


def run_prange(kernel: Any, args: tuple[Any, ...]) -> None:
    import numba

    previous = numba.set_parallel_chunksize(1)
    try:
        kernel(*args)
    finally:
        numba.set_parallel_chunksize(previous)


def _buffers(nchunks: int) -> Any:
    from fastce._launch import Buffers

    return Buffers.new(nchunks, True)


def _fold(b: Any) -> float:
    from fastce._kernels._common import fold_chunks

    return float(fold_chunks(b.acc)[0])


def nll(x: np.ndarray, y: np.ndarray, nchunks: int, prange: Any = None) -> float:
    from fastce import _launch
    from fastce._kernels.nll import HOT

    nll_kernel = HOT["logits"]

    empty, no_out = np.empty(0), np.empty(0, x.dtype)
    fixed = (0.0, empty, 0.0, False, -100, 1.0)
    if prange is not None:
        b = _buffers(nchunks)
        run_prange(prange, (x, y, *fixed, empty, no_out, b.acc, b.counts, b.bad))
    else:
        b = _buffers(_launch.slots(nchunks))
        _launch.call_rows(
            nll_kernel,
            x.shape[0],
            nchunks,
            lambda r, slot: (x[r], y[r], *fixed, empty, no_out, *b.slot(slot)),
        )
    return _fold(b)


def bce(t: np.ndarray, x: np.ndarray, nchunks: int, prange: Any = None) -> float:
    from fastce import _launch
    from fastce._kernels.binary import KERNELS

    empty2, no_out = np.empty((0, 0)), np.empty((0, 0), x.dtype)
    fixed = (True, 0.0, 1.0, empty2, empty2, no_out)
    if prange is not None:
        b = _buffers(nchunks)
        run_prange(prange, (t, x, *fixed, b.acc, b.counts, b.bad))
    else:
        boxes = _launch.boxes(x.shape[0], x.shape[1], nchunks)
        n_slots = _launch.slots(len(boxes))
        b = _buffers(n_slots)

        def box(s: Any, slot: int) -> None:
            KERNELS["logits"](t[s], x[s], *fixed, *b.slot(slot))

        _launch.run_tasks([partial(box, s) for s in boxes], n_slots)
    return _fold(b)


def _median_ms(fn: Any, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def w1a(scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = max(64, int(1_000_000 * scale))
    return rng.standard_normal((n, 100), dtype=np.float32), rng.integers(0, 100, n)


def w5b(scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n = max(64, int(10_000_000 * scale))
    x = rng.standard_normal((1, n), dtype=np.float32)
    return (rng.random((1, n)) < 0.5).astype(np.float32), x


def _alternate(pool: Any, prange: Any, rounds: int) -> list[dict[str, float]]:
    return [{"pool_ms": _median_ms(pool), "prange_ms": _median_ms(prange)} for _ in range(rounds)]


def _time_w1a(scale: float, nchunks: int, rounds: int) -> list[dict[str, float]]:
    from fastce._kernels.nll import HOT

    nll_kernel = HOT["logits"]

    x, y = w1a(scale)
    par = prange_variant(nll_kernel)
    assert nll(x, y, nchunks) == nll(x, y, nchunks, par)
    return _alternate(lambda: nll(x, y, nchunks), lambda: nll(x, y, nchunks, par), rounds)


def _time_w5b(scale: float, nchunks: int, rounds: int) -> list[dict[str, float]]:
    from fastce._kernels.binary import KERNELS

    t, x = w5b(scale)
    par = prange_variant(KERNELS["logits"], axis=1)
    assert bce(t, x, nchunks) == bce(t, x, nchunks, par)
    return _alternate(lambda: bce(t, x, nchunks), lambda: bce(t, x, nchunks, par), rounds)


def speed(scale: float, rounds: int) -> dict[str, Any]:
    import numba

    nchunks = 8 * numba.get_num_threads()
    return {
        "threads": numba.get_num_threads(),
        "nchunks": nchunks,
        "W1a": _time_w1a(scale, nchunks, rounds),
        "W5b": _time_w5b(scale, nchunks, rounds),
    }


def _child(which: str, design: str) -> float:
    """Seconds to the first result of a 2-chunk call (compiling everything it needs)."""
    from fastce._kernels.binary import KERNELS
    from fastce._kernels.nll import HOT

    nll_kernel = HOT["logits"]

    t0 = time.perf_counter()
    if which == "nll":
        x, y = w1a(0.0)
        nll(x, y, 2, prange_variant(nll_kernel) if design == "prange" else None)
    else:
        t, x = w5b(0.0)
        bce(t, x, 2, prange_variant(KERNELS["logits"], axis=1) if design == "prange" else None)
    return time.perf_counter() - t0


def compile_times() -> dict[str, float]:
    out = {}
    for which in ("nll", "bce"):
        for design in ("prange", "pool"):
            with tempfile.TemporaryDirectory() as cache:
                done = subprocess.run(
                    [sys.executable, "-m", "bench.parallel_designs", "--child", which, design],
                    env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                out[f"{which}_{design}_s"] = float(done.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of timing")
    parser.add_argument("--compile", action="store_true", help="also cold compile times")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(_child(*args.child))
        return
    results = speed(args.scale, args.rounds)
    if args.compile:
        results["compile"] = compile_times()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
