"""What the exact accumulator costs: the same kernels with and without it, in one run.

* W1a (cross-entropy from 1,000,000 x 100 float32 logits) and W5a (binary cross-entropy of
  10,000,000 float64 probabilities) with ``reduction="mean"`` (per-sample values go into the
  superaccumulator) against ``reduction="none"`` into a preallocated ``out`` (no accumulator,
  no page faults): the difference is the accumulator's share of the call.
* The superaccumulator alone: ``fastce._kernels.exactsum.sum_exact`` over 10,000,000 float64
  values spanning 1e-300 .. 1e300 with mixed signs, against ``math.fsum`` and ``np.sum``.

Median of 7 calls after a warm-up; the machine is shared, so compare numbers from one run.

Usage: python bench/accumulator_cost.py
"""

from __future__ import annotations

import math
import statistics
import time

import numba
import numpy as np

import fastce
from fastce._kernels.exactsum import sum_exact


def median_time(f, repeat=7):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"Numba threads: {numba.get_num_threads()}")
    x = rng.normal(size=(1_000_000, 100)).astype(np.float32)
    y = rng.integers(0, 100, 1_000_000)
    out32 = np.empty(1_000_000, np.float32)
    p = rng.random(10_000_000)
    t = (rng.random(10_000_000) < 0.5).astype(np.float64)
    out64 = np.empty(10_000_000)
    rows = [
        (
            "W1a cross_entropy",
            lambda: fastce.cross_entropy(y, x, from_logits=True, out=out32),
            lambda: fastce.cross_entropy(y, x, from_logits=True, reduction="mean"),
        ),
        (
            "W5a binary_cross_entropy",
            lambda: fastce.binary_cross_entropy(t, p, out=out64),
            lambda: fastce.binary_cross_entropy(t, p, reduction="mean"),
        ),
    ]
    print(f"{'workload':<26} {'none, out=':>12} {'mean (exact)':>13} {'accumulator share':>18}")
    for name, plain, exact in rows:
        a, b = median_time(plain), median_time(exact)
        print(f"{name:<26} {a * 1e3:10.1f} ms {b * 1e3:11.1f} ms {(b - a) / b:17.1%}")

    signs = np.where(rng.random(10_000_000) < 0.5, -1.0, 1.0)
    values = signs * 10.0 ** rng.uniform(-300, 300, 10_000_000)
    exact = median_time(lambda: sum_exact(values))
    fsum = median_time(lambda: math.fsum(values), repeat=3)
    naive = median_time(lambda: np.sum(values))
    assert sum_exact(values) == math.fsum(values)
    print(
        f"\nsuperaccumulator over 10,000,000 values (1e-300 .. 1e300, mixed signs): "
        f"{exact * 1e3:.1f} ms ({exact / 1e7 * 1e9:.2f} ns/value on {numba.get_num_threads()} "
        f"threads); math.fsum {fsum * 1e3:.0f} ms; np.sum (inexact) {naive * 1e3:.1f} ms; "
        "equal to math.fsum: yes"
    )


if __name__ == "__main__":
    main()
