"""fastce on Dask arrays: the same functions, for data split into blocks across threads,
processes or machines.

``fastce.dask`` has fastce's public functions under the same names and with the same
arguments (less ``out=``), taking Dask arrays (NumPy arrays and lists are converted):

* ``reduction="none"``, and ``logsumexp``, ``log_softmax`` and ``softmax``, return a lazy Dask
  array: each block is scored by the in-memory function, so every value is the in-memory value,
  bit for bit.
* ``reduction="sum"`` and ``"mean"``, ``perplexity`` and ``log_loss`` return a NumPy scalar (a
  float for ``log_loss``), computed when called: each block feeds a :class:`fastce.Accumulator`,
  the exact states are merged in a tree (``split_every`` at a time) and rounded once at the
  root. Integer addition is associative, so the result equals the in-memory one bit for bit
  whatever the chunking, whichever worker ran which block and whichever blocks were recomputed
  after a worker was lost. :func:`accumulate` gives the same as a lazy ``Delayed`` of a
  :class:`fastce.Result`.

The class axis must be in one chunk (each sample's classes in one block); a split class axis is
a ``ValueError`` naming the argument, not a silent rechunk (which would cost a shuffle). The
batch axes may be chunked freely: the inputs' chunks are unified (``dask.array.core.
unify_chunks``) before the blocks are paired.

Numba threads: each block sets the Numba thread count of the thread that runs it
(``numba.set_num_threads`` is per calling thread), so that Dask's threads times Numba's threads
do not exceed the cores. :func:`configure_workers` sets it per host on a distributed cluster and
warms Numba's on-disk cache before the workers use it (worker processes that compile the same
kernels into one cache directory at once can crash, numba#4807). See docs/scaling.md.

``import fastce`` does not import Dask; ``import fastce.dask`` does.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
from dask.array.core import unify_chunks
from dask.delayed import Delayed, delayed

from . import _validate as v
from . import losses as _losses
from . import sklearn as _sklearn
from .accumulator import MEASURES, Accumulator, Result

__all__ = [
    "SPLIT_EVERY",
    "accumulate",
    "binary_cross_entropy",
    "configure_workers",
    "cross_entropy",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "log_loss",
    "log_softmax",
    "logsumexp",
    "perplexity",
    "softmax",
]

Reduction = Literal["none", "sum", "mean"]

SPLIT_EVERY = 8
"""How many accumulator states one merge task combines (the fan-in of the tree)."""

_PUBLIC: dict[str, Callable[..., Any]] = {
    "entropy": _losses.entropy,
    "cross_entropy": _losses.cross_entropy,
    "binary_cross_entropy": _losses.binary_cross_entropy,
    "kl_divergence": _losses.kl_divergence,
    "js_divergence": _losses.js_divergence,
    "logsumexp": _losses.logsumexp,
    "log_softmax": _losses.log_softmax,
    "softmax": _losses.softmax,
    "log_loss": _sklearn.log_loss,
}


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


# ---------------------------------------------------------------------------------------------
# Inputs: conversion, shape checks, alignment


def _as_dask(x: Any, name: str) -> da.Array:
    """A Dask array of known shape (NumPy arrays, lists, pandas objects are converted)."""
    arr = x if isinstance(x, da.Array) else da.asarray(v.as_array(x, name))
    if any(isinstance(n, float) and math.isnan(n) for n in arr.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {arr.shape}), as a Dask DataFrame's "
            f".to_dask_array() or .values gives: use .to_dask_array(lengths=True), or call "
            f"{name}.compute_chunk_sizes() first"
        )
    return arr


def _class_axis(a: da.Array, axis: Any, name: str) -> int:
    """The class axis as a non-negative index; the in-memory function's errors for bad axes."""
    v.class_axis_last(np.empty((0,) * a.ndim), axis, name)
    return int(axis) % a.ndim


def _chunk_list(chunks: tuple[int, ...]) -> str:
    if len(chunks) <= 6:
        return str(chunks)
    return f"({', '.join(map(str, chunks[:3]))}, ..., {chunks[-1]})"


_CLASS_AXIS_WHY = (
    "fastce.dask needs each sample's classes in one chunk (the batch axes may be chunked freely)"
)


def _one_chunk(
    a: da.Array, name: str, axis: int, what: str = "class axis", why: str = _CLASS_AXIS_WHY
) -> None:
    chunks = a.chunks[axis]
    if len(chunks) > 1:
        raise ValueError(
            f"{name} has its {what} (axis {axis}, length {a.shape[axis]}) split into "
            f"{len(chunks)} chunks {_chunk_list(chunks)}; {why}: rechunk it with "
            f"{name}.rechunk({{{axis}: -1}})"
        )


def _batch_shape(shape: tuple[int, ...], class_axis: int) -> tuple[int, ...]:
    return shape[:class_axis] + shape[class_axis + 1 :]


def _check_sample_weight(w: da.Array, batch_shape: tuple[int, ...]) -> None:
    if w.shape != batch_shape:
        raise ValueError(
            f"sample_weight must have shape {batch_shape}, one weight per sample; "
            f"got shape {w.shape}"
        )


def _zero(shape: tuple[int, ...], dtype: Any, axis: int | None) -> np.ndarray:
    """A zero-size NumPy stand-in (``shape`` with ``axis`` of length 0) to validate options."""
    if axis is not None and shape:
        shape = shape[:axis] + (0,) + shape[axis + 1 :]
    return np.zeros(shape, dtype)


@dataclass
class _Item:
    """One input of a block call: its name, how the block is passed, and its axes."""

    name: str
    array: da.Array
    keyword: str = ""  # "" for a positional argument, else the keyword it is passed as
    batch_only: bool = False  # the shape of the batch axes (no class axis), e.g. class indices


