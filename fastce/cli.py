"""The ``fastce`` command: ``fastce demo``, ``bench``, ``score``, ``warmup``, ``--version``."""

from __future__ import annotations

import argparse
import ast
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._validate import did_you_mean
from ._version import __version__

# The generated data set is handed out in chunks of about this many values per array, so that
# the demo's memory does not grow with --rows (a chunk's float64 temporaries: a few tens of MiB).
_DEMO_CHUNK_VALUES = 1 << 21


def _check_demo_size(rows: int, classes: int) -> None:
    if rows < 1 or classes < 2:
        raise ValueError(f"need rows >= 1 and classes >= 2; got rows={rows}, classes={classes}")


def demo_chunks(
    rows: int, classes: int, seed: int, chunk_rows: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`make_demo_data`'s arrays, ``chunk_rows`` rows at a time (the same numbers).

    The generator draws each array whole before the next (all the favoured classes, then all
    the true logits, then the uniforms of the labels, then all the noise, then the
    overconfidence uniforms), and a normal draw consumes a varying number of random bits, so a
    chunk's draws cannot be reached by skipping. The per-row draws (8 bytes a row) are kept
    whole; the two (rows, classes) normal draws are made once ahead, chunk by chunk, only to
    note the generator's state where each chunk starts, and again when the chunk is made.
    """
    _check_demo_size(rows, classes)
    if chunk_rows is None:
        chunk_rows = max(1, _DEMO_CHUNK_VALUES // classes)
    starts = range(0, rows, chunk_rows)
    rng = np.random.default_rng(seed)

    def states_of_normal_chunks() -> list[Any]:
        states = []
        for lo in starts:
            states.append(rng.bit_generator.state)
            rng.normal(0.0, 1.0, size=(min(chunk_rows, rows - lo), classes))
        return states

    favoured_all = rng.integers(0, classes, size=rows)
    true_logit_states = states_of_normal_chunks()
    label_uniforms = rng.random(rows)
    noise_states = states_of_normal_chunks()
    sharpen_all = np.where(rng.random(rows) < 0.2, 3.0, 1.0)
    chunk_rng = np.random.default_rng()
    for k, lo in enumerate(starts):
        hi = min(rows, lo + chunk_rows)
        n = hi - lo
        chunk_rng.bit_generator.state = true_logit_states[k]
        true_logits = chunk_rng.normal(0.0, 1.0, size=(n, classes))
        true_logits[np.arange(n), favoured_all[lo:hi]] += 4.5
        true_probs = np.exp(true_logits - true_logits.max(axis=1, keepdims=True))
        true_probs /= true_probs.sum(axis=1, keepdims=True)
        # Labels drawn from the true distribution by inverting its CDF.
        cdf = np.cumsum(true_probs, axis=1)
        u = label_uniforms[lo:hi, None] * cdf[:, -1:]
        labels = np.minimum((cdf < u).sum(axis=1), classes - 1).astype(np.int64)
        del cdf, u
        chunk_rng.bit_generator.state = noise_states[k]
        noise = chunk_rng.normal(0.0, 0.7, size=(n, classes))
        true_logits += noise
        del noise
        true_logits *= sharpen_all[lo:hi, None]
        yield labels, true_probs, true_logits.astype(np.float32)


def make_demo_data(
    rows: int, classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A classification data set like a real model's output, generated in memory.

    Each sample has a true class distribution (softmax of random logits with one class
    favoured), a label drawn from it, and a model's float32 logits: the true logits plus noise,
    sharpened by a factor of 3 for one sample in five (an overconfident model). The model is
    right most of the time.

    Returns ``(labels, true_probabilities, model_logits)``; :func:`demo_chunks` gives the same
    arrays a chunk of rows at a time.
    """
    parts = list(demo_chunks(rows, classes, seed))
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _demo_measures(classes: int) -> list[tuple[str, str, Any, Callable[..., tuple[Any, ...]]]]:
    """(name, unit, accumulator, the arrays it takes from a chunk) for each line of the table."""
    from .accumulator import Accumulator

    def binary(labels: np.ndarray, _: np.ndarray, logits: np.ndarray) -> tuple[Any, ...]:
        # One-vs-rest: "is it class 0?" scored with the model's logit for class 0 against the
        # log-sum-exp of the others, i.e. the binary logit log(p0 / (1 - p0)).
        import fastce

        rest = fastce.logsumexp(logits[:, 1:])
        return (labels == 0).astype(np.float32), (logits[:, 0] - rest).astype(np.float32)

    def hard(labels: np.ndarray, _: np.ndarray, logits: np.ndarray) -> tuple[Any, ...]:
        return labels, logits

    return [
        ("cross-entropy", "nats", Accumulator("cross_entropy", from_logits=True), hard),
        ("cross-entropy", "bits", Accumulator("cross_entropy", from_logits=True, base=2), hard),
        ("perplexity", "classes", Accumulator("perplexity", from_logits=True), hard),
        (
            "KL(true || model)",
            "nats",
            Accumulator("kl_divergence", from_logits=True),
            lambda labels, true_probs, logits: (true_probs, logits),
        ),
        (
            "entropy of predictions",
            "nats",
            Accumulator("entropy", from_logits=True),
            lambda labels, true_probs, logits: (logits,),
        ),
        (
            "entropy of true dist.",
            "nats",
            Accumulator("entropy"),
            lambda labels, true_probs, logits: (true_probs,),
        ),
        (
            "binary log loss (class 0 vs rest)",
            "nats",
            Accumulator("binary_cross_entropy", from_logits=True),
            binary,
        ),
    ]


def run_demo(
    rows: int, classes: int, seed: int, out: Any = None, chunk_rows: int | None = None
) -> dict[str, float]:
    """Score the demo data set and print the table; returns the figures.

    The data set is generated and scored a chunk of rows at a time with exact accumulators
    (memory does not grow with ``rows``; the figures are the bits of the in-memory
    ``reduction="mean"`` over the whole data set). Each line's time is the sum of its calls
    over the chunks.
    """
    from ._warmup import count_compiles

    out = out or sys.stdout
    _check_demo_size(rows, classes)
    measures = _demo_measures(classes)
    seconds = [0.0] * len(measures)
    correct = 0
    first_use = 0.0
    compiles = 0
    for k, (labels, true_probs, logits) in enumerate(demo_chunks(rows, classes, seed, chunk_rows)):
        if k == 0:
            # The first calls compile every kernel used (or load it from Numba's cache): timed
            # on their own, on a throwaway copy of each accumulator, and left out of the table.
            with count_compiles() as compiled:
                start = time.perf_counter()
                inputs = [arrays(labels, true_probs, logits) for _, _, _, arrays in measures]
                for (_, _, acc, _), arrays in zip(measures, inputs, strict=True):
                    type(acc).from_bytes(acc.to_bytes()).update(*arrays)
                first_use = time.perf_counter() - start
            compiles = len(compiled)
        else:
            inputs = [arrays(labels, true_probs, logits) for _, _, _, arrays in measures]
        for i, ((_, _, acc, _), arrays) in enumerate(zip(measures, inputs, strict=True)):
            start = time.perf_counter()
            acc.update(*arrays)
            seconds[i] += time.perf_counter() - start
        correct += int(np.count_nonzero(np.argmax(logits, axis=1) == labels))
        del inputs

    accuracy = correct / rows
    results: dict[str, float] = {}
    table = []
    for (name, unit, acc, _), spent in zip(measures, seconds, strict=True):
        result = acc.result()
        value = float(result.mean if result.perplexity is None else result.perplexity)
        results[f"{name} [{unit}]"] = value
        table.append((name, f"{value:.6f}", unit, spent))

    print(f"fastce {__version__} demo: {rows:,} predictions over {classes} classes", file=out)
    print(
        f"(seed {seed}; the model is right {accuracy:.1%} of the time and overconfident on "
        "one sample in five)",
        file=out,
    )
    print(file=out)
    header = f"{'measure':<36}{'value':>14}  {'unit':<8}{'time':>10}{'throughput':>16}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for name, value_text, unit, spent in table:
        rate = rows / spent / 1e6 if spent > 0 else math.inf
        print(
            f"{name:<36}{value_text:>14}  {unit:<8}{spent * 1e3:>8.1f}ms{rate:>10.1f} M rows/s",
            file=out,
        )
    print(file=out)
    if compiles:
        print(
            f"(kernels compiled in {first_use:.1f} s: first use; later runs load them from "
            "Numba's cache)",
            file=out,
        )
    else:
        print(f"(kernels loaded from Numba's cache in {first_use:.2f} s)", file=out)
    ce = results["cross-entropy [nats]"]
    print(
        f"""
How to read a mean log loss:
  - 0 is a perfect, certain model; guessing uniformly over {classes} classes scores
    ln({classes}) = {math.log(classes):.3f} nats = log2({classes}) = {math.log2(classes):.3f} bits.
  - In bits, it is the average number of yes/no questions the model still needs to name the
    true class; perplexity = e^(nats) is the number of classes it is effectively choosing
    between ({math.exp(ce):.2f} here, against {classes} for a uniform guess).
  - Cross-entropy = entropy of the truth + KL(truth || model): the KL part is what a better
    model could still remove; the entropy part is the noise in the labels themselves.
  - A few confident mistakes cost a lot (-log of a tiny probability): overconfidence shows up
    as a log loss well above what the accuracy alone would suggest.""",
        file=out,
    )
    return results


def _add_reading_options(command: Any) -> None:
    """The options of a command that reads files in chunks: --memory and --progress."""
    command.add_argument(
        "--memory",
        default="64M",
        metavar="SIZE",
        help="chunk budget, e.g. 256M or 1G (binary units; default 64M)",
    )
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: on when stderr is a terminal)",
    )


