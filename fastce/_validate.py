"""Input checking and coercion: everything between a user's arguments and a kernel's arrays.

The rules (documented in docs/api.md):

* array-likes go through ``np.asarray``; masked arrays with masked entries, pandas columns with
  missing values (``pd.NA``), object, string, complex and datetime arrays are rejected;
* float32 and float64 are used as they are; float16 becomes float32; integers and bools become
  float64; a non-native byte order is converted. These are the only copies of a data array;
* the class axis is moved last with a view, and the batch axes are merged into as few axes as
  the strides allow (``batch_plan``), so C-, Fortran-ordered and strided inputs are not copied.

Error messages name the argument, what was expected and what was received.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

REDUCTIONS = ("none", "sum", "mean")


# ---------------------------------------------------------------------------------------------
# Arrays


def reject_missing(x: Any, name: str) -> Any:
    """Masked arrays with masked entries and pandas objects holding pd.NA are errors."""
    if isinstance(x, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(x))
        if n_masked:
            raise ValueError(
                f"{name} is a masked array with {n_masked} masked entr"
                f"{'y' if n_masked == 1 else 'ies'}; fastce does not ignore masks: fill them "
                "(np.ma.filled) or drop those samples first"
            )
        return np.ma.getdata(x)
    module = type(x).__module__ or ""
    if module.startswith("pandas"):
        from pandas.api.types import is_extension_array_dtype

        columns = [x[c] for c in x.columns] if hasattr(x, "columns") else [x]
        for col in columns:
            if is_extension_array_dtype(col.dtype) and bool(col.isna().any()):
                where = f" (column {col.name!r})" if hasattr(x, "columns") else ""
                raise ValueError(
                    f"{name} holds missing values (pd.NA){where}; fill or drop them first"
                )
        # Nullable numeric columns without a missing value are numbers: say which dtype, since
        # NumPy would make an empty DataFrame of them an object array.
        dtypes = [col.dtype for col in columns]
        numpy_dtypes = [getattr(d, "numpy_dtype", None) for d in dtypes]
        if (
            columns
            and any(is_extension_array_dtype(d) for d in dtypes)
            and all(d is not None and np.dtype(d).kind in "fiub" for d in numpy_dtypes)
        ):
            return x.to_numpy(dtype=np.result_type(*numpy_dtypes))
    return x


def _asarray(x: Any, name: str) -> np.ndarray:
    x = reject_missing(x, name)
    if not isinstance(x, np.ndarray):
        if type(x).__module__.split(".", 1)[0] == "torch" and hasattr(x, "detach"):
            return _from_torch(x, name)
        if hasattr(x, "__dlpack__"):
            try:  # in place (JAX arrays, CuPy on the host, ...)
                return np.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError, ValueError):
                pass  # a dtype NumPy cannot import (bfloat16): the array's own conversion
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from None


def _from_torch(t: Any, name: str) -> np.ndarray:
    """A CPU torch tensor as a NumPy array over its memory (no copy; ``requires_grad``
    tensors through ``detach()``); bfloat16 as ``ml_dtypes.bfloat16`` (its bits viewed as
    such) where ml_dtypes is installed. torch is not imported: the tensor brings it."""
    device = getattr(getattr(t, "device", None), "type", "cpu")
    if device != "cpu":
        raise TypeError(
            f"{name} is a torch tensor on the {device!r} device; fastce reads host memory: "
            f"move it to the CPU first ({name}.cpu())"
        )
    t = t.detach()
    if t.is_conj() or t.is_neg():  # lazy conjugate / negative views: their values, resolved
        t = t.resolve_conj().resolve_neg()
    if str(t.dtype) == "torch.bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            return np.asarray(t.float().numpy())  # the values in float32 (a copy)
        import torch

        return np.asarray(t.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    try:
        return np.asarray(t.numpy())
    except (TypeError, RuntimeError) as exc:
        raise TypeError(f"{name} is a torch tensor NumPy cannot read: {exc}") from None


as_array = _asarray


def broadcast_weight(w: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A read-only broadcast view of ``w`` to ``shape`` (no copy)."""
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"{name} has shape {w.shape}, which does not broadcast to the input shape {shape}"
        ) from None


