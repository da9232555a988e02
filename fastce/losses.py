"""The public functions: entropy, cross-entropy, KL, Jensen-Shannon, binary cross-entropy,
perplexity, and the log-sum-exp building blocks.

Each function validates its arguments (``_validate``), calls one Numba kernel (``_kernels``)
through ``_launch``, and lets ``_reduce`` turn per-sample values into ``"sum"``/``"mean"``.
Nothing here loops over data.

Conventions shared by every function are in docs/api.md; in short: ``axis=-1`` is the class
axis; float32 in gives float32 out (computed with float64 accumulation), float64 gives float64,
float16 is promoted to float32 and integers/bools to float64; ``base=None`` is nats; predicted
probabilities are clipped to ``[eps, 1 - eps]`` inside their log; zero target probabilities
contribute exactly 0; NaN in a sample's inputs gives NaN for that sample.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from . import _launch, _reduce
from . import _validate as v
from ._kernels import binary, nll, pair
from ._kernels import entropy as entropy_kernels
from ._kernels import logsumexp as lse_kernels
from ._kernels._common import COL_BLOCK
from ._kernels._driver import RowKernels
from ._kernels.exactsum import group_sums
from ._launch import run, run_rows


def _kernels(
    family: dict[str, RowKernels], name: str, from_logits: bool, target_from_logits: bool = False
) -> RowKernels:
    """A measure's kernels for the kinds of input given (``_kernels._driver``)."""
    target = "_target_logits" if target_from_logits else ""
    return family[f"{name}{target}_logits" if from_logits else f"{name}{target}_probs"]


def _hot_path(dtype: np.dtype, n_classes: int) -> str:
    """Which of the class-index hot path's kernels (``nll.HOT``) takes logits of ``dtype``."""
    if n_classes == 2:
        return "pairs"
    lanes = dtype == np.float32 and n_classes <= nll.LANES_MAX_CLASSES
    return "lanes" if lanes else "logits"


__all__ = [
    "binary_cross_entropy",
    "cross_entropy",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "log_softmax",
    "logsumexp",
    "perplexity",
    "softmax",
]

Reduction = Literal["none", "sum", "mean"]

_NO_CLASS_WEIGHT = np.empty(0, np.float64)
_NO_WEIGHT = np.empty(0, np.float64)  # no sample weights: read-only, as _launch passes it
_NO_WEIGHT.flags.writeable = False


_F64 = np.dtype(np.float64)


def _groups(
    groups: Any, shape: tuple[int, ...], n_groups: Any, reduction: str,
    mask: np.ndarray | None, per_row: bool = False,
) -> tuple[np.ndarray, int] | None:  # fmt: skip
    """``_validate.check_groups``, or None without groups (``n_groups`` alone is an error)."""
    if groups is None:
        if n_groups is not None:
            raise ValueError("n_groups= counts the groups of groups=, which was not given")
        return None
    return v.check_groups(groups, shape, n_groups, reduction, mask, per_row)


def _by_group(
    values: np.ndarray,
    grouping: tuple[np.ndarray, int],
    reduction: str,
    dtype: np.dtype,
    kept: np.ndarray | None,
    weights: Any = None,
) -> np.ndarray:
    """The ``"sum"`` or ``"mean"`` of each group (a 1-D array of ``dtype``, indexed by group
    id) from the per-sample float64 ``values`` (the ``"none"`` result in float64), the samples
    ``kept`` (all where None) and their weights (1 where None): each group's exact sums rounded
    once, as the reduction of that group's samples alone rounds them (``_reduce``)."""
    ids, n_groups = grouping
    flat = np.where(kept, ids, -1) if kept is not None else ids
    w = np.empty(0) if weights is None else np.broadcast_to(weights, ids.shape)
    flat_ids = np.ascontiguousarray(flat, dtype=np.int64).reshape(-1)
    flat_values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    flat_weights = np.ascontiguousarray(w, dtype=np.float64).reshape(-1)
    if _reduce.capturing():  # an Accumulator keeps each group's exact sums
        return _reduce.capture_groups(flat_ids, flat_values, flat_weights, n_groups, dtype)
    sums, wsums = np.empty(n_groups), np.empty(n_groups)
    counts = np.empty(n_groups, np.int64)
    group_sums(flat_ids, flat_values, flat_weights, sums, wsums, counts)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = sums if reduction == "sum" else sums / wsums
        return result.astype(dtype)


def _samples(rows: np.ndarray) -> np.ndarray | None:
    """A view of the samples of (..., C) ``rows`` (a mask laid out like it merges with them)."""
    return rows[..., 0] if rows.shape[-1] else None


def _of_rows(mask: np.ndarray | None, arr: np.ndarray, axis: Any) -> np.ndarray | None:
    """A mask of the samples (``arr``'s shape without ``axis``) as one that broadcasts to
    ``arr`` (an error message names the position in ``arr``)."""
    return None if mask is None else np.expand_dims(mask, int(axis) % max(arr.ndim, 1))


