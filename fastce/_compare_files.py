"""Comparing two models' predictions stored in files: the engine of ``fastce compare``.

The readers of :mod:`fastce._io` (``.npy`` files memory-mapped, ``.npz`` members streamed,
Parquet row group by row group, CSV in blocks) give aligned chunks of whole rows of every role
(``reference``, ``candidate`` and, as given, ``target``, ``weight``, ``where``), which feed one
:class:`~fastce.Comparison`: its means, rates and counts are the bits of the in-memory
:func:`fastce.compare` of the whole files, however they were chunked. For ``--plot``, the
per-sample KL and Δp of each chunk are binned into fixed histograms as they stream past
(memory bounded by the bins, not by the files).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import _io
from .comparison import Comparison, ComparisonResult, _clamped

# What a comparison allocates per sample on top of the rows it reads (per-sample figures, top
# classes, the channels of its exact sums, the sketches' sorted copies): counted in the budget.
_SCRATCH_PER_ROW = 320

ROLES = ("reference", "candidate", "target", "weight", "where")


class Rows(NamedTuple):
    """A run of whole rows from ``offset`` (0-based, over the whole input): each role's array."""

    offset: int
    arrays: dict[str, np.ndarray]


class _Roles:
    """What the readers of ``fastce._io`` do for ``fastce score`` (pred, target, weight,
    where), for the roles of a comparison: every role must have the reference's rows, and a
    chunk is a :class:`Rows` of every role."""

    n_rows: int | None
    rows: int
    classes: np.ndarray | None = None

    def _plan_rows(
        self, headers: dict[str, Any], chunk_bytes: int, names: dict[str, Any], prefix: str = ""
    ) -> None:
        self.n_rows = headers["reference"].shape[0]
        for role, header in headers.items():
            if header.shape[0] != self.n_rows:
                raise ValueError(
                    f"{prefix}{names[role]} ({role}) has {header.shape[0]} rows but "
                    f"{names['reference']} (reference) has {self.n_rows}; every file must have "
                    "one row per sample"
                )
        ref, cand = headers["reference"], headers["candidate"]
        if ref.shape[1:] != cand.shape[1:]:
            raise ValueError(
                f"{prefix}{names['candidate']} (candidate) has shape {cand.shape} but "
                f"{names['reference']} (reference) has shape {ref.shape}; they must match"
            )
        per_row = _SCRATCH_PER_ROW + sum(
            _io._working_bytes(h.dtype, _io._row_elements(h.shape)) for h in headers.values()
        )
        self.rows = _io.rows_per_chunk(chunk_bytes, per_row)

    def _chunk(self, lo: int, arrays: dict[str, np.ndarray]) -> Any:
        out = dict(arrays)
        if "target" in out:
            out["target"] = _io._numpy_target(out["target"], None, self, lo)  # type: ignore[arg-type]
        if "where" in out:
            out["where"] = _io.as_mask(out["where"], self, lo)  # type: ignore[arg-type]
        return Rows(lo, out)

    def _batch_chunks(self, next_batch: Any, offset: int, failure: Any) -> Any:
        """Arrow record batches as :class:`Rows` (``_ArrowSource._batch_chunks``' loop)."""
        pa = self._pa  # type: ignore[attr-defined]
        while True:
            try:
                batch = next_batch()
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as exc:
                raise failure(offset, exc) from None
            if batch.num_rows == 0:
                continue
            yield Rows(offset, self.converter.to_numpy(batch, offset))  # type: ignore[attr-defined]
            offset += batch.num_rows
        return offset


class _NpyFiles(_Roles, _io.NpyPair):
    """One ``.npy`` file per role, memory-mapped (``_io.NpyPair``'s reading)."""

    def __init__(self, files: dict[str, Any], chunk_bytes: int) -> None:
        self.path = files["reference"]
        self.files = files
        self.columns = {role: f"the {role} array" for role in files}
        self._maps = {}
        try:
            for role, path in files.items():
                self._maps[role] = self._open(role, path)
        except BaseException:
            self.close()
            raise
        headers = {role: header for role, (_, _, header) in self._maps.items()}
        self._plan_rows(headers, chunk_bytes, files)


class _NpzMembers(_Roles, _io.NpzMembers):
    pass


class _ParquetColumns(_Roles, _io.ParquetSource):
    pass


class _CsvColumns(_Roles, _io.CsvSource):
    pass