@dataclass
class _Plan:
    """What a public function becomes on blocks: aligned inputs and the per-block call."""

    function: str  # the in-memory function (for "none" and transforms)
    measure: str | None  # the accumulator measure (for "sum"/"mean")
    items: list[_Item]
    class_axis: int | None  # None: element-wise, every input has the full shape
    ndim: int
    kwargs: dict[str, Any]  # keyword options of the in-memory function, without the arrays
    dtype: np.dtype  # the in-memory function's result dtype
    drop_class_axis: bool = True
    arrays: list[da.Array] = field(default_factory=list)

    def align(self) -> None:
        """Unify the chunks of the batch axes, then give batch-shaped inputs a class axis of
        length 1 so that every block call gets blocks covering the same samples."""
        full = tuple(range(self.ndim))
        batch = tuple(ax for ax in full if ax != self.class_axis)
        args: list[Any] = []
        for item in self.items:
            args += [item.array, batch if item.batch_only else full]
        _, aligned = unify_chunks(*args)
        self.arrays = []
        for item, a in zip(self.items, aligned, strict=True):
            if item.batch_only and self.class_axis is not None:
                a = da.expand_dims(a, self.class_axis)
            self.arrays.append(a)

    def call(self, measure: str | None) -> _BlockCall:
        return _BlockCall(
            function=self.function,
            measure=measure,
            keywords=tuple(item.keyword for item in self.items),
            squeeze=tuple(item.batch_only and self.class_axis is not None for item in self.items),
            class_axis=self.class_axis,
            kwargs=self.kwargs,
            out_ndim=self.out_ndim,
        )

    @property
    def out_ndim(self) -> int:
        dropped = self.class_axis is not None and self.drop_class_axis
        return self.ndim - int(dropped)

    @property
    def drop(self) -> list[int]:
        if self.class_axis is not None and self.drop_class_axis:
            return [self.class_axis]
        return []


@dataclass(frozen=True)
class _BlockCall:
    """How a block task calls fastce (picklable, sent with the graph)."""

    function: str
    measure: str | None
    keywords: tuple[str, ...]
    squeeze: tuple[bool, ...]
    class_axis: int | None
    kwargs: dict[str, Any]
    out_ndim: int


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


def _block_name(call: _BlockCall, block_info: dict[Any, Any] | None) -> str:
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


def _in_block(exc: Exception, call: _BlockCall, block_info: dict[Any, Any] | None) -> Exception:
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


def _block(*blocks: Any, call: _BlockCall, block_info: dict[Any, Any] | None = None) -> Any:
    """Score one block: the in-memory function's output, or an accumulator state (bytes in a
    one-element object array) when ``call.measure`` is set."""
    _use_numba_threads()
    args: list[Any] = []
    kwargs = dict(call.kwargs)
    for block, keyword, squeeze in zip(blocks, call.keywords, call.squeeze, strict=True):
        if squeeze:
            block = np.squeeze(block, axis=call.class_axis)
        if keyword:
            kwargs[keyword] = block
        else:
            args.append(block)
    try:
        if call.measure is None:
            return np.asarray(_PUBLIC[call.function](*args, **kwargs))
        sample_weight = kwargs.pop("sample_weight", None)
        acc = Accumulator(call.measure, **kwargs)
        acc.update(*args, sample_weight=sample_weight)
    except Exception as exc:
        restated = _in_block(exc, call, block_info)
        if restated is exc:
            raise
        if "distributed" in sys.modules:  # one line in the worker's log, not a traceback
            from ._dask_worker import quiet_input_errors

            quiet_input_errors()
        # The restated error is the whole story (the block's own position would mislead).
        raise restated from None
    state = np.empty((1,) * call.out_ndim, object)
    state.flat[0] = acc.to_bytes()
    return state


def _merge_states(*parts: Any) -> bytes:
    """Merge accumulator states (bytes, or block outputs holding bytes) exactly."""
    blobs = [p.flat[0] if isinstance(p, np.ndarray) else p for p in parts]
    acc = Accumulator.from_bytes(blobs[0])
    for blob in blobs[1:]:
        acc.merge(Accumulator.from_bytes(blob))
    return acc.to_bytes()


def _result(blob: bytes) -> Result:
    return Accumulator.from_bytes(blob).result()


def _float64_sums(blob: bytes) -> tuple[float, float]:
    """(S, W), each correctly rounded to float64, whatever the dtype of the data.

    ``Result`` rounds the sum and the mean to the data's dtype; ``perplexity`` and ``log_loss``
    work from the float64 mean of float32 data, as their in-memory versions do.
    """
    res = Accumulator.from_bytes(blob).result()
    return res.sum64, res.weight


# ---------------------------------------------------------------------------------------------
# Graphs


def _map(plan: _Plan) -> da.Array:
    """The lazy ``"none"`` output: the in-memory function on each block."""
    plan.align()
    return da.map_blocks(
        _block,
        *plan.arrays,
        call=plan.call(None),
        drop_axis=plan.drop,
        dtype=plan.dtype,
        meta=np.empty((0,) * plan.out_ndim, plan.dtype),
        token=f"fastce-{plan.function}",
    )


def _merged_state(plan: _Plan, split_every: int | None) -> Delayed:
    """A ``Delayed`` of the merged accumulator state (bytes) of every block."""
    if plan.measure is None:
        raise TypeError(f"{plan.function} has no sum or mean")
    fan_in = SPLIT_EVERY if split_every is None else int(split_every)
    if fan_in < 2:
        raise ValueError(f"split_every must be an integer >= 2; got {split_every!r}")
    plan.align()
    first = plan.arrays[0]
    out_axes = [ax for ax in range(plan.ndim) if ax not in plan.drop]
    states = da.map_blocks(
        _block,
        *plan.arrays,
        call=plan.call(plan.measure),
        drop_axis=plan.drop,
        chunks=tuple((1,) * first.numblocks[ax] for ax in out_axes),
        dtype=object,
        meta=np.empty((0,) * len(out_axes), object),
        token=f"fastce-{plan.measure}-state",
    )
    parts: list[Any] = list(states.to_delayed().ravel())
    while len(parts) > fan_in:
        parts = [
            delayed(_merge_states, pure=True)(*parts[i : i + fan_in])
            for i in range(0, len(parts), fan_in)
        ]
    return delayed(_merge_states, pure=True)(*parts)