# -- fastce compare -----------------------------------------------------------------------------


def _add_compare_command(sub: Any) -> None:
    compare = sub.add_parser(
        "compare",
        help="compare a candidate model's predictions with a reference model's, stored in "
        "files (.npy, .npz, Parquet, CSV), with bounded memory",
        description=(
            "Compare two models' predictions of the same samples in one pass with bounded "
            "memory: per-sample KL(reference || candidate), top-class agreement and, with "
            "targets, each model's cross-entropy and perplexity and the change in the target's "
            "probability. The means, rates and counts are the in-memory fastce.compare of the "
            "whole files, bit for bit; quantiles come from REQ sketches. Two forms: 'fastce "
            "compare --reference ref.npy --candidate cand.npy [--target y.npy] ...' (one .npy "
            "file each) and 'fastce compare PATH --reference NAME --candidate NAME ...' (PATH a "
            "Parquet file or directory, a CSV file or an .npz; NAME a column or member: one "
            "name, a comma-separated list, or a glob such as 'ref_*')."
        ),
    )
    compare.add_argument("path", nargs="?", help="Parquet file or directory, CSV or .npz file")
    compare.add_argument(
        "--reference", required=True, help="the reference model: .npy file, or column(s)"
    )
    compare.add_argument(
        "--candidate", required=True, help="the candidate model: .npy file, or column(s)"
    )
    compare.add_argument("--target", help="class indices: .npy file, or column / member")
    kind = compare.add_mutually_exclusive_group(required=True)
    kind.add_argument(
        "--from-logits", dest="from_logits", action="store_true", help="both hold logits"
    )
    kind.add_argument(
        "--probabilities",
        dest="from_logits",
        action="store_false",
        help="both hold probabilities",
    )
    compare.set_defaults(from_logits=None)
    compare.add_argument("--weight", help="sample weights: .npy file, or column / member")
    compare.add_argument(
        "--where",
        metavar="COLUMN",
        help="the rows to compare: .npy file, or column / member of true/false (or 0/1)",
    )
    compare.add_argument("--base", type=float, help="logarithm base: 2 for bits (default: nats)")
    compare.add_argument(
        "--ignore-index", type=int, help="target class index to leave out (padding)"
    )
    compare.add_argument(
        "--temperature", type=float, help="divide both models' logits by T (default: 1)"
    )
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the histograms of per-sample KL (log scale) and of Δp (needs matplotlib)",
    )
    _add_reading_options(compare)
    compare.set_defaults(usage_error=compare.error)


