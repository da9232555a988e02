"""Two models' predictions side by side: ``compare`` and the streaming ``Comparison``.

A reference model and a candidate (a quantised, pruned or distilled copy, a student) are
compared sample by sample: the KL divergence of the candidate's distribution from the
reference's, whether both put the same class on top, and, given the observed classes, each
model's cross-entropy and the change in the probability of the observed class.

One pass over the two prediction arrays (``_kernels.compare``: KL's own row body, whose
prologue also writes each row's top classes and the target's log-probabilities), then the
per-sample figures, which are one value per sample (never the input's size), are reduced:
means, standard errors, rates and counts as exact sums (``_kernels.exactsum``; mergeable and
the same bits however the data is split), quantiles exactly in memory or, in a streamed
``Comparison``, from a mergeable REQ sketch (Apache DataSketches, the ``compare`` extra).
"""

from __future__ import annotations

import io
import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _launch
from . import _validate as v
from ._kernels import compare as kernels
from ._kernels.exactsum import ACC_LEN, acc_add_array, acc_merge, acc_value
from ._kernels.groupsum import check_state, group_state, merge_states, state_sums
from .accumulator import _BIN_LIMIT, _decode, _encode

__all__ = ["Comparison", "ComparisonResult", "Distribution", "compare"]

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
"""The quantiles of each distribution a comparison reports."""

SKETCH_K = 24
"""The REQ sketches' accuracy parameter k (DataSketches' default is 12): about 2e-5 of rank
error at the 99.9th percentile of a million values."""

_FORMAT = 1
_F64 = np.dtype(np.float64)

# The exact sums a comparison keeps, per group: name -> index. Each is the sum over the kept
# samples of the sample weight (1 without weights) times the figure.
_CHANNELS = (
    "weight",
    "kl",
    "kl_squared",
    "agree",
    "ce_reference",
    "ce_candidate",
    "ce_reference_nats",
    "ce_candidate_nats",
    "delta_p",
    "delta_p_squared",
    "reference_correct",
    "candidate_correct",
)
_C = {name: k for k, name in enumerate(_CHANNELS)}


# --- the figures of a result ---------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """A per-sample figure's distribution over the samples scored.

    ``mean`` (weighted by the sample weights), ``standard_error`` of the mean, ``rms`` (root
    mean square), ``quantiles`` ({q: value} for q in 0.5, 0.9, 0.95, 0.99, 0.999), ``minimum``
    and ``maximum``; each a scalar, or one entry per group with ``groups=``. ``method``:
    ``"exact"`` (NumPy's ``method="linear"`` over the values) or ``"req"`` (a REQ sketch of a
    streamed comparison); ``rank_error``: {q: bound on the rank error of that quantile} (about
    two standard deviations; 0.0 for exact quantiles). A NaN among the values makes the
    quantiles, minimum, maximum and mean NaN.
    """

    mean: Any
    standard_error: Any
    rms: Any
    quantiles: dict[float, Any]
    minimum: Any
    maximum: Any
    method: str
    rank_error: dict[float, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python floats (lists of them with groups); quantiles keyed ``"p50"``..."""
        return {
            "mean": _plain(self.mean),
            "standard_error": _plain(self.standard_error),
            "rms": _plain(self.rms),
            "quantiles": {_qname(q): _plain(x) for q, x in self.quantiles.items()},
            "minimum": _plain(self.minimum),
            "maximum": _plain(self.maximum),
            "method": self.method,
            "rank_error": {_qname(q): _plain(x) for q, x in self.rank_error.items()},
        }


def _qname(q: float) -> str:
    return "p" + f"{q * 100:g}".replace(".", "_")


def _plain(x: Any) -> Any:
    a = np.asarray(x)
    return a.tolist() if a.ndim else (int(a) if a.dtype.kind in "iu" else float(a))


@dataclass(frozen=True)
class ComparisonResult:
    """What ``compare`` (or ``Comparison.result``) found; per group where groups were given.

    Attributes
    ----------
    kl : Distribution
        KL(reference || candidate) per sample, in the unit of ``base``: its mean is what
        ``kl_divergence(reference, candidate, ..., reduction="mean")`` gives; quantiles,
        minimum and maximum count a value rounded below zero as 0.0.
    top1_agreement : float
        The (weighted) fraction of samples whose top class (NumPy's argmax: the first of tied
        maxima) is the same in both models.
    reference_cross_entropy, candidate_cross_entropy : float or None
        With a target: each model's mean cross-entropy of the target classes, unit of ``base``.
    cross_entropy_difference : float or None
        Candidate minus reference.
    reference_perplexity, candidate_perplexity, perplexity_ratio : float or None
        ``exp`` of each model's mean cross-entropy in nats; candidate over reference.
    delta_p : Distribution or None
        ``p_candidate(y) - p_reference(y)``, the change in the probability of the target class.
    reference_top1_correct, candidate_top1_correct : float or None
        The (weighted) fraction of samples whose top class is the target's.
    n_samples, n_masked, n_ignored : int
        Samples scored, left out by ``where=``, left out by ``ignore_index`` (not masked).
    unit : str
        ``"nats"``, ``"bits"`` or ``"base b"``.
    n_groups : int or None
        The number of groups (None without groups); every figure is then an array of them.
    """

    kl: Distribution
    top1_agreement: Any
    n_samples: Any
    n_masked: Any
    n_ignored: Any
    unit: str
    reference_cross_entropy: Any = None
    candidate_cross_entropy: Any = None
    cross_entropy_difference: Any = None
    reference_perplexity: Any = None
    candidate_perplexity: Any = None
    perplexity_ratio: Any = None
    delta_p: Distribution | None = None
    reference_top1_correct: Any = None
    candidate_top1_correct: Any = None
    n_groups: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every figure as plain Python floats and ints (lists of them with groups)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Distribution):
                out[name] = value.to_dict()
            elif value is None or isinstance(value, str):
                out[name] = value
            else:
                out[name] = _plain(value)
        return out

    def __repr__(self) -> str:
        return _table(self)


