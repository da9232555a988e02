"""How per-sample values become ``"sum"`` and ``"mean"``.

Rules (the same on every path, so that they give the same bits):

* the per-sample value is the float64 value in the requested base with its weights applied, the
  value that ``reduction="none"`` returns for float64 input;
* ``"sum"`` is the exact sum of those values, correctly rounded once to float64;
* ``"mean"`` is ``fl(S / W)``, S that sum and W the correctly rounded exact sum of the weights
  that multiplied the values (the number of samples when there are none);
* for float32 input the same float64 computation, then one rounding to float32;
* NaN and inf propagate as IEEE addition would; an empty sum is 0.0, an empty mean NaN.

Sums are exact (``_kernels.exactsum``), so they do not depend on the thread count or on how the
rows were split into chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from . import _threading
from ._kernels._common import fold_chunks
from ._kernels.exactsum import ACC_LEN, acc_add_array
from ._kernels.logsumexp import COL_BLOCK

# Rows of work below which one chunk is used: starting threads and merging accumulators would
# cost more than the work. The result does not depend on it.
_MIN_WORK_PER_CHUNK = 1 << 16


def n_chunks(n_rows: int, row_len: int) -> int:
    """How many chunks of rows a kernel splits its work into (eight per thread, handed out
    dynamically; see ``launch``)."""
    if n_rows <= 1:
        return 1
    work = n_rows * max(row_len, 1)
    if work < 2 * _MIN_WORK_PER_CHUNK:
        return 1
    by_work = max(1, work // _MIN_WORK_PER_CHUNK)
    return int(min(n_rows, 8 * numba.get_num_threads(), by_work))


def launch(kernel: Any, *args: Any) -> None:
    """Call a kernel with its ``prange`` chunks handed out one at a time (dynamic schedule).

    With Numba's default static schedule each thread gets a fixed share of the chunks, so on a
    machine where another process holds one core the call waits for the slowest share; handed
    out one by one, the chunks go to whichever thread is free. Results do not depend on it.

    Every parallel launch of the package goes through here, so that it is safe on every
    threading layer (``_threading``): under a layer that is not thread-safe (``workqueue``)
    launches take turns on one lock, and in a forked child whose parent's layer is not
    fork-safe (GNU OpenMP) the kernel's serial twin runs the same chunks. Same bits either way.
    """
    if not _threading.parallel_allowed():
        from ._kernels import serial

        serial(kernel)(*args)
        return
    with _threading.launch_guard():
        previous = numba.set_parallel_chunksize(1)
        try:
            kernel(*args)
        finally:
            numba.set_parallel_chunksize(previous)


def call(kernel: Any, nchunks: int, *args: Any) -> None:
    """Run a row-chunked kernel: its serial twin for one chunk, else the parallel kernel with
    the dynamic schedule of ``launch``. Both give the same bits."""
    if nchunks == 1:
        from ._kernels import serial

        serial(kernel)(*args)
    else:
        launch(kernel, *args)


def work_plan(n_rows: int, row_len: int) -> tuple[int, bool]:
    """(nchunks, split): split spreads the column blocks of a few long rows over the threads.

    Neither choice changes a result: per-row values are folded block by block in column order
    either way, and sums are exact.
    """
    if row_len <= COL_BLOCK or not _threading.parallel_allowed():
        # Where parallel kernels are unsafe (a forked child, see ``launch``) the row kernels'
        # serial twins run: some split kernels start a parallel kernel of their own.
        return n_chunks(n_rows, row_len), False
    threads = numba.get_num_threads()
    if n_rows < 2 * threads:
        n_tiles = n_rows * -(-row_len // COL_BLOCK)
        return int(max(1, min(8 * threads, n_tiles))), True
    return n_chunks(n_rows, row_len), False


@dataclass
class Buffers:
    """The scratch arrays one kernel call (or several, one per batch piece) writes into."""

    acc: np.ndarray
    counts: np.ndarray
    bad: np.ndarray

    @classmethod
    def new(cls, nchunks: int, reduce: bool) -> Buffers:
        return cls(
            acc=np.zeros((nchunks, 2, ACC_LEN if reduce else 0), np.int64),
            # One cache line per chunk: threads bump their chunk's count on every row, and
            # neighbouring counters in one line would bounce it between cores.
            counts=np.zeros((nchunks, 8), np.int64)[:, 0],
            bad=np.zeros((nchunks, 8), np.int64)[:, 0],
        )


@dataclass
class State:
    """The exact partial sums one reducing call accumulated (what ``Accumulator`` keeps).

    ``acc[0]`` holds the exact sum of the per-sample values, ``acc[1]`` that of their weights
    (the count itself when the call had no weights), ``count`` the samples not ignored, and
    ``dtype`` the float dtype the call's scalar result is rounded to.
    """

    acc: np.ndarray
    count: int
    dtype: np.dtype


_CAPTURE: ContextVar[list[State] | None] = ContextVar("fastce_capture", default=None)


@contextmanager
def capture() -> Iterator[list[State]]:
    """Within the block, every ``"sum"``/``"mean"`` computed records its exact ``State``.

    Per context (so per thread), which is what lets ``Accumulator.update`` reuse the public
    functions, with all their checks, and keep the exact sums instead of the rounded scalar.
    """
    states: list[State] = []
    token = _CAPTURE.set(states)
    try:
        yield states
    finally:
        _CAPTURE.reset(token)


def capturing() -> bool:
    """Whether an ``Accumulator`` is recording exact states in this context."""
    return _CAPTURE.get() is not None


def fold(buffers: Buffers, weighted: bool, dtype: np.dtype) -> tuple[float, float]:
    """Merge the chunks' accumulators exactly: (sum of values, sum of weights), each rounded once.

    ``weighted=False``: the kernel did not accumulate weights (all are 1), so the weight is the
    number of values.
    """
    total, weight = fold_chunks(buffers.acc)
    count = int(buffers.counts.sum())
    if not weighted:
        weight = float(count)
    states = _CAPTURE.get()
    if states is not None:
        acc = buffers.acc[0].copy()
        if not weighted:
            acc[1] = 0
            acc_add_array(acc[1], np.array([weight], np.float64))
        states.append(State(acc, count, np.dtype(dtype)))
    return total, weight


def finish(
    buffers: Buffers, reduction: str, dtype: np.dtype, weighted: bool = True
) -> np.floating:
    """``"sum"`` or ``"mean"`` from the accumulated chunks, as a scalar of ``dtype``.

    ``weighted=False``: the kernel did not accumulate weights (all are 1), so the divisor of
    ``"mean"`` is the number of values.
    """
    total, weight = fold(buffers, weighted, dtype)
    # IEEE without warnings: a float32 sum beyond float32's range is inf, so is a mean beyond
    # float64's (found by fuzzing: "overflow encountered in cast").
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if reduction == "sum":
            return dtype.type(total)
        mean = np.float64(total) / np.float64(weight)
        return dtype.type(mean)
