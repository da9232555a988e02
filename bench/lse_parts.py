"""Where the time of a float64 log-sum-exp row goes (cross-entropy from float64 logits, W1d).

Times ``lse_block`` on 1,000 rows of 100 float64 logits (in cache), one thread, next to loops
that run its parts cumulatively, in the order the block runs them:

  copy        the copy into the padded buffer with the maximum and its first position
  + exp       ... and one plain ``exp(x - m)`` per padded entry
  + exp_diff  ... with the rounding error of ``x - m`` put back (what the block does)
  + sum       ... and the compensated 8-lane sum (the block: all of it, inlined)
  lse_block   the block function itself, called once per row as the kernels call it

Each loop is compiled as the kernels are (fastce's 512-bit vector preference). ns per row,
median of ``--repeat``. Run on an idle machine::

    NUMBA_NUM_THREADS=1 taskset -c 1 python -m bench.lse_parts
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from typing import Any

import numba
import numpy as np

from fastce._kernels import _math
from fastce._kernels.logsumexp import lse_block

_PROBE_MODULE = "fastce._kernels._bench_probe"  # see bench/arith_bound.py

_SOURCE = """
def copy(x, buf, reps):
    acc = 0.0
    for _ in range(reps):
        for i in range(x.shape[0]):
            m, j = copy_max_index(x[i], buf)
            acc += m + j
    return acc

def plus_exp(x, buf, reps):
    acc = 0.0
    n = x.shape[1]
    n16 = (n + 15) & ~15
    for _ in range(reps):
        for i in range(x.shape[0]):
            m, j = copy_max_index(x[i], buf)
            p = buf[:n16]
            if j < n:
                p[j] = -np.inf
            for k in range(n16):
                p[k] = exp64(p[k] - m)
            acc += p[3]
    return acc

def plus_exp_diff(x, buf, reps):
    acc = 0.0
    n = x.shape[1]
    n16 = (n + 15) & ~15
    for _ in range(reps):
        for i in range(x.shape[0]):
            m, j = copy_max_index(x[i], buf)
            p = buf[:n16]
            if j < n:
                p[j] = -np.inf
            for k in range(n16):
                p[k] = exp_diff(p[k], m)
            acc += p[3]
    return acc

def plus_sum(x, buf, reps):
    acc = 0.0
    n = x.shape[1]
    n16 = (n + 15) & ~15
    for _ in range(reps):
        for i in range(x.shape[0]):
            m, j = copy_max_index(x[i], buf)
            p = buf[:n16]
            if j < n:
                p[j] = -np.inf
            for k in range(n16):
                p[k] = exp_diff(p[k], m)
            acc += block_sum(p, n16, False, 0)
    return acc

def block(x, buf, reps):
    acc = 0.0
    for _ in range(reps):
        for i in range(x.shape[0]):
            m, s = lse_block(x[i], buf)
            acc += s
    return acc
"""

PARTS = [
    ("copy", "copy, max and its position"),
    ("plus_exp", "+ exp(x - m)"),
    ("plus_exp_diff", "+ exp_diff (the block's exps)"),
    ("plus_sum", "+ compensated sum (inlined)"),
    ("block", "lse_block, one call per row"),
]


def loops() -> dict[str, Any]:
    sys.modules.setdefault(_PROBE_MODULE, types.ModuleType(_PROBE_MODULE))
    namespace: dict[str, Any] = {
        "__name__": _PROBE_MODULE,
        "np": np,
        "copy_max_index": _math.copy_max_index,
        "exp64": _math.exp64,
        "exp_diff": _math.exp_diff,
        "block_sum": _math.block_sum,
        "lse_block": lse_block,
    }
    exec(_SOURCE, namespace)  # a fixed source, compiled in the probe module
    return {name: numba.njit(namespace[name]) for name, _ in PARTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lse_parts", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--classes", type=int, default=100)
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((1000, args.classes)) * 2
    buf = np.empty(((args.classes + 15) & ~15) + 16)
    compiled = loops()
    for f in compiled.values():
        f(x, buf, 1)
    reps = 50
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(args.repeat):  # interleaved, so that the host's noise spreads evenly
        for name, f in compiled.items():
            t0 = time.perf_counter()
            f(x, buf, reps)
            times[name].append((time.perf_counter() - t0) / (reps * x.shape[0]) * 1e9)
    threads = numba.get_num_threads()
    print(f"{x.shape[0]} rows of {args.classes} float64 classes, {threads} thread(s)")
    for name, label in PARTS:
        print(f"{label:<34}{statistics.median(times[name]):8.1f} ns per row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
