"""What a ``fastce.dask`` block task runs: the in-memory function or an accumulator on one
block, in the Numba threads that the task's thread may use, its input errors restated with
their positions in the whole array. Picklable and importable on any worker without
``distributed``; :mod:`fastce.dask` builds the graphs that call it."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import dask
import numpy as np

from . import _validate as v
from . import sklearn as _sklearn
from ._measures import MEASURES
from .accumulator import Accumulator, Result

# ---------------------------------------------------------------------------------------------
# Numba threads in the thread that runs a block

_numba_threads: int | None = None
"""Numba threads per task thread in this process; set on workers by :func:`configure_workers`.
``None``: Numba's thread limit divided by the threads of the pool that runs the task."""


def _pool_threads() -> int:
    """How many task threads share this process's cores (the thread running a block)."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            return int(get_worker().state.nthreads)
        except ValueError:  # not inside a worker
            pass
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)


def _numba_thread_limit() -> int:
    """``NUMBA_NUM_THREADS``: the most threads ``numba.set_num_threads`` accepts."""
    import numba

    # numba.config sets its options at run time, out of mypy's sight
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def _use_numba_threads() -> None:
    """Set the Numba thread count of the calling thread (it is per thread, not per process).

    The synchronous scheduler runs blocks in the main thread: left as the user set it.
    """
    configured = _numba_threads
    if configured is None and threading.current_thread() is threading.main_thread():
        return
    import numba

    limit = _numba_thread_limit()
    wanted = configured if configured is not None else limit // _pool_threads()
    wanted = min(max(1, wanted), limit)
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)


@dataclass(frozen=True)
class BlockCall:
    """How a block task calls fastce (picklable, sent with the graph)."""

    function: str
    measure: str | None
    keywords: tuple[str, ...]
    squeeze: tuple[bool, ...]
    class_axis: int | None
    kwargs: dict[str, Any]
    out_ndim: int
    n_groups: int | None = None  # with groups=: each id kept must be below it


# ---------------------------------------------------------------------------------------------
# Block tasks


_POSITION = re.compile(r"at position (\d+|\((?:\d+, )*\d+,?\))")


def _relocate(message: str, location: Sequence[tuple[int, int]] | None, class_axis: Any) -> str:
    """Rewrite the block-relative positions in an error message as positions in the array."""
    if not location:
        return message
    starts = [int(lo) for lo, _ in location]
    batch_starts = [s for ax, s in enumerate(starts) if ax != class_axis]
    if not any(starts):
        return message

    def shift(match: re.Match[str]) -> str:
        index = [int(t) for t in match.group(1).strip("()").split(",") if t.strip()]
        if len(index) == len(starts):
            offsets = starts
        elif class_axis is not None and len(index) == len(batch_starts):
            offsets = batch_starts
        else:
            return match.group(0)
        return "at position " + v.position([i + o for i, o in zip(index, offsets, strict=True)])

    return _POSITION.sub(shift, message)


def _block_name(call: BlockCall, block_info: dict[Any, Any] | None) -> str:
    """``block (7,) of (9,), samples [30:36]``: where a block is, as block indices and as the
    ranges of the batch (sample) axes it covers, for error messages."""
    info = (block_info or {}).get(0)
    if not info:
        return "a block"
    axes = [ax for ax in range(len(info["chunk-location"])) if ax != call.class_axis]
    index = tuple(info["chunk-location"][ax] for ax in axes)
    count = tuple(info["num-chunks"][ax] for ax in axes)
    ranges = ", ".join("{}:{}".format(*info["array-location"][ax]) for ax in axes)
    what = "elements" if call.class_axis is None else "samples"
    return f"block {index} of {count}, {what} [{ranges}]"


def _in_block(exc: Exception, call: BlockCall, block_info: dict[Any, Any] | None) -> Exception:
    """``exc``, raised by the in-memory function on one block, restated so that the caller
    learns which block failed: positions in the block become positions in the whole array,
    and the block is named. fastce's own ValueError/TypeError get a new message of the same
    type; any other exception (a fault in a worker) is re-raised as it is, with a note naming
    the block (``__notes__``, shown in its traceback; notes survive pickling to the client).
    """
    name = _block_name(call, block_info)
    if type(exc) in (ValueError, TypeError, _sklearn.InvalidParameterError):
        location = block_info[0]["array-location"] if block_info and 0 in block_info else None
        message = _relocate(str(exc), location, call.class_axis)
        return type(exc)(f"{message} (fastce.dask: {call.function} in {name})")
    note = f"fastce.dask: raised by {call.function} in {name}"
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: the attribute that 3.11's add_note sets
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
    return exc


def _arguments(blocks: Sequence[Any], call: BlockCall) -> tuple[list[Any], dict[str, Any]]:
    """A block call's positional arguments and its keyword arrays, batch-only blocks with
    their class axis of length 1 squeezed out."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for block, keyword, squeeze in zip(blocks, call.keywords, call.squeeze, strict=True):
        if squeeze:
            block = np.squeeze(block, axis=call.class_axis)
        if keyword:
            kwargs[keyword] = block
        else:
            args.append(block)
    return args, kwargs