def _native(a: np.ndarray) -> np.ndarray:
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _holds(a: np.ndarray) -> str | None:
    """What a non-numeric array holds, in words ("strings", "None at position 3"), found by
    looking at its elements (an error path only); None when there is nothing to add to its
    dtype (datetimes, complex numbers, ...)."""
    if a.dtype.kind == "U":
        return "strings"
    if a.dtype.kind == "S":
        return "byte strings"
    if a.dtype.kind != "O" or a.size == 0:
        return None
    flat = a.reshape(-1)
    kinds = set()
    for index, value in enumerate(flat[:_SCAN_OBJECTS].tolist()):
        if isinstance(value, (str, bytes)):
            kinds.add("strings")
        elif isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_)):
            kinds.add("numbers")
        else:
            pos = _position(np.unravel_index(index, a.shape))
            return f"{_show_object(value)} at position {pos}"
    if kinds == {"strings"}:
        return "strings"
    if kinds == {"strings", "numbers"}:
        return "both strings and numbers"
    return None


# Object arrays are scanned up to this many elements to say what they hold (error path only).
_SCAN_OBJECTS = 1 << 20


def _show_object(value: Any) -> str:
    if value is None:
        return "None"
    if type(value).__name__ == "NAType":
        return "pd.NA"
    text = show(value)
    return f"a {type(value).__name__} ({text})" if text != type(value).__name__ else text


def _dtype_error(name: str, a: np.ndarray, expected: str, labels: bool = False) -> TypeError:
    holds = _holds(a)
    if holds is None:
        return TypeError(f"{name} must be {expected}; got an array of dtype {a.dtype}")
    message = f"{name} must be {expected}; {name} holds {holds} (dtype {a.dtype})"
    if labels and holds in ("strings", "byte strings"):
        message += (
            ": score class labels with fastce.log_loss(y_true, y_proba, labels=...) (the "
            "columns of y_proba follow the sorted labels), or map them to class indices first "
            f"with classes, {name} = np.unique({name}, return_inverse=True)"
        )
    return TypeError(message)


def is_half(dtype: np.dtype) -> bool:
    """float16, or bfloat16 (``ml_dtypes``, a dtype NumPy sees as void): half precision,
    whose results are float32."""
    return dtype.itemsize == 2 and (dtype.kind == "f" or dtype.name == "bfloat16")


def is_bfloat16(dtype: np.dtype) -> bool:
    """bfloat16 (``ml_dtypes``): of the two half-precision dtypes, the one NumPy sees as void."""
    return is_half(dtype) and dtype.kind != "f"


def as_float_array(x: Any, name: str, half: bool = False) -> np.ndarray:
    """A float32 or float64 array, native byte order, promoted per the dtype rules. ``half``:
    float16 and bfloat16 arrays are kept as they are (the launcher widens them tile by tile;
    their results are float32, ``result_dtype``)."""
    a = _asarray(x, name)
    kind = a.dtype.kind
    if is_half(a.dtype):
        # kept for the launcher to widen a tile at a time, or the same values in float32
        return _native(a) if half else a.astype(np.float32)
    if kind == "f":
        if a.dtype.itemsize > 8:
            a = a.astype(np.float64)
    elif kind in "iub":
        a = a.astype(np.float64)
    else:
        raise _dtype_error(name, a, "a real numeric array (float, integer or bool)")
    return _native(a)


def result_dtype(*dtypes: np.dtype) -> np.dtype:
    """The result's dtype of float inputs: NumPy's promotion, half precision (float16,
    bfloat16) counting as float32."""
    wide = [np.dtype(np.float32) if is_half(np.dtype(d)) else np.dtype(d) for d in dtypes]
    return np.result_type(*wide)