def run_compare(args: argparse.Namespace, out: Any = None, err: Any = None) -> int:
    """``fastce compare``: print the table (or JSON), draw the plot; exit status 1 with one
    line on bad input, 2 on a usage error (a column or member that does not exist)."""
    import json

    from ._compare_files import compare_files, plot, require_matplotlib
    from ._io import UnknownName

    out = out or sys.stdout
    err = err or sys.stderr

    def usage(message: str) -> int:
        return _usage_error(args, err, message, "compare")

    def failed(message: str) -> int:
        print(f"fastce compare: error: {_in_cli_terms(' '.join(message.split()))}", file=err)
        return 1

    options: dict[str, Any] = {"from_logits": bool(args.from_logits)}
    if args.base is not None:
        options["base"] = args.base
    if args.ignore_index is not None:
        if args.target is None:
            return usage("--ignore-index applies to the classes of --target, which was not given")
        options["ignore_index"] = args.ignore_index
    if args.temperature is not None:
        options["temperature"] = args.temperature
    progress = err.isatty() if args.progress is None else args.progress
    try:
        if args.plot is not None:
            require_matplotlib()  # before the pass over the data, not after
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compared = compare_files(
                args.path,
                reference=args.reference,
                candidate=args.candidate,
                target=args.target,
                weight=args.weight,
                where=args.where,
                chunk_bytes=args.memory,
                progress=progress,
                histograms=args.plot is not None,
                **options,
            )
        if args.plot is not None:
            assert compared.histograms is not None
            plot(compared.histograms, compared.result, args.plot)
    except UnknownName as exc:
        return usage(_in_cli_terms(" ".join(str(exc).split())))
    except (ValueError, TypeError, ImportError, OSError) as exc:
        return failed(str(exc))
    except KeyboardInterrupt:
        print("fastce compare: interrupted; no result", file=err)
        return 130
    for warning in caught:
        message = _in_cli_terms(" ".join(str(warning.message).split()))
        print(f"fastce compare: warning: {message}", file=err)
    if args.json:
        # as fastce score --json: floats as repr (shortest round-trip), NaN as NaN
        print(json.dumps(compared.result.to_dict()), file=out)
    else:
        speed = compared.rows / compared.seconds if compared.seconds > 0 else math.inf
        print(
            f"fastce compare: {compared.rows:,} rows of {compared.source} in "
            f"{compared.seconds:.2f} s ({speed:,.0f} rows/s)",
            file=out,
        )
        print(file=out)
        print(repr(compared.result), file=out)
    if args.plot is not None:
        print(f"fastce compare: wrote {args.plot}", file=err)
    return 0


