"""Accuracy, special values and vectorisation of fastce._kernels.vmath.

Every function is exercised the way the kernels compile it: inlined into a module-level
``@njit(nogil=True)`` wrapper with a loop over rows and an inner loop over columns, compiled
with no fast-math flag (Numba inlines a helper with its caller's flags, so calling the helper
directly would test something else).  The wrappers deliberately do not use ``cache=True``:
Numba's cache would not notice an edit to vmath.py.  The harness knows each function by its
base name (``exp64`` for ``vmath.exp64_fma``), which fixes its dtype and reference.

Errors are measured against the exact value: float64 results against long double (x87, 64-bit
significand, 11 bits beyond float64) with mpmath (200 bits) deciding every case where the long
double reference lies within 2**-8 ulp of a rounding boundary; float32 results against libm's
float64 functions with mpmath deciding every case within 2**-20 ulp of a float32 rounding
boundary.  Two numbers are checked per function: the largest distance, in units in the last
place of the exact result, between our result and the exact value (must be < 1), and the
largest count of float steps between our result and the correctly rounded result (must be
<= 1).
"""

import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit, prange

try:
    from fastce._kernels import _simd, vmath
except ImportError:  # running from a checkout without an installed fastce
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from fastce._kernels import _simd, vmath

mp = pytest.importorskip("mpmath")

FASTMATH_FLAGS = {"reassoc", "contract", "arcp", "nsz", "afn"}
NAMES64 = ("exp64", "log64", "log1p64")
NAMES32 = ("exp32", "log1p32")
MATH_NAME = {
    "exp64": "exp",
    "log64": "log",
    "log1p64": "log1p",
    "exp32": "exp",
    "log1p32": "log1p",
}
ROW = 1024  # wrapper row length: long enough for the vectorised loop body to run

# --------------------------------------------------------------------------------------------
# kernel-shaped wrappers
# --------------------------------------------------------------------------------------------


def _make_map(fn, fastmath=False):
    @njit(nogil=True, fastmath=fastmath)
    def apply_rows(x, out):
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = fn(x[i, j])

    return apply_rows


def function(name):
    """The vmath function under the base name ``name``."""
    return getattr(vmath, name + "_fma")


# Built once at import (nothing is compiled until first use); one wrapper per function.
STRICT = {name: _make_map(function(name)) for name in NAMES64 + NAMES32}


