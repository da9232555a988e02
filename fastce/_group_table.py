"""Group keys of a file and the per-group table that :func:`fastce.score_file` returns.

A grouped :class:`~fastce.Accumulator` takes dense integer ids. Files hold keys: integers that
need not be dense (user ids, years) or strings. :class:`KeyTable` gives every key it sees the
next dense id, chunk by chunk, in memory proportional to the number of distinct keys (never to
the rows); :class:`GroupTable` holds the results with their keys, sorted by key, and writes
them as Parquet, CSV or JSON.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from typing import Any

import numpy as np

from .accumulator import Result

__all__ = ["FORMATS", "GroupTable", "KeyTable", "check_output"]


class KeyTable:
    """Keys seen so far -> dense ids 0, 1, ... in the order they were first seen (a chunk's
    new keys in the order it gives them).

    Integer keys are kept as sorted int64 runs, each at most half the size of the one before
    (a new run per chunk with new keys; equal-sized runs merged as a binary counter carries):
    a lookup is a few vectorised binary searches, and each key is merged about log2(keys)
    times. String keys are kept in a dict (a binary search over Python strings compares them
    one call at a time: several times slower than hashing them once).
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted int64 keys, their ids)
        self._strings: dict[str, int] = {}
        self.size = 0
        self.kind: str | None = None  # "integer" or "string", fixed by the first keys

    def ids(self, keys: np.ndarray) -> np.ndarray:
        """The dense id of each of ``keys`` (distinct, any order: int64, or an object array
        of ``str`` once ``kind`` is ``"string"``), a new id for each key not seen before."""
        if self.kind == "string":
            return self._string_ids(keys)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        ids = np.full(keys.size, -1, np.int64)
        for run_keys, run_ids in self._runs:
            position = np.searchsorted(run_keys, ordered)
            inside = position < run_keys.size
            found = np.zeros(keys.size, bool)
            found[inside] = run_keys[position[inside]] == ordered[inside]
            ids[found] = run_ids[position[found]]
        result = np.empty(keys.size, np.int64)
        result[order] = ids
        new = np.flatnonzero(result < 0)
        if new.size:
            result[new] = np.arange(self.size, self.size + new.size)
            self.size += new.size
            added = order[ids < 0]  # the new keys, sorted
            self._add_run(keys[added], result[added])
        return result

    def _string_ids(self, keys: np.ndarray) -> np.ndarray:
        index = self._strings
        result = np.empty(keys.size, np.int64)
        for i, key in enumerate(keys.tolist()):
            found = index.get(key)
            if found is None:
                found = index[key] = len(index)
            result[i] = found
        self.size = len(index)
        return result

    def _add_run(self, keys: np.ndarray, ids: np.ndarray) -> None:
        runs = self._runs
        runs.append((keys, ids))
        while len(runs) > 1 and 2 * runs[-1][0].size >= runs[-2][0].size:
            (keys2, ids2), (keys1, ids1) = runs.pop(), runs.pop()
            runs.append(_merge(keys1, ids1, keys2, ids2))

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(every key in sorted order: int64, or an object array of ``str`` in code point
        order; the dense id of each)."""
        if self.kind == "string":
            pairs = sorted(self._strings.items())
            keys = np.empty(len(pairs), object)
            keys[:] = [key for key, _ in pairs]
            return keys, np.array([i for _, i in pairs], np.int64)
        runs = self._runs
        while len(runs) > 1:
            (keys2, ids2), (keys1, ids1) = runs.pop(), runs.pop()
            runs.append(_merge(keys1, ids1, keys2, ids2))
        if runs:
            return runs[0]
        return np.zeros(0, np.int64), np.zeros(0, np.int64)


def _merge(
    keys1: np.ndarray, ids1: np.ndarray, keys2: np.ndarray, ids2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([keys1, keys2])
    order = np.argsort(keys, kind="stable")
    return keys[order], np.concatenate([ids1, ids2])[order]


# -- The table ---------------------------------------------------------------------------------

# Output formats by extension (lower case), as the readers of score_file name them.
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".parq": "parquet"}
FORMATS.update({".csv": "csv", ".json": "json"})


def output_format(path: Any) -> str:
    """``"parquet"``, ``"csv"`` or ``"json"`` from the extension of ``path``, or an error."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the output must be a file path; got {path!r}")
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in FORMATS:
        raise ValueError(
            f"{os.fspath(path)}: unknown output format {extension or '(no extension)'!r}; "
            "expected .parquet (or .pq), .csv or .json"
        )
    return FORMATS[extension]


def check_output(path: Any) -> str:
    """The output's format, checked before any scoring: its extension, its folder, and pyarrow
    for Parquet (a typo must not cost the pass over the file)."""
    kind = output_format(path)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ValueError(f"{os.fspath(path)}: cannot write the table: no folder {folder}")
    if os.path.isdir(path):
        raise ValueError(f"{os.fspath(path)}: cannot write the table: it is a folder")
    if kind == "parquet":
        from ._io import require_pyarrow

        require_pyarrow("Parquet output")
    return kind


