"""Side-by-side benchmark: fastce against every installed peer, on the same arrays, in one run.

Run it as ``python -m fastce.benchmark``, ``fastce bench`` or, from a checkout,
``python -m bench.compare`` (all three take the same options; ``--help`` lists them)::

    python -m bench.compare --json bench.json --plot bench.png
    python -m bench.compare --workloads W1a,W3 --repeat 11
    python -m bench.compare --memory-only          # peak extra memory of fastce, per workload
    python -m bench.compare --scale 0.01           # every workload 100x smaller: a smoke test

For each workload (``W1a`` ... ``W1f``, ``W2`` ... ``W9``; ``--help`` lists them) the inputs are
generated once with a fixed seed; fastce and each installed peer (eager PyTorch, torch.compile
and jax.jit, all at Numba's thread count and with the same reduction; SciPy, scikit-learn,
idiomatic NumPy) are called on them: a compiled peer's first call (its compile time, reported
apart), warm-up calls, then the median of ``--repeat`` timed calls. Every peer's value is
checked against fastce's (relative tolerance 1e-6 for float64 inputs, 1e-4 for float32). The
table gives the median time, the input read per second (bytes of all input arrays / time), the
ratio to fastce (peer time / fastce time) and, for fastce, the fraction of the machine's memory
read bandwidth, measured in the same run by a parallel Numba sum over a 512 MiB float64 array;
then, per workload, the fastest peer that agrees with fastce, compiled or not, and fastce's
speed-up over it.

Peers are optional: each is imported only when a workload needs it, and skipped when it is not
installed. matplotlib (``--plot``) is in the ``bench`` extra; PyTorch and jax are never
required.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

import fastce
from fastce._measures import MEASURES
from fastce.comparison import QUANTILES

__all__ = ["WORKLOADS", "main", "measure_bandwidth", "run"]

Inputs = dict[str, np.ndarray]
Call = Callable[[], Any]

# Relative agreement with fastce's value that a peer must reach (float64 / float32 inputs).
# (bfloat16: PyTorch computes in it and rounds its result to it, 2**-8 relative)
RTOL = {"float64": 1e-6, "float32": 1e-4, "bfloat16": 1e-2}

# The peers --peers can name (a workload's implementations name their library).
PEER_LIBRARIES = ["torch", "torch.compile", "jax", "scipy", "sklearn", "numpy"]

BANDWIDTH_BYTES = 512 * 2**20


# --------------------------------------------------------------------------------------------
# Peers, imported lazily


_MODULES: dict[str, Any] = {}


def _module(name: str) -> Any:
    """``importlib.import_module(name)``, or None when it is not installed (remembered)."""
    if name not in _MODULES:
        try:
            _MODULES[name] = importlib.import_module(name)
        except ImportError:
            _MODULES[name] = None
    return _MODULES[name]


def _torch() -> Any:
    torch = _module("torch")
    if torch is not None:
        # Same thread count as Numba's, so the comparison is core for core.
        torch.set_num_threads(numba.get_num_threads())
    return torch


def _torch_compile(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """``torch.compile(fn)`` with Inductor, or None without PyTorch. Compiles on its first call,
    which ``run_workload`` times apart (``Impl.compiles``)."""
    torch = _torch()  # Inductor's C++ kernels take their OpenMP thread count from torch's
    if torch is None or not hasattr(torch, "compile"):
        return None
    # Dynamo caches compiled graphs per code object, and after `recompile_limit` shapes a
    # function silently runs eagerly: a fresh cache per workload keeps each one compiled, once,
    # for its own shapes (dynamic=False), and fullgraph=True makes a graph break an error.
    torch._dynamo.reset()
    return torch.compile(fn, backend="inductor", dynamic=False, fullgraph=True)


# What _jax() did about XLA's CPU threads (printed with the table, kept in the JSON).
JAX_THREADS: dict[str, Any] = {}


def _jax() -> Any:
    """jax with float64 enabled, or None when it is not installed.

    XLA reads its CPU thread options once, when jax starts its backend: they are set in
    ``XLA_FLAGS`` to Numba's thread count before jax is first imported, unless the environment
    already sets them (or jax was imported earlier, when they can no longer change)."""
    if "jax" not in sys.modules and importlib.util.find_spec("jax") is not None:
        threads = numba.get_num_threads()
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" in flags or "xla_cpu_multi_thread_eigen" in flags:
            JAX_THREADS.update(threads=None, note=f"XLA_FLAGS from the environment: {flags}")
        else:
            eigen = "true" if threads > 1 else "false"
            ours = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
            os.environ["XLA_FLAGS"] = f"{flags} {ours}".strip()
            JAX_THREADS.update(threads=threads, note=f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    elif "jax" in sys.modules and not JAX_THREADS:
        JAX_THREADS.update(threads=None, note="jax imported before the benchmark: XLA's defaults")
    jax = _module("jax")
    if jax is not None:
        # float64 inputs stay float64 (by default jax makes them float32); float32 inputs
        # stay float32 either way.
        jax.config.update("jax_enable_x64", True)
    return jax


def _jax_jit(fn: Callable[..., Any], *arrays: np.ndarray) -> Call | None:
    """A call of ``jax.jit(fn)`` on ``arrays`` moved to the device beforehand (the analogue of
    ``torch.from_numpy``), waiting for the result; None without jax. Compiles on its first
    call."""
    jax = _jax()
    if jax is None:
        return None
    f = jax.jit(fn)
    args = [jax.device_put(a) for a in arrays]
    return lambda: jax.block_until_ready(f(*args))


# --------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Impl:
    """One implementation of a workload: ``build(inputs)`` does everything that must stay out
    of the timed region (importing the library, ``torch.from_numpy``, index arrays) and returns
    the timed call, or None when the library is not installed."""

    label: str
    library: str
    build: Callable[[Inputs], Call | None]
    compiles: bool = False  # the first call compiles: timed apart, before the warm-up calls


# An implementation's formula is a function whose parameters name the inputs it takes (after
# the library's module, for the peers that are handed theirs), as pytest's fixtures do; the
# constructors below add what its library needs around it.


def _input_names(fn: Callable[..., Any], module_first: bool) -> list[str]:
    names = list(inspect.signature(fn).parameters)
    return names[1:] if module_first else names


def _plain(label: str, library: str, fn: Callable[..., Any]) -> Impl:
    """fastce or NumPy (always installed): the timed call is ``fn(*arrays)``."""
    names = _input_names(fn, module_first=False)
    return Impl(label, library, lambda d: functools.partial(fn, *[d[name] for name in names]))


def _fastce(measure: str, inputs: str, label: str = "fastce", **options: Any) -> Impl:
    """fastce's function for ``measure`` (a key of the table of measures) on ``inputs`` (one
    letter an input), with ``options``: the timed call is ``function(*arrays, **options)``."""
    function = MEASURES[measure].function
    return Impl(
        label, "fastce", lambda d: functools.partial(function, *[d[n] for n in inputs], **options)
    )


def _imported(label: str, module: str, fn: Callable[..., Any]) -> Impl:
    """An optional library's ``module`` (the library is its package: ``scipy.special`` is
    scipy): the timed call is ``fn(module, *arrays)``."""
    names = _input_names(fn, module_first=True)

    def build(d: Inputs) -> Call | None:
        imported = _module(module)
        if imported is None:
            return None
        return functools.partial(fn, imported, *[d[name] for name in names])

    return Impl(label, module.partition(".")[0], build)


def _tensor(torch: Any, a: np.ndarray) -> Any:
    """``torch.from_numpy(a)`` (no copy); an ``ml_dtypes.bfloat16`` array through its 16 bits,
    viewed as torch.bfloat16."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _torch_eager(label: str, fn: Callable[..., Any]) -> Impl:
    """Eager PyTorch: the timed call is ``fn(torch, *tensors)``, the inputs made tensors
    beforehand (``torch.from_numpy``: no copy)."""
    names = _input_names(fn, module_first=True)

    def build(d: Inputs) -> Call | None:
        t = _torch()
        if t is None:
            return None
        return functools.partial(fn, t, *[_tensor(t, d[name]) for name in names])

    return Impl(label, "torch", build)