def _rows(x: Any, name: str, axis: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the coerced array, a view of it with the class axis last); float16 and bfloat16 are
    kept as they are, for the launcher to widen a tile of rows at a time."""
    arr = v.as_float_array(x, name, half=True)
    return arr, v.class_axis_last(arr, axis, name)


def entropy(
    p: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    from_logits: bool = False,
    temperature: float = 1.0,
    reduction: Reduction = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    r"""Shannon entropy of each distribution along ``axis``.

    .. math:: H(P) = -\sum_c p_c \log p_c

    Parameters
    ----------
    p : array_like
        Probabilities (or logits with ``from_logits=True``), classes along ``axis``. Rows are
        used as given: unlike ``scipy.stats.entropy`` they are not renormalised.
    axis : int, default -1
        The class axis; every other axis is a batch (sample) axis.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits; any positive number other than 1.
    from_logits : bool, default False
        ``p`` holds unnormalised log-probabilities; the entropy of ``softmax(p)`` is computed
        through a shifted log-sum-exp, without forming the softmax.
    temperature : float, default 1.0
        Every logits input enters as ``x / temperature``, divided in float64 as the kernels
        read it (a tile of rows at a time: no scaled copy of the input is made); a finite
        number > 0. Probabilities are never tempered: a temperature other than 1 with no
        logits input is an error.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"none"`` returns one value per sample (times its sample weight); ``"sum"`` their exact
        sum; ``"mean"`` that sum divided by the sum of the sample weights (or the count).
    sample_weight : array_like, optional
        Non-negative weights, one per sample (the shape of ``p`` without ``axis``).
    where : array_like of bool, optional
        The samples to score, broadcast to the shape of ``p`` without ``axis`` (a padding
        mask): a sample where it is False gives 0.0 in ``"none"`` and counts for nothing in
        ``"sum"``/``"mean"`` (as if it were absent; none left: ``"mean"`` is NaN). Its row is
        never read: NaN or invalid values there raise nothing and propagate nothing.
    groups : array_like of int, optional
        A group id (0, 1, ...) per sample, broadcast as ``where`` is. With ``"sum"`` or
        ``"mean"`` the result is then a 1-D array indexed by group id, each entry the bits of
        the same call on that group's samples alone (an empty group's sum is 0.0, its mean
        NaN). Ids must be >= 0 (and < ``n_groups``) where ``where`` keeps the sample.
    n_groups : int, optional
        The number of groups, the result's length; by default the largest id plus one.

    out : ndarray, optional
        With ``reduction="none"``: a preallocated array of the result's shape and dtype to write
        into (and return), so a loop does not pay for a fresh buffer each call.
    Returns
    -------
    ndarray or scalar
        Entropies of shape ``p.shape`` without ``axis``, or a scalar of ``p``'s float dtype.

    Raises
    ------
    ValueError
        A probability outside [0, 1], a bad ``base``/``reduction``/``axis``, or a
        ``sample_weight`` of the wrong shape or with negative or non-finite entries.
    TypeError
        ``p`` is not a real numeric array (object, complex, string, datetime).

    Notes
    -----
    ``0 log 0 = 0``: the entropy of a one-hot row is exactly 0.0. No clipping is applied. From
    logits, with ``m = max(x)``, ``e_c = exp(x_c - m)`` and ``s = sum_c e_c``,
    ``H = sum_c e_c (m - x_c) / s + log(s)``: a sum of non-negative terms.

    See Also
    --------
    cross_entropy, kl_divergence, scipy.stats.entropy

    Examples
    --------
    >>> import fastce
    >>> fastce.entropy([0.5, 0.25, 0.25], base=2)
    np.float64(1.5)
    >>> fastce.entropy([[1.0, 0.0], [0.5, 0.5]])
    array([0.        , 0.69314718])
    """
    arr, rows = _rows(p, "p", axis)
    from_logits = v.check_bool(from_logits, "from_logits")
    t = v.check_temperature(temperature, {"from_logits": ("p", from_logits)})
    checked_reduction = v.check_reduction(reduction)
    ln_base = v.ln_base(base)
    batch_shape = rows.shape[:-1]
    weights = v.check_sample_weight(sample_weight, batch_shape)
    mask = v.check_where(where, batch_shape, like=_samples(rows))
    dtype = v.result_dtype(rows.dtype)
    out = v.check_out(out, batch_shape, dtype, checked_reduction)

    def explain() -> None:
        v.explain_probabilities(arr, "p", logits_hint=True, where=_of_rows(mask, arr, axis))

    kernels = _kernels(entropy_kernels.KERNELS, "entropy", from_logits)
    grouping = _groups(groups, batch_shape, n_groups, checked_reduction, mask)
    if grouping is not None:
        values = run_rows(
            kernels, [rows], [ln_base], weights, "none", _F64, explain,
            tempered=[from_logits], temperature=t, where=mask,
        )  # fmt: skip
        return _by_group(values, grouping, checked_reduction, dtype, mask, weights)
    return run_rows(
        kernels, [rows], [ln_base], weights, checked_reduction, dtype, explain, out,
        tempered=[from_logits], temperature=t, where=mask,
    )  # fmt: skip


def _cross_entropy(
    target: Any,
    pred: Any,
    axis: Any,
    from_logits: Any,
    target_from_logits: Any,
    temperature: Any,
    base: Any,
    eps: Any,
    label_smoothing: Any,
    class_weight: Any,
    ignore_index: Any,
    reduction: Any,
    sample_weight: Any,
    where: Any = None,
    groups: Any = None,
    n_groups: Any = None,
    result_dtype: np.dtype | None = None,
    out: np.ndarray | None = None,
) -> Any:
    pred_arr, rows = _rows(pred, "pred", axis)
    from_logits = v.check_bool(from_logits, "from_logits")
    target_from_logits = v.check_bool(target_from_logits, "target_from_logits")
    logits = {"from_logits": ("pred", from_logits)}
    if target_from_logits or np.ndim(target) == pred_arr.ndim:  # (soft targets)
        logits["target_from_logits"] = ("target", target_from_logits)
    t = v.check_temperature(temperature, logits)
    checked_reduction = v.check_reduction(reduction)
    ln_base = v.ln_base(base)
    eps_value = v.check_eps(eps, v.result_dtype(pred_arr.dtype))
    smoothing = v.check_smoothing(label_smoothing)
    has_ignore, ignore_value = v.check_ignore_index(ignore_index)
    batch_shape, n_classes = rows.shape[:-1], rows.shape[-1]
    cw = v.check_class_weight(class_weight, n_classes)
    weights = v.check_sample_weight(sample_weight, batch_shape)
    mask = v.check_where(where, batch_shape, like=_samples(rows))
    pred_mask = _of_rows(mask, pred_arr, axis)
    grouping = _groups(groups, batch_shape, n_groups, checked_reduction, mask)
    target_arr = v.as_array(target, "target")

    if target_arr.shape == batch_shape:
        if target_from_logits:
            raise ValueError(
                f"target_from_logits applies to soft targets only; target has shape "
                f"{target_arr.shape}, pred without its class axis, so it holds class indices"
            )
        labels = v.as_label_array(target_arr, "target")
        dtype = result_dtype or v.result_dtype(rows.dtype)
        out = v.check_out(out, batch_shape, dtype, checked_reduction)

        def explain() -> None:
            v.explain_labels(labels, "target", n_classes, has_ignore, ignore_value, mask)
            v.explain_probabilities(pred_arr, "pred", logits_hint=True, where=pred_mask)

        kernels = _kernels(nll.KERNELS, "nll", from_logits)
        if from_logits and smoothing == 0.0 and n_classes <= COL_BLOCK:
            # the hot path: a kernel of its own (rows this short are never split); tempered
            # logits reach it as float64 tiles
            read = v.result_dtype(rows.dtype) if t == 1.0 else np.dtype(np.float64)
            kernels = kernels._replace(
                rows=nll.HOT[_hot_path(read, n_classes)],
                columns=nll.HOT["columns"] if read == np.float32 else None,
            )
        elif from_logits and smoothing == 0.0 and t == 1.0 and _launch.half(rows):
            # long rows of half-precision logits: each block widened as the kernel reads it
            kind = "bf16" if v.is_bfloat16(rows.dtype) else "f16"
            kernels = nll.KERNELS[f"nll_{kind}_logits"]
            rows = rows.view(np.uint16)
        params = [eps_value, cw, smoothing, has_ignore, ignore_value, ln_base]
        if grouping is not None:
            values = run_rows(
                kernels, [rows, labels], params, weights, "none", _F64, explain,
                tempered=[from_logits, False], temperature=t, where=mask,
            )  # fmt: skip
            kept = mask
            if has_ignore:
                kept = (labels != ignore_value) & (True if mask is None else mask)
            w: Any = weights
            if cw.size:
                index = labels if kept is None else np.where(kept, labels, 0)
                w = cw[index.astype(np.int64)] * (1.0 if weights is None else weights)
            return _by_group(values, grouping, checked_reduction, dtype, kept, w)
        return run_rows(
            kernels, [rows, labels], params, weights, checked_reduction, dtype, explain, out,
            tempered=[from_logits, False], temperature=t, where=mask,
        )  # fmt: skip

    if target_arr.shape == pred_arr.shape:
        if has_ignore:
            raise ValueError(
                "ignore_index applies to class-index targets only; target has the shape of "
                f"pred {pred_arr.shape}, so it holds class probabilities"
            )
        soft = v.as_float_array(target_arr, "target", half=True)
        soft_rows = v.class_axis_last(soft, axis, "target")
        soft_dtype = result_dtype or v.result_dtype(soft.dtype, pred_arr.dtype)
        out = v.check_out(out, batch_shape, soft_dtype, checked_reduction)

        def explain_soft() -> None:
            if not target_from_logits:
                v.explain_probabilities(
                    soft, "target", logits_hint="target_from_logits", where=pred_mask
                )
            if not from_logits:
                v.explain_probabilities(pred_arr, "pred", logits_hint=True, where=pred_mask)

        kernels = _kernels(pair.KERNELS, "soft_ce", from_logits, target_from_logits)
        ops, params = [soft_rows, rows], [eps_value, cw, smoothing, ln_base]
        if grouping is not None:
            values = run_rows(
                kernels, ops, params, weights, "none", _F64, explain_soft,
                tempered=[target_from_logits, from_logits], temperature=t, where=mask,
            )  # fmt: skip
            return _by_group(values, grouping, checked_reduction, soft_dtype, mask, weights)
        return run_rows(
            kernels, ops, params, weights, checked_reduction, soft_dtype, explain_soft, out,
            tempered=[target_from_logits, from_logits], temperature=t, where=mask,
        )  # fmt: skip

    raise ValueError(
        f"target has shape {target_arr.shape} but pred has shape {pred_arr.shape}: expected "
        f"class indices of shape {batch_shape} (pred without its class axis {axis}) or "
        f"probabilities of shape {pred_arr.shape}"
    )


def cross_entropy(
    target: Any,
    pred: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    label_smoothing: float = 0.0,
    class_weight: Any = None,
    ignore_index: int | None = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    r"""Cross-entropy of predicted distributions against class indices or soft targets.

    .. math:: H(P, Q) = -\sum_c p_c \log q_c

    With a class-index target ``y`` this is ``-log q_y`` (the negative log-likelihood).

    Parameters
    ----------
    target : array_like
        Either class indices of shape ``pred.shape`` without ``axis`` (integers, or floats
        holding integral values such as ``1.0``), or probabilities of the shape of ``pred``.
    pred : array_like
        Predicted probabilities, or logits with ``from_logits=True``; classes along ``axis``.
    axis : int, default -1
        The class axis of ``pred`` (and of a soft ``target``).
    from_logits : bool, default False
        ``pred`` holds unnormalised log-probabilities, used through a shifted log-sum-exp:
        ``-log softmax(x)_y = (m - x_y) + log1p(sum_{c != argmax} exp(x_c - m))``.
    target_from_logits : bool, default False
        A soft ``target`` holds logits (unnormalised log-probabilities, such as a teacher
        model's outputs): the target distribution is their softmax, formed from the row's own
        shifted log-sum-exp in the same pass (no softmax array is made). Label smoothing
        applies to that distribution. Not allowed with class indices.
    temperature : float, default 1.0
        Every logits input (``pred``, a ``target`` of logits) enters as ``x / temperature``,
        divided in float64 as the kernels read it (a tile of rows at a time: no scaled copy
        of the input is made); a finite number > 0. Probabilities are never tempered: a
        temperature other than 1 with no logits input is an error.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.
    eps : float or "auto", default "auto"
        Predicted probabilities are clipped to ``[eps, 1 - eps]`` inside the log; ``"auto"`` is
        ``np.finfo(pred.dtype).eps`` (after promotion); ``0`` disables clipping. Not used with
        ``from_logits=True``.
    label_smoothing : float, default 0.0
        Replaces the target by ``(1 - s) * target + s / C``, as PyTorch.
    class_weight : array_like, optional
        One non-negative weight per class, as PyTorch's ``weight``: with class indices each
        sample's loss is scaled by ``w[y]`` and ``"mean"`` divides by the sum of ``w[y]`` over
        the non-ignored samples; with soft targets ``w_c`` scales each class term and ``"mean"``
        divides by the number of samples (the sum of the sample weights).
    ignore_index : int, optional
        Class-index targets equal to it give 0.0 in ``"none"`` and count for nothing in
        ``"sum"``/``"mean"`` (all ignored: ``"mean"`` is NaN). Not allowed with soft targets.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"none"``: one value per sample, multiplied by its class and sample weights; ``"sum"``:
        the exact sum of those; ``"mean"``: that sum divided by the sum of the weights that
        multiplied them (``sum_i s_i w[y_i]``, or ``sum_i s_i`` with soft targets).
    sample_weight : array_like, optional
        One non-negative weight per sample.
    where : array_like of bool, optional
        The samples to score, as in :func:`entropy`; it combines with ``ignore_index``,
        ``class_weight`` and ``sample_weight``. A masked-out sample's label is not checked.
    groups, n_groups : optional
        One result per group, as in :func:`entropy`; ignored and masked samples leave their
        group, and the weights apply within it.

    out : ndarray, optional
        With ``reduction="none"``: a preallocated array of the result's shape and dtype to write
        into (and return), so a loop does not pay for a fresh buffer each call.
    Returns
    -------
    ndarray or scalar
        Per-sample losses (the shape of ``pred`` without ``axis``) or a scalar, of the input's
        float dtype.

    Raises
    ------
    ValueError
        Shapes that do not match, a label out of range or not integral (the message names its
        position), a probability outside [0, 1], or an option out of its domain.
    TypeError
        An input that is not a real numeric array.

    Notes
    -----
    Zero target probabilities contribute exactly 0. A NaN anywhere in a sample's row gives NaN
    for that sample. Logits of magnitude 1e4 in float32 give finite, correct losses.

    See Also
    --------
    binary_cross_entropy, perplexity, kl_divergence, torch.nn.functional.cross_entropy

    Examples
    --------
    The worked example of the literature, in bits:

    >>> import fastce
    >>> P, Q = [0.10, 0.40, 0.50], [0.80, 0.15, 0.05]
    >>> round(float(fastce.cross_entropy(P, Q, base=2)), 3)
    3.288

    Class indices from logits, mean over the batch:

    >>> logits = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]
    >>> round(float(fastce.cross_entropy([0, 2], logits, from_logits=True, reduction="mean")), 6)
    0.175456

    A student's logits against a teacher's (both sides logits):

    >>> teacher = [[2.0, 1.0, 0.0]]
    >>> student = [[1.5, 1.0, 0.5]]
    >>> fastce.cross_entropy(teacher, student, from_logits=True, target_from_logits=True).round(6)
    array([0.892664])
    """
    if (
        base is None
        and eps == "auto"
        and class_weight is None
        and ignore_index is None
        and sample_weight is None
        and where is None
        and groups is None
        and n_groups is None
        and out is None
        and type(label_smoothing) is float
        and label_smoothing == 0.0
        and target_from_logits is False
        and type(temperature) is float
        and temperature == 1.0
    ):
        result = _small_labels_fast_path(target, pred, axis, from_logits, reduction)
        if result is not None:
            return result
    return _cross_entropy(
        target,
        pred,
        axis,
        from_logits,
        target_from_logits,
        temperature,
        base,
        eps,
        label_smoothing,
        class_weight,
        ignore_index,
        reduction,
        sample_weight,
        where,
        groups,
        n_groups,
        out=out,
    )


_FAST_DTYPES = {np.dtype(np.float32): np.float32, np.dtype(np.float64): np.float64}
_FAST_EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps), np.dtype(np.float64): 2.0**-52}
_FAST_MAX = {
    np.dtype(np.float32): float(np.finfo(np.float32).max),
    np.dtype(np.float64): float(np.finfo(np.float64).max),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _small_labels_fast_path(
    target: Any, pred: Any, axis: Any, from_logits: Any, reduction: Any
) -> Any:
    """``cross_entropy`` of a small C-ordered (N, C) float array against int64 labels, with
    every option at its default: the same kernel and the same bits as the general path, minus
    its argument handling (a training loop's call on a small batch is mostly overhead). Returns
    None whenever anything differs from that case, and the general path takes over (also to
    raise: a label out of range is reported by re-running the call through it).
    """
    if (
        type(pred) is not np.ndarray
        or type(target) is not np.ndarray
        or pred.ndim != 2
        or target.ndim != 1
        or (axis != -1 and axis != 1)
        or type(axis) is not int
        or type(from_logits) is not bool
        or target.dtype != np.int64
        or not pred.flags.c_contiguous
        or not target.flags.c_contiguous
    ):
        return None
    dtype = pred.dtype
    if dtype not in _FAST_DTYPES or reduction not in ("mean", "sum", "none"):
        return None
    n, c = pred.shape
    if n == 0 or not 0 < c <= COL_BLOCK or target.shape[0] != n:
        return None
    if _launch.n_chunks(n, c) != 1:
        return None
    if _reduce.capturing():
        return None  # an Accumulator needs the exact state: the general path records it
    reduce = reduction != "none"
    result = np.empty(0 if reduce else n, dtype)
    total, bad = nll.SMALL[_hot_path(dtype, c) if from_logits else "probs"](
        _readonly(pred), _readonly(target), _FAST_EPS[dtype], _NO_CLASS_WEIGHT, 0.0, False, -100,
        _NO_WEIGHT, _launch.NO_WHERE, reduce, result,
    )  # fmt: skip
    if bad:
        return None  # the general path explains the offending label or probability
    if not reduce:
        return result
    # every weight is 1: the exact sum of the weights is n (as the general path's fold finds)
    value = total if reduction == "sum" else total / n
    if not abs(value) <= _FAST_MAX[dtype]:  # beyond the dtype (or NaN): IEEE, no warning
        with np.errstate(over="ignore", invalid="ignore"):
            return dtype.type(value)
    return dtype.type(value)


def perplexity(
    target: Any,
    pred: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    temperature: float = 1.0,
    eps: float | Literal["auto"] = "auto",
    class_weight: Any = None,
    ignore_index: int | None = None,
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    r"""Perplexity: the exponential of the (weighted) mean cross-entropy in nats.

    .. math:: \mathrm{PPL} = \exp\Big(\frac{\sum_i s_i w_{y_i} H_i}{\sum_i s_i w_{y_i}}\Big)

    Parameters
    ----------
    target, pred, axis, from_logits, temperature, eps, class_weight, ignore_index, sample_weight
        As in :func:`cross_entropy`; padding positions are left out with ``ignore_index``.
    where : array_like of bool, optional
        The samples to score, as in :func:`cross_entropy` (another way to leave padding out).
    groups, n_groups : optional
        One perplexity per group, as in :func:`entropy`: each the perplexity of that group's
        samples alone. ``groups=np.arange(B)[:, None]`` on a (B, S, V) input gives one per
        sequence.

    Returns
    -------
    scalar or ndarray
        Of ``pred``'s float dtype (float32 for float16 and bfloat16); with ``groups``, one
        per group. The exponential is taken
        of the float64 mean, before the result is rounded to float32 for float32 input.

    Raises
    ------
    ValueError, TypeError
        As :func:`cross_entropy`.

    Notes
    -----
    There is no ``base``: perplexity is the same number in every unit. A mean cross-entropy
    of ``H`` nats is ``H / ln b`` in base ``b``, and ``b ** (H / ln b) = e ** H``, so the base
    of the logarithm cancels in the exponential.

    See Also
    --------
    cross_entropy

    Examples
    --------
    A model that spreads its mass evenly over 4 tokens has perplexity 4:

    >>> import fastce
    >>> round(float(fastce.perplexity([0, 3], [[0.25] * 4, [0.25] * 4])), 12)
    4.0

    One per sequence of a (batch, sequence, vocabulary) input, padding left out:

    >>> import numpy as np
    >>> logits = np.zeros((2, 3, 5))  # every token's 5 choices equally likely
    >>> labels = np.array([[1, 2, -100], [0, -100, -100]])
    >>> fastce.perplexity(labels, logits, from_logits=True, ignore_index=-100,
    ...                   groups=np.arange(2)[:, None])
    array([5., 5.])
    """
    pred_arr = v.as_float_array(pred, "pred", half=True)
    mean = _cross_entropy(
        target,
        pred_arr,
        axis,
        from_logits,
        False,
        temperature,
        None,
        eps,
        0.0,
        class_weight,
        ignore_index,
        "mean",
        sample_weight,
        where,
        groups,
        n_groups,
        result_dtype=np.dtype(np.float64),
    )
    dtype = v.result_dtype(pred_arr.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if groups is not None:  # the exp of each group's float64 mean, one at a time
            return np.array([np.exp(m) for m in mean.tolist()], dtype=np.float64).astype(dtype)
        return dtype.type(np.exp(mean))


def kl_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    reduction: Reduction | Literal["batchmean"] = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    r"""Kullback-Leibler divergence of ``q`` from ``p``, per distribution along ``axis``.

    .. math:: \mathrm{KL}(P \,\|\, Q) = \sum_c p_c \log \frac{p_c}{q_c}

    Parameters
    ----------
    p : array_like
        Target probabilities (never clipped; zeros contribute exactly 0); or logits with
        ``target_from_logits=True``.
    q : array_like
        Predicted probabilities of the same shape, clipped to ``[eps, 1 - eps]`` inside the
        log; or logits with ``from_logits=True``.
    axis, base, sample_weight, where, groups, n_groups
        As in :func:`entropy` (``groups`` with ``"sum"`` or ``"mean"``).
    reduction : {"none", "sum", "mean", "batchmean"}, default "none"
        As in :func:`entropy`; ``"batchmean"`` is PyTorch's: the exact sum (weights applied)
        divided by the length of the first batch axis (``p.shape[0]`` when ``axis`` is not
        0; 1 for a single distribution), rounded once. On a 2-D input with no weights it
        equals ``"mean"``; with sample weights ``"mean"`` divides by their sum, and on a
        (batch, sequence, classes) input by every position while ``"batchmean"`` divides by
        the batch.
    from_logits : bool, default False
        ``q`` holds logits (unnormalised log-probabilities), used through a shifted
        log-sum-exp.
    target_from_logits : bool, default False
        ``p`` holds logits (a teacher model's outputs, or log-probabilities: PyTorch's
        ``log_target=True``): ``P = softmax(p)``, formed from the row's own shifted
        log-sum-exp in the same pass, with ``log P_c = (p_c - max) - log(sum)``. Either flag
        may be set with the other.
    temperature : float, default 1.0
        Every logits input (``q`` with ``from_logits``, ``p`` with ``target_from_logits``)
        enters as ``x / temperature``, divided in float64 as the kernels read it (a tile of
        rows at a time: no scaled copy of the input is made); a finite number > 0.
        Probabilities are never tempered: a temperature other than 1 with no logits input is
        an error.
    eps : float or "auto", default "auto"
        Clipping of probabilities ``q``; ``"auto"`` is ``np.finfo(q.dtype).eps``; ``0``
        disables it.

    out : ndarray, optional
        With ``reduction="none"``: a preallocated array of the result's shape and dtype to write
        into (and return), so a loop does not pay for a fresh buffer each call.
    Returns
    -------
    ndarray or scalar
        Of the shape of ``p`` without ``axis``, or a scalar.

    Raises
    ------
    ValueError, TypeError
        Shapes that differ, probabilities outside [0, 1], options out of their domains,
        non-numeric input.

    Notes
    -----
    ``H(P, Q) = H(P) + KL(P || Q)`` holds to rounding. ``KL(P || P)`` is exactly 0.0 where no
    clipping acts (every entry 0 or within ``[eps, 1 - eps]``; always with ``eps=0``); with the
    default clipping an entry of exactly 1 contributes ``-log(1 - eps)``, about 2.2e-16. Each
    term is ``p log(p / q)`` (one rounding, accurate for ``p`` close to ``q``), falling back to
    ``p (log p - log q)`` when the ratio would overflow. With both sides logits each term is
    ``P_c ((p_c - M_p) - (q_c - M_q) - (log S_p - log S_q))``: exactly 0 for equal rows.

    ``kl_divergence(t, s, from_logits=True, target_from_logits=True)`` is PyTorch's
    ``F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
    reduction="none").sum(-1)``.

    See Also
    --------
    js_divergence, cross_entropy, scipy.special.rel_entr

    Examples
    --------
    >>> import fastce
    >>> P, Q = [0.10, 0.40, 0.50], [0.80, 0.15, 0.05]
    >>> round(float(fastce.kl_divergence(P, Q, base=2)), 3)
    1.927
    >>> float(fastce.kl_divergence(P, P))
    0.0

    A teacher's and a student's logits:

    >>> teacher = [[2.0, 1.0, 0.0], [0.0, 0.0, 4.0]]
    >>> student = [[1.5, 1.0, 0.5], [0.0, 0.0, 4.0]]
    >>> fastce.kl_divergence(teacher, student, from_logits=True, target_from_logits=True).round(6)
    array([0.060269, 0.      ])

    Distillation at temperature ``T``: ``F.kl_div(F.log_softmax(s / T, -1),
    F.log_softmax(t / T, -1), log_target=True, reduction="batchmean")``, with no ``T**2``
    factor; the recipe's ``T**2`` is the caller's to apply:

    >>> T = 2.0
    >>> kl = fastce.kl_divergence(teacher, student, from_logits=True, target_from_logits=True,
    ...                           temperature=T, reduction="batchmean")
    >>> round(float(kl * T**2), 6)
    0.038215
    """
    return _divergence(
        "kl", p, q, axis, from_logits, target_from_logits, temperature, base, eps, reduction,
        sample_weight, where, groups, n_groups, out,
    )  # fmt: skip


def _divergence(
    measure: str,
    p: Any,
    q: Any,
    axis: Any,
    from_logits: Any,
    target_from_logits: Any,
    temperature: Any,
    base: Any,
    eps: Any,
    reduction: Any,
    sample_weight: Any,
    where: Any,
    groups: Any,
    n_groups: Any,
    out: np.ndarray | None,
) -> Any:
    """KL (``measure="kl"``) or JS (``"js"``, with no ``eps``: None) of the rows of p and q."""
    p_arr, p_rows = _rows(p, "p", axis)
    q_arr, q_rows = _rows(q, "q", axis)
    v.same_shape(p_arr, q_arr, "p", "q")
    from_logits = v.check_bool(from_logits, "from_logits")
    target_from_logits = v.check_bool(target_from_logits, "target_from_logits")
    logits = {"from_logits": ("q", from_logits), "target_from_logits": ("p", target_from_logits)}
    t = v.check_temperature(temperature, logits)
    checked_reduction = v.check_reduction(reduction, batchmean=measure == "kl")
    ln_base = v.ln_base(base)
    eps_value = 0.0 if eps is None else v.check_eps(eps, v.result_dtype(q_arr.dtype))
    batch_shape = p_rows.shape[:-1]
    weights = v.check_sample_weight(sample_weight, batch_shape)
    mask = v.check_where(where, batch_shape, like=_samples(p_rows))
    dtype = v.result_dtype(p_arr.dtype, q_arr.dtype)
    out = v.check_out(out, batch_shape, dtype, checked_reduction)

    def explain() -> None:
        at = _of_rows(mask, p_arr, axis)
        if not target_from_logits:
            v.explain_probabilities(p_arr, "p", logits_hint="target_from_logits", where=at)
        if not from_logits:
            v.explain_probabilities(q_arr, "q", logits_hint=True, where=at)

    kernels = _kernels(pair.KERNELS, measure, from_logits, target_from_logits)
    ops, params = [p_rows, q_rows], [eps_value, _NO_CLASS_WEIGHT, 0.0, ln_base]
    tempered = [target_from_logits, from_logits]
    grouping = _groups(groups, batch_shape, n_groups, checked_reduction, mask)
    if grouping is not None:
        values = run_rows(
            kernels, ops, params, weights, "none", _F64, explain, None, tempered, t, mask
        )
        return _by_group(values, grouping, checked_reduction, dtype, mask, weights)
    if checked_reduction == "batchmean":
        # fl(S / N): the exact sum rounded once to float64, over the first batch axis's length
        total = run_rows(
            kernels, ops, params, weights, "sum", np.dtype(np.float64), explain, None, tempered, t,
            mask,
        )  # fmt: skip
        return batchmean(total, batch_shape[0] if batch_shape else 1, dtype)
    return run_rows(
        kernels, ops, params, weights, checked_reduction, dtype, explain, out, tempered, t, mask
    )


def batchmean(total: float, positions: int, dtype: np.dtype) -> Any:
    """``reduction="batchmean"``: the float64 sum over the number of positions along the first
    batch axis, rounded once to ``dtype`` (NaN for none)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.dtype(dtype).type(np.float64(total) / np.float64(positions))


