"""Time the exact summation kernel against np.sum and math.fsum.

Run as ``python bench/bench_exactsum.py [n_values]`` from the repository root. Prints the median of
5 timed runs (after one warm-up run) in nanoseconds per value, for 1 and 2 Numba threads, on
uniform values in [0, 1) and on values spanning about 1e-300 .. 1e300 with mixed signs. np.sum and
math.fsum do not use Numba's threads; they are timed once per input. Also prints the fixed costs
that matter for small inputs: ``acc_value`` alone and ``sum_exact`` on 100 values. And one
thread adding every value with ``acc_add`` against ``acc_add_block`` (1,024 values per call,
what binary cross-entropy does): the wide-range input takes its one-at-a-time path.
"""

import math
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

try:
    from fastce._kernels import exactsum
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fastce._kernels import exactsum

REPEATS = 5


def median_seconds(fn, *args, repeats=REPEATS):
    fn(*args)  # warm-up (and compilation, or loading from Numba's cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call_microseconds(fn, *args, calls=20_000):
    fn(*args)
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - start) / calls * 1e6


@numba.njit
def _serial_one_at_a_time(values):
    acc = np.zeros(exactsum.ACC_LEN, np.int64)
    exactsum.acc_add_array(acc, values)
    return exactsum.acc_value(acc)


@numba.njit
def _serial_blocks(values):
    acc = np.zeros(exactsum.ACC_LEN, np.int64)
    n = values.shape[0]
    for t in range(0, n, exactsum.BLOCK):
        exactsum.acc_add_block(acc, values[t:], min(exactsum.BLOCK, n - t))
    return exactsum.acc_value(acc)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    rng = np.random.default_rng(0)
    inputs = {
        "uniform [0, 1)": rng.random(n),
        "wide range, mixed signs": (
            rng.choice([-1.0, 1.0], n) * rng.random(n) * 10.0 ** rng.uniform(-300, 300, n)
        ),
    }
    max_threads = numba.config.NUMBA_NUM_THREADS
    thread_counts = sorted({1, min(2, max_threads)})
    print(f"n = {n:,} float64 values; median of {REPEATS} runs; ns per value")
    print(f"numba {numba.__version__}, numpy {np.__version__}, threading layer: ", end="")
    exactsum.sum_exact(np.ones(exactsum._MIN_CHUNK * 2))  # starts the thread pool
    print(numba.threading_layer())

    for name, values in inputs.items():
        print(f"\n{name}")
        exact = None
        for threads in thread_counts:
            numba.set_num_threads(threads)
            seconds = median_seconds(exactsum.sum_exact, values)
            result = exactsum.sum_exact(values)
            assert exact is None or result == exact, "thread count changed the result"
            exact = result
            print(f"  sum_exact  {threads} thread(s): {seconds / n * 1e9:7.2f} ns")
        one = _serial_one_at_a_time(values)
        blocks = _serial_blocks(values)
        assert one == blocks == exact, "acc_add_block changed the result"
        for label, fn in (("acc_add", _serial_one_at_a_time), ("acc_add_block", _serial_blocks)):
            seconds = median_seconds(fn, values)
            print(f"  {label:<13} serial      : {seconds / n * 1e9:7.2f} ns")
        numba.set_num_threads(max_threads)
        seconds = median_seconds(np.sum, values)
        print(f"  np.sum                   : {seconds / n * 1e9:7.2f} ns")
        seconds = median_seconds(math.fsum, values, repeats=3)
        fsum = math.fsum(values)
        print(f"  math.fsum (median of 3)  : {seconds / n * 1e9:7.2f} ns")
        print(f"  sum_exact == math.fsum: {exact == fsum} ({exact!r})")

    acc = np.zeros(exactsum.ACC_LEN, np.int64)
    exactsum.acc_add_array(acc, inputs["wide range, mixed signs"][:1000])
    small = inputs["uniform [0, 1)"][:100]
    fixed = {
        "acc_value, 1000 wide-range values": per_call_microseconds(exactsum.acc_value, acc),
        "sum_exact on 100 values": per_call_microseconds(exactsum.sum_exact, small),
        "np.sum on 100 values": per_call_microseconds(np.sum, small),
    }
    print("\nfixed costs per call")
    for label, microseconds in fixed.items():
        print(f"  {label:34s}: {microseconds:6.2f} us")


if __name__ == "__main__":
    main()