def run(name, x, row=ROW, kernels=STRICT):
    """Evaluate ``name`` on the 1-D array x through its wrapper, rows of ``row`` values."""
    dtype = np.float32 if name.endswith("32") else np.float64
    x = np.asarray(x, dtype=dtype)
    n = x.size
    padded = np.zeros(-(-n // row) * row, dtype=dtype)
    padded[:n] = x
    out = np.empty_like(padded)
    kernels[name](padded.reshape(-1, row), out.reshape(-1, row))
    return out[:n]


# --------------------------------------------------------------------------------------------
# exact references
# --------------------------------------------------------------------------------------------

_MP_FUNCS = {"exp": mp.exp, "log": mp.log, "log1p": mp.log1p}
_FORMAT = {np.float64: (53, -1074, 1024), np.float32: (24, -149, 128)}


def mp_exact(fname, x):
    """f(x) to 200 bits, or None where f(x) is NaN (mpmath would go complex)."""
    if math.isnan(x):
        return None
    x = mp.mpf(float(x))
    if (fname == "log" and x < 0) or (fname == "log1p" and x < -1):
        return None
    if (fname == "log" and x == 0) or (fname == "log1p" and x == -1):
        return mp.ninf
    with mp.workprec(200):
        return _MP_FUNCS[fname](x)


def mp_ulp(v, dtype):
    """ulp of the format at the exact value v (subnormal spacing below the normal range)."""
    prec, emin, _ = _FORMAT[dtype]
    if v == 0:
        return mp.ldexp(1, emin)
    _, e = mp.frexp(v)  # |v| in [2**(e-1), 2**e)
    return mp.ldexp(1, max(e - prec, emin))


def mp_round(v, dtype):
    """Correctly rounded (to nearest, ties to even) value of the exact v in ``dtype``."""
    emax = _FORMAT[dtype][2]
    if not mp.isfinite(v):
        return dtype(float(v))
    if v == 0:
        return dtype(0.0)
    u = mp_ulp(v, dtype)
    n = mp.nint(v / u)
    r = n * u
    if abs(r) >= mp.ldexp(1, emax):
        return dtype(math.copysign(math.inf, float(v)))
    return dtype(float(r))  # n has at most prec bits: exact


def ordered(a):
    """Map floats to integers whose order and differences count representable steps."""
    a = np.asarray(a)
    ity = np.int64 if a.dtype == np.float64 else np.int32
    i = a.view(ity).astype(np.int64)
    lowest = np.int64(np.iinfo(ity).min)
    return np.where(i < 0, lowest - i, i)


class Report:
    """Worst errors seen so far for one function."""

    def __init__(self, name):
        self.name = name
        self.max_err = 0.0  # |ours - exact| / ulp(exact), largest seen
        self.worst_x = None
        self.max_steps = 0  # representable steps between ours and the correctly rounded value
        self.n = 0
        self.n_mp = 0  # cases decided by mpmath

    def add(self, x, err, steps):
        if err.size:
            i = int(np.argmax(err))
            if err[i] > self.max_err:
                self.max_err, self.worst_x = float(err[i]), x[i]
            self.max_steps = max(self.max_steps, int(steps.max()))
        self.n += err.size

    def __str__(self):
        return (
            f"{self.name}: max error {self.max_err:.4f} ulp at x={self.worst_x!r}, "
            f"max {self.max_steps} step(s) from correctly rounded, {self.n} values "
            f"({self.n_mp} checked with mpmath)"
        )


def check_mp(report, name, x, ours, nan_bad, special_bad):
    """Exact check, one value at a time (used for the ambiguous and the special cases)."""
    fname = MATH_NAME[name]
    dtype = type(ours[0]) if len(ours) else np.float64
    errs, steps = [], []
    for xi, yi in zip(x, ours, strict=True):
        v = mp_exact(fname, xi)
        report.n_mp += 1
        if v is None:
            if not np.isnan(yi):
                nan_bad.append((xi, yi))
            continue
        cr = mp_round(v, dtype)
        if not np.isfinite(cr) or not mp.isfinite(v):
            if yi != cr:
                special_bad.append((xi, yi, cr))
            continue
        if not np.isfinite(yi):
            special_bad.append((xi, yi, cr))
            continue
        errs.append(float(abs(mp.mpf(float(yi)) - v) / mp_ulp(v, dtype)))
        steps.append(int(abs(ordered(np.array([yi]))[0] - ordered(np.array([cr]))[0])))
    report.add(np.asarray(x), np.asarray(errs), np.asarray(steps, dtype=np.int64))


_LD_OK = np.finfo(np.longdouble).nmant >= 63
_LD_FUNCS = {"exp": np.exp, "log": np.log, "log1p": np.log1p}


def measure64(name, x, kernels=STRICT, report=None):
    """Errors of float64 function ``name`` on x; returns (report, nan_bad, special_bad)."""
    if not _LD_OK:
        pytest.skip("needs an extended-precision long double for the float64 reference")
    x = np.asarray(x, dtype=np.float64)
    ours = run(name, x, kernels=kernels)
    report = report or Report(name)
    with np.errstate(all="ignore"):
        ref = _LD_FUNCS[MATH_NAME[name]](x.astype(np.longdouble))
        cr = ref.astype(np.float64)
        _, e = np.frexp(ref)
        ulp = np.ldexp(np.longdouble(1), np.maximum(e.astype(np.int64) - 53, -1074))
        ulp = np.where(ref == 0, np.ldexp(np.longdouble(1), -1074), ulp)
        frac = np.abs((cr.astype(np.longdouble) - ref) / ulp)
        # results round to infinity from 2**1024 - 2**970 (half an ulp above the largest float)
        overflow_edge = np.ldexp(np.longdouble(1), 1024) - np.ldexp(np.longdouble(1), 970)
        near_edge = np.abs(np.abs(ref) - overflow_edge) < np.ldexp(np.longdouble(1), 962)
    nan_ref = np.isnan(ref)
    inf_cr = np.isinf(cr)
    # within 2**-8 ulp of a rounding boundary the long double reference cannot decide
    ambiguous = (~nan_ref & ~inf_cr & (np.abs(frac - 0.5) < 2.0**-8)) | near_edge
    nan_bad = list(zip(x[nan_ref & ~np.isnan(ours)], ours[nan_ref & ~np.isnan(ours)], strict=True))
    wrong_inf = inf_cr & ~ambiguous & (ours != cr)
    special_bad = list(zip(x[wrong_inf], ours[wrong_inf], cr[wrong_inf], strict=True))
    check_mp(report, name, x[ambiguous], ours[ambiguous], nan_bad, special_bad)
    ok = ~(nan_ref | inf_cr | ambiguous)
    not_finite = ok & ~np.isfinite(ours)
    special_bad.extend(zip(x[not_finite], ours[not_finite], cr[not_finite], strict=True))
    ok &= ~not_finite
    err = np.abs((ours[ok].astype(np.longdouble) - ref[ok]) / ulp[ok]).astype(np.float64)
    steps = np.abs(ordered(ours[ok]) - ordered(cr[ok]))
    report.add(x[ok], err, steps)
    return report, nan_bad, special_bad


# float32: reference from libm's float64 functions (below 1 ulp of float64, i.e. 2**-29 ulp
# of float32), evaluated in a Numba kernel so the exhaustive test is fast.


def _make_check32(ref):
    @njit(parallel=True)
    def check(x, y, n, flag, row_err, row_steps):
        """Check the first n values of x (rows of a padded 2-D array) against ref.

        flag: 0 = measured or right, 1 = decide with mpmath (near a rounding boundary), 2 =
        wrong NaN / infinity / finiteness.  row_err, row_steps: worst per row.
        """
        for i in prange(x.shape[0]):
            worst, steps_max = 0.0, 0
            for j in range(x.shape[1]):
                if i * x.shape[1] + j >= n:
                    break
                r = ref(np.float64(x[i, j]))
                cr = np.float32(r)
                yv = y[i, j]
                flag[i, j] = 0
                if math.isnan(r):
                    if not math.isnan(yv):
                        flag[i, j] = 2
                    continue
                # float32 overflows from FLT_MAX + ulp/2 = 2**128 - 2**103
                if abs(abs(r) - (2.0**128 - 2.0**103)) < 2.0**84:
                    flag[i, j] = 1
                    continue
                if math.isinf(cr):
                    if yv != cr:
                        flag[i, j] = 2
                    continue
                if not math.isfinite(yv):
                    flag[i, j] = 2
                    continue
                if r == 0.0:
                    ulp = 2.0**-149
                else:
                    e = math.frexp(r)[1]
                    ulp = math.ldexp(1.0, max(e - 24, -149))
                if abs(abs(np.float64(cr) - r) / ulp - 0.5) < 2.0**-20:
                    flag[i, j] = 1
                    continue
                err = abs(np.float64(yv) - r) / ulp
                a = np.int64(_simd.float_to_bits(yv))
                b = np.int64(_simd.float_to_bits(cr))
                a = -2147483648 - a if a < 0 else a
                b = -2147483648 - b if b < 0 else b
                worst = max(worst, err)
                steps_max = max(steps_max, abs(a - b))
            row_err[i] = worst
            row_steps[i] = steps_max

    return check


@njit(inline="always")
def _libm_exp(x):
    return math.exp(x)


@njit(inline="always")
def _libm_log1p(x):
    return math.log1p(x) if x > -1.0 else (-math.inf if x == -1.0 else math.nan)


CHECK32 = {"exp32": _make_check32(_libm_exp), "log1p32": _make_check32(_libm_log1p)}


def measure32(name, x, kernels=STRICT, report=None):
    x = np.asarray(x, dtype=np.float32)
    ours = run(name, x, kernels=kernels)
    report = report or Report(name)
    n = x.size
    rows = -(-n // ROW)
    xp = np.zeros(rows * ROW, np.float32)
    yp = np.zeros(rows * ROW, np.float32)
    xp[:n], yp[:n] = x, ours
    flag = np.zeros(rows * ROW, np.uint8)
    row_err = np.zeros(rows)
    row_steps = np.zeros(rows, np.int64)
    CHECK32[name](
        xp.reshape(-1, ROW), yp.reshape(-1, ROW), n, flag.reshape(-1, ROW), row_err, row_steps
    )
    flag = flag[:n]
    nan_bad, special_bad = [], []
    report.n += int(np.count_nonzero(flag == 0))
    if row_err.size:
        r = int(np.argmax(row_err))
        if row_err[r] > report.max_err:
            seg = slice(r * ROW, min((r + 1) * ROW, n))
            report.max_err = float(row_err[r])
            report.worst_x = _worst_in_row(name, x[seg], ours[seg])
        report.max_steps = max(report.max_steps, int(row_steps.max()))
    bad = np.flatnonzero(flag == 2)
    special_bad.extend(zip(x[bad], ours[bad], strict=True))
    amb = np.flatnonzero(flag == 1)
    check_mp(report, name, x[amb], ours[amb], nan_bad, special_bad)
    return report, nan_bad, special_bad


def _worst_in_row(name, x, y):
    with np.errstate(all="ignore"):
        r = getattr(np, MATH_NAME[name])(x.astype(np.float64))
        e = np.frexp(r)[1]
        err = np.abs(y.astype(np.float64) - r) / np.ldexp(1.0, np.maximum(e - 24, -149))
    err[~np.isfinite(err)] = -1
    return x[int(np.argmax(err))]


# --------------------------------------------------------------------------------------------
# sample sets
# --------------------------------------------------------------------------------------------


def _around(values, n_ulps, dtype=np.float64):
    """Every float within n_ulps steps of each value."""
    v = np.asarray(values, dtype=dtype)
    ity = np.int64 if dtype == np.float64 else np.int32
    steps = np.arange(-n_ulps, n_ulps + 1, dtype=ity)
    return (v.view(ity)[:, None] + steps[None, :]).ravel().view(dtype)


def _random_bits64(rng, n):
    return rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)


def samples64(name, n, seed=0):
    """Random bit patterns over the whole range, plus dense sampling where errors concentrate."""
    rng = np.random.default_rng(seed)
    ln2 = math.log(2.0)
    bits = _random_bits64(rng, n)
    bits = bits[np.isfinite(bits)]
    tiny = np.ldexp(rng.uniform(-1, 1, n), rng.integers(-1074, -20, n))
    parts = [bits, tiny]
    if name == "exp64":
        k = rng.integers(-1075, 1025, n).astype(np.float64)
        parts += [
            bits[np.abs(bits) < 800.0],
            rng.uniform(-745.2, 709.8, n),
            rng.uniform(-2.0, 2.0, n),
            # range-reduction boundaries x = (k + 1/2) ln 2, where |r| is largest
            (k + 0.5) * ln2 * (1.0 + rng.uniform(-1e-12, 1e-12, n)),
            _around([709.782712893384, -708.3964185322641, -745.1332191019411], 2000),
            _around([ln2 / 2, -ln2 / 2, ln2, -ln2], 500),
            rng.uniform(-745.2, -708.0, n),  # subnormal results
        ]
    else:
        pos = np.abs(bits)
        k = rng.integers(-1074, 1024, n)
        parts += [
            pos,
            rng.uniform(0.0, 4.0, n),
            # reduction boundaries: mantissa near sqrt(1/2) and sqrt(2)
            np.ldexp(math.sqrt(0.5) * (1.0 + rng.uniform(-1e-3, 1e-3, n)), k),
            _around([math.sqrt(0.5), math.sqrt(2.0), 1.0, 2.0, 0.5], 500),
        ]
        if name == "log64":
            parts += [
                1.0 + np.ldexp(rng.uniform(-1, 1, n), rng.integers(-60, -1, n)),
                np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(-1074, -1021, n)),  # subnormal
            ]
        else:
            parts += [
                rng.uniform(-1.0, 3.0, n),
                -1.0 + np.ldexp(rng.uniform(0, 1, n), rng.integers(-53, -1, n)),
                math.sqrt(2.0) * np.ldexp(1.0, k[:n] % 60) - 1.0,
                _around([-1.0 + 2.0**-53, -0.5, 2.0**-26, -(2.0**-26), 2.0**-53], 500),
            ]
    x = np.concatenate(parts)
    return x[np.isfinite(x)]


SPECIALS64 = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 5e-324, -5e-324, 2.0**-1022, -(2.0**-1022)]
    + [1.0, -1.0, 2.0, 0.5, 1e-300, -1e-300, 1e300, -1e300, 1.7976931348623157e308]
    + [-1.7976931348623157e308, 709.782712893384, 709.7827128933841, -745.1332191019411]
    + [-745.1332191019412, -1.0 + 2.0**-53, -1.0 - 2.0**-52, 2.0**-1074 * 3]
)
with np.errstate(over="ignore"):
    SPECIALS32 = SPECIALS64.astype(np.float32)


