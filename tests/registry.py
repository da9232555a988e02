"""One registry of comparisons: every public function, its reference and how to build inputs.

Correctness tests and benchmarks both read it, so a new function is tested and benchmarked by
adding one entry (as numbagg's test/conftest.py does).

``make(rng, batch_shape, n_classes, dtype, variant)`` returns ``(args, kwargs)`` with the class
axis last; ``variants`` lists the option sets each function is exercised with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastce._measures import MEASURES, Measure


def probabilities(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Rows of a simplex with exact zeros, one-hot rows and tiny entries mixed in."""
    if shape[-1] == 0:
        return np.zeros(shape, dtype)
    alpha = rng.choice([0.05, 0.5, 2.0])
    p = rng.gamma(alpha, size=shape)
    p[rng.random(shape) < 0.1] = 0.0
    tiny = np.finfo(dtype).tiny
    p[rng.random(shape) < 0.05] = tiny * rng.choice([1e-3, 1.0, 1e3])
    flat = p.reshape(-1, shape[-1])
    onehot = rng.random(flat.shape[0]) < 0.1
    flat[onehot] = 0.0
    flat[onehot, rng.integers(0, shape[-1], onehot.sum())] = 1.0
    sums = flat.sum(axis=1, keepdims=True)
    empty = sums[:, 0] == 0
    flat[empty, 0] = 1.0
    sums[empty] = 1.0
    return (flat / sums).reshape(shape).astype(dtype)


