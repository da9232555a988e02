"""What ``fastce.dask`` makes of a call before any graph: every input as a Dask array, the
checks the in-memory function makes on shapes, chunks and options (run now, on zero-size
stand-ins), and a :class:`Plan` of aligned inputs and the per-block call, by layout."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import unify_chunks

from . import _validate as v
from ._dask_blocks import BlockCall
from ._measures import Measure
from .accumulator import Accumulator

# ---------------------------------------------------------------------------------------------
# Inputs: conversion, shape checks, alignment


def as_dask(x: Any, name: str) -> da.Array:
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
class Item:
    """One input of a block call: its name, how the block is passed, and its axes."""

    name: str
    array: da.Array
    keyword: str = ""  # "" for a positional argument, else the keyword it is passed as
    batch_only: bool = False  # the shape of the batch axes (no class axis), e.g. class indices


@dataclass
class Plan:
    """What a public function becomes on blocks: aligned inputs and the per-block call."""

    function: str  # the in-memory function (for "none" and transforms)
    measure: str | None  # the accumulator measure (for "sum"/"mean")
    items: list[Item]
    class_axis: int | None  # None: element-wise, every input has the full shape
    ndim: int
    kwargs: dict[str, Any]  # keyword options of the in-memory function, without the arrays
    dtype: np.dtype  # the in-memory function's result dtype
    drop_class_axis: bool = True
    arrays: list[da.Array] = field(default_factory=list)
    n_groups: int | None = None  # groups=: checked against it per block; the result's length

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

    def call(self, measure: str | None) -> BlockCall:
        return BlockCall(
            function=self.function,
            measure=measure,
            keywords=tuple(item.keyword for item in self.items),
            squeeze=tuple(item.batch_only and self.class_axis is not None for item in self.items),
            class_axis=self.class_axis,
            kwargs=self.kwargs,
            out_ndim=self.out_ndim,
            n_groups=self.n_groups,
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


# ---------------------------------------------------------------------------------------------
# Plans per layout: every check the in-memory function makes on shapes and options, up front


def _stand_in(
    function: Callable[..., Any], items: list[Item], zero_axis: Any, kwargs: dict[str, Any]
) -> Any:
    """The in-memory function on zero-size stand-ins: its option checks, its result (whose
    dtype and ndim a measure's plan takes)."""
    args: list[Any] = []
    extra: dict[str, Any] = {}
    for item in items:
        axis = 0 if item.batch_only and zero_axis is not None else zero_axis
        stand_in = _zero(item.array.shape, item.array.dtype, axis)
        if item.keyword:
            extra[item.keyword] = stand_in
        else:
            args.append(stand_in)
    return function(*args, **kwargs, **extra)


def _weight_item(sample_weight: Any, batch_shape: tuple[int, ...]) -> list[Item]:
    if sample_weight is None:
        return []
    w = as_dask(sample_weight, "sample_weight")
    _check_sample_weight(w, batch_shape)
    return [Item("sample_weight", w, "sample_weight", batch_only=True)]


def _mask(where: Any, shape: tuple[int, ...], per_row: bool = False) -> da.Array:
    """``where`` as a Dask boolean array of ``shape`` (the batch shape; the element shape with
    ``per_row``, binary cross-entropy's rule for a 1-D mask of length N), with the in-memory
    function's checks and messages. The rule is applied to the whole array, not per block,
    where a block that happens to be square would read a mask row as one entry per row."""
    w = as_dask(where, "where")
    if per_row:
        w = v.spread_per_row(w, shape)
    v.mask_view(np.broadcast_to(np.zeros((), w.dtype), w.shape), shape, per_row)
    return w if w.shape == shape else da.broadcast_to(w, shape)


def _where_item(where: Any, batch_shape: tuple[int, ...]) -> list[Item]:
    if where is None:
        return []
    return [Item("where", _mask(where, batch_shape), "where", batch_only=True)]


def _group_ids(
    groups: Any, shape: tuple[int, ...], reduction: Any, n_groups: Any, per_row: bool = False
) -> da.Array:
    """``groups`` as a Dask array of ``shape``, planned as ``where`` is (``_mask``), with the
    in-memory checks of the reduction, the dtype, ``n_groups`` and the shape now (on a
    zero-size stand-in: no ids are read); the ids themselves are checked per block."""
    g = as_dask(groups, "groups")
    # perplexity has no reduction=: its groups are of the mean
    v.check_groups(np.zeros(0, g.dtype), (0,), n_groups, reduction or "mean")
    if per_row:
        g = v.spread_per_row(g, shape)
    v.to_samples(np.broadcast_to(np.zeros((), g.dtype), g.shape), shape, "groups", per_row)
    return g if g.shape == shape else da.broadcast_to(g, shape)


def _groups_item(
    groups: Any, batch_shape: tuple[int, ...], reduction: Any, n_groups: Any
) -> list[Item]:
    if groups is None:
        return []
    ids = _group_ids(groups, batch_shape, reduction, n_groups)
    return [Item("groups", ids, "groups", batch_only=True)]


def _n_groups(groups: Any, n_groups: Any) -> dict[str, Any]:
    """``n_groups`` for the stand-in call (which checks it), where there is one to check."""
    return {} if groups is None and n_groups is None else {"n_groups": n_groups}


def _small_array(x: Any) -> Any:
    """An option array (class_weight, pos_weight, labels) as NumPy, computed if it is Dask."""
    if x is None or np.isscalar(x):
        return x
    return np.asarray(x)


def _plan_rows(
    m: Measure,
    arrays: Sequence[Any],
    options: dict[str, Any],
    reduction: Any,
    weight: Any,
    where: Any,
    groups: Any = None,
    n_groups: Any = None,
) -> Plan:
    """One value per sample, classes along ``axis`` in the last array (the predictions)."""
    names = m.arrays
    dask_arrays = [as_dask(a, name) for a, name in zip(arrays, names, strict=True)]
    main, main_name = dask_arrays[-1], names[-1]
    axis = options.get("axis", -1)
    pairs = list(zip(dask_arrays, names, strict=True))
    cls = [_class_axis(a, axis, name) for a, name in pairs if a.ndim == main.ndim][-1]
    batch_shape = _batch_shape(main.shape, cls)
    items = []
    for a, name in pairs:
        if m.labels_as_target and name == names[0] and a.shape == batch_shape:
            items.append(Item(name, a, batch_only=True))
            continue
        if a.shape != main.shape:
            expected = "; they must match"
            if m.labels_as_target:
                expected = (
                    f": expected class indices of shape {batch_shape} ({main_name} without its "
                    f"class axis {axis}) or probabilities of shape {main.shape}"
                )
            raise ValueError(
                f"{name} has shape {a.shape} but {main_name} has shape {main.shape}{expected}"
            )
        items.append(Item(name, a))
    for item in items:
        if not item.batch_only:
            _one_chunk(item.array, item.name, cls)
    items += _weight_item(weight, batch_shape)
    items += _where_item(where, batch_shape)
    items += _groups_item(groups, batch_shape, reduction, n_groups)
    kwargs = {k: _small_array(val) if k == "class_weight" else val for k, val in options.items()}
    zero_axis = next((ax for ax in range(main.ndim) if ax != cls), None)
    checked = {} if reduction is None else {"reduction": reduction}
    checked.update(_n_groups(groups, n_groups))
    dtype = np.asarray(_stand_in(m.function, items, zero_axis, {**kwargs, **checked})).dtype
    plan = Plan(m.name, m.name, items, cls, main.ndim, kwargs, dtype)
    plan.n_groups = None if n_groups is None else int(n_groups)
    return plan


def _varying_axes(weight_shape: tuple[int, ...], shape: tuple[int, ...]) -> list[int]:
    """Axes of ``shape`` along which a weight broadcast to it takes more than one value."""
    offset = len(shape) - len(weight_shape)
    return [offset + i for i, n in enumerate(weight_shape) if n != 1]


def _plan_elements(
    m: Measure,
    arrays: Sequence[Any],
    options: dict[str, Any],
    reduction: Any,
    weight: Any,
    where: Any,
    groups: Any = None,
    n_groups: Any = None,
) -> Plan:
    """One value per element: every axis may be chunked."""
    target_arr, pred_arr = (as_dask(a, name) for a, name in zip(arrays, m.arrays, strict=True))
    if target_arr.shape != pred_arr.shape:
        raise ValueError(
            f"target has shape {target_arr.shape} but pred has shape {pred_arr.shape}; "
            "they must match"
        )
    shape = pred_arr.shape
    items = [Item("target", target_arr), Item("pred", pred_arr)]
    kwargs = {k: val for k, val in options.items() if k != "pos_weight"}
    if weight is not None:
        # The in-memory rule (a 1-D weight of length N is one weight per row of an (N, ...)
        # input), applied to the whole array: per block the rule could read a weight row that
        # broadcasts along the last axis as one per row when a block happens to be square.
        w = v.spread_per_row(as_dask(weight, "sample_weight"), shape)
        v.broadcast_weight(np.broadcast_to(np.zeros(()), w.shape), shape, "sample_weight")
        items.append(Item("sample_weight", da.broadcast_to(w, shape), "sample_weight"))
    if where is not None:
        items.append(Item("where", _mask(where, shape, per_row=True), "where"))
    if groups is not None:
        items.append(
            Item("groups", _group_ids(groups, shape, reduction, n_groups, per_row=True), "groups")
        )
    pos_weight = options.get("pos_weight")
    if pos_weight is not None:
        if isinstance(pos_weight, da.Array) and reduction == "none":
            pw: Any = pos_weight
        else:
            pw = v.as_weight_array(_small_array(pos_weight), "pos_weight")
        v.broadcast_weight(np.broadcast_to(np.zeros(()), pw.shape), shape, "pos_weight")
        if reduction == "none":
            items.append(Item("pos_weight", da.broadcast_to(da.asarray(pw), shape), "pos_weight"))
        else:
            # An accumulator holds one pos_weight: every block must see all of it.
            why = (
                f"with reduction={reduction!r} one accumulator holds one pos_weight, so every "
                "block must span the axes along which pos_weight varies"
            )
            for ax in _varying_axes(pw.shape, shape):
                for item in items:
                    _one_chunk(
                        item.array, item.name, ax, "axis along which pos_weight varies", why
                    )
    # Stand-ins with no rows check the options and give the dtype; pos_weight (checked above)
    # is left out, since it need not broadcast to an empty first axis.
    checks = [item for item in items if item.keyword in ("", "sample_weight", "where", "groups")]
    zero_axis = 0 if shape else None
    checked = {"reduction": reduction, **_n_groups(groups, n_groups)}
    dtype = np.asarray(_stand_in(m.function, checks, zero_axis, {**kwargs, **checked})).dtype
    if pos_weight is not None and reduction != "none":
        kwargs["pos_weight"] = pw
    plan = Plan(m.name, m.name, items, None, len(shape), kwargs, dtype)
    plan.n_groups = None if n_groups is None else int(n_groups)
    return plan


def _plan_labels(
    m: Measure,
    arrays: Sequence[Any],
    options: dict[str, Any],
    reduction: Any,
    weight: Any,
    where: Any,
    groups: Any = None,
    n_groups: Any = None,
) -> Plan:
    """scikit-learn's layout: one label per sample, ``y_proba`` of (n,) or (n, classes)."""
    if where is not None:
        raise TypeError(f"{m.name!r} takes no where= mask")
    labels = options.get("labels")
    if labels is None:
        raise ValueError(
            f"fastce.dask.{m.name} needs labels= (every class label, in the order of y_proba's "
            "columns): a block cannot infer the label set from the labels it holds"
        )
    truth, proba = (as_dask(a, name) for a, name in zip(arrays, m.arrays, strict=True))
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
    items = [Item("y_true", truth, batch_only=per_row), Item("y_proba", proba)]
    if weight is not None:
        w = as_dask(weight, "sample_weight")
        if w.shape != (n,):
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"{[n, n, *w.shape[:1]]}"
            )
        items.append(Item("sample_weight", w, "sample_weight", batch_only=per_row))
    kwargs = {"labels": _small_array(labels)}
    Accumulator(m.name, **kwargs)  # its checks, now
    return Plan(m.name, m.name, items, cls, proba.ndim, kwargs, np.dtype(np.float64))


