"""``log_loss``: a drop-in for ``sklearn.metrics.log_loss`` (scikit-learn 1.9 behaviour).

Same arguments, same arithmetic, same result, same warnings and the same exception types with
messages that say the same thing; scikit-learn itself is not imported. What differs is the
work: scikit-learn builds a one-hot N x C matrix and a clipped copy of the probabilities and
makes several passes over them; here one Numba pass computes the loss and every statistic that
scikit-learn checks (range, NaN/inf, row sums), and the sums are exact.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import _launch, _reduce
from ._kernels import pair
from ._kernels.nll import log_loss_kernel
from ._validate import reject_missing as _reject_missing

__all__ = ["InvalidParameterError", "log_loss"]


class InvalidParameterError(ValueError, TypeError):
    """An argument of the wrong kind (scikit-learn raises its class of the same name)."""


def _is_array_like(x: Any) -> bool:
    """scikit-learn's "array-like": has a length, a shape or __array__, and is not a scalar."""
    if isinstance(x, (str, bytes)) or np.isscalar(x):
        return False
    return hasattr(x, "__len__") or hasattr(x, "shape") or hasattr(x, "__array__")


def _validate_params(
    y_true: Any, y_proba: Any, normalize: Any, sample_weight: Any, labels: Any
) -> None:
    """The argument kinds scikit-learn's ``validate_params`` enforces, in the same order."""
    for name, value in [("y_true", y_true), ("y_proba", y_proba)]:
        if not _is_array_like(value):
            raise InvalidParameterError(
                f"The '{name}' parameter of log_loss must be an array-like. Got {value!r} instead."
            )
    if not isinstance(normalize, (bool, np.bool_)):
        raise InvalidParameterError(
            "The 'normalize' parameter of log_loss must be an instance of 'bool' or an "
            f"instance of 'numpy.bool'. Got {normalize!r} instead."
        )
    for name, value in [("sample_weight", sample_weight), ("labels", labels)]:
        if value is not None and not _is_array_like(value):
            raise InvalidParameterError(
                f"The '{name}' parameter of log_loss must be an array-like or None. "
                f"Got {value!r} instead."
            )


def _check_proba(y_proba: Any) -> np.ndarray:
    a = np.asarray(y_proba)
    if a.dtype.kind in "USO" and not isinstance(y_proba, np.ndarray):
        a = np.asarray(y_proba, dtype=np.float64)  # "could not convert string to float: 'a'"
    if a.dtype.kind == "c":
        if isinstance(y_proba, np.ndarray):
            raise ValueError(f"Complex data not supported\n{y_proba}\n")
        raise TypeError("float() argument must be a string or a real number, not 'complex'")
    if a.dtype.kind == "f" and a.dtype.itemsize <= 8 and a.dtype.isnative:
        pass  # float16, float32 and float64 keep their dtype, as in scikit-learn
    else:
        # Other dtypes become float64: also non-native floats ('>f4' is not float32 for
        # scikit-learn's dtype list), so their clipping eps is float64's, as there.
        a = a.astype(np.float64)  # raises "could not convert string to float: ..." as sklearn
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
        raise ValueError("Multioutput target data is not supported with label binarization")
    if y.ndim > 2:
        raise ValueError(f"Unknown label type: {y!r}")
    flat = y.reshape(-1)
    if y.dtype.kind == "O":
        is_str = [isinstance(v, str) for v in flat]
        if any(is_str) and not all(is_str):
            raise ValueError(
                f"Mix of label input types (string and number); Got {np.asarray(flat, dtype=str)}."
            )
        if flat.size and not any(is_str):
            # Numbers in an object array (bools, or ints beyond int64) are "unknown" to
            # scikit-learn's type_of_target, as are None and other objects.
            raise ValueError(f"Unknown label type: ({flat.tolist()},)")
    if y.dtype.kind == "f" and np.isnan(flat).any():
        raise ValueError("Input y contains NaN.")
    if y.dtype.kind == "f" and flat.size and not np.all(np.floor(flat) == flat):
        raise ValueError(f"Unknown label type: ({flat.tolist()},)")
    return "multiclass"


