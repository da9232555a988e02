"""Streaming accumulators: exact ``"sum"``/``"mean"`` over data that arrives in batches.

An :class:`Accumulator` keeps the exact (unrounded) sums of the per-sample values and of their
weights, in the same superaccumulator the in-memory functions use. Integer addition is
associative, so the result does not depend on how the data was split into batches, on the order
of the batches, or on how partial accumulators were merged: ``result().mean`` is the in-memory
``reduction="mean"`` of all the data, bit for bit, and ``result().sum`` the ``"sum"``.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _reduce
from ._kernels.exactsum import ACC_LEN, acc_merge, acc_normalize, acc_value
from ._kernels.groupsum import KEY_GROUP, check_state, merge_states
from ._measures import KERNELS_GENERATION, Measure, accumulated
from ._measures import MEASURES as ALL_MEASURES
from ._version import __version__

__all__ = ["MEASURES", "Accumulator", "Result"]


@dataclass(frozen=True)
class Result:
    """What an :class:`Accumulator` has seen: the exact sum and mean, the count and the weight.

    For an accumulator fed with ``groups=``, ``mean``, ``sum``, ``count``, ``weight``,
    ``sum64`` and ``perplexity`` are 1-D NumPy arrays indexed by group id ``0 .. G - 1`` (G the
    largest id seen plus one), each entry what the attribute says for that group's samples
    alone (the in-memory function's ``groups=`` result, bit for bit): ``mean`` and ``sum`` of
    the data's dtype, ``count`` int64, ``weight`` and ``sum64`` float64; an empty group's mean
    is NaN, its sum 0.0 and its count 0. ``batchmean`` is then None.

    Attributes
    ----------
    mean : float
        ``fl(S / W)``: the exact sum of the per-sample values divided by the exact sum of their
        weights, each rounded once to float64, the quotient rounded to the dtype of the data
        (float32 data: the float32 value, held in a Python float). NaN when nothing was seen.
    sum : float
        ``S``, the correctly rounded exact sum of the per-sample values (weights applied), rounded
        to the dtype of the data. 0.0 when nothing was seen.
    count : int
        The number of values that were not ignored (samples; elements for
        ``binary_cross_entropy``, whose mean is over elements).
    weight : float
        ``W``, the correctly rounded exact sum of the weights that multiplied the values (the
        count when there were no weights).
    dtype : str
        ``"float32"`` or ``"float64"``: the dtype the in-memory function would have returned
        (``"float64"`` when nothing was seen).
    sum64 : float
        ``S`` correctly rounded to float64 whatever the dtype of the data (equal to ``sum`` for
        float64 data); ``mean64`` is ``fl(sum64 / weight)``, the float64 mean from which
        ``fastce.perplexity`` takes its exponential, also for float32 data.
    perplexity : float or None
        For the ``"perplexity"`` measure (whose ``mean``, ``sum``, ``count`` and ``weight``
        are those of cross-entropy in nats): ``exp(mean64)`` rounded to the dtype of the data,
        the bits of ``fastce.perplexity`` on all the data (NaN when nothing was seen). None for
        the other measures.
    positions : int or None
        The positions along the first batch axis of every batch seen (a batch's length along
        its first axis, ignored samples included; 1 for a batch that is one distribution; a
        batch with no samples is a no-op, as everywhere). None for a state written by a
        fastce that did not count them.
    batchmean : float or None
        For ``"kl_divergence"``: ``fl(sum64 / positions)`` rounded to the dtype of the data,
        the bits of ``kl_divergence(..., reduction="batchmean")`` on all the data when the
        batches split it along its first axis (NaN when nothing was seen). None for the other
        measures.
    """

    mean: Any  # float, or an array per group
    sum: Any
    count: Any
    weight: Any
    dtype: str = "float64"
    sum64: Any = math.nan
    perplexity: Any = None
    positions: int | None = None
    batchmean: float | None = None

    @property
    def grouped(self) -> bool:
        """Whether this is one result per group (arrays) rather than one (scalars)."""
        return isinstance(self.count, np.ndarray)

    @property
    def mean64(self) -> Any:
        """``fl(sum64 / weight)``: the mean before any rounding to float32 (NaN if empty)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mean = np.float64(self.sum64) / np.float64(self.weight)
            return mean if self.grouped else float(mean)

    def as_dict(self) -> dict[str, Any]:
        """``{"mean": ..., "sum": ..., "count": ..., "weight": ...}``, and ``"perplexity"``
        and ``"batchmean"`` where there is one."""
        d = {"mean": self.mean, "sum": self.sum, "count": self.count, "weight": self.weight}
        if self.perplexity is not None:
            d["perplexity"] = self.perplexity
        if self.batchmean is not None:
            d["batchmean"] = self.batchmean
        return d

    def to_dict(self) -> dict[str, Any]:
        """``as_dict()`` with plain Python values, ready for JSON: lists for a result per
        group, a float or an int otherwise."""
        items = self.as_dict().items()
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in items}

    def __eq__(self, other: object) -> bool:
        # Field by field as the generated method does, with arrays compared whole (same dtype
        # and values, NaN equal to NaN: a per-group mean of an empty group is NaN).
        if other.__class__ is not self.__class__:
            return NotImplemented
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (
                    isinstance(a, np.ndarray)
                    and isinstance(b, np.ndarray)
                    and a.dtype == b.dtype
                    and np.array_equal(a, b, equal_nan=True)
                ):
                    return False
            elif not (a is b or a == b):
                return False
        return True


