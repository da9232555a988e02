"""How far the arithmetic-bound kernels are from the throughput of their vectorised functions.

For each workload whose kernel reads well under the machine's memory bandwidth, on one thread:

* the kernel: fastce's call from ``python -m bench.compare`` on the same inputs (the workload's
  ``reduction="mean"``), ns per input element, median of ``--repeat`` calls after a warm-up;
* the functions alone: the exp/log/log1p the kernel takes per element, each in a map loop
  ``buf[k] = f(row[k])`` over an L1-resident row of 2,048 values in the kernel's argument range,
  compiled as the kernels are (the 512-bit vector preference fastce gives its own functions),
  ns per value, median of ``--repeat``;
* their ratio: the share of the kernel's time its transcendental functions would take alone.
  The rest is the kernel's other work (the copy and max of a row, the sums, the corrections,
  the exact accumulator, the label checks, the stream from memory).

Run it on an otherwise idle machine, one thread::

    NUMBA_NUM_THREADS=1 taskset -c 1 python -m bench.arith_bound [--repeat 7] [--scale 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from fastce._kernels import vmath
from fastce.benchmark import WORKLOADS

# Functions compiled in a module whose name is inside ``fastce._kernels`` get the kernels'
# "prefer-vector-width" attribute (fastce/_kernels/_simd.py); without it LLVM picks ymm on
# Intel cores with AVX-512 and a map loop measures ~1.6x slower than inside a kernel.
_PROBE_MODULE = "fastce._kernels._bench_probe"

_MAP_SOURCE = """
def map_loop(row, buf, reps):
    for _ in range(reps):
        for k in range(row.shape[0]):
            buf[k] = fn(row[k])
    return buf[0]
"""


def _map_loop(fn: Any) -> Callable[..., Any]:
    # Numba names a function after the module that inspect.getmodule finds for it.
    sys.modules.setdefault(_PROBE_MODULE, types.ModuleType(_PROBE_MODULE))
    namespace: dict[str, Any] = {"__name__": _PROBE_MODULE, "fn": fn}
    exec(_MAP_SOURCE, namespace)  # a fixed source, compiled in the probe module
    return numba.njit(namespace["map_loop"])


ROW = 2048
REPS = 2000

# (function, dtype, argument range): what each kernel evaluates per element.
FUNCTIONS: dict[str, tuple[Any, Any, tuple[float, float]]] = {
    "exp64_lite": (vmath.exp64_lite, np.float64, (-12.0, 0.0)),
    "exp64_fma": (vmath.exp64_fma, np.float64, (-12.0, 0.0)),
    "log64_fma": (vmath.log64_fma, np.float64, (1e-4, 1.0)),
    "exp32_fma": (vmath.exp32_fma, np.float32, (-8.0, 0.0)),
    "log1p32_fma": (vmath.log1p32_fma, np.float32, (0.0, 1.0)),
}

# Workload: (what the kernel takes per element, functions per element).
KERNELS: dict[str, tuple[str, list[str]]] = {
    "W1a": ("one float64 exp per class (float32 rows)", ["exp64_lite"]),
    "W1d": ("one float64 exp per class", ["exp64_fma"]),
    "W3": ("one log per element", ["log64_fma"]),
    "W5a": ("one log per element (0/1 labels)", ["log64_fma"]),
    "W5b": ("one exp and one log1p per element", ["exp32_fma", "log1p32_fma"]),
}


def _median_time(call: Callable[[], Any], repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def function_ns(name: str, repeat: int) -> float:
    fn, dtype, (lo, hi) = FUNCTIONS[name]
    row = np.random.default_rng(3).uniform(lo, hi, ROW).astype(dtype)
    buf = np.empty_like(row)
    loop = _map_loop(fn)
    loop(row, buf, 1)
    return _median_time(lambda: loop(row, buf, REPS), repeat) / (REPS * ROW) * 1e9


def kernel_ns(name: str, repeat: int, scale: float) -> float:
    workload = WORKLOADS[name]
    rows = max(1, int(workload.rows * scale))
    inputs = workload.make(np.random.default_rng(0), rows)
    call = workload.impls[0].build(inputs)
    assert call is not None
    elements = rows * (workload.cols or 1)
    return _median_time(call, repeat) / elements * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.arith_bound", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.2, help="fraction of each workload's N")
    args = parser.parse_args(argv)
    threads = numba.get_num_threads()
    print(f"Numba threads: {threads} (run with NUMBA_NUM_THREADS=1 for per-thread figures)")
    alone = {name: function_ns(name, args.repeat) for name in FUNCTIONS}
    print(f"\n{'function (map loop, L1, zmm)':<30}{'ns/value':>10}")
    for name, ns in alone.items():
        print(f"{name:<30}{ns:>10.3f}")
    print(f"\n{'workload':<9}{'kernel ns/elem':>15}{'functions ns':>14}{'share':>8}  per element")
    for name, (what, needs) in KERNELS.items():
        ns = kernel_ns(name, args.repeat, args.scale)
        functions = sum(alone[f] for f in needs)
        print(f"{name:<9}{ns:>15.3f}{functions:>14.3f}{functions / ns:>8.0%}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
