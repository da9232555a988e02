"""Scoring files larger than memory: :func:`score_file`, the engine of ``fastce score``.

One pass over the file, in chunks of whole rows read with bounded memory (``fastce._io``),
feeding one :class:`~fastce.Accumulator` per measure. The sums are exact, so the result is the
in-memory ``reduction="mean"``/``"sum"`` of the whole file bit for bit, however it was chunked.
With ``groups=``, each chunk's keys are mapped to dense ids (``_group_table.KeyTable``) that
feed grouped accumulators, and the result is a :class:`GroupTable`, one row per key.
"""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _io
from ._group_table import GroupTable, KeyTable
from ._validate import did_you_mean, show
from .accumulator import MEASURES, Accumulator, Result, _options_of

__all__ = ["GroupTable", "parse_size", "score_file"]

_NOT_OPTIONS = {
    "reduction": "score_file gives both the sum and the mean",
    "normalize": "score_file gives both the sum and the mean",
    "out": "score_file returns no per-sample array",
    "sample_weight": "name the weight column (or .npy file, or member) with weight=",
    "n_groups": "score_file gives one row per group key that groups= names, however many",
}
# Parameters of score_file itself, never measure options (where= and groups= name a column,
# member or file).
_PARAMETERS = {"labels", "where", "groups"}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(size: Any) -> int:
    """A byte count from an int or a string such as ``"256M"``, ``"1.5G"``, ``"64MiB"``.

    Suffixes are binary (K = 1024, M = 1024**2, G = 1024**3, T = 1024**4), with or without a
    trailing ``B``/``iB``; no suffix means bytes.

    >>> parse_size("256M"), parse_size("64MiB"), parse_size(4096)
    (268435456, 67108864, 4096)
    """
    if isinstance(size, bool):
        raise TypeError(f"a memory size must be a number of bytes or a string; got {size!r}")
    if isinstance(size, (int, np.integer)):
        value = int(size)
    elif isinstance(size, str):
        found = _SIZE.match(size)
        if not found:
            raise ValueError(
                f"cannot read the memory size {size!r}: expected a number with an optional "
                "K, M, G or T suffix, such as 256M"
            )
        number, unit, _ = found.groups()
        scaled = float(number) * 1024 ** " kmgt".index(unit.lower() or " ")
        value = int(scaled) if scaled <= _MAX_SIZE else _MAX_SIZE + 1  # (inf for 400 digits)
    else:
        raise TypeError(f"a memory size must be a number of bytes or a string; got {size!r}")
    if value < 1:
        raise ValueError(f"a memory size must be at least 1 byte; got {show(size)}")
    if value > _MAX_SIZE:
        # pyarrow takes batch sizes as C longs: a larger budget overflowed inside the reader.
        raise ValueError(f"a memory size must be at most 1P (2**50 bytes); got {show(size)}")
    return value


_MAX_SIZE = 1 << 50


