"""Chunked readers for :func:`fastce.score_file`: ``.npy`` pairs, ``.npz``, Parquet and CSV.

Every reader yields :class:`Chunk` objects, ``(offset, target, pred, weight, where, groups)``,
the arrays of a run of whole rows (a row of ``pred`` is never split) starting at row ``offset``
(0-based, over the whole input). A chunk's arrays are valid until the next chunk is read:
readers reuse their buffers. How many rows a chunk holds follows a byte budget
(``chunk_bytes``), so memory is bounded by the budget, not by the size of the file:

* ``.npy``: the file is memory-mapped (read-only) and every chunk is a *view* of the mapping,
  no copy. Mapped pages are page cache, not anonymous memory; once a chunk is consumed its
  pages are released from the process with ``madvise(MADV_DONTNEED)`` (C-ordered files), so
  resident memory does not grow with the file either.
* ``.npz``: each member is streamed (decompressed as a stream when compressed) with plain
  chunked reads into one reusable buffer per member, after its ``.npy`` header is parsed.
* Parquet: one row group at a time (``ParquetFile.iter_batches(row_groups=[g], ...)``), in
  batches of the budget's rows. pyarrow decodes a whole row group of the columns read, so the
  bound is the budget plus one row group.
* CSV: pyarrow's streaming reader, in blocks of 1/64 of the budget (the reader keeps a few
  dozen blocks in flight).

Arrays are never unpickled (``allow_pickle=False`` semantics): object dtypes are rejected.
Every error about the data names the file, the column (or member, or array) and the row as a
0-based index over the whole input.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import functools
import math
import mmap
import os
import re
import struct
import sys
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from ._validate import did_you_mean

DEFAULT_CHUNK_BYTES = 64 << 20
"""The default chunk budget: 64 MiB of arrays per chunk."""

# Bytes of scratch per row that the in-memory functions may allocate on top of the converted
# inputs (label positions, masks): counted in the budget so that a chunk stays within it.
_SCRATCH_PER_ROW = 32

# And with group keys: their factorisation (a sorted copy, the codes, the dense ids) and the
# grouped reduction's per-sample float64 values, int64 ids and counting-sort order.
_GROUP_SCRATCH_PER_ROW = 64

# Largest piece handed to a decompressor at once: bounds the transient copies of a read.
_READ_PIECE = 1 << 20

# The smallest CSV block (a row must fit in one block).
_MIN_CSV_BLOCK = 64 << 10

PARQUET_HINT = "pip install pyarrow, or pip install '.[parquet]' from a checkout of fastce"


class UnknownName(ValueError):
    """A column or ``.npz`` member that the file does not have (the CLI: a usage error)."""

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role


class GroupKeys(NamedTuple):
    """The group keys of a chunk's rows, factorised: row ``i``'s key is ``values[codes[i]]``.
    ``values`` holds the chunk's distinct keys, int64 or (string keys) an object array of
    ``str``; a chunk of many rows and few groups is then a small table and one index per row."""

    codes: np.ndarray
    values: np.ndarray


class Chunk(NamedTuple):
    """A run of whole rows: ``target``/``weight``/``where``/``groups`` are None when not asked
    for; ``where`` is boolean (see :func:`as_mask`), ``groups`` factorised (:class:`GroupKeys`)."""

    offset: int
    target: np.ndarray | None
    pred: np.ndarray
    weight: np.ndarray | None
    where: np.ndarray | None = None
    groups: GroupKeys | None = None


ColumnSpec = str | Sequence[str] | None


def _at(path: Any, what: str, row: int | None, detail: str) -> ValueError:
    """The error of every reader: ``<file>: <column>, row <N>: <detail>``."""
    where = f"{path}: {what}" if what else f"{path}"
    if row is not None:
        where += f", row {int(row)}"
    return ValueError(f"{where}: {detail}")


def _read_errors() -> tuple[type[BaseException], ...]:
    """What the libraries that parse a file raise on corrupt bytes (pyarrow's own exception
    classes also derive from KeyError, IndexError, TypeError, MemoryError, ...)."""
    errors: tuple[type[BaseException], ...] = (
        OSError,
        EOFError,
        ValueError,  # includes UnicodeDecodeError (a corrupt column name)
        NotImplementedError,
        OverflowError,
        struct.error,
        zlib.error,
        zipfile.BadZipFile,
    )
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        errors += (pyarrow.ArrowException,)
    return errors


@contextlib.contextmanager
def reading(path: Any) -> Iterator[None]:
    """Turn what a parser raises on a corrupt file into a ValueError that names the file.

    Errors that already name it (every error of these readers about the data does) pass
    through unchanged, as does anything that is not a parsing error (a bug stays visible).
    """
    try:
        yield
    except _read_errors() as exc:
        ours = type(exc) in (ValueError, UnknownName)
        if isinstance(exc, ValueError) and ours and str(path) in str(exc):
            raise
        raise ValueError(
            f"{path}: cannot read the file (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from None


def require_pyarrow(what: str) -> Any:
    """Import pyarrow, or say how to install it."""
    try:
        import pyarrow
    except ImportError:
        raise ImportError(
            f"reading {what} needs pyarrow, which is not installed: {PARQUET_HINT}"
        ) from None
    return pyarrow


def rows_per_chunk(budget: int, bytes_per_row: int) -> int:
    """How many rows of ``bytes_per_row`` fit in ``budget`` (at least one)."""
    return max(1, int(budget) // max(1, int(bytes_per_row)))


def _working_bytes(dtype: np.dtype, elements: int) -> int:
    """Bytes per row of an array of ``dtype`` with ``elements`` values per row, counting the
    copy the validation layer makes when the dtype is not one the kernels take as it is."""
    raw = dtype.itemsize * elements
    native_kernel_dtype = dtype.isnative and dtype in (
        np.dtype(np.float32),
        np.dtype(np.float64),
        np.dtype(np.int64),
    )
    if native_kernel_dtype:
        return raw
    if dtype.kind in "USO":
        return raw + 8 * elements  # label positions
    return raw + (4 if dtype == np.float16 else 8) * elements


# ---------------------------------------------------------------------------------------------
# Labels


def check_classes(labels: Any) -> np.ndarray:
    """The sorted, distinct labels: row ``i`` of ``pred`` is the probability of ``classes[i]``."""
    given = np.asarray(labels)
    if given.ndim != 1 or given.size < 1:
        raise ValueError(f"labels must be a non-empty 1-D list of class labels; got {labels!r}")
    if given.dtype.kind == "O":
        given = given.astype(str)
    if given.dtype.kind == "S":
        given = given.astype(str)
    if given.dtype.kind not in "iufbU":
        raise TypeError(f"labels must be numbers or strings; got an array of dtype {given.dtype}")
    classes = np.unique(given)
    if classes.size != given.size:
        raise ValueError(f"labels holds duplicates: {labels!r}")
    return classes


def _label_kind_error(path: Any, what: str, values_kind: str, classes: np.ndarray) -> ValueError:
    holds = "strings" if values_kind in "USO" else "numbers"
    given = "strings" if classes.dtype.kind == "U" else "numbers"
    return _at(
        path,
        what,
        None,
        f"the target holds {holds} but labels are {given} ({classes.tolist()[:5]}...): give "
        "labels of the same kind as the target",
    )


def encode_labels(
    values: np.ndarray, classes: np.ndarray, path: Any, what: str, offset: int
) -> np.ndarray:
    """Class labels -> their position in ``classes`` (int64), or an error naming the row."""
    if values.ndim != 1:
        raise _at(
            path,
            what,
            None,
            f"labels= maps class labels, one per row; this target has shape {values.shape}",
        )
    if values.dtype.kind == "S":
        values = values.astype(str)
    strings = values.dtype.kind in "UO"
    if strings != (classes.dtype.kind == "U"):
        raise _label_kind_error(path, what, values.dtype.kind, classes)
    position = np.searchsorted(classes, values)
    found = position < classes.size
    found[found] = classes[position[found]] == values[found]
    if not found.all():
        row = int(np.argmin(found))
        raise _at(
            path,
            what,
            offset + row,
            f"label {values[row].item()!r} is not one of labels {classes.tolist()}",
        )
    return position.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------------
# Masks

_MASK_EXPECTED = "expected booleans (true/false) or the integers 0 and 1"


def as_mask(values: np.ndarray, source: Source, offset: int) -> np.ndarray:
    """The ``where`` data of the rows from ``offset`` as booleans: booleans as they are,
    integers that are all 0 or 1 as ``values != 0`` (a CSV column of 0/1 reads as integers);
    anything else is an error naming the file, the column (or member, or array) and, for
    another integer, its row."""
    if values.dtype.kind == "b":
        return values
    if values.dtype.kind not in "iu":
        holds = "strings" if values.dtype.kind in "USO" else f"values of dtype {values.dtype}"
        raise source.error("where", None, f"holds {holds} (where); {_MASK_EXPECTED}")
    mask = values != 0
    other = mask & (values != 1)
    if other.any():
        flat = int(np.argmax(other.reshape(-1)))
        row = flat // max(1, math.prod(values.shape[1:]))
        value = values.reshape(-1)[flat].item()
        raise source.error("where", offset + row, f"holds {value} (where); {_MASK_EXPECTED}")
    return mask


# ---------------------------------------------------------------------------------------------
# Group keys

_KEYS_EXPECTED = "expected integer or string group keys (one per row)"


def _key_kind_detail(kind: str, dtype: Any) -> str:
    if kind == "f":
        return (
            f"holds floats of type {dtype} (groups); {_KEYS_EXPECTED}: cast whole-number keys "
            "first"
        )
    if kind == "b":
        return f"holds booleans (groups); {_KEYS_EXPECTED}"
    return f"holds data of dtype {dtype} (groups); {_KEYS_EXPECTED}"


def factorize_keys(values: np.ndarray, source: Source, offset: int) -> GroupKeys:
    """The group keys of the rows from ``offset`` (a NumPy array, one key per row): integers
    (as int64) or strings (``str``; ASCII bytes are decoded), factorised; anything else is an
    error naming the file, the column (or member, or array) and the row."""
    if values.ndim != 1:
        raise source.error(
            "groups",
            None,
            f"has shape {values.shape[1:]} per row (groups); {_KEYS_EXPECTED}",
        )
    kind = values.dtype.kind
    if kind == "S":
        try:
            values = values.astype(str)
        except UnicodeDecodeError:
            raise source.error(
                "groups",
                None,
                "holds bytes that are not ASCII text (groups): save string keys as str",
            ) from None
        kind = "U"
    if kind not in "iuU":
        row = offset if values.size else None
        raise source.error("groups", row, _key_kind_detail(kind, values.dtype))
    if kind == "u" and values.size and int(values.max()) > np.iinfo(np.int64).max:
        row = int(np.argmax(values > np.iinfo(np.int64).max))
        raise source.error(
            "groups", offset + row, f"holds the key {values[row]}, beyond int64 (groups)"
        )
    distinct, codes = np.unique(values, return_inverse=True)
    distinct = distinct.astype(object if kind == "U" else np.int64)
    return GroupKeys(codes.reshape(-1), distinct)


def _needs_labels(path: Any, what: str, row: int | None) -> ValueError:
    return _at(
        path,
        what,
        row,
        "the target holds strings; give labels= (CLI: --labels) with every class label, in "
        "the order of pred's columns when sorted",
    )


# ---------------------------------------------------------------------------------------------
# .npy headers (shared by .npy files and .npz members)


_HEADER_ERRORS = (
    ValueError,  # includes UnicodeDecodeError
    TypeError,
    OSError,
    EOFError,
    SyntaxError,
    tokenize.TokenError,
    OverflowError,
    MemoryError,
    RecursionError,
    zipfile.BadZipFile,
    zlib.error,
)


def _read_header_3_0(fp: Any) -> tuple[Any, bool, Any]:
    impl: Any
    try:
        from numpy.lib import _format_impl as impl
    except ImportError:  # NumPy < 2
        impl = npy_format
    return impl._read_array_header(fp, (3, 0))


class _Header(NamedTuple):
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    data_offset: int


def _read_header(fp: Any, path: Any, what: str) -> _Header:
    """Parse an ``.npy`` header with NumPy's reader; reject what cannot be read safely."""
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
        elif version == (3, 0):
            # Format 3.0 only differs in allowing utf-8 field names (structured dtypes, which
            # are rejected below anyway); NumPy has no public reader for it.
            shape, fortran, dtype = _read_header_3_0(fp)
        else:
            raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
        dtype = np.dtype(dtype)
    except _HEADER_ERRORS as exc:
        # NumPy parses the header (a Python literal) with tokenize and ast: corrupt bytes can
        # end in any of these.
        raise _at(path, what, None, f"not a readable .npy array: {exc}") from None
    if dtype.hasobject:
        raise _at(
            path,
            what,
            None,
            f"holds a pickled object array (dtype {dtype}); fastce reads arrays with "
            "allow_pickle=False: save numbers (or fixed-width strings for labels) instead",
        )
    if dtype.names is not None or dtype.subdtype is not None:
        raise _at(path, what, None, f"holds a structured array (dtype {dtype}); expected numbers")
    if not shape:
        raise _at(path, what, None, "holds a 0-d array; expected one row per sample")
    # NumPy's header parser takes any tuple of ints: a corrupt header can hold a negative
    # dimension, or dimensions whose product no array can have.
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _at(path, what, None, f"not a readable .npy array: bad shape {shape} in its header")
    if math.prod(shape[1:]) * dtype.itemsize >= 2**62 or math.prod(shape) >= 2**62:
        raise _at(path, what, None, f"not a readable .npy array: shape {shape} is too large")
    return _Header(tuple(int(n) for n in shape), bool(fortran), dtype, fp.tell())