# The readers of score_file, each with the roles of a comparison.
_READERS: dict[type[_io._PathSource], type[_io._PathSource]] = {
    _io.NpzMembers: _NpzMembers,
    _io.CsvSource: _CsvColumns,
    _io.ParquetSource: _ParquetColumns,
}


def open_files(
    path: Any, specs: dict[str, Any], chunk_bytes: int = _io.DEFAULT_CHUNK_BYTES
) -> _io.Source:
    """The reader of ``path`` (a Parquet file or directory, CSV or ``.npz``) whose roles are
    named by ``specs``, or with ``path`` None of one ``.npy`` file per role."""
    specs = {role: spec for role, spec in specs.items() if spec is not None}
    for role in ("reference", "candidate"):
        if role not in specs:
            raise ValueError(f"{role} is required: the .npy file (or column, or member)")
    if path is None:
        _io.check_npy_files(specs)
        return _NpyFiles(specs, chunk_bytes)
    kind = _READERS[
        _io.path_kind(
            path,
            "give no PATH and name one .npy file per role (fastce compare --reference "
            "ref.npy --candidate cand.npy ...)",
            "one .npy file per role",
        )
    ]
    with _io.reading(path):
        return kind(path, specs, chunk_bytes, None)


# -- Errors ------------------------------------------------------------------------------------

_ARGUMENT = re.compile(r"^(reference|candidate|target|sample_weight|where|groups)\b")
_ROLE = {"sample_weight": "weight"}


def _relocate(exc: Exception, rows: Rows, source: _io.Source) -> Exception:
    """``Comparison.update``'s error about a chunk, restated with the file, column and row
    (as ``fastce score`` restates an in-memory function's)."""
    from .scoring import _in_file, _row_named

    message, row = _row_named(str(exc))
    argument = _ARGUMENT.match(message)
    role = "reference" if not argument else _ROLE.get(argument.group(1), argument.group(1))
    n_rows = len(rows.arrays["reference"])
    return _in_file(exc, source, role, rows.offset, n_rows, row, message)


# -- Histograms for --plot ---------------------------------------------------------------------

KL_EDGES = np.logspace(-12, 3, 301)
"""The bins of per-sample KL: 20 a decade, from 1e-12 to 1e3 (log scale)."""
DELTA_P_EDGES = np.linspace(-1.0, 1.0, 2001)
"""The bins of Δp: 0.001 wide over [-1, 1]."""


@dataclass
class Histograms:
    """Per-sample KL and Δp binned chunk by chunk (the samples kept); what fell outside."""

    kl: np.ndarray = field(default_factory=lambda: np.zeros(KL_EDGES.size - 1, np.int64))
    delta_p: np.ndarray = field(default_factory=lambda: np.zeros(DELTA_P_EDGES.size - 1, np.int64))
    kl_zeros: int = 0
    kl_below: int = 0  # 0 < KL < 1e-12
    kl_above: int = 0  # KL > 1e3 (infinity included)
    kl_nan: int = 0
    delta_p_nan: int = 0
    has_delta_p: bool = False

    def add(self, kl: np.ndarray, delta_p: np.ndarray | None) -> None:
        kl = _clamped(kl)
        nan = np.isnan(kl)
        self.kl_nan += int(np.count_nonzero(nan))
        self.kl_zeros += int(np.count_nonzero(kl == 0.0))
        self.kl_below += int(np.count_nonzero((kl > 0.0) & (kl < KL_EDGES[0])))
        self.kl_above += int(np.count_nonzero(kl > KL_EDGES[-1]))
        self.kl += np.histogram(kl[~nan], KL_EDGES)[0]
        if delta_p is not None:
            self.has_delta_p = True
            nan = np.isnan(delta_p)
            self.delta_p_nan += int(np.count_nonzero(nan))
            self.delta_p += np.histogram(delta_p[~nan], DELTA_P_EDGES)[0]


