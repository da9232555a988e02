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

Argument layout of a row kernel: ``(*operands, *params, *weights, where, out, acc, counts,
bad)`` where the operands are (n, C) views with the class axis last (probabilities, logits) or
(n,) views (class indices), the weights per-sample arrays (empty for none), ``where`` the
per-sample boolean mask of the samples to score (empty for all) and ``out`` the per-sample
result (empty when only a reduction is wanted). A measure's kernels (``_kernels._driver``'s
``RowKernels``) add, for split rows, ``tiles`` taking ``(*operands, *params, *weights, where,
lo, t0, t1, part)`` and ``fold`` taking ``(*operands, *params, *weights, where, lo, hi, part,
out, acc, counts, bad)``. The element-wise kernel takes (rows, L) views.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numba
import numpy as np

from . import _reduce
from ._kernels._common import COL_BLOCK, temper_rows, transpose_rows, widen_rows
from ._kernels._driver import RowKernels, Transform
from ._kernels.exactsum import ACC_LEN
from ._kernels.logsumexp import COLUMN_TILE, ROWS_PER_BATCH, lse_fold, lse_tiles
from ._validate import MAX_PIECES, BatchPlan, is_bfloat16, is_half

# Rows x columns of work below which one chunk is used: handing chunks to threads and merging
# accumulators would cost more than the work. The result does not depend on it.
_MIN_WORK_PER_CHUNK = 1 << 16
# Chunks per thread: handed out one at a time, so a thread slowed by another process on its
# core takes fewer of them.
_CHUNKS_PER_THREAD = 8


NO_WHERE = np.empty(0, np.bool_)
"""No mask (every sample scored), read-only as the launcher's views of a given mask: one
compiled signature for both."""
NO_WHERE.flags.writeable = False


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


def slots(n_tasks: int) -> int:
    """How many threads (hence per-thread buffers) ``run_tasks`` uses for ``n_tasks`` tasks."""
    return max(1, min(threads(), n_tasks))


def run_tasks(tasks: Sequence[Callable[[int], None]], n_slots: int) -> None:
    """Call ``task(slot)`` for every task, spread over ``n_slots`` threads (``slots``).

    ``slot`` (0 for the calling thread, 1 .. n_slots - 1 for pool threads) is the running
    thread's own: no two tasks run with the same slot at once, so a task may write the slot's
    buffers (an exact accumulator, counters) without a lock. Tasks are handed out one at a time,
    so a thread slowed by another process takes fewer. Which thread runs a task never changes
    what it computes. Exceptions propagate to the caller.
    """
    if n_slots <= 1 or len(tasks) <= 1:
        for task in tasks:
            task(0)
        return
    order = iter(range(len(tasks)))
    take = threading.Lock()

    def work(slot: int) -> None:
        while True:
            with take:
                i = next(order, None)
            if i is None:
                return
            tasks[i](slot)

    futures: list[Future[None]] = []
    try:
        pool = _executor(n_slots - 1)
        futures = [pool.submit(work, slot) for slot in range(1, n_slots)]
    except RuntimeError:  # interpreter shutting down: no new threads; the caller does it all
        pass
    try:
        work(0)
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
    """Rows [lo, hi) of chunk k of ``nchunks`` equal chunks of n rows."""
    size = (n + nchunks - 1) // nchunks
    lo = min(n, k * size)
    return lo, min(n, lo + size)


