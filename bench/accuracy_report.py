"""Measure every function's error against a 50-digit mpmath reference and write docs/accuracy.md.

``python -m bench.accuracy_report`` from the repository root (about 11 minutes on 2 cores;
most of it is mpmath): the slow case set of ``tests/test_accuracy.py`` (C = 1 .. 100,000, float32
and float64). ``--quick`` measures the default-suite slice instead (about a minute);
``--output -`` prints the page instead of writing it.

The cases, the mpmath reference and the error measure live in ``tests/accuracy.py``; the tests
assert the same bounds that this page reports.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import accuracy as acc  # noqa: E402

COMMAND = "python -m bench.accuracy_report"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if value == float("inf"):
        return "inf"
    return f"{value:.2f}" if value < 100 else f"{value:.3g}"


def measure_all(quick: bool) -> tuple[list[acc.Result], float, int]:
    sizes = acc.SIZES_DEFAULT if quick else acc.SIZES_SLOW
    results = []
    start = time.perf_counter()
    n_cases = 0
    for dtype in acc.DTYPES:
        cases = acc.make_cases(dtype, sizes, slow=not quick)
        n_cases += len(cases)
        for m in acc.MEASURES:
            t = time.perf_counter()
            r = acc.measure(m, cases, dtype)
            results.append(r)
            print(
                f"{m.name:45s} {dtype.name:8s} {_fmt(r.ulps.value):>8s} ulp "
                f"{'met' if r.met else 'NOT MET'}  ({time.perf_counter() - t:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    return results, time.perf_counter() - start, n_cases


def _paragraph(text: str, indent: str = "") -> list[str]:
    """``text`` (one string) wrapped at 96 columns; a bullet keeps its hanging indent."""
    first = indent
    rest = indent + ("  " if text.startswith("* ") else "")
    return textwrap.wrap(
        " ".join(text.split()), 96, initial_indent=first, subsequent_indent=rest
    ) + [""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


INTRO = """Every function, float32 and float64, compared with mpmath at {digits} significant
digits on adversarial rows: logits of magnitude 1e-8 .. 1e4, one dominant logit, all-equal
logits, near ties, `-inf` entries, probabilities down to the smallest subnormal, exact zeros
and ones, nearly equal and equal pairs of rows, and C from {cmin:,} to {cmax:,} classes
({cases:,} cases, {values:,} values). The exact value is that of the float inputs as stored,
with fastce's conventions (nats, `0 log 0 = 0`, predicted probabilities clipped to
`[eps, 1 - eps]`, `eps = finfo(dtype).eps`)."""

METHOD = [
    """* **ulp error**: `|v - e| / spacing(round(e))`, with `e` the exact value, `round(e)` `e`
    rounded to the output dtype and `spacing` NumPy's gap to the next float away from zero. A
    correctly rounded result is within 0.5 ulp. float32 inputs give float32 results (computed in
    float64, rounded once), so 0.5 ulp is their floor.""",
    """* **Cancellation**: where the terms of a formula have both signs, an error in ulps of a
    result near 0 says nothing about the arithmetic. For the measures whose terms can cancel
    (logsumexp, KL divergence, Jensen-Shannon from logits), a value with `T > {kappa:g} |e|`
    (more than one bit cancels; `T` is the sum of the absolute values of the terms) is a
    *named cancellation case*, bounded in absolute terms instead:
    `|v - e| <= ulp(e)/2 + k eps T` with `k <= {k:g}` (`eps = finfo(dtype).eps`). Every
    other value counts in the ulp table.""",
]

GOALS = """Goals (ulps of the output dtype): logsumexp, log_softmax, softmax and cross-entropy from
logits 2 (float32) / 4 (float64); entropy, KL, Jensen-Shannon, binary cross-entropy,
cross-entropy from probabilities and every measure of target logits
(`target_from_logits=True`) 8."""

NAMED = [
    """* **logsumexp near 0**: `lse = m + log(sum e^(x - m))` with `m < 0`;
    `T = |m| + log(sum e^(x - m))`. Logits that are the logs of a probability row
    (`lse = log(sum p) ~ 0`), and any other row whose logsumexp came out near 0.""",
    """* **KL of nearly equal rows** (from probabilities): `T = sum_c |p_c log(p_c / q_c)|`;
    `q = p (1 + delta u)` and equal rows (exactly 0 where no clipping acts), and any other pair
    close enough for more than a bit to cancel (frequent with 2 or 3 classes).""",
    """* **KL from logits**: the value is a cross-entropy minus an entropy,
    `T = sum_c p_c |log p_c| + p_c |log q_c|`; `softmax(x) ~ p` (logits `log p + 3`), and most
    other pairs, whose KL is small beside the entropy of `p`. The same for target logits
    (`target_from_logits=True`, `p = softmax(t)`), against logits or probabilities: a row of
    logits against itself or a slightly perturbed copy (`x = t + delta u`), and most others.""",
    """* **Jensen-Shannon from logits**: `T = sum_c |h_c(p, q)| + |h_c(q, p)|` with the
    half-terms `h_c(p, q) = p_c log(2 p_c / (p_c + q_c)) / 2`, which cancel for `p_c ~ q_c`.
    The softmax values of a row of logits carry a relative rounding error each, and JS moves
    by that error times the half-term of its class (`dJS/dp_c = log(2 p_c / (p_c + q_c)) /
    2`), so nearly equal rows of logits are bounded by `T`, not by the ulp goal.""",
]

NO_JS = """Jensen-Shannon of probabilities has no named case: each class contributes a non-negative
term computed without cancellation (`js_term` in `fastce/_kernels/pair.py`), so it is held
to its ulp goal even for nearly equal rows."""

TEMPERATURE = """A call with `temperature=T` gives the bits of the same call on the float64
array `x / T` (every logits input divided in float64 as the kernels read it; the result
rounded once to the input's dtype; `tests/test_temperature.py` checks it for every function,
layout and reduction): its error is the table's float64 error on `x / T`, then that
rounding."""

CHANGES = [
    """* Sums of exps (the log-sum-exp family, and the sums added to it) are compensated for
    float64 rows: eight lanes with TwoSum. One term near 1 beside many small ones cost up to
    2.7 ulp with plain lanes.""",
    """* Other block sums of a float64 result (entropy, KL, Jensen-Shannon, cross-entropy from
    probabilities) are compensated beyond 128 terms, and long rows fold their block sums with
    compensation. Plain lanes add n/8 terms each in sequence: 34 ulp for the entropy of a
    uniform row of 2,049 classes, 3.6 ulp for 100,000.""",
    """* float64 logits: the rounding error of `x - m` (TwoSum) is put back into `e^(x - m)` with
    one FMA, in the exps of a block, the folding of blocks and softmax. It was a relative error
    of `|x - m| 2^-53`: 24 ulp for the cross-entropy of a dominant class, 190-370 ulp for tiny
    softmax entries and for the maximum's log_softmax.""",
    """* softmax: `1 / (1 + s')` carried in two parts, one rounding per entry (was up to 3.2 ulp
    in float64), a multiply and an FMA instead of a division.""",
    """* KL from probabilities (float64 results): each term is `p log r + rho` with
    `r = fl(p / q)` and `rho = p - r q` exact (an FMA): the ratio's rounding was an error of up
    to `u/2` per unit of mass, 5e9 `eps T` for nearly equal rows.""",
    """* Jensen-Shannon: `(s/4) g(r)` per class, `r = |p - q| / (p + q)`,
    `g = (1 + r) log(1 + r) + (1 - r) log(1 - r)` by two `log1p` forms. The textbook halves
    cancel: a JS of nearly equal rows came out as noise, negative at times (-3e-17 for an exact
    2.8e-22; 3,100 ulp in float32).""",
]