def slice32():
    """Every 4099th float32 bit pattern, plus dense windows at the thresholds and near 1 / 0."""
    pats = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    windows = _around(
        np.array([88.72283, -87.33655, -103.27893, -103.97208, 1.0, 0.70710677, 1.4142135]),
        1 << 12,
        np.float32,
    )
    tiny = _around(
        np.array([2.0**-12, -(2.0**-12), 1e-30, -1e-30, 1e-40, -1.0]), 1 << 10, np.float32
    )
    return np.concatenate([pats, windows, tiny, SPECIALS32])


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def _assert_report(report, nan_bad, special_bad):
    print(report)
    assert not nan_bad, f"{report.name}: NaN expected, got {nan_bad[:5]}"
    assert not special_bad, f"{report.name}: (x, ours, correctly rounded) {special_bad[:5]}"
    assert report.max_err < 1.0, str(report)
    assert report.max_steps <= 1, str(report)


@pytest.mark.parametrize("name", NAMES64)
def test_float64_accuracy(name):
    x = np.concatenate([samples64(name, 20_000, seed=1), SPECIALS64])
    _assert_report(*measure64(name, x))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES64)
def test_float64_accuracy_large(name):
    report = None
    for seed in range(10, 16):
        report, nan_bad, special_bad = measure64(
            name, samples64(name, 400_000, seed), report=report
        )
        assert not nan_bad and not special_bad, (nan_bad[:5], special_bad[:5])
    _assert_report(report, [], [])