def _torch_compiled(label: str, fn: Callable[..., Any]) -> Impl:
    """``torch.compile`` of ``fn(torch, *tensors)``; its first call compiles."""
    names = _input_names(fn, module_first=True)

    def build(d: Inputs) -> Call | None:
        t = _torch()
        f = None if t is None else _torch_compile(lambda *tensors: fn(t, *tensors))
        if f is None:
            return None
        tensors = [_tensor(t, d[name]) for name in names]
        return lambda: f(*tensors)

    return Impl(label, "torch.compile", build, compiles=True)


def _jax_jitted(label: str, fn: Callable[..., Any]) -> Impl:
    """``jax.jit`` of ``fn(jax, *arrays)``; its first call compiles."""
    names = _input_names(fn, module_first=True)

    def build(d: Inputs) -> Call | None:
        jax = _jax()
        if jax is None:
            return None
        return _jax_jit(lambda *arrays: fn(jax, *arrays), *[d[name] for name in names])

    return Impl(label, "jax", build, compiles=True)


@dataclass
class Workload:
    name: str
    description: str
    rows: int  # N at --scale 1
    cols: int | None  # C, or None for 1-D inputs
    dtype: str  # dtype of the predictions: picks the agreement tolerance
    # make(rng, N), or make(rng, N, d) for a workload with a trailing axis d (``spatial``)
    make: Callable[..., Inputs]
    impls: list[Impl] = field(default_factory=list)
    per_call: bool = False  # call overhead: many calls per repeat, time per call
    scalable: bool = True
    # (N, C, d) layout, PyTorch's for per-position losses: d at --scale 1; --scale multiplies
    # d, not N
    spatial: int | None = None


