"""The one way into a kernel: batch planning, chunks of rows, the thread pool.

Every kernel is a serial ``@njit(nogil=True, cache=True)`` function over the rows it is given.
Parallelism lives here, once: a call's rows are cut into chunks (``n_chunks``), and each chunk
is a call of the kernel on *views* of that chunk's rows, with the chunk's own accumulator and
counters, run by a small pool of Python threads (the kernels release the GIL). A chunk's rows
are visited in order by one thread and every reduction is an exact sum, so no result depends on
the thread count or on the chunking. Small calls (one chunk) run in the calling thread, with no
pool at all.

The pool has ``numba.get_num_threads() - 1`` threads (the caller works too), so
``numba.set_num_threads`` and ``NUMBA_NUM_THREADS`` set fastce's parallelism as before; the
setting is per calling thread. No OpenMP or TBB runs in the process, so there is no threading
layer to choose and nothing unsafe about ``os.fork``: a child forked while the pool existed
starts a new one (the parent's threads are not in the child). Concurrent callers (user threads,
Dask's threaded scheduler) share the pool; each caller also works on its own chunks, so a call
never waits behind another's to make progress.

Rows longer than ``COL_BLOCK`` that are too few to keep every thread busy are *split*: their
column blocks (tiles) are spread over the threads, each tile's partial is written to a scratch
array, and the partials of a row are folded in block order by one call afterwards, the same
fold as a row computed whole, so the same bits.

Argument layout of a row kernel: ``(*operands, *params, *weights, out, acc, counts, bad)`` where
the operands are (n, C) views with the class axis last (probabilities, logits) or (n,) views
(class indices), the weights per-sample arrays (empty for none) and ``out`` the per-sample
result (empty when only a reduction is wanted). A split family is a ``Split(tiles, fold)`` pair
taking ``(*operands, *params, *weights, lo, t0, t1, part)`` and ``(*operands, *params,
*weights, lo, hi, part, out, acc, counts, bad)``. The element-wise kernel takes (rows, L) views.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _reduce
from ._kernels.exactsum import ACC_LEN
from ._kernels.logsumexp import COL_BLOCK, ROWS_PER_BATCH
from ._validate import MAX_PIECES, BatchPlan

# Rows x columns of work below which one chunk is used: handing chunks to threads and merging
# accumulators would cost more than the work. The result does not depend on it.
_MIN_WORK_PER_CHUNK = 1 << 16
# Chunks per thread: handed out one at a time, so a thread slowed by another process on its
# core takes fewer of them.
_CHUNKS_PER_THREAD = 8


# --- the pool -----------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def threads() -> int:
    """Threads a call from this thread may use: Numba's setting (``numba.set_num_threads``,
    per calling thread; ``NUMBA_NUM_THREADS`` by default)."""
    return int(numba.get_num_threads())


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    pool = _pool
    if pool is not None and _pool_size >= workers:
        return pool
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old = _pool
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="fastce")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def _after_fork_in_child() -> None:
    # The parent's pool threads do not exist in the child: forget the pool, start a new one
    # on the next parallel call. (Another parent thread may have held the lock at the fork.)
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def status() -> dict[str, Any]:
    """How fastce runs its kernels in this process (for diagnostics and tests): the threads a
    call from this thread uses, and the pool's threads that are alive."""
    pool = _pool
    alive = sum(t.is_alive() for t in getattr(pool, "_threads", ())) if pool is not None else 0
    return {"threads": threads(), "pool_threads": alive}


def run_tasks(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]]) -> None:
    """Call ``fn(*args)`` for every ``args`` of ``tasks``, spread over the threads.

    Tasks are handed out one at a time to the calling thread and to up to ``threads() - 1``
    pool threads, so a busy core takes fewer of them. Which thread runs a task never changes
    what it computes (each writes its own slots). Exceptions propagate to the caller.
    """
    n_threads = min(threads(), len(tasks))
    if n_threads <= 1:
        for args in tasks:
            fn(*args)
        return
    order = iter(range(len(tasks)))
    take = threading.Lock()

    def work() -> None:
        while True:
            with take:
                i = next(order, None)
            if i is None:
                return
            fn(*tasks[i])

    futures: list[Future[None]] = []
    try:
        pool = _executor(n_threads - 1)
        futures = [pool.submit(work) for _ in range(n_threads - 1)]
    except RuntimeError:  # interpreter shutting down: no new threads; the caller does it all
        pass
    try:
        work()
    finally:
        for f in futures:
            f.cancel()  # not started (the pool busy with another caller's tasks): not needed
        for f in futures:
            if not f.cancelled():
                f.result()


# --- planning -----------------------------------------------------------------------------------