@pytest.mark.parametrize("name", NAMES32)
def test_float32_accuracy(name):
    _assert_report(*measure32(name, slice32()))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES32)
def test_float32_exhaustive(name):
    """All 2**32 float32 inputs."""
    report = Report(name)
    chunk = 1 << 26
    for start in range(0, 1 << 32, chunk):
        pats = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32)
        _, nan_bad, special_bad = measure32(name, pats.view(np.float32), report=report)
        assert not nan_bad and not special_bad, (nan_bad[:5], special_bad[:5])
    _assert_report(report, [], [])


# exact values the C99 standard (Annex F) fixes, and the thresholds
SPECIAL_CASES = [
    ("exp", 0.0, 1.0),
    ("exp", -0.0, 1.0),
    ("exp", np.inf, np.inf),
    ("exp", -np.inf, 0.0),
    ("exp", 709.782712893384, 1.7976931348622732e308),  # largest x with a finite result
    ("exp", 709.7827128933841, np.inf),
    ("exp", -745.1332191019411, 5e-324),  # smallest x with a nonzero result
    ("exp", -745.1332191019412, 0.0),
    ("exp", -708.3964185322641, 2.2250738585072626e-308),
    ("exp", -1000.0, 0.0),
    ("exp", 1000.0, np.inf),
    ("log", 1.0, 0.0),
    ("log", 0.0, -np.inf),
    ("log", -0.0, -np.inf),
    ("log", np.inf, np.inf),
    ("log", -np.inf, np.nan),
    ("log", -1.0, np.nan),
    ("log", -5e-324, np.nan),
    ("log", 5e-324, -744.4400719213812),
    ("log", 1.7976931348623157e308, 709.782712893384),
    ("log1p", 0.0, 0.0),
    ("log1p", -0.0, -0.0),
    ("log1p", -1.0, -np.inf),
    ("log1p", -1.0 - 2.0**-52, np.nan),
    ("log1p", -np.inf, np.nan),
    ("log1p", np.inf, np.inf),
    ("log1p", 5e-324, 5e-324),
    ("log1p", -5e-324, -5e-324),
    ("log1p", 1e-300, 1e-300),
    ("log1p", 2.0**-60, 2.0**-60),  # 2**-60 - 2**-121 rounds to 2**-60
]