def boxes(rows: int, cols: int, nchunks: int) -> list[tuple[slice, slice]]:
    """Element-wise work on a (rows, cols) view cut into about ``nchunks`` boxes: ranges of
    whole rows, or, with fewer rows than chunks, ranges of columns of each row."""
    if rows == 0 or nchunks <= 1:
        return [(slice(None), slice(None))]
    if rows >= nchunks:
        return [(slice(*bounds(rows, nchunks, k)), slice(None)) for k in range(nchunks)]
    per_row = -(-nchunks // rows)
    return [
        (slice(r, r + 1), slice(*bounds(cols, per_row, k)))
        for r in range(rows)
        for k in range(per_row)
        if bounds(cols, per_row, k)[1] > bounds(cols, per_row, k)[0]
    ]


@dataclass
class Buffers:
    """What a call's tasks write, one slot per thread (``run_tasks``): exact accumulators,
    counts and "bad input" flags. Sums are exact, so which slot took which rows is invisible."""

    acc: np.ndarray
    counts: np.ndarray
    bad: np.ndarray

    @classmethod
    def new(cls, n_slots: int, reduce: bool) -> Buffers:
        return cls(
            acc=np.zeros((n_slots, 2, ACC_LEN if reduce else 0), np.int64),
            # One cache line per slot: a thread bumps its count on every row, and neighbouring
            # counters in one line would bounce it between the cores running them.
            counts=np.zeros((n_slots, 8), np.int64)[:, 0],
            bad=np.zeros((n_slots, 8), np.int64)[:, 0],
        )

    def slot(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Slot k's (acc, counts, bad), as the kernels take them (a chunk axis of length 1)."""
        s = slice(k, k + 1)
        return self.acc[s], self.counts[s], self.bad[s]


def rows_of(a: np.ndarray, sl: Any) -> np.ndarray:
    """A per-row argument's rows ``sl``; an empty array (no weights, no output) stays empty."""
    return a[sl] if a.shape[0] > 0 else a


def chunk_tasks(
    kernel: Callable[..., None],
    n_rows: int,
    nchunks: int,
    args: Callable[[slice, int], tuple[Any, ...]],
) -> list[Callable[[int], None]]:
    """The tasks of a row kernel over ``n_rows`` rows cut into ``nchunks`` chunks:
    ``args(rows, slot)`` gives the kernel's arguments for the rows ``rows`` (a slice) run with
    the buffers of ``slot``."""
    return [
        partial(_call, kernel, args, slice(*bounds(n_rows, nchunks, k))) for k in range(nchunks)
    ]


def _call(
    kernel: Callable[..., None], args: Callable[[Any, int], tuple[Any, ...]], sel: Any, slot: int
) -> None:
    """A task: ``kernel`` on its arguments ``args(sel, slot)``."""
    kernel(*args(sel, slot))


def _kernel_args(
    n_ops: int, per_elem: Sequence[np.ndarray], params: Sequence[Any], buffers: Buffers, sel: Any,
    slot: int,
) -> tuple[Any, ...]:  # fmt: skip
    """A kernel's arguments for the part ``sel`` of a piece (a slice of rows, or a box of a
    (rows, L) piece): ``per_elem`` are its operands (the first ``n_ops``), weights and output,
    ``params`` go between, and the buffers of ``slot`` last."""
    return (
        *[rows_of(a, sel) for a in per_elem[:n_ops]],
        *params,
        *[rows_of(a, sel) for a in per_elem[n_ops:]],
        *buffers.slot(slot),
    )


def call_rows(
    kernel: Callable[..., None],
    n_rows: int,
    nchunks: int,
    args: Callable[[slice, int], tuple[Any, ...]],
) -> None:
    """Run ``chunk_tasks`` (allocate ``slots(nchunks)`` buffers for them); one chunk runs in
    the calling thread on the whole of every argument."""
    if nchunks == 1:
        kernel(*args(slice(None), 0))
        return
    run_tasks(chunk_tasks(kernel, n_rows, nchunks, args), slots(nchunks))


# Rows of transposed operands copied at once into a contiguous scratch, per thread: about
# 256 KiB, which the kernel reads back from L2. On a (64, 1000, 512) float32 array with
# axis=1, 64 KiB tiles took 42 ms, 128 KiB 30-34, 256 KiB 26-32, 512 KiB 43-45 (2 threads).
_TILE_BYTES = 1 << 18
_LONG_ROW_TILE = 1 << 21
_MIN_TILE_ROWS = 16


def half(a: np.ndarray) -> bool:
    """A float16 or bfloat16 (``ml_dtypes``) array: the kernels read it in tiles of rows
    widened to float32 (``widen_rows``), the values exact."""
    return is_half(a.dtype)


def convert(src: np.ndarray, dst: np.ndarray, temperature: float = 1.0) -> None:
    """dst[:] = the tile ``src`` as a kernel reads it from a per-thread scratch: half
    precision widened to its float32 values (``widen_rows``), logits divided by
    ``temperature`` in float64, or float32 read as float64 (``temper_rows``), or rows
    stored transposed made contiguous (``transpose_rows``); each exact."""
    if half(src):
        widen_rows(src.view(np.uint16), dst, is_bfloat16(src.dtype), temperature)
    elif temperature != 1.0 or dst.dtype != src.dtype:
        temper_rows(src, dst, temperature)
    else:
        transpose_rows(src, dst)


def _slot_buffers(
    scratch: dict[int, list[np.ndarray | None]], slot: int, shapes: Sequence[Any]
) -> list[np.ndarray | None]:
    """The running thread's scratch buffers, one per (shape, dtype) of ``shapes`` (None: no
    buffer), kept in ``scratch`` (one per call, shared by its pieces) and made again only when
    a piece needs larger ones."""
    bufs = scratch.get(slot)
    if bufs is None or any(
        b is None or b.shape[0] < s[0][0] for b, s in zip(bufs, shapes, strict=True) if s
    ):
        bufs = [np.empty(*s) if s else None for s in shapes]
        scratch[slot] = bufs
    return bufs


def _transposed(a: np.ndarray) -> bool:
    """A (rows, classes) view whose rows are closer in memory than its classes (a class axis
    that is not the last one, a Fortran-ordered array): read row by row, every class would be
    a cache line of its own. (A single row, whose batch stride is 0, is not.)"""
    return (
        a.ndim == 2 and a.shape[0] > 1 and a.shape[1] > 1 and abs(a.strides[0]) < abs(a.strides[1])
    )


def _row_tasks(
    kernel: Callable[..., None],
    args: Callable[[slice, int], tuple[Any, ...]],
    per_row: Sequence[np.ndarray],
    n_ops: int,
    nchunks: int,
    columns: Callable[..., None] | None = None,
    tempered: Sequence[bool] = (),
    temperature: float = 1.0,
    scratch: dict[int, list[np.ndarray | None]] | None = None,
) -> list[Callable[[int], None]]:
    """The tasks of one piece of rows: ``per_row`` are the operands (the first ``n_ops``), then
    the weights and the output (empty when absent), cut into ``nchunks`` chunks of rows;
    ``args`` gives the kernel's arguments for a chunk (``_kernel_args``). ``columns``: the
    measure's kernel for a first operand stored class-major with its rows adjacent, which then
    takes that operand as it is.

    Operands stored transposed are read a tile of rows at a time instead: the tile's rows
    copied into a contiguous scratch of the running thread (``transpose_rows``, reading along
    the adjacent rows, in runs as long as the tile) and the kernel run on the copy, so the
    kernel's reads are contiguous; the values are the same bits (the same kernel on the same
    numbers). One tile per task: a tile is about ``_TILE_BYTES``, whatever ``nchunks``.

    Operands of logits read at a ``temperature`` (``tempered``) are read a tile at a time too,
    into a float64 scratch holding ``x / temperature`` (``temper_rows``): the kernel sees the
    tempered logits, divided in float64, and no array of the input's size is made. So are
    half-precision operands, widened to float32 (``widen_rows``; float64 if tempered): the
    kernel sees the same values as a float32 input, and computes the same bits. ``scratch``
    holds the threads' tiles (one per call; ``_slot_buffers``).
    """
    n_rows = per_row[0].shape[0]
    temper = [bool(t) for t in tempered] + [False] * (n_ops - len(tempered))
    halves = [half(a) for a in per_row[:n_ops]]
    flip = [
        _transposed(a) or t or h for a, t, h in zip(per_row[:n_ops], temper, halves, strict=True)
    ]
    if not any(flip):
        return chunk_tasks(kernel, n_rows, nchunks, args)
    x = per_row[0]
    if (
        columns is not None
        and not any(temper)
        and not any(halves)
        and flip == [True] + [False] * (n_ops - 1)
        and x.strides[0] == x.itemsize
    ):
        # The measure reads class-major rows itself, ``COLUMN_TILE`` of them at a time.
        return chunk_tasks(columns, n_rows, max(1, min(nchunks, n_rows // COLUMN_TILE)), args)

    dtypes = [
        np.dtype(np.float64) if t else np.dtype(np.float32) if h else a.dtype
        for a, t, h in zip(per_row[:n_ops], temper, halves, strict=True)
    ]
    width = sum(
        a.shape[1] * d.itemsize for a, d, f in zip(per_row, dtypes, flip, strict=False) if f
    )
    tile_bytes = _TILE_BYTES
    if not any(_transposed(a) for a in per_row[:n_ops]):
        # Rows widened or tempered along their length: the tile's size does not change how
        # the cache serves them, but each tile is a Python call (~20 us); long rows get up to
        # ``_LONG_ROW_TILE`` rows per tile (8 x 512 rows of 32,000 bfloat16 logits: 256 KiB
        # tiles 44-49 ms, 2 MiB 32-34).
        tile_bytes = max(tile_bytes, min(_LONG_ROW_TILE, _MIN_TILE_ROWS * width))
    # at least a tile per chunk, so that every thread gets some
    n_tiles = max(1, -(-n_rows * width // tile_bytes), min(n_rows, nchunks))
    step = -(-n_rows // n_tiles)
    shapes = [((step, a.shape[1]), d) if f else None for a, d, f in
              zip(per_row, dtypes, flip, strict=False)]  # fmt: skip
    tiles_of = scratch if scratch is not None else {}

    def tiled(lo: int, hi: int, slot: int) -> None:
        tiles = _slot_buffers(tiles_of, slot, shapes)
        ops = []
        for a, tile, t in zip(per_row[:n_ops], tiles, temper, strict=False):
            if tile is None:
                ops.append(a[lo:hi])
            else:  # (only logits are divided by the temperature)
                convert(a[lo:hi], tile[: hi - lo], temperature if t else 1.0)
                ops.append(tile[: hi - lo])
        kernel(*ops, *args(slice(lo, hi), slot)[n_ops:])

    return [partial(tiled, *bounds(n_rows, n_tiles, k)) for k in range(n_tiles)]


# Elements of an element-wise tile: 256 KiB of float64 scratch per converted operand.
_TILE_ELEMENTS = _TILE_BYTES // 8


def _element_tiles(
    kernel: Callable[..., None],
    args: Callable[[Any, int], tuple[Any, ...]],
    ops: Sequence[np.ndarray],
    reads: Sequence[np.dtype | None],
    cut: Sequence[tuple[slice, slice]],
    scratch: dict[int, list[np.ndarray | None]],
) -> list[Callable[[int], None]]:
    """The element-wise kernel's tasks over the boxes ``cut`` of (rows, L) operands of which
    some are read in another dtype (``reads``): each box cut into tiles of at most
    ``_TILE_ELEMENTS`` (whole rows, or a range of one long row's columns), each tile's
    converted operands written into the running thread's scratch (``widen_rows`` from half
    precision, exact; ``temper_rows`` at a temperature of 1, exact, from float32 to float64)
    and the kernel run on them: the same numbers as a converted copy of the whole input,
    hence the same bits, in a few hundred KiB per thread (``scratch``: one per call)."""
    n_rows, n_cols = ops[0].shape
    shapes = [None if d is None else ((_TILE_ELEMENTS,), d) for d in reads]

    def tile(sel: tuple[slice, slice], slot: int) -> None:
        bufs = _slot_buffers(scratch, slot, shapes)
        converted = []
        for a, buf in zip(ops, bufs, strict=True):
            src = a[sel]
            if buf is None:
                converted.append(src)
                continue
            dst = buf[: src.size].reshape(src.shape)
            convert(src, dst)
            converted.append(dst)
        kernel(*converted, *args(sel, slot)[len(ops) :])

    tasks: list[Callable[[int], None]] = []
    for rows, cols in cut:
        r0, r1, _ = rows.indices(n_rows)
        c0, c1, _ = cols.indices(n_cols)
        width = max(c1 - c0, 1)
        if width <= _TILE_ELEMENTS:
            step = _TILE_ELEMENTS // width
            for lo in range(r0, r1, step):
                sel = (slice(lo, min(r1, lo + step)), slice(c0, c1))
                tasks.append(partial(tile, sel))
        else:
            for r in range(r0, r1):
                for lo in range(c0, c1, _TILE_ELEMENTS):
                    sel = (slice(r, r + 1), slice(lo, min(c1, lo + _TILE_ELEMENTS)))
                    tasks.append(partial(tile, sel))
    return tasks


def _unslotted(fn: Callable[..., None], *args: Any) -> None:
    """A task that writes no per-thread buffer: ``fn(*args)``, whatever the slot (the last)."""
    fn(*args[:-1])


def _tile_batches(
    n: int, c: int, nchunks: int
) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
    """(lo, hi, cuts) for each batch of at most ``ROWS_PER_BATCH`` of ``n`` rows of ``c``
    columns: the batch's tiles (row-major: its rows' column blocks) cut into at most
    ``nchunks`` ranges, one task each."""
    nb = -(-c // COL_BLOCK)
    for lo in range(0, n, ROWS_PER_BATCH):
        hi = min(n, lo + ROWS_PER_BATCH)
        tiles = (hi - lo) * nb
        k_tiles = min(nchunks, tiles)
        yield lo, hi, [bounds(tiles, k_tiles, k) for k in range(k_tiles)]


def _run_tiles(
    kernel: Callable[..., None],
    head: tuple[Any, ...],
    cuts: list[tuple[int, int]],
    tail: tuple[Any, ...] = (),
) -> None:
    """``kernel(*head, t0, t1, *tail)`` for every range of tiles, spread over the threads."""
    tasks = [partial(_unslotted, kernel, *head, *t, *tail) for t in cuts]
    run_tasks(tasks, slots(len(cuts)))


def _split_rows(
    kernels: RowKernels, n: int, c: int, nchunks: int, head: tuple[Any, ...], tail: tuple[Any, ...]
) -> None:
    """Run a measure's split kernels over ``n`` long rows: for each batch of rows, its tiles
    spread over the threads, then the batch's rows folded in order (into slot 0 of the
    buffers)."""
    part = np.empty((min(n, ROWS_PER_BATCH) * -(-c // COL_BLOCK), 6))
    for lo, hi, cuts in _tile_batches(n, c, nchunks):
        _run_tiles(kernels.tiles, (*head, lo), cuts, (part,))
        kernels.fold(*head, lo, hi, part, *tail)


# --- a loss or measure --------------------------------------------------------------------------


def run(
    kernel: Callable[..., None] | RowKernels,
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
    tempered: Sequence[bool] = (),
    temperature: float = 1.0,
    where: np.ndarray | None = None,
    reads: Sequence[np.dtype | None] = (),
    writes: int = 0,
) -> Any:
    """Run ``kernel`` and return the per-sample array, or the reduced scalar.

    ``batch_shape`` are the leading axes shared by every operand and weight (the sample axes of
    a row kernel, every axis for the element-wise kernel, which uses ``inner=2``). ``explain``
    is called when the kernel flagged invalid input: it must raise the user-facing error.
    ``kernel`` is a measure's ``RowKernels`` (a row kernel and, for a few very long rows, its
    split kernels) or the element-wise kernel. ``where``: a boolean array of
    ``batch_shape``, the samples to score (``_validate.check_where``), or None for all.
    ``out`` (already checked by
    ``_validate.check_out``) receives the ``"none"`` result.
    ``count_weights=False``: the kernel accumulates weights only when sample weights
    (the last of ``weights``) are given (the element-wise kernel); without them ``"mean"``
    divides by the number of values. ``reads`` (the element-wise kernel): the dtype the kernel
    reads each operand in, where it is not the operand's own (a half-precision input, float32
    logits in a float64 call), or None; such operands are converted a tile at a time
    (``_element_tiles``), never copied whole. ``tempered``: which operands hold logits read at
    ``temperature`` (row kernels; see ``_row_tasks``): those run in tiles of rows, never
    split. ``writes``: how many of the last operands the kernel writes (a row of values per
    sample; C-ordered arrays the caller made), passed as writable views.
    """
    tempered = tempered if temperature != 1.0 else ()
    present = [w for w in [*weights, where] if w is not None]
    arrays = [*operands, *present]
    reduce = reduction != "none"
    # The kernel writes straight into ``out`` unless it overlaps an input (then a temporary is
    # filled and copied, as NumPy ufuncs do).
    direct = out is not None and not any(np.may_share_memory(out, a) for a in arrays)
    plan = BatchPlan(batch_shape, arrays + ([out] if direct and out is not None else []), inner)
    if plan.n_pieces > MAX_PIECES:
        # Batch axes that no view can merge (say, a sliced middle axis of a 4-D array):
        # looping over many pieces would cost more than one contiguous copy.
        # (a written operand is already C-ordered: the same array, not a copy)
        arrays = [np.ascontiguousarray(a) for a in arrays]
        plan = BatchPlan(batch_shape, arrays, inner)
        direct = False
    result = None
    if not reduce:
        result = out if direct else plan.empty_out(out_dtype)
    written = range(len(operands) - writes, len(operands))
    views = [plan.view(a, writeable=k in written) for k, a in enumerate(arrays)]
    if result is not None:
        views.append(plan.view(result, writeable=True))
    rows_per_piece = math.prod(plan.merged[-inner:])
    if inner == 1:
        nchunks, split = work_plan(rows_per_piece, row_len)
        split = split and not any(tempered) and not any(half(a) for a in operands)
        cut = None
    else:
        nchunks, split = n_chunks(rows_per_piece, 1), False
        cut = boxes(plan.merged[-2], plan.merged[-1], nchunks)
    n_ops = len(operands)
    pieces = list(plan.pieces(views)) if math.prod(batch_shape) else []
    # One task list over every piece and chunk, run on one set of per-thread buffers.
    n_tasks = len(pieces) * (1 if split else nchunks if cut is None else len(cut))
    n_slots = slots(n_tasks)
    buffers = Buffers.new(n_slots, reduce)
    row_kernel = kernel.rows if isinstance(kernel, RowKernels) else kernel
    columns = kernel.columns if isinstance(kernel, RowKernels) else None
    # Read-only, as the views of given weights are: one compiled signature for both.
    no_weight = np.empty((0,) * inner, np.float64)
    no_weight.flags.writeable = False
    no_where = np.empty((0,) * inner, np.bool_)
    no_where.flags.writeable = False
    no_out = np.empty((0,) * inner, out_dtype)
    tasks: list[Callable[[int], None]] = []
    scratch: dict[int, list[np.ndarray | None]] = {}  # the threads' tiles, shared by the pieces
    for piece in pieces:
        given = iter(piece[n_ops:])
        piece_weights = [next(given) if w is not None else no_weight for w in weights]
        piece_weights.append(next(given) if where is not None else no_where)
        piece_out = next(given) if result is not None else no_out
        per_elem = (*piece[:n_ops], *piece_weights, piece_out)
        args = partial(_kernel_args, n_ops, per_elem, params, buffers)
        if split:
            assert isinstance(kernel, RowKernels)
            head = (*piece[:n_ops], *params, *piece_weights)
            tail = (piece_out, *buffers.slot(0))
            _split_rows(kernel, piece[0].shape[0], row_len, nchunks, head, tail)
        elif cut is not None and any(d is not None for d in reads):
            tasks += _element_tiles(row_kernel, args, piece[:n_ops], reads, cut, scratch)
        elif cut is not None:
            tasks += [partial(_call, row_kernel, args, box) for box in cut]
        else:
            tasks += _row_tasks(
                row_kernel, args, per_elem, n_ops, nchunks, columns, tempered, temperature,
                scratch,
            )  # fmt: skip
    run_tasks(tasks, n_slots)
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


def run_rows(
    kernel: RowKernels,
    operands: Sequence[np.ndarray],
    params: Sequence[Any],
    weights: np.ndarray | None,
    reduction: str,
    out_dtype: np.dtype,
    explain: Callable[[], None],
    out: np.ndarray | None = None,
    tempered: Sequence[bool] = (),
    temperature: float = 1.0,
    where: np.ndarray | None = None,
    writes: int = 0,
) -> Any:
    """``run`` for a row measure: ``operands`` are (..., C) arrays whose leading axes are the
    samples (the first one's), ``weights`` the sample weights or None, ``where`` the mask of
    the samples to score or None; ``tempered`` the operands of logits read at
    ``temperature``."""
    rows = operands[0]
    batch_shape, row_len = rows.shape[:-1], rows.shape[-1]
    return run(
        kernel, batch_shape, operands, params, [weights], reduction, out_dtype, explain, row_len,
        out=out, tempered=tempered, temperature=temperature, where=where, writes=writes,
    )  # fmt: skip


# --- log-sum-exp, log-softmax, softmax: a row in, a row or a value out ---------------------------


def transform(kernel: Transform, x: np.ndarray, out: np.ndarray, temperature: float = 1.0) -> None:
    """``kernel`` over the rows of the 2-D view ``x`` into ``out`` (rows, or rows x columns);
    at a ``temperature``, over tiles of rows holding ``x / temperature`` (``temper_rows``)."""
    n, c = x.shape
    if temperature != 1.0 or half(x):
        step = max(1, _TILE_BYTES // (8 * max(c, 1)))
        scratch: dict[int, np.ndarray] = {}
        wide = np.float32 if temperature == 1.0 else np.float64

        def tile(lo: int, hi: int, slot: int) -> None:
            buf = scratch.get(slot)
            if buf is None:
                buf = scratch[slot] = np.empty((min(step, n), c), wide)
            convert(x[lo:hi], buf[: hi - lo], temperature)
            kernel.rows(buf[: hi - lo], out[lo:hi])

        n_tiles = -(-n // step)
        tasks = [partial(tile, *bounds(n, n_tiles, k)) for k in range(n_tiles)]
        run_tasks(tasks, slots(len(tasks)))
        return
    nchunks, split = work_plan(n, c)
    if not split:
        call_rows(kernel.rows, n, nchunks, lambda rows, slot: (x[rows], out[rows]))
        return
    nb = -(-c // COL_BLOCK)
    rows = min(n, ROWS_PER_BATCH)
    part_m, part_s = np.empty(rows * nb), np.empty(rows * nb)
    m_row, s_row = np.empty(rows), np.empty(rows)
    for lo, hi, cuts in _tile_batches(n, c, nchunks):
        _run_tiles(lse_tiles, (x, lo), cuts, (part_m, part_s))
        lse_fold(nb, hi - lo, part_m, part_s, m_row, s_row)
        if out.ndim == 1:  # one value per row (logsumexp): nothing worth spreading
            kernel.tiles(x, out, lo, 0, (hi - lo) * nb, m_row, s_row)
        else:
            _run_tiles(kernel.tiles, (x, out, lo), cuts, (m_row, s_row))
