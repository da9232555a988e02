"""The row machinery, written once: every row measure is a *body* run by these drivers.

A body says the formula of one measure on one kind of input (``partials`` describes the
partials and their folds):

``block(ops, i, c0, c1, params, buf, buf64, wbuf)``
    the partial (a 6-tuple of float64) of columns [c0, c1) of row i; ``ops`` are the
    operands, ``params`` the measure's parameters (tuples), the buffers hold a block each.
    Compiled as a function of its own, once per dtype and layout.
``merge(st, part)``
    the fold of the next block's partial into a row's running partial (a function of its own:
    see ``partials``).
``finish(st, ops, i, params)``
    (the row's value in nats, its weight in a ``"mean"``, ok): ok is False when the row met
    an invalid value (inlined).
``status(ops, i, params)``
    0 for a row to compute, 1 for a row to skip (an ignored label), 2 for an invalid row
    (flagged); ``always_valid`` where every row counts.
``prologue(ops, i, params, buf)``
    the parameters row i's blocks are given: ``params`` itself (``same_params``, inlined to
    nothing) for most bodies; the call's parameters followed by what the whole row fixes
    before its first block (the log-sum-exp of a row of target logits, whose softmax each
    block needs). It reads the row once more while it is in cache, not a second pass over
    the data; ``buf`` is a block buffer it may use. The finish gets the call's ``params``.

``row_kernels`` turns each body of a family into its kernels, as the launcher
(``fastce._launch``) runs them, with the argument layout it describes:

* ``<name>_rows``: rows one after the other, each row's blocks folded in column order;
* ``<name>_tiles`` and ``<name>_fold``: for a few long rows, the partials of a range of tiles
  (a row's column blocks), which the launcher spreads over threads, then the fold of each
  row's partials in the same order, so the same bits as ``<name>_rows`` (bodies with the
  same merge, finish and status share one fold).

Each kernel is a module-level ``@njit(nogil=True, cache=True)`` function of its own, written
from a template when its family's module is imported, whose globals name its body: Numba
compiles, on a kernel's first call, only that body's code, and its on-disk cache serves the
kernel to later processes as any other function of the module. (A body passed as a value
from Python, or captured by a closure, would be part of the signature or the cache key with
an identity that changes from process to process: compiled again in every process.) The
drivers below are inlined into each kernel, with the body's functions as arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from ._common import (
    block_bounds,
    buffer_len,
    emit,
    emit_out_of_line,
    get,
    kept,
    n_blocks,
    put,
    weight_at,
)
from ._math import keep, unowned
from .exactsum import ACC_LEN, acc_value


@njit(cache=True)
def always_valid(ops, i, params):
    """The status of every row of a measure without class-index targets: computed."""
    return 0


@njit(inline="always", cache=True)
def same_params(ops, i, params, buf):
    """The prologue of a body whose blocks need nothing of the row beyond themselves."""
    return params


@njit(cache=True)
def skip_row(status, i, out, bad):
    """A row whose label is ignored (status 1) or invalid (2, flagged): its output is 0."""
    if status == 2:
        bad[0] = 1
    if out.shape[0] > 0:
        out[i] = 0.0


@njit(inline="always", cache=True)
def emit_row(emit, finish, st, ops, i, params, ln_base, sample_weight, out, acc, counts, bad):
    """Row i's value from its folded partial, in the requested base and weighted."""
    value, weight, ok = finish(st, ops, i, params)
    if not ok:
        bad[0] = 1
    sw = weight_at(sample_weight, i)
    emit(i, value / ln_base * sw, weight * sw, out, acc, counts)


@njit(inline="always", cache=True)
def rows(
    block, merge, finish, status, prologue, ops, params, ln_base, sample_weight, where, out,
    acc, counts, bad,
):  # fmt: skip
    """Every row of ``ops`` (``where`` allows): its blocks' partials folded in column order,
    then its value."""
    n, c = ops[0].shape
    nb = n_blocks(c)
    scratch = np.empty((3, buffer_len(c)))
    sc = unowned(scratch)
    buf, buf64, wbuf = sc[0], sc[1], sc[2]
    for i in range(n):
        state = status(ops, i, params) if kept(where, i) else 1
        if state != 0:
            skip_row(state, i, out, bad)
            continue
        row_params = prologue(ops, i, params, buf)
        # (block bounds as values, not the literal 0: one compiled block for every call site)
        c0, c1 = block_bounds(c, 0)
        st = block(ops, i, c0, c1, row_params, buf, buf64, wbuf)
        for b in range(1, nb):
            c0, c1 = block_bounds(c, b)
            st = merge(st, block(ops, i, c0, c1, row_params, buf, buf64, wbuf))
        emit_row(emit, finish, st, ops, i, params, ln_base, sample_weight, out, acc, counts, bad)
    keep(scratch)