def _check_kind(header: _Header, path: Any, what: str, role: str) -> None:
    """Numbers, or (targets only) fixed-width strings for class labels: anything else in a
    file (complex, datetime, timedelta, void) is a bad file, said before any row is read."""
    allowed = {"target": "fiubUS", "where": "biu", "groups": "iuUS"}.get(role, "fiub")
    if header.dtype.kind not in allowed:
        if role == "groups":
            # the first row that holds such a key, as the Arrow readers say
            row = 0 if header.shape[0] else None
            raise _at(path, what, row, _key_kind_detail(header.dtype.kind, header.dtype))
        expected = {"target": "numbers or string labels", "where": _MASK_EXPECTED}
        detail = f"holds data of dtype {header.dtype}"
        if header.dtype == np.dtype("V2"):
            # np.save writes an ml_dtypes.bfloat16 array as untyped 2-byte records
            detail += (
                " (a bfloat16 array saved with np.save loses its type: save it as float32, "
                "or score it in memory or with fastce.dask)"
            )
        raise _at(path, what, None, f"{detail}; {expected.get(role, 'expected numbers')}")


def _row_elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])


# ---------------------------------------------------------------------------------------------
# Readers


class Source:
    """What every reader provides: the rows it will yield and how to name a place in it."""

    path: Any
    n_rows: int | None = None
    columns: dict[str, str]

    def chunks(self) -> Iterator[Chunk]:  # pragma: no cover - abstract
        raise NotImplementedError

    def where(self, role: str, row: int | None) -> tuple[str, str, int | None]:
        """(file, column description, row in that file) for a row over the whole input."""
        return str(self.path), self.columns.get(role, role), row

    def error(self, role: str, row: int | None, detail: str) -> ValueError:
        path, what, local_row = self.where(role, row)
        return _at(path, what, local_row, detail)

    def progress(self) -> float | None:
        """Fraction of the input read so far, where the row count is not known in advance."""
        return None

    def close(self) -> None:
        pass


