"""Start-up cost: import + first call with a warm cache, against Numba's own floor.

    python bench/startup.py            # warm-cache figures (runs warmup once first)
    python bench/startup.py --cold     # also, per public function, its first small and first
                                       # large call on an empty cache, and `fastce warmup`

Each figure is the median of several fresh processes. Numba's floor is ``import numba`` plus
one call of a trivial ``cache=True`` function that is already cached.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

FLOOR = textwrap.dedent(
    """
    import time
    t = time.perf_counter()
    import numba
    @numba.njit(cache=True)
    def f(x):
        return x + 1
    f(1)
    print(time.perf_counter() - t)
    """
)

FASTCE = textwrap.dedent(
    """
    import time
    t = time.perf_counter()
    import numpy as np
    import fastce
    t_import = time.perf_counter() - t
    x = np.zeros((100, 10), np.float32)
    y = np.zeros(100, np.int64)
    fastce.cross_entropy(y, x, from_logits=True, reduction="mean")
    print(t_import, time.perf_counter() - t)
    """
)


# Each public function's first small call (one chunk: the calling thread) and first large call
# (the thread pool) in a fresh process with an empty Numba cache.
COLD_CALLS = {
    "cross_entropy (labels, float32 logits)": (
        "fastce.cross_entropy(y, x32, from_logits=True, reduction='mean')"
    ),
    "cross_entropy (labels, probabilities)": "fastce.cross_entropy(y, p, reduction='mean')",
    "cross_entropy (soft targets)": "fastce.cross_entropy(p, p, reduction='mean')",
    "entropy": "fastce.entropy(p)",
    "kl_divergence": "fastce.kl_divergence(p, p, reduction='mean')",
    "js_divergence": "fastce.js_divergence(p, p, reduction='mean')",
    "binary_cross_entropy (logits)": (
        "fastce.binary_cross_entropy(t32, x32, from_logits=True, reduction='mean')"
    ),
    "perplexity": "fastce.perplexity(y, x32, from_logits=True)",
    "log_softmax": "fastce.log_softmax(x32)",
    "log_loss": "fastce.log_loss(y, p, labels=np.arange(p.shape[1]))",
}

COLD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import fastce
    def data(n):
        rng = np.random.default_rng(0)
        x32 = rng.standard_normal((n, 100), dtype=np.float32)
        p = rng.random((n, 100)); p /= p.sum(1, keepdims=True)
        return x32, p, rng.integers(0, 100, n), (x32 > 0).astype(np.float32)
    out = []
    for n in (100, 200_000):
        x32, p, y, t32 = data(n)
        t = time.perf_counter()
        eval(sys.argv[1])
        out.append(time.perf_counter() - t)
    print(*out)
    """
)


def cold_calls() -> dict[str, tuple[float, float]]:
    """{function: (first small call, first large call)} in seconds, each function in a fresh
    process with an empty ``NUMBA_CACHE_DIR``."""
    figures = {}
    for name, call in COLD_CALLS.items():
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run(
                [sys.executable, "-c", COLD, call],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            small, large = (float(v) for v in out.stdout.split())
            figures[name] = (small, large)
    return figures


def _run_file(script: str, env: dict[str, str], cwd: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    return [float(v) for v in out.stdout.split()]


def _run(code: str, env: dict[str, str], cwd: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    return [float(v) for v in out.stdout.split()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also time a cold compile")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as floor_dir:
        # A file of its own: Numba caches functions of a source file only, not of ``-c``.
        script = os.path.join(floor_dir, "floor.py")
        with open(script, "w") as f:
            f.write(FLOOR)
        _run_file(script, env, floor_dir)  # populate its cache
        floor = statistics.median(_run_file(script, env, floor_dir)[0] for _ in range(args.repeat))
    subprocess.run([sys.executable, "-m", "fastce", "warmup"], check=True, capture_output=True)
    runs = [_run(FASTCE, env, os.getcwd()) for _ in range(args.repeat)]
    imp = statistics.median(r[0] for r in runs)
    first = statistics.median(r[1] for r in runs)
    print(f"numba floor (import numba + one cached call): {floor:.3f} s")
    print(f"import fastce:                                {imp:.3f} s")
    print(f"import fastce + first cross_entropy call:     {first:.3f} s (warm cache)")
    if args.cold:
        print("first calls on an empty cache (seconds): small call, then large call")
        for name, (small, large) in cold_calls().items():
            print(f"  {name:<42} {small:6.2f} {large:6.2f}")
        with tempfile.TemporaryDirectory() as cache:
            cold_env = {**env, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run(
                [sys.executable, "-m", "fastce", "warmup"],
                capture_output=True,
                text=True,
                env=cold_env,
                check=True,
            )
            print("cold compile of every kernel signature (fastce warmup, empty cache):")
            print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