def _fmt(x: Any) -> str:
    a = np.asarray(x)
    if a.ndim:
        return f"[{a.size} groups]"
    return f"{int(a)}" if a.dtype.kind in "iu" else f"{float(a):.6g}"


def _table(r: ComparisonResult) -> str:
    """A compact table, llama.cpp's ``--kl-divergence`` summary in spirit."""
    lines = ["fastce comparison: reference vs candidate"]
    if r.n_groups is not None:
        lines[0] += f" ({r.n_groups} groups; per-group figures in to_dict())"
    counts = f"{_fmt(r.n_samples)} scored, {_fmt(r.n_masked)} masked, {_fmt(r.n_ignored)} ignored"
    lines.append(f"  {'samples':<22}{counts}")

    def row(label: str, value: Any, se: Any = None) -> None:
        text = _fmt(value) + ("" if se is None else f" ± {_fmt(se)}")
        lines.append(f"  {label:<22}{text}")

    if r.reference_cross_entropy is not None:
        row(f"CE reference ({r.unit})", r.reference_cross_entropy)
        row(f"CE candidate ({r.unit})", r.candidate_cross_entropy)
        row("CE difference", r.cross_entropy_difference)
        row("PPL reference", r.reference_perplexity)
        row("PPL candidate", r.candidate_perplexity)
        row("PPL ratio", r.perplexity_ratio)
    row(f"mean KL ({r.unit})", r.kl.mean, r.kl.standard_error)
    for q, x in r.kl.quantiles.items():
        row(f"KL {q * 100:g}%", x)
    row("KL min", r.kl.minimum)
    row("KL max", r.kl.maximum)
    row("same top class", r.top1_agreement)
    if r.delta_p is not None:
        row("mean Δp", r.delta_p.mean, r.delta_p.standard_error)
        row("RMS Δp", r.delta_p.rms)
        for q, x in r.delta_p.quantiles.items():
            row(f"Δp {q * 100:g}%", x)
        row("Δp min", r.delta_p.minimum)
        row("Δp max", r.delta_p.maximum)
        row("top = target, ref.", r.reference_top1_correct)
        row("top = target, cand.", r.candidate_top1_correct)
    if r.kl.method != "exact":
        method = r.kl.method.upper()
        lines.append(f"  (quantiles from a {method} sketch; rank errors in to_dict())")
    return "\n".join(lines)


# --- one pass over the data ----------------------------------------------------------------------


@dataclass
class _Options:
    """A comparison's fixed options (checked)."""

    from_logits: bool
    axis: Any
    ln_base: float
    base: Any
    ignore_index: Any
    temperature: float

    @classmethod
    def check(
        cls, from_logits: Any, axis: Any, base: Any, ignore_index: Any, temperature: Any
    ) -> _Options:
        logits = v.check_bool(from_logits, "from_logits")
        t = v.check_temperature(temperature, {"from_logits": ("reference and candidate", logits)})
        v.check_ignore_index(ignore_index)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an integer; got {v.show(axis)}")
        return cls(logits, axis, v.ln_base(base), base, ignore_index, t)

    @property
    def unit(self) -> str:
        if self.base is None:
            return "nats"
        return "bits" if float(self.base) == 2.0 else f"base {float(self.base):g}"


@dataclass
class _Samples:
    """The per-sample figures of the samples kept, one entry each (float64 unless said)."""

    kl: np.ndarray
    agree: np.ndarray  # bool
    weights: np.ndarray | None
    ids: np.ndarray | None  # int64 group ids
    n_groups: int
    n_masked: int
    n_ignored: int
    # with groups: the groups (ids >= 0) of the samples masked or ignored, and how many of each
    side: tuple[np.ndarray, np.ndarray] | None
    dtype: np.dtype
    ce_reference: np.ndarray | None = None  # nats
    ce_candidate: np.ndarray | None = None
    delta_p: np.ndarray | None = None
    reference_correct: np.ndarray | None = None  # bool
    candidate_correct: np.ndarray | None = None

    @property
    def has_target(self) -> bool:
        return self.ce_reference is not None