_FIELDS = ("count", "weight", "sum", "mean", "perplexity")


class GroupTable:
    """What :func:`fastce.score_file` gives with ``groups=``: one result per group key.

    ``table[measure]`` is a :class:`fastce.Result` whose ``mean``, ``sum``, ``count``,
    ``weight`` (and ``perplexity``) are 1-D arrays aligned with :attr:`keys`: entry ``i`` is
    what the measure gives on the rows of group ``keys[i]`` alone, bit for bit.

    Attributes
    ----------
    keys : numpy.ndarray
        The group keys in sorted order (integer order, or string order by code point): int64
        for integer keys, an object array of ``str`` for string keys.
    measures : list of str
        The measures, in the order they were asked for.
    results : dict of str to Result
        ``{measure: table[measure]}``.
    n_groups : int
        The number of groups (``len(table)``): rows of the table.

    Methods
    -------
    columns()
        The table as a dict of column name to 1-D array (``pandas.DataFrame(t.columns())``).
    rows()
        The table as a list of dicts of plain Python values, one per group.
    write(path)
        Write the table as Parquet, CSV or JSON, by the extension of ``path``.
    """

    def __init__(self, keys: np.ndarray, results: dict[str, Result]) -> None:
        self.keys = keys
        self.results = dict(results)
        self.measures = list(results)

    def __getitem__(self, measure: str) -> Result:
        try:
            return self.results[measure]
        except KeyError:
            raise KeyError(
                f"{measure!r}: not scored here; the measures are {', '.join(self.measures)}"
            ) from None

    def __contains__(self, measure: object) -> bool:
        return measure in self.results

    # A table is not iterated: over its measures or its rows? (.measures, .rows())
    __iter__ = None

    def __len__(self) -> int:
        return self.n_groups

    @property
    def n_groups(self) -> int:
        """The number of groups: rows of the table."""
        return int(self.keys.size)

    def __repr__(self) -> str:
        shown = ", ".join(repr(k) for k in self.keys[:5].tolist())
        more = ", ..." if self.keys.size > 5 else ""
        return (
            f"GroupTable({self.n_groups} groups [{shown}{more}], measures "
            f"{', '.join(self.measures)})"
        )

    def columns(self) -> dict[str, np.ndarray]:
        """``{"group": keys, "<measure>_count": ..., "<measure>_weight": ...,
        "<measure>_sum": ..., "<measure>_mean": ..., ...}``: for each measure its count (int64),
        weight (float64), sum and mean (the data's dtype), and for ``"perplexity"`` also
        ``perplexity_perplexity``; empty groups (every row ignored or weighted 0) have a NaN
        mean."""
        columns: dict[str, np.ndarray] = {"group": self.keys}
        for measure, result in self.results.items():
            for field in _FIELDS:
                value = getattr(result, field)
                if value is not None:
                    columns[f"{measure}_{field}"] = value
        return columns

    def rows(self) -> list[dict[str, Any]]:
        """One dict per group, ``{"group": key, "<measure>_count": int, ...}``, with plain
        Python values (int, float, str) in the order of :meth:`columns`."""
        columns = {name: values.tolist() for name, values in self.columns().items()}
        return [
            dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)
        ]

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the table to ``path``, by its extension: ``.parquet`` (or ``.pq``; needs
        pyarrow), ``.csv`` or ``.json`` (a list of row objects).

        Floats are written so that they read back to the same bits: Parquet keeps the
        columns' dtypes (float32 sums and means of float32 data); CSV and JSON hold the
        shortest decimal text of each value as a float64 (Python's ``repr``), NaN and
        infinities as ``nan``/``inf`` in CSV and ``NaN``/``Infinity`` in JSON (as
        ``json.dumps`` writes them and ``fastce score --json`` prints them). The file is
        written beside ``path`` and renamed over it at the end, so a failure leaves no
        partial table.
        """
        kind = check_output(path)
        target = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(target))
        handle, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
        )
        os.close(handle)
        try:
            if kind == "parquet":
                self._write_parquet(temporary)
            elif kind == "csv":
                self._write_csv(temporary)
            else:
                self._write_json(temporary)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise

    def _write_parquet(self, path: str) -> None:
        from ._io import require_pyarrow

        pa = require_pyarrow("Parquet output")
        import pyarrow.parquet as pq

        columns = self.columns()
        arrays = {}
        for name, values in columns.items():
            if name == "group":
                string = values.dtype == object
                arrays[name] = pa.array(values.tolist(), pa.string() if string else pa.int64())
            else:
                arrays[name] = pa.array(values)
        pq.write_table(pa.table(arrays), path)

    def _write_csv(self, path: str) -> None:
        columns = self.columns()
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(list(columns))
            for row in self.rows():
                writer.writerow([_text(value) for value in row.values()])

    def _write_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.rows(), file, ensure_ascii=False)
            file.write("\n")


def _text(value: Any) -> str:
    """A CSV field: floats as ``repr`` (the shortest text with the same bits)."""
    return repr(value) if isinstance(value, float) else str(value)