def n_chunks(n_rows: int, row_len: int) -> int:
    """How many chunks of rows a call's work is cut into (eight per thread, handed out
    dynamically; one for small work)."""
    if n_rows <= 1:
        return 1
    work = n_rows * max(row_len, 1)
    if work < 2 * _MIN_WORK_PER_CHUNK:
        return 1
    by_work = max(1, work // _MIN_WORK_PER_CHUNK)
    return int(min(n_rows, _CHUNKS_PER_THREAD * threads(), by_work))


def work_plan(n_rows: int, row_len: int) -> tuple[int, bool]:
    """(nchunks, split): split spreads the column blocks of a few long rows over the threads.

    Neither choice changes a result: per-row values are folded block by block in column order
    either way, and sums are exact.
    """
    if row_len > COL_BLOCK:
        n_threads = threads()
        if n_threads > 1 and n_rows < 2 * n_threads:
            n_tiles = n_rows * -(-row_len // COL_BLOCK)
            return int(max(1, min(_CHUNKS_PER_THREAD * n_threads, n_tiles))), True
    return n_chunks(n_rows, row_len), False


def bounds(n: int, nchunks: int, k: int) -> tuple[int, int]:
    """Rows [lo, hi) of chunk k: the same cut as the kernels' ``chunk_bounds``."""
    size = (n + nchunks - 1) // nchunks
    lo = min(n, k * size)
    return lo, min(n, lo + size)


def boxes(rows: int, cols: int, nchunks: int) -> list[tuple[slice, slice]]:
    """Element-wise work on a (rows, cols) view cut into about ``nchunks`` boxes: ranges of
    whole rows, or, with fewer rows than chunks, ranges of columns of each row."""
    if rows >= nchunks:
        return [(slice(*bounds(rows, nchunks, k)), slice(None)) for k in range(nchunks)]
    per_row = -(-nchunks // rows)
    return [
        (slice(r, r + 1), slice(*bounds(cols, per_row, k)))
        for r in range(rows)
        for k in range(per_row)
        if bounds(cols, per_row, k)[1] > bounds(cols, per_row, k)[0]
    ]


class Split(NamedTuple):
    """A family's kernels for a few long rows: per-tile partials, then the fold of each row."""

    tiles: Callable[..., None]
    fold: Callable[..., None]


@dataclass
class Buffers:
    """What one call's chunks write: exact accumulators, counts and "bad input" flags."""

    acc: np.ndarray
    counts: np.ndarray
    bad: np.ndarray

    @classmethod
    def new(cls, nchunks: int, reduce: bool) -> Buffers:
        return cls(
            acc=np.zeros((nchunks, 2, ACC_LEN if reduce else 0), np.int64),
            # One cache line per chunk: a chunk bumps its count on every row, and neighbouring
            # counters in one line would bounce it between the cores running them.
            counts=np.zeros((nchunks, 8), np.int64)[:, 0],
            bad=np.zeros((nchunks, 8), np.int64)[:, 0],
        )


def rows_of(a: np.ndarray, sl: Any) -> np.ndarray:
    """A per-row argument's rows ``sl``; an empty array (no weights, no output) stays empty."""
    return a[sl] if a.shape[0] > 0 else a


def call_rows(
    kernel: Callable[..., None],
    n_rows: int,
    nchunks: int,
    args: Callable[[Any, slice], tuple[Any, ...]],
) -> None:
    """Run a row kernel over ``n_rows`` rows in ``nchunks`` chunks: ``args(rows, k)`` gives the
    kernel's arguments for the rows ``rows`` (a slice) and chunk ``k`` (a slice of length one
    into the per-chunk buffers)."""
    if nchunks == 1:
        kernel(*args(slice(None), slice(0, 1)))
        return
    run_tasks(
        kernel,
        [args(slice(*bounds(n_rows, nchunks, k)), slice(k, k + 1)) for k in range(nchunks)],
    )


def _split_rows(
    family: Split, n: int, c: int, nchunks: int, head: tuple[Any, ...], tail: tuple[Any, ...]
) -> None:
    """Run a split family over ``n`` long rows: for each batch of rows, its tiles spread over
    the threads, then the batch's rows folded in order (into chunk 0 of the buffers)."""
    nb = -(-c // COL_BLOCK)
    part = np.empty((min(n, ROWS_PER_BATCH) * nb, 6))
    for lo in range(0, n, ROWS_PER_BATCH):
        hi = min(n, lo + ROWS_PER_BATCH)
        tiles = (hi - lo) * nb
        k_tiles = min(nchunks, tiles)
        run_tasks(
            family.tiles,
            [(*head, lo, *bounds(tiles, k_tiles, k), part) for k in range(k_tiles)],
        )
        family.fold(*head, lo, hi, part, *tail)


# --- a loss or measure --------------------------------------------------------------------------


def run(
    kernel: Callable[..., None] | tuple[Callable[..., None], Split],
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
    ``kernel`` may be a pair (row kernel, ``Split`` family): the second is used for a few very
    long rows. ``out`` (already checked by ``_validate.check_out``) receives the ``"none"``
    result. ``count_weights=False``: the kernel accumulates weights only when sample weights
    (the last of ``weights``) are given (the element-wise kernel); without them ``"mean"``
    divides by the number of values.
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
        nchunks, split = work_plan(rows_per_piece, row_len)
    else:
        nchunks, split = n_chunks(rows_per_piece, 1), False
        if nchunks > 1:  # as many chunks as boxes (a few more where rows are few)
            nchunks = len(boxes(plan.merged[-2], plan.merged[-1], nchunks))
    buffers = Buffers.new(nchunks, reduce)
    row_kernel = kernel[0] if isinstance(kernel, tuple) else kernel
    no_weight = np.empty((0,) * inner, np.float64)
    no_out = np.empty((0,) * inner, out_dtype)
    n_ops = len(operands)
    if math.prod(batch_shape):
        for piece in plan.pieces(views):
            given = iter(piece[n_ops:])
            piece_weights = [next(given) if w is not None else no_weight for w in weights]
            piece_out = next(given) if result is not None else no_out
            head = (*piece[:n_ops], *params, *piece_weights)
            if split:
                assert isinstance(kernel, tuple)
                family = kernel[1]
                tail = (piece_out, buffers.acc[:1], buffers.counts[:1], buffers.bad[:1])
                _split_rows(family, piece[0].shape[0], row_len, nchunks, head, tail)
            elif inner == 2:
                _elementwise(row_kernel, piece, n_ops, params, piece_weights, piece_out, buffers)
            else:
                per_row = (*piece[:n_ops], *piece_weights, piece_out)

                def chunk_args(
                    sl: Any, k: slice, per_row: tuple[np.ndarray, ...] = per_row
                ) -> tuple[Any, ...]:
                    ops = [rows_of(a, sl) for a in per_row]
                    return (
                        *ops[:n_ops],
                        *params,
                        *ops[n_ops:],
                        buffers.acc[k],
                        buffers.counts[k],
                        buffers.bad[k],
                    )

                call_rows(row_kernel, piece[0].shape[0], nchunks, chunk_args)
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


def _elementwise(
    kernel: Callable[..., None],
    piece: Sequence[np.ndarray],
    n_ops: int,
    params: Sequence[Any],
    piece_weights: Sequence[np.ndarray],
    piece_out: np.ndarray,
    buffers: Buffers,
) -> None:
    """The element-wise kernel over a (rows, L) piece, cut into boxes of elements, box k
    writing chunk k of ``buffers`` (as many chunks as ``boxes`` gives)."""
    rows, cols = piece[0].shape
    per_elem = (*piece[:n_ops], *piece_weights, piece_out)

    def box_args(box: Any, k: int) -> tuple[Any, ...]:
        ops = [rows_of(a, box) for a in per_elem]
        ks = slice(k, k + 1)
        return (*ops[:n_ops], *params, *ops[n_ops:], buffers.acc[ks], buffers.counts[ks],
                buffers.bad[ks])  # fmt: skip

    nchunks = buffers.counts.shape[0]
    if nchunks == 1:
        kernel(*box_args((slice(None), slice(None)), 0))
        return
    run_tasks(kernel, [box_args(box, k) for k, box in enumerate(boxes(rows, cols, nchunks))])


# --- log-sum-exp, log-softmax, softmax: a row in, a row or a value out ---------------------------


class Transform(NamedTuple):
    """A row transform: its row kernel ``(x, out, nchunks)`` and, for a few long rows, the
    kernel that writes a batch's output from its rows' folded (M, S')."""

    rows: Callable[..., None]
    from_parts: Callable[..., None]
    per_tile: bool  # from_parts writes tiles (a row's columns), not one value per row


def transform(kernel: Transform, x: np.ndarray, out: np.ndarray) -> None:
    """``kernel`` over the rows of the 2-D view ``x`` into ``out`` (rows, or rows x columns)."""
    from ._kernels.logsumexp import lse_fold, lse_tiles

    n, c = x.shape
    nchunks, split = work_plan(n, c)
    if not split:
        call_rows(kernel.rows, n, nchunks, lambda sl, k: (x[sl], out[sl], 1))
        return
    nb = -(-c // COL_BLOCK)
    rows = min(n, ROWS_PER_BATCH)
    part_m, part_s = np.empty(rows * nb), np.empty(rows * nb)
    m_row, s_row = np.empty(rows), np.empty(rows)
    for lo in range(0, n, ROWS_PER_BATCH):
        hi = min(n, lo + ROWS_PER_BATCH)
        tiles = (hi - lo) * nb
        k_tiles = min(nchunks, tiles)
        run_tasks(
            lse_tiles,
            [(x, lo, *bounds(tiles, k_tiles, k), part_m, part_s) for k in range(k_tiles)],
        )
        lse_fold(nb, hi - lo, part_m, part_s, m_row, s_row)
        if kernel.per_tile:
            run_tasks(
                kernel.from_parts,
                [(x, out, lo, *bounds(tiles, k_tiles, k), m_row, s_row) for k in range(k_tiles)],
            )
        else:
            kernel.from_parts(x, out, lo, 0, hi - lo, m_row, s_row)