def as_label_array(x: Any, name: str) -> np.ndarray:
    """Class indices as int64, or float64 whose integrality the kernel checks element-wise."""
    a = _asarray(x, name)
    kind = a.dtype.kind
    if kind == "f":
        return _native(a if a.dtype == np.float64 else a.astype(np.float64))
    if kind == "b":
        return a.astype(np.int64)
    if kind == "u" and a.dtype.itemsize == 8 and a.size:
        big = np.flatnonzero(a.reshape(-1) > np.iinfo(np.int64).max)
        if big.size:
            pos = _position(np.unravel_index(int(big[0]), a.shape))
            raise ValueError(
                f"{name} holds label {a.reshape(-1)[big[0]].item()} at position {pos}, which does "
                "not fit in int64"
            )
    if kind in "iu":
        return _native(a if a.dtype == np.int64 else a.astype(np.int64))
    if kind == "O" and 0 < a.size <= _SCAN_OBJECT_LABELS:
        # Python ints beyond int64 (or uint64) make NumPy fall back to an object array.
        for flat, value in enumerate(a.reshape(-1).tolist()):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                break
            if not -(2**63) <= int(value) < 2**63:
                pos = _position(np.unravel_index(flat, a.shape))
                raise ValueError(
                    f"{name} holds label {show(value)} at position {pos}, which does not fit "
                    "in int64"
                )
    raise _dtype_error(
        name, a, "class indices (integers, or floats holding integral values)", labels=True
    )


# Object arrays of labels up to this size are scanned for an integer beyond int64, to say so
# rather than "dtype object" (an error path only).
_SCAN_OBJECT_LABELS = 1 << 20


def as_weight_array(x: Any, name: str) -> np.ndarray:
    """Non-negative finite float64 weights."""
    a = as_float_array(x, name)
    if a.dtype != np.float64:
        a = a.astype(np.float64)
    if a.size:
        bad = ~(np.isfinite(a) & (a >= 0))
        if bad.any():
            flat = int(np.flatnonzero(bad.reshape(-1))[0])
            value = a.reshape(-1)[flat].item()
            pos = _position(np.unravel_index(flat, a.shape))
            raise ValueError(
                f"{name} must be finite and non-negative; got {value!r} at position {pos}"
            )
    return a


# ---------------------------------------------------------------------------------------------
# Scalars and options


def first_axis_length(shape: Sequence[Any], axis: Any, rows: bool = True) -> Any:
    """What ``reduction="batchmean"`` divides by: the length of the first batch axis of an
    input of ``shape`` (a row measure's class ``axis`` left out); 1 where there is none (a
    single distribution), or where ``axis`` is not one of ``shape``'s (the function reports
    it)."""
    batch = list(shape)
    if rows and batch:
        if not isinstance(axis, int) or not -len(batch) <= axis < len(batch):
            return 1
        del batch[axis]
    return batch[0] if batch else 1


def check_reduction(reduction: Any, batchmean: bool = False) -> str:
    """``reduction``, checked: "none", "sum", "mean", and "batchmean" where ``batchmean``
    (``kl_divergence``)."""
    if batchmean and reduction == "batchmean":
        return reduction
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        allowed = "'none', 'sum', 'mean'" + (", 'batchmean'" if batchmean else "")
        note = ""
        if reduction == "batchmean":
            note = " ('batchmean' is kl_divergence's, as in PyTorch's kl_div)"
        raise ValueError(f"reduction must be one of {allowed}; got {show(reduction)}{note}")
    return reduction


def did_you_mean(name: Any, choices: Iterable[str]) -> str:
    """``"; did you mean 'cross_entropy'?"`` for the choice closest to a misspelt ``name``, or
    ``""`` when none is close (difflib's ratio of at least 0.6)."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def show(value: Any) -> str:
    """``repr(value)`` for an error message, short: a huge int (whose repr Python refuses
    beyond 4300 digits) is described, and a long repr is cut."""
    try:
        text = repr(value)
    except ValueError:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return text if len(text) <= 200 else text[:120] + f"... ({len(text)} characters)"


def _real(value: Any) -> float | None:
    """``float(value)`` for a real number (not a bool), else None; a number too large for a
    float (an int of 400 digits) is +-inf, which every domain check here refuses."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        huge: Any = value  # an int or a Fraction (numbers.Real has no ordering for mypy)
        return math.inf if huge > 0 else -math.inf