def _scalar(plan: _Plan, reduction: str) -> Any:
    """``"sum"``/``"mean"`` computed now, as the in-memory function's scalar type."""
    (blob,) = dask.compute(_merged_state(plan, None))
    res = _result(blob)
    return plan.dtype.type(res.sum if reduction == "sum" else res.mean)


def _finish(plan: _Plan, reduction: str) -> Any:
    if reduction == "none":
        return _map(plan)
    return _scalar(plan, reduction)


# ---------------------------------------------------------------------------------------------
# Plans per function: every check the in-memory function makes on shapes and options, up front


def _rows_dtype(
    function: str, items: list[_Item], class_axis: int, kwargs: dict[str, Any]
) -> np.dtype:
    """Run the in-memory function on zero-size stand-ins: its option checks, and its dtype."""
    zero_axis = next((ax for ax in range(items[0].array.ndim) if ax != class_axis), None)
    args: list[Any] = []
    extra: dict[str, Any] = {}
    for item in items:
        axis = zero_axis
        if item.batch_only and zero_axis is not None:
            axis = 0
        stand_in = _zero(item.array.shape, item.array.dtype, axis)
        if item.keyword:
            extra[item.keyword] = stand_in
        else:
            args.append(stand_in)
    return np.asarray(_PUBLIC[function](*args, **kwargs, **extra)).dtype


def _weight_item(sample_weight: Any, batch_shape: tuple[int, ...]) -> list[_Item]:
    if sample_weight is None:
        return []
    w = _as_dask(sample_weight, "sample_weight")
    _check_sample_weight(w, batch_shape)
    return [_Item("sample_weight", w, "sample_weight", batch_only=True)]


def _plan_entropy(
    p: Any, axis: Any, base: Any, from_logits: Any, reduction: Any, sample_weight: Any
) -> _Plan:
    checked = v.check_reduction(reduction)
    arr = _as_dask(p, "p")
    cls = _class_axis(arr, axis, "p")
    _one_chunk(arr, "p", cls)
    items = [_Item("p", arr), *_weight_item(sample_weight, _batch_shape(arr.shape, cls))]
    kwargs = {"axis": axis, "base": base, "from_logits": from_logits}
    dtype = _rows_dtype("entropy", items, cls, {**kwargs, "reduction": checked})
    return _Plan("entropy", "entropy", items, cls, arr.ndim, kwargs, dtype)


def _plan_cross_entropy(
    target: Any,
    pred: Any,
    axis: Any,
    from_logits: Any,
    base: Any,
    eps: Any,
    label_smoothing: Any,
    class_weight: Any,
    ignore_index: Any,
    reduction: Any,
    sample_weight: Any,
) -> _Plan:
    checked = v.check_reduction(reduction)
    pred_arr = _as_dask(pred, "pred")
    target_arr = _as_dask(target, "target")
    cls = _class_axis(pred_arr, axis, "pred")
    _one_chunk(pred_arr, "pred", cls)
    batch_shape = _batch_shape(pred_arr.shape, cls)
    if target_arr.shape == batch_shape:
        target_item = _Item("target", target_arr, batch_only=True)
    elif target_arr.shape == pred_arr.shape:
        _one_chunk(target_arr, "target", cls)
        target_item = _Item("target", target_arr)
    else:
        raise ValueError(
            f"target has shape {target_arr.shape} but pred has shape {pred_arr.shape}: expected "
            f"class indices of shape {batch_shape} (pred without its class axis {axis}) or "
            f"probabilities of shape {pred_arr.shape}"
        )
    items = [target_item, _Item("pred", pred_arr), *_weight_item(sample_weight, batch_shape)]
    kwargs = {
        "axis": axis,
        "from_logits": from_logits,
        "base": base,
        "eps": eps,
        "label_smoothing": label_smoothing,
        "class_weight": _small_array(class_weight),
        "ignore_index": ignore_index,
    }
    dtype = _rows_dtype("cross_entropy", items, cls, {**kwargs, "reduction": checked})
    return _Plan("cross_entropy", "cross_entropy", items, cls, pred_arr.ndim, kwargs, dtype)


def _small_array(x: Any) -> Any:
    """An option array (class_weight, pos_weight, labels) as NumPy, computed if it is Dask."""
    if x is None or np.isscalar(x):
        return x
    return np.asarray(x)


def _plan_pair(
    function: str,
    p: Any,
    q: Any,
    axis: Any,
    reduction: Any,
    sample_weight: Any,
    kwargs: dict[str, Any],
) -> _Plan:
    checked = v.check_reduction(reduction)
    p_arr = _as_dask(p, "p")
    q_arr = _as_dask(q, "q")
    cls = _class_axis(p_arr, axis, "p")
    _class_axis(q_arr, axis, "q")
    if p_arr.shape != q_arr.shape:
        raise ValueError(
            f"p has shape {p_arr.shape} but q has shape {q_arr.shape}; they must match"
        )
    _one_chunk(p_arr, "p", cls)
    _one_chunk(q_arr, "q", cls)
    batch_shape = _batch_shape(p_arr.shape, cls)
    items = [_Item("p", p_arr), _Item("q", q_arr), *_weight_item(sample_weight, batch_shape)]
    kwargs = {"axis": axis, **kwargs}
    dtype = _rows_dtype(function, items, cls, {**kwargs, "reduction": checked})
    return _Plan(function, function, items, cls, p_arr.ndim, kwargs, dtype)