def _plan_transform(
    m: Measure,
    arrays: Sequence[Any],
    options: dict[str, Any],
    reduction: Any,
    weight: Any,
    where: Any,
    groups: Any = None,
    n_groups: Any = None,
) -> Plan:
    """A row of output (or one value) per row; no reduction."""
    arr = as_dask(arrays[0], "x")
    cls = _class_axis(arr, options["axis"], "x")
    _one_chunk(arr, "x", cls)
    items = [Item("x", arr)]
    zero_axis = next((ax for ax in range(arr.ndim) if ax != cls), None)
    dtype = np.asarray(_stand_in(m.function, items, zero_axis, options)).dtype
    return Plan(m.name, None, items, cls, arr.ndim, dict(options), dtype, not m.keeps_class_axis)


_PLANS: dict[str, Callable[..., Plan]] = {
    "rows": _plan_rows,
    "elements": _plan_elements,
    "labels": _plan_labels,
    "transform": _plan_transform,
}


def plan(
    m: Measure,
    arrays: Sequence[Any],
    options: dict[str, Any],
    reduction: Any,
    weight: Any,
    where: Any = None,
    groups: Any = None,
    n_groups: Any = None,
) -> Plan:
    """The plan of ``m`` on ``arrays``; ``weight``, ``where`` and ``groups`` are the
    per-sample ``sample_weight``, ``where`` and ``groups`` (None: none), Dask or NumPy
    arrays; ``n_groups`` the in-memory option."""
    if (groups is not None or n_groups is not None) and m.layout in ("labels", "transform"):
        raise TypeError(f"{m.name!r} takes no groups=")
    return _PLANS[m.layout](m, arrays, options, reduction, weight, where, groups, n_groups)