def _side_counts(
    ids: np.ndarray, masked: np.ndarray | None, ignored: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(the sorted groups of the samples masked or ignored, a (2, k) count of those samples in
    each). The ids of samples left out are not checked (``check_groups``): a negative one
    counts in no group; any other counts in its own, kept sparse, so that a group's counts do
    not depend on which batch first scored one of its samples."""
    flat = ids.reshape(-1)
    found, rows = [], []
    for row, flags in enumerate((masked, ignored)):
        if flags is not None:
            g = flat[flags.reshape(-1)]
            g = g[g >= 0]
            found.append(g)
            rows.append(np.full(g.size, row))
    if not found:
        return np.empty(0, np.int64), np.zeros((2, 0), np.int64)
    groups, where = np.unique(np.concatenate(found), return_inverse=True)
    counts = np.zeros((2, groups.size), np.int64)
    np.add.at(counts, (np.concatenate(rows), where), 1)
    return groups.astype(np.int64), counts


def _scan(
    opts: _Options,
    reference: Any,
    candidate: Any,
    target: Any,
    where: Any,
    sample_weight: Any,
    groups: Any,
) -> _Samples:
    """Check the inputs, run the kernel, and keep the figures of the samples scored."""
    ref_arr = v.as_float_array(reference, "reference", half=True)
    cand_arr = v.as_float_array(candidate, "candidate", half=True)
    v.same_shape(ref_arr, cand_arr, "reference", "candidate")
    ref_rows = v.class_axis_last(ref_arr, opts.axis, "reference")
    cand_rows = v.class_axis_last(cand_arr, opts.axis, "candidate")
    batch_shape, n_classes = ref_rows.shape[:-1], ref_rows.shape[-1]
    if n_classes == 0:
        raise ValueError(
            f"reference and candidate have no classes along axis {opts.axis} (shape "
            f"{ref_arr.shape}): there is nothing to compare"
        )
    has_ignore, ignore_value = v.check_ignore_index(opts.ignore_index)
    weights = v.check_sample_weight(sample_weight, batch_shape)
    mask = v.check_where(where, batch_shape, like=ref_rows[..., 0])
    dtype = v.result_dtype(ref_arr.dtype, cand_arr.dtype)
    eps = v.check_eps("auto", dtype)

    labels = None
    if target is not None:
        target_arr = v.as_array(target, "target")
        if target_arr.shape != batch_shape:
            raise ValueError(
                f"target has shape {target_arr.shape}; expected class indices of shape "
                f"{batch_shape} (the predictions' shape {ref_arr.shape} without the class axis "
                f"{opts.axis})"
            )
        labels = v.as_label_array(target_arr, "target")
        v.explain_labels(labels, "target", n_classes, has_ignore, ignore_value, mask)
    elif has_ignore:
        raise ValueError(
            "ignore_index applies to the class indices of target=, which was not given"
        )

    masked = None if mask is None else ~mask
    ignored = None
    keep = mask
    if labels is not None and has_ignore:
        ignored = labels == ignore_value
        if masked is not None:
            ignored &= ~masked
        keep = ~ignored if keep is None else keep & ~ignored
    ids: np.ndarray | None = None
    count = 0
    if groups is not None:
        ids, count = v.check_groups(groups, batch_shape, None, "mean", keep)

    def explain() -> None:
        at = None if keep is None else np.expand_dims(keep, int(opts.axis) % max(ref_arr.ndim, 1))
        if not opts.from_logits:
            v.explain_probabilities(ref_arr, "reference", logits_hint=True, where=at)
            v.explain_probabilities(cand_arr, "candidate", logits_hint=True, where=at)

    top = np.empty((*batch_shape, 2), np.int64)
    ops: list[np.ndarray] = [ref_rows, cand_rows]
    if labels is not None:
        at_y = np.empty((*batch_shape, 2), np.float64)
        ops += [labels.astype(np.int64, copy=False), top, at_y]
        family, name, writes = kernels.TARGET_KERNELS, "compare_target", 2
    else:
        ops.append(top)
        family, name, writes = kernels.KERNELS, "compare", 1
    kind = "logits" if opts.from_logits else "probs"
    params = [eps, np.empty(0, np.float64), 0.0, opts.ln_base]
    tempered = [opts.from_logits, opts.from_logits]
    kl = _launch.run_rows(
        family[f"{name}_{kind}"], ops, params, None, "none", _F64, explain, None, tempered,
        opts.temperature, keep, writes=writes,
    )  # fmt: skip

    sel = None if keep is None else keep.reshape(-1)

    def kept(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1) if a.ndim == len(batch_shape) else a.reshape(-1, a.shape[-1])
        return flat if sel is None else flat[sel]

    tops = kept(top)
    samples = _Samples(
        kl=kept(np.asarray(kl, np.float64)),
        agree=tops[:, 0] == tops[:, 1],
        weights=None if weights is None else kept(np.broadcast_to(weights, batch_shape)),
        ids=None if ids is None else kept(ids),
        n_groups=count,
        n_masked=0 if masked is None else int(np.count_nonzero(masked)),
        n_ignored=0 if ignored is None else int(np.count_nonzero(ignored)),
        side=None if ids is None else _side_counts(ids, masked, ignored),
        dtype=dtype,
    )
    if labels is not None:
        y = kept(labels).astype(np.int64)
        values = kept(at_y)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            if opts.from_logits:  # log-probabilities
                ce = -values
                p = np.exp(values)
            else:  # probabilities, clipped inside the log as cross_entropy clips them
                p = values
                ce = -np.log(np.clip(values, eps, 1.0 - eps))
        samples.ce_reference, samples.ce_candidate = ce[:, 0], ce[:, 1]
        samples.delta_p = p[:, 1] - p[:, 0]
        samples.reference_correct = tops[:, 0] == y
        samples.candidate_correct = tops[:, 1] == y
    return samples


def _channel(s: _Samples, name: str, ln_base: float) -> np.ndarray | None:
    """One channel's float64 values (weighted) whose exact sums a comparison keeps; None for a
    figure of the target when there is none (its sums stay 0)."""
    w = s.weights
    if name == "weight":
        return np.ones(s.kl.shape[0]) if w is None else np.asarray(w, np.float64)
    figures: dict[str, Callable[[], Any]] = {
        "kl": lambda: s.kl,
        "kl_squared": lambda: s.kl * s.kl,
        "agree": lambda: s.agree,
        "ce_reference_nats": lambda: s.ce_reference,
        "ce_candidate_nats": lambda: s.ce_candidate,
        "ce_reference": lambda: np.divide(s.ce_reference, ln_base),  # type: ignore[arg-type]
        "ce_candidate": lambda: np.divide(s.ce_candidate, ln_base),  # type: ignore[arg-type]
        "delta_p": lambda: s.delta_p,
        "delta_p_squared": lambda: s.delta_p * s.delta_p,  # type: ignore[operator]
        "reference_correct": lambda: s.reference_correct,
        "candidate_correct": lambda: s.candidate_correct,
    }
    if _C[name] >= _C["ce_reference"] and not s.has_target:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.asarray(figures[name](), np.float64)
        return values if w is None else values * w


# --- exact, mergeable sums -----------------------------------------------------------------------


class _Sums:
    """Exact sums of the channels, per group: one superaccumulator per channel without groups,
    the compact group states of ``_kernels.groupsum`` (channels in pairs) with them; counts of
    samples scored, masked and ignored (``table``). With groups, ``counts`` holds the scored
    ones, per group seen scored, and ``side_ids``/``side`` the masked and ignored ones of every
    group that had any (sparse: a group may have those before, or without, a sample scored)."""

    def __init__(self, grouped: bool) -> None:
        self.grouped = grouped
        self.accs = np.zeros((len(_CHANNELS), ACC_LEN), np.int64)
        self.states: list[tuple[np.ndarray, np.ndarray]] = [
            (np.empty(0, np.int64), np.empty(0, np.int64)) for _ in range(len(_CHANNELS) // 2)
        ]
        self.counts = np.zeros((3, 1 if not grouped else 0), np.int64)  # scored, masked, ignored
        self.side_ids = np.empty(0, np.int64)
        self.side = np.zeros((2, 0), np.int64)

    @property
    def n_groups(self) -> int:
        return self.counts.shape[1]

    def _grow(self, n: int) -> None:
        if n > self.counts.shape[1]:
            grown = np.zeros((3, n), np.int64)
            grown[:, : self.counts.shape[1]] = self.counts
            self.counts = grown

    def add(self, s: _Samples, ln_base: float) -> None:
        if not self.grouped:
            for k, name in enumerate(_CHANNELS):
                values = _channel(s, name, ln_base)
                if values is not None:
                    acc_add_array(self.accs[k], values)
            self.counts[0, 0] += s.kl.shape[0]
            self.counts[1, 0] += s.n_masked
            self.counts[2, 0] += s.n_ignored
            return
        assert s.ids is not None and s.side is not None
        n = s.n_groups
        self._grow(n)
        self.counts[0, :n] += np.bincount(s.ids, minlength=n)[:n]
        self._add_side(*s.side)
        for k, (keys, vals) in enumerate(self.states):
            first = _channel(s, _CHANNELS[2 * k], ln_base)
            second = _channel(s, _CHANNELS[2 * k + 1], ln_base)
            if first is None or second is None:
                continue
            new_keys, new_vals, _ = group_state(s.ids, first, second, n)
            self.states[k] = merge_states(keys, vals, new_keys, new_vals)

    def merge(self, other: _Sums) -> None:
        if not self.grouped:
            for k in range(len(_CHANNELS)):
                acc_merge(self.accs[k], other.accs[k])
            self.counts += other.counts
            return
        self._grow(other.n_groups)
        for k, (keys, vals) in enumerate(other.states):
            self.states[k] = merge_states(*self.states[k], keys, vals)
        self.counts[:, : other.n_groups] += other.counts
        self._add_side(other.side_ids, other.side)

    def _add_side(self, ids: np.ndarray, counts: np.ndarray) -> None:
        if ids.size == 0:
            return
        groups, where = np.unique(np.concatenate([self.side_ids, ids]), return_inverse=True)
        both = np.concatenate([self.side, counts], axis=1)
        side = np.stack([np.bincount(where, row, groups.size) for row in both]).astype(np.int64)
        self.side_ids, self.side = groups.astype(np.int64), side

    def table(self) -> np.ndarray:
        """The (3, groups) samples scored, masked and ignored; the groups are those with a
        sample scored (with groups: 0 .. the largest such id)."""
        if not self.grouped:
            return self.counts
        out = self.counts.copy()
        inside = self.side_ids < self.n_groups
        out[1:, self.side_ids[inside]] += self.side[:, inside]
        return out

    def values(self) -> np.ndarray:
        """The (channels, groups) sums, each rounded once to float64."""
        if not self.grouped:
            return np.array([[acc_value(self.accs[k])] for k in range(len(_CHANNELS))])
        n = self.n_groups
        out = np.empty((len(_CHANNELS), n))
        for k, (keys, vals) in enumerate(self.states):
            state_sums(keys, vals, out[2 * k], out[2 * k + 1])
        return out


# --- quantiles, minimum, maximum -----------------------------------------------------------------


def _sorted_groups(values: np.ndarray, ids: np.ndarray | None, n: int) -> tuple[np.ndarray, ...]:
    """(values sorted within each group, each group's start, each group's count)."""
    if ids is None:
        return np.sort(values), np.zeros(1, np.int64), np.array([values.shape[0]], np.int64)
    order = np.lexsort((values, ids))
    counts = np.bincount(ids, minlength=n).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return values[order], starts, counts


def _exact_quantiles(
    values: np.ndarray, ids: np.ndarray | None, n: int
) -> tuple[dict[float, np.ndarray], np.ndarray, np.ndarray]:
    """Per group: NumPy's ``quantile(method="linear")`` of each of ``QUANTILES`` (NaN where the
    group holds a NaN or nothing), the minimum and the maximum, computed on the sorted values
    with NumPy's own arithmetic (so the same bits as ``np.quantile`` of the group's values)."""
    srt, starts, counts = _sorted_groups(values, ids, n)
    groups = counts.shape[0]
    has_nan = np.zeros(groups, bool)
    if srt.size:
        last = np.where(counts > 0, starts + counts - 1, 0)
        has_nan = np.isnan(srt[last]) & (counts > 0)  # NaN sorts last within its group
    empty = counts == 0
    out: dict[float, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        for q in QUANTILES:
            # numpy.lib._function_base_impl._quantile, method "linear": virtual index (n - 1) q,
            # then _lerp of its neighbours with gamma its fractional part.
            virtual = (counts - 1) * q
            lo = np.floor(virtual).astype(np.int64)
            lo_c = np.clip(lo, 0, np.maximum(counts - 1, 0))
            hi_c = np.clip(lo + 1, 0, np.maximum(counts - 1, 0))
            gamma = virtual - lo
            if srt.size:
                a = srt[np.where(empty, 0, starts + lo_c)]
                b = srt[np.where(empty, 0, starts + hi_c)]
            else:
                a = b = np.full(groups, np.nan)
            diff = b - a
            res = a + diff * gamma
            res = np.where(gamma >= 0.5, b - diff * (1 - gamma), res)
            res = np.where(empty | has_nan, np.nan, res)
            out[q] = res
        if srt.size:
            mins = np.where(empty | has_nan, np.nan, srt[np.where(empty, 0, starts)])
            maxs = np.where(empty, np.nan, srt[np.where(empty, 0, starts + counts - 1)])
        else:
            mins = maxs = np.full(groups, np.nan)
    return out, mins, maxs


class _Sketches:
    """Mergeable quantile sketches of a streamed figure, one per group: DataSketches' REQ sketch
    in high-rank-accuracy mode (accurate at the tail, where the interesting quantiles of a
    divergence lie), with each group's exact minimum, maximum and count of NaN (which the
    sketch leaves out; a NaN makes the group's quantiles NaN)."""

    def __init__(self) -> None:
        self.sketches: list[Any] = []
        self.minimum = np.empty(0)
        self.maximum = np.empty(0)
        self.nans = np.empty(0, np.int64)

    @staticmethod
    def _req() -> Any:
        try:
            from datasketches import req_floats_sketch
        except ImportError:
            raise ImportError(
                "a streamed comparison's quantiles need Apache DataSketches: "
                "pip install 'fastce[compare]' (or pip install datasketches)"
            ) from None
        return req_floats_sketch

    def _grow(self, n: int) -> None:
        if n > len(self.sketches):
            req = self._req()
            k = len(self.sketches)
            self.sketches += [req(SKETCH_K, True) for _ in range(n - k)]
            self.minimum = np.concatenate([self.minimum, np.full(n - k, np.inf)])
            self.maximum = np.concatenate([self.maximum, np.full(n - k, -np.inf)])
            self.nans = np.concatenate([self.nans, np.zeros(n - k, np.int64)])

    def add(self, values: np.ndarray, ids: np.ndarray | None, n: int) -> None:
        self._grow(max(n, 1))
        srt, starts, counts = _sorted_groups(values, ids, max(n, 1))
        for g in np.flatnonzero(counts):
            part = srt[starts[g] : starts[g] + counts[g]]
            finite = part[~np.isnan(part)]
            self.nans[g] += part.size - finite.size
            if finite.size:
                self.sketches[g].update(finite.astype(np.float32))
                self.minimum[g] = min(self.minimum[g], finite[0])
                self.maximum[g] = max(self.maximum[g], finite[-1])

    def merge(self, other: _Sketches) -> None:
        self._grow(len(other.sketches))
        for g, sketch in enumerate(other.sketches):
            if not sketch.is_empty():
                self.sketches[g].merge(sketch)
        n = len(other.sketches)
        self.minimum[:n] = np.minimum(self.minimum[:n], other.minimum)
        self.maximum[:n] = np.maximum(self.maximum[:n], other.maximum)
        self.nans[:n] += other.nans

    def figures(self, n: int) -> tuple[dict[float, Any], dict[float, Any], np.ndarray, np.ndarray]:
        self._grow(max(n, 1))
        quantiles = {q: np.full(len(self.sketches), np.nan) for q in QUANTILES}
        errors = {q: np.full(len(self.sketches), np.nan) for q in QUANTILES}
        for g, sketch in enumerate(self.sketches):
            if sketch.is_empty() or self.nans[g]:
                continue
            for q in QUANTILES:
                quantiles[q][g] = sketch.get_quantile(q)
                lo = sketch.get_rank_lower_bound(q, 2)
                hi = sketch.get_rank_upper_bound(q, 2)
                errors[q][g] = max(q - lo, hi - q, 0.0)
        empty = np.array([s.is_empty() for s in self.sketches])
        bad = empty | (self.nans > 0)  # no values, or a NaN among them
        mins = np.where(bad, np.nan, self.minimum)
        maxs = np.where(bad, np.nan, self.maximum)
        return quantiles, errors, mins, maxs

    def to_parts(self) -> dict[str, Any]:
        return {
            "sketches": [bytes(s.serialize()) for s in self.sketches],
            "minimum": self.minimum,
            "maximum": self.maximum,
            "nans": self.nans,
        }

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> _Sketches:
        self = cls()
        if parts["sketches"]:
            req = self._req()
            self.sketches = [req.deserialize(b) for b in parts["sketches"]]
        self.minimum = np.asarray(parts["minimum"], np.float64)
        self.maximum = np.asarray(parts["maximum"], np.float64)
        self.nans = np.asarray(parts["nans"], np.int64)
        return self