FLOAT32_NOTE = """float32 results are computed in float64 and rounded once, so they need none of
the compensation above except the Jensen-Shannon form: their kernels keep the plain sums. The
exception is binary cross-entropy from float32 logits, whose exp and log1p are taken in float32
(16 lanes; each within 1 ulp) and combined in float64: the table measures it in nats; another
`base` adds a division before the final rounding (the fuzzing campaign found 2 ulps with
`base=10`, within the goal of 8)."""


def render(results: list[acc.Result], seconds: float, n_cases: int, quick: bool) -> str:
    sizes = acc.SIZES_DEFAULT if quick else acc.SIZES_SLOW
    versions = acc.versions()
    command = COMMAND + (" --quick" if quick else "")
    out = [
        "# Accuracy against a high-precision reference",
        "",
        "<!-- Generated by bench/accuracy_report.py; do not edit by hand. -->",
        "",
    ]
    intro = INTRO.format(
        digits=acc.DIGITS,
        cmin=min(sizes),
        cmax=max(sizes),
        cases=n_cases,
        values=sum(r.values for r in results),
    )
    out += _paragraph(intro)
    out += _paragraph(
        f"Regenerate this page ({seconds / 60:.0f} minutes on the machine below, mostly mpmath):"
    )
    minutes = f"{seconds / 60:.0f} minutes of mpmath"
    not_run = (
        f"<!-- not-run: rewrites this page from a checkout of fastce's repository, {minutes} -->"
    )
    out += [not_run, "```bash", command, "```", ""]
    out += _paragraph(
        "The same cases and bounds are asserted by `tests/test_accuracy.py`: a default-suite "
        f"slice (C up to {max(acc.SIZES_DEFAULT):,}) and the full set under "
        "`pytest -m slow tests/test_accuracy.py`."
    )
    out += ["## How the error is measured", ""]
    for item in METHOD:
        out += _paragraph(item.format(kappa=acc.KAPPA, k=acc.CANCELLATION_K))[:-1]
    out += ["", "## Maximum error per function", ""]
    out += [
        "| function | dtype | max error (ulp) | where (case, classes, value index) "
        "| goal (ulp) | met |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in results:
        where = _cell(r.ulps.where) if r.ulps.where else "(no such values)"
        out.append(
            f"| {r.measure.name} | {r.dtype.name} | {_fmt(r.ulps.value)} | {where} "
            f"| {_fmt(r.measure.goal(r.dtype))} | {'yes' if r.met else '**no**'} |"
        )
    out.append("")
    out += _paragraph(GOALS)
    out += _paragraph(TEMPERATURE)
    out += ["## Named cancellation cases", ""]
    for item in NAMED:
        out += _paragraph(item)[:-1]
    out.append("")
    out += _paragraph(NO_JS)
    out += [
        "| function | dtype | family | values | max T / \\|e\\| "
        f"| max k (bound {acc.CANCELLATION_K:g}) | where |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        for family, w in sorted(r.cancellation.items(), key=lambda kv: -kv[1].value):
            out.append(
                f"| {r.measure.name} | {r.dtype.name} | {_cell(family)} | {w.count:,} | "
                f"{w.kappa:.3g} | {w.value:.3g} | {_cell(w.where)} |"
            )
    out.append("")
    met = all(r.met for r in results)
    out += [f"Every bound {'holds' if met else '**does not hold**'}.", ""]
    out += ["## Kernel changes this measurement led to", ""]
    for item in CHANGES:
        out += _paragraph(item)[:-1]
    out.append("")
    out += _paragraph(FLOAT32_NOTE)
    out += [
        "## Machine",
        "",
        f"* {_cpu()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"* Python {versions['python']}, NumPy {versions['numpy']}, Numba {versions['numba']}, "
        f"mpmath {versions['mpmath']}, fastce {versions['fastce']}",
        f"* measured {datetime.date.today().isoformat()} in {seconds / 60:.1f} minutes",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default-suite slice only")
    parser.add_argument(
        "--output", default=str(ROOT / "docs" / "accuracy.md"), help="where to write ('-': stdout)"
    )
    args = parser.parse_args(argv)
    results, seconds, n_cases = measure_all(args.quick)
    page = render(results, seconds, n_cases, args.quick)
    if args.output == "-":
        print(page)
    else:
        Path(args.output).write_text(page)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
