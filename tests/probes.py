"""A fresh process that prints the bits of a few kernels' outputs: two builds of the kernels
(another vector width, the plain twins of the intrinsics) must print the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BITS_PROBE = """
import sys, numpy as np, fastce
rng = np.random.default_rng(0)
x = (rng.normal(size=(300, 37)) * 4).astype(np.float32)
y = rng.integers(0, 37, 300)
p = fastce.softmax(x.astype(np.float64))
parts = [
    fastce.logsumexp(x), fastce.cross_entropy(y, x, from_logits=True),
    fastce.cross_entropy(y, x.astype(np.float64), from_logits=True, reduction="mean"),
    fastce.entropy(p), fastce.kl_divergence(p, np.roll(p, 1, axis=1)),
    fastce.binary_cross_entropy((p > 0.03).astype(np.float64), p),
    fastce.log_softmax(x[:, :9]), fastce.js_divergence(p, np.roll(p, 3, axis=1)),
]
# the kernels of their own: two-class rows, class-major float32 rows, BCE from float32 logits
x2 = (rng.normal(size=(3000, 2)) * 4).astype(np.float32)
y2 = rng.integers(0, 2, 3000)
x3 = np.ascontiguousarray(np.moveaxis(x.reshape(3, 100, 37), 2, 1))
parts += [
    fastce.cross_entropy(y2, x2, from_logits=True),
    fastce.cross_entropy(y2, x2.astype(np.float64), from_logits=True),
    fastce.cross_entropy(y.reshape(3, 100), x3, axis=1, from_logits=True),
    fastce.binary_cross_entropy((x > 0).astype(np.float32), x, from_logits=True),
]
sys.stdout.write(b"".join(np.ascontiguousarray(a).tobytes() for a in parts).hex())
"""


def probe_bits(cache_dir: Path, env: dict[str, str], check: str = "") -> str:
    """The probe's output (hex) in a fresh process with ``env`` added and an empty Numba cache
    in ``cache_dir``; ``check`` is Python run first (an assertion about the build)."""
    full_env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), **env)
    run = subprocess.run(
        [sys.executable, "-c", check + BITS_PROBE], capture_output=True, text=True, env=full_env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout
