"""Shared hypothesis strategies: bad and odd inputs for every public entry point (issue 6).

A generated :class:`Case` is a valid call built from the registry's data generators (so every
public function is fuzzed with the data its correctness tests use), then changed by a few
*perturbations* drawn from a catalogue. Each perturbation knows what it does to the call:

* it keeps the values and changes only how they are given (big-endian or other non-native
  byte orders, read-only, memory-mapped, stride-0 broadcast views, negative-stride and strided
  views, Fortran order, masked arrays without a masked entry, pandas columns without missing
  values, Python lists, integral float labels, arrays that end or start at a guard page);
* or it changes the values within the domain (NaN or an infinity where the function must
  propagate it, bool where a float is meant, float16);
* or it makes one argument invalid, and the call must raise a ValueError or TypeError whose
  message names that argument (object, complex, string and datetime dtypes, 0-d arrays,
  mismatched shapes, weights of the wrong length or with negative, NaN or infinite entries,
  non-integral or out-of-range labels, labels beyond int64, masked entries, ``pd.NA``,
  probabilities outside [0, 1], and base/eps/label_smoothing/reduction/axis/from_logits/
  ignore_index out of their domains).

``Case.errors`` lists the arguments made invalid (empty when a result is expected) and
``Case.reference_call`` gives the reference's arguments: the values the function must see.
tests/test_fuzz.py is the oracle.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import strategies as st

from fastce._measures import MEASURES

from .registry import REGISTRY

# ---------------------------------------------------------------------------------------------
# Arrays next to a guard page: a read one element past the end (or before the start) of the
# data faults at once (SIGSEGV), instead of reading a neighbour's memory unnoticed.

_PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def guarded(a: np.ndarray, where: str = "end") -> np.ndarray:
    """A C-ordered copy of ``a`` whose data ends (``"end"``) or starts (``"start"``) at an
    inaccessible page."""
    a = np.array(a, order="C")  # (np.ascontiguousarray makes a 0-d array 1-d)
    nbytes = a.nbytes
    data_pages = max(1, -(-nbytes // _PAGE))
    buf = mmap.mmap(-1, (data_pages + 2) * _PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    for page in (0, data_pages + 1):  # a guard page on each side
        if _libc.mprotect(base + page * _PAGE, _PAGE, _PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
    start = _PAGE + (data_pages * _PAGE - nbytes if where == "end" else 0)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=start).reshape(a.shape)
    out = out.view()  # writeable: frombuffer of a writable mmap
    out[...] = a
    return out


_MEMMAP_DIR = tempfile.mkdtemp(prefix="fastce-fuzz-memmap-")
_memmap_count = 0


def memmapped(a: np.ndarray, mode: str = "r") -> np.ndarray:
    """``a`` as a memory-mapped array backed by a temporary file (read-only by default)."""
    global _memmap_count
    _memmap_count += 1
    path = os.path.join(_MEMMAP_DIR, f"{_memmap_count % 64}.dat")
    if a.size == 0:
        return np.asarray(a).copy()  # np.memmap cannot map an empty file
    writer = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    writer[...] = a
    writer.flush()
    del writer
    return np.memmap(path, dtype=a.dtype, mode=mode, shape=a.shape)


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Arg:
    """One array argument: ``value`` is what the function must see (clean NumPy values, the
    reference's input), ``given`` what it is passed."""

    name: str
    role: str  # "prob", "logits", "labels", "soft_target", "weight"
    value: Any
    given: Any


@dataclass
class Case:
    function: str
    args: list[Arg]  # the positional arrays, in order
    options: dict[str, Arg | Any]  # keyword options (array options as Arg)
    errors: set[str] = field(default_factory=set)  # arguments made invalid
    notes: list[str] = field(default_factory=list)  # what was done, for failure messages
    class_axis: int | None = -1  # where the class axis is (None: element-wise)
    n_classes: int = 0

    def call(self) -> tuple[list[Any], dict[str, Any]]:
        """The arguments as given."""
        kwargs = {k: (o.given if isinstance(o, Arg) else o) for k, o in self.options.items()}
        return [a.given for a in self.args], kwargs

    def reference_call(self) -> tuple[list[Any], dict[str, Any]]:
        kwargs = {k: (o.value if isinstance(o, Arg) else o) for k, o in self.options.items()}
        return [a.value for a in self.args], kwargs

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        option = self.options[name]
        assert isinstance(option, Arg)
        return option

    def describe(self) -> str:
        return f"{self.function}: " + "; ".join(self.notes)


# ---------------------------------------------------------------------------------------------
# Valid base calls, from the registry's generators

_NAMES = {
    "entropy": ("p",),
    "cross_entropy": ("target", "pred"),
    "binary_cross_entropy": ("target", "pred"),
    "kl_divergence": ("p", "q"),
    "js_divergence": ("p", "q"),
    "logsumexp": ("x",),
    "log_softmax": ("x",),
    "softmax": ("x",),
}

_ENTRIES = {
    "entropy": ["entropy"],
    "cross_entropy": ["cross_entropy_labels", "cross_entropy_soft"],
    "perplexity": ["cross_entropy_labels", "cross_entropy_soft"],
    "binary_cross_entropy": ["binary_cross_entropy"],
    "kl_divergence": ["kl_divergence"],
    "js_divergence": ["js_divergence"],
    "logsumexp": ["logsumexp"],
    "log_softmax": ["log_softmax"],
    "softmax": ["softmax"],
}

FUNCTIONS = (
    "entropy",
    "cross_entropy",
    "binary_cross_entropy",
    "kl_divergence",
    "js_divergence",
    "perplexity",
    "logsumexp",
    "log_softmax",
    "softmax",
    "log_loss",
)
"""Every public function: each gets its own fuzz campaign."""

# Options each function takes (beyond its arrays), read from its signature (``out`` aside:
# the campaign compares returned values). log_loss has a campaign of its own.
OPTIONS = {name: set(MEASURES[name].options) - {"out"} for name in FUNCTIONS if name != "log_loss"}


def _roles(function: str, kwargs: dict[str, Any], labels: bool) -> list[str]:
    logits = bool(kwargs.get("from_logits"))
    target = "logits" if kwargs.get("target_from_logits") else "soft_target"
    if function in ("logsumexp", "log_softmax", "softmax"):
        return ["logits"]
    if function == "entropy":
        return ["logits" if logits else "prob"]
    if function in ("cross_entropy", "perplexity"):
        return ["labels" if labels else target, "logits" if logits else "prob"]
    if function == "binary_cross_entropy":
        return ["soft_target", "logits" if logits else "prob"]
    return [target, "logits" if logits else "prob"]  # kl_divergence, js_divergence


def base_case(function: str, draw: Callable[[Any], Any]) -> Case:
    """A valid call of ``function`` on registry data, class axis moved and options drawn."""
    key = draw(st.sampled_from(_ENTRIES[function]))
    entry = REGISTRY[key]
    variants = entry.variants
    if function == "perplexity":  # (its target is never logits)
        variants = [v for v in variants if not v.get("target_from_logits")]
    variant = draw(st.sampled_from(variants))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=2)))
    if entry.kind == "elementwise" and not batch and draw(st.booleans()):
        n_classes = None  # 0-d binary cross-entropy
    else:
        lowest = 0 if key != "cross_entropy_labels" and draw(st.integers(0, 9)) == 0 else 1
        n_classes = draw(st.integers(lowest, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    c = 1 if n_classes is None else n_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays, kwargs = entry.make(rng, batch, c, dtype, variant)
    if n_classes is None:
        arrays = tuple(np.asarray(a).reshape(()) for a in arrays)
        if "pos_weight" in kwargs:
            kwargs["pos_weight"] = np.asarray(kwargs["pos_weight"]).reshape(())
    labels = key == "cross_entropy_labels"
    names = _NAMES.get(function, ("target", "pred"))
    roles = _roles(function, kwargs, labels)
    case = Case(
        function,
        [Arg(n, r, a, a) for n, r, a in zip(names, roles, arrays, strict=True)],
        {},
        notes=[f"{key} {variant} {np.dtype(dtype).name} batch={batch} C={n_classes} seed={seed}"],
        class_axis=None if entry.kind == "elementwise" else -1,
        n_classes=c,
    )
    for name, value in kwargs.items():
        if name in ("class_weight", "pos_weight"):
            case.options[name] = Arg(name, "weight", value, value)
        else:
            case.options[name] = value
    if function == "perplexity":
        for name in ("base", "label_smoothing"):
            if name in case.options:
                case.options.pop(name)
                case.notes.append(f"(perplexity takes no {name})")
    ndim = len(batch) + 1
    if case.class_axis is not None and ndim > 1 and draw(st.booleans()):
        axis = draw(st.integers(0, ndim - 1))
        for a in case.args:
            if a.value.ndim == ndim:
                a.value = a.given = np.moveaxis(a.value, -1, axis)
        case.class_axis = axis
        spelled = draw(st.sampled_from(["plain", "negative", "numpy"]))
        case.options["axis"] = {
            "plain": axis,
            "negative": axis - ndim,
            "numpy": np.int64(axis),
        }[spelled]
        case.notes.append(f"axis={case.options['axis']!r}")
    if "reduction" in OPTIONS[function]:
        reduction = draw(st.sampled_from(["none", "sum", "mean", np.str_("mean")]))
        case.options["reduction"] = reduction
    if "sample_weight" in OPTIONS[function] and draw(st.booleans()):
        shape = sample_weight_shape(case, draw)
        # weights far from 1 too: sums beyond float32's range, products near underflow
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1e150, 1e-150]))
        w = np.asarray(rng.random(shape) * 3 * scale)
        w[rng.random(shape) < 0.2] = 0.0
        case.options["sample_weight"] = Arg("sample_weight", "weight", w, w)
    if "base" in OPTIONS[function] and "base" not in case.options and draw(st.booleans()):
        case.options["base"] = draw(st.sampled_from(VALID["base"]))
    return case


def batch_shape(case: Case) -> tuple[int, ...]:
    pred = case.args[-1].value
    if case.class_axis is None:
        return tuple(pred.shape)
    shape = list(pred.shape)
    del shape[case.class_axis]
    return tuple(shape)


def sample_weight_shape(case: Case, draw: Callable[[Any], Any]) -> tuple[int, ...]:
    shape = batch_shape(case)
    if case.function != "binary_cross_entropy" or not shape:
        return shape
    # binary cross-entropy: the full shape, one weight per row, or a broadcasting shape
    choice = draw(st.sampled_from(["full", "row", "last", "scalar"]))
    if choice == "row" and len(shape) >= 2:
        return shape[:1]
    if choice == "last":
        return (1,) * (len(shape) - 1) + shape[-1:]
    if choice == "scalar":
        return ()
    return shape


# ---------------------------------------------------------------------------------------------
# Option domains

VALID: dict[str, list[Any]] = {
    "base": [None, 2, 10, 0.5, np.float32(2.0), math.e, Fraction(3, 2), 1e300, 5e-324],
    "eps": ["auto", 0, 0.0, 1e-7, 0.1, 0.4999, np.float64(1e-3), Fraction(1, 8)],
    "label_smoothing": [0.0, 0, 0.1, 1.0, np.float32(0.5), Fraction(1, 3)],
    "from_logits": [np.bool_(False)],  # the variant's bool, spelled as NumPy's
}

INVALID: dict[str, list[Any]] = {
    "base": [0, -2, 1, 1.0, np.inf, -np.inf, np.nan, "2", True, 10**400, [2], 2j, np.array(2.0)],
    "eps": [-1e-3, 0.5, 1.0, np.nan, np.inf, "tiny", "AUTO", None, True, 10**400, [0.1], 1j],
    "label_smoothing": [-0.1, 1.5, np.nan, np.inf, "0.1", True, None, 10**400, [0.1]],
    "reduction": ["avg", "MEAN", None, 1, "", b"mean", ["mean"]],
    "from_logits": [1, 0, "True", None, np.nan, [True]],
    "temperature": [0, -1.0, np.nan, np.inf, -np.inf, "2", True, None, [2.0], 1j, 10**400],
    "ignore_index": [1.5, "x", 2**63, -(2**63) - 1, True, 10**400, [1]],
    "axis": ["ndim", "-ndim-1", 1.0, None, "0", (0,), True, 10**30],
}

# ---------------------------------------------------------------------------------------------
# Perturbations


class NotApplicable(Exception):
    """The perturbation does not apply to this argument (the case stays as it was)."""


def _array(arg: Arg) -> np.ndarray:
    return np.asarray(arg.value)


def _need_size(a: np.ndarray) -> None:
    if a.size == 0:
        raise NotApplicable


