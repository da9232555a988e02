"""The ``fastce`` command: ``fastce demo``, ``bench``, ``score``, ``warmup``, ``--version``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._version import __version__


def make_demo_data(
    rows: int, classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A classification data set like a real model's output, generated in memory.

    Each sample has a true class distribution (softmax of random logits with one class
    favoured), a label drawn from it, and a model's float32 logits: the true logits plus noise,
    sharpened by a factor of 3 for one sample in five (an overconfident model). The model is
    right most of the time.

    Returns ``(labels, true_probabilities, model_logits)``.
    """
    if rows < 1 or classes < 2:
        raise ValueError(f"need rows >= 1 and classes >= 2; got rows={rows}, classes={classes}")
    rng = np.random.default_rng(seed)
    favoured = rng.integers(0, classes, size=rows)
    true_logits = rng.normal(0.0, 1.0, size=(rows, classes))
    true_logits[np.arange(rows), favoured] += 4.5
    true_probs = np.exp(true_logits - true_logits.max(axis=1, keepdims=True))
    true_probs /= true_probs.sum(axis=1, keepdims=True)
    # Labels drawn from the true distribution by inverting its CDF.
    cdf = np.cumsum(true_probs, axis=1)
    u = rng.random(rows)[:, None] * cdf[:, -1:]
    labels = np.minimum((cdf < u).sum(axis=1), classes - 1).astype(np.int64)
    noise = rng.normal(0.0, 0.7, size=(rows, classes))
    sharpen = np.where(rng.random(rows) < 0.2, 3.0, 1.0)[:, None]
    model_logits = ((true_logits + noise) * sharpen).astype(np.float32)
    return labels, true_probs, model_logits


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_demo(rows: int, classes: int, seed: int, out: Any = None) -> dict[str, float]:
    """Score the demo data set and print the table; returns the figures."""
    import fastce

    out = out or sys.stdout
    labels, true_probs, logits = make_demo_data(rows, classes, seed)
    # First calls compile (or load from the cache) every kernel used; time the second run.
    first_start = time.perf_counter()
    measures: list[tuple[str, str, Callable[[], Any]]] = [
        (
            "cross-entropy",
            "nats",
            lambda: fastce.cross_entropy(labels, logits, from_logits=True, reduction="mean"),
        ),
        (
            "cross-entropy",
            "bits",
            lambda: fastce.cross_entropy(
                labels, logits, from_logits=True, base=2, reduction="mean"
            ),
        ),
        ("perplexity", "classes", lambda: fastce.perplexity(labels, logits, from_logits=True)),
        (
            "KL(true || model)",
            "nats",
            lambda: fastce.kl_divergence(true_probs, logits, from_logits=True, reduction="mean"),
        ),
        (
            "entropy of predictions",
            "nats",
            lambda: fastce.entropy(logits, from_logits=True, reduction="mean"),
        ),
        (
            "entropy of true dist.",
            "nats",
            lambda: fastce.entropy(true_probs, reduction="mean"),
        ),
    ]
    # One-vs-rest: "is it class 0?" scored with the model's logit for class 0 against the
    # log-sum-exp of the others, i.e. the binary logit log(p0 / (1 - p0)).
    rest = fastce.logsumexp(logits[:, 1:])
    binary_logit = (logits[:, 0] - rest).astype(np.float32)
    is_class0 = (labels == 0).astype(np.float32)
    measures.append(
        (
            "binary log loss (class 0 vs rest)",
            "nats",
            lambda: fastce.binary_cross_entropy(
                is_class0, binary_logit, from_logits=True, reduction="mean"
            ),
        )
    )
    for _, _, fn in measures:
        fn()
    warmup = time.perf_counter() - first_start

    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    results: dict[str, float] = {}
    table = []
    for name, unit, fn in measures:
        value, seconds = _timed(fn)
        results[f"{name} [{unit}]"] = float(value)
        table.append((name, f"{float(value):.6f}", unit, seconds))

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
    for name, value_text, unit, seconds in table:
        rate = rows / seconds / 1e6 if seconds > 0 else math.inf
        print(
            f"{name:<36}{value_text:>14}  {unit:<8}{seconds * 1e3:>8.1f}ms{rate:>10.1f} M rows/s",
            file=out,
        )
    print(file=out)
    print(f"(first calls, including compiling or loading the kernels: {warmup:.2f} s)", file=out)
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
        "--measure",
        action="append",
        required=True,
        metavar="NAME",
        help="entropy, cross_entropy, binary_cross_entropy, kl_divergence, js_divergence or "
        "log_loss; repeat (or separate with commas) for several in one pass",
    )
    score.add_argument("--from-logits", action="store_true", help="pred holds logits")
    score.add_argument("--base", type=float, help="logarithm base: 2 for bits (default: nats)")
    score.add_argument("--ignore-index", type=int, help="class index to leave out (padding)")
    score.add_argument(
        "--labels",
        help="every class label, comma-separated (string targets; required for log_loss): "
        "a target's column in pred is its position among the sorted labels",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.add_argument(
        "--memory",
        default="64M",
        metavar="SIZE",
        help="chunk budget, e.g. 256M or 1G (binary units; default 64M)",
    )
    score.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: on when stderr is a terminal)",
    )


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


def run_score(args: argparse.Namespace, out: Any = None, err: Any = None) -> int:
    """``fastce score``: print the table (or JSON); exit status 1 with one line on bad input."""
    import json

    from .scoring import _score

    out = out or sys.stdout
    err = err or sys.stderr
    measures = [m.strip() for text in args.measure for m in text.split(",") if m.strip()]
    options: dict[str, Any] = {}
    if args.from_logits:
        options["from_logits"] = True
    if args.base is not None:
        options["base"] = args.base
    if args.ignore_index is not None:
        options["ignore_index"] = args.ignore_index
    progress = err.isatty() if args.progress is None else args.progress
    try:
        scored = _score(
            args.path,
            measures,
            target=args.target,
            pred=args.pred,
            weight=args.weight,
            labels=None if args.labels is None else _parse_labels(args.labels),
            chunk_bytes=args.memory,
            progress=progress,
            **options,
        )
    except (ValueError, TypeError, ImportError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"fastce score: error: {message}", file=err)
        return 1
    except KeyboardInterrupt:
        print("fastce score: interrupted; no result", file=err)
        return 130
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
    rows = [("measure", "mean", "sum", "count", "weight", "unit")]
    for m, r in scored.results.items():
        rows.append(
            (m, repr(r.mean), repr(r.sum), str(r.count), repr(r.weight), _unit(m, args.base))
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
    sub.add_parser(
        "warmup",
        help="compile and cache every kernel common calls use (for container images)",
    )
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

        warmup()
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