@pytest.mark.parametrize(("name", "x", "expected"), SPECIAL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(name, x, expected, dtype):
    fname = name + ("64" if dtype == np.float64 else "32")
    if fname not in STRICT:
        return  # there is no float32 log
    with np.errstate(over="ignore", under="ignore"):
        x = dtype(x)
    v = mp_exact(name, x)
    if dtype == np.float32:
        # the thresholds are float64 ones: for float32 take the correctly rounded result
        # (mpmath has no -0: log1p passes a signed zero through)
        expected = np.float32(np.nan) if v is None else mp_round(v, np.float32)
        if x == 0 and name == "log1p":
            expected = x
    elif v is not None and expected != 0:
        assert mp_round(v, np.float64) == expected  # the table itself is right
    # short row: the scalar remainder loop; long row: the vectorised loop body
    got = run(fname, np.array([x] * 3, dtype=dtype))
    got_vec = run(fname, np.full(4096, x, dtype=dtype))
    for g in (got[0], got_vec[0], got_vec[-1]):
        if np.isnan(expected):
            assert np.isnan(g), (fname, x, g)
        else:
            assert g == expected and np.signbit(g) == np.signbit(expected), (fname, x, g, expected)


@pytest.mark.parametrize("name", NAMES64 + NAMES32)
def test_nan_in_nan_out(name):
    dtype = np.float32 if name.endswith("32") else np.float64
    x = np.array([np.nan, -np.nan, 1.0], dtype=dtype)
    x = np.concatenate([x, np.frombuffer(b"\x01\x00\xc0\x7f" * 2, np.float32).astype(dtype)])
    got = run(name, np.tile(x, 100))
    assert np.isnan(got).sum() == 400
    got = run(name, x)  # the scalar remainder loop
    assert np.isnan(got).sum() == 4


@pytest.mark.parametrize("name", NAMES64 + NAMES32)
def test_same_bits_scalar_and_vector(name):
    """Every operation is exactly specified (an explicit FMA is one rounding, nothing else is
    fused or reassociated): the vector body and the scalar remainder loop give identical bits."""
    x = samples64(name.replace("32", "64"), 2000, seed=3)
    dtype = np.float32 if name.endswith("32") else np.float64
    with np.errstate(all="ignore"):
        x = np.concatenate([x.astype(dtype), SPECIALS64.astype(dtype)])
    vec = run(name, x, row=ROW)
    scalar = run(name, x, row=1)  # inner loop of length 1: never enters the vector body
    np.testing.assert_array_equal(vec.view(np.uint8), scalar.view(np.uint8))


def _simple_loop(fn):
    @njit
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return loop


def _fma_hardware():
    import llvmlite.binding as llvm

    return "+fma" in llvm.get_host_cpu_features().flatten().split(",")


@pytest.mark.skipif(
    not re.match(r"x86_64|AMD64", __import__("platform").machine()), reason="x86 asm"
)
@pytest.mark.parametrize("name", NAMES64 + NAMES32)
def test_vectorises(name):
    """The plain loop compiles to packed SIMD arithmetic with packed FMA instructions and calls
    no libm function."""
    if not _fma_hardware():
        pytest.skip("no FMA on this CPU: llvm.fma becomes a call to libm's fma")
    dtype = np.float32 if name.endswith("32") else np.float64
    suffix = "ps" if dtype == np.float32 else "pd"
    loop = _simple_loop(function(name))
    x = np.ones(64, dtype)
    loop(x, np.empty_like(x))
    asm = loop.inspect_asm(loop.signatures[0])
    packed = re.findall(
        rf"\bv(?:mul|add|sub|div|min|max|fn?m(?:add|sub)\d{{3}}){suffix}\s+[^\n]*%[yz]mm", asm
    )
    fma = re.findall(rf"\bvfn?m(?:add|sub)\d{{3}}{suffix}\s+[^\n]*%[xyz]mm", asm)
    assert not re.search(r"\$(exp|log|log1p|fmaf?)\b", asm), f"{name} calls libm"
    assert len(packed) >= 15, f"{name}: only {len(packed)} packed ymm/zmm arithmetic instructions"
    assert len(fma) >= 4, f"{name}: only {len(fma)} packed FMA instructions"


def test_fastmath_flags_report():
    """Report (not assert) the error with the NaN-keeping fast-math flag set (``contract`` may
    fuse further operations, ``reassoc`` may undo the Fast2Sums); run with -s."""
    lines = []
    for name in NAMES64 + NAMES32:
        kernels = {name: _make_map(function(name), FASTMATH_FLAGS)}
        if name.endswith("32"):
            report, nan_bad, special_bad = measure32(name, slice32()[::4], kernels=kernels)
        else:
            x = np.concatenate([samples64(name, 5000, seed=7), SPECIALS64])
            report, nan_bad, special_bad = measure64(name, x, kernels=kernels)
        lines.append(
            f"fastmath {report}; NaN/special mismatches: {len(nan_bad) + len(special_bad)}"
        )
    print("\n" + "\n".join(lines))


# --------------------------------------------------------------------------------------------
# provenance of the polynomial coefficients
# --------------------------------------------------------------------------------------------


def remez(f, a, b, degree, ngrid=3000, iters=30):
    """Polynomial of the given degree minimising max |p/f - 1| on [a, b] (Remez exchange).

    Reference points start at the Chebyshev extrema; each pass solves for the levelled error,
    then takes the extremum of each sign run of the error on a Chebyshev grid as the next
    reference.  Stops when the grid maximum equals the levelled error to 1e-6.
    """
    a, b = mp.mpf(a), mp.mpf(b)
    n = degree
    xs = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * i / (n + 1)) for i in range(n + 2)]
    grid = [a + (b - a) * (1 - mp.cos(mp.pi * i / ngrid)) / 2 for i in range(ngrid + 1)]
    fg = [f(x) for x in grid]
    coeffs = None
    for _ in range(iters):
        matrix = mp.matrix(n + 2, n + 2)
        rhs = mp.matrix(n + 2, 1)
        for i, x in enumerate(xs):
            for j in range(n + 1):
                matrix[i, j] = x**j
            matrix[i, n + 1] = (-1) ** i * f(x)  # weight 1/f: relative error
            rhs[i] = f(x)
        sol = mp.lu_solve(matrix, rhs)
        coeffs = [sol[j] for j in range(n + 1)]
        level = abs(sol[n + 1])

        def p(x, coeffs=coeffs):
            s = mp.mpf(0)
            for c in reversed(coeffs):
                s = s * x + c
            return s

        err = [(fg[i] - p(x)) / fg[i] for i, x in enumerate(grid)]
        runs, cur = [], [0]
        for i in range(1, len(grid)):
            if mp.sign(err[i]) == mp.sign(err[cur[-1]]) or err[i] == 0:
                cur.append(i)
            else:
                runs.append(cur)
                cur = [i]
        runs.append(cur)
        ext = [max(r, key=lambda i: abs(err[i])) for r in runs]
        while len(ext) > n + 2:
            ext.pop(0 if abs(err[ext[0]]) < abs(err[ext[-1]]) else -1)
        worst = max(abs(e) for e in err)
        if len(ext) == n + 2:
            xs = [grid[i] for i in ext]
        if abs(worst - level) < level * mp.mpf("1e-6"):
            break
    return coeffs


