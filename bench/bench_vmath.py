"""Throughput of fastce._kernels.vmath against NumPy and against Numba's libm calls.

Part 0, one row in L1: ns per element, one thread, for a row of 100 values that stays in L1,
the loop the kernels run (``buf[k] = f(row[k] - m)``, m the row maximum for exp) repeated
20,000 times, for every function.  Median of 7 runs, and the spread (max - min) / median,
which says how noisy the machine was.

Part 1, elementwise: each function over 10,000,000 values, as a Numba ``prange`` over blocks
of 4096 values (1 and 2 threads), and over the first 100,000 values only (1 thread: the data
stays in cache, so this is the arithmetic throughput); the same kernel with ``math.exp``/
``math.log``/... (Numba compiles those to scalar libm calls); and NumPy's ufunc
(single-threaded, SIMD for exp/log) writing into a preallocated output.  G values/s, median
of 5 runs after a warm-up.

Part 2, sum of exp per row (the inner loop of logsumexp / cross-entropy), 1,000,000 rows of 100
values, float32 and float64 input (exp32_fma/exp64_fma), float64 accumulation,
2 threads (prange over blocks of 256 rows):
  (a) fused:  s += exp(x[i, j]) in one loop, no fast-math flag;
  (b) buffer: the row's exps into a per-block buffer (a map, which vectorises), then a sum of
      the buffer with 8 explicit lanes combined in a fixed order, no fast-math flag;
  (c) fused with the flags {"reassoc", "contract", "arcp", "nsz", "afn"}: for reference only,
      it changes the bits (order of the sum) and the accuracy of exp (see the tests).

The machine is shared: check ``uptime`` first, and compare numbers taken in one run.

Usage: python bench/bench_vmath.py [--quick] [--row-only]
"""

import math
import pathlib
import statistics
import sys
import time

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
try:
    from vmath_asm import count  # bench/ is on sys.path when this script runs
except ImportError:  # python -m bench.bench_vmath
    from bench.vmath_asm import count

from fastce._kernels import vmath

FASTMATH_FLAGS = {"reassoc", "contract", "arcp", "nsz", "afn"}
BLOCK = 4096
ROW_BLOCK = 256
IN_CACHE = 100_000  # values: 0.8 MB of float64 in and out, stays in L2


def make_map(fn):
    @njit(parallel=True)
    def map_blocks(x, out):
        n = x.shape[0]
        for b in prange((n + BLOCK - 1) // BLOCK):
            # slicing the block first (rather than looping over a computed index range) lets
            # LLVM vectorise the inner loop without per-iteration bounds arithmetic: ~1.6x
            xb = x[b * BLOCK : min((b + 1) * BLOCK, n)]
            ob = out[b * BLOCK : min((b + 1) * BLOCK, n)]
            for i in range(xb.shape[0]):
                ob[i] = fn(xb[i])

    return map_blocks


@njit(inline="always")
def libm_exp(x):
    return math.exp(x)


@njit(inline="always")
def libm_log(x):
    return math.log(x)


@njit(inline="always")
def libm_log1p(x):
    return math.log1p(x)


def timeit(f, repeat=5):
    f()  # warm-up (and compilation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def elementwise(n, repeat):
    rng = np.random.default_rng(0)
    domains = {
        "exp": (-30.0, 10.0),
        "log": (1e-3, 100.0),
        "log1p": (-0.5, 100.0),
    }
    cases = [
        ("exp", np.float64, vmath.exp64_fma, libm_exp, np.exp),
        ("log", np.float64, vmath.log64_fma, libm_log, np.log),
        ("log1p", np.float64, vmath.log1p64_fma, libm_log1p, np.log1p),
        ("exp", np.float32, vmath.exp32_fma, libm_exp, np.exp),
        ("log1p", np.float32, vmath.log1p32_fma, libm_log1p, np.log1p),
    ]
    print(f"\nelementwise, {n:,} values, G values/s (median of {repeat})")
    print(
        f"{'function':<13}{'vmath 1T':>10}{'vmath 2T':>10}{'in-cache':>10}"
        f"{'libm 1T':>10}{'libm 2T':>10}{'numpy':>10}"
    )
    for fname, dtype, fast, slow, ufunc in cases:
        lo, hi = domains[fname]
        x = rng.uniform(lo, hi, n).astype(dtype)
        out = np.empty_like(x)
        # the libm kernels call expf/logf/log1pf for float32 input, exp/log/... for float64
        kernels = [(make_map(fast), (n, n, IN_CACHE)), (make_map(slow), (n, n))]
        row = []
        for kernel, sizes in kernels:
            for threads, size in zip((1, 2, 1), sizes, strict=False):
                numba.set_num_threads(threads)
                xs, outs = x[:size], out[:size]
                t = timeit(lambda k=kernel, xs=xs, outs=outs: k(xs, outs), repeat)
                row.append(size / t / 1e9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        row.append(n / timeit(lambda u=ufunc, x=x, out=out: u(x, out=out), repeat) / 1e9)
        label = fast.py_func.__name__
        print(f"{label:<13}" + "".join(f"{v:>10.2f}" for v in row))


ROW = 100  # values per row: a typical number of classes
ROW_REPS = 20_000


def make_row_loop(fn):
    @njit
    def row_loop(row, m, buf, reps):
        for _ in range(reps):
            for k in range(row.shape[0]):
                buf[k] = fn(row[k] - m)
        return buf[0]

    return row_loop


def row_in_cache(runs=7):
    """ns per element for one 100-value row in L1, one thread."""
    rng = np.random.default_rng(2)
    domains = {"exp": (-10.0, 10.0), "log": (1e-3, 100.0), "log1p": (-0.5, 100.0)}
    cases = [
        ("exp", np.float32, vmath.exp32_fma),
        ("log1p", np.float32, vmath.log1p32_fma),
        ("exp", np.float64, vmath.exp64_fma),
        ("exp", np.float64, vmath.exp64_lite),
        ("log", np.float64, vmath.log64_fma),
        ("log1p", np.float64, vmath.log1p64_fma),
    ]
    print(
        f"\none row of {ROW} values in L1, 1 thread, buf[k] = f(row[k] - m) x {ROW_REPS:,}: "
        f"ns per element, median of {runs} (spread = (max - min) / median)"
    )
    print(f"{'function':<13}{'ns':>8}{'spread':>8}")
    for fname, dtype, fn in cases:
        row = rng.uniform(*domains[fname], ROW).astype(dtype)
        m = row.max() if fname == "exp" else dtype(0.0)
        buf = np.empty_like(row)
        loop = make_row_loop(fn)
        loop(row, m, buf, 10)  # compile
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            loop(row, m, buf, ROW_REPS)
            times.append((time.perf_counter() - t0) / (ROW_REPS * ROW) * 1e9)
        med = statistics.median(times)
        print(f"{fn.py_func.__name__:<13}{med:>8.3f}{(max(times) - min(times)) / med:>8.1%}")


def make_sumexp_fused(exp, fastmath=False):
    @njit(parallel=True, fastmath=fastmath)
    def sumexp_fused(x, out):
        n, c = x.shape
        for b in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
            for i in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n)):
                s = 0.0
                for j in range(c):
                    s += np.float64(exp(x[i, j]))
                out[i] = s

    return sumexp_fused


