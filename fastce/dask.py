"""fastce on Dask arrays: the same functions, for data split into blocks across threads,
processes or machines.

``fastce.dask`` has fastce's public functions under the same names and with the same
arguments (less ``out=``), taking Dask arrays (NumPy arrays and lists are converted):

* ``reduction="none"``, and ``logsumexp``, ``log_softmax`` and ``softmax``, return a lazy Dask
  array: each block is scored by the in-memory function, so every value is the in-memory value,
  bit for bit.
* ``reduction="sum"`` and ``"mean"``, ``perplexity`` and ``log_loss`` return a NumPy scalar (a
  float for ``log_loss``), computed when called: each block feeds a :class:`fastce.Accumulator`,
  the exact states are merged in a tree (``split_every`` at a time) and rounded once at the
  root. Integer addition is associative, so the result equals the in-memory one bit for bit
  whatever the chunking, whichever worker ran which block and whichever blocks were recomputed
  after a worker was lost. :func:`accumulate` gives the same as a lazy ``Delayed`` of a
  :class:`fastce.Result`.
* :func:`compare` (two models side by side) returns a :class:`fastce.ComparisonResult`,
  computed when called: a :class:`fastce.Comparison` per block, merged in the same tree; its
  means, rates and counts have the in-memory bits, its quantiles come from merged sketches.

The class axis must be in one chunk (each sample's classes in one block); a split class axis is
a ``ValueError`` naming the argument, not a silent rechunk (which would cost a shuffle). The
batch axes may be chunked freely: the inputs' chunks are unified (``dask.array.core.
unify_chunks``) before the blocks are paired.

Numba threads: each block sets the Numba thread count of the thread that runs it
(``numba.set_num_threads`` is per calling thread), so that Dask's threads times Numba's threads
do not exceed the cores. :func:`configure_workers` sets it per host on a distributed cluster and
warms Numba's on-disk cache before the workers use it (worker processes that compile the same
kernels into one cache directory at once can crash, numba#4807). See docs/scaling.md.

``import fastce`` does not import Dask; ``import fastce.dask`` does.
"""

from __future__ import annotations

import inspect
import numbers
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed, delayed

from . import _dask_plans as plans
from . import _validate as v
from ._dask_blocks import (
    block,
    compare_block,
    merge_comparisons,
    merge_states,
    result,
)
from ._dask_plans import Plan
from ._measures import MEASURES, Measure
from .accumulator import MEASURES as ACCUMULATED
from .accumulator import Accumulator
from .comparison import Comparison, ComparisonResult
from .losses import batchmean

__all__ = ["SPLIT_EVERY", "accumulate", "compare", "configure_workers", *sorted(MEASURES)]

SPLIT_EVERY = 8
"""How many accumulator states one merge task combines (the fan-in of the tree)."""

# Arguments that are arrays of one entry per sample, chunked with the batch: not options.
_PER_SAMPLE = ("sample_weight", "where", "groups")

# ---------------------------------------------------------------------------------------------
# Graphs


def _map(plan: Plan) -> da.Array:
    """The lazy ``"none"`` output: the in-memory function on each block."""
    plan.align()
    return da.map_blocks(
        block,
        *plan.arrays,
        call=plan.call(None),
        drop_axis=plan.drop,
        dtype=plan.dtype,
        meta=np.empty((0,) * plan.out_ndim, plan.dtype),
        token=f"fastce-{plan.function}",
    )


def _merged_state(
    plan: Plan,
    split_every: int | None,
    task: Callable[..., Any] = block,
    merge: Callable[..., bytes] = merge_states,
) -> Delayed:
    """A ``Delayed`` of the merged state (bytes) of every block: by default an accumulator's
    (``block`` with the plan's measure), else what ``task`` makes of a block and ``merge`` of
    several such states."""
    if plan.measure is None and task is block:
        raise TypeError(f"{plan.function} has no sum or mean")
    fan_in = SPLIT_EVERY if split_every is None else int(split_every)
    if fan_in < 2:
        raise ValueError(f"split_every must be an integer >= 2; got {split_every!r}")
    plan.align()
    first = plan.arrays[0]
    out_axes = [ax for ax in range(plan.ndim) if ax not in plan.drop]
    states = da.map_blocks(
        task,
        *plan.arrays,
        call=plan.call(plan.measure),
        drop_axis=plan.drop,
        chunks=tuple((1,) * first.numblocks[ax] for ax in out_axes),
        dtype=object,
        meta=np.empty((0,) * len(out_axes), object),
        token=f"fastce-{plan.measure or plan.function}-state",
    )
    parts: list[Any] = list(states.to_delayed().ravel())
    while len(parts) > fan_in:
        parts = [
            delayed(merge, pure=True)(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)
        ]
    return delayed(merge, pure=True)(*parts)


