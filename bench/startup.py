"""Start-up cost: import + first call with a warm cache, against Numba's own floor.

    python bench/startup.py            # warm-cache figures (runs warmup once first)
    python bench/startup.py --cold     # also the cold compile time of every kernel

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
        _run(FLOOR, env, floor_dir)  # populate its cache
        floor = statistics.median(_run(FLOOR, env, floor_dir)[0] for _ in range(args.repeat))
    subprocess.run([sys.executable, "-m", "fastce", "warmup"], check=True, capture_output=True)
    runs = [_run(FASTCE, env, os.getcwd()) for _ in range(args.repeat)]
    imp = statistics.median(r[0] for r in runs)
    first = statistics.median(r[1] for r in runs)
    print(f"numba floor (import numba + one cached call): {floor:.3f} s")
    print(f"import fastce:                                {imp:.3f} s")
    print(f"import fastce + first cross_entropy call:     {first:.3f} s (warm cache)")
    if args.cold:
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