# -- fastce score -------------------------------------------------------------------------------


def _add_score_command(sub: Any) -> None:
    score = sub.add_parser(
        "score",
        help="score predictions stored in files (.npy, .npz, Parquet, CSV) with bounded memory",
        description=(
            "Score predictions stored in files in one pass with bounded memory; the result is "
            "the in-memory reduction='mean'/'sum' of the whole file, bit for bit. Two forms: "
            "'fastce score --target y.npy --pred p.npy ...' (two .npy files) and "
            "'fastce score PATH --target NAME --pred NAME ...' (PATH a Parquet file or "
            "directory, a CSV file or an .npz; NAME a column or member: one name, a "
            "comma-separated list, or a glob such as 'p_*')."
        ),
    )
    score.add_argument("path", nargs="?", help="Parquet file or directory, CSV or .npz file")
    score.add_argument("--target", help="targets: .npy file, or column(s) / member of PATH")
    score.add_argument("--pred", required=True, help="predictions: .npy file, or column(s)")
    score.add_argument("--weight", help="sample weights: .npy file, or column / member")
    score.add_argument(
        "--where",
        metavar="COLUMN",
        help="the rows to score: .npy file, or column / member of true/false (or 0/1); rows "
        "where it is false count for nothing",
    )
    score.add_argument(
        "--groups",
        metavar="COLUMN_OR_FILE",
        help="score each group apart: .npy file, or column / member of integer or string keys; "
        "one row per key (sorted) with each measure's count, weight, sum and mean",
    )
    score.add_argument(
        "--out",
        metavar="FILE",
        help="with --groups: write the table to FILE, as Parquet (.parquet), CSV (.csv) or "
        "JSON (.json, a list of row objects), instead of printing it",
    )
    score.add_argument(
        "--measure",
        action="append",
        required=True,
        metavar="NAME",
        help="entropy, cross_entropy, perplexity, binary_cross_entropy, kl_divergence, "
        "js_divergence or log_loss; repeat (or separate with commas) for several in one pass",
    )
    score.add_argument("--from-logits", action="store_true", help="pred holds logits")
    score.add_argument(
        "--target-from-logits",
        action="store_true",
        help="a soft target holds logits (kl_divergence, js_divergence, cross_entropy)",
    )
    score.add_argument(
        "--temperature", type=float, help="divide every logits input by T (default: 1)"
    )
    score.add_argument("--base", type=float, help="logarithm base: 2 for bits (default: nats)")
    score.add_argument("--ignore-index", type=int, help="class index to leave out (padding)")
    score.add_argument(
        "--labels",
        help="every class label, comma-separated (string targets; required for log_loss): "
        "a target's column in pred is its position among the sorted labels",
    )
    score.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (with --groups: a list of row objects, one per group)",
    )
    _add_reading_options(score)
    # What run_score calls for a usage error that only the data shows (a wrong column name).
    score.set_defaults(usage_error=score.error)