def _grouped(plan: Plan, reduction: str | None) -> np.ndarray:
    """With ``groups=``: the ``"sum"``, ``"mean"`` or (``None``) perplexity of each group, a
    1-D array of the in-memory function's dtype, computed now."""
    (blob,) = dask.compute(_merged_state(plan, None))
    res = result(blob, grouped=True, n_groups=plan.n_groups)
    values = res.perplexity if reduction is None else res.sum if reduction == "sum" else res.mean
    return np.asarray(values).astype(plan.dtype, copy=False)


def _scalar(plan: Plan, reduction: str, positions: int) -> Any:
    """``"sum"``/``"mean"`` (``"batchmean"``, over ``positions``) computed now, as the in-memory
    function's scalar type."""
    (blob,) = dask.compute(_merged_state(plan, None))
    res = result(blob)
    if reduction == "batchmean":
        return batchmean(res.sum64, positions, plan.dtype)
    return plan.dtype.type(res.sum if reduction == "sum" else res.mean)


def _first_axis(m: Measure, arrays: Sequence[Any], axis: Any) -> int:
    """The length of the first batch axis of a row measure's predictions (``"batchmean"``)."""
    length = v.first_axis_length(np.shape(arrays[-1]), axis, m.layout == "rows")
    if not isinstance(length, numbers.Integral):
        raise ValueError(
            'reduction="batchmean" needs the length of the first batch axis; it is unknown '
            "(NaN chunk sizes): call compute_chunk_sizes() on the arrays first"
        )
    return int(length)


# ---------------------------------------------------------------------------------------------
# In-memory parameters the Dask functions do not take: a per-sample output array.
_IN_MEMORY_ONLY = ("out",)

# The public functions: generated from the table of measures and the in-memory signatures


def _call(m: Measure, bound: dict[str, Any]) -> Any:
    """``fastce.dask.<m.name>`` called with ``bound`` (every argument, defaults applied)."""
    arrays = [bound.pop(name) for name in m.arrays]
    weight = bound.pop("sample_weight", None)
    mask = bound.pop("where", None)
    groups = bound.pop("groups", None)
    n_groups = bound.pop("n_groups", None)
    if m.ending == "array":
        return _map(plans.plan(m, arrays, bound, None, None))
    if m.ending == "reduction":
        reduction = v.check_reduction(bound.pop("reduction"), batchmean=m.name == "kl_divergence")
        plan = plans.plan(m, arrays, bound, reduction, weight, mask, groups, n_groups)
        if groups is not None:
            return _grouped(plan, reduction)
        if reduction == "none":
            return _map(plan)
        batchmean = reduction == "batchmean"
        positions = _first_axis(m, arrays, bound.get("axis", -1)) if batchmean else 0
        return _scalar(plan, reduction, positions)
    normalize = bound.pop("normalize", True)
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool; got {normalize!r}")
    total = None if m.ending == "perplexity" else "sum"  # perplexity has no reduction=
    plan = plans.plan(m, arrays, bound, total, weight, mask, groups, n_groups)
    if groups is not None:
        return _grouped(plan, None)
    (blob,) = dask.compute(_merged_state(plan, None))
    res = Accumulator.from_bytes(blob).result()
    # perplexity and log_loss work from the float64 sums, also for float32 data, as their
    # in-memory versions do (a perplexity state's result has fastce.perplexity's bits).
    if m.ending == "perplexity":
        return plan.dtype.type(res.perplexity)
    if not normalize:
        return res.sum64
    if res.weight == 0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return res.sum64 / res.weight


_CHUNKS = {
    "rows": (
        "The class axis (``axis``) must be in one chunk: a split class axis is a ``ValueError``"
        " naming the argument, not a silent rechunk. The batch axes may be chunked freely, and"
        " the inputs' chunks need not match."
    ),
    "elements": (
        "Every axis may be chunked, and the inputs' chunks need not match. With"
        ' ``reduction="sum"`` or ``"mean"`` one accumulator holds one ``pos_weight``, so every'
        " axis along which ``pos_weight`` varies must be in one chunk. A 1-D ``sample_weight`` of"
        " length ``N`` is one weight per row of an ``(N, ...)`` input, as in memory."
    ),
    "labels": (
        "``y_proba``'s class axis must be in one chunk. ``labels=`` is required: a block cannot"
        " infer the label set from the labels it holds."
    ),
    "transform": "The class axis (``axis``) must be in one chunk.",
}