# --- the result ----------------------------------------------------------------------------------


def _distribution(
    sums: np.ndarray,
    counts: np.ndarray,
    name: str,
    quantiles: dict[float, Any],
    minimum: Any,
    maximum: Any,
    method: str,
    rank_error: dict[float, Any],
    scalar: Callable[[np.ndarray], Any],
) -> Distribution:
    """A figure's Distribution from its exact sums (weighted sum of the values, of their
    squares, of the weights) and its order statistics."""
    w, s, s2 = sums[_C["weight"]], sums[_C[name]], sums[_C[name + "_squared"]]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = s / w
        second = s2 / w
        variance = np.maximum(second - mean * mean, 0.0)
        n = counts.astype(np.float64)
        standard_error = np.where(n > 1, np.sqrt(variance / np.maximum(n - 1, 1)), np.nan)
        rms = np.sqrt(second)
    return Distribution(
        mean=scalar(mean),
        standard_error=scalar(standard_error),
        rms=scalar(rms),
        quantiles={q: scalar(x) for q, x in quantiles.items()},
        minimum=scalar(minimum),
        maximum=scalar(maximum),
        method=method,
        rank_error={q: scalar(np.asarray(x, np.float64)) for q, x in rank_error.items()},
    )


def _result(
    sums: _Sums,
    opts: _Options,
    dtype: np.dtype,
    has_target: bool,
    orders: dict[str, tuple[dict[float, Any], dict[float, Any], Any, Any]],
    method: str,
    grouped: bool,
) -> ComparisonResult:
    values = sums.values()
    counts = sums.table()

    def scalar(a: Any, of: np.dtype = dtype) -> Any:
        arr = np.asarray(a, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = arr.astype(of)
        return cast if grouped else of.type(cast.reshape(-1)[0])

    def rate(a: Any) -> Any:  # a fraction of the samples: float64 whatever the input
        return scalar(a, _F64)

    def count(a: np.ndarray) -> Any:
        return a.copy() if grouped else int(a[0])

    w = values[_C["weight"]]

    def mean(name: str) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return values[_C[name]] / w

    def distribution(name: str) -> Distribution:
        q, err, lo, hi = orders[name]
        return _distribution(values, counts[0], name, q, lo, hi, method, err, scalar)

    extra: dict[str, Any] = {}
    if has_target:
        ce_ref, ce_cand = mean("ce_reference"), mean("ce_candidate")
        with np.errstate(over="ignore", invalid="ignore"):
            ppl_ref = np.exp(mean("ce_reference_nats"))
            ppl_cand = np.exp(mean("ce_candidate_nats"))
            extra = {
                "reference_cross_entropy": scalar(ce_ref),
                "candidate_cross_entropy": scalar(ce_cand),
                "cross_entropy_difference": scalar(ce_cand - ce_ref),
                "reference_perplexity": scalar(ppl_ref),
                "candidate_perplexity": scalar(ppl_cand),
                "perplexity_ratio": scalar(ppl_cand / ppl_ref),
                "delta_p": distribution("delta_p"),
                "reference_top1_correct": rate(mean("reference_correct")),
                "candidate_top1_correct": rate(mean("candidate_correct")),
            }
    return ComparisonResult(
        kl=distribution("kl"),
        top1_agreement=rate(mean("agree")),
        n_samples=count(counts[0]),
        n_masked=count(counts[1]),
        n_ignored=count(counts[2]),
        unit=opts.unit,
        n_groups=sums.n_groups if grouped else None,
        **extra,
    )


def _clamped(kl: np.ndarray) -> np.ndarray:
    """Per-sample KL with a rounding below zero counted as 0.0 (NaN stays NaN)."""
    return np.where(kl < 0.0, 0.0, kl)


# --- the public API ------------------------------------------------------------------------------


def compare(
    reference: Any,
    candidate: Any,
    target: Any = None,
    *,
    from_logits: bool,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    ignore_index: int | None = None,
    sample_weight: Any = None,
    temperature: float = 1.0,
    groups: Any = None,
) -> ComparisonResult:
    r"""Compare a candidate model's predictions with a reference model's, sample by sample.

    For each sample (a distribution along ``axis``) of the reference ``P`` and the candidate
    ``Q``, and its target class ``y`` when ``target`` is given:

    .. math::

        \mathrm{KL}(P \,\|\, Q) = \sum_c p_c \log \frac{p_c}{q_c}, \qquad
        \Delta p = q_y - p_y, \qquad \mathrm{CE}_P = -\log p_y, \quad \mathrm{CE}_Q = -\log q_y

    and whether ``argmax P == argmax Q`` (and ``== y``). The two arrays (and the labels) are
    read in one pass, with no temporary of the input's size.

    Parameters
    ----------
    reference, candidate : array_like
        The two models' predictions, the same shape, classes along ``axis``: logits
        (``from_logits=True``) or probabilities (``from_logits=False``). float64, float32,
        float16 or bfloat16 (read in place, as float32).
    target : array_like of int, optional
        Class indices, the predictions' shape without ``axis``: adds each model's
        cross-entropy and perplexity, Δp and the top-class-is-target rates.
    from_logits : bool
        Required: ``True`` when both hold logits, ``False`` when both hold probabilities.
    axis : int
        The class axis.
    base : float, optional
        Unit of the KL and cross-entropy figures (None: nats; 2: bits).
    where : array_like of bool, optional
        The samples to score (broadcast to the samples' shape); the others leave every figure.
    ignore_index : int, optional
        Samples whose target is this value leave every figure (counted as ignored).
    sample_weight : array_like, optional
        Weights of the samples for every mean and rate (quantiles, minimum and maximum are of
        the samples scored, unweighted).
    temperature : float
        Both models' logits enter as ``x / temperature`` (logits only).
    groups : array_like of int, optional
        Group ids ``0..G-1`` of the samples: every figure becomes an array of G entries, each
        that group's alone.

    Returns
    -------
    ComparisonResult
        ``kl`` (a ``Distribution``: mean, standard error, RMS, quantiles 50/90/95/99/99.9 %,
        minimum, maximum), ``top1_agreement``, with a target each model's cross-entropy and
        perplexity, their difference and ratio, ``delta_p`` and the two top-class-is-target
        rates, and the counts; ``to_dict()`` gives plain floats, its repr a table.

    Notes
    -----
    Means, rates and counts are exact sums rounded once (so ``kl.mean`` has the bits of
    ``kl_divergence(reference, candidate, from_logits=..., target_from_logits=...,
    reduction="mean")`` over the same samples), in the result dtype (float32 for float32 or
    half-precision input; the rates in float64). The standard error of a mean is
    ``sqrt(var / (n - 1))`` with ``var`` the weighted variance of the samples and ``n`` their
    number. Quantiles are NumPy's
    ``quantile(method="linear")`` of the float64 per-sample values, rounded once; a KL rounded
    below zero counts as 0.0 there and in the minimum and maximum. A NaN in a sample's input
    makes the figures that include it NaN.

    Examples
    --------
    >>> import numpy as np, fastce
    >>> ref = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]])
    >>> cand = np.array([[1.9, 1.1, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 1.5]])
    >>> r = fastce.compare(ref, cand, np.array([0, 1, 2]), from_logits=True)
    >>> r.n_samples, round(float(r.top1_agreement), 4)
    (3, 0.6667)
    >>> float(r.kl.mean) == float(fastce.kl_divergence(
    ...     ref, cand, from_logits=True, target_from_logits=True, reduction="mean"))
    True
    >>> round(float(r.candidate_cross_entropy - r.reference_cross_entropy), 4)
    -0.1443
    """
    opts = _Options.check(from_logits, axis, base, ignore_index, temperature)
    s = _scan(opts, reference, candidate, target, where, sample_weight, groups)
    grouped = groups is not None
    sums = _Sums(grouped)
    sums.add(s, opts.ln_base)
    orders: dict[str, Any] = {}
    figures = {"kl": _clamped(s.kl)}
    if s.delta_p is not None:
        figures["delta_p"] = s.delta_p
    n = sums.n_groups  # (1 without groups)
    for name, vals in figures.items():
        q, lo, hi = _exact_quantiles(vals, s.ids, n)
        orders[name] = (q, {x: np.zeros(n) for x in QUANTILES}, lo, hi)
    return _result(sums, opts, s.dtype, s.has_target, orders, "exact", grouped)


class Comparison:
    """``compare`` over data that arrives in batches (files larger than memory, a cluster).

    ``update`` each batch, ``merge`` comparisons of other batches (in any order or tree),
    ``result()`` at the end. Means, standard errors, rates, counts, minima and maxima are
    exact, and the same bits however the data was split; quantiles come from mergeable REQ
    sketches (Apache DataSketches, ``pip install 'fastce[compare]'``) in high-rank-accuracy
    mode, and the result gives each quantile's rank-error bound. ``to_bytes``/``from_bytes``
    (and pickling) carry the state between processes.

    Parameters
    ----------
    from_logits, axis, base, ignore_index, temperature
        As in :func:`compare`, fixed for every batch.
    groups : bool
        Whether batches come with ``groups=`` ids (every figure then per group).

    Examples
    --------
    >>> import numpy as np, fastce
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 8))
    >>> cand = ref + 0.1 * rng.normal(size=(1000, 8))
    >>> c = fastce.Comparison(from_logits=True)
    >>> for part in range(4):
    ...     rows = slice(250 * part, 250 * (part + 1))
    ...     _ = c.update(ref[rows], cand[rows])
    >>> r = c.result()
    >>> bool(r.kl.mean == fastce.compare(ref, cand, from_logits=True).kl.mean)
    True
    >>> r.kl.method, r.n_samples
    ('req', 1000)
    """

    def __init__(
        self,
        *,
        from_logits: bool,
        axis: int = -1,
        base: float | None = None,
        ignore_index: int | None = None,
        temperature: float = 1.0,
        groups: bool = False,
    ) -> None:
        self._opts = _Options.check(from_logits, axis, base, ignore_index, temperature)
        self._grouped = v.check_bool(groups, "groups")
        self._sums = _Sums(self._grouped)
        _Sketches._req()  # (its quantiles need DataSketches: say so now, not mid-update)
        self._sketches = {"kl": _Sketches(), "delta_p": _Sketches()}
        self._dtype: np.dtype | None = None
        self._has_target: bool | None = None

    def update(
        self,
        reference: Any,
        candidate: Any,
        target: Any = None,
        *,
        where: Any = None,
        sample_weight: Any = None,
        groups: Any = None,
    ) -> Comparison:
        """Add a batch (arguments as in :func:`compare`); returns the comparison."""
        self._add(reference, candidate, target, where, sample_weight, groups)
        return self

    def _add(
        self,
        reference: Any,
        candidate: Any,
        target: Any,
        where: Any,
        sample_weight: Any,
        groups: Any,
    ) -> _Samples:
        """``update``'s work; returns the batch's per-sample figures (of the samples kept),
        which ``fastce compare --plot`` bins as they stream past."""
        if self._grouped != (groups is not None):
            raise ValueError(
                "this Comparison was made with groups=" + str(self._grouped) + ": "
                + ("every update needs groups=" if self._grouped else "updates take no groups=")
            )  # fmt: skip
        if self._has_target is not None and self._has_target != (target is not None):
            raise ValueError(
                "every update of a Comparison gives a target or none does "
                f"(the first {'did' if self._has_target else 'did not'})"
            )
        s = _scan(self._opts, reference, candidate, target, where, sample_weight, groups)
        self._note(s.dtype, s.has_target)
        self._sums.add(s, self._opts.ln_base)
        n = max(s.n_groups, 1)
        self._sketches["kl"].add(_clamped(s.kl), s.ids, n)
        if s.delta_p is not None:
            self._sketches["delta_p"].add(s.delta_p, s.ids, n)
        return s

    def _note(self, dtype: np.dtype | None, has_target: bool | None) -> None:
        if dtype is not None:
            self._dtype = dtype if self._dtype is None else np.promote_types(self._dtype, dtype)
        if has_target is not None:
            self._has_target = has_target

    def _options(self) -> tuple[Any, ...]:
        o = self._opts
        return (o.from_logits, o.axis, o.ln_base, o.ignore_index, o.temperature, self._grouped)

    def merge(self, other: Comparison) -> Comparison:
        """Add ``other``'s batches (a comparison with the same options); returns this one."""
        if not isinstance(other, Comparison):
            raise TypeError(f"merge takes a Comparison; got {type(other).__name__}")
        if other._options() != self._options():
            raise ValueError("merge takes a Comparison made with the same options")
        if (
            self._has_target is not None
            and other._has_target is not None
            and self._has_target != other._has_target
        ):
            raise ValueError("merge takes a Comparison whose batches had targets as this one's")
        self._sums.merge(other._sums)
        for name, sketch in self._sketches.items():
            sketch.merge(other._sketches[name])
        self._note(other._dtype, other._has_target)
        return self

    def result(self) -> ComparisonResult:
        """The figures of every batch so far."""
        n = self._sums.n_groups  # (1 without groups)
        orders = {}
        for name, sketch in self._sketches.items():
            q, err, lo, hi = sketch.figures(n)
            orders[name] = ({k: x[:n] for k, x in q.items()}, {k: x[:n] for k, x in err.items()},
                            lo[:n], hi[:n])  # fmt: skip
        dtype = self._dtype if self._dtype is not None else _F64
        return _result(
            self._sums, self._opts, dtype, bool(self._has_target), orders, "req", self._grouped
        )

    # --- state -----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state, exactly (a later ``from_bytes`` continues where this one stands)."""
        o = self._opts
        options = {
            "from_logits": o.from_logits,
            "axis": o.axis,
            "base": o.base,
            "ignore_index": o.ignore_index,
            "temperature": o.temperature,
            "groups": self._grouped,
        }
        # as an Accumulator keeps its options: NumPy scalars as Python numbers, floats exactly
        meta = {
            "format": _FORMAT,
            **{name: _encode(value, name) for name, value in options.items()},
            "dtype": None if self._dtype is None else self._dtype.str,
            "has_target": self._has_target,
        }
        sums = self._sums
        arrays: dict[str, np.ndarray] = {
            "accs": sums.accs,
            "counts": sums.counts,
            "side_ids": sums.side_ids,
            "side": sums.side,
        }
        for k, (keys, vals) in enumerate(self._sums.states):
            arrays[f"keys{k}"], arrays[f"vals{k}"] = keys, vals
        for name, sketch in self._sketches.items():
            parts = sketch.to_parts()
            for part in ("minimum", "maximum", "nans"):
                arrays[f"{name}_{part}"] = parts[part]
            blobs = parts["sketches"]
            arrays[f"{name}_lengths"] = np.array([len(b) for b in blobs], np.int64)
            arrays[f"{name}_blob"] = np.frombuffer(b"".join(blobs), np.uint8)
        buf = io.BytesIO()
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Comparison:
        """A comparison from ``to_bytes``; a ValueError for anything else."""
        try:
            z = np.load(io.BytesIO(data), allow_pickle=False)
            meta = json.loads(bytes(z["meta"]).decode())
        except Exception as exc:
            raise ValueError(f"not the bytes of a fastce Comparison ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise ValueError(f"a Comparison state of format {found!r}; expected {_FORMAT}")
        try:
            return cls._from_state(z, meta)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            IndexError,
            OverflowError,
            RuntimeError,  # a sketch's own check of its bytes
        ) as exc:
            raise ValueError(
                f"a Comparison state is corrupt: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _from_state(cls, z: Any, meta: dict[str, Any]) -> Comparison:
        names = ("from_logits", "axis", "base", "ignore_index", "temperature", "groups")
        self = cls(**{name: _decode(meta[name]) for name in names})
        dtype = meta["dtype"]
        self._dtype = None if dtype is None else np.dtype(dtype)
        if self._dtype is not None and self._dtype not in (np.float32, np.float64):
            raise ValueError(f"result dtype {dtype!r}")
        if meta["has_target"] not in (None, True, False):
            raise ValueError(f"has_target {meta['has_target']!r}")
        self._has_target = meta["has_target"]
        sums = self._sums
        sums.accs = np.array(z["accs"], np.int64)
        sums.counts = np.array(z["counts"], np.int64)
        accs = sums.accs
        if accs.shape != (len(_CHANNELS), ACC_LEN) or (np.abs(accs) > _BIN_LIMIT).any():
            raise ValueError(f"sums of shape {accs.shape} or out of range")
        if sums.counts.ndim != 2 or sums.counts.shape[0] != 3 or (sums.counts < 0).any():
            raise ValueError(f"counts of shape {sums.counts.shape} or below 0")
        if not self._grouped and sums.counts.shape[1] != 1:
            raise ValueError(f"counts of {sums.counts.shape[1]} groups without groups")
        sums.side_ids = np.array(z["side_ids"], np.int64)
        sums.side = np.array(z["side"], np.int64)
        k = sums.side_ids.size
        if (
            sums.side_ids.ndim != 1
            or sums.side.shape != (2, k)
            or (sums.side < 0).any()
            or (k and (sums.side_ids[0] < 0 or (np.diff(sums.side_ids) <= 0).any()))
            or (k and not self._grouped)
        ):
            raise ValueError(f"masked and ignored counts of shapes {sums.side.shape}, ids {k}")
        for k in range(len(sums.states)):
            keys, vals = np.array(z[f"keys{k}"], np.int64), np.array(z[f"vals{k}"], np.int64)
            if keys.ndim != 1 or keys.shape != vals.shape:
                raise ValueError(f"group sums of shapes {keys.shape} and {vals.shape}")
            if check_state(keys, vals, sums.n_groups) != -1:
                raise ValueError("malformed group sums")
            sums.states[k] = (keys, vals)
        for name in self._sketches:
            lengths = np.asarray(z[f"{name}_lengths"], np.int64)
            blob = bytes(z[f"{name}_blob"])
            if lengths.ndim != 1 or (lengths < 0).any() or int(lengths.sum()) != len(blob):
                raise ValueError(f"{name} sketches of lengths {lengths} in {len(blob)} bytes")
            parts = {p: z[f"{name}_{p}"] for p in ("minimum", "maximum", "nans")}
            if any(part.shape != lengths.shape for part in parts.values()):
                shapes = {p: part.shape for p, part in parts.items()}
                raise ValueError(f"{name} figures of shapes {shapes} for {lengths.size} sketches")
            ends = np.cumsum(lengths)
            blobs = [blob[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist(), strict=True)]
            self._sketches[name] = _Sketches.from_parts({"sketches": blobs, **parts})
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"state": self.to_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(Comparison.from_bytes(state["state"]).__dict__)

    def __repr__(self) -> str:
        return (
            f"Comparison(from_logits={self._opts.from_logits}, {int(self._sums.counts[0].sum())} "
            "samples)"
        )
