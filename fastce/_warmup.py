"""``fastce warmup``: compile and cache every kernel signature that common calls use.

Numba compiles a kernel the first time it meets a combination of dtypes and memory layouts,
and caches the machine code on disk. A container image or a read-only install can run this
once at build time (with ``NUMBA_CACHE_DIR`` pointing at a directory that ships with it), so
that no process ever compiles. Covered: float32 and float64 C-contiguous inputs, probabilities
and logits, class indices (int64 and float64), with and without weights, every reduction, small
calls and large ones (the same kernels, run in the calling thread or over the thread pool), the
tile and fold kernels of a few very long rows, and ``log_loss``. Strided or Fortran-ordered inputs
compile their own variants on first use.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from ._kernels._simd import count_compiles

__all__ = ["count_compiles", "warmup"]


def _calls(dtype: Any) -> list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    """(name, function, args, kwargs) for every variant to compile at ``dtype``."""
    import fastce

    rng = np.random.default_rng(0)
    calls: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
    # A small input (the calling thread), a large one (the thread pool: the same kernels, and
    # small calls' own path), a long row (the tile and fold kernels).
    for rows, cols in [(4, 3), (2048, 64), (1, 4100)]:
        x = rng.normal(size=(rows, cols)).astype(dtype)
        p = fastce.softmax(x)
        y = rng.integers(0, cols, rows)
        shape = f"{rows}x{cols}"
        for logits, pred in [(False, p), (True, x)]:
            kind = "logits" if logits else "probabilities"
            opt = {"from_logits": logits}
            calls += [
                (f"entropy {kind} {shape}", fastce.entropy, (pred,), opt),
                (f"cross_entropy labels {kind} {shape}", fastce.cross_entropy, (y, pred), opt),
                (
                    f"cross_entropy float labels {kind} {shape}",
                    fastce.cross_entropy,
                    (y.astype(np.float64), pred),
                    opt,
                ),
                (f"cross_entropy soft {kind} {shape}", fastce.cross_entropy, (p, pred), opt),
                (f"kl_divergence {kind} {shape}", fastce.kl_divergence, (p, pred), opt),
            ]
        weighted = {
            "from_logits": True,
            "class_weight": np.ones(cols),
            "sample_weight": np.ones(rows),
            "reduction": "mean",
        }
        calls += [
            (f"cross_entropy weighted {shape}", fastce.cross_entropy, (y, x), weighted),
            (f"js_divergence {shape}", fastce.js_divergence, (p, p), {}),
            (f"logsumexp {shape}", fastce.logsumexp, (x,), {}),
            (f"log_softmax {shape}", fastce.log_softmax, (x,), {}),
            (f"softmax {shape}", fastce.softmax, (x,), {}),
        ]
    bce = fastce.binary_cross_entropy
    for size in (1 << 17, 64):
        flat = rng.random(size).astype(dtype)
        target = (flat > 0.5).astype(dtype)
        labels = (flat > 0.5).astype(np.int64)
        calls += [
            (f"binary_cross_entropy probabilities {size}", bce, (target, flat), {}),
            (f"binary_cross_entropy logits {size}", bce, (target, flat), {"from_logits": True}),
            (
                f"binary_cross_entropy weighted {size}",
                bce,
                (target, flat),
                {"from_logits": True, "sample_weight": np.ones(size), "reduction": "mean"},
            ),
            (f"log_loss {size}", fastce.log_loss, (labels, flat), {"labels": [0, 1]}),
            (
                f"log_loss 2-D {size}",
                fastce.log_loss,
                (labels[: size // 2], fastce.softmax(flat.reshape(-1, 2))),
                {"labels": [0, 1]},
            ),
        ]
    calls += [
        ("log_loss string labels", fastce.log_loss, (["a", "b"], flat[:2]), {}),
    ]
    return calls


def _bar(total: int) -> Any:
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="fastce warmup", unit=" steps", file=sys.stderr, leave=False)


def warmup(out: TextIO | None = None, progress: bool | None = None) -> float:
    """Compile (or load from the cache) every kernel common calls use; return the seconds.

    Reports each step as it ends, one line each on ``out`` (stdout by default), numbered
    ``[k/n]``, or, with ``progress`` (default: when ``out`` is not given and stderr is a
    terminal), a tqdm bar on stderr where tqdm is installed; then the total time, and how many
    kernels Numba compiled (the rest were loaded from its cache).
    """
    stream = out or sys.stdout
    steps = [
        (np.dtype(dtype).name, name, function, args, kwargs)
        for dtype in (np.float64, np.float32)
        for name, function, args, kwargs in _calls(dtype)
    ]
    wants_bar = out is None if progress is None else progress
    bar = _bar(len(steps)) if wants_bar else None
    start = time.perf_counter()
    with count_compiles() as compiled:
        try:
            for k, (dtype_name, name, function, args, kwargs) in enumerate(steps, 1):
                t = time.perf_counter()
                function(*args, **kwargs)
                if bar is not None:
                    bar.set_postfix_str(f"{dtype_name} {name}", refresh=False)
                    bar.update(1)
                    continue
                # Flushed at once: a build log shows each step when it ends, not all at the end.
                print(
                    f"[{k:>{len(str(len(steps)))}}/{len(steps)}] {dtype_name:>8}  {name:<45} "
                    f"{time.perf_counter() - t:7.2f} s",
                    file=stream,
                    flush=True,
                )
        finally:
            if bar is not None:
                bar.close()
    total = time.perf_counter() - start
    how = (
        f"{len(compiled)} kernels compiled, the rest loaded from Numba's cache"
        if compiled
        else "every kernel loaded from Numba's cache"
    )
    print(f"fastce warmup: {len(steps)} steps done in {total:.1f} s ({how})", file=stream)
    return total