def _log_g(z):
    """G with 2 atanh(s) = 2s + s z G(z), z = s**2."""
    if z < mp.mpf("1e-20"):
        return mp.mpf(2) / 3 + 2 * z / 5
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) / s - 2) / z


@pytest.mark.slow
def test_log_coefficients_regenerate():
    """The log polynomials G in vmath.py are what this Remez fit produces (provenance)."""
    with mp.workdps(60):
        z_max = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * (1 + mp.mpf("1e-6"))
        fits = [
            ("_LOG64_G", 7, float),
            ("_LOG32_G", 3, lambda v: np.float32(float(v))),
        ]
        for prefix, degree, rnd in fits:
            coeffs = remez(_log_g, 0, z_max, degree)
            have = [getattr(vmath, f"{prefix}{j}") for j in range(degree + 1)]
            assert [rnd(c) for c in coeffs] == have, prefix


def _exp_h(r):
    """(e**r - 1 - r) / r**2, the part of exp the FMA variants' polynomial H approximates."""
    if abs(r) < mp.mpf("1e-12"):
        return mp.mpf(1) / 2 + r / 6 + r**2 / 24
    return (mp.exp(r) - 1 - r) / r**2


def remez_weighted(f, w, a, b, degree, ngrid=3000, iters=40):
    """Polynomial of the given degree minimising max |w(x) (p(x) - f(x))| on [a, b].

    The exchange of ``remez`` with a general positive weight w (``remez`` is w = 1/f).  The
    FMA variants' exp polynomial is fitted for the error of exp itself: exp(r) = 1 + r +
    r^2 H(r) moves by r^2 dH, i.e. by r^2 dH / e^r relative, so w = (r^2 + 0.02^2) / e^r (the
    0.02^2 keeps w positive at r = 0, where the error does not matter).
    """
    a, b = mp.mpf(a), mp.mpf(b)
    n = degree
    xs = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * i / (n + 1)) for i in range(n + 2)]
    grid = [a + (b - a) * (1 - mp.cos(mp.pi * i / ngrid)) / 2 for i in range(ngrid + 1)]
    fg = [f(x) for x in grid]
    wg = [w(x) for x in grid]
    coeffs = None
    for _ in range(iters):
        matrix = mp.matrix(n + 2, n + 2)
        rhs = mp.matrix(n + 2, 1)
        for i, x in enumerate(xs):
            for j in range(n + 1):
                matrix[i, j] = x**j
            matrix[i, n + 1] = (-1) ** i / w(x)
            rhs[i] = f(x)
        sol = mp.lu_solve(matrix, rhs)
        coeffs = [sol[j] for j in range(n + 1)]
        level = abs(sol[n + 1])

        def p(x, coeffs=coeffs):
            s = mp.mpf(0)
            for c in reversed(coeffs):
                s = s * x + c
            return s

        err = [(p(x) - fg[i]) * wg[i] for i, x in enumerate(grid)]
        runs, cur = [], [0]
        for i in range(1, len(grid)):
            if mp.sign(err[i]) == mp.sign(err[cur[-1]]) or err[i] == 0:
                cur.append(i)
            else:
                runs.append(cur)
                cur = [i]
        runs.append(cur)
        ext = [max(r, key=lambda i: abs(err[i])) for r in runs]
        while len(ext) > n + 2:
            ext.pop(0 if abs(err[ext[0]]) < abs(err[ext[-1]]) else -1)
        worst = max(abs(e) for e in err)
        if len(ext) == n + 2:
            xs = [grid[i] for i in ext]
        if abs(worst - level) < level * mp.mpf("1e-6"):
            break
    return coeffs