def _measures(measure: Any) -> list[str]:
    names = [measure] if isinstance(measure, str) else list(measure)
    if not names:
        raise ValueError("measure: give at least one measure name")
    for name in names:
        if not isinstance(name, str) or name not in MEASURES:
            hint = did_you_mean(name, MEASURES)
            raise ValueError(
                f"measure must be one of {', '.join(repr(m) for m in MEASURES)} (or a list of "
                f"them); got {name!r}{hint}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"measure lists a measure twice: {names}")
    return names


def _accumulators(
    names: list[str], options: dict[str, Any], classes: np.ndarray | None
) -> dict[str, Accumulator]:
    for option, why in _NOT_OPTIONS.items():
        if option in options:
            raise TypeError(f"score_file has no option {option!r}: {why}")
    if "labels" in options:
        raise TypeError("labels is a parameter of score_file itself; pass it by name")
    accumulators = {}
    for name in names:
        allowed = _options_of(MEASURES[name].function) - set(_NOT_OPTIONS) - _PARAMETERS
        for option in options:
            if option not in allowed:
                raise ValueError(
                    f"option {option}={options[option]!r} does not apply to {name!r} (its "
                    f"options: {', '.join(sorted(allowed)) or 'none'}); score it in a separate "
                    "call"
                )
        measure_options = dict(options)
        if name == "log_loss":
            if classes is None:
                raise ValueError(
                    "log_loss needs labels= (CLI: --labels): the full list of class labels, "
                    "which a stream cannot infer"
                )
            # Targets arrive encoded as positions in the sorted labels.
            measure_options["labels"] = np.arange(classes.size)
        accumulators[name] = Accumulator(name, **measure_options)
    return accumulators


# -- Errors ------------------------------------------------------------------------------------

# The argument names the in-memory functions use in their messages, and the role they play here.
_ARGUMENT = re.compile(r"^(target|pred|p|q|y_true|y_proba|y_prob|sample_weight|where|groups)\b")
_POSITION = re.compile(r" at position (\d+|\((\d+), ([\d, ]+)\))")


def _role_of(argument: str, measure: str) -> str:
    if argument == "sample_weight":
        return "weight"
    if argument in ("where", "groups"):
        return argument
    if argument in ("target", "y_true") or (argument == "p" and measure != "entropy"):
        return "target"
    return "pred"


def _first_row(mask: np.ndarray) -> int | None:
    rows = mask.reshape(mask.shape[0], -1).any(axis=1) if mask.ndim > 1 else mask
    return int(np.argmax(rows)) if rows.any() else None


def _scan(message: str, chunk: _io.Chunk) -> tuple[str, int] | None:
    """The first offending row for messages that give no position (log_loss's, as
    scikit-learn's), found with a vectorised check of the chunk."""
    pred = np.asarray(chunk.pred)
    if pred.dtype.kind != "f" or pred.ndim == 0:
        return None
    checks: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("NaN", np.isnan),
        ("infinity", np.isinf),
        ("greater than 1", lambda a: a > 1),
        ("lower than 0", lambda a: a < 0),
    ]
    for needle, test in checks:
        if needle in message:
            with np.errstate(invalid="ignore"):
                row = _first_row(test(pred))
            if row is not None:
                return "pred", row
    return None


_SHAPE = re.compile(r"\((\d+)(,[\d, ]*)\)")


def _file_shapes(message: str, chunk_rows: int, file_rows: int | None) -> str:
    """``message`` with each shape whose first axis is the chunk's rows given the file's rows
    (``n`` where the file's row count is not known before the end, as in a CSV file)."""
    rows = "n" if file_rows is None else str(file_rows)

    def whole(found: re.Match[str]) -> str:
        if int(found.group(1)) != chunk_rows:
            return found.group(0)
        return f"({rows}{found.group(2)})"

    return _SHAPE.sub(whole, message)


def _row_named(message: str) -> tuple[str, int | None]:
    """(``message`` without the position it names, the row of that position within the chunk):
    ``at position i`` names row i; ``at position (i, j)`` row i, and stays as ``at index j
    within the row``. None where no position is named."""
    position = _POSITION.search(message)
    if not position:
        return message, None
    if position.group(2) is None:
        return message.replace(position.group(0), ""), int(position.group(1))
    inner = position.group(3)
    inner = inner if "," not in inner else f"({inner})"
    within = message.replace(position.group(0), f" at index {inner} within the row")
    return within, int(position.group(2))


def _in_file(
    exc: Exception,
    source: _io.Source,
    role: str,
    offset: int,
    n_rows: int,
    row: int | None,
    message: str,
) -> Exception:
    """``exc``'s type with ``message`` about the chunk of ``n_rows`` rows from ``offset``,
    restated with the file, the column (or member) of ``role`` and the row (``row`` within
    the chunk), the rows of the chunk, or, for a message about shapes, the file's shapes."""
    if row is None and "shape (" in message:
        # A shape is the file's, not the chunk's: every chunk has the same shape but its rows.
        path, what, _ = source.where(role, None)
        return type(exc)(f"{path}: {what}: {_file_shapes(message, n_rows, source.n_rows)}")
    if row is None:
        path, what, _ = source.where(role, offset)
        return type(exc)(
            f"{path}: {what}: in the rows {offset} to {offset + n_rows - 1}: {message}"
        )
    path, what, local = source.where(role, offset + row)
    return type(exc)(f"{path}: {what}, row {local}: {message}")