def _parse_labels(text: str) -> list[Any]:
    """Comma-separated labels: integers if all are, else numbers if all are, else strings."""
    parts = [part.strip() for part in text.split(",")]
    for kind in (int, float):
        try:
            return [kind(part) for part in parts]
        except ValueError:
            continue
    return parts


def _unit(measure: str, base: float | None) -> str:
    if measure == "log_loss" or base is None or base == math.e:
        return "nats"
    if base == 2:
        return "bits"
    return f"log{base:g}"


# The command's flags for the options of the Python API that it has.
_FLAGS = {
    "from_logits": "--from-logits",
    "target_from_logits": "--target-from-logits",
    "temperature": "--temperature",
    "base": "--base",
    "ignore_index": "--ignore-index",
    "labels": "--labels",
}


def _flag_list(found: re.Match[str]) -> str:
    """``labels=[1, 2, 3]`` (a Python list) as ``--labels 1,2,3``."""
    try:
        values = ast.literal_eval(found.group(1))
    except (ValueError, SyntaxError):
        return found.group(0)
    return "--labels " + ",".join(str(value) for value in values)


def _flag_option(found: re.Match[str]) -> str:
    """``from_logits=True`` as ``--from-logits``, ``base=2.0`` as ``--base 2.0``."""
    name, value = found.group(1), found.group(2)
    if name not in _FLAGS:
        return found.group(0)
    return _FLAGS[name] if value == "True" else f"{_FLAGS[name]} {value}"


def _flag_names(found: re.Match[str]) -> str:
    """``(its options: axis, base, eps)`` as the flags the command has for them."""
    names = [name.strip() for name in found.group(1).split(",")]
    flags = [_FLAGS[name] for name in names if name in _FLAGS and name != "labels"]
    if not flags:
        return "(it takes none of --from-logits, --base, --ignore-index)"
    return f"(its options here: {', '.join(flags)})"


# The Python API's spelling of its options, and the command's, in the order they are applied.
_CLI_TERMS: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"with path=None and target=/pred= naming the \.npy files \(CLI: ([^)]*)\)"),
        r"with \1",
    ),
    (re.compile(r" \(CLI: --[a-z-]+\)"), ""),
    (
        re.compile(r"^Labels passed were (\[[^\]]*\])\. But this function"),
        lambda found: f"The {_flag_list(found)} passed are not sorted. But fastce score",
    ),
    (re.compile(r"\blabels=(\[[^\]]*\])"), _flag_list),
    (
        re.compile(
            r"\b(from_logits|target_from_logits|temperature|base|ignore_index)=(\S+?)"
            r"(?=[\s),;:]|$)"
        ),
        _flag_option,
    ),
    (re.compile(r"\blabels=(?!\w)"), "--labels"),
    (re.compile(r"^where= does not apply"), "--where does not apply"),
    (re.compile(r"^groups= does not apply"), "--groups does not apply"),
    (re.compile(r"\(its options: ([^)]*)\)"), _flag_names),
    (re.compile(r"\bbase must be None or a positive number"), "--base must be a positive number"),
]


# Errors of the Python API that, on the command line, are about the command, not the data.
_USAGE = re.compile(
    r"^(target is required for|log_loss needs --labels|option --[a-z-]+( \S+)? does not apply|"
    r"--where does not apply|--groups does not apply|"
    r"[^:]*: a \.npy file holds one array)"
)