def ln_base(base: Any) -> float:
    """ln(base): the divisor that turns nats into the requested unit (1.0 for nats)."""
    if base is None:
        return 1.0
    b = _real(base)
    if b is None:
        raise ValueError(f"base must be None or a positive number other than 1; got {show(base)}")
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise ValueError(f"base must be None or a positive number other than 1; got {show(base)}")
    return math.log(b)


def check_eps(eps: Any, dtype: np.dtype) -> float:
    """The clipping bound: 'auto' is the machine epsilon of the (promoted) prediction dtype."""
    if isinstance(eps, str):
        if eps != "auto":
            raise ValueError(f"eps must be 'auto' or a number in [0, 0.5); got {show(eps)}")
        return float(np.finfo(dtype).eps)
    e = _real(eps)
    if e is None:
        raise ValueError(f"eps must be 'auto' or a number in [0, 0.5); got {show(eps)}")
    if not (0.0 <= e < 0.5):
        raise ValueError(f"eps must be 'auto' or a number in [0, 0.5); got {show(eps)}")
    return e


def check_smoothing(label_smoothing: Any) -> float:
    s = _real(label_smoothing)
    if s is None:
        raise ValueError(
            f"label_smoothing must be a number in [0, 1]; got {show(label_smoothing)}"
        )
    if not (0.0 <= s <= 1.0):
        raise ValueError(
            f"label_smoothing must be a number in [0, 1]; got {show(label_smoothing)}"
        )
    return s


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {show(value)}")
    return bool(value)


def check_temperature(temperature: Any, logits: dict[str, tuple[str, bool]]) -> float:
    """The temperature: a finite number > 0. ``logits`` maps each flag that makes an input
    logits to (that input's name, whether it is set); a temperature other than 1 with none set
    is an error that names them."""
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(
        temperature, (numbers.Real, np.floating, np.integer)
    ):
        raise TypeError(f"temperature must be a number; got {show(temperature)}")
    try:
        t = float(temperature)
    except OverflowError:
        t = math.inf
    if not (math.isfinite(t) and t > 0.0):
        raise ValueError(f"temperature must be a finite number > 0; got {show(temperature)}")
    if t != 1.0 and logits and not any(on for _, on in logits.values()):
        flags = " or ".join(f"{flag}=True (if {name} holds logits)" for flag, (name, _) in
                            logits.items())  # fmt: skip
        raise ValueError(
            f"temperature={t!r} divides logits, and this call has none: pass {flags}; "
            "probabilities are never tempered"
        )
    return t


def check_ignore_index(ignore_index: Any) -> tuple[bool, int]:
    if ignore_index is None:
        return False, 0
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
        ignore_index, numbers.Integral
    ):
        raise ValueError(f"ignore_index must be None or an integer; got {show(ignore_index)}")
    value = int(ignore_index)
    if not (-(2**63) <= value < 2**63):
        raise ValueError(f"ignore_index must fit in int64; got {show(ignore_index)}")
    return True, value


def class_axis_last(a: np.ndarray, axis: Any, name: str) -> np.ndarray:
    """A view of ``a`` with the class axis moved last."""
    if a.ndim == 0:
        raise ValueError(
            f"{name} must have at least one dimension (the class axis); got a 0-d array"
        )
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer; got {show(axis)}")
    ax = int(axis)
    if not -a.ndim <= ax < a.ndim:
        raise ValueError(
            f"axis {show(axis)} is out of bounds for {name} with {a.ndim} dimension(s)"
        )
    if ax in (-1, a.ndim - 1):
        return a
    return np.moveaxis(a, ax, -1)


