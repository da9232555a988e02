"""The table of measures: every public function, what it reads, how it ends, what checks it.

One entry per public function. The Accumulator, ``fastce.dask`` (its functions are generated
from this table and the public signatures), ``fastce warmup``, the test registry and the
benchmark read it; a function's options and their defaults are read from its signature, not
restated. Adding a measure is its kernel body in ``_kernels/``, its public function, its
reference, and one entry here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import losses, reference
from . import sklearn as _sklearn

__all__ = ["KERNELS_GENERATION", "MEASURES", "Measure"]

KERNELS_GENERATION = 2
"""Which generation of kernels computes the per-sample values. Raised whenever a change makes
any per-sample value differ in any bit: exact sums of different generations are not the same
sums, so accumulator states record it and refuse to mix generations. Generation 2: cross-entropy
and KL from float32 logits beside float64 target probabilities take the log-sum-exp at float64
precision (generation 1 took it at float32's, errors of up to ~1e-11)."""

Layout = Literal["rows", "elements", "labels", "transform"]
Ending = Literal["reduction", "perplexity", "log_loss", "array"]


@dataclass(frozen=True)
class Measure:
    """One public function.

    ``layout``: ``"rows"``, one value per sample with the classes along ``axis`` (the last
    positional array holds the predictions; a ``"target"`` may also be class indices);
    ``"elements"``, one value per element; ``"labels"``, scikit-learn's sample layout;
    ``"transform"``, one row of output (or one value) per row, no reduction.
    ``ending``: how the per-sample values end: ``reduction=`` (none/sum/mean), the exponential
    of the mean (``"perplexity"``), scikit-learn's ``normalize=`` (``"log_loss"``), or the array.
    ``accumulates``: the keyword arguments that make the function give its exact sum (an
    Accumulator, ``reduction="sum"`` in ``fastce.dask``); ``None`` for functions with no sum.
    """

    name: str
    function: Callable[..., Any]
    reference: Callable[..., Any]
    layout: Layout
    ending: Ending
    kernels: tuple[str, ...]
    peers: tuple[str, ...] = ()
    accumulates: dict[str, Any] | None = None
    accumulates_as: str = ""  # the measure whose state it keeps, when not its own
    required: tuple[str, ...] = ()
    keeps_class_axis: bool = False  # its output has the input's shape (a transform's rows)
    warm: tuple[dict[str, Any], ...] = field(default=({},))

    @property
    def arrays(self) -> tuple[str, ...]:
        """Its positional arrays, in order (from the signature)."""
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in params if p.kind in kinds)

    @property
    def arity(self) -> int:
        return len(self.arrays)

    @property
    def options(self) -> dict[str, Any]:
        """Its keyword options and their defaults (from the signature)."""
        params = inspect.signature(self.function).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    @property
    def labels_as_target(self) -> bool:
        """Its first array may be class indices (one per sample) instead of a distribution."""
        return self.layout == "rows" and self.arrays[0] == "target"


_SUM = {"reduction": "sum"}

MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure(
            "entropy",
            losses.entropy,
            reference.entropy,
            "rows",
            "reduction",
            kernels=("entropy",),
            peers=("scipy.stats.entropy", "scipy.special.entr", "torch.special.xlogy"),
            accumulates=_SUM,
            warm=({}, {"from_logits": True}),
        ),
        Measure(
            "cross_entropy",
            losses.cross_entropy,
            reference.cross_entropy,
            "rows",
            "reduction",
            kernels=("nll", "pair"),
            peers=("torch.nn.functional.cross_entropy", "scipy.special.log_softmax"),
            accumulates=_SUM,
            warm=({}, {"from_logits": True}),
        ),
        Measure(
            "perplexity",
            losses.perplexity,
            reference.perplexity,
            "rows",
            "perplexity",
            kernels=("nll", "pair"),
            peers=("torch.nn.functional.cross_entropy",),
            accumulates={"reduction": "sum", "base": None, "label_smoothing": 0.0},
            accumulates_as="cross_entropy",
            warm=(),  # cross_entropy's kernels
        ),
        Measure(
            "kl_divergence",
            losses.kl_divergence,
            reference.kl_divergence,
            "rows",
            "reduction",
            kernels=("pair",),
            peers=("scipy.special.rel_entr", "scipy.stats.entropy", "torch.nn.functional.kl_div"),
            accumulates=_SUM,
            warm=({}, {"from_logits": True}, {"from_logits": True, "target_from_logits": True}),
        ),
        Measure(
            "js_divergence",
            losses.js_divergence,
            reference.js_divergence,
            "rows",
            "reduction",
            kernels=("pair",),
            peers=("scipy.spatial.distance.jensenshannon",),
            accumulates=_SUM,
        ),
        Measure(
            "binary_cross_entropy",
            losses.binary_cross_entropy,
            reference.binary_cross_entropy,
            "elements",
            "reduction",
            kernels=("binary",),
            peers=(
                "torch.nn.functional.binary_cross_entropy",
                "torch.nn.functional.binary_cross_entropy_with_logits",
                "sklearn.metrics.log_loss",
            ),
            accumulates=_SUM,
            warm=({}, {"from_logits": True}),
        ),
        Measure(
            "log_loss",
            _sklearn.log_loss,
            reference.log_loss,
            "labels",
            "log_loss",
            kernels=("binary", "nll"),
            peers=("sklearn.metrics.log_loss",),
            accumulates={"normalize": False},
            required=("labels",),
        ),
        Measure(
            "logsumexp",
            losses.logsumexp,
            reference.logsumexp,
            "transform",
            "array",
            kernels=("logsumexp",),
            peers=("scipy.special.logsumexp", "torch.logsumexp"),
        ),
        Measure(
            "log_softmax",
            losses.log_softmax,
            reference.log_softmax,
            "transform",
            "array",
            kernels=("logsumexp",),
            keeps_class_axis=True,
            peers=("scipy.special.log_softmax", "torch.nn.functional.log_softmax"),
        ),
        Measure(
            "softmax",
            losses.softmax,
            reference.softmax,
            "transform",
            "array",
            kernels=("logsumexp",),
            keeps_class_axis=True,
            peers=("scipy.special.softmax", "torch.nn.functional.softmax"),
        ),
    )
}
"""Every public function of fastce that computes a measure, by name."""


def accumulated() -> dict[str, Measure]:
    """The measures an Accumulator follows (they have an exact sum); one with
    ``accumulates_as`` keeps that measure's sums (perplexity: cross-entropy in nats)."""
    return {name: m for name, m in MEASURES.items() if m.accumulates is not None}
