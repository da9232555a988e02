"""Calling a kernel over arrays of any shape: batch planning, pieces, scratch buffers.

Row kernels take ``(*operands, *params, *weights, out, acc, counts, bad)`` where the operands are
(n, C) views with the class axis last (probabilities, logits) or (n,) views (class indices), and
``weights`` the per-sample weights (an empty array for none). The element-wise kernel takes the
same arguments with (rows, L) views for operands, weights and ``out``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _reduce
from ._kernels import serial
from ._validate import MAX_PIECES, BatchPlan


def run(
    kernel: Callable[..., None] | tuple[Callable[..., None], Callable[..., None]],
    batch_shape: tuple[int, ...],
    operands: Sequence[np.ndarray],
    params: Sequence[Any],
    weights: Sequence[np.ndarray | None],
    reduction: str,
    out_dtype: np.dtype,
    explain: Callable[[], None],
    row_len: int,
    inner: int = 1,
    out: np.ndarray | None = None,
    count_weights: bool = True,
) -> Any:
    """Run ``kernel`` and return the per-sample array, or the reduced scalar.

    ``batch_shape`` are the leading axes shared by every operand and weight (the sample axes of
    a row kernel, every axis for the element-wise kernel, which uses ``inner=2``). ``explain``
    is called when the kernel flagged invalid input: it must raise the user-facing error.
    ``kernel`` may be a pair (row-parallel kernel, column-split kernel): the second is used for
    a few very long rows. ``out`` (already checked by ``_validate.check_out``) receives the
    ``"none"`` result.
    ``count_weights=False``: the kernel accumulates weights only when sample weights (the last
    of ``weights``) are given (the element-wise kernel); without them ``"mean"`` divides by the
    number of values.
    """
    present = [w for w in weights if w is not None]
    arrays = [*operands, *present]
    reduce = reduction != "none"
    # The kernel writes straight into ``out`` unless it overlaps an input (then a temporary is
    # filled and copied, as NumPy ufuncs do).
    direct = out is not None and not any(np.may_share_memory(out, a) for a in arrays)
    plan = BatchPlan(batch_shape, arrays + ([out] if direct and out is not None else []), inner)
    if plan.n_pieces > MAX_PIECES:
        # Batch axes that no view can merge (say, a sliced middle axis of a 4-D array):
        # looping over many pieces would cost more than one contiguous copy.
        arrays = [np.ascontiguousarray(a) for a in arrays]
        plan = BatchPlan(batch_shape, arrays, inner)
        direct = False
    result = None
    if not reduce:
        result = out if direct else plan.empty_out(out_dtype)
    views = [plan.view(a) for a in arrays]
    if result is not None:
        views.append(plan.view(result, writeable=True))
    rows_per_piece = math.prod(plan.merged[-inner:])
    if inner == 1:
        nchunks, split = _reduce.work_plan(rows_per_piece, row_len)
    else:
        nchunks, split = _reduce.n_chunks(rows_per_piece, 1), False
    buffers = _reduce.Buffers.new(nchunks, reduce)
    fn = (kernel[1] if split else kernel[0]) if isinstance(kernel, tuple) else kernel
    parallel = nchunks > 1 or split
    if not parallel:
        fn = serial(fn)  # the same bits; no thread-pool start for a small input
    no_weight = np.empty((0,) * inner, np.float64)
    no_out = np.empty((0,) * inner, out_dtype)
    n_ops = len(operands)
    if math.prod(batch_shape):
        for piece in plan.pieces(views):
            given = iter(piece[n_ops:])
            piece_weights = [next(given) if w is not None else no_weight for w in weights]
            piece_out = next(given) if result is not None else no_out
            args = (
                *piece[:n_ops],
                *params,
                *piece_weights,
                piece_out,
                buffers.acc,
                buffers.counts,
                buffers.bad,
            )
            if parallel:
                _reduce.launch(fn, *args)  # every parallel launch goes through it (threading)
            else:
                fn(*args)
    if buffers.bad.any():
        explain()
        raise RuntimeError("fastce internal error: a kernel flagged input it could not explain")
    if result is None:
        # Row kernels always accumulate their weights; the element-wise kernel only when sample
        # weights (the last of ``weights``) were given, else "mean" divides by the count.
        weighted = count_weights or weights[-1] is not None
        return _reduce.finish(buffers, reduction, out_dtype, weighted=weighted)
    if out is not None:
        if result is not out:
            out[...] = result
        return out
    return result[()] if result.ndim == 0 else result