def _check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    given = np.asarray(sample_weight)
    if given.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{given}\n")
    if given.dtype.kind in "US":  # scikit-learn raises a TypeError (from a ufunc) here
        raise TypeError(f"sample_weight must hold numbers; got an array of dtype {given.dtype}")
    w = np.ascontiguousarray(given, dtype=np.float64)
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
    _validate_params(y_true, y_proba, normalize, sample_weight, labels)
    # Where scikit-learn silently drops a mask (or fails on pd.NA with an unrelated message),
    # fastce refuses it, as its other functions do.
    y_true = _reject_missing(y_true, "y_true")
    y_proba = _reject_missing(y_proba, "y_proba")
    if sample_weight is not None:
        sample_weight = _reject_missing(sample_weight, "sample_weight")
    if labels is not None:
        labels = _reject_missing(labels, "labels")
    for value in (y_true, sample_weight, labels):
        # (found by fuzzing: a 0-d y_true reached an IndexError, or the kernel's TypingError)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            raise TypeError(
                "Input should have at least 1 dimension i.e. satisfy `len(x.shape) > 0`, got "
                f"scalar `{value!r}` instead."
            )
    proba = _check_proba(y_proba)
    dtype = proba.dtype
    eps = float(np.finfo(dtype).eps)
    n = proba.shape[0]
    binary = proba.ndim == 1 or proba.shape[1] == 1
    # float16 is scored in float32 (Numba has no float16 arithmetic), clipped at its own eps.
    rows = (proba.astype(np.float32) if dtype == np.float16 else proba).reshape(n, -1)

    # Everything about y_true, labels and weights is worked out first, but what it raises or
    # warns is held back: scikit-learn checks y_proba (NaN, inf, range) before any of it.
    encoding = _Encoding(y_true, labels, sample_weight, n, dtype)

    nchunks = _launch.n_chunks(n, rows.shape[1])
    n_slots = _launch.slots(nchunks)
    buffers = _launch.Buffers.new(n_slots, reduce=True)
    # per thread: min, max, any NaN, any inf, any row not summing to one
    stats = np.zeros((n_slots, 5), np.float64)
    stats[:, 0], stats[:, 1] = np.inf, -np.inf
    weights = encoding.weights if encoding.weights is not None else np.empty(0, np.float64)
    index = encoding.index if encoding.index is not None else np.zeros(n, np.int64)
    # One pass: the loss, and every statistic scikit-learn checks. With an indicator target
    # (or labels that failed to encode) the loss part is thrown away and redone below.
    _launch.call_rows(
        log_loss_kernel,
        n,
        nchunks,
        lambda r, slot: (
            rows[r],
            index[r],
            binary,
            dtype != np.float64,
            eps,
            _launch.rows_of(weights, r),
            *buffers.slot(slot)[:2],
            stats[slot : slot + 1],
        ),
    )
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
    for message in encoding.warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    if encoding.error is not None:
        raise encoding.error
    if stats[:, 4].any():
        warnings.warn(
            "The y_prob values do not sum to one. Make sure to pass probabilities.",
            UserWarning,
            stacklevel=2,
        )
    classes = encoding.classes
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
    if encoding.indicator is not None:
        buffers = _launch.Buffers.new(n_slots, reduce=True)
        indicator = encoding.indicator
        _launch.call_rows(
            pair.KERNELS["soft_ce_probs"].rows,
            n,
            nchunks,
            lambda r, slot: (
                indicator[r],
                rows[r],
                eps,
                np.empty(0, np.float64),
                0.0,
                1.0,
                _launch.rows_of(weights, r),
                _launch.NO_WHERE,
                np.empty(0, rows.dtype),
                *buffers.slot(slot),
            ),
        )
    total, weight = _reduce.fold(buffers, True, np.dtype(np.float64))
    if not normalize:
        return float(total)
    if weight == 0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return float(total / weight)