def logits(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Logits at several scales, with -inf entries and one dominant logit in some rows."""
    scale = rng.choice([1.0, 30.0, 1e4 if np.dtype(dtype) == np.float32 else 1e6])
    x = rng.normal(0.0, 1.0, size=shape) * scale + rng.normal(0, 50)
    if shape[-1] > 1:
        x[rng.random(shape) < 0.03] = -np.inf
        flat = x.reshape(-1, shape[-1])
        dom = rng.random(flat.shape[0]) < 0.1
        finite = np.abs(flat[np.isfinite(flat)])
        flat[dom, 0] = finite.max(initial=0.0) + 100
        x = flat.reshape(shape)
    return x.astype(dtype)


def labels(rng: np.random.Generator, batch: tuple[int, ...], n_classes: int) -> np.ndarray:
    return rng.integers(0, max(n_classes, 1), size=batch)


def weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.random(shape) * 3
    w[rng.random(shape) < 0.1] = 0.0
    return w


@dataclass
class Entry:
    """One way of calling a public function: the table of measures gives the function, its
    reference and its layout; the entry says how to build inputs and which options to try."""

    name: str  # the measure, a key of fastce._measures.MEASURES
    make: Callable[..., tuple[tuple[Any, ...], dict[str, Any]]]
    variants: list[dict[str, Any]] = field(default_factory=lambda: [{}])

    @property
    def measure(self) -> Measure:
        return MEASURES[self.name]

    @property
    def fast(self) -> Callable[..., Any]:
        return self.measure.function

    @property
    def ref(self) -> Callable[..., Any]:
        return self.measure.reference

    @property
    def kind(self) -> str:
        """ "rows": one value per sample; "transform": same shape as x; "elementwise": per
        element."""
        if self.measure.layout == "elements":
            return "elementwise"
        return "transform" if self.measure.keeps_class_axis else "rows"

    @property
    def reduces(self) -> bool:
        return self.measure.ending != "array"


def _entropy(rng, batch, c, dtype, variant):
    x = (
        logits(rng, batch + (c,), dtype)
        if variant.get("from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    return (x,), dict(variant)


def _ce_labels(rng, batch, c, dtype, variant):
    variant = dict(variant)
    pred = (
        logits(rng, batch + (c,), dtype)
        if variant.get("from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    y = labels(rng, batch, c)
    if variant.pop("with_ignore", False):
        y[rng.random(batch) < 0.2] = -100
        variant["ignore_index"] = -100
    if variant.pop("with_class_weight", False):
        variant["class_weight"] = rng.random(c) * 2
    return (y, pred), variant


def _ce_soft(rng, batch, c, dtype, variant):
    variant = dict(variant)
    pred = (
        logits(rng, batch + (c,), dtype)
        if variant.get("from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    target = (
        logits(rng, batch + (c,), dtype)
        if variant.get("target_from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    if variant.pop("with_class_weight", False):
        variant["class_weight"] = rng.random(c) * 2
    return (target, pred), variant


def _pair(rng, batch, c, dtype, variant):
    p = (
        logits(rng, batch + (c,), dtype)
        if variant.get("target_from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    q = (
        logits(rng, batch + (c,), dtype)
        if variant.get("from_logits")
        else probabilities(rng, batch + (c,), dtype)
    )
    return (p, q), dict(variant)


def _bce(rng, batch, c, dtype, variant):
    shape = batch + (c,)
    variant = dict(variant)
    if variant.get("from_logits"):
        pred = (rng.normal(size=shape) * rng.choice([1.0, 20.0, 1e3])).astype(dtype)
    else:
        pred = probabilities(rng, shape, dtype) if c > 1 else rng.random(shape).astype(dtype)
    target = (rng.random(shape) < 0.5).astype(dtype)
    if variant.pop("soft_target", False):
        target = rng.random(shape).astype(dtype)
    if variant.pop("with_pos_weight", False):
        variant["pos_weight"] = rng.random(c) * 3
    return (target, pred), variant


def _transform(rng, batch, c, dtype, variant):
    return (logits(rng, batch + (c,), dtype),), dict(variant)


REGISTRY: dict[str, Entry] = {
    "entropy": Entry(
        "entropy",
        _entropy,
        [{}, {"from_logits": True}, {"base": 2}, {"from_logits": True, "temperature": 2.5}],
    ),
    "cross_entropy_labels": Entry(
        "cross_entropy",
        _ce_labels,
        [
            {},
            {"from_logits": True},
            {"from_logits": True, "label_smoothing": 0.1, "with_class_weight": True},
            {"from_logits": True, "with_ignore": True, "with_class_weight": True},
            {"eps": 0, "base": 2, "with_ignore": True},
            {"label_smoothing": 0.2, "with_class_weight": True},
            {"from_logits": True, "temperature": 0.7, "with_ignore": True},
        ],
    ),
    "cross_entropy_soft": Entry(
        "cross_entropy",
        _ce_soft,
        [
            {},
            {"from_logits": True},
            {"from_logits": True, "label_smoothing": 0.1, "with_class_weight": True},
            {"eps": 1e-6, "base": 10},
            {"target_from_logits": True, "with_class_weight": True},
            {
                "from_logits": True,
                "target_from_logits": True,
                "label_smoothing": 0.1,
                "with_class_weight": True,
            },
            {"target_from_logits": True, "temperature": 3.0},
        ],
    ),
    "kl_divergence": Entry(
        "kl_divergence",
        _pair,
        [
            {},
            {"from_logits": True},
            {"eps": 0, "base": 2},
            {"target_from_logits": True},
            {"target_from_logits": True, "from_logits": True, "base": 2},
            {"target_from_logits": True, "from_logits": True, "temperature": 2.0},
        ],
    ),
    "js_divergence": Entry(
        "js_divergence",
        _pair,
        [
            {},
            {"base": 2},
            {"from_logits": True},
            {"target_from_logits": True},
            {"target_from_logits": True, "from_logits": True},
            {"from_logits": True, "temperature": 0.5},
        ],
    ),
    "binary_cross_entropy": Entry(
        "binary_cross_entropy",
        _bce,
        [
            {},
            {"from_logits": True},
            {"from_logits": True, "with_pos_weight": True, "soft_target": True},
            {"eps": 0, "soft_target": True, "base": 2},
            {"from_logits": True, "temperature": 1.7, "soft_target": True},
        ],
    ),
    "logsumexp": Entry("logsumexp", _transform, [{}, {"temperature": 0.3}]),
    "log_softmax": Entry("log_softmax", _transform, [{}, {"temperature": 4.0}]),
    "softmax": Entry("softmax", _transform, [{}, {"temperature": 0.6}]),
}