@njit(inline="always", cache=True)
def tiles(block, status, prologue, ops, params, where, lo, t0, t1, part):
    """Partials of tiles [t0, t1) of the rows from ``lo`` on (tile t: row lo + t // nb, column
    block t % nb) into ``part``; rows to skip (or masked out by ``where``) are left out (the
    fold skips them). A row's prologue runs once per call, at its first tile of the range."""
    c = ops[0].shape[1]
    nb = n_blocks(c)
    scratch = np.empty((3, buffer_len(c)))
    row = lo + t0 // nb
    row_params = prologue(ops, row, params, scratch[0])
    for t in range(t0, t1):
        i = lo + t // nb
        if not kept(where, i) or status(ops, i, params) != 0:
            continue
        if i != row:
            row = i
            row_params = prologue(ops, i, params, scratch[0])
        c0, c1 = block_bounds(c, t % nb)
        put(part, t, block(ops, i, c0, c1, row_params, scratch[0], scratch[1], scratch[2]))


@njit(inline="always", cache=True)
def fold(
    merge, finish, status, ops, params, ln_base, sample_weight, where, lo, hi, part, out, acc,
    counts, bad,
):  # fmt: skip
    """Rows [lo, hi) from their tiles' partials, folded in block order as ``rows`` does."""
    nb = n_blocks(ops[0].shape[1])
    for r in range(hi - lo):
        i = lo + r
        state = status(ops, i, params) if kept(where, i) else 1
        if state != 0:
            skip_row(state, i, out, bad)
            continue
        st = get(part, r * nb)
        for b in range(1, nb):
            st = merge(st, get(part, r * nb + b))
        emit_row(
            emit_out_of_line, finish, st, ops, i, params, ln_base, sample_weight, out, acc,
            counts, bad,
        )  # fmt: skip


class Body(NamedTuple):
    """A measure's formula on one kind of input, as the drivers run it (see above)."""

    block: Any
    merge: Any
    finish: Any
    status: Any = always_valid
    prologue: Any = same_params


class RowKernels(NamedTuple):
    """A body's kernels: rows, and the tiles and fold of a few long rows; ``columns``, where
    there is one, is ``rows`` for rows stored class-major (adjacent in memory, each class a run
    of them), with the same arguments and values."""

    rows: Any
    tiles: Any
    fold: Any
    columns: Any = None


class Transform(NamedTuple):
    """A row transform's kernels (``logsumexp``): ``rows(x, out)``, and for a few long rows
    ``tiles(x, out, lo, t0, t1, m_row, s_row)``, which writes tiles from the rows' folded
    (M, S')."""

    rows: Any
    tiles: Any


_KERNEL_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}


def _define(module: str, source: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run ``source`` as if written in ``module``: its functions get the module's name (hence
    Numba's mangled names, and the kernels' vector width: see ``__init__``) and its file (where
    Numba's cache keeps them, stamped with the package's sources)."""
    namespace = {"__name__": module, **namespace}
    exec(compile(source, sys.modules[module].__file__ or module, "exec"), namespace)
    return namespace


def define_kernels(
    module: str, template: str, name: str, namespace: dict[str, Any], parts: Sequence[str]
) -> list[Any]:
    """The kernels ``<name>_<part>`` of ``template`` (formatted with ``name``), whose other
    globals are ``namespace``, defined in ``module`` (being imported) and compiled lazily."""
    defined = _define(module, template.format(name=name), namespace)
    return [njit(**_KERNEL_OPTIONS)(defined[f"{name}_{part}"]) for part in parts]


_BODY_TEMPLATE = """
def {{name}}_rows({args}, ln_base, sample_weight, where, out, acc, counts, bad):
    rows(block, merge, finish, status, prologue, {ops}, {params}, ln_base,
         unowned(sample_weight), unowned(where), unowned(out), unowned(acc), unowned(counts),
         unowned(bad))