def _varying_axes(weight_shape: tuple[int, ...], shape: tuple[int, ...]) -> list[int]:
    """Axes of ``shape`` along which a weight broadcast to it takes more than one value."""
    offset = len(shape) - len(weight_shape)
    return [offset + i for i, n in enumerate(weight_shape) if n != 1]


def _plan_bce(
    target: Any,
    pred: Any,
    from_logits: Any,
    base: Any,
    eps: Any,
    pos_weight: Any,
    reduction: Any,
    sample_weight: Any,
) -> _Plan:
    checked = v.check_reduction(reduction)
    pred_arr = _as_dask(pred, "pred")
    target_arr = _as_dask(target, "target")
    if target_arr.shape != pred_arr.shape:
        raise ValueError(
            f"target has shape {target_arr.shape} but pred has shape {pred_arr.shape}; "
            "they must match"
        )
    shape = pred_arr.shape
    items = [_Item("target", target_arr), _Item("pred", pred_arr)]
    kwargs: dict[str, Any] = {"from_logits": from_logits, "base": base, "eps": eps}
    if sample_weight is not None:
        # The in-memory rule (a 1-D weight of length N is one weight per row of an (N, ...)
        # input), applied to the whole array: per block the rule could read a weight row that
        # broadcasts along the last axis as one per row when a block happens to be square.
        w = _as_dask(sample_weight, "sample_weight")
        if w.ndim == 1 and len(shape) >= 2 and w.shape[0] == shape[0]:
            w = w.reshape(w.shape + (1,) * (len(shape) - 1))
        v.broadcast_weight(np.broadcast_to(np.zeros(()), w.shape), shape, "sample_weight")
        items.append(_Item("sample_weight", da.broadcast_to(w, shape), "sample_weight"))
    if pos_weight is not None:
        if isinstance(pos_weight, da.Array) and checked == "none":
            pw: Any = pos_weight
        else:
            pw = v.as_weight_array(_small_array(pos_weight), "pos_weight")
        v.broadcast_weight(np.broadcast_to(np.zeros(()), pw.shape), shape, "pos_weight")
        if checked == "none":
            items.append(_Item("pos_weight", da.broadcast_to(da.asarray(pw), shape), "pos_weight"))
        else:
            # An accumulator holds one pos_weight: every block must see all of it.
            why = (
                f"with reduction={checked!r} one accumulator holds one pos_weight, so every "
                "block must span the axes along which pos_weight varies"
            )
            for ax in _varying_axes(pw.shape, shape):
                for item in items:
                    _one_chunk(
                        item.array, item.name, ax, "axis along which pos_weight varies", why
                    )
            kwargs["pos_weight"] = pw
    # Stand-ins with no rows check the options and give the dtype; pos_weight (already checked
    # above) is left out, since it need not broadcast to an empty first axis.
    zero_axis = 0 if shape else None
    args: list[Any] = []
    extra: dict[str, Any] = {}
    for item in items:
        stand_in = _zero(shape, item.array.dtype, zero_axis)
        if item.keyword == "sample_weight":
            extra["sample_weight"] = stand_in
        elif not item.keyword:
            args.append(stand_in)
    options = {k: val for k, val in kwargs.items() if k != "pos_weight"}
    function: Callable[..., Any] = _losses.binary_cross_entropy
    dtype = np.asarray(function(*args, **options, **extra, reduction=checked)).dtype
    return _Plan(
        "binary_cross_entropy", "binary_cross_entropy", items, None, len(shape), kwargs, dtype
    )


def _plan_transform(function: str, x: Any, axis: Any, keep_class_axis: bool) -> _Plan:
    arr = _as_dask(x, "x")
    cls = _class_axis(arr, axis, "x")
    _one_chunk(arr, "x", cls)
    items = [_Item("x", arr)]
    kwargs = {"axis": axis}
    dtype = _rows_dtype(function, items, cls, kwargs)
    return _Plan(function, None, items, cls, arr.ndim, kwargs, dtype, not keep_class_axis)


# ---------------------------------------------------------------------------------------------
# The public functions


def entropy(
    p: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    from_logits: bool = False,
    reduction: Reduction = "none",
    sample_weight: Any = None,
) -> Any:
    r"""Shannon entropy of each distribution along ``axis``, on a Dask array.

    .. math:: H(P) = -\sum_c p_c \log p_c

    Parameters
    ----------
    p : dask.array.Array or array_like
        Probabilities (or logits with ``from_logits=True``), classes along ``axis``. The class
        axis must be in one chunk; the batch axes may be chunked freely.
    axis, base, from_logits
        As in :func:`fastce.entropy`.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"none"``: a lazy Dask array of per-sample entropies (times their sample weights).
        ``"sum"``/``"mean"``: computed now, exactly (see the module's description).
    sample_weight : dask.array.Array or array_like, optional
        One non-negative weight per sample (the shape of ``p`` without ``axis``); its chunks
        need not match ``p``'s.

    Returns
    -------
    dask.array.Array or NumPy scalar
        ``"none"``: lazy, of the shape of ``p`` without ``axis`` and of the dtype the in-memory
        function returns. ``"sum"``/``"mean"``: ``np.float32``/``np.float64``, the same bits
        as ``fastce.entropy`` on the whole array.

    Raises
    ------
    ValueError
        The class axis split over several chunks, shapes that do not match, unknown chunk
        sizes, an option out of its domain; at compute time, a bad value, at its position in
        the whole array.
    TypeError
        ``p`` is not a real numeric array.

    See Also
    --------
    fastce.entropy, accumulate

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> p = da.from_array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], chunks=(2, 3))
    >>> fastce.dask.entropy(p, base=2).compute()
    array([1.5, 0. , 1. ])
    >>> fastce.dask.entropy(p, base=2, reduction="mean")
    np.float64(0.8333333333333334)
    """
    plan = _plan_entropy(p, axis, base, from_logits, reduction, sample_weight)
    return _finish(plan, v.check_reduction(reduction))


