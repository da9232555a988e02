"""Fuzz the file readers of ``fastce.score_file`` (fastce/_io.py) with corrupt bytes.

Every input is a file of one kind (``.npy``, ``.npz``, Parquet, CSV) whose bytes were mutated
from a valid seed file. ``score_file`` must then either return a result (and, where NumPy or
pyarrow can read the mutated file whole, the same result as the in-memory function on what
they read) or raise a ``ValueError`` whose message names the file. Anything else (another
exception type, a message without the file's name, a crash, a hang) is a failure.

Two engines:

* ``--engine atheris`` (coverage-guided; ``pip install atheris``): libFuzzer mutates the seed
  corpus, guided by the coverage of the Python code of fastce._io, numpy.lib.format, zipfile
  and the standard library's zlib wrappers. A bounded run::

      python tools/fuzz_readers.py --engine atheris --seconds 300

* ``--engine random`` (plain Python, no dependency): seeded random mutations of the same seeds
  (bit flips, byte overwrites with interesting values, truncation, insertion, deletion,
  duplication of runs, header-field tampering), for a number of cases or seconds::

      python tools/fuzz_readers.py --engine random --cases 20000

Both print the number of inputs tried per file kind and how they ended, and exit non-zero on
the first failure, after writing the input to ``--crash-dir``. ``tests/test_fuzz.py`` runs a
few hundred random cases in the default suite and a longer campaign under ``-m slow``.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import io
import math
import os
import random
import struct
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Seconds an input may take before the run is declared hung (faulthandler then dumps every
# thread's stack and exits).
HANG_SECONDS = 30.0

KINDS = ("npy_pred", "npy_target", "npz", "parquet", "csv")


# ---------------------------------------------------------------------------------------------
# Seeds: small valid files of each kind, and how to score them


@dataclass(frozen=True)
class Seed:
    kind: str
    name: str
    data: bytes
    suffix: str
    # score_file keyword arguments, with "{path}" standing for the mutated file
    call: dict[str, Any]
    # what the readers would see if they read the file whole: a function of the file's path
    # returning (measure, target, pred, options) for the in-memory comparison, or None
    oracle: Callable[[str], Any] | None = None
    companions: dict[str, bytes] = field(default_factory=dict)


def _npy_bytes(array: np.ndarray, fortran: bool = False) -> bytes:
    buf = io.BytesIO()
    if fortran:
        array = np.asfortranarray(array)
    np.save(buf, array)
    return buf.getvalue()


def _probabilities(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    p = rng.random((n, c)) + 0.05
    return p / p.sum(axis=1, keepdims=True)


def _npy_oracle(role: str, other: np.ndarray, measure: str) -> Callable[[str], Any]:
    def read(path: str) -> Any:
        mutated = np.load(path, allow_pickle=False)
        if role == "pred":
            return measure, other, mutated
        return measure, mutated, other

    return read


def _npz_oracle(path: str) -> Any:
    with np.load(path, allow_pickle=False) as f:
        return "cross_entropy", f["y"], f["p"]


def make_seeds() -> list[Seed]:
    """The seed files: every reader, several dtypes, layouts and compressions."""
    rng = np.random.default_rng(20240601)
    n, c = 40, 4
    y = rng.integers(0, c, n)
    p = _probabilities(rng, n, c)
    seeds: list[Seed] = []
    y_bytes = _npy_bytes(y)
    p_bytes = _npy_bytes(p)
    npy_preds = {
        "f8": p,
        "f4_fortran": p.astype(np.float32),
        "f2": p.astype(np.float16),
        "be_f8": p.astype(">f8"),
    }
    for name, arr in npy_preds.items():
        seeds.append(
            Seed(
                "npy_pred",
                name,
                _npy_bytes(arr, fortran=name.endswith("fortran")),
                ".npy",
                {
                    "path": None,
                    "measure": ["cross_entropy", "entropy"],
                    "target": "{y}",
                    "pred": "{path}",
                },
                _npy_oracle("pred", y, "cross_entropy"),
                {"y": y_bytes},
            )
        )
    labels = {"i8": y, "i4": y.astype(np.int32), "f8_labels": y.astype(np.float64)}
    for name, arr in labels.items():
        seeds.append(
            Seed(
                "npy_target",
                name,
                _npy_bytes(arr),
                ".npy",
                {"path": None, "measure": "cross_entropy", "target": "{path}", "pred": "{p}"},
                _npy_oracle("target", p, "cross_entropy"),
                {"p": p_bytes},
            )
        )
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as zf:
            zf.writestr("y.npy", y_bytes)
            zf.writestr("p.npy", p_bytes)
        seeds.append(
            Seed(
                "npz",
                "stored" if compression == zipfile.ZIP_STORED else "deflated",
                buf.getvalue(),
                ".npz",
                {"measure": "cross_entropy", "target": "y", "pred": "p"},
                _npz_oracle,
            )
        )
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the fuzz then covers .npy and .npz only
        return seeds
    labels = np.array(["ant", "bee", "cat", "dog"])
    tables = {
        "list": pa.table({"y": y, "p": pa.array(list(p), pa.list_(pa.float64()))}),
        "fixed_list_f32": pa.table(
            {
                "y": y.astype(np.int32),
                "p": pa.array(list(p.astype(np.float32)), pa.list_(pa.float32(), c)),
            }
        ),
        "columns": pa.table({"y": y, **{f"p_{k}": p[:, k] for k in range(c)}}),
        "strings": pa.table(
            {"y": pa.array(labels[y]).dictionary_encode(), "p": pa.array(list(p))}
        ),
    }
    specs = {
        "list": {"target": "y", "pred": "p"},
        "fixed_list_f32": {"target": "y", "pred": "p"},
        "columns": {"target": "y", "pred": "p_*"},
        "strings": {"target": "y", "pred": "p", "labels": list(labels)},
    }
    for name, table in tables.items():
        for compression in ("none", "snappy", "zstd"):
            buf = io.BytesIO()
            pq.write_table(table, buf, compression=compression, row_group_size=15)
            seeds.append(
                Seed(
                    "parquet",
                    f"{name}_{compression}",
                    buf.getvalue(),
                    ".parquet",
                    {"measure": ["cross_entropy", "entropy"], **specs[name]},
                )
            )
    lines = ["y,p_0,p_1,p_2,p_3"] + [
        f"{yi}," + ",".join(repr(float(v)) for v in row) for yi, row in zip(y, p, strict=True)
    ]
    seeds.append(
        Seed(
            "csv",
            "plain",
            ("\n".join(lines) + "\n").encode(),
            ".csv",
            {"measure": "cross_entropy", "target": "y", "pred": "p_*"},
        )
    )
    return seeds


# ---------------------------------------------------------------------------------------------
# Running one input


class Failure(Exception):
    """An input that ended in something other than a result or a ValueError naming the file."""


@dataclass
class Outcome:
    kind: str
    status: str  # "result", "ValueError"
    detail: str = ""


def _format(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, path in paths.items():
            value = value.replace("{" + key + "}", path)
    return value


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return bool(got == want)


def run_one(seed: Seed, data: bytes, folder: str, compare: bool = True) -> Outcome:
    """Score ``data`` as a file of ``seed``'s kind; raise :class:`Failure` on a bad ending."""
    import fastce

    path = os.path.join(folder, f"input{seed.suffix}")
    with open(path, "wb") as f:
        f.write(data)
    paths = {"path": path}
    for name, blob in seed.companions.items():
        companion = os.path.join(folder, f"{name}.npy")
        if not os.path.exists(companion):
            with open(companion, "wb") as f:
                f.write(blob)
        paths[name] = companion
    kwargs = {k: _format(v, paths) for k, v in seed.call.items()}
    file_path = kwargs.pop("path", path)
    measure = kwargs.pop("measure")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fastce.score_file(file_path, measure, chunk_bytes=1024, **kwargs)
    except ValueError as exc:
        message = str(exc)
        # The mutated file, or the file it is scored with (a label out of range for the
        # mutated pred's class count is reported where the label is).
        if not any(p in message for p in paths.values()):
            raise Failure(f"ValueError without the file's name: {message!r}") from exc
        return Outcome(seed.kind, "ValueError", message.split(": ", 2)[-1][:60])
    except Exception as exc:
        raise Failure(f"{type(exc).__name__}: {exc}") from exc
    if compare and seed.oracle is not None:
        _compare(seed, path, result, measure)
    return Outcome(seed.kind, "result")