def _native_float_or_int(a: np.ndarray) -> bool:
    return a.dtype.kind in "fiub"


# Each layout perturbation returns the new ``given`` for an unchanged ``value``.
def _big_endian(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.dtype.kind not in "fiu" or a.dtype.itemsize == 1:
        raise NotApplicable
    return a.astype(a.dtype.newbyteorder(">" if a.dtype.isnative else "<"))


def _read_only(rng: np.random.Generator, a: np.ndarray) -> Any:
    b = np.array(a)
    b.flags.writeable = False
    return b


def _memmap(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.ndim == 0:
        raise NotApplicable  # np.memmap makes shape () a (1,)
    return memmapped(np.ascontiguousarray(a), mode=rng.choice(["r", "r+", "c"]))


def _negative_stride(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.ndim == 0:
        raise NotApplicable
    axis = int(rng.integers(0, a.ndim))
    flipped = np.flip(a, axis).copy()
    return np.flip(flipped, axis)  # a view with a negative stride, the same values


def _strided(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.ndim == 0:
        raise NotApplicable
    axis = int(rng.integers(0, a.ndim))
    step = int(rng.integers(2, 4))
    shape = list(a.shape)
    shape[axis] *= step
    big = np.zeros(shape, a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, step)
    big[tuple(index)] = a
    return big[tuple(index)]


def _fortran(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.ndim < 2:
        raise NotApplicable
    return np.asfortranarray(a)


def _guard_end(rng: np.random.Generator, a: np.ndarray) -> Any:
    return guarded(a, "end")


def _guard_start(rng: np.random.Generator, a: np.ndarray) -> Any:
    return guarded(a, "start")


def _masked_no_mask(rng: np.random.Generator, a: np.ndarray) -> Any:
    return np.ma.array(a, mask=np.zeros(a.shape, bool) if rng.random() < 0.5 else np.ma.nomask)


def _pandas(rng: np.random.Generator, a: np.ndarray) -> Any:
    import pandas as pd

    if a.ndim not in (1, 2) or a.dtype.kind not in "fiub" or (a.ndim == 2 and not a.shape[1]):
        raise NotApplicable  # (a DataFrame without columns forgets the dtype)
    # nullable columns (no missing value) of float64 and int64 only: pandas converts the others
    # (and a NaN becomes pd.NA in a nullable column)
    nullable = rng.random() < 0.5 and a.dtype in (np.float64, np.int64) and not np.isnan(a).any()
    if a.ndim == 1:
        if nullable:
            return pd.Series(pd.array(a, dtype="Float64" if a.dtype.kind == "f" else "Int64"))
        return pd.Series(a)
    frame = pd.DataFrame(a)
    return frame.astype("Float64" if a.dtype.kind == "f" else "Int64") if nullable else frame


def _as_list(rng: np.random.Generator, a: np.ndarray) -> Any:
    if a.size > 200 or a.ndim == 0 or a.size == 0:
        raise NotApplicable  # lists of empty rows lose their shape
    if a.dtype not in (np.float64, np.int64, np.bool_):
        raise NotApplicable  # a list of float32 values becomes float64: another dtype
    return a.tolist()


LAYOUTS: dict[str, Callable[[np.random.Generator, np.ndarray], Any]] = {
    "big_endian": _big_endian,
    "read_only": _read_only,
    "memmap": _memmap,
    "negative_stride": _negative_stride,
    "strided": _strided,
    "fortran": _fortran,
    "guard_end": _guard_end,
    "guard_start": _guard_start,
    "masked_no_mask": _masked_no_mask,
    "pandas": _pandas,
    "list": _as_list,
}


def _layout(name: str) -> Callable[[np.random.Generator, Case, Arg], None]:
    def apply(rng: np.random.Generator, case: Case, arg: Arg) -> None:
        a = _array(arg)
        if not _native_float_or_int(a):
            raise NotApplicable
        if name == "pandas" and arg.role == "labels" and a.dtype.kind == "f":
            raise NotApplicable  # a Float64 column of labels: fine, but tested elsewhere
        arg.given = LAYOUTS[name](rng, a)

    return apply


# Value changes within the domain: ``value`` and ``given`` both change.
def _broadcast(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """A stride-0 view: the values of one index repeated along an axis (np.broadcast_to)."""
    a = _array(arg)
    if a.ndim == 0 or a.size == 0:
        raise NotApplicable
    axis = int(rng.integers(0, a.ndim))
    keep = [slice(None)] * a.ndim
    i = int(rng.integers(0, a.shape[axis]))
    keep[axis] = slice(i, i + 1)
    view = np.broadcast_to(a[tuple(keep)], a.shape)
    arg.value = np.array(view)
    arg.given = view


def _nan(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if a.dtype.kind != "f" or arg.role not in ("prob", "logits", "soft_target"):
        raise NotApplicable
    _need_size(a)
    b = np.array(a)
    b[tuple(rng.integers(0, n) for n in b.shape)] = np.nan
    arg.value = arg.given = b


def _infinity(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if a.dtype.kind != "f" or arg.role != "logits":
        raise NotApplicable
    _need_size(a)
    b = np.array(a)
    b[tuple(rng.integers(0, n) for n in b.shape)] = rng.choice([np.inf, -np.inf])
    arg.value = arg.given = b


def _as_bool(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """bool where a float is meant: probabilities 0/1 (a labels array of bools when C >= 2)."""
    a = _array(arg)
    if arg.role == "weight" or (arg.role == "labels" and case.n_classes < 2):
        raise NotApplicable
    b = (a > 0.5) if arg.role != "labels" else (a % 2 == 1)
    arg.value = b.astype(np.float64) if arg.role != "labels" else b.astype(np.int64)
    arg.given = b


def _float16(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if a.dtype.kind != "f" or arg.role in ("labels", "weight"):
        raise NotApplicable
    with np.errstate(over="ignore"):
        b = a.astype(np.float16)
    arg.value = b
    arg.given = b


def _integral_float_labels(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """Labels as floats holding integral values (1.0 is label 1; -0.0 is label 0)."""
    a = _array(arg)
    if arg.role != "labels":
        raise NotApplicable
    dtype = (
        rng.choice([np.float64, np.float32, np.float16]) if case.n_classes < 2000 else np.float64
    )
    b = a.astype(dtype)
    b[b == 0] = -0.0
    arg.given = b


def _int_labels(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """Labels in another integer dtype (int8, uint16, uint64, int32)."""
    a = _array(arg)
    if arg.role != "labels" or (a < 0).any():
        raise NotApplicable
    arg.given = a.astype(rng.choice([np.int8, np.uint16, np.uint64, np.int32]))


def _int_probabilities(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """Integer probabilities (0 and 1), converted to float64."""
    a = _array(arg)
    if arg.role not in ("prob", "soft_target", "logits"):
        raise NotApplicable
    b = np.round(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)).clip(0, 1)
    b = b.astype(rng.choice([np.int64, np.uint8, np.int16]))
    arg.value = b.astype(np.float64)
    arg.given = b


VALID_CHANGES: dict[str, Callable[[np.random.Generator, Case, Arg], None]] = {
    **{name: _layout(name) for name in LAYOUTS},
    "broadcast": _broadcast,
    "nan": _nan,
    "infinity": _infinity,
    "bool": _as_bool,
    "float16": _float16,
    "float_labels": _integral_float_labels,
    "int_labels": _int_labels,
    "int_probabilities": _int_probabilities,
}


# Changes that make an argument invalid: ``given`` changes, and the case expects an error
# naming the argument.
def _bad_dtype(kind: str) -> Callable[[np.random.Generator, Case, Arg], None]:
    def apply(rng: np.random.Generator, case: Case, arg: Arg) -> None:
        a = _array(arg)
        if a.dtype.kind not in "fiub":
            raise NotApplicable  # (strings cannot become complex numbers or datetimes)
        if kind == "object":
            b = a.astype(object)
            if b.size and rng.random() < 0.5:
                b.flat[0] = None
        elif kind == "complex":
            b = a.astype(np.complex128)
        elif kind == "string":
            b = a.astype(str)
        elif kind == "bytes":
            b = a.astype(bytes)
        elif kind == "datetime":
            b = np.clip(
                np.nan_to_num(np.asarray(a, np.float64), nan=0, posinf=0, neginf=0), -1e15, 1e15
            )
            b = b.astype(np.int64).astype("M8[s]")
        elif kind == "timedelta":
            b = np.clip(
                np.nan_to_num(np.asarray(a, np.float64), nan=0, posinf=0, neginf=0), -1e15, 1e15
            )
            b = b.astype(np.int64).astype("m8[ms]")
        else:  # structured
            b = np.zeros(a.shape, [("x", "f8")])
        arg.given = b

    return apply


def _zero_d(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if a.ndim == 0:
        raise NotApplicable
    if arg.name == "target" and case.function in ("cross_entropy", "perplexity"):
        if case.args[-1].value.ndim == 1:
            raise NotApplicable  # a 0-d target for one row of probabilities is a label
    if arg.role == "weight" and case.function == "binary_cross_entropy":
        raise NotApplicable  # a scalar weight broadcasts
    arg.given = np.asarray(0.5 if arg.role != "labels" else 0).astype(a.dtype)


def _wrong_shape(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    """One more sample (or class), or an extra axis: a shape that matches nothing."""
    a = _array(arg)
    if a.ndim == 0:
        raise NotApplicable
    if arg.role != "weight" and len(case.args) == 1:
        raise NotApplicable  # one array of another shape is just another input
    shape = list(a.shape)
    if arg.name == "pred" and case.args[0].role == "labels":
        # labels: a class more is valid, a sample more is not
        batch_axes = [ax for ax in range(a.ndim) if ax != case.class_axis % a.ndim]
        if not batch_axes:
            raise NotApplicable
        shape[batch_axes[int(rng.integers(0, len(batch_axes)))]] += 1
    elif case.function == "binary_cross_entropy" and arg.role == "weight":
        # broadcasting: a length no axis has, and not 1
        shape = [max([*case.args[-1].value.shape, 1]) + 1] * max(1, a.ndim)
    else:
        axis = int(rng.integers(0, a.ndim))
        shape[axis] += 1
    b = np.zeros(shape, a.dtype)
    if arg.role == "weight":
        b += 1
    arg.given = b


def _masked_entry(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    _need_size(a)
    mask = np.zeros(a.shape, bool)
    mask[tuple(rng.integers(0, n) for n in a.shape)] = True
    arg.given = np.ma.array(a, mask=mask)


def _pd_na(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    import pandas as pd

    a = _array(arg)
    if a.ndim not in (1, 2) or a.dtype.kind not in "fiub":
        raise NotApplicable
    _need_size(a)
    dtype = "Int64" if a.dtype.kind in "iub" else "Float64"
    flat = pd.array(a.reshape(-1), dtype=dtype)
    flat[int(rng.integers(0, a.size))] = pd.NA
    if a.ndim == 1:
        arg.given = pd.Series(flat)
    else:
        columns = {str(k): flat[k :: a.shape[1]] for k in range(a.shape[1])}
        arg.given = pd.DataFrame(columns)


def _set_one(a: np.ndarray, rng: np.random.Generator, value: Any, dtype: Any = None) -> Any:
    b = np.array(a, dtype=dtype or a.dtype)
    b[tuple(rng.integers(0, n) for n in b.shape)] = value
    return b


def _bad_probability(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if arg.role not in ("prob", "soft_target"):
        raise NotApplicable
    _need_size(a)
    # values outside [0, 1] in float16 too
    value = rng.choice([-0.5, 1.5, np.inf, -np.inf, -0.001, 1.01, 7.0])
    b = np.array(a, dtype=np.float64 if a.dtype.kind != "f" else a.dtype)
    allowed = np.ones(b.shape, bool)
    ignore = case.options.get("ignore_index")
    if arg.name == "pred" and case.args[0].role == "labels" and ignore is not None:
        # A row whose label is ignore_index is not read (documented): its predictions are not
        # checked. Put the bad value in a row that counts.
        counted = np.asarray(case.args[0].value) != ignore
        axis = case.class_axis % b.ndim
        allowed = np.broadcast_to(np.expand_dims(counted, axis), b.shape)
    where = np.flatnonzero(allowed)
    if not where.size:
        raise NotApplicable
    b.flat[where[int(rng.integers(0, where.size))]] = value  # (reshape(-1) may copy)
    arg.given = b


def _bad_label(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if arg.role != "labels":
        raise NotApplicable
    _need_size(a)
    ignore = case.options.get("ignore_index")
    c = case.n_classes
    choices: list[Any] = [c, -1, c + 1000, 2**40, -(2**40), 1.5, -0.5, np.nan, np.inf]
    choices = [x for x in choices if ignore is None or x != ignore]
    value = choices[int(rng.integers(0, len(choices)))]
    dtype = np.float64 if isinstance(value, float) else np.int64
    arg.given = _set_one(a, rng, value, dtype)


def _label_beyond_int64(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if arg.role != "labels":
        raise NotApplicable
    _need_size(a)
    if rng.random() < 0.5:
        b = a.astype(np.uint64)
        b[tuple(rng.integers(0, n) for n in b.shape)] = np.uint64(2**64 - 1)
        arg.given = b
    else:
        flat = a.reshape(-1).tolist()
        flat[int(rng.integers(0, len(flat)))] = int(rng.choice([2**64, -(2**63) - 1, 10**30]))
        arg.given = np.array(flat, dtype=object).reshape(a.shape).tolist() if a.ndim else flat[0]


def _bad_weight(rng: np.random.Generator, case: Case, arg: Arg) -> None:
    a = _array(arg)
    if arg.role != "weight":
        raise NotApplicable
    _need_size(a)
    arg.given = _set_one(a, rng, rng.choice([-1.0, -1e-300, np.nan, np.inf, -np.inf]), np.float64)


ERROR_CHANGES: dict[str, Callable[[np.random.Generator, Case, Arg], None]] = {
    "object": _bad_dtype("object"),
    "complex": _bad_dtype("complex"),
    "string": _bad_dtype("string"),
    "bytes": _bad_dtype("bytes"),
    "datetime": _bad_dtype("datetime"),
    "timedelta": _bad_dtype("timedelta"),
    "structured": _bad_dtype("structured"),
    "zero_d": _zero_d,
    "wrong_shape": _wrong_shape,
    "masked_entry": _masked_entry,
    "pd_na": _pd_na,
    "bad_probability": _bad_probability,
    "bad_label": _bad_label,
    "label_beyond_int64": _label_beyond_int64,
    "bad_weight": _bad_weight,
}


def perturb(case: Case, draw: Callable[[Any], Any], rng: np.random.Generator) -> Case:
    """Apply 0 to 3 perturbations to the arrays and options of ``case``."""
    n_changes = draw(st.integers(0, 3))
    error_weight = draw(st.sampled_from([0.0, 0.3, 0.6]))
    for _ in range(n_changes):
        targets = case.args + [o for o in case.options.values() if isinstance(o, Arg)]
        option_names = [n for n in INVALID if n in OPTIONS[case.function] or n == "axis"]
        if case.class_axis is None:
            option_names = [n for n in option_names if n != "axis"]
        if not OPTIONS[case.function] & {"ignore_index"}:
            option_names = [n for n in option_names if n != "ignore_index"]
        kind = draw(st.sampled_from(["array", "array", "array", "option", "unknown_option"]))
        if kind == "option":
            name = draw(st.sampled_from(sorted(option_names)))
            if name != "axis" and draw(st.floats(0, 1)) >= error_weight and name in VALID:
                case.options[name] = draw(st.sampled_from(VALID[name]))
                case.errors.discard(name)  # a valid value replaces an invalid one
                case.notes.append(f"{name}={case.options[name]!r}")
                if name == "from_logits":
                    case.options[name] = np.bool_(_from_logits(case))
                continue
            bad = draw(st.sampled_from(INVALID[name]))
            ndim = case.args[-1].value.ndim
            if bad == "ndim":
                bad = ndim
            elif bad == "-ndim-1":
                bad = -ndim - 1
            if name == "axis" and ndim == 0:
                continue  # a 0-d input is an error before its axis is looked at
            case.options[name] = bad
            case.errors.add(name)
            case.notes.append(f"invalid {name}={_short(bad)}")
            continue
        if kind == "unknown_option":
            if draw(st.floats(0, 1)) >= error_weight:
                continue
            name = draw(st.sampled_from(["eps", "label_smoothing", "ignore_index", "weights"]))
            if name in OPTIONS[case.function]:
                continue
            case.options[name] = 0
            case.errors.add(name)
            case.notes.append(f"unknown option {name}=0")
            continue
        # an argument made invalid stays so: another change would rebuild it from its value
        targets = [t for t in targets if t.name not in case.errors]
        if not targets:
            continue
        arg = draw(st.sampled_from(targets))
        error = draw(st.floats(0, 1)) < error_weight
        table = ERROR_CHANGES if error else VALID_CHANGES
        change = draw(st.sampled_from(sorted(table)))
        if arg.role == "labels" and change in ("broadcast", "bool") and "pred" in case.errors:
            continue  # the labels could move the bad prediction into an ignored row
        if change in ("wrong_shape", "zero_d") and any(e.startswith("~") for e in case.errors):
            continue  # a second shape change could make the shapes agree again
        try:
            table[change](rng, case, arg)
        except NotApplicable:
            continue
        case.notes.append(f"{change}({arg.name})")
        if error:
            case.errors.add(arg.name)
            if change in ("wrong_shape", "zero_d"):
                # A mismatch is between arguments: the message may name any of them.
                for other in targets:
                    case.errors.add(f"~{other.name}")
    return case


def _from_logits(case: Case) -> bool:
    return any(a.role == "logits" for a in case.args) and case.function not in (
        "logsumexp",
        "log_softmax",
        "softmax",
    )


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:
        return "<huge int>"
    return text if len(text) < 40 else text[:37] + "..."


@st.composite
def cases(draw: Callable[[Any], Any], function: str) -> Case:
    """A (possibly invalid) call of the public ``function``."""
    if function == "log_loss":
        return draw(log_loss_cases())
    case = base_case(function, draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return perturb(case, draw, rng)


# ---------------------------------------------------------------------------------------------
# log_loss: scikit-learn's argument conventions


@st.composite
def log_loss_cases(draw: Callable[[Any], Any]) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 6))
    c = draw(st.integers(1, 4))
    binary = c <= 2 and draw(st.booleans())
    label_kind = draw(st.sampled_from(["int", "str", "bool", "float"]))
    classes: np.ndarray = {
        "int": np.array([3, 7, 11, 20])[:c],
        "str": np.array(["ant", "bee", "cat", "dog"])[:c],
        "bool": np.array([False, True])[: min(c, 2)],
        "float": np.array([-1.0, 0.5, 2.0, 9.0])[:c],
    }[label_kind]
    c = classes.size
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    y = classes[rng.integers(0, c, n)]
    p = REGISTRY["entropy"].make(rng, (n,), c, dtype, {})[0][0]
    given_p = p[:, 1] if binary and c == 2 else p
    case = Case(
        "log_loss",
        [Arg("y_true", "labels", y, y), Arg("y_proba", "prob", given_p, given_p)],
        {},
        notes=[f"n={n} classes={classes.tolist()} binary={binary} {np.dtype(dtype).name}"],
        class_axis=None,
        n_classes=c,
    )
    if draw(st.booleans()):
        labels = classes[rng.permutation(c)] if draw(st.booleans()) else classes
        case.options["labels"] = Arg("labels", "labels", labels, labels)
    if draw(st.booleans()):
        w = rng.random(n) * 2
        case.options["sample_weight"] = Arg("sample_weight", "weight", w, w)
    if draw(st.booleans()):
        case.options["normalize"] = draw(st.sampled_from([True, False, np.bool_(True), 1]))
        if type(case.options["normalize"]) is int:  # 1, not True: scikit-learn refuses it
            case.errors.add("normalize")
    for _ in range(draw(st.integers(0, 2))):
        targets = case.args + [o for o in case.options.values() if isinstance(o, Arg)]
        arg = draw(st.sampled_from(targets))
        if arg.given is not arg.value:
            continue  # changed once already
        change = draw(
            st.sampled_from(
                sorted(
                    [
                        "big_endian",
                        "read_only",
                        "negative_stride",
                        "strided",
                        "guard_end",
                        "list",
                        "masked_no_mask",
                        "pandas",
                        "nan",
                        "bad_probability",
                        "object",
                        "complex",
                        "string",
                        "masked_entry",
                        "pd_na",
                        "wrong_shape",
                        "zero_d",
                        "bad_weight",
                    ]
                )
            )
        )
        table = {**VALID_CHANGES, **ERROR_CHANGES}
        try:
            table[change](rng, case, arg)
        except NotApplicable:
            continue
        case.notes.append(f"{change}({arg.name})")
        if change in ("masked_entry", "pd_na"):
            case.errors.add(arg.name)  # fastce refuses what scikit-learn silently drops
    return case


def without_errors(case: Case) -> Case:
    return replace(case, errors=set())
