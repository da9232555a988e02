"""``log_loss``: a drop-in for ``sklearn.metrics.log_loss`` (scikit-learn 1.9 behaviour).

Same arguments, same arithmetic, same result, same warnings and the same exception types with
messages that say the same thing; scikit-learn itself is not imported. What differs is the
work: scikit-learn builds a one-hot N x C matrix and a clipped copy of the probabilities and
makes several passes over them; here one Numba pass computes the loss and every statistic that
scikit-learn checks (range, NaN/inf, row sums), and the sums are exact.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from . import _reduce
from ._kernels.categorical import log_loss_kernel, soft_ce_kernel

__all__ = ["InvalidParameterError", "log_loss"]


class InvalidParameterError(ValueError, TypeError):
    """An argument of the wrong kind (scikit-learn raises its class of the same name)."""


def _check_proba(y_proba: Any) -> np.ndarray:
    if np.ndim(y_proba) == 0 and not hasattr(y_proba, "__array__"):
        raise InvalidParameterError(
            f"The 'y_proba' parameter of log_loss must be an array-like. Got {y_proba!r} instead."
        )
    a = np.asarray(y_proba)
    if a.dtype.kind in "USO" and not isinstance(y_proba, np.ndarray):
        a = np.asarray(y_proba, dtype=np.float64)  # "could not convert string to float: 'a'"
    if a.dtype.kind == "c":
        raise TypeError("float() argument must be a string or a real number, not 'complex'")
    if a.dtype.kind == "f" and a.dtype.itemsize <= 8:
        pass  # float16, float32 and float64 keep their dtype, as in scikit-learn
    else:
        a = a.astype(np.float64)  # raises "could not convert string to float: ..." as sklearn
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim > 2:
        raise ValueError(f"Found array with dim {a.ndim}, while dim <= 2 is required.")
    if a.ndim == 0:
        raise ValueError(f"Expected array-like, got a 0-d array {a!r} instead.")
    if a.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={a.shape}) while a minimum of 1 is required."
        )
    if a.ndim == 2 and a.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={a.shape}) while a minimum of 1 is required."
        )
    return a


def _target_type(y: np.ndarray) -> str:
    """'binary'/'multiclass' (1-D labels), 'multilabel-indicator', or raise as scikit-learn."""
    if y.ndim == 2 and y.shape[1] > 1:
        values = np.unique(y) if y.size else y
        if y.dtype.kind in "biuf" and np.isin(values, [0, 1]).all():
            return "multilabel-indicator"
        raise ValueError(f"Unknown label type: {y!r}")
    if y.ndim > 2:
        raise ValueError(f"Unknown label type: {y!r}")
    flat = y.reshape(-1)
    if y.dtype.kind == "O":
        is_str = [isinstance(v, str) for v in flat]
        if any(is_str) and not all(is_str):
            raise ValueError(
                f"Mix of label input types (string and number); Got {np.asarray(flat, dtype=str)}."
            )
        if not any(is_str) and not all(isinstance(v, numbers.Real) for v in flat):
            raise ValueError(f"Unknown label type: ({flat.tolist()},)")
    if y.dtype.kind == "f" and flat.size and not np.all(np.floor(flat) == flat):
        raise ValueError(f"Unknown label type: ({flat.tolist()},)")
    return "multiclass"


def _check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        w = np.full(n, float(sample_weight))  # type: ignore[arg-type]
    else:
        w = np.asarray(sample_weight)
        w = w.astype(np.float64) if w.dtype not in (np.float32, np.float64) else w
        w = np.ascontiguousarray(w, dtype=np.float64)
        if np.isnan(w).any():
            raise ValueError("Input sample_weight contains NaN.")
        if np.isinf(w).any():
            raise ValueError(
                "Input sample_weight contains infinity or a value too large for dtype('float64')."
            )
        if w.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {w.ndim}D array. Expected "
                f"either a scalar value or a 1D array of length {n}."
            )
    if np.all(w == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w


def _num_samples(a: Any) -> int:
    return int(np.shape(a)[0]) if np.ndim(a) else 1


def log_loss(
    y_true: Any,
    y_proba: Any,
    *,
    normalize: bool = True,
    sample_weight: Any = None,
    labels: Any = None,
) -> float:
    r"""Log loss (logistic loss, cross-entropy loss), a drop-in for ``sklearn.metrics.log_loss``.

    .. math:: L = -\frac{1}{\sum_i s_i} \sum_i s_i \log \mathrm{clip}(p_{i, y_i}, \epsilon,
              1 - \epsilon), \qquad \epsilon = \mathrm{finfo}(y_{proba}).\mathrm{eps}

    Parameters
    ----------
    y_true : array_like
        Ground-truth labels (numbers or strings) of shape (n_samples,), or a 0/1 indicator
        matrix of shape (n_samples, n_classes).
    y_proba : array_like of float
        Predicted probabilities, shape (n_samples, n_classes), columns ordered as the sorted
        labels; or shape (n_samples,), the probability of the positive (greater) label,
        expanded to ``[1 - p, p]``.
    normalize : bool, default True
        Return the (weighted) mean per-sample loss; otherwise their (weighted) sum.
    sample_weight : array_like of shape (n_samples,), optional
        Sample weights (negative weights are accepted, as in scikit-learn).
    labels : array_like, optional
        The class labels; inferred from ``y_true`` when not given.

    Returns
    -------
    float
        The log loss in nats.

    Raises
    ------
    ValueError
        NaN or inf in ``y_proba``, values outside [0, 1], a single class without ``labels``,
        labels in ``y_true`` that are not in ``labels``, a column count that does not match the
        number of classes, inconsistent lengths, all-zero sample weights.
    ZeroDivisionError
        Sample weights that sum to zero with ``normalize=True``.
    InvalidParameterError
        ``y_proba`` is not array-like (a subclass of both ValueError and TypeError).

    Warns
    -----
    UserWarning
        Rows of ``y_proba`` that do not sum to one (within ``sqrt(eps)``), or ``labels`` not in
        sorted order.

    Notes
    -----
    The probabilities are clipped to ``[eps, 1 - eps]``, ``eps`` the machine epsilon of
    ``y_proba``'s own float dtype (float16, float32 or float64; other dtypes become float64),
    and are not renormalised. Results agree with scikit-learn 1.9 to a relative 1e-12 for
    float64 and 1e-6 for float32 input. float16 input is computed in float32 after clipping at
    the float16 epsilon, so it agrees only to float16 precision.

    See Also
    --------
    cross_entropy, binary_cross_entropy, sklearn.metrics.log_loss

    Examples
    --------
    >>> from fastce import log_loss
    >>> round(log_loss(["spam", "ham", "ham", "spam"],
    ...                [[.1, .9], [.9, .1], [.8, .2], [.35, .65]]), 5)
    0.21616
    """
    proba = _check_proba(y_proba)
    dtype = proba.dtype
    eps = float(np.finfo(dtype).eps)
    kernel_proba = proba.astype(np.float32) if dtype == np.float16 else proba
    y = np.asarray(y_true)
    if isinstance(y_true, (list, tuple)) and y.dtype.kind == "U":
        # NumPy turns [1, "a"] into strings; scikit-learn looks at the original elements.
        if len({isinstance(label, str) for label in y_true}) > 1:
            raise_later: Exception | None = ValueError(
                f"Mix of label input types (string and number); Got {y}."
            )
        else:
            raise_later = None
    else:
        raise_later = None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    n = proba.shape[0]
    lengths = [n, _num_samples(y)]
    if sample_weight is not None:
        lengths.append(_num_samples(sample_weight))
    check_length_later = len(set(lengths)) > 1

    binary = proba.ndim == 1 or proba.shape[1] == 1
    rows = kernel_proba.reshape(n, -1)
    weights = None
    no_weights = np.empty(0, np.float64)

    # Map labels to columns first (it may fail), but raise in scikit-learn's order: the
    # y_proba checks (NaN, inf, range) come before the length, weight and label checks.
    label_error: Exception | None = None
    index = None
    indicator = None
    classes: np.ndarray = np.empty(0)
    try:
        if check_length_later:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: {lengths}"
            )
        weights = _check_sample_weight(sample_weight, n)
        if raise_later is not None:
            raise raise_later
        kind = _target_type(y)
        if kind == "multilabel-indicator":
            indicator = np.asarray(y, dtype=dtype if dtype != np.float16 else np.float32)
            classes = np.arange(y.shape[1])
        else:
            index, classes = _label_index(y, labels)
    except ValueError as exc:
        label_error = exc

    nchunks = _reduce.n_chunks(n, rows.shape[1])
    buffers = _reduce.Buffers.new(nchunks, reduce=True)
    stats = np.zeros((nchunks, 5), np.float64)
    if index is not None:
        log_loss_kernel(
            rows,
            index,
            binary,
            dtype != np.float64,
            eps,
            weights if weights is not None else no_weights,
            buffers.acc,
            buffers.counts,
            stats,
        )
    else:
        _stats_only(rows, stats)
    if stats[:, 2].any():
        raise ValueError("Input contains NaN.")
    if stats[:, 3].any():
        raise ValueError(
            f"Input contains infinity or a value too large for dtype('{dtype.name}')."
        )
    highest, lowest = stats[:, 1].max(), stats[:, 0].min()
    if highest > 1:
        raise ValueError(f"y_prob contains values greater than 1: {dtype.type(highest)}")
    if lowest < 0:
        raise ValueError(f"y_prob contains values lower than 0: {dtype.type(lowest)}")
    if label_error is not None:
        raise label_error
    if stats[:, 4].any():
        warnings.warn(
            "The y_prob values do not sum to one. Make sure to pass probabilities.",
            UserWarning,
            stacklevel=2,
        )
    n_columns = 2 if binary else rows.shape[1]
    if classes.shape[0] != n_columns:
        if labels is None:
            raise ValueError(
                "y_true and y_prob contain different number of classes: "
                f"{classes.shape[0]} vs {n_columns}. Please provide the true labels explicitly "
                f"through the labels argument. Classes found in y_true: {classes}"
            )
        raise ValueError(
            "The number of classes in labels is different from that in y_prob. Classes "
            f"found in labels: {classes}"
        )
    if indicator is not None:
        soft_ce_kernel(
            indicator,
            rows,
            False,
            eps,
            np.empty(0, np.float64),
            0.0,
            1.0,
            weights if weights is not None else no_weights,
            np.empty(0, np.float64),
            buffers.acc,
            buffers.counts,
            buffers.bad,
        )
    total, weight = _reduce.fold_chunks(buffers.acc)
    if not normalize:
        return float(total)
    if weight == 0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return float(total / weight)


def _label_index(y: np.ndarray, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column index of every label (sorted label order, as LabelBinarizer) and the classes."""
    if labels is not None:
        given = np.asarray(labels)
        classes = np.unique(given)
        if classes.shape != given.shape or not np.all(classes == given):
            warnings.warn(
                f"Labels passed were {labels}. But this function assumes labels are ordered "
                f"lexicographically. Pass the ordered labels={classes.tolist()} and ensure "
                "that the columns of y_prob correspond to this ordering.",
                UserWarning,
                stacklevel=3,
            )
        position = np.searchsorted(classes, y)
        inside = position < classes.shape[0]
        found = np.zeros(y.shape, bool)
        found[inside] = classes[position[inside]] == y[inside]
        if not found.all():
            raise ValueError(
                f"y_true contains values {set(y[~found].tolist())} not belonging to the "
                f"passed labels {labels}."
            )
        if classes.shape[0] == 1:
            raise ValueError(
                f"The labels array needs to contain at least two labels, got {classes}."
            )
        return position.astype(np.int64), classes
    if y.shape[0] == 0:
        raise ValueError(f"y has 0 samples: {y!r}")
    classes, inverse = np.unique(y, return_inverse=True)
    if classes.shape[0] == 1:
        raise ValueError(
            f"y_true contains only one label ({classes[0]}). Please provide the list of all "
            "expected class labels explicitly through the labels argument."
        )
    return inverse.reshape(-1).astype(np.int64), classes


def _stats_only(rows: np.ndarray, stats: np.ndarray) -> None:
    """The y_proba statistics on the error path (no labels to score)."""
    with np.errstate(invalid="ignore"):
        stats[0, 0] = np.nanmin(rows) if not np.isnan(rows).all() else np.nan
        stats[0, 1] = np.nanmax(rows) if not np.isnan(rows).all() else np.nan
    stats[0, 2] = float(np.isnan(rows).any())
    stats[0, 3] = float(np.isinf(rows).any())
    if rows.shape[1] > 1:
        eps = float(np.finfo(rows.dtype).eps)
        sums = rows.sum(axis=1, dtype=np.float64)
        stats[0, 4] = float(not np.all(np.abs(sums - 1.0) <= 1e-8 + np.sqrt(eps)))