def cross_entropy(
    target: Any,
    pred: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    label_smoothing: float = 0.0,
    class_weight: Any = None,
    ignore_index: int | None = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
) -> Any:
    r"""Cross-entropy of predicted distributions against class indices or soft targets, on
    Dask arrays.

    .. math:: H(P, Q) = -\sum_c p_c \log q_c

    Parameters
    ----------
    target : dask.array.Array or array_like
        Class indices of the shape of ``pred`` without ``axis``, or probabilities of ``pred``'s
        shape (class axis in one chunk).
    pred : dask.array.Array or array_like
        Probabilities, or logits with ``from_logits=True``; the class axis in one chunk.
    axis, from_logits, base, eps, label_smoothing, class_weight, ignore_index
        As in :func:`fastce.cross_entropy` (``class_weight`` is a small NumPy array, sent with
        every block).
    reduction : {"none", "sum", "mean"}, default "none"
        ``"none"``: lazy per-sample losses. ``"sum"``/``"mean"``: computed now, exactly, with
        ``class_weight``/``ignore_index`` normalisation as the in-memory function.
    sample_weight : dask.array.Array or array_like, optional
        One non-negative weight per sample.

    Returns
    -------
    dask.array.Array or NumPy scalar
        As :func:`entropy`; the same values (or bits) as :func:`fastce.cross_entropy`.

    Raises
    ------
    ValueError, TypeError
        As :func:`entropy`; out-of-range labels are reported at compute time with their
        position in the whole ``target``.

    See Also
    --------
    fastce.cross_entropy, perplexity, accumulate

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastce, fastce.dask
    >>> logits = da.from_array(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]]),
    ...                        chunks=(1, 3))
    >>> labels = da.from_array(np.array([0, 2, 1]), chunks=2)
    >>> fastce.dask.cross_entropy(labels, logits, from_logits=True).round(4).compute()
    array([0.2413, 0.1096, 1.0986])
    >>> mean = fastce.dask.cross_entropy(labels, logits, from_logits=True, reduction="mean")
    >>> mean == fastce.cross_entropy(labels.compute(), logits.compute(), from_logits=True,
    ...                              reduction="mean")
    np.True_
    """
    plan = _plan_cross_entropy(
        target,
        pred,
        axis,
        from_logits,
        base,
        eps,
        label_smoothing,
        class_weight,
        ignore_index,
        reduction,
        sample_weight,
    )
    return _finish(plan, v.check_reduction(reduction))


def perplexity(
    target: Any,
    pred: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    eps: float | Literal["auto"] = "auto",
    class_weight: Any = None,
    ignore_index: int | None = None,
    sample_weight: Any = None,
) -> Any:
    r"""Perplexity: the exponential of the exact (weighted) mean cross-entropy in nats, on Dask
    arrays, computed now.

    .. math:: \mathrm{PPL} = \exp\Big(\frac{\sum_i s_i w_{y_i} H_i}{\sum_i s_i w_{y_i}}\Big)

    Parameters
    ----------
    target, pred, axis, from_logits, eps, class_weight, ignore_index, sample_weight
        As in :func:`cross_entropy`.

    Returns
    -------
    NumPy scalar
        Of ``pred``'s float dtype; the same bits as :func:`fastce.perplexity` (the exponential
        of the float64 mean, then rounded to float32 for float32 input).

    See Also
    --------
    fastce.perplexity, cross_entropy

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> pred = da.full((6, 4), 0.25, chunks=(4, 4))
    >>> labels = da.from_array([0, 3, 1, 2, 2, 1], chunks=3)
    >>> fastce.dask.perplexity(labels, pred)
    np.float64(4.0)
    """
    pred_arr = _as_dask(pred, "pred")
    plan = _plan_cross_entropy(
        target,
        pred_arr,
        axis,
        from_logits,
        None,
        eps,
        0.0,
        class_weight,
        ignore_index,
        "mean",
        sample_weight,
    )
    (blob,) = dask.compute(_merged_state(plan, None))
    total, weight = _float64_sums(blob)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = np.float64(total) / np.float64(weight)
        return plan.dtype.type(np.exp(mean))


def kl_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    reduction: Reduction = "none",
    sample_weight: Any = None,
) -> Any:
    r"""Kullback-Leibler divergence of ``q`` from ``p`` along ``axis``, on Dask arrays.

    .. math:: \mathrm{KL}(P \,\|\, Q) = \sum_c p_c \log \frac{p_c}{q_c}

    Parameters
    ----------
    p, q : dask.array.Array or array_like
        Of the same shape, the class axis in one chunk (their batch chunks may differ).
    axis, from_logits, base, eps
        As in :func:`fastce.kl_divergence`.
    reduction, sample_weight
        As in :func:`entropy`.

    Returns
    -------
    dask.array.Array or NumPy scalar
        As :func:`entropy`.

    See Also
    --------
    fastce.kl_divergence, js_divergence

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> P = da.from_array([[0.10, 0.40, 0.50], [0.5, 0.5, 0.0]], chunks=(1, 3))
    >>> Q = da.from_array([[0.80, 0.15, 0.05], [0.5, 0.5, 0.0]], chunks=(2, 3))
    >>> fastce.dask.kl_divergence(P, Q, base=2).round(3).compute()
    array([1.927, 0.   ])
    """
    plan = _plan_pair(
        "kl_divergence",
        p,
        q,
        axis,
        reduction,
        sample_weight,
        {"from_logits": from_logits, "base": base, "eps": eps},
    )
    return _finish(plan, v.check_reduction(reduction))