_RETURNS = {
    "reduction": (
        "dask.array.Array or NumPy scalar",
        'With ``reduction="none"``, a lazy Dask array: each block is scored by the in-memory '
        'function, so every value is its value, bit for bit. With ``"sum"`` or ``"mean"``, a '
        "NumPy scalar computed now from exact states merged in a tree: the same bits as "
        ":func:`fastce.{name}` on the whole arrays, whatever the chunking. With ``groups=``, "
        "a 1-D NumPy array, one entry per group, computed now.",
    ),
    "perplexity": (
        "NumPy scalar",
        "Computed now; the same bits as :func:`fastce.{name}` on the whole arrays (the "
        "exponential of the float64 mean, rounded to float32 for float32 input). With "
        "``groups=``, a 1-D NumPy array, one perplexity per group.",
    ),
    "log_loss": (
        "float",
        "Computed now; the same bits as :func:`fastce.{name}` on the whole arrays.",
    ),
    "array": (
        "dask.array.Array",
        "Lazy; each value that of :func:`fastce.{name}`.",
    ),
}

_EXAMPLES = {
    "entropy": """
    >>> p = da.from_array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], chunks=(2, 3))
    >>> fastce.dask.entropy(p, base=2).compute()
    array([1.5, 0. , 1. ])
    >>> fastce.dask.entropy(p, base=2, reduction="mean")
    np.float64(0.8333333333333334)""",
    "cross_entropy": """
    >>> logits = da.from_array(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]]),
    ...                        chunks=(1, 3))
    >>> labels = da.from_array(np.array([0, 2, 1]), chunks=2)
    >>> fastce.dask.cross_entropy(labels, logits, from_logits=True).round(4).compute()
    array([0.2413, 0.1096, 1.0986])
    >>> mean = fastce.dask.cross_entropy(labels, logits, from_logits=True, reduction="mean")
    >>> mean == fastce.cross_entropy(labels.compute(), logits.compute(), from_logits=True,
    ...                              reduction="mean")
    np.True_""",
    "perplexity": """
    >>> pred = da.full((6, 4), 0.25, chunks=(4, 4))
    >>> labels = da.from_array([0, 3, 1, 2, 2, 1], chunks=3)
    >>> fastce.dask.perplexity(labels, pred)
    np.float64(4.0)""",
    "kl_divergence": """
    >>> P = da.from_array([[0.10, 0.40, 0.50], [0.5, 0.5, 0.0]], chunks=(1, 3))
    >>> Q = da.from_array([[0.80, 0.15, 0.05], [0.5, 0.5, 0.0]], chunks=(2, 3))
    >>> fastce.dask.kl_divergence(P, Q, base=2).round(3).compute()
    array([1.927, 0.   ])""",
    "js_divergence": """
    >>> P = da.from_array([[1.0, 0.0], [0.5, 0.5]], chunks=(1, 2))
    >>> Q = da.from_array([[0.0, 1.0], [0.5, 0.5]], chunks=(1, 2))
    >>> fastce.dask.js_divergence(P, Q, base=2, reduction="sum")
    np.float64(1.0)""",
    "binary_cross_entropy": """
    >>> y = da.from_array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], chunks=4)
    >>> p = da.from_array([0.8, 0.9, 0.9, 0.6, 0.8, 0.1, 0.4, 0.2, 0.1, 0.3], chunks=3)
    >>> round(float(fastce.dask.binary_cross_entropy(y, p, reduction="mean")), 3)
    0.247""",
    "log_loss": """
    >>> y = da.from_array(["spam", "ham", "ham", "spam"], chunks=2)
    >>> p = da.from_array([[.1, .9], [.9, .1], [.8, .2], [.35, .65]], chunks=(3, 2))
    >>> round(fastce.dask.log_loss(y, p, labels=["ham", "spam"]), 5)
    0.21616""",
    "logsumexp": """
    >>> fastce.dask.logsumexp(da.zeros((4, 2), chunks=(3, 2))).compute().round(6)
    array([0.693147, 0.693147, 0.693147, 0.693147])""",
    "log_softmax": """
    >>> fastce.dask.log_softmax(da.zeros((3, 2), chunks=(2, 2))).compute().round(6)
    array([[-0.693147, -0.693147],
           [-0.693147, -0.693147],
           [-0.693147, -0.693147]])""",
    "softmax": """
    >>> fastce.dask.softmax(da.zeros((3, 2), chunks=(2, 2))).compute()
    array([[0.5, 0.5],
           [0.5, 0.5],
           [0.5, 0.5]])""",
}


