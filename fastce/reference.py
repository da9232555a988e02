"""Naive, obviously correct reference implementations of every public function.

Written for clarity, not speed: plain Python loops over samples and classes with ``math``
functions on Python floats (float64), following the textbook formulas and the conventions of
docs/api.md. Tests compare the kernels against these. They validate nothing beyond what the
formulas need; they assume well-formed input.

Each function takes the same arguments as its fast counterpart and returns float64 results
(an ndarray for ``reduction="none"``, a Python float otherwise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "binary_cross_entropy",
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


def _log(x: float) -> float:
    if math.isnan(x):
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return math.inf
    return math.log(x)


def _clip(q: float, eps: float) -> float:
    if math.isnan(q):
        return q
    return min(max(q, eps), 1.0 - eps)


def _eps(eps: Any, dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) if eps == "auto" else float(eps)


def _promoted(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a.astype(np.float32 if a.dtype.itemsize <= 4 else np.float64)
    return a.astype(np.float64)


def _tempered(a: np.ndarray, temperature: float, logits: bool = True) -> np.ndarray:
    """Logits at a temperature: ``a / temperature``, divided in float64 (probabilities, and
    a temperature of 1, are left as they are)."""
    if not logits or temperature == 1.0:
        return a
    return a.astype(np.float64) / float(temperature)


def _flat_rows(moved: np.ndarray) -> np.ndarray:
    """(samples, classes); ``reshape(-1, C)`` cannot say how many rows of 0 classes there are."""
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def _rows(a: np.ndarray, axis: int) -> tuple[list[list[float]], tuple[int, ...]]:
    moved = np.moveaxis(a, axis, -1)
    return _flat_rows(moved).astype(np.float64).tolist(), moved.shape[:-1]


def _reduce(values: list[float], weights: list[float], reduction: str, shape: Any) -> Any:
    if reduction == "none":
        return np.array(values, dtype=np.float64).reshape(shape)
    total = math.fsum(values) if all(math.isfinite(x) for x in values) else sum(values)
    if reduction == "sum":
        return float(total)
    w = math.fsum(weights)
    return (
        total / w
        if w != 0
        else (math.nan if total == 0 or math.isnan(total) else total * math.inf)
    )


def _lse_parts(row: list[float]) -> tuple[float, float]:
    """(m, log(sum(exp(x - m)))) with m the maximum, the log written as log1p of the sum of
    the other terms so that it keeps its relative accuracy when it is tiny."""
    if any(math.isnan(x) for x in row):
        return math.nan, math.nan
    m = max(row, default=-math.inf)
    if m == -math.inf:
        return -math.inf, 0.0
    if m == math.inf:
        # log(e^inf + ...) = inf however many entries are +inf (as scipy and PyTorch); what
        # is then formed from it (x - lse, e^(x - lse)) follows IEEE arithmetic.
        return math.inf, 0.0
    j = row.index(m)
    return m, math.log1p(math.fsum(math.exp(x - m) for c, x in enumerate(row) if c != j))


def _lse(row: list[float]) -> float:
    """log(sum(exp(x))); -inf for an empty or all -inf row."""
    m, log_sum = _lse_parts(row)
    return m + log_sum


def logsumexp(x: Any, *, axis: int = -1, temperature: float = 1.0) -> Any:
    rows, shape = _rows(_tempered(_promoted(x), temperature), axis)
    return np.array([_lse(r) for r in rows], dtype=np.float64).reshape(shape)


def log_softmax(x: Any, *, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    a = _tempered(_promoted(x), temperature)
    moved = np.moveaxis(a, axis, -1)
    rows = _flat_rows(moved).astype(np.float64)
    out = np.empty_like(rows)
    for i, r in enumerate(rows.tolist()):
        m, log_sum = _lse_parts(r)
        out[i] = [(xc - m) - log_sum for xc in r]
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


def softmax(x: Any, *, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    a = _tempered(_promoted(x), temperature)
    moved = np.moveaxis(a, axis, -1)
    rows = _flat_rows(moved).astype(np.float64)
    out = np.empty_like(rows)
    for i, r in enumerate(rows.tolist()):
        lse = _lse(r)
        if lse == math.inf:  # e^(x - m) / sum: the +inf entries give inf/inf, and so the sum
            out[i] = [math.nan] * len(r)
            continue
        out[i] = [math.exp(xc - lse) if not math.isnan(xc - lse) else math.nan for xc in r]
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


def _undefined_softmax(row: list[float]) -> bool:
    """A row of logits that are all -inf (or no logits) has no softmax."""
    return max(row, default=-math.inf) == -math.inf


def _log_q(row: list[float], from_logits: bool, eps: float) -> list[float]:
    """log q_c for each class: log_softmax of logits, or the log of clipped probabilities."""
    if from_logits:
        m, log_sum = _lse_parts(row)
        return [(x - m) - log_sum for x in row]
    return [_log(_clip(q, eps)) for q in row]


def _log_p(row: list[float], target_from_logits: bool) -> list[float]:
    """log p_c of a target row: log_softmax of logits (NaN where IEEE arithmetic gives it: a
    row whose maximum is not finite), or the log of the probability."""
    if target_from_logits:
        m, log_sum = _lse_parts(row)
        return [(x - m) - log_sum for x in row]
    return [_log(p) for p in row]


def _target(row: list[float], target_from_logits: bool) -> list[float]:
    """The target distribution of a row: its softmax when it holds logits."""
    if target_from_logits:
        return [math.exp(lp) for lp in _log_p(row, True)]
    return list(row)


def _weights(sample_weight: Any, n: int) -> list[float]:
    if sample_weight is None:
        return [1.0] * n
    return [float(w) for w in np.asarray(sample_weight, dtype=np.float64).reshape(-1)]


def _kept(where: Any, shape: tuple[int, ...], n: int) -> list[bool]:
    """Which of the n samples (of ``shape``) the mask ``where`` keeps (all, without one)."""
    if where is None:
        return [True] * n
    return [bool(k) for k in np.broadcast_to(np.asarray(where, bool), shape).reshape(-1)]


def _each_group(
    function: Any, arrays: tuple[Any, ...], options: dict[str, Any], shape: tuple[int, ...],
    groups: Any, n_groups: int | None, per_row: bool = False,
) -> np.ndarray:  # fmt: skip
    """``function`` once per group, on that group's samples alone: the samples ``where`` keeps
    whose id is the group's (ids and mask broadcast to the samples' ``shape``; ``per_row``: a
    1-D array of length N gives each row of an (N, ...) input its entry)."""

    def spread(a: Any) -> np.ndarray:
        a = np.asarray(a)
        if per_row and a.ndim == 1 and len(shape) >= 2 and a.shape[0] == shape[0]:
            a = a.reshape(a.shape + (1,) * (len(shape) - 1))
        return np.broadcast_to(a, shape)

    ids = spread(groups).astype(np.int64)
    where = options.pop("where", None)
    keep = np.ones(shape, bool) if where is None else spread(np.asarray(where, bool))
    if n_groups is None:
        n_groups = int(ids[keep].max()) + 1 if keep.any() else 0
    return np.array(
        [function(*arrays, where=keep & (ids == k), **options) for k in range(n_groups)],
        dtype=np.float64,
    )


def _ln_base(base: float | None) -> float:
    """What a value in nats is divided by to be in units of ``base``."""
    return 1.0 if base is None else math.log(base)


def _per_row(
    measure: Any,
    arrays: list[np.ndarray],
    axis: int,
    base: float | None,
    reduction: str,
    sample_weight: Any,
    where: Any = None,
) -> Any:
    """``measure(*rows)`` of each sample, its rows taken along ``axis`` of each array (the
    first array's other axes give the shape), in units of ``base``, times its sample weight,
    reduced with the sample weights; a sample ``where`` masks out is 0.0 and left out."""
    first, shape = _rows(arrays[0], axis)
    others = [_rows(a, axis)[0] for a in arrays[1:]]
    lnb = _ln_base(base)
    sw = _weights(sample_weight, len(first))
    kept = _kept(where, shape, len(first))
    values = [
        measure(*rows) / lnb * s if k else 0.0
        for *rows, s, k in zip(first, *others, sw, kept, strict=True)
    ]
    weights = [s for s, k in zip(sw, kept, strict=True) if k]
    return _reduce([x for x, k in zip(values, kept, strict=True) if k] if reduction != "none"
                   else values, weights, reduction, shape)  # fmt: skip


def entropy(
    p: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    from_logits: bool = False,
    temperature: float = 1.0,
    reduction: str = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    if groups is not None:
        shape = np.moveaxis(np.asarray(p), axis, -1).shape[:-1]
        opts = {"axis": axis, "base": base, "from_logits": from_logits,
                "temperature": temperature, "reduction": reduction,
                "sample_weight": sample_weight, "where": where}  # fmt: skip
        return _each_group(entropy, (p,), opts, shape, groups, n_groups)

    def h(row: list[float]) -> float:
        if not from_logits:
            return -math.fsum(pc * _log(pc) for pc in row if pc != 0.0)
        if any(math.isnan(x) for x in row) or _undefined_softmax(row):
            return math.nan
        lse = _lse(row)
        total = 0.0
        for x in row:
            q = math.exp(x - lse)
            if q != 0.0:
                total -= q * (x - lse)
        return total

    arr = _tempered(_promoted(p), temperature, from_logits)
    return _per_row(h, [arr], axis, base, reduction, sample_weight, where)


def cross_entropy(
    target: Any,
    pred: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: Any = "auto",
    label_smoothing: float = 0.0,
    class_weight: Any = None,
    ignore_index: int | None = None,
    reduction: str = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    if groups is not None:
        shape = np.moveaxis(np.asarray(pred), axis, -1).shape[:-1]
        opts = {"axis": axis, "from_logits": from_logits,
                "target_from_logits": target_from_logits, "temperature": temperature,
                "base": base, "eps": eps, "label_smoothing": label_smoothing,
                "class_weight": class_weight, "ignore_index": ignore_index,
                "reduction": reduction, "sample_weight": sample_weight,
                "where": where}  # fmt: skip
        return _each_group(cross_entropy, (target, pred), opts, shape, groups, n_groups)
    pred_arr = _promoted(pred)
    e = _eps(eps, pred_arr.dtype)
    pred_arr = _tempered(pred_arr, temperature, from_logits)
    n_classes = np.moveaxis(pred_arr, axis, -1).shape[-1]
    cw = [1.0] * n_classes if class_weight is None else [float(w) for w in class_weight]
    s = float(label_smoothing)
    t = np.asarray(target)
    if t.shape != np.moveaxis(pred_arr, axis, -1).shape[:-1]:  # probabilities

        def soft(r: list[float], pr: list[float]) -> float:
            logq = _log_q(list(r), from_logits, e)
            target = _target(pr, target_from_logits)
            loss = 0.0
            for c in range(n_classes):
                pc = (1 - s) * target[c] + s / n_classes if s else target[c]
                if pc != 0.0:
                    loss -= cw[c] * pc * logq[c]
            if any(math.isnan(q) for q in r) or (from_logits and _undefined_softmax(r)):
                return math.nan
            if target_from_logits and _undefined_softmax(pr):
                return math.nan
            return loss

        arrays = [pred_arr, _tempered(_promoted(target), temperature, target_from_logits)]
        return _per_row(soft, arrays, axis, base, reduction, sample_weight, where)
    # Class indices: an ignored sample counts for nothing, and the class weights weigh the mean.
    rows, shape = _rows(pred_arr, axis)
    lnb = _ln_base(base)
    sw = _weights(sample_weight, len(rows))
    kept = _kept(where, shape, len(rows))
    values: list[float] = []
    weights: list[float] = []
    for r, y, sweight, k in zip(rows, t.reshape(-1).tolist(), sw, kept, strict=True):
        if not k or (ignore_index is not None and y == ignore_index):
            values.append(0.0)
            continue
        y = int(y)
        logq = _log_q(list(r), from_logits, e)
        if not from_logits and any(math.isnan(q) for q in r):
            logq = [math.nan] * n_classes
        nll = -cw[y] * logq[y]
        if s:
            smooth = -math.fsum(w * lq for w, lq in zip(cw, logq, strict=True))
            nll = (1 - s) * nll + s / n_classes * smooth
        values.append(nll / lnb * sweight)
        weights.append(cw[y] * sweight)
    return _reduce(values, weights, reduction, shape)


def perplexity(target: Any, pred: Any, **kwargs: Any) -> Any:
    mean = cross_entropy(target, pred, reduction="mean", **kwargs)
    if np.ndim(mean):  # one per group
        return np.array([_exp_of_mean(float(m)) for m in mean])
    return _exp_of_mean(mean)


def _exp_of_mean(mean: float) -> float:
    if math.isnan(mean):  # nothing counted, or a NaN: no perplexity
        return math.nan
    return math.exp(mean) if mean < 709 else math.inf


def kl_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: Any = "auto",
    reduction: str = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    if groups is not None:
        shape = np.moveaxis(np.asarray(q), axis, -1).shape[:-1]
        opts = {"axis": axis, "from_logits": from_logits,
                "target_from_logits": target_from_logits, "temperature": temperature,
                "base": base, "eps": eps, "reduction": reduction,
                "sample_weight": sample_weight, "where": where}  # fmt: skip
        return _each_group(kl_divergence, (p, q), opts, shape, groups, n_groups)
    q_arr = _promoted(q)
    e = _eps(eps, q_arr.dtype)
    q_arr = _tempered(q_arr, temperature, from_logits)
    p_arr = _tempered(_promoted(p), temperature, target_from_logits)

    def kl(pr: list[float], qr: list[float]) -> float:
        logq = _log_q(list(qr), from_logits, e)
        logp = _log_p(pr, target_from_logits)
        total = 0.0
        for pc, lp, lq in zip(_target(pr, target_from_logits), logp, logq, strict=True):
            if pc != 0.0:
                total += pc * (lp - lq)
        if any(math.isnan(x) for x in qr) or (from_logits and _undefined_softmax(qr)):
            return math.nan
        if target_from_logits and _undefined_softmax(pr):
            return math.nan
        return total

    return _per_row(kl, [p_arr, q_arr], axis, base, reduction, sample_weight, where)


def js_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    from_logits: bool = False,
    target_from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    reduction: str = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    if groups is not None:
        shape = np.moveaxis(np.asarray(q), axis, -1).shape[:-1]
        opts = {"axis": axis, "from_logits": from_logits,
                "target_from_logits": target_from_logits, "temperature": temperature,
                "base": base, "reduction": reduction, "sample_weight": sample_weight,
                "where": where}  # fmt: skip
        return _each_group(js_divergence, (p, q), opts, shape, groups, n_groups)

    def js(pr: list[float], qr: list[float]) -> float:
        if (target_from_logits and _undefined_softmax(pr)) or (
            from_logits and _undefined_softmax(qr)
        ):
            return math.nan
        total = 0.0
        pairs = zip(_target(pr, target_from_logits), _target(qr, from_logits), strict=True)
        for pc, qc in pairs:
            if math.isnan(pc) or math.isnan(qc):
                return math.nan
            m = (pc + qc) / 2
            if pc != 0.0:
                total += 0.5 * pc * (_log(pc) - _log(m))
            if qc != 0.0:
                total += 0.5 * qc * (_log(qc) - _log(m))
        return total

    p_arr = _tempered(_promoted(p), temperature, target_from_logits)
    q_arr = _tempered(_promoted(q), temperature, from_logits)
    return _per_row(js, [p_arr, q_arr], axis, base, reduction, sample_weight, where)


def binary_cross_entropy(
    target: Any,
    pred: Any,
    *,
    from_logits: bool = False,
    temperature: float = 1.0,
    base: float | None = None,
    eps: Any = "auto",
    pos_weight: Any = None,
    reduction: str = "none",
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
) -> Any:
    if groups is not None:
        opts = {"from_logits": from_logits, "temperature": temperature, "base": base,
                "eps": eps, "pos_weight": pos_weight, "reduction": reduction,
                "sample_weight": sample_weight, "where": where}  # fmt: skip
        shape = np.shape(pred)
        return _each_group(
            binary_cross_entropy, (target, pred), opts, shape, groups, n_groups, per_row=True
        )
    pred_arr = _promoted(pred)
    e = _eps(eps, pred_arr.dtype)
    pred_arr = _tempered(pred_arr, temperature, from_logits)
    shape = pred_arr.shape
    y_all = _promoted(target).astype(np.float64).reshape(-1)
    x_all = pred_arr.astype(np.float64).reshape(-1)
    pw_all = (
        np.broadcast_to(np.asarray(pos_weight, np.float64), shape).reshape(-1)
        if pos_weight is not None
        else np.ones(x_all.size)
    )
    if sample_weight is None:
        sw_all = np.ones(x_all.size)
    else:
        w = np.asarray(sample_weight, np.float64)
        if w.ndim == 1 and len(shape) >= 2 and w.shape[0] == shape[0]:
            w = w.reshape(w.shape + (1,) * (len(shape) - 1))
        sw_all = np.broadcast_to(w, shape).reshape(-1)
    mask = None if where is None else np.asarray(where, bool)
    if mask is not None and mask.ndim == 1 and len(shape) >= 2 and mask.shape[0] == shape[0]:
        mask = mask.reshape(mask.shape + (1,) * (len(shape) - 1))
    kept = _kept(mask, shape, x_all.size)
    lnb = _ln_base(base)
    values = []
    weights = []
    for y, x, pw, s, k in zip(
        y_all.tolist(), x_all.tolist(), pw_all.tolist(), sw_all.tolist(), kept, strict=True
    ):
        if not k:
            values.append(0.0)
            continue
        weights.append(s)
        if from_logits:
            # log sigmoid(x) and log(1 - sigmoid(x)) through their textbook definitions,
            # evaluated so that large |x| does not overflow.
            log_p = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
            log_1mp = -x + log_p if x >= 0 else -math.log1p(math.exp(x))
            if math.isnan(x):
                log_p = log_1mp = math.nan
        else:
            pc = _clip(x, e)
            log_p, log_1mp = _log(pc), math.log1p(-pc) if pc < 0.5 else _log(1.0 - pc)
        loss = 0.0
        if y != 0.0:
            loss -= pw * y * log_p
        if y != 1.0:
            loss -= (1.0 - y) * log_1mp
        values.append(loss / lnb * s)
    return _reduce(values, weights, reduction, shape)


def log_loss(
    y_true: Any,
    y_proba: Any,
    *,
    normalize: bool = True,
    sample_weight: Any = None,
    labels: Any = None,
) -> float:
    """The scikit-learn log loss, written out: one-hot by sorted labels, clip, average."""
    proba = np.asarray(y_proba)
    if proba.dtype.kind != "f":
        proba = proba.astype(np.float64)
    eps = float(np.finfo(proba.dtype).eps)
    proba = proba.astype(np.float64)
    if proba.ndim == 1:
        proba = np.stack([1 - proba, proba], axis=1)
    classes = sorted(set(np.asarray(labels if labels is not None else y_true).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    sw = _weights(sample_weight, len(proba))
    losses = []
    for y, row in zip(np.asarray(y_true).tolist(), proba, strict=True):
        losses.append(-_log(_clip(float(row[index[y]]), eps)))
    total = math.fsum(loss * w for loss, w in zip(losses, sw, strict=True))
    return total / math.fsum(sw) if normalize else total