@pytest.mark.slow
def test_exp_coefficients_regenerate():
    """The exp polynomials H are what remez_weighted produces (provenance)."""
    with mp.workdps(60):
        eps2 = mp.mpf("0.02") ** 2

        def weight(r):
            return (r * r + eps2) / mp.exp(r)

        fits = [  # |r| <= ln2/2 plus the reduction's slack (larger for float32)
            ("_EXP64_H", "1e-6", 9, float),
            ("_EXP32_H", "1e-5", 4, lambda v: np.float32(float(v))),
        ]
        for prefix, margin, degree, rnd in fits:
            r_max = mp.log(2) / 2 + mp.mpf(margin)
            coeffs = remez_weighted(_exp_h, weight, -r_max, r_max, degree)
            have = [getattr(vmath, f"{prefix}{j}") for j in range(degree + 1)]
            assert [rnd(c) for c in coeffs] == have, prefix


_GENERIC_CPU_SCRIPT = """
import sys
import numpy as np
from numba import njit
from fastce._kernels import vmath

out = {}
for name in sys.argv[2].split(","):
    fn = getattr(vmath, name + "_fma")

    @njit
    def loop(x, y):
        for i in range(x.shape[0]):
            y[i] = fn(x[i])

    x = np.load(sys.argv[1] + "/" + name + "_x.npy")
    y = np.empty_like(x)
    loop(x, y)
    asm = loop.inspect_asm(loop.signatures[0])
    assert "vfmadd" not in asm and "$fma" in asm, name + ": not compiled without FMA"
    out[name] = y
np.savez(sys.argv[1] + "/generic.npz", **out)
"""


@pytest.mark.slow
def test_same_bits_without_fma_hardware(tmp_path):
    """Compiled for a CPU without FMA (NUMBA_CPU_NAME=generic), llvm.fma becomes a call to
    libm's fma: slow and scalar, but the same bits as the FMA instructions."""
    names = NAMES64 + NAMES32
    inputs = {}
    rng = np.random.default_rng(11)
    for name in names:
        dtype = np.float32 if name.endswith("32") else np.float64
        ity = np.uint32 if dtype == np.float32 else np.uint64
        with np.errstate(all="ignore"):
            x = np.concatenate([samples64(name.replace("32", "64"), 3000, seed=4), SPECIALS64])
            x = x.astype(dtype)
        bits = rng.integers(0, np.iinfo(ity).max, 20_000, dtype=ity, endpoint=True)
        inputs[name] = np.concatenate([x, bits.view(dtype)])
        np.save(tmp_path / f"{name}_x.npy", inputs[name])
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CPU_FEATURES", None)
    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", _GENERIC_CPU_SCRIPT, str(tmp_path), ",".join(names)],
        env=env,
        cwd=root,
        check=True,
        timeout=900,
    )
    generic = np.load(tmp_path / "generic.npz")
    for name in names:
        here = run(name, inputs[name])
        np.testing.assert_array_equal(
            here.view(np.uint8), generic[name].view(np.uint8), err_msg=name
        )


# --------------------------------------------------------------------------------------------
# exp64_lite: the exps of a float32 row's ``x - m`` (float64, x <= 0), whose results end in
# float32: relative error below 2**-34, 0 below the normal range.
# --------------------------------------------------------------------------------------------