def _fill(text: str, indent: int) -> str:
    pad = " " * indent
    return textwrap.fill(text, 96, initial_indent=pad, subsequent_indent=pad).lstrip()


def _per_sample_doc(m: Measure, per_sample: Sequence[str]) -> str:
    """The Parameters entry of the per-sample arrays (``sample_weight``, ``where``)."""
    if not per_sample:
        return ""
    text = (
        f"As in :func:`fastce.{m.name}`, as Dask arrays (NumPy arrays are converted) chunked"
        " freely along the batch axes: their chunks are unified with the inputs', so that each"
        " block gets the entries of its own samples."
    )
    if "where" in per_sample:
        text += (
            ' A masked-out sample gives 0.0 with ``reduction="none"`` and counts for nothing in'
            ' ``"sum"`` and ``"mean"``; its values are never read.'
        )
    if "groups" in per_sample:
        text += (
            " ``groups`` (integer ids) gives one result per group: a 1-D NumPy array of length"
            " ``n_groups`` (default: the largest id kept plus one), each entry the bits of the"
            " in-memory ``groups=`` result; the ids are checked per block, at compute time."
        )
    return f"""    {", ".join(per_sample)} : dask.array.Array or array_like, optional
        {_fill(text, 8)}
"""


def _doc(m: Measure, options: Sequence[str], per_sample: Sequence[str]) -> str:
    """The Dask function's docstring: the in-memory summary and formula, then what differs."""
    text = inspect.getdoc(m.function) or ""
    summary = " ".join(text.split("\n\n", 1)[0].split()).rstrip(".")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(".. math::"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), None)
    formula = "\n    ".join(lines[start:end])
    kind, returns = _RETURNS[m.ending]
    less = [f"``{p}=``" for p in _IN_MEMORY_ONLY if p in m.options]
    less_out = (
        f" (less {', '.join(less[:-1])} and {less[-1]})"
        if len(less) > 1
        else (f" (less {less[0]})" if less else "")
    )
    arguments = (
        f"The arguments of :func:`fastce.{m.name}`{less_out}, as Dask arrays (NumPy arrays and "
        f"lists are converted). {_CHUNKS[m.layout]}"
    )
    imports = "import numpy as np, dask.array as da, fastce, fastce.dask"
    return f"""{_fill(summary + ", on Dask arrays.", 4)}

    {formula}

    {_fill(arguments, 4)}

    Parameters
    ----------
    {", ".join(m.arrays)} : dask.array.Array or array_like
        As in :func:`fastce.{m.name}`.
{_per_sample_doc(m, per_sample)}    {", ".join(options)}
        As in :func:`fastce.{m.name}`; option arrays are small NumPy arrays sent with every
        block.

    Returns
    -------
    {kind}
        {_fill(returns.format(name=m.name), 8)}

    Raises
    ------
    ValueError, TypeError
        What :func:`fastce.{m.name}` raises, before anything is computed for the arguments'
        shapes, chunks and options; at compute time for the data itself, with the position in
        the whole array and the block named.

    See Also
    --------
    fastce.{m.name}{", accumulate" if m.ending != "array" else ""}

    Examples
    --------
    >>> {imports}{_EXAMPLES[m.name]}
    """