class _PathSource(Source):
    """A source at ``path`` (a file, or a directory of Parquet files) whose roles' data are
    named by ``specs``: columns, or ``.npz`` members."""

    def __init__(
        self,
        path: Any,
        specs: dict[str, ColumnSpec],
        chunk_bytes: int,
        classes: np.ndarray | None,
    ) -> None:
        self.path = path
        self.classes = classes
        self._prepare(specs, chunk_bytes)

    def _prepare(self, specs: dict[str, ColumnSpec], chunk_bytes: int) -> None:
        """Open the input, find each role's data, plan the chunks."""
        raise NotImplementedError  # pragma: no cover - abstract


class _NumpySource(Source):
    """``.npy`` files or ``.npz`` members: arrays with a header each, one row per sample, read
    in chunks of ``rows`` rows."""

    classes: np.ndarray | None
    rows: int

    def _plan_rows(
        self,
        headers: dict[str, _Header],
        chunk_bytes: int,
        names: dict[str, Any],
        prefix: str = "",
    ) -> None:
        """Every role must have pred's row count (``names`` says what each role is); the chunk
        budget then gives the rows per chunk."""
        self.n_rows = headers["pred"].shape[0]
        for role, header in headers.items():
            if header.shape[0] != self.n_rows:
                raise ValueError(
                    f"{prefix}{names[role]} ({role}) has {header.shape[0]} rows but "
                    f"{names['pred']} (pred) has {self.n_rows}; they must have one row per sample"
                )
        per_row = _SCRATCH_PER_ROW + sum(
            _working_bytes(h.dtype, _row_elements(h.shape)) for h in headers.values()
        )
        if "groups" in headers:  # (string keys: a sorted copy, and one str per distinct key)
            per_row += _GROUP_SCRATCH_PER_ROW + headers["groups"].dtype.itemsize
        self.rows = rows_per_chunk(chunk_bytes, per_row)

    def _spans(self) -> Iterator[tuple[int, int]]:
        """The rows [lo, hi) of each chunk."""
        n = self.n_rows or 0
        for lo in range(0, n, self.rows):
            yield lo, min(n, lo + self.rows)

    def _chunk(self, lo: int, arrays: dict[str, np.ndarray]) -> Chunk:
        target = arrays.get("target")
        if target is not None:
            target = _numpy_target(target, self.classes, self, lo)
        where = arrays.get("where")
        if where is not None:
            where = as_mask(where, self, lo)
        groups = arrays.get("groups")
        keys = None if groups is None else factorize_keys(groups, self, lo)
        return Chunk(lo, target, arrays["pred"], arrays.get("weight"), where, keys)