def {{name}}_tiles({args}, ln_base, sample_weight, where, lo, t0, t1, part):
    tiles(block, status, prologue, {ops}, {params}, where, lo, t0, t1, part)
"""

_FOLD_TEMPLATE = """
def {{name}}_fold({args}, ln_base, sample_weight, where, lo, hi, part, out, acc, counts,
                  bad):
    fold(merge, finish, status, {ops}, {params}, ln_base, sample_weight, where, lo, hi, part,
         out, acc, counts, bad)
"""


def _tuple(names: Sequence[str], unown: Sequence[str]) -> str:
    """Source of the tuple of ``names``, those in ``unown`` passed through ``unowned``."""
    return "(" + "".join(f"unowned({n}), " if n in unown else f"{n}, " for n in names) + ")"


def row_kernels(
    module: str,
    operands: Sequence[str],
    params: Sequence[str],
    bodies: dict[str, Body],
    array_params: Sequence[str] = (),
) -> dict[str, RowKernels]:
    """The kernels of each body of a family, named ``<name>_rows`` and so on, defined in
    ``module`` (the family's, which is being imported). Every body of a family takes the same
    ``operands`` (row arrays, the first (n, C)) and ``params`` (names, for the signature), of
    which ``array_params`` are arrays: like the operands, the kernels pass them on without
    their owner (``_math.unowned``), so that a body unpacking them touches no reference count
    (an atomic instruction per row: measured 20% of a soft cross-entropy row of 4 classes)."""
    fields = {
        "args": ", ".join([*operands, *params]),
        "ops": _tuple(operands, operands),
        "params": _tuple(params, array_params),
    }
    drivers = {"rows": rows, "tiles": tiles, "fold": fold, "unowned": unowned}
    kernels = {}
    folds: dict[tuple[Any, Any, Any], Any] = {}
    for name, body in bodies.items():
        namespace = {**drivers, **body._asdict()}
        rows_kernel, tiles_kernel = define_kernels(
            module, _BODY_TEMPLATE.format(**fields), name, namespace, ("rows", "tiles")
        )
        # Bodies with the same merge, finish and status share one fold (named after the
        # first of them): the same code, compiled once.
        shared = (body.merge, body.finish, body.status)
        if shared not in folds:
            folds[shared] = define_kernels(
                module, _FOLD_TEMPLATE.format(**fields), name, namespace, ("fold",)
            )[0]
        kernels[name] = RowKernels(rows_kernel, tiles_kernel, folds[shared])
    return kernels


@njit(inline="always", cache=True)
def small_buffers(reduce):
    """A small call's accumulator, counter and flag (one chunk)."""
    acc = np.zeros((1, 2, ACC_LEN if reduce else 0), np.int64)
    return acc, np.zeros(1, np.int64), np.zeros(1, np.int64)


@njit(inline="always", cache=True)
def small_result(acc, bad, reduce):
    """(the exact sum of a small call's values, rounded once, or 0.0 for "none"; bad)."""
    if bad[0] != 0:
        return 0.0, True
    return (acc_value(acc[0, 0]) if reduce else 0.0), False


_SMALL_TEMPLATE = """
def {name}({args}, no_weight, no_where, reduce, out):
    acc, counts, bad = small_buffers(reduce)
    kernel({args}, 1.0, no_weight, no_where, out, acc, counts, bad)
    return small_result(acc, bad, reduce)
"""


def small_call(module: str, name: str, kernel: Any, args: Sequence[str]) -> Any:
    """``name(*args, no_weight, no_where, reduce, out) -> (sum of the values, bad)``:
    ``kernel`` (a rows kernel taking ``args``) over a whole small call, in nats, with no
    weights and no mask (``no_weight``, ``no_where``: empty read-only arrays, as the launcher
    passes), its buffers allocated and its exact sum
    folded in the same compiled call (a training loop's small batch is mostly call overhead).
    bad: an invalid input, which the caller explains by taking the general path. Every
    argument comes from the caller, none as a constant here: Numba would compile the kernel
    again for its literal type, besides the variant that large calls use."""
    source = _SMALL_TEMPLATE.format(name=name, args=", ".join(args))
    namespace = _define(
        module,
        source,
        {"kernel": kernel, "small_buffers": small_buffers, "small_result": small_result},
    )
    return njit(cache=True, error_model="numpy")(namespace[name])