def js_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    r"""Jensen-Shannon divergence between distributions along ``axis``.

    .. math:: \mathrm{JS}(P, Q) = \tfrac12 \mathrm{KL}(P \| M) + \tfrac12 \mathrm{KL}(Q \| M),
              \qquad M = \tfrac12 (P + Q)

    It is the square of ``scipy.spatial.distance.jensenshannon`` (which also renormalises its
    inputs; fastce uses rows as given). Bounded by ``log 2`` (1 bit). Never clipped.

    Parameters
    ----------
    p, q : array_like
        Probabilities of the same shape, classes along ``axis``; or logits, with
        ``target_from_logits=True`` (``p``) and ``from_logits=True`` (``q``): a row of logits
        enters as its softmax, formed from the row's own shifted log-sum-exp in the same pass.
    axis, base, reduction, sample_weight, where, groups, n_groups
        As in :func:`entropy`.
    from_logits, target_from_logits, temperature
        As in :func:`kl_divergence`.

    out : ndarray, optional
        With ``reduction="none"``: a preallocated array of the result's shape and dtype to write
        into (and return), so a loop does not pay for a fresh buffer each call.
    Returns
    -------
    ndarray or scalar

    Raises
    ------
    ValueError, TypeError
        As :func:`kl_divergence`.

    See Also
    --------
    kl_divergence, scipy.spatial.distance.jensenshannon

    Examples
    --------
    >>> import fastce
    >>> float(fastce.js_divergence([1.0, 0.0], [0.0, 1.0], base=2))
    1.0
    """
    return _divergence(
        "js", p, q, axis, from_logits, target_from_logits, temperature, base, None, reduction,
        sample_weight, where, groups, n_groups, out,
    )  # fmt: skip