class NpyPair(_NumpySource):
    """The ``.npy`` files of pred and, as given, target, weight, where and groups,
    memory-mapped, rows sliced as views.

    Consumed pages of C-ordered files are released with ``madvise(MADV_DONTNEED)``: the data
    stays in the page cache, but the process's resident memory does not grow with the file.
    """

    def __init__(
        self,
        files: dict[str, Any],
        chunk_bytes: int,
        classes: np.ndarray | None,
    ) -> None:
        self.path = files["pred"]
        self.files = files
        self.columns = {role: f"the {role} array" for role in files}
        self.classes = classes
        self._maps: dict[str, tuple[mmap.mmap | None, np.ndarray, _Header]] = {}
        try:
            for role, path in files.items():
                self._maps[role] = self._open(role, path)
        except BaseException:
            self.close()
            raise
        self._plan_rows({role: h for role, (_, _, h) in self._maps.items()}, chunk_bytes, files)

    def where(self, role: str, row: int | None) -> tuple[str, str, int | None]:
        return str(self.files.get(role, self.path)), self.columns.get(role, role), row

    @staticmethod
    def _open(role: str, path: Any) -> tuple[mmap.mmap | None, np.ndarray, _Header]:
        what = f"the {role} array"
        try:
            fp = open(path, "rb")
        except OSError as exc:
            raise ValueError(f"{path} ({role}): cannot open: {exc.strerror or exc}") from None
        with fp:
            header = _read_header(fp, path, what)
            _check_kind(header, path, what, role)
            size = os.fstat(fp.fileno()).st_size
            row_bytes = header.dtype.itemsize * _row_elements(header.shape)
            expected = header.data_offset + header.shape[0] * row_bytes
            if size < expected:
                complete = (size - header.data_offset) // row_bytes if row_bytes else 0
                raise _at(
                    path,
                    what,
                    complete,
                    f"truncated .npy file: its header says shape {header.shape} of "
                    f"{header.dtype} ({expected} bytes with the header) but the file has "
                    f"{size} bytes; the data ends in row {complete}",
                )
            if expected == header.data_offset:  # no data: nothing to map
                empty = np.empty(header.shape, header.dtype)
                return None, empty, header
            mapping = mmap.mmap(fp.fileno(), expected, access=mmap.ACCESS_READ)
        array = np.ndarray(
            header.shape,
            header.dtype,
            buffer=mapping,
            offset=header.data_offset,
            order="F" if header.fortran else "C",
        )
        array.flags.writeable = False
        return mapping, array, header

    def _release(self, mapping: mmap.mmap | None, header: _Header, lo: int, hi: int) -> None:
        """Drop the pages of rows [lo, hi) from the process (they stay in the page cache)."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if mapping is None or advice is None or (header.fortran and len(header.shape) > 1):
            return
        row_bytes = header.dtype.itemsize * _row_elements(header.shape)
        page = mmap.PAGESIZE
        start = (header.data_offset + lo * row_bytes) // page * page
        end = (header.data_offset + hi * row_bytes) // page * page
        if end > start:
            try:
                mapping.madvise(advice, start, end - start)
            except (OSError, ValueError):  # pragma: no cover - advice is only an optimisation
                pass

    def chunks(self) -> Iterator[Chunk]:
        for lo, hi in self._spans():
            yield self._chunk(
                lo, {role: array[lo:hi] for role, (_, array, _) in self._maps.items()}
            )
            for mapping, _, header in self._maps.values():
                self._release(mapping, header, lo, hi)

    def close(self) -> None:
        # The mappings are not closed here: a chunk the caller still holds is a view of one
        # (NumPy keeps a reference to the mmap, not a buffer export, so closing it would leave
        # the view dangling). Each is unmapped when its last view is garbage collected.
        self._maps = {}


def _numpy_target(
    target: np.ndarray, classes: np.ndarray | None, source: Source, offset: int
) -> np.ndarray:
    """String labels need ``classes``; with ``classes`` every label becomes its position."""
    if classes is not None:
        path, what, _ = source.where("target", offset)
        return encode_labels(target, classes, path, what, offset)
    if target.dtype.kind in "US":
        path, what, local = source.where("target", offset)
        raise _needs_labels(path, what, local)
    return target


# What zipfile raises on corrupt archives and members (an unknown compression method is a
# NotImplementedError, an encrypted member a RuntimeError, a bad offset an OSError, a corrupt
# name a UnicodeDecodeError, a bad extra field a struct.error or a ValueError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    struct.error,
)


# Deflate cannot expand data more than 1032:1 (RFC 1951: a 258-byte match in 2 bits).
_DEFLATE_RATIO = 1032


def _largest_member(info: zipfile.ZipInfo, archive_size: int) -> int:
    """The most bytes a member can decompress to, from its directory entry and the size of
    the archive (a corrupt entry can claim any size; the archive bounds what it can hold)."""
    stored = min(info.compress_size, archive_size)
    if info.compress_type == zipfile.ZIP_STORED:
        return min(info.file_size, stored)
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return min(info.file_size, stored * _DEFLATE_RATIO)
    return info.file_size


def _check_member(
    path: Any, name: str, header: _Header, info: zipfile.ZipInfo, archive_size: int
) -> None:
    what = f"member {name!r}"
    claimed = header.data_offset + header.dtype.itemsize * math.prod(header.shape)
    if claimed > _largest_member(info, archive_size):
        # Checked before any buffer is sized from the header: a corrupt header could otherwise
        # ask for any amount of memory. The row is the first one the member cannot hold.
        row_bytes = header.dtype.itemsize * math.prod(header.shape[1:])
        held = max(0, _largest_member(info, archive_size) - header.data_offset)
        first_missing = held // row_bytes if row_bytes else None
        raise _at(
            path,
            what,
            first_missing,
            f"truncated or corrupt member: its header says shape {header.shape} of "
            f"{header.dtype} ({claimed} bytes with the header) but the member holds "
            f"{info.file_size} bytes",
        )
    if header.fortran and sum(n > 1 for n in header.shape) > 1:
        raise _at(
            path,
            what,
            None,
            f"stored in Fortran order (shape {header.shape}), which cannot be read in row "
            "chunks without loading it whole; save it in C order (np.ascontiguousarray) or as "
            "a .npy file, which is memory-mapped",
        )


class NpzMembers(_NumpySource, _PathSource):
    """Members of an ``.npz`` (stored or deflate-compressed), streamed in row chunks."""

    def _prepare(self, specs: dict[str, ColumnSpec], chunk_bytes: int) -> None:
        members: dict[str, str] = {}
        for role, spec in specs.items():
            if spec is None:
                continue
            if not isinstance(spec, str):
                raise TypeError(f"{role} must name one member of the .npz; got {spec!r}")
            members[role] = spec
        path = self.path
        self.columns = {role: f"member {name!r}" for role, name in members.items()}
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except _ZIP_ERRORS as exc:
            raise ValueError(f"{path}: not a readable .npz (zip) file: {exc}") from None
        self.streams: dict[str, tuple[Any, _Header]] = {}
        try:
            names = set(self.zip.namelist())
            archive_size = os.path.getsize(path)
            for role, name in members.items():
                entry = name if name in names else f"{name}.npy"
                if entry not in names:
                    available = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
                    raise UnknownName(
                        f"{path}: member {name!r}: no such member ({role}); the file holds: "
                        f"{', '.join(available)}{did_you_mean(name, available)}",
                        role,
                    )
                try:
                    stream = self.zip.open(entry)
                except _ZIP_ERRORS as exc:
                    raise _at(
                        path, f"member {name!r}", None, f"cannot open the member: {exc}"
                    ) from None
                try:
                    header = _read_header(stream, path, f"member {name!r}")
                    _check_kind(header, path, f"member {name!r}", role)
                    _check_member(path, name, header, self.zip.getinfo(entry), archive_size)
                except BaseException:
                    stream.close()
                    raise
                self.streams[role] = (stream, header)
            headers = {role: h for role, (_, h) in self.streams.items()}
            self._plan_rows(headers, chunk_bytes, self.columns, prefix=f"{path}: ")
        except BaseException:
            self.close()
            raise

    def _fill(self, role: str, stream: Any, buffer: memoryview, row_bytes: int, lo: int) -> None:
        """Read exactly ``len(buffer)`` bytes, in pieces, or raise naming the row reached."""
        got = 0
        want = len(buffer)
        try:
            while got < want:
                piece = stream.read1(min(_READ_PIECE, want - got))
                if not piece:
                    break
                buffer[got : got + len(piece)] = piece
                got += len(piece)
        except _ZIP_ERRORS as exc:
            # A checksum covers the whole member: it says that some row is damaged, not which.
            checksum = "CRC" in str(exc)
            row = None if checksum else lo + got // row_bytes if row_bytes else lo
            raise self.error(role, row, f"corrupt member data: {exc}") from None
        if got < want:
            row = lo + got // row_bytes if row_bytes else lo
            raise self.error(
                role,
                row,
                f"truncated member: its header says {self.n_rows} rows but the data ends in "
                f"row {row}",
            )

    def chunks(self) -> Iterator[Chunk]:
        rows = min(self.rows, self.n_rows or 0)
        buffers: dict[str, np.ndarray] = {}
        for role, (_, header) in self.streams.items():
            row_bytes = header.dtype.itemsize * _row_elements(header.shape)
            buffers[role] = np.empty(rows * row_bytes, np.uint8)
        for lo, hi in self._spans():
            arrays: dict[str, np.ndarray] = {}
            for role, (stream, header) in self.streams.items():
                row_bytes = header.dtype.itemsize * _row_elements(header.shape)
                raw = buffers[role][: (hi - lo) * row_bytes]
                self._fill(role, stream, memoryview(raw.data), row_bytes, lo)
                arrays[role] = raw.view(header.dtype).reshape((hi - lo, *header.shape[1:]))
            yield self._chunk(lo, arrays)
        # Reading to the end of each member makes zipfile check its CRC-32.
        for role, (stream, _) in self.streams.items():
            try:
                stream.read(1)
            except _ZIP_ERRORS as exc:
                raise self.error(role, None, f"corrupt member data: {exc}") from None

    def close(self) -> None:
        for stream, _ in getattr(self, "streams", {}).values():
            stream.close()
        self.zip.close()


# ---------------------------------------------------------------------------------------------
# Arrow (Parquet, CSV)


def resolve_columns(spec: ColumnSpec, names: Sequence[str], role: str, path: Any) -> list[str]:
    """Column names from a spec: one name, a comma-separated list (or a sequence) of names, or a
    glob (``p_*``) matched in the order the columns appear in the file."""
    if spec is None:
        return []
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")] if "," in spec else [spec]
    else:
        parts = [str(p) for p in spec]
    chosen: list[str] = []
    for part in parts:
        if part in names:
            chosen.append(part)
        elif any(ch in part for ch in "*?["):
            matched = [n for n in names if fnmatch.fnmatchcase(n, part)]
            if not matched:
                raise UnknownName(
                    f"{path}: column {part!r}: no column matches the pattern ({role}); the "
                    f"columns are: {', '.join(names)}",
                    role,
                )
            chosen.extend(matched)
        else:
            raise UnknownName(
                f"{path}: column {part!r}: no such column ({role}); the columns are: "
                f"{', '.join(names)}{did_you_mean(part, names)}",
                role,
            )
    if len(set(chosen)) != len(chosen):
        raise _at(path, "", None, f"the {role} columns repeat a column: {chosen}")
    return chosen


def _describe(columns: list[str]) -> str:
    if len(columns) == 1:
        return f"column {columns[0]!r}"
    return f"columns {columns[0]!r}..{columns[-1]!r} ({len(columns)} columns)"


def _expected(role: str) -> str:
    return {"where": _MASK_EXPECTED, "groups": _KEYS_EXPECTED}.get(role, "expected numbers")


class _ArrowColumns:
    """Turns record batches into NumPy arrays per role, checking nulls, raggedness, labels."""

    def __init__(self, source: Source, roles: dict[str, list[str]], classes: np.ndarray | None):
        self.pa = require_pyarrow("Parquet or CSV files")
        import pyarrow.compute as pc

        self.pc = pc
        self.source = source
        self.roles = roles
        self.classes = classes
        self.widths: dict[str, int] = {}

    def to_numpy(self, batch: Any, offset: int) -> dict[str, Any]:
        arrays: dict[str, Any] = {
            role: self._role(batch, role, cols, offset)
            for role, cols in self.roles.items()
            if role != "groups"
        }
        if "where" in arrays:
            arrays["where"] = as_mask(arrays["where"], self.source, offset)
        if "groups" in self.roles:
            arrays["groups"] = self._groups(batch, self.roles["groups"], offset)
        return arrays

    def _groups(self, batch: Any, cols: list[str], offset: int) -> GroupKeys:
        """One column of integer or string keys, factorised (strings by Arrow, whose
        dictionary encoding makes no Python string per row)."""
        pa = self.pa
        if len(cols) != 1:
            path, _, _ = self.source.where("groups", None)
            raise _at(
                path,
                _describe(cols),
                None,
                f"groups names one column of keys; got {len(cols)} columns ({', '.join(cols)})",
            )
        column = cols[0]
        array = batch.column(column)
        if array.null_count:
            raise self._null_error(
                "groups", column, offset + self._first_null(array), "a null key"
            )
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        typ = array.type
        if getattr(pa.types, "is_string_view", lambda _: False)(typ):
            array = array.cast(pa.large_string())
            typ = array.type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            encoded = self.pc.dictionary_encode(array)
            codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            return GroupKeys(codes, np.array(encoded.dictionary.to_pylist(), dtype=object))
        if pa.types.is_integer(typ):
            return factorize_keys(array.to_numpy(zero_copy_only=False), self.source, offset)
        if pa.types.is_floating(typ) or pa.types.is_boolean(typ):
            detail = _key_kind_detail("f" if pa.types.is_floating(typ) else "b", typ)
        else:
            detail = f"has type {typ} (groups); {_KEYS_EXPECTED}"
        raise self._error("groups", column, offset, detail)

    def _role(self, batch: Any, role: str, cols: list[str], offset: int) -> np.ndarray:
        pa = self.pa
        if len(cols) == 1:
            array = batch.column(cols[0])
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            if (
                pa.types.is_list(array.type)
                or pa.types.is_large_list(array.type)
                or pa.types.is_fixed_size_list(array.type)
            ):
                return self._list(array, role, cols[0], offset)
            return self._scalar(array, role, cols[0], offset)
        pieces = [self._scalar(batch.column(c), role, c, offset, numeric=True) for c in cols]
        return np.column_stack(pieces) if pieces[0].size else np.empty((0, len(cols)))

    def _first_null(self, array: Any) -> int:
        return int(np.argmax(self.pc.is_null(array).to_numpy(zero_copy_only=False)))

    def _error(self, role: str, column: str, row: int, detail: str) -> ValueError:
        """The error at ``row`` (over the whole input) of one of the role's columns."""
        path, _, local = self.source.where(role, row)
        return _at(path, f"column {column!r}", local, detail)

    def _null_error(self, role: str, column: str, row: int, what: str = "a null") -> ValueError:
        return self._error(role, column, row, f"{what} ({role}); fill or drop it first")

    def _scalar(
        self, array: Any, role: str, column: str, offset: int, numeric: bool = False
    ) -> np.ndarray:
        pa = self.pa
        if array.null_count:
            raise self._null_error(role, column, offset + self._first_null(array), "a null value")
        typ = array.type
        path, _, local = self.source.where(role, offset)
        what = f"column {column!r}"
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            if numeric or role != "target":
                raise _at(path, what, local, f"holds strings ({role}); {_expected(role)}")
            if self.classes is None:
                raise _needs_labels(path, what, local)
            if self.classes.dtype.kind != "U":
                raise _label_kind_error(path, what, "U", self.classes)
            position = self.pc.index_in(array, value_set=pa.array(self.classes.tolist()))
            if position.null_count:
                row = self._first_null(position)
                raise self._error(
                    role,
                    column,
                    offset + row,
                    f"label {array[row].as_py()!r} is not one of labels {self.classes.tolist()}",
                )
            return position.to_numpy().astype(np.int64)
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
            raise _at(path, what, local, f"has type {typ} ({role}); {_expected(role)}")
        values = array.to_numpy(zero_copy_only=False)
        if role == "target" and self.classes is not None and not numeric:
            return encode_labels(values, self.classes, path, what, offset)
        return values

    def _list(self, array: Any, role: str, column: str, offset: int) -> np.ndarray:
        pa, pc = self.pa, self.pc
        n = len(array)
        if array.null_count:
            row = offset + self._first_null(array)
            raise self._null_error(role, column, row, "a null list")
        if pa.types.is_fixed_size_list(array.type):
            lengths = None
            width = array.type.list_size
        else:
            lengths = pc.list_value_length(array).to_numpy()
            width = int(lengths[0]) if n else self.widths.get(role, 0)
        expected = self.widths.setdefault(role, width)
        if lengths is not None and n:
            ragged = lengths != expected
            if ragged.any():
                row = int(np.argmax(ragged))
                raise self._error(
                    role,
                    column,
                    offset + row,
                    f"ragged list column ({role}): this row has {int(lengths[row])} values, "
                    f"the rows before it {expected}",
                )
        elif width != expected:
            raise self._error(
                role,
                column,
                offset,
                f"list size {width} ({role}) differs from the {expected} of the rows before it",
            )
        values = array.flatten()
        if values.null_count:
            flat = self._first_null(values)
            raise self._null_error(role, column, offset + flat // max(expected, 1), "a null value")
        typ = values.type
        numbers = pa.types.is_integer(typ) or pa.types.is_floating(typ)
        if not (numbers or (role == "where" and pa.types.is_boolean(typ))):
            raise self._error(
                role, column, offset, f"holds lists of {typ} ({role}); {_expected(role)}"
            )
        return values.to_numpy(zero_copy_only=False).reshape(n, expected)


def _arrow_row_bytes(schema: Any, roles: dict[str, list[str]], metadata: Any = None) -> int:
    """An estimate of the bytes per row of the decoded columns, twice (a NumPy copy)."""
    pa = require_pyarrow("Parquet or CSV files")
    total = _SCRATCH_PER_ROW
    for cols in roles.values():
        for name in cols:
            typ = schema.field(name).type
            width = 1
            if pa.types.is_fixed_size_list(typ):
                width = typ.list_size
                typ = typ.value_type
            elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
                typ = typ.value_type
                width = _list_width_estimate(name, metadata, typ)
            try:
                item = max(typ.bit_width // 8, 1)
            except ValueError:
                item = 16  # strings: a guess; only the chunk size depends on it
            total += 2 * width * max(item, 8 if pa.types.is_integer(typ) else item)
    if "groups" in roles:
        total += _GROUP_SCRATCH_PER_ROW
    return total


def _list_width_estimate(name: str, metadata: Any, value_type: Any) -> int:
    """Values per row of a list column, at most: the uncompressed bytes per row of the row
    groups (every column's, which bounds this column's) over the size of a value.

    The row groups' totals, not the column chunks' sizes: pyarrow 26 aborts the process
    (``std::terminate`` on a ``ParquetException``) when the metadata of a column chunk with
    corrupt size statistics is opened (``RowGroupMetaData.column(i)``), where reading the
    same file raises an ``OSError``. Found by tools/fuzz_readers.py.
    """
    if metadata is None or metadata.num_rows <= 0:
        return 1
    try:
        item = max(value_type.bit_width // 8, 1)
    except ValueError:
        return 1
    size = sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups))
    return max(1, size // (item * metadata.num_rows))


class _ArrowSource(_PathSource):
    """Parquet or CSV: the roles' columns named by specs, read as Arrow record batches."""

    _kind = ""  # "Parquet files", "CSV files": what needs pyarrow

    def _prepare(self, specs: dict[str, ColumnSpec], chunk_bytes: int) -> None:
        self._pa = require_pyarrow(self._kind)
        names, where = self._open_columns(chunk_bytes)
        self.roles = {
            role: resolve_columns(spec, names, role, where)
            for role, spec in specs.items()
            if spec is not None
        }
        self.columns = {role: _describe(cols) for role, cols in self.roles.items()}
        # Each column once, even where two roles name it (pyarrow refuses a duplicate).
        self.read = list(dict.fromkeys(c for cols in self.roles.values() for c in cols))
        self.converter = _ArrowColumns(self, self.roles, self.classes)

    def _open_columns(self, chunk_bytes: int) -> tuple[list[str], Any]:  # pragma: no cover
        """Opens the input: its column names, and the file that names them in errors."""
        raise NotImplementedError

    def _batch_chunks(
        self,
        next_batch: Callable[[], Any],
        offset: int,
        failure: Callable[[int, Exception], ValueError],
    ) -> Generator[Chunk, None, int]:
        """Chunks of the record batches ``next_batch()`` gives until StopIteration, their rows
        counted from ``offset``; a batch that cannot be read raises ``failure(offset, exc)``.
        Returns the offset after the last row."""
        while True:
            try:
                batch = next_batch()
            except StopIteration:
                break
            except (self._pa.ArrowException, OSError) as exc:
                raise failure(offset, exc) from None
            if batch.num_rows == 0:
                continue
            arrays = self.converter.to_numpy(batch, offset)
            yield Chunk(
                offset,
                arrays.get("target"),
                arrays["pred"],
                arrays.get("weight"),
                arrays.get("where"),
                arrays.get("groups"),
            )
            offset += batch.num_rows
        return offset


class ParquetSource(_ArrowSource):
    """A Parquet file or a directory of them, row group by row group."""

    _kind = "Parquet files"

    def _open_columns(self, chunk_bytes: int) -> tuple[list[str], Any]:
        import pyarrow.parquet as pq

        path = self.path
        self.pq = pq
        self.chunk_bytes = chunk_bytes
        self.files = self._list_files(path)
        self.starts: list[int] = []
        self.metadata = []
        total = 0
        for file in self.files:
            meta = self._open(file).metadata
            self.starts.append(total)
            self.metadata.append(meta)
            total += meta.num_rows
        self.n_rows = total
        first = self._open(self.files[0]) if self.files else None
        if first is None:
            raise ValueError(f"{path}: no Parquet files in this directory")
        self.schema = first.schema_arrow
        return self.schema.names, self.files[0]

    @staticmethod
    def _list_files(path: Any) -> list[str]:
        if not os.path.isdir(path):
            if not os.path.exists(path):
                raise ValueError(f"{path}: no such file or directory")
            return [os.fspath(path)]
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(os.fspath(path), format="parquet")
        except Exception as exc:  # pyarrow raises several kinds here
            raise ValueError(f"{path}: not a readable Parquet dataset: {exc}") from None
        return sorted(dataset.files)

    def _open(self, file: str) -> Any:
        try:
            return self.pq.ParquetFile(file)
        except Exception as exc:  # ArrowInvalid, OSError, ...: a corrupt footer or not Parquet
            raise ValueError(
                f"{file}: not a readable Parquet file (corrupt or truncated footer?): {exc}"
            ) from None

    def where(self, role: str, row: int | None) -> tuple[str, str, int | None]:
        what = self.columns.get(role, role)
        if row is None or len(self.files) == 1:
            return str(self.files[0] if len(self.files) == 1 else self.path), what, row
        index = max(0, bisect.bisect_right(self.starts, row) - 1)
        local = row - self.starts[index]
        what = f"{what} (row {row} of the dataset {self.path})"
        return str(self.files[index]), what, local

    def chunks(self) -> Iterator[Chunk]:
        for index, file in enumerate(self.files):
            with reading(file):
                yield from self._file_chunks(index, file)

    def _file_chunks(self, index: int, file: str) -> Iterator[Chunk]:
        parquet = self._open(file)
        names = parquet.schema_arrow.names
        for role, cols in self.roles.items():
            missing = [c for c in cols if c not in names]
            if missing:
                raise _at(
                    file,
                    f"column {missing[0]!r}",
                    None,
                    f"no such column ({role}) in this file of the dataset {self.path}; its "
                    f"columns are: {', '.join(names)}{did_you_mean(missing[0], names)}",
                )
        row_bytes = _arrow_row_bytes(parquet.schema_arrow, self.roles, self.metadata[index])
        batch_rows = rows_per_chunk(self.chunk_bytes, row_bytes)
        offset = self.starts[index]
        for group in range(parquet.num_row_groups):
            batches = parquet.iter_batches(
                batch_size=batch_rows, row_groups=[group], columns=self.read, use_threads=False
            )
            failure = functools.partial(self._unreadable, file, group)
            offset = yield from self._batch_chunks(batches.__next__, offset, failure)

    def _unreadable(self, file: str, group: int, row: int, exc: Exception) -> ValueError:
        _, _, local = self.where("pred", row)
        return _at(
            file,
            f"row group {group}",
            local,
            f"cannot read the rows from here on (corrupt data?): {exc}",
        )


class _CountingFile:
    """A read-only file that counts the bytes read from it (CSV progress)."""

    def __init__(self, path: Any) -> None:
        self.raw = open(path, "rb")
        self.size = os.fstat(self.raw.fileno()).st_size
        self.position = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.position += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.raw.close()


class CsvSource(_ArrowSource):
    """A CSV file (optionally compressed: .gz, .bz2, .zst, ...), streamed in blocks."""

    _kind = "CSV files"

    def _open_columns(self, chunk_bytes: int) -> tuple[list[str], Any]:
        import pyarrow.csv as csv

        path = self.path
        self.csv = csv
        self._counting: _CountingFile | None = None
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file")
        # pyarrow's streaming reader holds many blocks in flight: measured here (pyarrow 26),
        # its peak anonymous memory was 40-55 blocks, whatever the thread counts. A block of
        # 1/64 of the budget keeps the reader within it (1 MiB, pyarrow's default, at 64 MiB).
        self.block_size = max(_MIN_CSV_BLOCK, chunk_bytes // 64)
        with self._reader(None) as reader:
            return reader.schema.names, path

    def _reader(
        self, columns: list[str] | None, use_threads: bool = True, count: bool = False
    ) -> Any:
        pa, csv = self._pa, self.csv
        convert = csv.ConvertOptions(
            include_columns=columns or [],
            # Only an empty field is missing: "nan" and "NaN" are numbers (NaN propagates).
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            # Every column as float64 but a target's one column (class labels, perhaps
            # strings), a where column (true/false read as booleans, 0/1 as integers) and a
            # groups column (integer or string keys, as the reader infers them).
            column_types={
                c: pa.float64()
                for role, cols in getattr(self, "roles", {}).items()
                if (role != "target" or len(cols) > 1) and role not in ("where", "groups")
                for c in cols
            },
        )
        options = csv.ReadOptions(block_size=self.block_size, use_threads=use_threads)
        source: Any = os.fspath(self.path)
        if count:
            self._counting = _CountingFile(self.path)
            source = self._counting
            try:
                codec = pa.Codec.detect(os.fspath(self.path))
            except (TypeError, ValueError):
                codec = None
            if codec is not None:
                source = pa.CompressedInputStream(source, codec.name)
        try:
            return csv.open_csv(source, read_options=options, convert_options=convert)
        except (pa.ArrowException, OSError) as exc:
            if "straddl" in str(exc):
                raise self._too_long(exc) from None
            raise ValueError(f"{self.path}: not a readable CSV file: {exc}") from None

    def _too_long(self, exc: Exception) -> ValueError:
        return _at(
            self.path,
            "",
            None,
            f"a line is longer than the CSV block of {self.block_size} bytes (1/64 of the "
            f"chunk budget): raise the budget (chunk_bytes=, CLI --memory) ({exc})",
        )

    def progress(self) -> float | None:
        counting = self._counting
        if counting is None or not counting.size:
            return None
        return min(1.0, counting.position / counting.size)

    def _locate_failure(self, columns: list[str], exc: Exception) -> ValueError:
        """The parallel reader does not say which row failed: find it with the serial one."""
        message = str(exc)
        try:
            with self._reader(columns, use_threads=False) as reader:
                for _ in reader:
                    pass
        except self._pa.ArrowException as serial:
            message = str(serial)
        if "straddl" in message:
            return self._too_long(exc)
        row: int | None = None
        what = ""
        found = re.search(r"Row #(\d+)", message)
        if found:
            row = int(found.group(1)) - 2  # 1-based lines, the header is line 1
        column = re.search(r"column #(\d+)", message)
        if column:
            with self._reader(None) as reader:
                names = reader.schema.names
            index = int(column.group(1))
            if index < len(names):
                what = f"column {names[index]!r}"
        return _at(self.path, what, row, f"cannot parse the CSV: {message}")

    def chunks(self) -> Iterator[Chunk]:
        reader = self._reader(self.read, count=True)
        try:
            yield from self._batch_chunks(
                reader.read_next_batch, 0, lambda _, exc: self._locate_failure(self.read, exc)
            )
        finally:
            reader.close()
            self.close()

    def close(self) -> None:
        if self._counting is not None:
            self._counting.close()
            self._counting = None


# ---------------------------------------------------------------------------------------------


_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4", ".csv.br")


def open_source(
    path: Any,
    *,
    target: ColumnSpec,
    pred: ColumnSpec,
    weight: ColumnSpec = None,
    where: ColumnSpec = None,
    groups: ColumnSpec = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    classes: np.ndarray | None = None,
) -> Source:
    """The reader for ``path`` (or for ``.npy`` files named by ``target``/``pred``/``weight``/
    ``where``/``groups`` when ``path`` is None)."""
    if pred is None:
        raise ValueError("pred is required: the .npy file (or column, or member) of predictions")
    if path is None:
        files: dict[str, Any] = {"pred": pred}
        if target is not None:
            files["target"] = target
        if weight is not None:
            files["weight"] = weight
        if where is not None:
            files["where"] = where
        if groups is not None:
            files["groups"] = groups
        check_npy_files(files)
        return NpyPair(files, chunk_bytes, classes)
    kind = path_kind(
        path,
        "score two of them with path=None and target=/pred= naming the .npy files (CLI: "
        "fastce score --target y.npy --pred p.npy)",
        "two .npy files",
    )
    specs: dict[str, ColumnSpec] = {
        "target": target, "pred": pred, "weight": weight, "where": where, "groups": groups,
    }  # fmt: skip
    with reading(path):
        return kind(path, specs, chunk_bytes, classes)


def check_npy_files(files: dict[str, Any]) -> None:
    """Without a PATH, each role names a ``.npy`` file."""
    for role, file in files.items():
        if not isinstance(file, (str, os.PathLike)):
            raise TypeError(f"{role} must be the path of a .npy file; got {file!r}")
        if not os.fspath(file).endswith(".npy"):
            raise ValueError(
                f"without a PATH, {role} must be a .npy file; got {file!r} (for a Parquet, "
                "CSV or .npz file, give its path and name the columns or members)"
            )


def path_kind(path: Any, npy_instead: str, npy_files: str) -> type[_PathSource]:
    """The reader of the file (or directory) ``path`` by its kind: ``.npz``, CSV or Parquet.
    A ``.npy`` PATH is an error saying ``npy_instead``; an unknown kind, one that lists
    ``npy_files`` (with no PATH) among the inputs expected."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file or directory path; got {path!r}")
    name = os.fspath(path).lower()
    if name.endswith(".npy"):
        raise ValueError(f"{path}: a .npy file holds one array; {npy_instead}")
    if name.endswith(".npz"):
        return NpzMembers
    if name.endswith(_CSV_SUFFIXES):
        return CsvSource
    if os.path.isdir(path) or name.endswith(_PARQUET_SUFFIXES) or _is_parquet(path):
        return ParquetSource
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file or directory")
    raise ValueError(
        f"{path}: unknown file kind; expected a Parquet file (.parquet) or directory, a CSV "
        f"file (.csv, .csv.gz, ...) or an .npz file, or {npy_files} with no PATH"
    )


def _is_parquet(path: Any) -> bool:
    try:
        with open(path, "rb") as fp:
            return fp.read(4) == b"PAR1"
    except OSError:
        return False


def iter_chunks(source: Source) -> Generator[Chunk, None, None]:
    """The source's chunks, closing it at the end (or on an error)."""
    try:
        with reading(source.path):
            yield from source.chunks()
    finally:
        source.close()


__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "Chunk",
    "GroupKeys",
    "Source",
    "UnknownName",
    "as_mask",
    "check_classes",
    "encode_labels",
    "factorize_keys",
    "iter_chunks",
    "open_source",
    "resolve_columns",
    "rows_per_chunk",
]