def js_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
) -> Any:
    r"""Jensen-Shannon divergence between distributions along ``axis``, on Dask arrays.

    .. math:: \mathrm{JS}(P, Q) = \tfrac12 \mathrm{KL}(P \| M) + \tfrac12 \mathrm{KL}(Q \| M),
              \qquad M = \tfrac12 (P + Q)

    Parameters
    ----------
    p, q : dask.array.Array or array_like
        Probabilities of the same shape, the class axis in one chunk.
    axis, base
        As in :func:`fastce.js_divergence`.
    reduction, sample_weight
        As in :func:`entropy`.

    Returns
    -------
    dask.array.Array or NumPy scalar
        As :func:`entropy`.

    See Also
    --------
    fastce.js_divergence, kl_divergence

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> P = da.from_array([[1.0, 0.0], [0.5, 0.5]], chunks=(1, 2))
    >>> Q = da.from_array([[0.0, 1.0], [0.5, 0.5]], chunks=(1, 2))
    >>> fastce.dask.js_divergence(P, Q, base=2, reduction="sum")
    np.float64(1.0)
    """
    plan = _plan_pair("js_divergence", p, q, axis, reduction, sample_weight, {"base": base})
    return _finish(plan, v.check_reduction(reduction))


def binary_cross_entropy(
    target: Any,
    pred: Any,
    *,
    from_logits: bool = False,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    pos_weight: Any = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
) -> Any:
    r"""Element-wise binary cross-entropy on Dask arrays (any chunking of any axis).

    .. math:: \ell = -\big(w_+ \, y \log p + (1 - y) \log(1 - p)\big)

    Parameters
    ----------
    target, pred : dask.array.Array or array_like
        Of the same shape; every axis may be chunked (their chunks may differ).
    from_logits, base, eps
        As in :func:`fastce.binary_cross_entropy`.
    pos_weight : array_like, optional
        Broadcast against ``pred``, as the in-memory function. With ``"sum"``/``"mean"`` every
        axis along which it varies (the label axis of a per-label weight) must be in one chunk,
        since one accumulator holds one ``pos_weight``.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"mean"`` is over all elements, weighted by ``sample_weight``.
    sample_weight : dask.array.Array or array_like, optional
        Broadcast against ``pred``; a 1-D array of length ``N`` is one weight per row of an
        ``(N, ...)`` input, as in :func:`fastce.binary_cross_entropy`.

    Returns
    -------
    dask.array.Array or NumPy scalar
        ``"none"``: lazy element-wise losses of ``pred``'s shape; otherwise the same bits as
        the in-memory function.

    See Also
    --------
    fastce.binary_cross_entropy, log_loss

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> y = da.from_array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], chunks=4)
    >>> p = da.from_array([0.8, 0.9, 0.9, 0.6, 0.8, 0.1, 0.4, 0.2, 0.1, 0.3], chunks=3)
    >>> round(float(fastce.dask.binary_cross_entropy(y, p, reduction="mean")), 3)
    0.247
    """
    plan = _plan_bce(target, pred, from_logits, base, eps, pos_weight, reduction, sample_weight)
    return _finish(plan, v.check_reduction(reduction))


def log_loss(
    y_true: Any,
    y_proba: Any,
    *,
    normalize: bool = True,
    sample_weight: Any = None,
    labels: Any = None,
) -> float:
    r"""Log loss as ``sklearn.metrics.log_loss`` (and :func:`fastce.log_loss`), on Dask
    arrays; ``labels`` is required.

    .. math:: L = -\frac{1}{\sum_i s_i} \sum_i s_i \log \mathrm{clip}(p_{i, y_i}, \epsilon,
              1 - \epsilon)

    Parameters
    ----------
    y_true : dask.array.Array or array_like
        One label per sample (numbers or strings), shape ``(n_samples,)``.
    y_proba : dask.array.Array or array_like
        Shape ``(n_samples, n_classes)`` with the class axis in one chunk, or ``(n_samples,)``
        (the probability of the greater label).
    normalize : bool, default True
        The (weighted) mean; otherwise the (weighted) sum.
    sample_weight : dask.array.Array or array_like, optional
        Shape ``(n_samples,)``.
    labels : array_like
        Every class label, in the order of ``y_proba``'s columns. Required: a block cannot
        infer the label set from the labels it happens to hold.

    Returns
    -------
    float
        Computed now; the same bits as :func:`fastce.log_loss` on the whole arrays.

    Raises
    ------
    ValueError
        ``labels`` missing, shapes that do not match, the class axis split into chunks; at
        compute time, what the in-memory function raises for a block.
    ZeroDivisionError
        Sample weights that sum to zero with ``normalize=True``.

    See Also
    --------
    fastce.log_loss, cross_entropy

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> y = da.from_array(["spam", "ham", "ham", "spam"], chunks=2)
    >>> p = da.from_array([[.1, .9], [.9, .1], [.8, .2], [.35, .65]], chunks=(3, 2))
    >>> round(fastce.dask.log_loss(y, p, labels=["ham", "spam"]), 5)
    0.21616
    """
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool; got {normalize!r}")
    plan = _plan_log_loss(y_true, y_proba, sample_weight, labels)
    (blob,) = dask.compute(_merged_state(plan, None))
    total, weight = _float64_sums(blob)
    if not normalize:
        return total
    if weight == 0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return total / weight


