"""Accuracy against a 50-digit mpmath reference: adversarial cases, exact values, ulp errors.

Shared by ``tests/test_accuracy.py`` (which asserts the bounds) and ``bench/accuracy_report.py``
(which writes docs/accuracy.md). Nothing here is collected as a test.

Every measure is evaluated with mpmath at ``DIGITS`` significant digits on the float inputs
exactly as stored (a float32 input is its float32 value, exactly), with fastce's conventions:
nats, ``0 log 0 = 0``, only predicted probabilities clipped to ``[eps, 1 - eps]`` with
``eps = finfo(dtype).eps``, never a target, never a logit.

Error of a computed value ``v`` against the exact value ``e``, in ulps of the output dtype:
``|v - e| / spacing(round(e))``, with ``round(e)`` the exact value rounded to that dtype and
``spacing`` NumPy's (the gap to the next float away from zero). A correctly rounded result is
within 0.5 ulp.

Where the exact result is near zero because terms of opposite sign cancel, an error in ulps of
the result says nothing about the arithmetic. For the measures whose terms can cancel
(``Measure.cancels``), every value with ``T > KAPPA |e|`` (``T`` the sum of the absolute values
of the terms of the formula: more than one bit cancels) is a *named cancellation case*, reported
under its family and bounded in absolute terms relative to the size of the terms instead:
``|v - e| <= ulp(e) / 2 + k eps T``, ``eps = finfo(dtype).eps``, ``k <= CANCELLATION_K``.
They are:

* ``logsumexp`` near 0: ``lse = m + log(sum e^(x - m))`` with ``m < 0``;
  ``T = |m| + log(sum e^(x - m))`` (built on purpose: logits that are the logs of a probability
  row; met by chance in other families with few classes).
* ``kl_divergence`` of nearly equal rows (and of equal rows, exactly 0 where no clipping acts):
  ``T = sum_c |p_c log(p_c / q_c)|``; from logits, a cross-entropy minus an entropy,
  ``T = sum_c p_c |log p_c| + p_c |log q_c|``.

Jensen-Shannon is computed without cancellation (each class's term is non-negative and
accurate by itself), so it has no named case: nearly equal rows are held to its ulp goal.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
from mpmath import mp, mpf

import fastce

DIGITS = 50
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# C from 1 to 100,000; the default slice stops at 2049 (a row longer than one column block).
SIZES_DEFAULT = (1, 2, 3, 7, 16, 100, 2049)
SIZES_SLOW = (1, 2, 3, 7, 16, 100, 1000, 2049, 4096, 10_000, 100_000)

# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    """One batch of rows of one family, dtype and number of classes.

    ``arrays`` holds what the measures of ``kind`` need: ``x`` logits (n, c); ``p`` target or
    first probabilities (n, c); ``q`` predicted or second probabilities (n, c); ``t`` target
    logits (n, c); ``y`` binary targets and ``b`` binary predictions (probabilities or
    logits), both 1-D.
    """

    kind: str  # "logits", "probs", "pairs", "logit_pairs", "two_logits", "binary"
    family: str
    dtype: np.dtype
    c: int
    arrays: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return f"{self.family}, C={self.c}" if self.kind != "binary" else self.family


def _rows_for(c: int, slow: bool) -> int:
    if c >= BIG:
        return 1
    if c >= 10_000:
        return 3
    if c >= 1000:
        return 3 if slow else 1
    return 8 if slow else 3


# From BIG classes on, one row of each of these families only (mpmath takes about 1 s per row
# and measure there).
BIG = 50_000
BIG_FAMILIES = (
    "logits |x| log-uniform in [1e-8, 1e4]",
    "logits normal(0, 1)",
    "logits: one dominant (40, others normal)",
    "logits: all equal",
    "logits: log of a probability row (logsumexp ~ 0)",
    "probs Dirichlet(1)",
    "probs uniform 1/C",
    "probs log-uniform down to the smallest subnormal",
    "p uniform 1/C, q Dirichlet(1)",
    "q = p (1 + 1e-09 u), u uniform(-1, 1)",
    "q = p, p Dirichlet(1)",
    "p Dirichlet(1), logits normal(0, 1)",
    "logits = log p + 3 + 1e-09 u (softmax ~ p)",
)


def _normalise(w: np.ndarray, dtype: np.dtype) -> np.ndarray:
    w = np.asarray(w, np.float64)
    s = w.sum(axis=-1, keepdims=True)
    s[s == 0] = 1.0
    return (w / s).astype(dtype)


def _logit_families(rng: np.random.Generator, n: int, c: int) -> Iterator[tuple[str, np.ndarray]]:
    """(family, float64 logits (n, c))."""
    sign = rng.choice([-1.0, 1.0], size=(n, c))
    yield "logits |x| log-uniform in [1e-8, 1e4]", sign * 10.0 ** rng.uniform(-8, 4, (n, c))
    yield "logits |x| log-uniform in [1e-8, 30]", sign * 10.0 ** rng.uniform(-8, 1.5, (n, c))
    yield "logits normal(0, 1)", rng.normal(0.0, 1.0, (n, c))
    yield "logits normal(0, 20)", rng.normal(0.0, 20.0, (n, c))
    yield "logits normal(0, 1) + 1e4", rng.normal(0.0, 1.0, (n, c)) + 1e4
    yield "logits normal(0, 1) - 1e4", rng.normal(0.0, 1.0, (n, c)) - 1e4
    dom = rng.normal(0.0, 1.0, (n, c))
    dom[:, rng.integers(0, c)] = 1e4
    yield "logits: one dominant (1e4, others normal)", dom
    dom40 = rng.normal(0.0, 1.0, (n, c))
    dom40[np.arange(n), rng.integers(0, c, n)] = 40.0
    yield "logits: one dominant (40, others normal)", dom40
    values = np.array([0.0, 1e-8, -2.5, 123.456, 1e4, -1e4, 3e-5, -7.0])
    equal = values[(np.arange(n) + c) % len(values), None]
    yield "logits: all equal", np.repeat(equal, c, axis=1)
    if c > 1:
        tie = rng.normal(-30.0, 5.0, (n, c))
        top = rng.uniform(-5.0, 5.0, n)
        tie[:, 0] = top
        tie[:, 1] = top * (1 + 1e-8 * rng.uniform(-1, 1, n))
        yield "logits: near tie of two, others far below", tie
        masked = rng.normal(0.0, 3.0, (n, c))
        masked[rng.random((n, c)) < 0.3] = -np.inf
        masked[:, 0] = rng.normal(0.0, 3.0, n)
        yield "logits with -inf entries", masked
    # x = log p of a probability row: the logsumexp is log(sum p) ~ 0, a cancellation of
    # m = max log p < 0 against log(sum e^(x - m)) > 0.
    p = rng.dirichlet(np.full(c, 1.0), n)
    yield "logits: log of a probability row (logsumexp ~ 0)", np.log(p)


def _prob_families(
    rng: np.random.Generator, n: int, c: int, dtype: np.dtype
) -> Iterator[tuple[str, np.ndarray]]:
    """(family, probabilities (n, c) of ``dtype``)."""
    tiny = float(np.finfo(dtype).smallest_subnormal)
    for alpha in (0.1, 1.0, 10.0):
        yield f"probs Dirichlet({alpha:g})", _normalise(rng.dirichlet(np.full(c, alpha), n), dtype)
    yield "probs uniform 1/C", np.full((n, c), 1.0 / c, dtype)
    onehot = np.zeros((n, c), dtype)
    onehot[np.arange(n), rng.integers(0, c, n)] = 1.0
    yield "probs one-hot (exact 0 and 1)", onehot
    zeros = rng.dirichlet(np.full(c, 0.5), n)
    zeros[rng.random((n, c)) < 0.4] = 0.0
    zeros[:, 0] += 1e-3
    yield "probs with exact zeros", _normalise(zeros, dtype)
    if c > 1:
        for delta in (1e-3, 1e-12):
            peaked = np.full((n, c), delta / (c - 1))
            peaked[np.arange(n), rng.integers(0, c, n)] = 1.0 - delta
            yield f"probs peaked (1 - {delta:g})", peaked.astype(dtype)
        lo = math.log10(tiny)
        sub = 10.0 ** rng.uniform(lo, 0.0, (n, c))
        sub = _normalise(sub, dtype)
        sub[:, -1] = tiny  # the smallest subnormal itself
        if c > 2:
            sub[:, -2] = 0.0
        yield "probs log-uniform down to the smallest subnormal", sub


def make_cases(dtype: Any, sizes: tuple[int, ...], slow: bool = False) -> list[Case]:
    """Every case for one dtype, deterministic (seeded by dtype and C)."""
    dtype = np.dtype(dtype)
    cases: list[Case] = []
    for c in sizes:
        rng = np.random.default_rng([c, dtype.itemsize, 6])
        n = _rows_for(c, slow)
        logit_rows = []
        for family, x in _logit_families(rng, n, c):
            xd = x.astype(dtype)
            logit_rows.append((family, xd))
            cases.append(Case("logits", family, dtype, c, {"x": xd}))
        prob_rows = list(_prob_families(rng, n, c, dtype))
        for family, p in prob_rows:
            cases.append(Case("probs", family, dtype, c, {"p": p}))
        # Pairs of probability rows: independent rows, nearly equal rows, equal rows.
        by_name = dict(prob_rows)
        dirichlet = by_name["probs Dirichlet(1)"]
        pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        for family, p in prob_rows:
            other = dirichlet if family != "probs Dirichlet(1)" else by_name["probs uniform 1/C"]
            pairs.append((f"p {family[6:]}, q Dirichlet(1)", p, other))
            if slow:
                pairs.append((f"p Dirichlet(1), q {family[6:]}", other, p))
        p64 = dirichlet.astype(np.float64)
        for rel in (1e-2, 1e-5, 1e-9):
            q = _normalise(p64 * (1 + rel * rng.uniform(-1, 1, p64.shape)), dtype)
            pairs.append((f"q = p (1 + {rel:g} u), u uniform(-1, 1)", dirichlet, q))
        for family, p in prob_rows:
            pairs.append((f"q = p, p {family[6:]}", p, p))
        for family, p, q in pairs:
            cases.append(Case("pairs", family, dtype, c, {"p": p, "q": q}))
        # Target probabilities against logits.
        for family, x in logit_rows:
            if "log of a probability" in family:
                continue
            cases.append(
                Case(
                    "logit_pairs", f"p Dirichlet(1), {family}", dtype, c, {"p": dirichlet, "x": x}
                )
            )
        for family, p in prob_rows:
            if c > 1:
                x = rng.normal(0.0, 3.0, (n, c)).astype(dtype)
                cases.append(
                    Case(
                        "logit_pairs",
                        f"p {family[6:]}, logits normal(0, 3)",
                        dtype,
                        c,
                        {"p": p, "x": x},
                    )
                )
        for rel in (0.0, 1e-9, 1e-5, 1e-2):
            x = (np.log(p64) + rel * rng.uniform(-1, 1, p64.shape) + 3.0).astype(dtype)
            cases.append(
                Case(
                    "logit_pairs",
                    f"logits = log p + 3 + {rel:g} u (softmax ~ p)",
                    dtype,
                    c,
                    {"p": dirichlet, "x": x},
                )
            )
        # Two rows of logits (a teacher's ``t`` and a student's ``x``), and target logits
        # against predicted probabilities ``q``.
        t64 = rng.normal(0.0, 3.0, (n, c))
        two: list[tuple[str, np.ndarray, np.ndarray]] = [
            (f"t = {family}, x normal(0, 3)", t, rng.normal(0.0, 3.0, (n, c)).astype(dtype))
            for family, t in logit_rows
        ]
        for rel in (0.0, 1e-9, 1e-5, 1e-2):
            x = (t64 + rel * rng.uniform(-1, 1, t64.shape)).astype(dtype)
            two.append((f"x = t + {rel:g} u, t normal(0, 3)", t64.astype(dtype), x))
        for family, t, x in two:
            cases.append(Case("two_logits", family, dtype, c, {"t": t, "x": x, "q": dirichlet}))
    cases = [case for case in cases if case.c < BIG or case.family in BIG_FAMILIES]
    cases.extend(_binary_cases(dtype, slow))
    return cases


def _binary_cases(dtype: np.dtype, slow: bool) -> list[Case]:
    rng = np.random.default_rng([2, dtype.itemsize, 6])
    m = 4000 if slow else 800
    tiny = float(np.finfo(dtype).smallest_subnormal)
    lo = math.log10(tiny)
    small = 10.0 ** rng.uniform(lo, 0.0, m)
    probs = {
        "p log-uniform in [smallest subnormal, 1]": small,
        "p = 1 - log-uniform in [1e-20, 1]": 1.0 - 10.0 ** rng.uniform(-20, 0, m),
        "p uniform(0, 1)": rng.uniform(0.0, 1.0, m),
        "p exact 0, 1, eps, 1 - eps, smallest subnormal": rng.choice(
            [0.0, 1.0, tiny, float(np.finfo(dtype).eps), 1.0 - float(np.finfo(dtype).eps)], m
        ),
    }
    sign = rng.choice([-1.0, 1.0], m)
    logits = {
        "logits |x| log-uniform in [1e-8, 1e4]": sign * 10.0 ** rng.uniform(-8, 4, m),
        "logits normal(0, 3)": rng.normal(0.0, 3.0, m),
        "logits exact 0, +-inf, +-1e4": rng.choice([0.0, np.inf, -np.inf, 1e4, -1e4], m),
    }
    cases = []
    for pname, p in probs.items():
        p = p.astype(dtype)
        targets = {
            "y in {0, 1}": rng.integers(0, 2, m).astype(dtype),
            "y uniform(0, 1)": rng.uniform(0.0, 1.0, m).astype(dtype),
            "y = p": p,
        }
        for yname, y in targets.items():
            cases.append(
                Case("binary", f"{yname}, {pname}", dtype, 1, {"y": y, "b": p, "probs": p})
            )
    for xname, x in logits.items():
        x = x.astype(dtype)
        targets = {
            "y in {0, 1}": rng.integers(0, 2, m).astype(dtype),
            "y uniform(0, 1)": rng.uniform(0.0, 1.0, m).astype(dtype),
            "y = sigmoid(x)": (
                1.0 / (1.0 + np.exp(-np.clip(x, -700, 700).astype(np.float64)))
            ).astype(dtype),
        }
        for yname, y in targets.items():
            cases.append(
                Case("binary", f"{yname}, {xname}", dtype, 1, {"y": y, "b": x, "logits": x})
            )
    return cases


# ---------------------------------------------------------------------------------------------
# Exact values (mpmath)


def _mp(values: np.ndarray) -> list[mpf]:
    return [mpf(v) for v in np.asarray(values).tolist()]


def _eps(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps)


def _clip(q: float, eps: float) -> float:
    return min(max(q, eps), 1.0 - eps)


@lru_cache(maxsize=4096)  # every logit row of a run: the measures share them
def _lse_row(key: bytes, dtype: str) -> tuple[mpf, mpf, tuple[mpf, ...], tuple[mpf, ...]]:
    """(m, log sum_c e^(x_c - m), (x_c), (e^(x_c - m))) of one row of logits."""
    xs = _mp(np.frombuffer(key, dtype))
    m = max(xs)
    j = xs.index(m)
    exps = tuple(mp.exp(x - m) if x != -mp.inf else mpf(0) for x in xs)
    # log1p of the sum without the maximum's own term: log(1 + 1e-300) must not round to 0.
    return m, mp.log1p(mp.fsum(e for k, e in enumerate(exps) if k != j)), tuple(xs), exps


def _lse(row: np.ndarray) -> tuple[mpf, mpf, tuple[mpf, ...], tuple[mpf, ...]]:
    row = np.ascontiguousarray(row)
    return _lse_row(row.tobytes(), row.dtype.str)


def _xlogx_over(p: mpf, q: mpf) -> mpf:
    return p * mp.log(p / q) if p != 0 else mpf(0)


# Each exact function returns (exact values, T per value): T is the sum of the absolute values of
# the terms of the formula, used by the bounds of named cancellation cases.
Exact = tuple[list[mpf], list[mpf]]


def exact_logsumexp(case: Case) -> Exact:
    vals, terms = [], []
    for row in case.arrays["x"]:
        m, ls, _, _ = _lse(row)
        vals.append(m + ls)
        terms.append(abs(m) + abs(ls))
    return vals, terms


def exact_log_softmax(case: Case) -> Exact:
    vals = []
    for row in case.arrays["x"]:
        m, ls, xs, _ = _lse(row)
        vals.extend((x - m) - ls for x in xs)
    return vals, [abs(v) for v in vals]


def exact_softmax(case: Case) -> Exact:
    vals = []
    for row in case.arrays["x"]:
        _, ls, _, exps = _lse(row)
        total = mp.exp(ls)
        vals.extend(e / total for e in exps)
    return vals, list(vals)


def _labels(x: np.ndarray, which: str) -> np.ndarray:
    n, c = x.shape
    if which == "argmax":
        return np.argmax(x, axis=1)
    if which == "argmin":
        return np.argmin(np.where(np.isfinite(x), x, np.inf), axis=1)
    return np.random.default_rng([n, c]).integers(0, c, n)


def exact_ce_logits_index(case: Case, which: str) -> Exact:
    vals = []
    x = case.arrays["x"]
    for row, y in zip(x, _labels(x, which), strict=True):
        m, ls, xs, _ = _lse(row)
        vals.append((m - xs[y]) + ls)
    return vals, list(vals)


def exact_ce_probs_index(case: Case, which: str) -> Exact:
    eps = _eps(case.dtype)
    q = case.arrays["p"]
    vals = [
        -mp.log(mpf(_clip(float(row[y]), eps)))
        for row, y in zip(q, _labels(q, which), strict=True)
    ]
    return vals, list(vals)


def exact_ce_logits_soft(case: Case) -> Exact:
    vals = []
    for prow, row in zip(case.arrays["p"], case.arrays["x"], strict=True):
        m, ls, xs, _ = _lse(row)
        vals.append(
            mp.fsum(p * ((m - x) + ls) for p, x in zip(_mp(prow), xs, strict=True) if p != 0)
        )
    return vals, list(vals)


def exact_ce_probs_soft(case: Case) -> Exact:
    eps = _eps(case.dtype)
    vals = []
    for prow, qrow in zip(case.arrays["p"], case.arrays["q"], strict=True):
        qs = [mpf(_clip(v, eps)) for v in qrow.tolist()]
        vals.append(-mp.fsum(p * mp.log(q) for p, q in zip(_mp(prow), qs, strict=True) if p != 0))
    return vals, list(vals)


def exact_entropy_probs(case: Case) -> Exact:
    vals = [-mp.fsum(p * mp.log(p) for p in _mp(row) if p != 0) for row in case.arrays["p"]]
    return vals, list(vals)


def exact_entropy_logits(case: Case) -> Exact:
    vals = []
    for row in case.arrays["x"]:
        m, ls, xs, exps = _lse(row)
        total = mp.exp(ls)
        vals.append(
            mp.fsum((e / total) * ((m - x) + ls) for e, x in zip(exps, xs, strict=True) if e != 0)
        )
    return vals, list(vals)


def exact_kl_probs(case: Case) -> Exact:
    eps = _eps(case.dtype)
    vals, terms = [], []
    for prow, qrow in zip(case.arrays["p"], case.arrays["q"], strict=True):
        qs = [mpf(_clip(v, eps)) for v in qrow.tolist()]
        t = [_xlogx_over(p, q) for p, q in zip(_mp(prow), qs, strict=True)]
        vals.append(mp.fsum(t))
        terms.append(mp.fsum(abs(v) for v in t))
    return vals, terms


def exact_kl_logits(case: Case) -> Exact:
    vals, terms = [], []
    for prow, row in zip(case.arrays["p"], case.arrays["x"], strict=True):
        m, ls, xs, _ = _lse(row)
        ps = _mp(prow)
        logq = [(x - m) - ls for x in xs]
        vals.append(
            mp.fsum(p * (mp.log(p) - lq) for p, lq in zip(ps, logq, strict=True) if p != 0)
        )
        terms.append(
            mp.fsum(
                p * (abs(mp.log(p)) + abs(lq)) for p, lq in zip(ps, logq, strict=True) if p != 0
            )
        )
    return vals, terms


def _js_row(ps: list[mpf], qs: list[mpf]) -> tuple[mpf, mpf]:
    """(JS of two rows of probabilities, T: the sum of |half-terms| p log(2p / (p + q)) / 2)."""
    t = []
    for p, q in zip(ps, qs, strict=True):
        m = (p + q) / 2
        t.append(_xlogx_over(p, m) / 2)
        t.append(_xlogx_over(q, m) / 2)
    return mp.fsum(t), mp.fsum(abs(v) for v in t)


def exact_js(case: Case) -> Exact:
    rows = zip(case.arrays["p"], case.arrays["q"], strict=True)
    vals, terms = zip(*(_js_row(_mp(prow), _mp(qrow)) for prow, qrow in rows), strict=True)
    return list(vals), list(terms)


def _log_target(row: np.ndarray) -> tuple[list[mpf], list[mpf]]:
    """(P_c, log P_c) of a row of target logits (softmax)."""
    m, ls, xs, _ = _lse(row)
    logp = [(x - m) - ls if x != -mp.inf else -mp.inf for x in xs]
    return [mp.exp(lp) if lp != -mp.inf else mpf(0) for lp in logp], logp


def _log_pred(case: Case, i: int, logits: bool) -> list[mpf]:
    """log Q_c of row i: of the logits ``x``, or of the clipped probabilities ``q``."""
    if logits:
        m, ls, xs, _ = _lse(case.arrays["x"][i])
        return [(x - m) - ls if x != -mp.inf else -mp.inf for x in xs]
    eps = _eps(case.dtype)
    return [mp.log(mpf(_clip(v, eps))) for v in case.arrays["q"][i].tolist()]


def exact_kl_target_logits(case: Case, logits: bool) -> Exact:
    vals, terms = [], []
    for i, row in enumerate(case.arrays["t"]):
        ps, logp = _log_target(row)
        logq = _log_pred(case, i, logits)
        t = [(p, lp, lq) for p, lp, lq in zip(ps, logp, logq, strict=True) if p != 0]
        vals.append(mp.fsum(p * (lp - lq) for p, lp, lq in t))
        terms.append(mp.fsum(p * (abs(lp) + abs(lq)) for p, lp, lq in t))
    return vals, terms


def exact_ce_target_logits(case: Case, logits: bool) -> Exact:
    vals = []
    for i, row in enumerate(case.arrays["t"]):
        ps, _ = _log_target(row)
        logq = _log_pred(case, i, logits)
        vals.append(-mp.fsum(p * lq for p, lq in zip(ps, logq, strict=True) if p != 0))
    return vals, list(vals)


def exact_js_logits(case: Case) -> Exact:
    """JS of two softmax rows. T is the sum of the absolute values of the half-terms
    p log(2p / (p + q)) / 2, as for probabilities: each softmax value carries a relative
    rounding error d, which moves JS by d times its own half-term (dJS/dp = log(2p / (p + q))
    / 2), and the half-terms of a class cancel when p ~ q."""
    rows = zip(case.arrays["t"], case.arrays["x"], strict=True)
    vals, terms = zip(
        *(_js_row(_log_target(prow)[0], _log_target(qrow)[0]) for prow, qrow in rows), strict=True
    )
    return list(vals), list(terms)


def exact_bce_probs(case: Case) -> Exact:
    eps = _eps(case.dtype)
    vals = []
    for y, p in zip(_mp(case.arrays["y"]), case.arrays["b"].tolist(), strict=True):
        pc = mpf(_clip(p, eps))
        v = mpf(0)
        if y != 0:
            v -= y * mp.log(pc)
        if y != 1:
            v -= (1 - y) * mp.log(1 - pc)
        vals.append(v)
    return vals, list(vals)


def _softplus(z: mpf) -> mpf:
    if z == mp.inf:
        return z
    return mp.log1p(mp.exp(z))


def exact_bce_logits(case: Case) -> Exact:
    vals = []
    for y, x in zip(_mp(case.arrays["y"]), _mp(case.arrays["b"]), strict=True):
        v = mpf(0)
        if y != 1:
            v += (1 - y) * _softplus(x)
        if y != 0:
            v += y * _softplus(-x)
        vals.append(v)
    return vals, list(vals)


# ---------------------------------------------------------------------------------------------
# Measures: what fastce computes, what is exact, the goal


@dataclass(frozen=True)
class Measure:
    name: str  # as in docs/accuracy.md
    group: str  # the public function
    kind: str  # which cases feed it (Case.kind)
    goals: tuple[float, float]  # ulps of the output dtype: (float32, float64)
    compute: Callable[[Case], np.ndarray]
    exact: Callable[[Case], Exact]
    accepts: Callable[[Case], bool] = lambda case: True
    cancels: bool = False  # terms of both signs: values with T > KAPPA |e| are bounded by k

    def goal(self, dtype: Any) -> float:
        return self.goals[0] if np.dtype(dtype) == np.float32 else self.goals[1]


def _ce_index(
    which: str, logits: bool
) -> tuple[Callable[[Case], np.ndarray], Callable[[Case], Exact]]:
    key = "x" if logits else "p"

    def compute(case: Case) -> np.ndarray:
        a = case.arrays[key]
        return fastce.cross_entropy(_labels(a, which), a, from_logits=logits)

    def exact(case: Case) -> Exact:
        return (exact_ce_logits_index if logits else exact_ce_probs_index)(case, which)

    return compute, exact


def _binary(kind: str) -> Callable[[Case], bool]:
    return lambda case: kind in case.arrays


# Goals in ulps of the output dtype, (float32, float64). The log-sum-exp family (logsumexp,
# log_softmax, softmax, cross-entropy from logits): 2 / 4. Sums of logarithms (entropy, KL,
# Jensen-Shannon, cross-entropy from probabilities, binary cross-entropy): 8.
LSE_GOAL = (2.0, 4.0)
SUM_GOAL = (8.0, 8.0)

MEASURES: tuple[Measure, ...] = (
    Measure(
        "logsumexp",
        "logsumexp",
        "logits",
        LSE_GOAL,
        lambda c: fastce.logsumexp(c.arrays["x"]),
        exact_logsumexp,
        cancels=True,
    ),
    Measure(
        "log_softmax",
        "log_softmax",
        "logits",
        LSE_GOAL,
        lambda c: fastce.log_softmax(c.arrays["x"]),
        exact_log_softmax,
    ),
    Measure(
        "softmax",
        "softmax",
        "logits",
        LSE_GOAL,
        lambda c: fastce.softmax(c.arrays["x"]),
        exact_softmax,
    ),
    *(
        Measure(
            f"cross_entropy, logits, label = {w}",
            "cross_entropy",
            "logits",
            LSE_GOAL,
            *_ce_index(w, True),
        )
        for w in ("argmax", "argmin", "random")
    ),
    Measure(
        "cross_entropy, logits, soft target",
        "cross_entropy",
        "logit_pairs",
        LSE_GOAL,
        lambda c: fastce.cross_entropy(c.arrays["p"], c.arrays["x"], from_logits=True),
        exact_ce_logits_soft,
    ),
    *(
        Measure(
            f"cross_entropy, probabilities, label = {w}",
            "cross_entropy",
            "probs",
            SUM_GOAL,
            *_ce_index(w, False),
        )
        for w in ("argmax", "argmin", "random")
    ),
    Measure(
        "cross_entropy, probabilities, soft target",
        "cross_entropy",
        "pairs",
        SUM_GOAL,
        lambda c: fastce.cross_entropy(c.arrays["p"], c.arrays["q"]),
        exact_ce_probs_soft,
    ),
    Measure(
        "entropy, probabilities",
        "entropy",
        "probs",
        SUM_GOAL,
        lambda c: fastce.entropy(c.arrays["p"]),
        exact_entropy_probs,
    ),
    Measure(
        "entropy, logits",
        "entropy",
        "logits",
        SUM_GOAL,
        lambda c: fastce.entropy(c.arrays["x"], from_logits=True),
        exact_entropy_logits,
    ),
    Measure(
        "kl_divergence, probabilities",
        "kl_divergence",
        "pairs",
        SUM_GOAL,
        lambda c: fastce.kl_divergence(c.arrays["p"], c.arrays["q"]),
        exact_kl_probs,
        cancels=True,
    ),
    Measure(
        "kl_divergence, logits",
        "kl_divergence",
        "logit_pairs",
        SUM_GOAL,
        lambda c: fastce.kl_divergence(c.arrays["p"], c.arrays["x"], from_logits=True),
        exact_kl_logits,
        cancels=True,
    ),
    Measure(
        "js_divergence",
        "js_divergence",
        "pairs",
        SUM_GOAL,
        lambda c: fastce.js_divergence(c.arrays["p"], c.arrays["q"]),
        exact_js,
    ),
    Measure(
        "cross_entropy, target logits, predicted logits",
        "cross_entropy",
        "two_logits",
        SUM_GOAL,
        lambda c: fastce.cross_entropy(
            c.arrays["t"], c.arrays["x"], from_logits=True, target_from_logits=True
        ),
        lambda c: exact_ce_target_logits(c, True),
    ),
    Measure(
        "cross_entropy, target logits, predicted probabilities",
        "cross_entropy",
        "two_logits",
        SUM_GOAL,
        lambda c: fastce.cross_entropy(c.arrays["t"], c.arrays["q"], target_from_logits=True),
        lambda c: exact_ce_target_logits(c, False),
    ),
    Measure(
        "kl_divergence, target logits, predicted logits",
        "kl_divergence",
        "two_logits",
        SUM_GOAL,
        lambda c: fastce.kl_divergence(
            c.arrays["t"], c.arrays["x"], from_logits=True, target_from_logits=True
        ),
        lambda c: exact_kl_target_logits(c, True),
        cancels=True,
    ),
    Measure(
        "kl_divergence, target logits, predicted probabilities",
        "kl_divergence",
        "two_logits",
        SUM_GOAL,
        lambda c: fastce.kl_divergence(c.arrays["t"], c.arrays["q"], target_from_logits=True),
        lambda c: exact_kl_target_logits(c, False),
        cancels=True,
    ),
    Measure(
        "js_divergence, logits",
        "js_divergence",
        "two_logits",
        SUM_GOAL,
        lambda c: fastce.js_divergence(
            c.arrays["t"], c.arrays["x"], from_logits=True, target_from_logits=True
        ),
        exact_js_logits,
        cancels=True,
    ),
    Measure(
        "binary_cross_entropy, probabilities",
        "binary_cross_entropy",
        "binary",
        SUM_GOAL,
        lambda c: fastce.binary_cross_entropy(c.arrays["y"], c.arrays["b"]),
        exact_bce_probs,
        _binary("probs"),
    ),
    Measure(
        "binary_cross_entropy, logits",
        "binary_cross_entropy",
        "binary",
        SUM_GOAL,
        lambda c: fastce.binary_cross_entropy(c.arrays["y"], c.arrays["b"], from_logits=True),
        exact_bce_logits,
        _binary("logits"),
    ),
)

# Values whose terms cancel by more than this factor (T > KAPPA |e|: at least one bit lost to
# cancellation) are named cancellation cases, bounded by k instead of by the ulp goal.
KAPPA = 2.0

# k of the bound |v - e| <= ulp(e) / 2 + k eps T for named cancellation cases.
CANCELLATION_K = 2.0


# ---------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Worst:
    """The largest error met and where."""

    value: float = 0.0
    where: str = ""
    computed: float = math.nan
    exact: float = math.nan
    kappa: float = 0.0  # cancellation cases: the largest T / |e| met
    count: int = 0  # cancellation cases: how many values

    def update(self, value: float, where: str, computed: float, exact: mpf) -> None:
        if value > self.value or not self.where:
            self.value, self.where, self.computed, self.exact = (
                value,
                where,
                computed,
                float(exact),
            )


@dataclass
class Result:
    """Errors of one measure and dtype: ulps over the regular cases, and the bound factor
    ``|v - e| / (eps T)`` per named cancellation family."""

    measure: Measure
    dtype: np.dtype
    ulps: Worst = field(default_factory=Worst)
    cancellation: dict[str, Worst] = field(default_factory=dict)
    values: int = 0

    @property
    def met(self) -> bool:
        ok = self.ulps.value <= self.measure.goal(self.dtype)
        return ok and all(w.value <= CANCELLATION_K for w in self.cancellation.values())


def ulp_error(computed: float, exact: mpf, dtype: np.dtype) -> float:
    """|computed - exact| in ulps of ``dtype`` at the exact value rounded to ``dtype``."""
    if mp.isnan(exact) or math.isnan(computed):
        return 0.0 if (mp.isnan(exact) and math.isnan(computed)) else math.inf
    if mp.isinf(exact) or math.isinf(computed):
        return 0.0 if computed == exact else math.inf
    rounded = dtype.type(float(exact))
    if np.isinf(rounded):
        return 0.0 if computed == float(exact) else math.inf
    spacing = float(np.spacing(np.abs(rounded)))
    return float(abs(mpf(computed) - exact) / spacing)


def bound_factor(computed: float, exact: mpf, terms: mpf, dtype: np.dtype) -> float:
    """k in |computed - exact| <= ulp(e) / 2 + k eps T: the error beyond the rounding of the
    output, in units of eps times the size of the terms."""
    if math.isnan(computed) or mp.isinf(exact):
        return ulp_error(computed, exact, dtype)
    half_ulp = mpf(float(np.spacing(np.abs(dtype.type(float(exact)))))) / 2
    err = abs(mpf(computed) - exact) - half_ulp
    if err <= 0:
        return 0.0
    if terms == 0:
        return math.inf
    return float(err / (mpf(_eps(dtype)) * terms))


def condition(exact: mpf, terms: mpf) -> float:
    """T / |e|: how much the terms of the formula cancel (1 when they all have one sign)."""
    if terms == 0:
        return 1.0
    if exact == 0:
        return math.inf
    return float(terms / abs(exact))


def measure(m: Measure, cases: list[Case], dtype: Any) -> Result:
    dtype = np.dtype(dtype)
    result = Result(m, dtype)
    with mp.workdps(DIGITS):
        for case in cases:
            if case.kind != m.kind or case.dtype != dtype or not m.accepts(case):
                continue
            computed = np.asarray(m.compute(case))
            assert computed.dtype == dtype, (m.name, case.label, computed.dtype)
            exact, terms = m.exact(case)
            flat = computed.reshape(-1).tolist()
            assert len(flat) == len(exact), (m.name, case.label)
            result.values += len(flat)
            for i, (v, e, t) in enumerate(zip(flat, exact, terms, strict=True)):
                where = f"{case.label} [{i}]"
                if m.cancels and condition(e, t) > KAPPA:
                    worst = result.cancellation.setdefault(case.family, Worst())
                    worst.update(bound_factor(v, e, t, dtype), where, v, e)
                    worst.kappa = max(worst.kappa, condition(e, t))
                    worst.count += 1
                else:
                    result.ulps.update(ulp_error(v, e, dtype), where, v, e)
    return result


def versions() -> dict[str, str]:
    import numba

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "mpmath": mpmath.__version__,
        "fastce": fastce.__version__,
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
    }