def _generate(name: str) -> Callable[..., Any]:
    m = MEASURES[name]
    public = inspect.signature(m.function)
    signature = public.replace(
        parameters=[p for p in public.parameters.values() if p.name not in _IN_MEMORY_ONLY]
    )

    def function(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return _call(MEASURES[name], dict(bound.arguments))

    function.__name__ = function.__qualname__ = name
    function.__module__ = __name__
    function.__signature__ = signature  # type: ignore[attr-defined]
    per_sample = [p for p in signature.parameters if p in _PER_SAMPLE]
    options = [p for p in signature.parameters if p not in m.arrays and p not in per_sample]
    function.__doc__ = _doc(m, options, per_sample)
    return function


entropy = _generate("entropy")
cross_entropy = _generate("cross_entropy")
perplexity = _generate("perplexity")
kl_divergence = _generate("kl_divergence")
js_divergence = _generate("js_divergence")
binary_cross_entropy = _generate("binary_cross_entropy")
log_loss = _generate("log_loss")
logsumexp = _generate("logsumexp")
log_softmax = _generate("log_softmax")
softmax = _generate("softmax")


def accumulate(
    measure: str,
    *arrays: Any,
    sample_weight: Any = None,
    where: Any = None,
    groups: Any = None,
    n_groups: int | None = None,
    split_every: int | None = None,
    **options: Any,
) -> Delayed:
    """A lazy :class:`fastce.Result` of ``measure`` over Dask arrays: per block an
    :class:`fastce.Accumulator`, the states merged in a tree.

    The lazy form of ``reduction="sum"``/``"mean"``: compute several measures in one pass over
    the data with ``dask.compute(a, b)``, or hand it to ``client.compute``.

    Parameters
    ----------
    measure : str
        ``"entropy"``, ``"cross_entropy"``, ``"binary_cross_entropy"``, ``"kl_divergence"``,
        ``"js_divergence"`` or ``"log_loss"`` (then ``labels=`` is required).
    *arrays : dask.array.Array or array_like
        The positional arrays of that function (``p``; ``target, pred``; ``y_true, y_proba``).
    sample_weight : dask.array.Array or array_like, optional
        As the function's ``sample_weight``.
    where : dask.array.Array or array_like of bool, optional
        As the function's ``where`` (not for ``"log_loss"``): the samples to score, a Dask
        boolean array of the batch's shape (or one that broadcasts to it), chunked freely.
    groups : dask.array.Array or array_like of int, optional
        As the function's ``groups`` (not for ``"log_loss"``): each sample's group id, a Dask
        integer array that broadcasts to the batch's shape, chunked freely. The result then
        holds one entry per group id (arrays), as the in-memory ``groups=`` result.
    n_groups : int, optional
        As the function's ``n_groups``: the number of groups (the length of the result's
        arrays; ids kept must be below it). Default: the largest id kept plus one.
    split_every : int, optional
        How many states one merge task combines (default :data:`SPLIT_EVERY`). The result
        does not depend on it.
    **options
        That function's keyword options, as for :class:`fastce.Accumulator`.

    Returns
    -------
    dask.delayed.Delayed
        Computes to a :class:`fastce.Result` (``mean``, ``sum``, ``count``, ``weight``) equal
        to ``fastce.Accumulator(measure, **options)`` updated with all the data at once.

    Examples
    --------
    >>> import dask, dask.array as da, fastce.dask
    >>> p = da.from_array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]], chunks=(2, 2))
    >>> (res,) = dask.compute(fastce.dask.accumulate("entropy", p, base=2))
    >>> res.count, round(res.mean, 6)
    (3, 0.603759)
    >>> keep = da.from_array([True, False, True], chunks=2)
    >>> (res,) = dask.compute(fastce.dask.accumulate("entropy", p, base=2, where=keep))
    >>> res.count, round(res.mean, 6)
    (2, 0.905639)
    >>> ids = da.from_array([1, 1, 0], chunks=1)
    >>> (res,) = dask.compute(fastce.dask.accumulate("entropy", p, base=2, groups=ids,
    ...                                              n_groups=3))
    >>> res.count, res.sum.round(6)
    (array([1, 2, 0]), array([0.811278, 1.      , 0.      ]))
    """
    if not isinstance(measure, str) or measure not in ACCUMULATED:
        Accumulator(measure)  # raises the accumulator's error
    m = MEASURES[measure]
    if len(arrays) != m.arity:
        names = "one array (p)" if m.arity == 1 else "two arrays (target, pred)"
        raise TypeError(f"accumulate({measure!r}) takes {names}; got {len(arrays)}")
    Accumulator(measure, **options)  # option names and values, checked now
    if where is not None and "where" not in m.options:
        raise TypeError(f"{measure!r} takes no where= mask")
    if (groups is not None or n_groups is not None) and "groups" not in m.options:
        raise TypeError(f"{measure!r} takes no groups=")
    defaults = {k: d for k, d in m.options.items() if k not in _NOT_OPTIONS}
    reduction = None if m.ending == "perplexity" else "sum"  # perplexity has no reduction=
    plan = plans.plan(
        m, arrays, {**defaults, **options}, reduction, sample_weight, where, groups, n_groups
    )
    grouped = groups is not None
    return delayed(result, pure=True)(_merged_state(plan, split_every), grouped, plan.n_groups)


_NOT_OPTIONS = ("reduction", *_PER_SAMPLE, "normalize", "out", "groups", "n_groups")


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
    r"""Compare a candidate model's predictions with a reference model's, on Dask arrays.

    .. math::

        \mathrm{KL}(P \,\|\, Q) = \sum_c p_c \log \frac{p_c}{q_c}, \qquad
        \Delta p = q_y - p_y, \qquad \mathrm{CE}_P = -\log p_y, \quad \mathrm{CE}_Q = -\log q_y

    per sample, for the reference ``P``, the candidate ``Q`` and the target class ``y``, as
    :func:`fastce.compare` computes them. Each block updates a :class:`fastce.Comparison`; the
    states (``to_bytes``, a few KiB) are merged in a tree, :data:`SPLIT_EVERY` at a time, and
    the result is computed when called (as the other reductions of ``fastce.dask``).

    The arguments of :func:`fastce.compare`, as Dask arrays (NumPy arrays and lists are
    converted). The class axis (``axis``) of ``reference`` and ``candidate`` must be in one
    chunk: a split class axis is a ``ValueError`` naming the argument, not a silent rechunk.
    The batch axes may be chunked freely, and the inputs' chunks need not match: they are
    unified before the blocks are paired.

    Parameters
    ----------
    reference, candidate : dask.array.Array or array_like
        As in :func:`fastce.compare`: the same shape, logits or probabilities along ``axis``.
    target : dask.array.Array or array_like of int, optional
        Class indices of the batch's shape (the predictions' shape without ``axis``).
    sample_weight, where, groups : dask.array.Array or array_like, optional
        As in :func:`fastce.compare`, chunked freely along the batch axes (their chunks are
        unified with the inputs'). ``groups`` (integer ids) gives every figure per group,
        ``max id kept + 1`` groups over all the blocks; the ids are checked per block, at
        compute time.
    from_logits, axis, base, ignore_index, temperature
        As in :func:`fastce.compare`.

    Returns
    -------
    ComparisonResult
        Computed now. Means, standard errors, RMS, rates, cross-entropies, perplexities,
        counts, minima and maxima have the bits of :func:`fastce.compare` on the whole arrays,
        whatever the chunking (exact sums, merged exactly). Quantiles come from the merged REQ
        sketches (``method="req"``; ``pip install 'fastce[compare]'``), each within its
        ``rank_error`` in rank of the exact in-memory quantile.

    Raises
    ------
    ValueError, TypeError
        What :func:`fastce.compare` raises, before anything is computed for the arguments'
        shapes, chunks and options; at compute time for the data itself, with the position in
        the whole array and the block named.

    See Also
    --------
    fastce.compare, fastce.Comparison

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastce, fastce.dask
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 8))
    >>> cand = ref + 0.1 * rng.normal(size=(1000, 8))
    >>> y = rng.integers(0, 8, 1000)
    >>> r = fastce.dask.compare(da.from_array(ref, chunks=(300, 8)),
    ...                         da.from_array(cand, chunks=(250, 8)),
    ...                         da.from_array(y, chunks=400), from_logits=True)
    >>> r.n_samples, r.kl.method
    (1000, 'req')
    >>> in_memory = fastce.compare(ref, cand, y, from_logits=True)
    >>> bool(r.kl.mean == in_memory.kl.mean), bool(r.top1_agreement == in_memory.top1_agreement)
    (True, True)
    """
    options: dict[str, Any] = {
        "from_logits": from_logits,
        "axis": axis,
        "base": base,
        "ignore_index": ignore_index,
        "temperature": temperature,
    }
    Comparison(**options)  # the options' checks, now
    plan = plans.plan_compare(reference, candidate, target, options, sample_weight, where, groups)
    (blob,) = dask.compute(_merged_state(plan, None, compare_block, merge_comparisons))
    return Comparison.from_bytes(blob).result()


# ---------------------------------------------------------------------------------------------
# Distributed workers


def configure_workers(
    client: Any,
    numba_threads: int | None = None,
    *,
    warmup: bool = True,
    progress: bool = True,
) -> dict[str, int | None]:
    """Prepare a ``distributed`` cluster's workers for fastce: a warm Numba cache, and Numba
    threads that do not oversubscribe the cores.

    1. With ``warmup=True``: compile (or load) every kernel common calls use
       (``python -m fastce warmup``, and the accumulator's own kernels) in this process, then
       in one worker per host, then in the other workers, which then only load from the cache.
       Worker processes that compile the same kernels into one cache directory at the same
       time can crash (numba#4807); this way only one process per host ever writes. With a
       warm cache this takes about a second; with a cold one, as long as ``fastce warmup``
       on each host (minutes on a small machine). Each step is reported as it ends.
    2. Registers a worker plugin (``"fastce-numba-threads"``, applied again to workers that
       join or restart later) that sets how many Numba threads each task thread uses:
       ``numba_threads`` if given, else ``cores // threads`` per host, ``cores`` the CPUs a
       worker may use and ``threads`` the Dask threads of all workers on that host. Each block
       task then calls ``numba.set_num_threads`` itself, since the setting is per thread.

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster.
    numba_threads : int, optional
        Numba threads per task thread on every worker.
    warmup : bool, default True
        Warm the Numba cache as described.
    progress : bool, default True
        Write one line per step as it ends, and the total time, to standard error.

    Returns
    -------
    dict
        ``{worker address: Numba threads per task thread}``.

    Notes
    -----
    Without this, blocks use ``NUMBA_NUM_THREADS // (the worker's Dask threads)`` Numba
    threads: right for one worker process per host, too many for several (``LocalCluster``
    starts several). Another way is to start workers with ``NUMBA_NUM_THREADS`` in their
    environment (``dask worker --nworkers 4 --nthreads 1`` with ``NUMBA_NUM_THREADS=2`` on an
    8-core host; ``LocalCluster(..., env={"NUMBA_NUM_THREADS": "1"})``). Kernels for inputs
    that are not C-contiguous are compiled on first use, not here: run one small computation
    on such data on one worker before the whole cluster meets it.
    """
    from . import _dask_worker as worker_side

    if numba_threads is not None and (
        isinstance(numba_threads, bool)
        or not isinstance(numba_threads, (int, np.integer))
        or numba_threads < 1
    ):
        raise ValueError(f"numba_threads must be a positive integer; got {numba_threads!r}")
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025: every worker is listed anyway
        workers = client.scheduler_info()["workers"]
    hosts: dict[str, list[str]] = {}
    for address, info in workers.items():
        hosts.setdefault(info["host"], []).append(address)
    started = time.perf_counter()

    def say(line: str) -> None:
        if progress:
            print(f"fastce.dask.configure_workers: {line}", file=sys.stderr, flush=True)

    if warmup:
        first = [addresses[0] for addresses in hosts.values()]
        rest = [a for addresses in hosts.values() for a in addresses[1:]]
        steps = [
            ("this process", lambda: worker_side.warm_cache()),
            (
                f"{len(first)} worker(s), one per host",
                lambda: client.run(worker_side.warm_cache, workers=first),
            ),
        ]
        if rest:
            steps.append(
                (
                    f"the other {len(rest)} worker(s), from the cache",
                    lambda: client.run(worker_side.warm_cache, workers=rest),
                )
            )
        for k, (where, step) in enumerate(steps, 1):
            t = time.perf_counter()
            step()
            seconds = time.perf_counter() - t
            say(f"[{k}/{len(steps)}] Numba cache warm in {where} ({seconds:.1f} s)")
    facts = client.run(worker_side.facts)
    per_host: dict[str, int] = {}
    for host, addresses in hosts.items():
        if numba_threads is not None:
            per_host[host] = int(numba_threads)
            continue
        threads = sum(int(workers[a]["nthreads"]) for a in addresses)
        per_host[host] = max(1, facts[addresses[0]]["cores"] // threads)
    plugin = worker_side.NumbaThreads(
        per_host, None if numba_threads is None else int(numba_threads)
    )
    client.register_plugin(plugin, name=worker_side.NumbaThreads.name)
    settings = dict(client.run(worker_side.numba_threads_setting))
    say(
        f"{len(settings)} worker(s) ready in {time.perf_counter() - started:.1f} s; Numba "
        f"threads per task thread: {', '.join(sorted({str(v) for v in settings.values()}))}"
    )
    return settings