def _plan_log_loss(y_true: Any, y_proba: Any, sample_weight: Any, labels: Any) -> _Plan:
    if labels is None:
        raise ValueError(
            "fastce.dask.log_loss needs labels= (every class label, in the order of y_proba's "
            "columns): a block cannot infer the label set from the labels it holds"
        )
    proba = _as_dask(y_proba, "y_proba")
    truth = _as_dask(y_true, "y_true")
    if proba.ndim not in (1, 2):
        raise ValueError(
            f"y_proba must have shape (n_samples,) or (n_samples, n_classes); got {proba.shape}"
        )
    if truth.ndim == 2 and truth.shape[1] == 1:
        truth = truth[:, 0]
    n = proba.shape[0]
    if truth.shape != (n,):
        raise ValueError(
            f"y_true must hold one label per sample, shape ({n},) as y_proba {proba.shape}; got "
            f"shape {truth.shape} (a label-indicator y_true needs fastce.log_loss in memory)"
        )
    cls: int | None = None
    if proba.ndim == 2:
        cls = 1
        _one_chunk(proba, "y_proba", 1)
    per_row = cls is not None
    items = [_Item("y_true", truth, batch_only=per_row), _Item("y_proba", proba)]
    if sample_weight is not None:
        w = _as_dask(sample_weight, "sample_weight")
        if w.shape != (n,):
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"{[n, n, *w.shape[:1]]}"
            )
        items.append(_Item("sample_weight", w, "sample_weight", batch_only=per_row))
    options = {"labels": _small_array(labels)}
    Accumulator("log_loss", **options)  # its checks, now
    return _Plan("log_loss", "log_loss", items, cls, proba.ndim, options, np.dtype(np.float64))


def logsumexp(x: Any, *, axis: int = -1) -> da.Array:
    r"""Log of the sum of exponentials along ``axis``, lazily on a Dask array.

    .. math:: \mathrm{LSE}(x) = \log \sum_c e^{x_c}

    Parameters
    ----------
    x : dask.array.Array or array_like
        The class axis in one chunk.
    axis : int, default -1

    Returns
    -------
    dask.array.Array
        ``x.shape`` without ``axis``; each value that of :func:`fastce.logsumexp`.

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> fastce.dask.logsumexp(da.zeros((4, 2), chunks=(3, 2))).compute().round(6)
    array([0.693147, 0.693147, 0.693147, 0.693147])
    """
    return _map(_plan_transform("logsumexp", x, axis, keep_class_axis=False))


def log_softmax(x: Any, *, axis: int = -1) -> da.Array:
    r"""Log-softmax along ``axis``, lazily on a Dask array (class axis in one chunk).

    .. math:: \log \mathrm{softmax}(x)_c = x_c - \log \sum_k e^{x_k}

    Returns
    -------
    dask.array.Array
        Of ``x``'s shape and chunks; each value that of :func:`fastce.log_softmax`.

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> fastce.dask.log_softmax(da.zeros((3, 2), chunks=(2, 2))).compute().round(6)
    array([[-0.693147, -0.693147],
           [-0.693147, -0.693147],
           [-0.693147, -0.693147]])
    """
    return _map(_plan_transform("log_softmax", x, axis, keep_class_axis=True))


def softmax(x: Any, *, axis: int = -1) -> da.Array:
    r"""Softmax along ``axis``, lazily on a Dask array (class axis in one chunk).

    .. math:: \mathrm{softmax}(x)_c = e^{x_c - m} / \sum_k e^{x_k - m}

    Returns
    -------
    dask.array.Array
        Of ``x``'s shape and chunks; each value that of :func:`fastce.softmax`.

    Examples
    --------
    >>> import dask.array as da, fastce.dask
    >>> fastce.dask.softmax(da.zeros((3, 2), chunks=(2, 2))).compute()
    array([[0.5, 0.5],
           [0.5, 0.5],
           [0.5, 0.5]])
    """
    return _map(_plan_transform("softmax", x, axis, keep_class_axis=True))


def accumulate(
    measure: str,
    *arrays: Any,
    sample_weight: Any = None,
    split_every: int | None = None,
    **options: Any,
) -> Delayed:
    """A lazy :class:`fastce.Result` of ``measure`` over Dask arrays: per block an
    :class:`fastce.Accumulator`, the states merged in a tree.

    The lazy form of ``reduction="sum"``/``"mean"``: compute several measures in one pass over
    the data with ``dask.compute(a, b)``, or hand it to ``client.compute``.

    Parameters
    ----------
    measure : str
        ``"entropy"``, ``"cross_entropy"``, ``"binary_cross_entropy"``, ``"kl_divergence"``,
        ``"js_divergence"`` or ``"log_loss"`` (then ``labels=`` is required).
    *arrays : dask.array.Array or array_like
        The positional arrays of that function (``p``; ``target, pred``; ``y_true, y_proba``).
    sample_weight : dask.array.Array or array_like, optional
        As the function's ``sample_weight``.
    split_every : int, optional
        How many states one merge task combines (default :data:`SPLIT_EVERY`). The result
        does not depend on it.
    **options
        That function's keyword options, as for :class:`fastce.Accumulator`.

    Returns
    -------
    dask.delayed.Delayed
        Computes to a :class:`fastce.Result` (``mean``, ``sum``, ``count``, ``weight``) equal
        to ``fastce.Accumulator(measure, **options)`` updated with all the data at once.

    Examples
    --------
    >>> import dask, dask.array as da, fastce.dask
    >>> p = da.from_array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]], chunks=(2, 2))
    >>> (res,) = dask.compute(fastce.dask.accumulate("entropy", p, base=2))
    >>> res.count, round(res.mean, 6)
    (3, 0.603759)
    """
    if not isinstance(measure, str) or measure not in MEASURES:
        Accumulator(measure)  # raises the accumulator's error
    want = MEASURES[measure].arity
    if len(arrays) != want:
        names = "one array (p)" if want == 1 else "two arrays (target, pred)"
        raise TypeError(f"accumulate({measure!r}) takes {names}; got {len(arrays)}")
    Accumulator(measure, **options)  # option names and values, checked now
    plan = _plan_for(measure, arrays, sample_weight, options)
    return delayed(_result, pure=True)(_merged_state(plan, split_every))