def _logits(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Logits ~ N(0, 2), drawn directly in ``dtype`` (no float64 temporary for float32)."""
    x = rng.standard_normal(shape, dtype=dtype)
    x *= 2.0
    return x


def _probabilities(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Rows uniform on the simplex (normalised exponential draws: Dirichlet(1)), float64."""
    p = rng.standard_exponential(shape)
    p /= p.sum(axis=1, keepdims=True)
    return p


def _labels(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    y = rng.integers(0, c, size=n)  # int64: what torch requires of class indices
    y[: min(n, c)] = np.arange(min(n, c))  # every class present (log_loss infers the labels)
    return y


def _make_ce_logits(n_classes: int, dtype: Any) -> Callable[..., Inputs]:
    def make(rng: np.random.Generator, n: int, spatial: int | None = None) -> Inputs:
        if spatial is None:
            return {"x": _logits(rng, (n, n_classes), dtype), "y": _labels(rng, n, n_classes)}
        # (N, C, d) logits and (N, d) labels: the class axis is 1
        x = _logits(rng, (n, n_classes, spatial), dtype)
        return {"x": x, "y": _labels(rng, n * spatial, n_classes).reshape(n, spatial)}

    return make


LM_VOCABULARY, LM_SEQUENCE = 32_000, 512


def _make_lm_logits(rng: np.random.Generator, n: int) -> Inputs:
    """W8: bfloat16 logits of ``n`` tokens over a 32,000-token vocabulary, (n / 512, 512, V)
    when n is a multiple of 512, and labels with 10% of them -100 (PyTorch's padding)."""
    ml_dtypes = _module("ml_dtypes")
    if ml_dtypes is None:
        raise RuntimeError("W8 (bfloat16 logits) needs ml_dtypes: pip install ml_dtypes")
    x = np.empty((n, LM_VOCABULARY), ml_dtypes.bfloat16)
    for lo in range(0, n, 256):  # drawn in float32 a slice at a time: no float32 copy of it all
        hi = min(n, lo + 256)
        x[lo:hi] = _logits(rng, (hi - lo, LM_VOCABULARY), np.float32)
    y = _labels(rng, n, LM_VOCABULARY)
    y[rng.random(n) < 0.1] = -100
    shape = (n // LM_SEQUENCE, LM_SEQUENCE) if n % LM_SEQUENCE == 0 else (n,)
    return {"x": x.reshape(*shape, LM_VOCABULARY), "y": y.reshape(shape)}


def _lm_impls() -> list[Impl]:
    def fast(d: Inputs) -> Call:
        function = MEASURES["cross_entropy"].function
        return functools.partial(
            function, d["y"], d["x"], from_logits=True, ignore_index=-100, reduction="mean"
        )

    def torch_ce(t: Any, x: Any, y: Any) -> Any:
        # (batch, sequence, vocabulary) logits flattened to tokens, as language models do
        return t.nn.functional.cross_entropy(
            x.reshape(-1, x.shape[-1]), y.reshape(-1), ignore_index=-100
        )

    return [
        Impl("fastce", "fastce", fast),
        _torch_eager("torch F.cross_entropy bf16", torch_ce),
        _torch_compiled("torch.compile F.cross_entropy bf16", torch_ce),
    ]


def _make_probabilities(*names: str) -> Callable[..., Inputs]:
    """One (N, 100) array of probability rows per name, drawn in that order."""

    def make(rng: np.random.Generator, n: int) -> Inputs:
        return {name: _probabilities(rng, (n, 100)) for name in names}

    return make


def _make_bce_probabilities(rng: np.random.Generator, n: int) -> Inputs:
    p = rng.random(n)
    y = (rng.random(n) < p).astype(np.float64)  # labels drawn from a calibrated model
    return {"y": y, "p": p}


def _make_bce_logits(rng: np.random.Generator, n: int) -> Inputs:
    x = _logits(rng, (n,), np.float32)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    return {"y": y, "x": x}


def _make_log_loss(rng: np.random.Generator, n: int) -> Inputs:
    return {"y": _labels(rng, n, 10), "p": _probabilities(rng, (n, 10))}


# --- cross-entropy from logits with class indices (W1*, W7); the class axis is 1


def _jax_ce(jax: Any, x: Any, y: Any) -> Any:
    # the label's log-probability along the class axis 1, for (N, C) or (N, C, d) logits
    log_p = jax.nn.log_softmax(x, axis=1)
    return -jax.numpy.mean(jax.numpy.take_along_axis(log_p, jax.numpy.expand_dims(y, 1), axis=1))


def _ce_logits_impls() -> list[Impl]:
    def fast(d: Inputs) -> Call:
        x, y = d["x"], d["y"]
        function = MEASURES["cross_entropy"].function  # the class axis is 1 in (N, C, d)
        return functools.partial(function, y, x, from_logits=True, axis=1, reduction="mean")

    def _picked(x: np.ndarray, y: np.ndarray) -> Call:
        """x[i, y[i]] (or x[i, y[i, j], j]): the label's logit, as a call."""
        if x.ndim == 2:
            rows = np.arange(len(y))
            return lambda: x[rows, y]
        index = np.expand_dims(y, 1)
        return lambda: np.take_along_axis(x, index, axis=1)[:, 0]

    def scipy(d: Inputs) -> Call | None:
        special = _module("scipy.special")
        if special is None:
            return None
        x = d["x"]
        picked = _picked(x, d["y"])
        return lambda: np.mean(special.logsumexp(x, axis=1) - picked())

    def numpy(d: Inputs) -> Call:
        # Shifted log-sum-exp with one N x C temporary (exp taken in place).
        x = d["x"]
        picked = _picked(x, d["y"])

        def call() -> Any:
            m = x.max(axis=1, keepdims=True)
            e = x - m
            np.exp(e, out=e)
            lse = np.log(e.sum(axis=1)) + m[:, 0]
            return np.mean(lse - picked())

        return call

    return [
        Impl("fastce", "fastce", fast),
        # F.cross_entropy with class indices and reduction="mean": the fused
        # log_softmax + nll_loss PyTorch users call on logits, (N, C) or (N, C, d).
        _torch_eager(
            "torch F.cross_entropy",
            lambda t, x, y: t.nn.functional.cross_entropy(x, y, reduction="mean"),
        ),
        _torch_compiled(
            "torch.compile F.cross_entropy", lambda t, x, y: t.nn.functional.cross_entropy(x, y)
        ),
        _jax_jitted("jax.jit log_softmax take_along", _jax_ce),
        Impl("scipy special.logsumexp", "scipy", scipy),
        Impl("numpy shifted logsumexp", "numpy", numpy),
    ]


# --- soft targets on probabilities (W2)


def _soft_ce_impls() -> list[Impl]:
    return [
        _fastce("cross_entropy", "pq", reduction="mean"),
        # -(p * log q).sum() / N: the formula written with tensor ops. The other formulation,
        # F.cross_entropy(torch.log(q), p) (probability targets), was about 4x slower here: it
        # takes a log_softmax of log q (one more pass and temporary) to renormalise q.
        _torch_eager("torch -(p*log q).sum()/N", lambda t, p, q: -(p * t.log(q)).sum() / len(p)),
        _torch_compiled(
            "torch.compile -xlogy(p, q) mean",
            lambda t, p, q: -t.special.xlogy(p, q).sum(1).mean(),
        ),
        _jax_jitted(
            "jax.jit -xlogy(p, q) mean",
            lambda j, p, q: -j.numpy.mean(j.scipy.special.xlogy(p, q).sum(axis=1)),
        ),
        _imported(
            "scipy special.xlogy",
            "scipy.special",
            lambda special, p, q: -special.xlogy(p, q).sum(axis=1).mean(),
        ),
        _plain(
            "numpy einsum(p, log q)",
            "numpy",
            lambda p, q: -np.einsum("ij,ij->i", p, np.log(q)).mean(),
        ),
    ]


# --- entropy (W3)


def _entropy_impls() -> list[Impl]:
    return [
        _fastce("entropy", "p", reduction="mean"),
        # torch.special.entr: -p log p element-wise in one op with 0 log 0 = 0 (the fastest
        # correct form; Categorical(probs=p).entropy() renormalises and is slower).
        _torch_eager("torch special.entr", lambda t, p: t.special.entr(p).sum(dim=1).mean()),
        _torch_compiled(
            "torch.compile -xlogy(p, p) mean", lambda t, p: -t.special.xlogy(p, p).sum(1).mean()
        ),
        _jax_jitted(
            "jax.jit -xlogy(p, p) mean",
            lambda j, p: -j.numpy.mean(j.scipy.special.xlogy(p, p).sum(axis=1)),
        ),
        _imported(
            "scipy stats.entropy", "scipy.stats", lambda stats, p: stats.entropy(p, axis=1).mean()
        ),
        _imported(
            "scipy special.entr",
            "scipy.special",
            lambda special, p: special.entr(p).sum(axis=1).mean(),
        ),
        _plain(
            "numpy einsum(p, log p)",
            "numpy",
            lambda p: -np.einsum("ij,ij->i", p, np.log(p)).mean(),
        ),
    ]


# --- KL divergence (W4)


COMPARE_CLASSES = 100


def _make_model_pair(rng: np.random.Generator, n: int) -> Inputs:
    """W9: a reference model's float32 logits, a candidate's (the reference plus noise of a
    tenth of their spread, as a quantised copy's), and labels."""
    ref = _logits(rng, (n, COMPARE_CLASSES), np.float32)
    cand = rng.standard_normal((n, COMPARE_CLASSES), dtype=np.float32)
    cand *= 0.2
    cand += ref
    return {"r": ref, "c": cand, "y": _labels(rng, n, COMPARE_CLASSES)}


def _torch_compare(t: Any, r: Any, c: Any, y: Any) -> Any:
    """The figures of ``fastce.compare`` in PyTorch: KL per row and its mean, standard error,
    quantiles, minimum and maximum; top-class agreement; each model's cross-entropy and
    perplexity; Δp's mean, RMS and quantiles; the top-class-is-target rates."""
    lp, lq = t.log_softmax(r, -1), t.log_softmax(c, -1)
    kl = (lp.exp() * (lp - lq)).sum(-1).clamp_min(0)
    rows = t.arange(y.shape[0])
    lp_y, lq_y = lp[rows, y], lq[rows, y]
    dp = lq_y.exp() - lp_y.exp()
    top_r, top_c = r.argmax(-1), c.argmax(-1)
    qs = t.tensor(QUANTILES, dtype=kl.dtype)
    ce_r, ce_c = -lp_y.mean(), -lq_y.mean()
    figures = (
        kl.mean(), kl.std() / kl.shape[0] ** 0.5, t.quantile(kl, qs), kl.min(), kl.max(),
        (top_r == top_c).float().mean(), ce_r, ce_c, ce_r.exp(), ce_c.exp(), dp.mean(),
        dp.square().mean().sqrt(), t.quantile(dp, qs), (top_r == y).float().mean(),
        (top_c == y).float().mean(),
    )  # fmt: skip
    return figures


def _jax_compare(j: Any, r: Any, c: Any, y: Any) -> Any:
    """``_torch_compare`` in JAX."""
    jnp = j.numpy
    lp, lq = j.nn.log_softmax(r, -1), j.nn.log_softmax(c, -1)
    kl = jnp.maximum((jnp.exp(lp) * (lp - lq)).sum(-1), 0.0)
    lp_y = jnp.take_along_axis(lp, y[:, None], 1)[:, 0]
    lq_y = jnp.take_along_axis(lq, y[:, None], 1)[:, 0]
    dp = jnp.exp(lq_y) - jnp.exp(lp_y)
    top_r, top_c = r.argmax(-1), c.argmax(-1)
    qs = jnp.array(QUANTILES)
    figures = (
        kl.mean(), kl.std() / kl.shape[0] ** 0.5, jnp.quantile(kl, qs), kl.min(), kl.max(),
        (top_r == top_c).mean(), -lp_y.mean(), -lq_y.mean(), dp.mean(),
        jnp.sqrt(jnp.mean(dp * dp)), jnp.quantile(dp, qs), (top_r == y).mean(),
        (top_c == y).mean(),
    )  # fmt: skip
    return figures


def _compare_impls() -> list[Impl]:
    def fast(d: Inputs) -> Call:
        from .comparison import compare

        def call() -> Any:
            return compare(d["r"], d["c"], d["y"], from_logits=True).kl.mean

        return call

    return [
        Impl("fastce.compare", "fastce", fast),
        _torch_eager("torch log_softmax, argmax, quantile", _torch_compare),
        _torch_compiled("torch.compile log_softmax, argmax, quantile", _torch_compare),
        _jax_jitted("jax.jit log_softmax, argmax, quantile", _jax_compare),
    ]


def _kl_impls() -> list[Impl]:
    return [
        _fastce("kl_divergence", "pq", reduction="mean"),
        # F.kl_div takes log q as its input and p as the target; "batchmean" is the sum over
        # all elements / N, i.e. the mean over samples of KL(p_i || q_i). Taking log q is
        # part of the work (the inputs are probabilities) and is timed.
        _torch_eager(
            "torch F.kl_div batchmean",
            lambda t, p, q: t.nn.functional.kl_div(t.log(q), p, reduction="batchmean"),
        ),
        _torch_compiled(
            "torch.compile xlogy(p,p)-xlogy(p,q)",
            lambda t, p, q: (t.special.xlogy(p, p) - t.special.xlogy(p, q)).sum(1).mean(),
        ),
        _jax_jitted(
            "jax.jit rel_entr(p, q) mean",
            lambda j, p, q: j.numpy.mean(j.scipy.special.rel_entr(p, q).sum(axis=1)),
        ),
        _imported(
            "scipy stats.entropy(p, q)",
            "scipy.stats",
            lambda stats, p, q: stats.entropy(p, q, axis=1).mean(),
        ),
        _imported(
            "scipy special.rel_entr",
            "scipy.special",
            lambda special, p, q: special.rel_entr(p, q).sum(axis=1).mean(),
        ),
        _plain(
            "numpy einsum(p, log p/q)",
            "numpy",
            lambda p, q: np.einsum("ij,ij->i", p, np.log(p / q)).mean(),
        ),
    ]


# --- binary cross-entropy (W5a on probabilities, W5b from logits)


def _bce_probability_impls() -> list[Impl]:
    return [
        _fastce("binary_cross_entropy", "yp", reduction="mean"),
        # F.binary_cross_entropy on probabilities, reduction="mean" (over all elements).
        _torch_eager(
            "torch F.binary_cross_entropy",
            lambda t, y, p: t.nn.functional.binary_cross_entropy(p, y, reduction="mean"),
        ),
        _torch_compiled(
            "torch.compile F.binary_cross_entropy",
            lambda t, y, p: t.nn.functional.binary_cross_entropy(p, y),
        ),
        _jax_jitted(
            "jax.jit xlogy + xlog1py",
            lambda j, y, p: (
                -j.numpy.mean(j.scipy.special.xlogy(y, p) + j.scipy.special.xlog1py(1 - y, -p))
            ),
        ),
        _imported(
            "sklearn log_loss", "sklearn.metrics", lambda metrics, y, p: metrics.log_loss(y, p)
        ),
        _imported(
            "scipy xlogy + xlog1py",
            "scipy.special",
            lambda special, y, p: -(special.xlogy(y, p) + special.xlog1py(1.0 - y, -p)).mean(),
        ),
        _plain(
            "numpy y log p + (1-y) log1p(-p)",
            "numpy",
            lambda y, p: -(y * np.log(p) + (1.0 - y) * np.log1p(-p)).mean(),
        ),
    ]


def _bce_logit_impls() -> list[Impl]:
    return [
        _fastce("binary_cross_entropy", "yx", from_logits=True, reduction="mean"),
        # F.binary_cross_entropy_with_logits, reduction="mean": the stable fused form.
        _torch_eager(
            "torch F.bce_with_logits",
            lambda t, y, x: t.nn.functional.binary_cross_entropy_with_logits(
                x, y, reduction="mean"
            ),
        ),
        _torch_compiled(
            "torch.compile F.bce_with_logits",
            lambda t, y, x: t.nn.functional.binary_cross_entropy_with_logits(x, y),
        ),
        _jax_jitted(
            "jax.jit softplus(x) - x y", lambda j, y, x: j.numpy.mean(j.nn.softplus(x) - x * y)
        ),
        _imported(
            "scipy special.log_expit",
            "scipy.special",
            lambda special, y, x: (
                -(y * special.log_expit(x) + (1 - y) * special.log_expit(-x)).mean()
            ),
        ),
        # softplus(x) - y x, with softplus as the stable np.logaddexp(0, x)
        _plain(
            "numpy logaddexp(0, x) - y x",
            "numpy",
            lambda y, x: (np.logaddexp(0, x) - y * x).mean(),
        ),
    ]


# --- log_loss drop-in (W6)


def _log_loss_impls() -> list[Impl]:
    def numpy(d: Inputs) -> Call:
        # For scale only: it makes none of the checks log_loss makes (labels, range, sums).
        y, p = d["y"], d["p"]
        rows = np.arange(len(y))
        return lambda: -np.log(p[rows, y]).mean()

    return [
        _fastce("log_loss", "yp", "fastce.log_loss"),
        _imported(
            "sklearn.metrics.log_loss",
            "sklearn.metrics",
            lambda metrics, y, p: metrics.log_loss(y, p),
        ),
        Impl("numpy -log p[y] (no checks)", "numpy", numpy),
    ]


def _ce_workload(
    name: str,
    rows: int,
    n_classes: int,
    dtype: Any,
    note: str = "",
    spatial: int | None = None,
    **options: Any,
) -> Workload:
    """Cross-entropy from (N, C) logits, or (N, C, d) ones with ``spatial`` d, and class
    indices; the description says the sizes."""
    dtype = np.dtype(dtype)
    if spatial is None:
        inputs = f"int labels, logits {rows:,} x {n_classes:,} {dtype}"
    else:
        inputs = (
            f"int labels ({rows}, {spatial}), logits {rows:,} x {n_classes:,} x {spatial:,} "
            f"{dtype}, class axis 1"
        )
    return Workload(
        name,
        f"cross-entropy, {inputs}{note}",
        rows,
        n_classes,
        dtype.name,
        _make_ce_logits(n_classes, dtype),
        _ce_logits_impls(),
        spatial=spatial,
        **options,
    )


def _probability_workload(name: str, measure: str, names: str, impls: list[Impl]) -> Workload:
    """``measure`` on 1,000,000 rows of 100 float64 probabilities, one array per name."""
    description = f"{measure}, probabilities 1,000,000 x 100 float64"
    return Workload(
        name, description, 1_000_000, 100, "float64", _make_probabilities(*names), impls
    )


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        _ce_workload("W1a", 1_000_000, 100, np.float32),
        _ce_workload("W1b", 100_000, 1_000, np.float32),
        _ce_workload("W1c", 8_192, 50_257, np.float32, " (LM vocabulary)"),
        _ce_workload("W1d", 1_000_000, 100, np.float64),
        _ce_workload("W1e", 64, 1_000, np.float32, spatial=512),
        _ce_workload("W1f", 10_000_000, 2, np.float32),
        _probability_workload("W2", "cross-entropy, soft targets", "pq", _soft_ce_impls()),
        _probability_workload("W3", "entropy", "p", _entropy_impls()),
        _probability_workload("W4", "KL divergence", "pq", _kl_impls()),
        Workload(
            "W5a",
            "binary cross-entropy, 10,000,000 float64 probabilities",
            10_000_000,
            None,
            "float64",
            _make_bce_probabilities,
            _bce_probability_impls(),
        ),
        Workload(
            "W5b",
            "binary cross-entropy, 10,000,000 float32 logits",
            10_000_000,
            None,
            "float32",
            _make_bce_logits,
            _bce_logit_impls(),
        ),
        Workload(
            "W6",
            "log_loss drop-in, 1,000,000 x 10 float64 probabilities",
            1_000_000,
            10,
            "float64",
            _make_log_loss,
            _log_loss_impls(),
        ),
        _ce_workload(
            "W7", 100, 10, np.float32, " (call overhead, per call)", per_call=True, scalable=False
        ),
        Workload(
            "W8",
            "cross-entropy, language-model logits 8 x 512 x 32,000 bfloat16, 10% of the labels "
            "-100 (ignore_index)",
            8 * LM_SEQUENCE,
            LM_VOCABULARY,
            "bfloat16",
            _make_lm_logits,
            _lm_impls(),
        ),
        Workload(
            "W9",
            "model comparison (KL per row with its quantiles, top-class agreement, Δp, "
            "cross-entropies), reference and candidate logits 1,000,000 x 100 float32, labels",
            1_000_000,
            COMPARE_CLASSES,
            "float32",
            _make_model_pair,
            _compare_impls(),
        ),
    ]
}


# Each workload's random stream: its inputs do not change when a workload is added before it.
_STREAMS = [
    "W1a", "W1b", "W1c", "W1d", "W2", "W3", "W4", "W5a", "W5b", "W6", "W7", "W1e", "W1f", "W8",
    "W9",
]  # fmt: skip
assert sorted(_STREAMS) == sorted(WORKLOADS)


def workload_rows(workload: Workload, scale: float) -> int:
    """N for ``--scale``: W7 (call overhead) and the (N, C, d) workloads (whose d is scaled)
    keep theirs; others keep at least 16 rows."""
    if not workload.scalable or workload.spatial is not None:
        return workload.rows
    return max(16, round(workload.rows * scale))


def workload_shape(workload: Workload, scale: float) -> list[int]:
    """The prediction array's shape for ``--scale``: (N,), (N, C) or (N, C, d)."""
    shape = [workload_rows(workload, scale)]
    if workload.cols is not None:
        shape.append(workload.cols)
    if workload.spatial is not None:
        shape.append(max(1, round(workload.spatial * scale)))
    return shape


def make_inputs(workload: Workload, scale: float, seed: int) -> Inputs:
    """The workload's arrays, the same for a given (workload, scale, seed) in any process."""
    rng = np.random.default_rng([seed, _STREAMS.index(workload.name)])
    if workload.spatial is None:
        return workload.make(rng, workload_rows(workload, scale))
    n, _, spatial = workload_shape(workload, scale)
    return workload.make(rng, n, spatial)


# --------------------------------------------------------------------------------------------
# Timing


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _read_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    # A bandwidth probe, not a result: "reassoc" lets LLVM vectorise the per-thread partial
    # sums, so the loop is limited by memory, not by the latency of one scalar add chain.
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s


def measure_bandwidth(nbytes: int = BANDWIDTH_BYTES, runs: int = 9) -> dict[str, Any]:
    """The machine's memory read bandwidth: a parallel Numba sum over ``nbytes`` of float64
    (far larger than any cache), at Numba's current thread count; median of ``runs``."""
    a = np.ones(nbytes // 8)  # np.ones touches every page: no page faults while timing
    _read_sum(a[:1024])  # compile or load from the cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        total = _read_sum(a)
        times.append(time.perf_counter() - start)
    if total != a.size:
        raise RuntimeError(f"bandwidth probe summed to {total}, expected {a.size}")
    median = statistics.median(times)
    return {
        "method": "parallel Numba prange sum of a float64 array",
        "bytes": int(a.nbytes),
        "runs": runs,
        "threads": numba.get_num_threads(),
        "times_s": times,
        "median_s": median,
        "gbps": a.nbytes / median / 1e9,
        "best_gbps": a.nbytes / min(times) / 1e9,
    }


def _value(result: Any) -> float:
    """A Python float from a NumPy scalar, a 0-d array or a 0-d torch tensor; of a tuple of
    figures (every one computed, none left for a compiler to drop), the first."""
    if isinstance(result, tuple):
        result = result[0]
    if hasattr(result, "item"):
        result = result.item()
    return float(result)


@contextlib.contextmanager
def _gc_paused() -> Any:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_call(
    call: Call, *, repeat: int, warmup: int, max_time: float, per_call: bool
) -> dict[str, Any]:
    """Warm-up calls (the first compiles or loads fastce's kernels), then ``repeat`` timed
    calls, or fewer (at least 3) when ``repeat`` of them would take longer than ``max_time``
    seconds. With ``per_call``, each repeat times a loop of many calls (about 0.1 s) and
    records the time per call."""
    with _gc_paused():
        last = math.inf
        for _ in range(warmup):
            start = time.perf_counter()
            result = call()
            last = time.perf_counter() - start
        calls = 1
        if per_call:
            # Loops of 1, 4, 16, ... calls until one takes 20 ms, then ~0.1 s per repeat.
            while True:
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                elapsed = time.perf_counter() - start
                if elapsed >= 0.02 or calls >= 1_000_000:
                    break
                calls *= 4
            per = elapsed / calls
            calls = int(min(max(0.1 / per, 1), 1_000_000))
            last = per * calls
        if math.isfinite(last) and last * repeat > max_time:
            repeat = max(3, min(repeat, int(max_time / last)))
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times.append((time.perf_counter() - start) / calls)
    return {
        "value": _value(result),
        "times_s": times,
        "median_s": statistics.median(times),
        "repeats": repeat,
        "calls_per_repeat": calls,
    }


def _input_bytes(inputs: Inputs) -> int:
    return sum(int(a.nbytes) for a in inputs.values())


def run_workload(
    workload: Workload,
    *,
    scale: float,
    seed: int,
    repeat: int,
    warmup: int,
    max_time: float,
    bandwidth_gbps: float | None,
    libraries: set[str] | None = None,
    settle: float = 0.0,
) -> dict[str, Any]:
    """Time every available implementation of ``workload`` on the same arrays.

    Before each implementation the process collects garbage and waits ``settle`` seconds: on a
    virtual machine with free page reporting (Linux on Firecracker, among others) memory freed
    by the previous step (the inputs' temporaries, a peer's result buffers) is reported to the
    host about 2 s later, and that work takes a vCPU from whatever runs then. Measured on the
    2-vCPU machine of docs/performance.md: fastce's W3, timed first after the inputs were
    built, ran 91-94 ms in quiet repeats and 125-160 ms in the ones that overlapped it.
    """
    inputs = make_inputs(workload, scale, seed)
    nbytes = _input_bytes(inputs)
    shape = workload_shape(workload, scale)
    rtol = RTOL[workload.dtype]
    results: list[dict[str, Any]] = []
    for impl in workload.impls:
        if libraries is not None and impl.library != "fastce" and impl.library not in libraries:
            continue
        entry: dict[str, Any] = {"implementation": impl.label, "library": impl.library}
        try:
            call = impl.build(inputs)
        except Exception as exc:  # a peer that cannot run this input: report, go on
            call = None
            entry["error"] = f"{type(exc).__name__}: {exc}"
        if call is None:
            entry.setdefault("skipped", "not installed")
            results.append(entry)
            continue
        if impl.compiles:
            # torch.compile and jax.jit compile on the first call: timed here, reported apart,
            # never mixed with the warm-up or timed calls.
            try:
                start = time.perf_counter()
                _value(call())
                entry["compile_s"] = time.perf_counter() - start
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                results.append(entry)
                continue
        if settle > 0:
            gc.collect()
            time.sleep(settle)
        try:
            entry.update(
                time_call(
                    call,
                    repeat=repeat,
                    warmup=warmup,
                    max_time=max_time,
                    per_call=workload.per_call,
                )
            )
            entry["gbps"] = nbytes / entry["median_s"] / 1e9
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        del call
        results.append(entry)
    gc.collect()

    fast = next((r for r in results if r["library"] == "fastce"), None)
    fast_time = fast.get("median_s") if fast else None
    fast_value = fast.get("value") if fast else None
    for r in results:
        if "median_s" not in r:
            continue
        r["ratio"] = r["median_s"] / fast_time if fast_time else math.nan
        if fast_value is not None:
            scale_ = max(abs(fast_value), np.finfo(np.float64).tiny)
            r["rel_diff"] = abs(r["value"] - fast_value) / scale_
            r["agrees"] = bool(r["rel_diff"] <= rtol)  # NaN compares False: disagrees
        if r["library"] == "fastce" and bandwidth_gbps:
            r["bandwidth_fraction"] = r["gbps"] / bandwidth_gbps
    return {
        "name": workload.name,
        "description": workload.description,
        "shape": shape,
        "dtype": workload.dtype,
        "input_bytes": nbytes,
        "per_call": workload.per_call,
        "rtol": rtol,
        "results": results,
        "fastest_peer": _fastest_peer(results),
    }


def _fastest_peer(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest peer that agrees with fastce, compiled or not, and fastce's speed-up over it
    (its time / fastce's time); None when no peer was timed or fastce was not."""
    peers = [
        r
        for r in results
        if r["library"] != "fastce" and r.get("agrees") and math.isfinite(r.get("ratio", math.nan))
    ]
    if not peers:
        return None
    best = min(peers, key=lambda r: r["median_s"])
    return {
        "implementation": best["implementation"],
        "library": best["library"],
        "median_s": best["median_s"],
        "speedup": best["ratio"],
    }


# --------------------------------------------------------------------------------------------
# Peak extra memory (in a fresh process per workload)


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _trim_heap() -> None:
    # Hand freed heap pages back to the kernel, so that a temporary the call allocates cannot
    # silently reuse pages that are already resident (which would hide it from VmHWM).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure_memory_here(name: str, scale: float, seed: int) -> dict[str, Any]:
    """Peak memory fastce uses beyond its inputs and result, for one workload, measured in
    this process (``--memory`` runs it in a fresh one per workload).

    Method: generate the inputs; call fastce once (compiles or loads the kernels, starts the
    thread pool, fills caches); release freed heap pages (``malloc_trim``); reset the peak
    resident set size (writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS,
    Linux >= 4.0); note RSS; call again with tracemalloc on; the peak RSS (VmHWM) minus that
    baseline is the memory the call touched, whoever allocated it (NumPy, Numba's runtime,
    thread stacks). tracemalloc's peak counts the NumPy/Python allocations alone, including
    ones that reused already-resident pages, which RSS cannot see. The extra memory reported
    is the larger of the two, minus the result's own size.
    """
    workload = WORKLOADS[name]
    impl = next(i for i in workload.impls if i.library == "fastce")
    inputs = make_inputs(workload, scale, seed)
    call = impl.build(inputs)
    assert call is not None
    result = call()
    del result
    gc.collect()
    _trim_heap()
    clear_refs = Path("/proc/self/clear_refs")
    try:
        clear_refs.write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    baseline_kib = _status_kib("VmRSS")
    hwm_before_kib = _status_kib("VmHWM")
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = call()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm_after_kib = _status_kib("VmHWM")
    result_bytes = int(np.asarray(result).nbytes)
    rss_extra = (hwm_after_kib - baseline_kib) * 1024 if hwm_reset else None
    if not hwm_reset and hwm_after_kib > hwm_before_kib:
        rss_extra = (hwm_after_kib - baseline_kib) * 1024  # a new peak: a lower bound
    extra = max(rss_extra or 0, traced_peak) - result_bytes
    return {
        "workload": name,
        "input_bytes": _input_bytes(inputs),
        "baseline_rss_mib": baseline_kib / 1024,
        "rss_peak_extra_mib": None if rss_extra is None else rss_extra / 2**20,
        "tracemalloc_peak_mib": traced_peak / 2**20,
        "result_bytes": result_bytes,
        "extra_mib": max(extra, 0) / 2**20,
        "hwm_reset": hwm_reset,
        "method": "VmHWM delta after clear_refs reset + malloc_trim, and tracemalloc peak",
    }


def measure_memory(name: str, scale: float, seed: int, threads: int) -> dict[str, Any]:
    """``measure_memory_here`` in a fresh interpreter (a fresh, unfragmented heap; and no fork
    of a process that has run GNU OpenMP code)."""
    package_parent = str(Path(fastce.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [package_parent, env.get("PYTHONPATH", "")] if p
    )
    cmd = [
        sys.executable,
        "-m",
        "fastce.benchmark",
        "--memory-child",
        name,
        "--scale",
        repr(scale),
        "--seed",
        str(seed),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        return {"workload": name, "error": proc.stderr.strip().splitlines()[-1:] or "failed"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------------------------
# Machine description, table, plot


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine_description() -> dict[str, Any]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in [
        "fastce",
        "numpy",
        "numba",
        "llvmlite",
        "torch",
        "jax",
        "jaxlib",
        "scipy",
        "scikit-learn",
    ]:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    versions["fastce"] = fastce.__version__
    usable_cores: int | None
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "memory_gib": _memory_total_gib(),
        "numba_threads": numba.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _format_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} us"


HEADER = (
    f"{'workload':<9}{'implementation':<37}{'median':>11}{'GB/s':>8}{'ratio':>8}"
    f"{'%bw':>6}{'compile':>10}  {'value':<15}{'rel.diff':>9}  check"
)


def format_rows(workload_result: dict[str, Any]) -> list[str]:
    lines = []
    name = workload_result["name"]
    for r in workload_result["results"]:
        label = r["implementation"]
        if "skipped" in r and "error" not in r:
            lines.append(f"{name:<9}{label:<37}{'(not installed)':>11}")
            continue
        if "median_s" not in r:
            lines.append(f"{name:<9}{label:<37}{'ERROR':>11}  {r.get('error', '')}")
            continue
        ratio = r.get("ratio", math.nan)
        fraction = r.get("bandwidth_fraction")
        bw = f"{fraction * 100:>5.0f}%" if fraction is not None else f"{'':>6}"
        rel = r.get("rel_diff")
        if r["library"] == "fastce":
            check, rel_text = "", ""
        else:
            agrees = r.get("agrees")
            check = "ok" if agrees else "!! DISAGREES"
            rel_text = f"{rel:.1e}" if rel is not None else ""
        compile_s = r.get("compile_s")
        compiled = f"{compile_s:>8.2f} s" if compile_s is not None else f"{'':>10}"
        lines.append(
            f"{name:<9}{label:<37}{_format_time(r['median_s']):>11}{r['gbps']:>8.2f}"
            f"{ratio:>8.2f}{bw}{compiled}  {r['value']:<15.9g}{rel_text:>9}  {check}"
        )
    return lines


def format_fastest(workload_result: dict[str, Any]) -> str:
    """One line: the workload's fastest peer, compiled or not, and fastce's speed-up over it."""
    name = workload_result["name"]
    best = workload_result.get("fastest_peer")
    fast: dict[str, Any] = next(
        (r for r in workload_result["results"] if r["library"] == "fastce"), {}
    )
    if best is None or "median_s" not in fast:
        return f"{name:<9}{'(no peer timed)':<37}"
    return (
        f"{name:<9}{best['implementation']:<37}{_format_time(best['median_s']):>11}"
        f"{_format_time(fast['median_s']):>11}{best['speedup']:>8.2f}x"
    )


def plot(results: dict[str, Any], path: str) -> None:
    """Bar chart: each library's time relative to fastce per workload (log scale), and each
    fastce kernel's fraction of the measured memory read bandwidth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in results["workloads"] if any("ratio" in r for r in w["results"])]
    libraries = ["fastce", *PEER_LIBRARIES]
    colours = {
        "fastce": "#d62728",
        "torch": "#1f77b4",
        "torch.compile": "#17becf",
        "jax": "#8c564b",
        "numpy": "#2ca02c",
        "scipy": "#9467bd",
        "sklearn": "#ff7f0e",
    }
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(8.0, 1.1 * len(workloads) + 3), 9), height_ratios=[3, 2]
    )
    width = 0.8 / len(libraries)
    for k, library in enumerate(libraries):
        xs, ys = [], []
        for i, w in enumerate(workloads):
            ratios = [
                r["ratio"]
                for r in w["results"]
                if r["library"] == library and math.isfinite(r.get("ratio", math.nan))
            ]
            if ratios:
                xs.append(i + (k - (len(libraries) - 1) / 2) * width)
                ys.append(min(ratios))  # the library's fastest implementation
        if xs:
            top.bar(xs, ys, width, label=library, color=colours[library])
    top.set_yscale("log")
    top.axhline(1.0, color="black", linewidth=0.8)
    top.set_xticks(range(len(workloads)), [w["name"] for w in workloads])
    top.set_ylabel("time / fastce time (log scale; > 1: slower than fastce)")
    top.set_title(
        "fastce vs peers: each library's fastest implementation, median time relative to fastce"
    )
    top.legend(ncols=4, fontsize="small")
    top.grid(axis="y", which="both", alpha=0.3)

    bw = results.get("bandwidth") or {}
    names, fractions = [], []
    for w in workloads:
        fast = next((r for r in w["results"] if r["library"] == "fastce"), None)
        if fast and fast.get("bandwidth_fraction") is not None and not w["per_call"]:
            names.append(w["name"])
            fractions.append(100 * fast["bandwidth_fraction"])
    bottom.bar(range(len(names)), fractions, 0.6, color=colours["fastce"])
    bottom.set_xticks(range(len(names)), names)
    bottom.set_ylabel("% of memory read bandwidth")
    gbps = bw.get("gbps")
    bottom.set_title(
        "fastce: input bytes read per second as a fraction of the measured read bandwidth"
        + (f" ({gbps:.1f} GB/s)" if gbps else "")
    )
    bottom.grid(axis="y", alpha=0.3)
    machine = results["machine"]
    fig.text(
        0.01,
        0.005,
        f"{machine['cpu']}, {machine['numba_threads']} threads; numba "
        f"{machine['versions'].get('numba')}, numpy {machine['versions'].get('numpy')}, torch "
        f"{machine['versions'].get('torch')}, jax {machine['versions'].get('jax')}; scale "
        f"{results['settings']['scale']:g}",
        fontsize="x-small",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Entry point


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _name_list(what: str, known: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of names from ``known`` (``what`` they are)."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what}(s) {', '.join(unknown) or '(none given)'}; "
                f"expected a comma-separated list of {', '.join(known)}"
            )
        return names

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workloads",
        type=_name_list("workload", list(WORKLOADS)),
        default=list(WORKLOADS),
        metavar="W1a,W3,...",
        help="workloads to run, comma-separated (default: all: " + ", ".join(WORKLOADS) + ")",
    )
    parser.add_argument("--repeat", type=_positive_int, default=7, help="timed calls (7)")
    parser.add_argument(
        "--warmup", type=_positive_int, default=2, help="untimed calls before timing (2)"
    )
    parser.add_argument(
        "--max-time",
        type=_positive_float,
        default=30.0,
        help="seconds of timed calls per implementation before fewer repeats (min 3) are "
        "used (30)",
    )
    parser.add_argument(
        "--settle",
        type=_non_negative_float,
        default=2.5,
        help="seconds to wait before timing each implementation, so that memory freed by the "
        "previous one (reported to the hypervisor ~2 s later on VMs) is not charged to it "
        "(2.5; 0 to skip)",
    )
    parser.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="multiply every workload's N (not W7's) by this; 0.01 makes a quick smoke test",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the inputs (0)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="Numba (and PyTorch) threads (default: Numba's default)",
    )
    parser.add_argument(
        "--peers",
        type=_name_list("peer", PEER_LIBRARIES),
        default=None,
        metavar="torch,jax,...",
        help="only these peers, comma-separated: "
        + ", ".join(PEER_LIBRARIES)
        + " (torch is eager PyTorch; torch.compile compiles each workload once, 10-30 s on a "
        "cold Inductor cache, its compile time in its own column); default: all installed",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also measure fastce's peak extra memory per workload (a fresh process each; slow)",
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="measure memory only, no timings"
    )
    parser.add_argument("--json", metavar="FILE", help="write all results to FILE")
    parser.add_argument("--plot", metavar="FILE.png", help="draw a bar chart (matplotlib)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The one parser of ``python -m bench.compare``, ``fastce bench`` and
    ``python -m fastce.benchmark``: only ``prog`` differs."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time fastce and every installed peer (PyTorch eager and torch.compile, "
        "jax.jit, SciPy, scikit-learn, NumPy) on the same arrays and print the table: median "
        "time, GB/s of input, ratio to fastce, fraction of the measured memory bandwidth, "
        "compile time of the compiled peers; then each workload's fastest peer.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace, out: Any = None) -> dict[str, Any]:
    """Run the benchmark described by parsed ``args``; print the table; return the results."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    libraries = set(args.peers) if args.peers else None
    results: dict[str, Any] = {
        "settings": {
            "workloads": args.workloads,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "max_time_s": args.max_time,
            "settle_s": args.settle,
            "scale": args.scale,
            "seed": args.seed,
            "peers": sorted(libraries) if libraries else "all installed",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
        "bandwidth": None,
        "workloads": [],
    }
    if not args.memory_only:
        # A smoke run (--scale < 1) probes a smaller array; 64 MiB is still beyond the caches.
        nbytes = max(64 * 2**20, int(BANDWIDTH_BYTES * min(args.scale, 1.0)))
        bandwidth = measure_bandwidth(nbytes)
        results["bandwidth"] = bandwidth
    if not args.memory_only and (libraries is None or "jax" in libraries):
        # Before anything else imports jax, so that its XLA thread flags still take effect.
        _jax()
    results["machine"] = machine_description()
    machine = results["machine"]
    if JAX_THREADS:
        machine["jax_threads"] = dict(JAX_THREADS)
    say(
        f"fastce {fastce.__version__} benchmark on {machine['cpu']} "
        f"({machine['usable_cores']} cores, {machine['numba_threads']} threads)"
    )
    say(
        "versions: "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v is not None)
    )
    if results["bandwidth"]:
        bandwidth = results["bandwidth"]
        say(
            f"memory read bandwidth: {bandwidth['gbps']:.1f} GB/s (parallel Numba sum over "
            f"{bandwidth['bytes'] / 2**20:.0f} MiB, median of {bandwidth['runs']}; "
            f"best {bandwidth['best_gbps']:.1f} GB/s)"
        )
    load = machine["load_average"]
    if load and load[0] > 0.5:
        # Other processes hold cores: a parallel region waits for a descheduled thread,
        # which can cost milliseconds per call. Compare only ratios taken in one run.
        say(
            f"note: load average {load[0]:.2f} before the run: other processes are busy, "
            "timings will be noisy"
        )
    if args.scale != 1:
        say(
            f"scale {args.scale:g}: every N (but W7's; W1e's d instead) multiplied by "
            f"{args.scale:g}"
        )
    if not args.memory_only:
        threads = numba.get_num_threads()
        say(
            f"threads: {threads} for fastce, PyTorch and torch.compile (torch.set_num_threads)"
            + (f"; jax: {JAX_THREADS['note']}" if JAX_THREADS else "")
        )
        say(
            f"median of {args.repeat} after {args.warmup} warm-up calls; ratio = time / fastce "
            "time; %bw = fastce's GB/s of input / bandwidth; compile: first call of a "
            "torch.compile/jax.jit peer, not in its times; check: value within "
            f"{RTOL['float64']:g} (float64) / {RTOL['float32']:g} (float32) / "
            f"{RTOL['bfloat16']:g} (bfloat16) of fastce's"
        )
        say()
        say(HEADER)
        say("-" * len(HEADER))
        for name in args.workloads:
            result = run_workload(
                WORKLOADS[name],
                scale=args.scale,
                seed=args.seed,
                repeat=args.repeat,
                warmup=args.warmup,
                max_time=args.max_time,
                bandwidth_gbps=results["bandwidth"]["gbps"],
                libraries=libraries,
                settle=args.settle,
            )
            results["workloads"].append(result)
            for line in format_rows(result):
                say(line)
        say()
        say("Fastest peer of each workload, compiled or not; ratio = its time / fastce's time:")
        say(f"{'workload':<9}{'fastest peer':<37}{'its time':>11}{'fastce':>11}{'ratio':>9}")
        for result in results["workloads"]:
            say(format_fastest(result))
        problems = [
            f"{w['name']} {r['implementation']}: "
            + (r["error"] if "error" in r else f"rel. diff {r.get('rel_diff', math.nan):.2e}")
            for w in results["workloads"]
            for r in w["results"]
            if "error" in r or ("agrees" in r and not r["agrees"] and r["library"] != "fastce")
        ]
        if problems:
            say()
            say("!! Disagreements and errors:")
            for line in problems:
                say("   " + line)
    if args.memory or args.memory_only:
        say()
        say("Peak extra memory of fastce (beyond inputs and result; a fresh process each):")
        say(f"{'workload':<9}{'inputs':>12}{'extra':>12}{'RSS peak':>12}{'tracemalloc':>13}")
        by_name = {w["name"]: w for w in results["workloads"]}
        memory = []
        for name in args.workloads:
            m = measure_memory(name, args.scale, args.seed, numba.get_num_threads())
            memory.append(m)
            if name in by_name:
                by_name[name]["memory"] = m
            if "error" in m:
                say(f"{name:<9}  ERROR {m['error']}")
                continue
            rss = m["rss_peak_extra_mib"]
            say(
                f"{name:<9}{m['input_bytes'] / 2**20:>8.1f} MiB{m['extra_mib']:>8.2f} MiB"
                f"{(f'{rss:.2f} MiB' if rss is not None else 'n/a'):>12}"
                f"{m['tracemalloc_peak_mib']:>9.2f} MiB"
            )
        results["memory"] = memory
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        say()
        say(f"results written to {args.json}")
    if args.plot and results["workloads"]:
        plot(results, args.plot)
        say(f"chart written to {args.plot}")
    return results


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``python -m fastce.benchmark [options]``; ``fastce bench`` and ``bench.compare`` too."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            numba.set_num_threads(args.threads)
        except ValueError as exc:  # more than NUMBA_NUM_THREADS
            parser.error(f"--threads {args.threads}: {exc}")
    if args.memory_child:
        print(json.dumps(measure_memory_here(args.memory_child, args.scale, args.seed)))
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'fastce[bench]'")
    run(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog="python -m fastce.benchmark"))