def _raise_in_block(
    exc: Exception, call: BlockCall, block_info: dict[Any, Any] | None
) -> NoReturn:
    """Raise ``exc`` (being handled) restated by :func:`_in_block`."""
    restated = _in_block(exc, call, block_info)
    if restated is exc:
        raise  # (exc, with its traceback)
    if "distributed" in sys.modules:  # one line in the worker's log, not a traceback
        from ._dask_worker import quiet_input_errors

        quiet_input_errors()
    # The restated error is the whole story (the block's own position would mislead).
    raise restated from None


def _merged(kind: Any, parts: Sequence[Any]) -> bytes:
    """Merge the states (bytes, or block outputs holding bytes) of ``kind`` (a class with
    ``from_bytes``, ``merge`` and ``to_bytes``) exactly."""
    blobs = [p.flat[0] if isinstance(p, np.ndarray) else p for p in parts]
    merged = kind.from_bytes(blobs[0])
    for blob in blobs[1:]:
        merged.merge(kind.from_bytes(blob))
    return merged.to_bytes()


def block(*blocks: Any, call: BlockCall, block_info: dict[Any, Any] | None = None) -> Any:
    """Score one block: the in-memory function's output, or an accumulator state (bytes in a
    one-element object array) when ``call.measure`` is set."""
    _use_numba_threads()
    args, arrays = _arguments(blocks, call)
    kwargs = {**call.kwargs, **arrays}
    try:
        if call.measure is None:
            return np.asarray(MEASURES[call.function].function(*args, **kwargs))
        sample_weight = kwargs.pop("sample_weight", None)
        where = kwargs.pop("where", None)
        groups = kwargs.pop("groups", None)
        if groups is not None and call.n_groups is not None:
            # the in-memory check of the ids kept against n_groups (an accumulator takes no
            # n_groups; its own update checks ids >= 0)
            kept = None if where is None else np.asarray(where, bool)
            v.check_groups(groups, groups.shape, call.n_groups, "sum", kept)
        acc = Accumulator(call.measure, **kwargs)
        acc.update(*args, sample_weight=sample_weight, where=where, groups=groups)
    except Exception as exc:
        _raise_in_block(exc, call, block_info)
    state = np.empty((1,) * call.out_ndim, object)
    state.flat[0] = acc.to_bytes()
    return state


def merge_states(*parts: Any) -> bytes:
    """Merge accumulator states (bytes, or block outputs holding bytes) exactly."""
    return _merged(Accumulator, parts)


def result(blob: bytes, grouped: bool = False, n_groups: int | None = None) -> Result:
    """The merged state's result; ``grouped``: one per group id, ``n_groups`` of them where
    given (else the largest id seen plus one), also when no block held a sample."""
    acc = Accumulator.from_bytes(blob)
    return acc._group_result(n_groups) if grouped else acc.result()


# ---------------------------------------------------------------------------------------------
# fastce.dask.compare: a Comparison per block, merged in a tree


def compare_block(*blocks: Any, call: BlockCall, block_info: dict[Any, Any] | None = None) -> Any:
    """One block's :class:`fastce.Comparison` state (bytes in a one-element object array):
    ``call.kwargs`` are its options, the blocks its ``update``'s arrays."""
    from .comparison import Comparison

    _use_numba_threads()
    args, kwargs = _arguments(blocks, call)
    try:
        comparison = Comparison(**call.kwargs, groups="groups" in kwargs)
        comparison.update(*args, **kwargs)
    except Exception as exc:
        _raise_in_block(exc, call, block_info)
    state = np.empty((1,) * call.out_ndim, object)
    state.flat[0] = comparison.to_bytes()
    return state


def merge_comparisons(*parts: Any) -> bytes:
    """Merge :class:`fastce.Comparison` states (bytes, or block outputs holding bytes)."""
    from .comparison import Comparison

    return _merged(Comparison, parts)