class _Encoding:
    """y_true encoded as column indices (or an indicator matrix), with the classes, the checked
    sample weights, and the error and warnings scikit-learn would raise on the way."""

    def __init__(self, y_true: Any, labels: Any, sample_weight: Any, n: int, dtype: Any) -> None:
        self.index: np.ndarray | None = None
        self.indicator: np.ndarray | None = None
        self.classes: np.ndarray = np.empty(0)
        self.weights: np.ndarray | None = None
        self.warnings: list[str] = []
        self.error: Exception | None = None
        try:
            self._encode(y_true, labels, sample_weight, n, dtype)
        except ValueError as exc:
            self.error = exc

    def _encode(self, y_true: Any, labels: Any, sample_weight: Any, n: int, dtype: Any) -> None:
        y = np.asarray(y_true)
        if y.dtype.kind == "c":
            raise ValueError(f"Complex data not supported\n{y}\n")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        lengths = [n, _num_samples(y)]
        if sample_weight is not None:
            lengths.append(_num_samples(sample_weight))
        if len(set(lengths)) > 1:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: {lengths}"
            )
        self.weights = _check_sample_weight(sample_weight, n)
        _check_label_mix(y_true, y)
        if labels is not None:
            _check_label_mix(labels, np.asarray(labels))
            given = np.asarray(labels)
            if given.dtype.kind == "c":
                raise ValueError(f"Complex data not supported\n{given}\n")
            if given.dtype.kind in "fO" and given.ndim == 1:
                # scikit-learn refuses continuous (non-integral) labels, and object arrays of
                # anything but strings
                _target_type(given)
        if _target_type(y) == "multilabel-indicator":
            if labels is not None:
                _, _ = _label_index(np.unique(y), labels, self.warnings)
                raise ValueError("The object was not fitted with multilabel input.")
            self.indicator = np.asarray(y, dtype=np.float64 if dtype == np.float64 else np.float32)
            self.classes = np.arange(y.shape[1])
            return
        self.index, self.classes = _label_index(y, labels, self.warnings)


def _check_label_mix(original: Any, array: np.ndarray) -> None:
    """NumPy turns [1, "a"] into strings; scikit-learn looks at the original elements."""
    if isinstance(original, (list, tuple)) and array.dtype.kind == "U":
        if len({isinstance(label, str) for label in original}) > 1:
            raise ValueError(f"Mix of label input types (string and number); Got {array}.")


def _label_index(
    y: np.ndarray, labels: Any, warnings_out: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Column index of every label (sorted label order, as LabelBinarizer) and the classes."""
    if labels is not None:
        given = np.asarray(labels)
        classes = np.unique(given)
        if classes.shape != given.shape or not np.all(classes == given):
            warnings_out.append(
                f"Labels passed were {labels}. But this function assumes labels are ordered "
                f"lexicographically. Pass the ordered labels={classes.tolist()} and ensure "
                "that the columns of y_prob correspond to this ordering."
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
    classes, inverse = _unique_inverse(y)
    if classes.shape[0] == 1:
        raise ValueError(
            f"y_true contains only one label ({classes[0]}). Please provide the list of all "
            "expected class labels explicitly through the labels argument."
        )
    return inverse.reshape(-1).astype(np.int64), classes


# Integer labels spanning at most this many values are encoded with a lookup table (two
# linear passes) rather than np.unique's sort; the result is the same.
_TABLE_SPAN = 1 << 22


def _unique_inverse(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(y, return_inverse=True)``, in linear time for integer labels."""
    if y.dtype.kind in "iu" and y.ndim == 1 and y.size:
        low, high = int(y.min()), int(y.max())
        if high - low < _TABLE_SPAN:
            offset = (y - low).astype(np.intp, copy=False)
            present = np.zeros(high - low + 1, bool)
            present[offset] = True
            rank = np.cumsum(present, dtype=np.int64) - 1
            classes = (np.flatnonzero(present) + low).astype(y.dtype)
            return classes, rank[offset]
    classes, inverse = np.unique(y, return_inverse=True)
    return classes, inverse.reshape(-1).astype(np.int64)