def _compare(seed: Seed, path: str, result: Any, measure: Any) -> None:
    """Where NumPy reads the mutated file whole, the streamed result must be the in-memory
    one (bit for bit, the sums being exact) or the in-memory call must raise too."""
    import fastce

    assert seed.oracle is not None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            name, target, pred = seed.oracle(path)[:3]
    except Exception:
        return  # NumPy cannot read it either: the streamed reader accepted more, not less
    res = result[name] if isinstance(result, dict) else result
    try:
        want_mean = fastce.cross_entropy(target, pred, reduction="mean")
        want_sum = fastce.cross_entropy(target, pred, reduction="sum")
    except (ValueError, TypeError) as exc:
        raise Failure(
            f"score_file returned {res} where the in-memory call raises {exc!r}"
        ) from exc
    if not (_same(res.mean, float(want_mean)) and _same(res.sum, float(want_sum))):
        raise Failure(
            f"score_file gives mean {res.mean!r}, sum {res.sum!r}; in memory "
            f"{float(want_mean)!r}, {float(want_sum)!r}"
        )


# ---------------------------------------------------------------------------------------------
# Mutations (the random engine)

_INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    struct.pack("<q", -1),
    struct.pack("<q", 2**62),
    struct.pack("<d", math.nan),
    struct.pack("<d", math.inf),
]
# Text the .npy header parser and the CSV reader are sensitive to.
_TOKENS = [
    b"'<f8'",
    b"'>f8'",
    b"'|O'",
    b"'<U5'",
    b"'V8'",
    b"True",
    b"False",
    b"(",
    b")",
    b",",
    b"(0,)",
    b"(1, 10000000000)",
    b"(-1, 2)",
    b"()",
    b"'fortran_order'",
    b"'shape'",
    b"'descr'",
    b"{",
    b"}",
    b"\n",
    b"nan",
    b"inf",
    b"-",
    b"1e308",
    b'"',
    b"PAR1",
    b"PK\x03\x04",
]