def plot(histograms: Histograms, result: ComparisonResult, path: Any) -> None:
    """Write the histogram of per-sample KL (log x axis) and, with a target, of Δp to ``path``
    (PNG, or any format matplotlib takes from the file's suffix)."""
    figure_class = require_matplotlib()
    panels = 2 if histograms.has_delta_p else 1
    figure = figure_class(figsize=(6.4 * panels, 4.2), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    ax.stairs(histograms.kl, KL_EDGES, fill=True)
    ax.set_xscale("log")
    ax.set_xlim(*_shown(histograms.kl, KL_EDGES))
    ax.set_xlabel(f"KL(reference || candidate) per sample ({result.unit})")
    ax.set_ylabel("samples")
    left_out = [f"{histograms.kl_zeros:,} zeros"]
    if histograms.kl_below:
        left_out.append(f"{histograms.kl_below:,} below 1e-12")
    if histograms.kl_above:
        left_out.append(f"{histograms.kl_above:,} above 1e3")
    if histograms.kl_nan:
        left_out.append(f"{histograms.kl_nan:,} NaN")
    ax.set_title(
        f"per-sample KL: mean {float(result.kl.mean):.4g} {result.unit}; "
        f"{', '.join(left_out)} not shown",
        fontsize="medium",
    )
    if histograms.has_delta_p and result.delta_p is not None:
        ax = axes[1]
        ax.stairs(histograms.delta_p, DELTA_P_EDGES, fill=True)
        ax.set_yscale("log")
        ax.set_xlim(*_shown(histograms.delta_p, DELTA_P_EDGES))
        ax.set_xlabel("Δp = p_candidate(target) - p_reference(target)")
        ax.set_ylabel("samples")
        title = f"Δp: mean {float(result.delta_p.mean):.4g}, RMS {float(result.delta_p.rms):.4g}"
        if histograms.delta_p_nan:
            title += f"; {histograms.delta_p_nan:,} NaN not shown"
        ax.set_title(title, fontsize="medium")
    figure.savefig(path)


def _shown(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """The x range of the bins that hold samples, two bins wider on each side (all the bins
    when none does)."""
    held = np.flatnonzero(counts)
    if not held.size:
        return float(edges[0]), float(edges[-1])
    lo = max(int(held[0]) - 2, 0)
    hi = min(int(held[-1]) + 3, edges.size - 1)
    return float(edges[lo]), float(edges[hi])


def require_matplotlib() -> Any:
    """matplotlib's Figure (no pyplot: no backend, no global state), or how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install matplotlib (or "
            "pip install '.[bench]' from a checkout of fastce)"
        ) from None
    return Figure


# -- The pass over the files -------------------------------------------------------------------


@dataclass
class Compared:
    """What one pass over the files gave (for the CLI)."""

    result: ComparisonResult
    rows: int
    seconds: float
    source: str
    histograms: Histograms | None


def compare_files(
    path: Any,
    *,
    reference: Any,
    candidate: Any,
    target: Any = None,
    weight: Any = None,
    where: Any = None,
    from_logits: bool,
    base: float | None = None,
    ignore_index: int | None = None,
    temperature: float = 1.0,
    chunk_bytes: Any = None,
    progress: bool = False,
    histograms: bool = False,
) -> Compared:
    """One pass over the files into one :class:`~fastce.Comparison` (and, with
    ``histograms``, the bins of per-sample KL and Δp); errors name the file, column and row."""
    from .scoring import _advance, _progress_bar, parse_size

    start = time.perf_counter()
    comparison = Comparison(
        from_logits=from_logits, base=base, ignore_index=ignore_index, temperature=temperature
    )
    if ignore_index is not None and target is None:
        raise ValueError(
            "ignore_index applies to the class indices of target=, which was not given"
        )
    budget = _io.DEFAULT_CHUNK_BYTES if chunk_bytes is None else parse_size(chunk_bytes)
    specs = {
        "reference": reference,
        "candidate": candidate,
        "target": target,
        "weight": weight,
        "where": where,
    }
    source = open_files(path, specs, budget)
    binned = Histograms() if histograms else None
    bar = _progress_bar(bool(progress), source.n_rows, os.path.basename(str(source.path)))
    count = 0
    chunks = _io.iter_chunks(source)
    try:
        for rows in chunks:
            arrays = rows.arrays  # type: ignore[attr-defined]
            try:
                samples = comparison._add(
                    arrays["reference"],
                    arrays["candidate"],
                    arrays.get("target"),
                    arrays.get("where"),
                    arrays.get("weight"),
                    None,
                )
            except (ValueError, TypeError) as exc:
                raise _relocate(exc, rows, source) from None  # type: ignore[arg-type]
            if binned is not None:
                binned.add(samples.kl, samples.delta_p)
            n = len(arrays["reference"])
            count += n
            if bar is not None:
                _advance(bar, n, count, source)
    finally:
        chunks.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return Compared(comparison.result(), count, seconds, str(source.path), binned)