LITE = _make_map(vmath.exp64_lite)
LITE_REL = 2.0**-34
LITE_MIN = -708.39  # vmath._EXPL_MIN


def _lite_inputs():
    rng = np.random.default_rng(21)
    ln2 = math.log(2)
    k = np.arange(0, 1025, dtype=np.float64)
    return np.concatenate(
        [
            -rng.uniform(0.0, 745.0, 400_000),
            -rng.uniform(0.0, 2.0, 100_000),
            -np.logspace(-320, 0, 20_000),  # tiny arguments: e**x = 1 + x
            np.linspace(-708.5, -708.2, 3001),  # around the flush threshold
            -k * ln2,  # reduced argument 0
            -(k + 0.5) * ln2,  # the rounding boundaries of k: |r| = ln2 / 2
            np.nextafter(-(k + 0.5) * ln2, 0.0),
            np.nextafter(-(k + 0.5) * ln2, -np.inf),
            [0.0, -0.0, -5e-324, -2.2250738585072014e-308, -1e-16, -745.2, -800.0, -1e300],
        ]
    )


def test_exp64_lite_accuracy():
    """Below 2**-34 relative to e**x (long double reference) down to -708.39, 0 below it, as
    a kernel compiles it (kernel-shaped wrapper, no fast-math)."""
    x = _lite_inputs()
    out = np.zeros(-(-x.size // ROW) * ROW)
    padded = np.zeros_like(out)
    padded[: x.size] = x
    LITE(padded.reshape(-1, ROW), out.reshape(-1, ROW))
    y = out[: x.size]
    normal = x >= LITE_MIN
    exact = np.exp(x[normal].astype(np.longdouble))
    rel = np.abs((y[normal].astype(np.longdouble) - exact) / exact)
    assert float(rel.max()) < LITE_REL, float(np.log2(float(rel.max())))
    assert np.all(y[~normal] == 0.0)
    # the polynomial alone is fitted to 2**-34.3; the reduction's rounded ln 2 adds < 2**-43
    assert float(rel.max()) > 2.0**-36  # (the check above is not vacuous)


@pytest.mark.parametrize(
    "x, expected",
    [(0.0, 1.0), (-0.0, 1.0), (-np.inf, 0.0), (-800.0, 0.0), (-1e-300, 1.0)],
)
def test_exp64_lite_special_values(x, expected):
    y = _simple_loop(vmath.exp64_lite)
    out = np.empty(64)
    y(np.full(64, x), out)
    assert np.all(out == expected), (x, out[0])


def test_exp64_lite_nan_in_nan_out():
    loop = _simple_loop(vmath.exp64_lite)
    x = np.array([np.nan, -np.nan, 0.0] * 20 + [np.nan] * 4)
    x[0] = np.frombuffer(np.uint64(0x7FF0000000000FFF).tobytes(), np.float64)[0]  # payload
    x[1] = np.frombuffer(np.uint64(0xFFF8000000ABCDEF).tobytes(), np.float64)[0]
    out = np.empty_like(x)
    loop(x, out)
    assert np.array_equal(np.isnan(out), np.isnan(x))


@pytest.mark.skipif(
    not re.match(r"x86_64|AMD64", __import__("platform").machine()), reason="x86 asm"
)
def test_exp64_lite_vectorises_and_is_shorter_than_exp64_fma():
    if not _fma_hardware():
        pytest.skip("no FMA on this CPU: llvm.fma becomes a call to libm's fma")
    counts = {}
    for name in ("exp64_lite", "exp64_fma"):
        loop = _simple_loop(getattr(vmath, name))
        x = -np.ones(64)
        loop(x, np.empty_like(x))
        asm = loop.inspect_asm(loop.signatures[0])
        assert not re.search(r"\$(exp|fma)\b", asm), f"{name} calls libm"
        counts[name] = len(re.findall(r"^\s+v\w+\s+[^\n]*%[yz]mm", asm, re.M))
    assert counts["exp64_lite"] >= 10, counts
    assert counts["exp64_lite"] < counts["exp64_fma"], counts


def _exp_q(r):
    """(e**r - 1) / r, the part of exp exp64_lite's polynomial Q approximates."""
    if abs(r) < mp.mpf("1e-12"):
        return 1 + r / 2 + r**2 / 6
    return (mp.exp(r) - 1) / r


def test_exp64_lite_coefficients_regenerate():
    """exp64_lite's Q is what remez_weighted produces for the error of exp itself: e**r =
    1 + r Q(r) moves by r dQ, i.e. by r dQ / e**r relative (about a second)."""
    with mp.workdps(60):
        tiny = mp.mpf("1e-30")
        r_max = mp.log(2) / 2 + mp.mpf("1e-6")
        coeffs = remez_weighted(_exp_q, lambda r: (abs(r) + tiny) / mp.exp(r), -r_max, r_max, 6)
    assert [float(c) for c in coeffs] == [getattr(vmath, f"_EXPL_Q{j}") for j in range(7)]