def mutate(data: bytes, rng: random.Random, max_ops: int = 4) -> bytes:
    """One random mutation of ``data`` (a few stacked byte-level operations)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, max_ops)):
        if not buf:
            buf.extend(rng.choice(_INTERESTING))
            continue
        op = rng.randrange(9)
        # Headers and footers are where most of the parsing is: bias positions to the ends.
        region = rng.random()
        if region < 0.35:
            pos = rng.randrange(min(len(buf), 160))
        elif region < 0.6:
            pos = max(0, len(buf) - 1 - rng.randrange(min(len(buf), 200)))
        else:
            pos = rng.randrange(len(buf))
        if op == 0:  # flip a bit
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # overwrite with an interesting value
            value = rng.choice(_INTERESTING)
            buf[pos : pos + len(value)] = value
        elif op == 2:  # random byte
            buf[pos] = rng.randrange(256)
        elif op == 3:  # truncate
            del buf[pos:]
        elif op == 4:  # delete a run
            del buf[pos : pos + rng.randint(1, 64)]
        elif op == 5:  # insert random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 6:  # duplicate a run
            run = buf[pos : pos + rng.randint(1, 128)]
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = run
        elif op == 7:  # insert or overwrite a token
            token = rng.choice(_TOKENS)
            if rng.random() < 0.5:
                buf[pos:pos] = token
            else:
                buf[pos : pos + len(token)] = token
        else:  # tweak a little-endian integer field (lengths, offsets, counts)
            width = rng.choice([2, 4, 8])
            if pos + width <= len(buf):
                fmt = {2: "<H", 4: "<I", 8: "<Q"}[width]
                (value,) = struct.unpack_from(fmt, buf, pos)
                delta = rng.choice([1, -1, 7, -7, 1 << 12, -(1 << 12), 1 << 30])
                struct.pack_into(fmt, buf, pos, (value + delta) % (1 << (8 * width)))
    return bytes(buf)


# ---------------------------------------------------------------------------------------------
# Engines


@dataclass
class Tally:
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)

    def add(self, outcome: Outcome) -> None:
        self.counts[(outcome.kind, outcome.status)] += 1

    def per_kind(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(self.counts.items()):
            table.setdefault(kind, {"inputs": 0})
            table[kind][status] = n
            table[kind]["inputs"] += n
        return table

    def report(self, out: Any = sys.stdout) -> None:
        total = sum(self.counts.values())
        print(f"{total} inputs, 0 failures", file=out)
        for kind, row in self.per_kind().items():
            parts = ", ".join(f"{k} {v}" for k, v in row.items() if k != "inputs")
            print(f"  {kind:<11} {row['inputs']:>7} inputs ({parts})", file=out)


def _save_crash(crash_dir: str, seed: Seed, data: bytes) -> str:
    os.makedirs(crash_dir, exist_ok=True)
    path = os.path.join(crash_dir, f"crash-{seed.kind}-{seed.name}{seed.suffix}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def run_random(
    cases: int | None,
    seconds: float | None,
    seed: int = 0,
    crash_dir: str = "fuzz-crashes",
    kinds: tuple[str, ...] = KINDS,
    verbose: bool = True,
) -> Tally:
    """``cases`` random mutations (or as many as fit in ``seconds``), round-robin over the
    seeds; raises :class:`Failure` (after saving the input) on the first failure."""
    seeds = [s for s in make_seeds() if s.kind in kinds]
    rng = random.Random(seed)
    tally = Tally()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fastce-fuzz-") as folder:
        i = 0
        while True:
            if cases is not None and i >= cases:
                break
            if seconds is not None and time.monotonic() - start > seconds:
                break
            s = seeds[i % len(seeds)]
            data = mutate(s.data, rng)
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.__stderr__)
            try:
                tally.add(run_one(s, data, folder))
            except Failure as exc:
                where = _save_crash(crash_dir, s, data)
                raise Failure(f"{s.kind}/{s.name} (input saved to {where}): {exc}") from exc
            finally:
                faulthandler.cancel_dump_traceback_later()
            i += 1
            if verbose and i % 2000 == 0:
                print(f"  ... {i} inputs, {time.monotonic() - start:.0f} s", flush=True)
    return tally


def run_atheris(
    seconds: float,
    runs: int | None,
    crash_dir: str,
    corpus_dir: str,
    kinds: tuple[str, ...] = KINDS,
) -> None:
    """Coverage-guided fuzzing with atheris: the first byte picks the seed, the rest is the
    file. The corpus starts from every seed file."""
    import importlib
    import importlib.util
    import pkgutil

    import atheris

    # atheris instruments whole top-level packages; Numba cannot compile a kernel whose
    # bytecode it has instrumented, so every module that defines jitted functions is left out.
    # (found without importing fastce: find_spec of a submodule imports its package, and a
    # module imported before the hook is not instrumented)
    package = importlib.util.find_spec("fastce")
    assert package is not None and package.submodule_search_locations is not None
    assert "fastce" not in sys.modules, "fastce must be imported under the hook"
    kernels = [os.path.join(p, "_kernels") for p in package.submodule_search_locations]
    exclude = ["fastce._kernels", "fastce.benchmark"]
    exclude += [f"fastce._kernels.{m.name}" for m in pkgutil.iter_modules(kernels)]
    with atheris.instrument_imports(include=["fastce", "numpy", "zipfile"], exclude=exclude):
        import numpy.lib._format_impl
        import numpy.lib.format

        # NumPy imported its .npy reader at startup: load it again, instrumented.
        importlib.reload(numpy.lib._format_impl)
        importlib.reload(numpy.lib.format)
        importlib.reload(zipfile)  # (this script imported it to write the seeds)

        import fastce._io
        import fastce.scoring

    assert fastce.scoring._io is fastce._io and fastce._io.npy_format is numpy.lib.format

    seeds = [s for s in make_seeds() if s.kind in kinds]
    os.makedirs(corpus_dir, exist_ok=True)
    for index, s in enumerate(seeds):
        with open(os.path.join(corpus_dir, f"seed-{index:02d}-{s.kind}-{s.name}"), "wb") as f:
            f.write(bytes([index]) + s.data)
    folder = tempfile.mkdtemp(prefix="fastce-atheris-")
    tally = Tally()
    deadline = time.monotonic() + seconds

    def one_input(raw: bytes) -> None:
        if not raw:
            return
        s = seeds[raw[0] % len(seeds)]
        try:
            tally.add(run_one(s, raw[1:], folder))
        except Failure:
            _save_crash(crash_dir, s, raw[1:])
            raise
        if time.monotonic() > deadline:
            tally.report()
            os._exit(0)

    args = [
        sys.argv[0],
        corpus_dir,
        f"-max_total_time={int(seconds)}",
        "-timeout=30",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={crash_dir.rstrip('/')}/",
    ]
    if runs is not None:
        args.append(f"-runs={runs}")
    os.makedirs(crash_dir, exist_ok=True)
    atexit_report = tally.report
    import atexit

    atexit.register(atexit_report)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["random", "atheris"], default="random")
    parser.add_argument("--cases", type=int, help="random engine: number of inputs")
    parser.add_argument("--seconds", type=float, help="time bound (both engines)")
    parser.add_argument("--runs", type=int, help="atheris: number of inputs")
    parser.add_argument("--seed", type=int, default=0, help="random engine: RNG seed")
    parser.add_argument("--crash-dir", default="fuzz-crashes")
    parser.add_argument("--corpus-dir", default=None, help="atheris: corpus directory")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated file kinds")
    args = parser.parse_args(argv)
    if args.engine == "atheris":
        corpus = args.corpus_dir or tempfile.mkdtemp(prefix="fastce-corpus-")
        run_atheris(
            args.seconds or 300.0, args.runs, args.crash_dir, corpus, tuple(args.kinds.split(","))
        )
        return 0
    cases = args.cases
    if cases is None and args.seconds is None:
        cases = 2000
    start = time.monotonic()
    try:
        tally = run_random(
            cases, args.seconds, args.seed, args.crash_dir, tuple(args.kinds.split(","))
        )
    except Failure as exc:
        print(f"FAILURE: {exc}", file=sys.stderr)
        return 1
    tally.report()
    print(f"({time.monotonic() - start:.0f} s, random engine, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