MEASURES: dict[str, Measure] = accumulated()
"""The measures an accumulator can follow, by the name of their public function (the rows of
the table of measures that have an exact sum)."""

_MAGIC = b"FCEACC"
_FORMAT = 1  # a state without groups (read by every fastce since the format existed)
_FORMAT_GROUPS = 2  # format 1, then each group's count and the compact group state
_HEADER = struct.Struct("<6sHI")  # magic, format version, length of the JSON part
_ENTRY = struct.Struct("<Hq")  # index into the state row, its int64 value
_BIN_LIMIT = (1 << 62) - 1


def _options_of(function: Callable[..., Any]) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _encode(value: Any, name: str) -> Any:
    """An option as JSON-ready data; arrays become ``{"array": dtype, "shape", "data"}``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating, numbers.Real)) and not isinstance(value, np.bool_):
        return {"float": float(value).hex()}  # also a Fraction (kept as its float)
    if isinstance(value, np.bool_):
        return bool(value)
    array = np.asarray(value)
    if array.dtype.kind == "f":
        data: list[Any] = [float(x).hex() for x in array.astype(np.float64).ravel()]
    elif array.dtype.kind in "iub":
        data = [int(x) for x in array.ravel()]
    elif array.dtype.kind == "U":
        data = [str(x) for x in array.ravel()]
    else:
        raise TypeError(
            f"option {name!r}: an accumulator keeps only numbers, strings and arrays of them; "
            f"got {type(value).__name__} of dtype {array.dtype}"
        )
    return {"array": array.dtype.str, "shape": list(array.shape), "data": data}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "float" in value:
            return float.fromhex(value["float"])
        dtype = np.dtype(value["array"])
        if dtype.kind not in "fiubU" or dtype.itemsize > 4096:
            # What _encode writes; a corrupt state must not make NumPy allocate at will.
            raise ValueError(f"option array of dtype {dtype}")
        data = value["data"]
        if dtype.kind == "f":
            data = [float.fromhex(x) for x in data]
        return np.array(data, dtype=dtype).reshape(value["shape"])
    return value


def _check_options(measure: str, options: dict[str, Any]) -> None:
    """The checks of the in-memory function that do not need data, made at construction: an
    accumulator with a bad option fails at once, not at its first non-empty batch (or never,
    if every batch is empty), and a state read by ``from_bytes`` holds valid options."""
    from . import _validate as v

    for name, value in options.items():
        if name == "base":
            v.ln_base(value)
        elif name == "eps":
            v.check_eps(value, np.dtype(np.float64))
        elif name == "label_smoothing":
            v.check_smoothing(value)
        elif name == "ignore_index":
            v.check_ignore_index(value)
        elif name in ("from_logits", "target_from_logits"):
            v.check_bool(value, name)
        elif name == "temperature":
            v.check_temperature(value, {})  # (its logits flag is checked with the data)
        elif name == "axis":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise TypeError(f"axis must be an integer; got {v.show(value)}")
        elif name in ("class_weight", "pos_weight") and value is not None:
            v.as_weight_array(value, name)
    if measure == "log_loss" and options.get("labels") is not None:
        labels = v.reject_missing(options["labels"], "labels")
        if np.ndim(labels) != 1 or np.size(labels) < 2:
            raise ValueError(
                f"labels must be a 1-D list of at least two class labels; got {v.show(labels)}"
            )


class Accumulator:
    r"""Exact streaming ``"sum"``/``"mean"`` of one measure over batches of data.

    .. math:: \mathrm{mean} = \mathrm{fl}\Big(\frac{\mathrm{fl}(\sum_i w_i \ell_i)}
              {\mathrm{fl}(\sum_i w_i)}\Big)

    with both sums exact over every batch seen (or merged in) and rounded once, so the result
    equals the in-memory ``reduction="mean"`` (and ``"sum"``) of the concatenated data, bit for
    bit, however the data was split, ordered or distributed.

    Batches given with ``update(..., groups=ids)`` make a grouped accumulator: it keeps both
    exact sums and a count for every group id seen, and ``result()`` gives arrays indexed by
    group id ``0 .. G - 1`` (G the largest id seen plus one), each entry the bits of the
    in-memory ``groups=`` result of all the data (and so of the function on that group's
    samples alone).

    Parameters
    ----------
    measure : str
        The public function to follow: ``"entropy"``, ``"cross_entropy"``, ``"perplexity"``,
        ``"binary_cross_entropy"``, ``"kl_divergence"``, ``"js_divergence"`` or ``"log_loss"``.
        ``"perplexity"`` accumulates cross-entropy in nats (``mean``, ``sum``, ``count`` and
        ``weight`` are those of ``"cross_entropy"``) and its result's ``perplexity`` is
        ``fastce.perplexity`` of all the data, bit for bit.
    **options
        That function's keyword options (``from_logits``, ``base``, ``eps``, ``axis``,
        ``label_smoothing``, ``class_weight``, ``ignore_index``, ``pos_weight``; ``labels`` for
        ``"log_loss"``, where it is required because the label set cannot be inferred from a
        stream). ``reduction``, ``out``, ``sample_weight``, ``where`` and ``normalize`` are not
        options: the accumulator gives both the sum and the mean, and weights and masks come
        with each batch.

    Notes
    -----
    The state is small (two exact accumulators of about 17 KiB each and a count, whatever the
    amount of data), picklable, and serialisable with :meth:`to_bytes`. A grouped state keeps
    only the nonzero entries of each group's two accumulators, in canonical form: about 100
    bytes per group for losses within a few binades, at most about 2.3 KB for any data.
    ``update`` and ``merge`` may be called from several threads; one accumulator holds one
    measure with one set of options, and every batch must give the same result dtype (float32
    or float64).

    A state records the generation of the kernels that computed its values (it changes only
    when a new fastce changes any per-sample value in any bit). States of different
    generations are not merged, and a state read from an older generation is not updated:
    both raise a ``ValueError`` naming the two versions and generations.

    Examples
    --------
    >>> import numpy as np, fastce
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])
    >>> labels = np.array([0, 2, 1])
    >>> acc = fastce.Accumulator("cross_entropy", from_logits=True)
    >>> for lo, hi in [(0, 1), (1, 3)]:
    ...     _ = acc.update(labels[lo:hi], logits[lo:hi])
    >>> res = acc.result()
    >>> in_memory = fastce.cross_entropy(labels, logits, from_logits=True, reduction="mean")
    >>> res.count, bool(res.mean == in_memory)
    (3, True)

    One result per group (here per sequence), from batches that split the groups:

    >>> groups = np.array([0, 1, 0])
    >>> by_group = fastce.Accumulator("cross_entropy", from_logits=True)
    >>> _ = by_group.update(labels[:2], logits[:2], groups=groups[:2])
    >>> _ = by_group.update(labels[2:], logits[2:], groups=groups[2:])
    >>> res = by_group.result()
    >>> res.count
    array([2, 1])
    >>> in_memory = fastce.cross_entropy(labels, logits, from_logits=True, groups=groups,
    ...                                  reduction="mean")
    >>> bool((res.mean == in_memory).all())
    True
    """

    def __init__(self, measure: str, **options: Any) -> None:
        if not isinstance(measure, str) or measure not in MEASURES:
            raise ValueError(
                f"measure must be one of {', '.join(repr(m) for m in MEASURES)}; got {measure!r}"
            )
        spec = MEASURES[measure]
        allowed = _options_of(spec.function) - {
            "reduction", "out", "sample_weight", "where", "normalize", "groups", "n_groups",
        }  # fmt: skip
        for name in options:
            if name == "groups":
                raise TypeError(
                    "groups= comes with each batch, as sample_weight= and where= do: "
                    "acc.update(..., groups=ids), not an option of the accumulator"
                )
            if name == "n_groups":
                raise TypeError(
                    "an accumulator takes no n_groups=: its groups are the ids its batches "
                    "hold (a result per group id 0 .. the largest seen)"
                )
            if name not in allowed:
                raise TypeError(
                    f"{measure!r} has no option {name!r} in an accumulator; its options are "
                    f"{', '.join(sorted(allowed))}"
                )
        for name in spec.required:
            if options.get(name) is None:
                raise ValueError(
                    f"an accumulator for {measure!r} needs {name}= (the full label set): a "
                    "stream cannot infer it from the labels it has seen so far"
                )
        _check_options(measure, options)
        self._measure = measure
        self._spec = spec
        encoded = {name: _encode(value, name) for name, value in options.items()}
        self._key = json.dumps(encoded, sort_keys=True)
        self._options = {name: _decode(value) for name, value in encoded.items()}
        self._acc = np.zeros((2, ACC_LEN), np.int64)
        self._count = 0
        # None until the first batch with samples (or a merged state) decides whether this
        # accumulator keeps one result (False) or one per group (True).
        self._grouped: bool | None = None
        # A grouped state: partial group states (keys, vals), each at most half the size of
        # the one before, so an update merges about as much as it adds (see _add_groups); and
        # the count of each group id seen.
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._group_counts = np.zeros(0, np.int64)
        self._positions: int | None = 0
        self._dtype: np.dtype | None = None
        self._lock = threading.Lock()
        self._generation = KERNELS_GENERATION
        self._made_by = __version__

    # -- feeding -------------------------------------------------------------------------------

    @property
    def measure(self) -> str:
        """The name of the measure followed."""
        return self._measure

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options given at construction (arrays as NumPy copies)."""
        return dict(self._options)

    def _empty_batch(self, pred: Any) -> bool:
        shape = np.shape(pred)
        if math.prod(shape) != 0:
            return False
        if self._measure == "binary_cross_entropy" or len(shape) == 0:
            return True
        axis = self._options.get("axis", -1)
        try:
            rest = list(shape)
            del rest[axis]
        except (IndexError, TypeError):
            return False  # let the function report the bad axis
        return math.prod(rest) == 0 if rest else False

    def update(
        self, *arrays: Any, sample_weight: Any = None, where: Any = None, groups: Any = None
    ) -> Accumulator:
        """Add a batch: the same positional arrays as the in-memory function.

        ``acc.update(p)`` for ``"entropy"``; ``acc.update(target, pred)`` for the others
        (``log_loss``: ``y_true, y_proba``). ``sample_weight`` weighs the batch's samples and
        ``where`` masks them as the in-memory function's ``sample_weight`` and ``where`` do: a
        masked-out sample leaves the count, the weight and the sums (its positions along the
        first batch axis still count for ``batchmean``). ``groups`` gives each sample's group
        id as the in-memory function's ``groups=`` does (every measure but ``"log_loss"``);
        an accumulator is then grouped: the first batch with samples decides, and a batch
        with groups into an accumulator without, or the reverse, is a ``ValueError``. Every
        check of the in-memory function applies, with its messages. A batch with no samples
        is a no-op. Returns the accumulator.
        """
        spec = self._spec
        if self._generation != KERNELS_GENERATION:
            raise ValueError(
                f"this accumulator's state was made by fastce {self._made_by} (kernels of "
                f"generation {self._generation}); this fastce ({__version__}) computes "
                f"generation {KERNELS_GENERATION}, whose per-sample values may differ in their "
                "last bits: read its result(), but start a new accumulator for new data"
            )
        if len(arrays) != spec.arity:
            want = "one array (p)" if spec.arity == 1 else "two arrays (target, pred)"
            raise TypeError(
                f"Accumulator({self._measure!r}).update takes {want}; got {len(arrays)}"
            )
        if groups is not None and "groups" not in spec.options:
            raise TypeError(f"{self._measure!r} takes no groups=")
        self._check_grouping(groups is not None)
        if self._empty_batch(arrays[-1]):
            return self
        positions = self._first_axis(arrays[-1])
        zero_weights = self._all_zero_log_loss_weights(arrays[-1], sample_weight)
        # perplexity keeps cross-entropy's sums: that function, with accumulates' options
        function = (
            ALL_MEASURES[spec.accumulates_as].function if spec.accumulates_as else spec.function
        )
        mask = {} if where is None else {"where": where}
        if mask and "where" not in spec.options:
            raise TypeError(f"{self._measure!r} takes no where= mask")
        if groups is not None:
            mask["groups"] = groups
        with _reduce.capture() as states:
            function(
                *arrays,
                sample_weight=None if zero_weights else sample_weight,
                **mask,
                **(spec.accumulates or {}),
                **self._options,
            )
        if len(states) != 1:
            raise RuntimeError(f"fastce internal error: {len(states)} states from one batch")
        state = states[0]
        if isinstance(state, _reduce.GroupState):
            self._add_groups(state.keys, state.vals, state.counts, state.dtype, positions)
            return self
        if zero_weights:
            # The batch's values and weights are all multiplied by 0: its samples count, its
            # sums are 0 (log_loss has already refused NaN and inf in y_proba).
            state.acc[:, :] = 0
        self._add(state.acc, state.count, state.dtype, positions, decided=True)
        return self

    def _check_grouping(self, grouped: bool) -> None:
        """A batch (or merged state) with groups into an accumulator without, or the reverse."""
        if self._grouped is None or self._grouped == grouped:
            return
        if grouped:
            raise ValueError(
                "this accumulator keeps one result for all its data (its earlier batches came "
                "without groups=): a batch with groups= needs an accumulator of its own"
            )
        raise ValueError(
            "this accumulator keeps one result per group (its earlier batches came with "
            "groups=): every batch needs groups="
        )

    def _first_axis(self, pred: Any) -> int:
        """The batch's positions along its first batch axis (as ``reduction="batchmean"``
        counts them): its first axis, or the second where the first is the class axis."""
        from . import _validate as v

        rows = self._spec.layout == "rows"
        return int(v.first_axis_length(np.shape(pred), self._options.get("axis", -1), rows))

    def _all_zero_log_loss_weights(self, pred: Any, sample_weight: Any) -> bool:
        """scikit-learn's ``log_loss`` refuses sample weights that are all zero; over a whole
        data set that is right, but one batch of a stream may well be all zero."""
        if self._measure != "log_loss" or sample_weight is None:
            return False
        try:
            w = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return w.ndim == 1 and w.shape[0] == np.shape(pred)[0] and w.size > 0 and not w.any()

    def _check_dtype(self, dtype: np.dtype | None) -> None:
        if dtype is not None and self._dtype is not None and dtype != self._dtype:
            raise ValueError(
                f"this accumulator holds {self._dtype} results and the batch gives {dtype}: "
                "cast the batches to one dtype (the in-memory function would return one)"
            )

    def _add(
        self,
        acc: np.ndarray,
        count: int,
        dtype: np.dtype | None,
        positions: int | None,
        decided: bool,
    ) -> None:
        with self._lock:
            if decided:
                self._check_grouping(False)
            self._check_dtype(dtype)
            if decided:
                self._grouped = False
            if dtype is not None and count:
                self._dtype = dtype
            if count or acc.any():
                acc_merge(self._acc[0], acc[0])
                acc_merge(self._acc[1], acc[1])
            self._count += count
            if self._positions is not None:
                self._positions = None if positions is None else self._positions + positions

    def _add_groups(
        self,
        keys: np.ndarray,
        vals: np.ndarray,
        counts: np.ndarray,
        dtype: np.dtype | None,
        positions: int | None,
    ) -> None:
        count = int(counts.sum())
        with self._lock:
            self._check_grouping(True)
            self._check_dtype(dtype)
            self._grouped = True
            if dtype is not None and count:
                self._dtype = dtype
            # Merging every batch into the whole state would cost the state's size per update;
            # merging equal-sized parts (as a binary counter carries) costs each entry a merge
            # per doubling. Merges are exact and canonical: the bits do not depend on the tree.
            parts = self._parts
            parts.append((keys, vals))
            while len(parts) > 1 and 2 * parts[-1][0].size >= parts[-2][0].size:
                (k2, v2), (k1, v1) = parts.pop(), parts.pop()
                parts.append(merge_states(k1, v1, k2, v2))
            if counts.size > self._group_counts.size:
                grown = np.zeros(counts.size, np.int64)
                grown[: self._group_counts.size] = self._group_counts
                self._group_counts = grown
            self._group_counts[: counts.size] += counts
            self._count += count
            if self._positions is not None:
                self._positions = None if positions is None else self._positions + positions

    def _group_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole group state in one piece (with the lock held)."""
        parts = self._parts
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        while len(parts) > 1:
            (k2, v2), (k1, v1) = parts.pop(), parts.pop()
            parts.append(merge_states(k1, v1, k2, v2))
        return parts[0]

    def merge(self, other: Accumulator) -> Accumulator:
        """Add another accumulator's state to this one, exactly; returns this accumulator.

        Both must follow the same measure with the same options. Merging partial accumulators
        in any order or grouping gives the same bits. ``other`` is left unchanged.
        """
        if not isinstance(other, Accumulator):
            raise TypeError(f"merge takes an Accumulator; got {type(other).__name__}")
        if other._measure != self._measure or other._key != self._key:
            raise ValueError(
                f"cannot merge Accumulator({other._measure!r}, {other._describe()}) into "
                f"Accumulator({self._measure!r}, {self._describe()}): measure and options "
                "must be the same"
            )
        if other._generation != self._generation:
            raise ValueError(
                f"cannot merge a state made by fastce {other._made_by} (kernels of generation "
                f"{other._generation}) into one made by fastce {self._made_by} (generation "
                f"{self._generation}): per-sample values of different kernel generations may "
                "differ in their last bits, so their exact sums do not add up to either's"
            )
        if other is self:
            other = Accumulator.from_bytes(other.to_bytes())
        with other._lock:
            acc, count, dtype = other._acc.copy(), other._count, other._dtype
            positions, grouped = other._positions, other._grouped
            keys, vals = other._group_state()
            counts = other._group_counts.copy()
        if grouped:
            self._add_groups(keys, vals, counts, dtype, positions)
        else:
            self._add(acc, count, dtype, positions, decided=grouped is False)
        return self

    def _merge_renamed(self, part: Accumulator, ids: np.ndarray) -> Accumulator:
        """Add a grouped accumulator's state exactly, its group ``g`` renamed ``ids[g]`` (ids
        distinct, below ``MAX_GROUPS``): how ``score_file`` adds each chunk, grouped by the
        ids ``0 .. k - 1`` of the keys it holds, into the ids of the whole file; an update
        costs the groups of its batch, not the largest id. ``part`` must follow the same
        measure with the same options."""
        with part._lock:
            if not part._grouped:
                return self  # (no batch with samples: nothing to add)
            keys, vals = part._group_state()
            counts = part._group_counts.copy()
            dtype, positions = part._dtype, part._positions
        ids = np.asarray(ids, np.int64)[: counts.size]
        group = keys // KEY_GROUP
        renamed = ids[group] * KEY_GROUP + (keys - group * KEY_GROUP)
        order = np.argsort(renamed, kind="stable")  # the canonical order: by key
        by_id = np.zeros(int(ids.max()) + 1 if ids.size else 0, np.int64)
        by_id[ids] = counts
        self._add_groups(renamed[order], vals[order], by_id, dtype, positions)
        return self

    # -- reading -------------------------------------------------------------------------------

    def result(self) -> Result:
        """The exact sum and mean so far (see :class:`Result`): one per group id for an
        accumulator fed with ``groups=``."""
        if self._grouped:
            return self._group_result()
        with self._lock:
            total = acc_value(self._acc[0])
            weight = acc_value(self._acc[1])
            count = self._count
            positions = self._positions
            dtype = self._dtype or np.dtype(np.float64)
        # IEEE results without warnings: a mean beyond the float range is inf, as is a float32
        # sum beyond float32's (found by fuzzing: "overflow encountered in scalar divide").
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mean = np.float64(total) / np.float64(weight)
            mean_d, sum_d = dtype.type(mean), dtype.type(total)
            # as fastce.perplexity: exp of the float64 mean, rounded to the data's dtype
            ppl = float(dtype.type(np.exp(mean))) if self._measure == "perplexity" else None
            batchmean = None
            if self._measure == "kl_divergence" and positions is not None:
                batchmean = float(dtype.type(np.float64(total) / np.float64(positions)))
        return Result(
            mean=float(mean_d),
            sum=float(sum_d),
            count=count,
            weight=float(weight),
            dtype=dtype.name,
            sum64=float(total),
            perplexity=ppl,
            positions=positions,
            batchmean=batchmean,
        )

    def _group_result(self, n_groups: int | None = None) -> Result:
        """The per-group result; ``n_groups`` (at least the ids seen) pads it with empty
        groups, as the in-memory ``n_groups=`` does (fastce.dask; also with no samples)."""
        with self._lock:
            keys, vals = self._group_state()
            counts = self._group_counts.copy()
            if n_groups is not None and n_groups > counts.size:
                counts = np.concatenate([counts, np.zeros(n_groups - counts.size, np.int64)])
            positions = self._positions
            dtype = self._dtype or np.dtype(np.float64)
        total, weight = _reduce.group_sums(keys, vals, counts.size)
        # as the in-memory groups= result: each group's fl(S / W), then the data's dtype
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mean = total / weight
            ppl = None
            if self._measure == "perplexity":  # as fastce.perplexity: one exp at a time
                ppl = np.array([np.exp(m) for m in mean.tolist()], np.float64).astype(dtype)
            return Result(
                mean=mean.astype(dtype),
                sum=total.astype(dtype),
                count=counts,
                weight=weight,
                dtype=dtype.name,
                sum64=total,
                perplexity=ppl,
                positions=positions,
            )

    def _describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._options.items()) or "no options"

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self._options.items())
        groups = f" in {self._group_counts.size} groups" if self._grouped else ""
        return f"Accumulator({self._measure!r}{options}) with {self._count} values{groups}"

    # -- serialisation -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state as bytes (a few KiB), for another process or machine; see ``from_bytes``.

        Equal states give equal bytes: the exact sums are written in a canonical form, so two
        accumulators that saw the same data in different batches serialise identically. A
        state with groups is written in format 2 (which a fastce from before groups does not
        read), one without in format 1.
        """
        with self._lock:
            acc = self._acc.copy()
            count = self._count
            positions = self._positions
            dtype = self._dtype
            grouped = self._grouped
            keys, vals = self._group_state()
            counts = self._group_counts.copy()
        header = {
            "measure": self._measure,
            "options": json.loads(self._key),
            "count": count,
            "positions": positions,
            "dtype": None if dtype is None else dtype.name,
            "fastce": self._made_by,
            "kernels": self._generation,
        }
        if grouped:
            header["groups"] = counts.size
            header["entries"] = keys.size
        text = json.dumps(header, sort_keys=True).encode()
        version = _FORMAT_GROUPS if grouped else _FORMAT
        parts = [_HEADER.pack(_MAGIC, version, len(text)), text]
        for row in acc:
            acc_normalize(row)
            nonzero = np.flatnonzero(row)
            parts.append(struct.pack("<I", nonzero.size))
            parts.extend(_ENTRY.pack(int(i), int(row[i])) for i in nonzero)
        if grouped:
            parts.extend(a.astype("<i8").tobytes() for a in (counts, keys, vals))
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes) -> Accumulator:
        """An accumulator from :meth:`to_bytes` output.

        Raises
        ------
        ValueError
            The blob is truncated, corrupt (checksum), not an accumulator, or written in a
            format this version of fastce does not read.
        """
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"from_bytes takes bytes; got {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < _HEADER.size + 4 or blob[: len(_MAGIC)] != _MAGIC:
            raise ValueError("not a fastce accumulator state (bad magic or too short)")
        _, version, text_len = _HEADER.unpack_from(blob)
        if version not in (_FORMAT, _FORMAT_GROUPS):
            raise ValueError(
                f"accumulator state in format {version}; this fastce ({__version__}) reads "
                f"formats {_FORMAT} and {_FORMAT_GROUPS}"
            )
        body, (crc,) = blob[:-4], struct.unpack("<I", blob[-4:])
        if zlib.crc32(body) != crc:
            raise ValueError("accumulator state is truncated or corrupt (checksum mismatch)")
        try:
            pos = _HEADER.size
            header = json.loads(body[pos : pos + text_len])
            pos += text_len
            acc = np.zeros((2, ACC_LEN), np.int64)
            for row in acc:
                (n,) = struct.unpack_from("<I", body, pos)
                pos += 4
                for _ in range(n):
                    i, value = _ENTRY.unpack_from(body, pos)
                    pos += _ENTRY.size
                    if i >= ACC_LEN or abs(value) > _BIN_LIMIT:
                        raise ValueError(f"state entry {i} = {value} out of range")
                    row[i] = value
            if not isinstance(header, dict) or not isinstance(header.get("options"), dict):
                raise ValueError("the header is not a JSON object with an options object")
            grouped = version == _FORMAT_GROUPS
            if grouped:
                counts, keys, vals, pos = _read_groups(header, body, pos)
                if acc.any():
                    raise ValueError("a state with groups holds a sum without groups")
            if pos != len(body):
                raise ValueError(f"{len(body) - pos} bytes after the state")
            options = {k: _decode(v) for k, v in header["options"].items()}
            new = cls(header["measure"], **options)
            count = header["count"]
            dtype = header["dtype"]
            if type(count) is not int or not 0 <= count < 2**63:
                raise ValueError(f"bad count {count!r}")
            # States written before positions were counted have none.
            positions = header.get("positions")
            if positions is not None and (
                type(positions) is not int or not 0 <= positions < 2**63
            ):
                raise ValueError(f"bad positions {positions!r}")
            if dtype not in (None, "float32", "float64"):
                raise ValueError(f"bad dtype {dtype!r}")
            if grouped and int(counts.sum()) != count:
                raise ValueError(f"the groups' counts add up to {counts.sum()}, not {count}")
            # States written before generations were recorded hold generation 1's values.
            generation = header.get("kernels", 1)
            made_by = header.get("fastce", "before 0.5")
            if type(generation) is not int or generation < 1 or not isinstance(made_by, str):
                raise ValueError(f"bad kernel generation {generation!r} or version {made_by!r}")
        except (
            ValueError,  # includes JSONDecodeError and UnicodeDecodeError
            TypeError,
            KeyError,
            AttributeError,
            IndexError,
            OverflowError,
            RecursionError,  # deeply nested JSON
            MemoryError,
            struct.error,
        ) as exc:
            raise ValueError(f"accumulator state is corrupt: {type(exc).__name__}: {exc}") from exc
        new._acc = acc
        new._count = count
        new._positions = positions
        if grouped:
            new._grouped = True
            new._parts = [(keys, vals)]
            new._group_counts = counts
        elif count or positions or acc.any():
            new._grouped = False  # (a state with no batch with samples has not decided)
        new._dtype = None if dtype is None else np.dtype(dtype)
        new._generation = generation
        new._made_by = made_by
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        return (Accumulator.from_bytes, (self.to_bytes(),))


def _read_groups(
    header: dict[str, Any], body: bytes, pos: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The group counts, keys and values of a format-2 state from ``pos``, checked (sizes
    before anything is allocated, then every entry); and the position after them."""
    n_groups, n_entries = header.get("groups"), header.get("entries")
    for name, n in (("groups", n_groups), ("entries", n_entries)):
        if type(n) is not int or n < 0:
            raise ValueError(f"bad number of {name} {n!r}")
    assert isinstance(n_groups, int) and isinstance(n_entries, int)
    end = pos + 8 * (n_groups + 2 * n_entries)
    if end > len(body):
        raise ValueError(f"{n_groups} groups and {n_entries} entries do not fit the state")
    arrays = []
    for n in (n_groups, n_entries, n_entries):
        arrays.append(np.frombuffer(body, "<i8", n, pos).astype(np.int64))
        pos += 8 * n
    counts, keys, vals = arrays
    if (counts < 0).any():
        raise ValueError("a negative group count")
    bad = check_state(keys, vals, n_groups)
    if bad >= 0:
        raise ValueError(f"group state entry {bad} (key {keys[bad]}, value {vals[bad]}) invalid")
    return counts, keys, vals, pos