def check_class_weight(class_weight: Any, n_classes: int) -> np.ndarray:
    if class_weight is None:
        return np.empty(0, np.float64)
    w = as_weight_array(class_weight, "class_weight")
    if w.shape != (n_classes,):
        raise ValueError(
            f"class_weight must have shape ({n_classes},), one weight per class; "
            f"got shape {w.shape}"
        )
    return w


def check_sample_weight(sample_weight: Any, batch_shape: tuple[int, ...]) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = as_weight_array(sample_weight, "sample_weight")
    if w.shape != batch_shape:
        raise ValueError(
            f"sample_weight must have shape {batch_shape}, one weight per sample; "
            f"got shape {w.shape}"
        )
    return w


def spread_per_row(a: Any, shape: tuple[int, ...]) -> Any:
    """A 1-D array (NumPy or Dask) of length N as one entry per row of an (N, ...) ``shape``
    (binary cross-entropy's rule for its sample weights, masks and groups): a view of shape
    (N, 1, ...); any other array as it is."""
    if a.ndim == 1 and len(shape) >= 2 and a.shape[0] == shape[0]:
        return a.reshape(a.shape + (1,) * (len(shape) - 1))
    return a


def to_samples(a: np.ndarray, shape: tuple[int, ...], name: str, per_row: bool) -> np.ndarray:
    """``a`` broadcast to the samples' ``shape`` (a read-only view; ``per_row``: with
    ``spread_per_row`` first), or a ValueError naming ``name``."""
    try:
        return np.broadcast_to(spread_per_row(a, shape) if per_row else a, shape)
    except ValueError:
        raise ValueError(
            f"{name} has shape {a.shape}, which does not broadcast to the shape of the "
            f"samples {shape}" + ("" if per_row else " (the input without its class axis)")
        ) from None


def mask_view(where: Any, shape: tuple[int, ...], per_row: bool = False) -> np.ndarray:
    """The mask ``where``, checked, as a read-only view broadcast to ``shape`` (the batch
    shape; the element shape for binary cross-entropy, where ``per_row`` reads a 1-D mask of
    length N as one entry per row of an (N, ...) input, as its sample weights)."""
    a = _asarray(where, "where")
    if a.dtype.kind != "b":
        raise TypeError(
            f"where must be a boolean array (True for the samples to score); got dtype "
            f"{a.dtype}: for weights use sample_weight, for a 0/1 array use where=(m != 0)"
        )
    return to_samples(a, shape, "where", per_row)


def check_where(
    where: Any, shape: tuple[int, ...], per_row: bool = False, like: np.ndarray | None = None
) -> np.ndarray | None:
    """The mask ``where`` as a boolean array of ``shape`` (``mask_view``), or None where it
    keeps every sample (no mask at all: the same bits, and the unmasked kernels). A mask that
    broadcasts is expanded, a byte per sample (never one per class), laid out as ``like`` (an
    operand's view of ``shape``) where given, so that it merges with the operands' axes."""
    if where is None:
        return None
    view = mask_view(where, shape, per_row)
    if view.all():
        return None
    if view.strides and 0 not in view.strides:
        return view  # the mask as given (a view of it)
    expanded = np.empty_like(like, dtype=np.bool_) if like is not None else np.empty(shape, bool)
    expanded[...] = view
    return expanded


