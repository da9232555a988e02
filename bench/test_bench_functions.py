"""pytest-benchmark timings of every public function, float32 and float64.

    pytest bench/ --benchmark-only                      # about a minute
    pytest bench/ --benchmark-only -k "entropy and float32"
    FASTCE_BENCH_ROWS=1000000 FASTCE_BENCH_ROUNDS=20 pytest bench/ --benchmark-only

Built from the registry of comparisons the correctness tests use (``tests/registry.py``): every
entry, every variant of options it is tested with, both dtypes, on a moderate 100,000 x 100
input (``FASTCE_BENCH_ROWS`` rows; ``FASTCE_BENCH_CLASSES`` classes; 10,000 generated rows
repeated, since the generator is slow and the timing does not depend on it). Reducing functions are
timed with ``reduction="mean"`` in every variant, and with ``"none"`` in their default variant.
``perplexity`` and ``log_loss`` are not registry entries (they are scalars built on
cross-entropy) and are timed here directly.

Each benchmark runs one untimed call (which compiles or loads the kernel) and then
``FASTCE_BENCH_ROUNDS`` (7) timed calls. For the side-by-side comparison with PyTorch, SciPy,
scikit-learn and NumPy, use ``python -m bench.compare``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastce
from tests import registry

ROWS = int(os.environ.get("FASTCE_BENCH_ROWS", 100_000))
CLASSES = int(os.environ.get("FASTCE_BENCH_CLASSES", 100))
ROUNDS = int(os.environ.get("FASTCE_BENCH_ROUNDS", 7))
BASE_ROWS = 10_000
DTYPES = [np.float32, np.float64]


def _variant_id(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "default"


def _cases():
    for key, entry in registry.REGISTRY.items():
        for index, variant in enumerate(entry.variants):
            reductions = ["mean", "none"] if index == 0 else ["mean"]
            for reduction in reductions if entry.reduces else [None]:
                for dtype in DTYPES:
                    name = f"{key}[{_variant_id(variant)}]"
                    if reduction is not None:
                        name += f"-{reduction}"
                    name += f"-{np.dtype(dtype).name}"
                    yield pytest.param(key, index, reduction, dtype, id=name)


def _make(entry, index, dtype):
    """The entry's inputs for ROWS rows: BASE_ROWS generated rows repeated (the registry's
    adversarial generator is slow at this size; the timing of a row kernel does not depend on
    rows being distinct, only on the bytes it reads)."""
    base = min(ROWS, BASE_ROWS)
    reps = -(-ROWS // base)
    rng = np.random.default_rng(index)
    args, kwargs = entry.make(rng, (base,), CLASSES, dtype, entry.variants[index])

    def grow(a):
        if isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == base and reps > 1:
            return np.concatenate([a] * reps)[:ROWS]
        return a

    return tuple(grow(a) for a in args), {k: grow(v) for k, v in kwargs.items()}


def _run(benchmark, fn, args, kwargs, n_values):
    benchmark.extra_info["values"] = n_values
    benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("key, index, reduction, dtype", list(_cases()))
def test_registry_function(benchmark, key, index, reduction, dtype):
    entry = registry.REGISTRY[key]
    args, kwargs = _make(entry, index, dtype)
    if reduction is not None:
        kwargs["reduction"] = reduction
    benchmark.group = f"{entry.name} {np.dtype(dtype).name}"
    _run(benchmark, entry.fast, args, kwargs, ROWS * CLASSES)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_perplexity(benchmark, dtype):
    rng = np.random.default_rng(0)
    x = registry.logits(rng, (ROWS, CLASSES), dtype)
    y = registry.labels(rng, (ROWS,), CLASSES)
    benchmark.group = f"perplexity {np.dtype(dtype).name}"
    _run(benchmark, fastce.perplexity, (y, x), {"from_logits": True}, ROWS * CLASSES)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_log_loss(benchmark, dtype):
    rng = np.random.default_rng(0)
    # Rows of a simplex (log_loss checks that they sum to 1), every class present in y.
    p = rng.standard_exponential((ROWS, CLASSES))
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    y = registry.labels(rng, (ROWS,), CLASSES)
    y[:CLASSES] = np.arange(CLASSES)
    benchmark.group = f"log_loss {np.dtype(dtype).name}"
    _run(benchmark, fastce.log_loss, (y, p), {}, ROWS * CLASSES)