def _plan_for(
    measure: str, arrays: Sequence[Any], sample_weight: Any, options: dict[str, Any]
) -> _Plan:
    opts = dict(options)
    if measure == "entropy":
        return _plan_entropy(
            arrays[0],
            opts.get("axis", -1),
            opts.get("base"),
            opts.get("from_logits", False),
            "sum",
            sample_weight,
        )
    if measure == "cross_entropy":
        return _plan_cross_entropy(
            arrays[0],
            arrays[1],
            opts.get("axis", -1),
            opts.get("from_logits", False),
            opts.get("base"),
            opts.get("eps", "auto"),
            opts.get("label_smoothing", 0.0),
            opts.get("class_weight"),
            opts.get("ignore_index"),
            "sum",
            sample_weight,
        )
    if measure in ("kl_divergence", "js_divergence"):
        axis = opts.pop("axis", -1)
        return _plan_pair(measure, arrays[0], arrays[1], axis, "sum", sample_weight, opts)
    if measure == "binary_cross_entropy":
        return _plan_bce(
            arrays[0],
            arrays[1],
            opts.get("from_logits", False),
            opts.get("base"),
            opts.get("eps", "auto"),
            opts.get("pos_weight"),
            "sum",
            sample_weight,
        )
    return _plan_log_loss(arrays[0], arrays[1], sample_weight, opts.get("labels"))


# ---------------------------------------------------------------------------------------------
# Distributed workers


def configure_workers(
    client: Any,
    numba_threads: int | None = None,
    *,
    warmup: bool = True,
    progress: bool = True,
) -> dict[str, int | None]:
    """Prepare a ``distributed`` cluster's workers for fastce: a warm Numba cache, and Numba
    threads that do not oversubscribe the cores.

    1. With ``warmup=True``: compile (or load) every kernel common calls use
       (``python -m fastce warmup``, and the accumulator's own kernels) in this process, then
       in one worker per host, then in the other workers, which then only load from the cache.
       Worker processes that compile the same kernels into one cache directory at the same
       time can crash (numba#4807); this way only one process per host ever writes. With a
       warm cache this takes about a second; with a cold one, as long as ``fastce warmup``
       on each host (minutes on a small machine). Each step is reported as it ends.
    2. Registers a worker plugin (``"fastce-numba-threads"``, applied again to workers that
       join or restart later) that sets how many Numba threads each task thread uses:
       ``numba_threads`` if given, else ``cores // threads`` per host, ``cores`` the CPUs a
       worker may use and ``threads`` the Dask threads of all workers on that host. Each block
       task then calls ``numba.set_num_threads`` itself, since the setting is per thread.

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster.
    numba_threads : int, optional
        Numba threads per task thread on every worker.
    warmup : bool, default True
        Warm the Numba cache as described.
    progress : bool, default True
        Write one line per step as it ends, and the total time, to standard error.

    Returns
    -------
    dict
        ``{worker address: Numba threads per task thread}``.

    Notes
    -----
    Without this, blocks use ``NUMBA_NUM_THREADS // (the worker's Dask threads)`` Numba
    threads: right for one worker process per host, too many for several (``LocalCluster``
    starts several). Another way is to start workers with ``NUMBA_NUM_THREADS`` in their
    environment (``dask worker --nworkers 4 --nthreads 1`` with ``NUMBA_NUM_THREADS=2`` on an
    8-core host; ``LocalCluster(..., env={"NUMBA_NUM_THREADS": "1"})``). Kernels for inputs
    that are not C-contiguous are compiled on first use, not here: run one small computation
    on such data on one worker before the whole cluster meets it.
    """
    from . import _dask_worker as worker_side

    if numba_threads is not None and (
        isinstance(numba_threads, bool)
        or not isinstance(numba_threads, (int, np.integer))
        or numba_threads < 1
    ):
        raise ValueError(f"numba_threads must be a positive integer; got {numba_threads!r}")
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025: every worker is listed anyway
        workers = client.scheduler_info()["workers"]
    hosts: dict[str, list[str]] = {}
    for address, info in workers.items():
        hosts.setdefault(info["host"], []).append(address)
    started = time.perf_counter()

    def say(line: str) -> None:
        if progress:
            print(f"fastce.dask.configure_workers: {line}", file=sys.stderr, flush=True)

    if warmup:
        first = [addresses[0] for addresses in hosts.values()]
        rest = [a for addresses in hosts.values() for a in addresses[1:]]
        steps = [
            ("this process", lambda: worker_side.warm_cache()),
            (
                f"{len(first)} worker(s), one per host",
                lambda: client.run(worker_side.warm_cache, workers=first),
            ),
        ]
        if rest:
            steps.append(
                (
                    f"the other {len(rest)} worker(s), from the cache",
                    lambda: client.run(worker_side.warm_cache, workers=rest),
                )
            )
        for k, (where, step) in enumerate(steps, 1):
            t = time.perf_counter()
            step()
            seconds = time.perf_counter() - t
            say(f"[{k}/{len(steps)}] Numba cache warm in {where} ({seconds:.1f} s)")
    facts = client.run(worker_side.facts)
    per_host: dict[str, int] = {}
    for host, addresses in hosts.items():
        if numba_threads is not None:
            per_host[host] = int(numba_threads)
            continue
        threads = sum(int(workers[a]["nthreads"]) for a in addresses)
        per_host[host] = max(1, facts[addresses[0]]["cores"] // threads)
    plugin = worker_side.NumbaThreads(
        per_host, None if numba_threads is None else int(numba_threads)
    )
    client.register_plugin(plugin, name=worker_side.NumbaThreads.name)
    settings = dict(client.run(worker_side.numba_threads_setting))
    say(
        f"{len(settings)} worker(s) ready in {time.perf_counter() - started:.1f} s; Numba "
        f"threads per task thread: {', '.join(sorted({str(v) for v in settings.values()}))}"
    )
    return settings