def _in_cli_terms(message: str) -> str:
    """An error or warning of the Python API, as the command's: its options as flags."""
    for pattern, replacement in _CLI_TERMS:
        message = pattern.sub(replacement, message)
    return message


def _usage_error(args: argparse.Namespace, err: Any, message: str, command: str = "score") -> int:
    """argparse's usage error (usage line, message, exit status 2) for ``fastce COMMAND``."""
    usage_error = getattr(args, "usage_error", None)
    if usage_error is not None and err is sys.stderr:
        usage_error(message)  # exits with status 2
    print(f"fastce {command}: error: {message}", file=err)
    return 2


def _measure_names(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The measures named by --measure, or the usage error that names a wrong one."""
    from .accumulator import MEASURES

    measures = [m.strip() for text in args.measure for m in text.split(",") if m.strip()]
    if not measures:
        return measures, "argument --measure: expected at least one measure name"
    for name in measures:
        if name not in MEASURES:
            hint = did_you_mean(name, MEASURES)
            choices = ", ".join(repr(m) for m in MEASURES)
            return measures, (
                f"argument --measure: invalid choice: {name!r} (choose from {choices}){hint}"
            )
    return measures, None


def run_score(args: argparse.Namespace, out: Any = None, err: Any = None) -> int:
    """``fastce score``: print the table (or JSON); exit status 1 with one line on bad input,
    2 on a usage error (a measure, column or member that does not exist)."""
    import json

    from ._group_table import check_output
    from ._io import UnknownName
    from .scoring import _score

    out = out or sys.stdout
    err = err or sys.stderr
    measures, wrong = _measure_names(args)
    if wrong is not None:
        return _usage_error(args, err, wrong)
    groups, table_file = args.groups, args.out
    if table_file is not None:
        if args.json:
            return _usage_error(
                args,
                err,
                "argument --json: not allowed with argument --out (name the file .json for JSON)",
            )
        if groups is None:
            return _usage_error(
                args, err, "argument --out: writes the table of --groups; give --groups"
            )
        try:
            check_output(table_file)  # before the pass over the file, not after it
        except ValueError as exc:
            if "unknown output format" in str(exc):
                return _usage_error(args, err, f"argument --out: {exc}")
            print(f"fastce score: error: {exc}", file=err)
            return 1
        except ImportError as exc:
            print(f"fastce score: error: {exc}", file=err)
            return 1
    options: dict[str, Any] = {}
    if args.from_logits:
        options["from_logits"] = True
    if args.target_from_logits:
        options["target_from_logits"] = True
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.base is not None:
        options["base"] = args.base
    if args.ignore_index is not None:
        options["ignore_index"] = args.ignore_index
    progress = err.isatty() if args.progress is None else args.progress
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scored = _score(
                args.path,
                measures,
                target=args.target,
                pred=args.pred,
                weight=args.weight,
                where=args.where,
                groups=groups,
                labels=None if args.labels is None else _parse_labels(args.labels),
                chunk_bytes=args.memory,
                progress=progress,
                **options,
            )
    except UnknownName as exc:
        return _usage_error(args, err, _in_cli_terms(" ".join(str(exc).split())))
    except (ValueError, TypeError, ImportError, OSError) as exc:
        message = _in_cli_terms(" ".join(str(exc).split()))
        if _USAGE.match(message):
            if message.startswith("target"):
                message = "--" + message
            return _usage_error(args, err, message)
        print(f"fastce score: error: {message}", file=err)
        return 1
    except KeyboardInterrupt:
        print("fastce score: interrupted; no result", file=err)
        return 130
    # Warnings are shown once the result is in: a failed run gives its one line of error.
    for warning in caught:
        message = _in_cli_terms(" ".join(str(warning.message).split()))
        print(f"fastce score: warning: {message}", file=err)
    if scored.table is not None:
        return _print_groups(args, scored, out, err)
    if args.json:
        # json writes floats with repr (shortest round-trip); NaN and inf as NaN/Infinity.
        print(json.dumps({m: r.as_dict() for m, r in scored.results.items()}), file=out)
        return 0
    rate = scored.rows / scored.seconds if scored.seconds > 0 else math.inf
    print(
        f"fastce score: {scored.rows:,} rows of {scored.source} in {scored.seconds:.2f} s "
        f"({rate:,.0f} rows/s)",
        file=out,
    )
    print(file=out)
    # perplexity's mean, sum and weight are cross-entropy's, in nats; its own value beside them
    ppl = any(r.perplexity is not None for r in scored.results.values())
    rows: list[tuple[str, ...]] = [
        ("measure", "mean", "sum", "count", "weight", *(["perplexity"] if ppl else []), "unit")
    ]
    for m, r in scored.results.items():
        extra = ["" if r.perplexity is None else repr(r.perplexity)] if ppl else []
        rows.append(
            (
                m,
                repr(r.mean),
                repr(r.sum),
                str(r.count),
                repr(r.weight),
                *extra,
                _unit(m, args.base),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)
        ]
        print("  ".join([*cells, row[-1]]), file=out)
        if k == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)), file=out)
    return 0


def _print_groups(args: argparse.Namespace, scored: Any, out: Any, err: Any) -> int:
    """``fastce score --groups``: the table written to --out, printed as JSON, or printed."""
    import json

    from ._group_table import _text

    table = scored.table
    if args.json:
        print(json.dumps(table.rows()), file=out)
        return 0
    rate = scored.rows / scored.seconds if scored.seconds > 0 else math.inf
    print(
        f"fastce score: {scored.rows:,} rows of {scored.source} in {scored.seconds:.2f} s "
        f"({rate:,.0f} rows/s), {table.n_groups:,} groups",
        file=out,
    )
    if args.out is not None:
        try:
            table.write(args.out)
        except (ValueError, ImportError, OSError) as exc:
            print(f"fastce score: error: {args.out}: cannot write the table: {exc}", file=err)
            return 1
        print(f"wrote {table.n_groups:,} rows to {args.out}", file=out)
        return 0
    # Every figure at full precision, as the table without groups (and its CSV): repr of each
    # float.
    cells = {
        name: [_text(value) for value in values.tolist()]
        for name, values in table.columns().items()
    }
    widths = {name: max([len(name), *map(len, column)]) for name, column in cells.items()}

    def line(row: dict[str, str]) -> str:
        # the keys flush left, the numbers flush right
        return "  ".join(
            text.ljust(widths[name]) if name == "group" else text.rjust(widths[name])
            for name, text in row.items()
        ).rstrip()

    print(file=out)
    print(line({name: name for name in cells}), file=out)
    print("-" * (sum(widths.values()) + 2 * (len(widths) - 1)), file=out)
    for i in range(table.n_groups):
        print(line({name: column[i] for name, column in cells.items()}), file=out)
    units = ", ".join(f"{m} in {_unit(m, args.base)}" for m in table.measures)
    print(f"\n(sums and means: {units})", file=out)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastce",
        description="Fast, exact cross-entropy, KL divergence and entropy for NumPy arrays.",
    )
    parser.add_argument("--version", action="version", version=f"fastce {__version__}")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser(
        "demo", help="score a generated data set of model predictions and print the table"
    )
    demo.add_argument("--rows", type=_positive_int, default=1_000_000, help="samples (1000000)")
    demo.add_argument("--classes", type=_positive_int, default=10, help="classes (10)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (0)")
    # Listed here for --help; its options are fastce.benchmark's (see main).
    sub.add_parser(
        "bench",
        add_help=False,
        help="time fastce against PyTorch (eager and torch.compile), jax.jit, SciPy, "
        "scikit-learn and NumPy on the same arrays (fastce bench --help)",
    )
    _add_score_command(sub)
    warm = sub.add_parser(
        "warmup",
        help="compile and cache every kernel common calls use (for container images)",
    )
    warm.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr instead of one line per step (default: on when stderr "
        "is a terminal and tqdm is installed)",
    )
    _add_compare_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        # fastce.benchmark parses its own options; it is imported only for this command.
        from . import benchmark

        return benchmark.main(args_list[1:], prog="fastce bench")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.classes < 2:
            parser.error("--classes must be at least 2")
        run_demo(args.rows, args.classes, args.seed)
        return 0
    if args.command == "score":
        return run_score(args)
    if args.command == "warmup":
        from ._warmup import warmup

        warmup(progress=args.progress)
        return 0
    if args.command == "compare":
        return run_compare(args)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