def check_groups(
    groups: Any,
    shape: tuple[int, ...],
    n_groups: Any,
    reduction: str,
    where: np.ndarray | None = None,
    per_row: bool = False,
) -> tuple[np.ndarray, int]:
    """(the group of each sample as a C-ordered int64 array of ``shape``, the number of
    groups): ``groups`` broadcast to the samples' shape as ``where`` is (``per_row`` as
    there), each id checked against ``n_groups`` (when given) and >= 0 where ``where`` keeps
    the sample; the number of groups is ``n_groups``, or the largest id kept plus one."""
    if reduction not in ("sum", "mean"):
        raise ValueError(
            f"groups= gives one result per group of a reduction: reduction must be 'sum' or "
            f"'mean' (got {reduction!r}; with 'none' every sample is its own result already)"
        )
    a = _asarray(groups, "groups")
    if a.dtype.kind not in "iu":
        raise TypeError(
            f"groups must hold integer group ids (0, 1, ...); got dtype {a.dtype}: map other "
            "keys to integers first (np.unique(keys, return_inverse=True)[1])"
        )
    b = to_samples(a, shape, "groups", per_row)
    if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise ValueError("groups holds an id beyond int64")
    ids = np.ascontiguousarray(b, dtype=np.int64)
    limit = None
    if n_groups is not None:
        if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
            raise TypeError(f"n_groups must be an integer; got {show(n_groups)}")
        if n_groups < 0:
            raise ValueError(f"n_groups must be >= 0; got {int(n_groups)}")
        limit = int(n_groups)
    bad = (ids < 0) if limit is None else ((ids < 0) | (ids >= limit))
    if where is not None:
        bad &= where
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        value = int(ids.reshape(-1)[flat])
        pos = _position(np.unravel_index(flat, shape))
        want = "0 <= id" + ("" if limit is None else f" < n_groups={limit}")
        raise ValueError(f"groups holds {value} at position {pos}; expected a group id {want}")
    if limit is None:
        kept = ids if where is None else ids[where]
        limit = int(kept.max()) + 1 if kept.size else 0
    return ids, limit


def check_out(
    out: Any, shape: tuple[int, ...], dtype: np.dtype, reduction: str = "none"
) -> np.ndarray | None:
    """``out`` must be a writeable ndarray of exactly the result's shape and dtype."""
    if out is None:
        return None
    if reduction != "none":
        raise ValueError(f"out= is only for reduction='none'; got reduction={reduction!r}")
    if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
        raise TypeError(f"out must be a NumPy array; got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}; got shape {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype} (the result's dtype); got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must match"
        )


# ---------------------------------------------------------------------------------------------
# Batch axes


def _position(index: Sequence[Any]) -> str:
    """How error messages write a position: ``3`` in 1-D, ``(1, 2)`` otherwise."""
    idx = tuple(int(i) for i in index)
    return str(idx[0]) if len(idx) == 1 else str(idx)


position = _position