def make_sumexp_buffer(exp):
    @njit(parallel=True)
    def sumexp_buffer(x, out):
        n, c = x.shape
        for b in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
            buf = np.empty(c, dtype=x.dtype)  # one small buffer per block of rows
            for i in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n)):
                for j in range(c):
                    buf[j] = exp(x[i, j])
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
                j = 0
                while j + 8 <= c:
                    s0 += np.float64(buf[j])
                    s1 += np.float64(buf[j + 1])
                    s2 += np.float64(buf[j + 2])
                    s3 += np.float64(buf[j + 3])
                    s4 += np.float64(buf[j + 4])
                    s5 += np.float64(buf[j + 5])
                    s6 += np.float64(buf[j + 6])
                    s7 += np.float64(buf[j + 7])
                    j += 8
                rest = 0.0
                while j < c:
                    rest += np.float64(buf[j])
                    j += 1
                out[i] = (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + rest

    return sumexp_buffer


def sum_of_exp(n_rows, n_cols, repeat):
    rng = np.random.default_rng(1)
    print(
        f"\nsum of exp per row, {n_rows:,} x {n_cols}, float64 accumulation, "
        f"{numba.get_num_threads()} threads, ms (median of {repeat})"
    )
    print(
        f"{'exp':<10}{'(a) fused':>12}{'(b) buffer':>12}{'(c) flags':>12}{'(b)==(b) 1T':>14}"
        "   packed/scalar arithmetic in the hottest block: (a) (b) (c)"
    )
    variants = [(np.float32, vmath.exp32_fma), (np.float64, vmath.exp64_fma)]
    for dtype, exp in variants:
        x = (3.0 * rng.standard_normal((n_rows, n_cols))).astype(dtype)
        out = np.empty(n_rows)
        fused = make_sumexp_fused(exp)
        buffered = make_sumexp_buffer(exp)
        flagged = make_sumexp_fused(exp, FASTMATH_FLAGS)
        times = [
            1e3 * timeit(lambda k=k, x=x, out=out: k(x, out), repeat)
            for k in (fused, buffered, flagged)
        ]
        buffered(x, out)
        two = out.copy()
        numba.set_num_threads(1)
        buffered(x, out)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        same = bool(np.array_equal(two, out))
        asm = []
        for k in (fused, buffered, flagged):
            _, hot = count(k.inspect_asm(k.signatures[0]))
            packed = hot["packed_zmm"] + hot["packed_ymm"] + hot["packed_xmm"]
            asm.append(f"{packed}/{hot['scalar']}")
        print(
            f"{exp.py_func.__name__:<10}"
            + "".join(f"{t:>12.1f}" for t in times)
            + f"{same!s:>14}   "
            + " ".join(asm)
        )


def main():
    quick = "--quick" in sys.argv
    print(
        f"numba {numba.__version__}, numpy {np.__version__}, CPU {llvm.get_host_cpu_name()!r}, "
        f"{numba.config.NUMBA_NUM_THREADS} threads available, layer {numba.config.THREADING_LAYER}"
    )
    row_in_cache()
    if "--row-only" in sys.argv:
        return
    elementwise(1_000_000 if quick else 10_000_000, 5)
    sum_of_exp(100_000 if quick else 1_000_000, 100, 5)


if __name__ == "__main__":
    main()