def _relocate(exc: Exception, measure: str, chunk: _io.Chunk, source: _io.Source) -> Exception:
    """An in-memory function's error about a chunk, restated with the file, column and row."""
    message, row = _row_named(str(exc))
    role = "pred"
    argument = _ARGUMENT.match(message)
    if argument:
        role = _role_of(argument.group(1), measure)
    if row is None:
        found = _scan(message, chunk)
        if found:
            role, row = found
    n_rows = len(chunk.pred)
    return _in_file(exc, source, role, chunk.offset, n_rows, row, f"{measure}: {message}")


# -- Progress ----------------------------------------------------------------------------------


def _progress_bar(enabled: bool, total: int | None, description: str) -> Any:
    """A tqdm bar on stderr with rows/s and ETA, or None (off, or tqdm not installed)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        desc=description,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


# -- Scoring -----------------------------------------------------------------------------------


@dataclass
class Scored:
    """What one pass over a file gave: the results (with ``groups=``, also as ``table``, the
    results' arrays aligned with its keys) and how long it took (for the CLI)."""

    results: dict[str, Result]
    rows: int
    seconds: float
    source: str
    table: GroupTable | None = None


def _kept_rows(where: np.ndarray | None, n_rows: int) -> np.ndarray | None:
    """The rows a mask keeps any sample of (an element-wise mask keeps a row if it keeps one
    of its elements), or None for every row."""
    if where is None:
        return None
    return np.asarray(where.reshape(n_rows, -1).any(axis=1))


def _group_ids(
    table: KeyTable, chunk: _io.Chunk, source: _io.Source
) -> tuple[np.ndarray, np.ndarray]:
    """(each row's group id within the chunk, 0 .. k - 1; the file's id of each of them): a
    key enters the table with the first row the mask keeps (where= filters the rows, then
    they are grouped); a masked-out row gets id 0, which nothing reads."""
    keys = chunk.groups
    assert keys is not None
    kind = "string" if keys.values.dtype == object else "integer"
    if table.kind is None:
        table.kind = kind
    elif table.kind != kind:
        raise source.error(
            "groups",
            chunk.offset,
            f"holds {kind} keys (groups), and the rows before {table.kind} keys: the keys of "
            "a file must be all integers or all strings",
        )
    kept = _kept_rows(chunk.where, len(keys.codes))
    if kept is None:  # (every distinct key of the chunk is some row's)
        return keys.codes, table.ids(keys.values)
    used = np.zeros(keys.values.size, bool)
    used[keys.codes[kept]] = True
    within = np.where(used, np.cumsum(used) - 1, 0)
    return within[keys.codes], table.ids(keys.values[used])


def _by_key(result: Result, order: np.ndarray) -> Result:
    """A grouped result with its arrays taken in ``order`` (dense ids in the order of the
    sorted keys)."""
    fields = ("mean", "sum", "count", "weight", "sum64", "perplexity")
    taken = {f: getattr(result, f)[order] for f in fields if getattr(result, f) is not None}
    return replace(result, **taken)


def _score(
    path: Any,
    measure: Any,
    *,
    target: Any = None,
    pred: Any = None,
    weight: Any = None,
    where: Any = None,
    groups: Any = None,
    labels: Any = None,
    chunk_bytes: Any = None,
    progress: bool = False,
    **options: Any,
) -> Scored:
    start = time.perf_counter()
    names = _measures(measure)
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False; got {progress!r}")
    budget = _io.DEFAULT_CHUNK_BYTES if chunk_bytes is None else parse_size(chunk_bytes)
    classes = None if labels is None else _io.check_classes(labels)
    if classes is not None:
        _warn_unsorted(labels, classes)
    accumulators = _accumulators(names, options, classes)
    if where is not None:
        unmasked = [name for name in names if "where" not in MEASURES[name].options]
        if unmasked:
            raise ValueError(
                f"where= does not apply to {', '.join(repr(n) for n in unmasked)} (it takes no "
                "mask); score it in a separate call"
            )
    if groups is not None:
        ungrouped = [name for name in names if "groups" not in MEASURES[name].options]
        if ungrouped:
            raise ValueError(
                f"groups= does not apply to {', '.join(repr(n) for n in ungrouped)} (it gives "
                "no result per group); score it in a separate call"
            )
    needs_target = any(MEASURES[name].arity == 2 for name in names)
    if needs_target and target is None:
        which = [name for name in names if MEASURES[name].arity == 2]
        raise ValueError(
            f"target is required for {', '.join(which)}: the .npy file (or column, or member) "
            "of targets"
        )
    source = _io.open_source(
        path,
        target=target if needs_target else None,
        pred=pred,
        weight=weight,
        where=where,
        groups=groups,
        chunk_bytes=budget,
        classes=classes,
    )
    table = None if groups is None else KeyTable()
    bar = _progress_bar(bool(progress), source.n_rows, os.path.basename(str(source.path)))
    rows = 0
    chunks = _io.iter_chunks(source)
    try:
        for chunk in chunks:
            if classes is not None and chunk.pred.ndim == 2 and "log_loss" not in names:
                _check_width(chunk, classes, source, names)
            if table is not None:
                within, ids = _group_ids(table, chunk, source)
            for name, accumulator in accumulators.items():
                arrays = (chunk.pred,) if MEASURES[name].arity == 1 else (chunk.target, chunk.pred)
                try:
                    if table is None:
                        accumulator.update(*arrays, sample_weight=chunk.weight, where=chunk.where)
                        continue
                    # The chunk's groups numbered 0 .. k - 1, then renamed into the file's ids:
                    # an update whose ids ran up to the file's groups would cost them all.
                    part = Accumulator(name, **accumulator.options)
                    part.update(
                        *arrays, sample_weight=chunk.weight, where=chunk.where, groups=within
                    )
                    accumulator._merge_renamed(part, ids)
                except (ValueError, TypeError) as exc:
                    raise _relocate(exc, name, chunk, source) from None
            rows += len(chunk.pred)
            if bar is not None:
                _advance(bar, len(chunk.pred), rows, source)
    finally:
        chunks.close()  # closes the files now, also when a chunk was refused
        if bar is not None:
            bar.close()
    if table is None:
        results = {name: accumulator.result() for name, accumulator in accumulators.items()}
        return Scored(results, rows, time.perf_counter() - start, str(source.path))
    keys, order = table.sorted()
    results = {
        # every key's group, also one whose every sample was ignored (count 0, mean NaN)
        name: _by_key(accumulator._group_result(table.size), order)
        for name, accumulator in accumulators.items()
    }
    seconds = time.perf_counter() - start
    return Scored(results, rows, seconds, str(source.path), GroupTable(keys, results))


def _warn_unsorted(labels: Any, classes: np.ndarray) -> None:
    """Labels in another order than sorted: column ``i`` of pred is the ``i``-th label in sorted
    order all the same; say so, as ``log_loss`` (and scikit-learn's) does."""
    given = np.asarray(labels)
    if given.dtype.kind in "OS":
        given = given.astype(str)
    if not np.array_equal(given, classes):
        warnings.warn(
            f"Labels passed were {show(labels)}. But this function assumes labels are ordered "
            f"lexicographically. Pass the ordered labels={classes.tolist()} and ensure that the "
            "columns of pred correspond to this ordering.",
            UserWarning,
            stacklevel=4,
        )


def _check_width(
    chunk: _io.Chunk, classes: np.ndarray, source: _io.Source, names: list[str]
) -> None:
    if chunk.target is not None and chunk.target.ndim == 1 and "cross_entropy" in names:
        width = chunk.pred.shape[-1]
        if width != classes.size:
            path, what, local = source.where("pred", chunk.offset)
            raise ValueError(
                f"{path}: {what}, row {local}: pred has {width} columns but labels lists "
                f"{classes.size} classes; column i must be the probability of the i-th label "
                "in sorted order"
            )


def _advance(bar: Any, step: int, rows: int, source: _io.Source) -> None:
    fraction = source.progress()
    if fraction:  # rows unknown in advance (CSV): estimate the total from the bytes read
        bar.total = max(rows, int(rows / fraction))
    bar.update(step)


def score_file(
    path: Any,
    measure: str | Sequence[str],
    *,
    target: Any = None,
    pred: Any = None,
    weight: Any = None,
    where: Any = None,
    groups: Any = None,
    labels: Any = None,
    chunk_bytes: int | str | None = None,
    progress: bool = False,
    **options: Any,
) -> Result | dict[str, Result] | GroupTable:
    r"""Score predictions stored in files, in one pass with bounded memory.

    .. math:: \mathrm{mean} = \mathrm{fl}\Big(\frac{\mathrm{fl}(\sum_i w_i \ell_i)}
              {\mathrm{fl}(\sum_i w_i)}\Big)

    over every row of the file: the same bits as the in-memory
    ``fastce.<measure>(target, pred, reduction="mean", **options)`` (and ``"sum"``) of the
    whole arrays, whatever ``chunk_bytes`` is (the sums are exact). With ``groups``, the same
    for each group: one result per group key, the bits of the in-memory call on that group's
    rows alone.

    Parameters
    ----------
    path : str, os.PathLike or None
        A Parquet file or a directory of Parquet files (a dataset), a CSV file (``.csv``, or
        compressed: ``.csv.gz``, ``.csv.bz2``, ``.csv.zst``, ...), or an ``.npz`` file; then
        ``target``/``pred``/``weight`` name its columns or members. ``None``: ``target``,
        ``pred`` (and ``weight``) are paths of ``.npy`` files.
    measure : str or sequence of str
        ``"entropy"`` (reads ``pred`` only), ``"cross_entropy"``, ``"binary_cross_entropy"``,
        ``"kl_divergence"``, ``"js_divergence"`` (``p`` = target, ``q`` = pred),
        ``"perplexity"`` or ``"log_loss"``; a list of them is scored in the same pass.
    target, pred : str or sequence of str
        ``.npy`` paths, ``.npz`` member names (with or without ``.npy``), or Parquet/CSV
        columns: one column name (numbers; for ``pred`` and soft targets also a list or
        fixed-size-list column, one list per row), several names (a comma-separated string or a
        list, stacked as the columns of a row), or a glob such as ``"p_*"`` (the matching
        columns in the order the file stores them).
    weight : str, optional
        Sample weights, named like ``target``: the in-memory ``sample_weight``.
    where : str, optional
        The samples to score, named like ``weight`` (a column, a member, or with
        ``path=None`` a ``.npy`` file): the in-memory ``where`` (not for ``"log_loss"``). Its
        values must be booleans (a Parquet or CSV column of ``true``/``false``, a bool
        array) or integers that are all 0 or 1 (a CSV column of 0/1), read as ``!= 0``;
        anything else is a ``ValueError`` naming the column. A masked-out row counts for
        nothing, and its target and prediction are never checked.
    groups : str, optional
        Each row's group key, named like ``weight`` (one column, a member, or with
        ``path=None`` a ``.npy`` file): integers (any, not only 0, 1, ...; up to int64) or
        strings (a Parquet ``string``/``large_string`` or dictionary column, a CSV column
        that does not read as numbers, a ``.npy`` of ``str``), which keep their names. The
        result is then a :class:`GroupTable`, one row per key (not for ``"log_loss"``).
        Floats, booleans and nulls are a ``ValueError`` naming the file, the column and the
        row. With ``where``, the mask filters the rows first: a key whose every row is
        masked out has no row in the table. Memory grows with the number of distinct keys
        (about 100 bytes per group and measure for typical losses), never with the rows.
    labels : sequence, optional
        Every class label, for string-label targets and for ``log_loss`` (required there):
        each target becomes its position in the *sorted* labels, the column of ``pred`` that
        holds its probability (as ``sklearn.metrics.log_loss``).
    chunk_bytes : int or str, optional
        The chunk budget, in bytes or as ``"256M"`` (binary units); default 64 MiB. See Notes.
    progress : bool, default False
        Show a progress bar on stderr (rows/s and ETA), when tqdm is installed.
    **options
        The measures' keyword options (``from_logits``, ``base``, ``eps``, ``axis``,
        ``label_smoothing``, ``class_weight``, ``ignore_index``, ``pos_weight``), applied to
        every measure: an option that a measure does not take is an error.

    Returns
    -------
    Result or dict of str to Result or GroupTable
        ``mean``, ``sum``, ``count`` and ``weight`` (see :class:`fastce.Result`); a dict keyed by
        measure name when ``measure`` is a list. With ``groups``, a :class:`GroupTable` (for
        one measure or several): ``table.keys``, the keys in sorted order (int64, or an
        object array of ``str``), and ``table[measure]``, a ``Result`` whose ``count``,
        ``weight``, ``sum``, ``mean`` (and ``perplexity``) are arrays aligned with the keys;
        ``table.write(path)`` writes it as Parquet, CSV or JSON, one row per group with the
        columns ``group`` and, for each measure, ``<measure>_count``, ``<measure>_weight``,
        ``<measure>_sum``, ``<measure>_mean`` (and ``perplexity_perplexity``).

    Raises
    ------
    ValueError
        A missing file, column or member; a truncated ``.npy``; a corrupt Parquet footer or zip;
        a pickled (object) array; a null, ragged or non-numeric column; a label out of range; a
        probability outside [0, 1]; ... The message names the file, the column and the row
        (0-based over the whole file), e.g. ``scores.parquet: column 'label', row 1234567:
        cross_entropy: target holds label 12; expected an integer class index 0 <= label < 10``;
        group keys that are floats, booleans or null, or integers in one file of a Parquet
        dataset and strings in another; ``groups=`` with ``"log_loss"``. No partial result is
        ever returned.
    TypeError
        An option of the wrong kind, or ``sample_weight=``/``reduction=``/``n_groups=`` (not
        options here).
    ImportError
        A Parquet or CSV file without pyarrow (``pip install pyarrow``, or
        ``pip install '.[parquet]'`` from a checkout).

    Notes
    -----
    Memory is bounded by ``chunk_bytes``, not by the file: a chunk holds as many whole rows as
    fit in the budget, counting the copies the validation makes (float16 -> float32, integer
    labels -> int64). ``.npy`` files are memory-mapped and chunks are views (no copy; consumed
    pages are released with ``madvise``), ``.npz`` members are streamed into one reusable
    buffer, Parquet is read one row group at a time (so the bound is the budget plus one row
    group of the columns read), CSV in blocks of a fraction of the budget. Group keys are
    factorised chunk by chunk (string columns by Arrow's dictionary encoding, no Python string
    per row); the table of distinct keys and the grouped sums are what grows, with the groups.

    See Also
    --------
    Accumulator : the streaming state this feeds, for data that arrives in batches.

    Examples
    --------
    >>> import os, tempfile, numpy as np, fastce
    >>> folder = tempfile.mkdtemp()
    >>> y, p = os.path.join(folder, "y.npy"), os.path.join(folder, "p.npy")
    >>> np.save(y, np.array([0, 2, 1]))
    >>> np.save(p, np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]]))
    >>> res = fastce.score_file(None, "cross_entropy", target=y, pred=p, base=2)
    >>> res.count, round(res.mean, 6)
    (3, 0.719476)
    >>> bool(res.mean == fastce.cross_entropy(np.load(y), np.load(p), base=2, reduction="mean"))
    True

    A mask in a third file leaves rows out (here the last one):

    >>> keep = os.path.join(folder, "keep.npy")
    >>> np.save(keep, np.array([True, True, False]))
    >>> res = fastce.score_file(None, "cross_entropy", target=y, pred=p, where=keep, base=2)
    >>> res.count, round(res.mean, 6)
    (2, 0.418251)

    One result per group key (here strings) from a fourth file, and the table written as CSV:

    >>> users = os.path.join(folder, "users.npy")
    >>> np.save(users, np.array(["bob", "ann", "bob"]))
    >>> table = fastce.score_file(None, "cross_entropy", target=y, pred=p, groups=users, base=2)
    >>> table.keys, table["cross_entropy"].count
    (array(['ann', 'bob'], dtype=object), array([1, 2]))
    >>> rows = [0, 2]  # bob's
    >>> bob = fastce.cross_entropy(np.load(y)[rows], np.load(p)[rows], base=2, reduction="mean")
    >>> bool(table["cross_entropy"].mean[1] == bob)
    True
    >>> table.write(os.path.join(folder, "by_user.csv"))
    >>> print(open(os.path.join(folder, "by_user.csv")).read().splitlines()[0])
    group,cross_entropy_count,cross_entropy_weight,cross_entropy_sum,cross_entropy_mean
    """
    scored = _score(
        path,
        measure,
        target=target,
        pred=pred,
        weight=weight,
        where=where,
        groups=groups,
        labels=labels,
        chunk_bytes=chunk_bytes,
        progress=progress,
        **options,
    )
    if scored.table is not None:
        return scored.table
    if isinstance(measure, str):
        return scored.results[measure]
    return scored.results