class BatchPlan:
    """How to walk the batch axes of several arrays with a kernel that takes ``inner`` of them.

    The batch axes (the leading ``len(shape)`` axes of every operand) are put in order of
    decreasing stride of the first operand, then neighbours are merged wherever every operand
    allows it (``stride[a] == stride[b] * shape[b]``). A C-ordered, Fortran-ordered or simply
    sliced input then becomes ``inner`` batch axes with no copy; anything else leaves a few
    outer axes that ``pieces`` loops over, calling the kernel once per piece.
    """

    def __init__(
        self, shape: tuple[int, ...], operands: Sequence[np.ndarray], inner: int = 1
    ) -> None:
        self.shape = shape
        self.inner = inner
        keep = [ax for ax in range(len(shape)) if shape[ax] != 1]
        first = operands[0]
        keep.sort(key=lambda ax: -abs(first.strides[ax]))
        self.axes = keep
        groups: list[list[int]] = []
        for ax in keep:
            if groups and all(
                op.strides[groups[-1][-1]] == op.strides[ax] * shape[ax] for op in operands
            ):
                groups[-1].append(ax)
            else:
                groups.append([ax])
        self.groups = groups
        lengths = tuple(math.prod(self.shape[ax] for ax in g) for g in groups)
        self.merged: tuple[int, ...] = (1,) * (inner - len(lengths)) + lengths
        """Lengths of the merged batch axes, padded with 1s to at least ``inner`` axes."""

    @property
    def n_pieces(self) -> int:
        return math.prod(self.merged[: -self.inner])

    def view(self, a: np.ndarray, writeable: bool = False) -> np.ndarray:
        """``a`` with its batch axes merged: shape ``merged + a.shape[len(shape):]``."""
        nd = len(self.shape)
        strides = tuple(a.strides[g[-1]] for g in self.groups)
        strides = (0,) * (self.inner - len(strides)) + strides
        shape = self.merged + a.shape[nd:]
        if shape == a.shape and strides + a.strides[nd:] == a.strides:
            # Already in that form (the common C-ordered case): a plain view is cheaper. Inputs
            # stay read-only views, so the kernels see one array type (one compiled variant).
            if writeable or not a.flags.writeable:
                return a
            v = a.view()
            v.flags.writeable = False
            return v
        return np.lib.stride_tricks.as_strided(
            a, shape, strides + a.strides[nd:], writeable=writeable
        )

    def empty_out(self, dtype: np.dtype, trailing: tuple[int, ...] = ()) -> np.ndarray:
        """An output of shape ``shape + trailing`` whose memory order follows the merged axes
        (so it merges like the operands and never forces a piece loop)."""
        nd = len(self.shape)
        order = self.axes + [ax for ax in range(nd) if ax not in self.axes]
        buf = np.empty(tuple(self.shape[ax] for ax in order) + trailing, dtype)
        inverse = np.argsort(order).tolist() + list(range(nd, nd + len(trailing)))
        return buf.transpose(inverse)

    def pieces(self, views: Sequence[np.ndarray]) -> Any:
        """Yield, per piece, the merged views indexed down to ``inner`` batch axes."""
        outer = self.merged[: -self.inner]
        if not outer:
            yield list(views)
            return
        for idx in np.ndindex(*outer):
            yield [v[idx] for v in views]


MAX_PIECES = 64


# ---------------------------------------------------------------------------------------------
# Explaining what a kernel flagged (error path only: plain NumPy, C order, first offender)


def explain_probabilities(
    a: np.ndarray, name: str, logits_hint: bool | str = False, where: np.ndarray | None = None
) -> None:
    """Raise for the first value of ``a`` outside [0, 1] (NaN is allowed: it propagates);
    ``logits_hint`` names the flag that would read ``a`` as logits (True: ``from_logits``);
    values where ``where`` (broadcast to ``a``) is False are not looked at."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isnan(a) | ((a >= 0) & (a <= 1)))
    if where is not None:
        bad &= where
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        value = a.reshape(-1)[flat].item()
        pos = _position(np.unravel_index(flat, a.shape))
        flag = logits_hint if isinstance(logits_hint, str) else "from_logits"
        hint = f" (pass {flag}=True if it holds logits)" if logits_hint else ""
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; got {value!r} at position {pos}{hint}"
        )


def explain_labels(
    labels: np.ndarray,
    name: str,
    n_classes: int,
    has_ignore: bool,
    ignore_index: int,
    where: np.ndarray | None = None,
) -> None:
    """Raise for the first class index that is out of range or not integral (among those
    ``where`` keeps)."""
    with np.errstate(invalid="ignore"):
        ok = (labels >= 0) & (labels < n_classes)
        if labels.dtype.kind == "f":
            ok &= np.floor(labels) == labels
        if has_ignore:
            ok |= labels == ignore_index
        if where is not None:
            ok |= ~where
    if not ok.all():
        flat = int(np.flatnonzero(~ok.reshape(-1))[0])
        value = labels.reshape(-1)[flat].item()
        pos = _position(np.unravel_index(flat, labels.shape))
        what = "label" if float(value).is_integer() else "non-integral label"
        padding = ""
        if value == -100:
            padding = (
                "; -100 is the label PyTorch pads with (the default ignore_index of its "
                "cross_entropy): pass ignore_index=-100 to leave those samples out"
            )
        raise ValueError(
            f"{name} holds {what} {value!r} at position {pos}; expected an integer class "
            f"index 0 <= label < {n_classes}"
            + (f" or ignore_index={ignore_index}" if has_ignore else "")
            + padding
        )