def binary_cross_entropy(
    target: Any,
    pred: Any,
    *,
    from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: float | Literal["auto"] = "auto",
    pos_weight: Any = None,
    reduction: Reduction = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    r"""Element-wise binary cross-entropy (log loss), for binary and multi-label problems.

    .. math:: \ell = -\big(w_+ \, y \log p + (1 - y) \log(1 - p)\big)

    Parameters
    ----------
    target : array_like
        Targets in [0, 1] (hard 0/1 or soft), the shape of ``pred``.
    pred : array_like
        Probabilities of the positive class, clipped to ``[eps, 1 - eps]`` inside both logs; or
        logits with ``from_logits=True``, used in the stable form
        ``max(x, 0) - x y + log1p(exp(-|x|))``.
    from_logits : bool, default False
    temperature : float, default 1.0
        Logits enter as ``x / temperature``, divided in float64 as the kernel reads them (no
        scaled copy); a finite number > 0, other than 1 only with ``from_logits=True``.
    base : float, optional
        Logarithm base (``None``: nats).
    eps : float or "auto", default "auto"
        As in :func:`cross_entropy`.
    pos_weight : array_like, optional
        Weight ``w_+`` of the positive term, broadcast against ``pred`` (one per label of a
        multi-label input), as ``torch.nn.functional.binary_cross_entropy_with_logits``.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"mean"`` is over all elements, weighted by ``sample_weight``.
    sample_weight : array_like, optional
        Non-negative weights broadcast against ``pred``; a 1-D array of length ``N`` is taken
        as one weight per row of an ``(N, L)`` (or ``(N, ...)``) input.
    where : array_like of bool, optional
        The elements to score, broadcast against ``pred`` as ``sample_weight`` is (a 1-D mask
        of length ``N`` masks whole rows): an element where it is False gives 0.0 in
        ``"none"`` and counts for nothing in ``"sum"``/``"mean"``; its values are not checked
        and propagate nothing.
    groups, n_groups : optional
        One result per group, as in :func:`entropy`, the ids broadcast as ``where`` is (a
        1-D array of length ``N`` gives each row of an ``(N, L)`` input its group).

    out : ndarray, optional
        With ``reduction="none"``: a preallocated array of the result's shape and dtype to write
        into (and return), so a loop does not pay for a fresh buffer each call.
    Returns
    -------
    ndarray or scalar
        Element-wise losses of ``pred``'s shape, or a scalar.

    Raises
    ------
    ValueError, TypeError
        Shapes that differ or do not broadcast, values outside [0, 1], bad options.

    Notes
    -----
    ``log(1 - p)`` is computed from the exact split ``1 - p = hi + lo`` as
    ``log(hi) + lo / hi``, accurate for small ``p`` (as ``log1p(-p)``). Terms with a zero
    coefficient contribute exactly 0, so a perfect prediction gives 0.0 (with ``eps=0``) and an
    infinite logit on the right side gives 0.0 rather than NaN.

    See Also
    --------
    log_loss, torch.nn.functional.binary_cross_entropy_with_logits

    Examples
    --------
    >>> import fastce
    >>> y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    >>> p = [0.8, 0.9, 0.9, 0.6, 0.8, 0.1, 0.4, 0.2, 0.1, 0.3]
    >>> fastce.binary_cross_entropy(y, p).round(3)
    array([0.223, 0.105, 0.105, 0.511, 0.223, 0.105, 0.511, 0.223, 0.105, 0.357])
    >>> round(float(fastce.binary_cross_entropy(y, p, reduction="mean")), 3)
    0.247
    """
    pred_arr = v.as_float_array(pred, "pred", half=True)
    target_arr = v.as_float_array(target, "target", half=True)
    v.same_shape(target_arr, pred_arr, "target", "pred")
    from_logits = v.check_bool(from_logits, "from_logits")
    t = v.check_temperature(temperature, {"from_logits": ("pred", from_logits)})
    checked_reduction = v.check_reduction(reduction)
    ln_base = v.ln_base(base)
    pred_dtype, target_dtype = v.result_dtype(pred_arr.dtype), v.result_dtype(target_arr.dtype)
    eps_value = v.check_eps(eps, pred_dtype)
    shape = pred_arr.shape
    pw = None
    if pos_weight is not None:
        pw = v.broadcast_weight(v.as_weight_array(pos_weight, "pos_weight"), shape, "pos_weight")
    sw = None
    if sample_weight is not None:
        w = v.spread_per_row(v.as_weight_array(sample_weight, "sample_weight"), shape)
        sw = v.broadcast_weight(w, shape, "sample_weight")
    mask = v.check_where(where, shape, per_row=True, like=pred_arr)
    grouping = _groups(groups, shape, n_groups, checked_reduction, mask, per_row=True)

    dtype = np.result_type(target_dtype, pred_dtype)
    # The kernel reads float16 and bfloat16 as their float32 values, widened a tile at a time
    # (no copy of the input), and float32 logits beside a float64 target as float64: it takes
    # the softplus of float32 logits in float32 (within an ulp of a float32 result), and a
    # float64 result needs float64 logits. (Found by the fuzzing campaign: 1e-7 relative
    # errors in a float64 result, when the logits were not widened.)
    pred_read = dtype if from_logits and pred_dtype != dtype and t == 1.0 else pred_dtype
    reads = [
        target_dtype if target_dtype != target_arr.dtype else None,
        pred_read if pred_read != pred_arr.dtype else None,
    ]
    out = v.check_out(out, shape, dtype, checked_reduction)

    def explain() -> None:
        v.explain_probabilities(target_arr, "target", where=mask)
        if not from_logits:
            v.explain_probabilities(pred_arr, "pred", logits_hint=True, where=mask)

    # At a temperature, the kernel divides each segment of logits in float64 as it reads it
    # (its third argument, from_logits otherwise, is the temperature).
    kind = "probs" if not from_logits else "logits" if t == 1.0 else "tempered"
    result = run(
        binary.KERNELS[kind],
        shape,
        [target_arr, pred_arr],
        [from_logits if t == 1.0 else t, eps_value, ln_base],
        [pw, sw],
        "none" if grouping is not None else checked_reduction,
        _F64 if grouping is not None else dtype,
        explain,
        1,
        inner=2,
        out=out,
        count_weights=False,
        where=mask,
        reads=reads,
    )
    if grouping is not None:
        return _by_group(result, grouping, checked_reduction, dtype, mask, sw)
    return result


def _transform(
    name: str, x: Any, axis: Any, keep_class_axis: bool, out: Any, temperature: Any
) -> Any:
    arr, rows = _rows(x, "x", axis)
    t = v.check_temperature(temperature, {"logits": ("x", True)})
    batch_shape = rows.shape[:-1]
    result_shape = arr.shape if keep_class_axis else batch_shape
    out = v.check_out(out, result_shape, v.result_dtype(arr.dtype))
    # Work on the class-last view of ``out``, directly unless it overlaps ``x``.
    target = None
    if out is not None and not np.may_share_memory(out, arr):
        target = np.moveaxis(out, axis, -1) if keep_class_axis else out
    plan = v.BatchPlan(batch_shape, [rows] + ([target] if target is not None else []))
    if plan.n_pieces > v.MAX_PIECES:
        rows = np.ascontiguousarray(rows)
        target = None
        plan = v.BatchPlan(batch_shape, [rows])
    trailing = rows.shape[-1:] if keep_class_axis else ()
    result = target if target is not None else plan.empty_out(v.result_dtype(arr.dtype), trailing)
    if not rows.size and not keep_class_axis:
        # No kernel runs: the log-sum-exp of an empty row is log(0) = -inf (the buffer is
        # uninitialised memory otherwise).
        result[...] = -np.inf
    if rows.size:
        for x_piece, out_piece in plan.pieces([plan.view(rows), plan.view(result, True)]):
            _launch.transform(lse_kernels.TRANSFORMS[name], x_piece, out_piece, t)
    if keep_class_axis:
        result = np.moveaxis(result, -1, axis)
    if out is not None:
        if result is not out and not np.shares_memory(result, out):
            out[...] = result
        return out
    return result[()] if result.ndim == 0 else result


def logsumexp(
    x: Any, *, axis: int = -1, temperature: float = 1.0, out: np.ndarray | None = None
) -> Any:
    r"""Log of the sum of exponentials along ``axis``, computed stably.

    .. math:: \mathrm{lse}(x) = m + \log \sum_c e^{x_c - m}, \qquad m = \max_c x_c

    Computed as ``m + log1p(sum_{c != argmax} exp(x_c - m))``, which keeps its relative accuracy
    when the result is near 0. A row of ``-inf`` (or an empty row) gives ``-inf``; ``+inf`` gives
    ``+inf``; NaN gives NaN. Unlike ``scipy.special.logsumexp`` the default axis is the last one.

    Parameters
    ----------
    x : array_like
        Real values (float32 stays float32, with float64 accumulation).
    axis : int, default -1
    temperature : float, default 1.0
        The rows enter as ``x / temperature`` (divided in float64 as the kernel reads a tile
        of rows: no scaled copy of ``x``): the result is that of ``x / temperature``, exact.

    out : ndarray, optional
        A preallocated array of the result's shape and dtype to write into (and return).
    Returns
    -------
    ndarray or scalar
        ``x.shape`` without ``axis``.

    See Also
    --------
    log_softmax, softmax, scipy.special.logsumexp

    Examples
    --------
    >>> import numpy as np
    >>> import fastce
    >>> float(fastce.logsumexp([1000.0, 1000.0]))  # 1000 + log(2), no overflow
    1000.6931471805599
    >>> fastce.logsumexp([[0.0, -np.inf], [-np.inf, -np.inf]])
    array([  0., -inf])
    """
    return _transform(
        "logsumexp", x, axis, keep_class_axis=False, out=out, temperature=temperature
    )


def log_softmax(
    x: Any, *, axis: int = -1, temperature: float = 1.0, out: np.ndarray | None = None
) -> Any:
    r"""Logarithm of the softmax along ``axis``: ``x - logsumexp(x)``, computed stably.

    .. math:: \log \mathrm{softmax}(x)_c = (x_c - m) - \log \sum_k e^{x_k - m}

    Parameters
    ----------
    x : array_like
    axis : int, default -1
    temperature : float, default 1.0
        The rows enter as ``x / temperature`` (divided in float64 as the kernel reads a tile
        of rows: no scaled copy of ``x``): the result is that of ``x / temperature``, exact.

    out : ndarray, optional
        A preallocated array of the result's shape and dtype to write into (and return).
    Returns
    -------
    ndarray
        The shape of ``x``.

    See Also
    --------
    logsumexp, softmax

    Examples
    --------
    >>> import fastce
    >>> fastce.log_softmax([0.0, 0.0])
    array([-0.69314718, -0.69314718])
    """
    return _transform(
        "log_softmax", x, axis, keep_class_axis=True, out=out, temperature=temperature
    )


def softmax(
    x: Any, *, axis: int = -1, temperature: float = 1.0, out: np.ndarray | None = None
) -> Any:
    r"""Softmax along ``axis``: ``exp(x - m) / sum exp(x - m)``.

    .. math:: \mathrm{softmax}(x)_c = \frac{e^{x_c - m}}{\sum_k e^{x_k - m}}

    Parameters
    ----------
    x : array_like
    axis : int, default -1 (``scipy.special.softmax`` defaults to ``axis=None``)
    temperature : float, default 1.0
        The rows enter as ``x / temperature`` (divided in float64 as the kernel reads a tile
        of rows: no scaled copy of ``x``): the result is that of ``x / temperature``, exact.

    out : ndarray, optional
        A preallocated array of the result's shape and dtype to write into (and return).
    Returns
    -------
    ndarray
        The shape of ``x``; a row of ``-inf`` gives NaN, as in SciPy and PyTorch.

    See Also
    --------
    log_softmax, logsumexp

    Examples
    --------
    >>> import fastce
    >>> fastce.softmax([0.0, 0.0, 0.0, 0.0])
    array([0.25, 0.25, 0.25, 0.25])
    """
    return _transform("softmax", x, axis, keep_class_axis=True, out=out, temperature=temperature)
