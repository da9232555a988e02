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


Call = tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _calls(dtype: Any) -> list[Call]:
    """(name, function, args, kwargs) for every variant to compile at ``dtype``: each measure
    of the table with each of its ``warm`` option sets, on the inputs its layout takes."""
    import fastce

    from ._measures import MEASURES

    rng = np.random.default_rng(0)
    calls: list[Call] = []
    # A small input (the calling thread), a large one (the thread pool: the same kernels, and
    # small calls' own path), a long row (the tile and fold kernels).
    for rows, cols in [(4, 3), (2048, 64), (1, 4100)]:
        x = rng.normal(size=(rows, cols)).astype(dtype)
        p = fastce.softmax(x)
        y = rng.integers(0, cols, rows)
        shape = f"{rows}x{cols}"
        for m in MEASURES.values():
            if m.layout == "transform":
                calls.append((f"{m.name} {shape}", m.function, (x,), {}))
            if m.layout != "rows":
                continue
            targets: list[tuple[str, tuple[Any, ...]]] = [("", (p,))]
            if m.arity == 1:
                targets = [("", ())]
            elif m.labels_as_target:
                targets = [("labels ", (y,)), ("float labels ", (y * 1.0,)), ("soft ", (p,))]
            for options in m.warm:
                pred, kind = (x, "logits") if options.get("from_logits") else (p, "probabilities")
                for what, first in targets:
                    calls.append(
                        (f"{m.name} {what}{kind} {shape}", m.function, (*first, pred), options)
                    )
        weighted = {
            "from_logits": True,
            "class_weight": np.ones(cols),
            "sample_weight": np.ones(rows),
        }
        calls.append(
            (
                f"cross_entropy weighted {shape}",
                fastce.cross_entropy,
                (y, x),
                {**weighted, "reduction": "mean"},
            )
        )
    # Two-class rows from logits: a kernel of their own (``nll.HOT["pairs"]``).
    for rows in (4, 1 << 16):
        x = rng.normal(size=(rows, 2)).astype(dtype)
        y = rng.integers(0, 2, rows)
        for what, labels in [("labels", y), ("float labels", y * 1.0)]:
            calls.append(
                (f"cross_entropy {what} logits {rows}x2", fastce.cross_entropy, (labels, x),
                 {"from_logits": True})
            )  # fmt: skip
        calls.append(
            (
                f"cross_entropy weighted {rows}x2",
                fastce.cross_entropy,
                (y, x),
                {"from_logits": True, "class_weight": np.ones(2), "sample_weight": np.ones(rows)},
            )
        )
    # A class axis that is not the last: float32 logits have a kernel of their own for it.
    x3 = rng.normal(size=(2, 8, 600)).astype(dtype)
    y3 = rng.integers(0, 8, (2, 600))
    calls.append(
        (
            "cross_entropy class axis 1",
            fastce.cross_entropy,
            (y3, x3),
            {"from_logits": True, "axis": 1},
        )
    )
    for size in (1 << 17, 64):
        flat = rng.random(size).astype(dtype)
        target = (flat > 0.5).astype(dtype)
        labels = (flat > 0.5).astype(np.int64)
        for m in MEASURES.values():
            if m.layout == "elements":
                for options in m.warm:
                    kind = "logits" if options.get("from_logits") else "probabilities"
                    calls.append((f"{m.name} {kind} {size}", m.function, (target, flat), options))
            elif m.layout == "labels":
                two = fastce.softmax(flat.reshape(-1, 2))
                calls.append((f"{m.name} {size}", m.function, (labels, flat), {"labels": [0, 1]}))
                calls.append(
                    (
                        f"{m.name} 2-D {size}",
                        m.function,
                        (labels[: size // 2], two),
                        {"labels": [0, 1]},
                    )
                )
        weights = {"from_logits": True, "sample_weight": np.ones(size), "reduction": "mean"}
        calls.append(
            (
                f"binary_cross_entropy weighted {size}",
                fastce.binary_cross_entropy,
                (target, flat),
                weights,
            )
        )
    calls.append(("log_loss string labels", fastce.log_loss, (["a", "b"], flat[:2]), {}))
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