def plan_compare(
    reference: Any,
    candidate: Any,
    target: Any,
    options: dict[str, Any],
    weight: Any,
    where: Any,
    groups: Any,
) -> Plan:
    """``fastce.compare``'s plan: the two predictions (classes along ``axis``, in one chunk),
    the target, weights, mask and group ids of the batch's shape, chunked freely; the in-memory
    checks of shapes and options run now, on zero-size stand-ins."""
    from .comparison import compare

    ref, cand = as_dask(reference, "reference"), as_dask(candidate, "candidate")
    if ref.shape != cand.shape:
        raise ValueError(
            f"reference has shape {ref.shape} but candidate has shape {cand.shape}; they must "
            "match"
        )
    axis = options["axis"]
    cls = _class_axis(ref, axis, "reference")
    batch_shape = _batch_shape(ref.shape, cls)
    items = [Item("reference", ref), Item("candidate", cand)]
    for item in items:
        _one_chunk(item.array, item.name, cls)
    if target is not None:
        labels = as_dask(target, "target")
        if labels.shape != batch_shape:
            raise ValueError(
                f"target has shape {labels.shape}; expected class indices of shape "
                f"{batch_shape} (the predictions' shape {ref.shape} without the class axis "
                f"{axis})"
            )
        items.append(Item("target", labels, batch_only=True))
    items += _weight_item(weight, batch_shape)
    items += _where_item(where, batch_shape)
    items += _groups_item(groups, batch_shape, "mean", None)
    zero_axis = next((ax for ax in range(ref.ndim) if ax != cls), None)
    checked = _stand_in(compare, items, zero_axis, options)
    dtype = np.asarray(checked.kl.mean).dtype
    return Plan("compare", None, items, cls, ref.ndim, dict(options), dtype)
