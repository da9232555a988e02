"""Vectorisable exp, log and log1p written in Numba.

Numba on our machines has no SVML, so ``math.exp``/``math.log`` in a loop compile to one scalar
libm call per element (0.3-0.5 G values/s).  The functions here are plain arithmetic instead:
range reduction, a minimax polynomial, and a power of two built from exponent bits.  Every special
case is a select (an ``if`` that only assigns), never an early return, so when a function is
inlined into a simple loop LLVM turns the whole body into packed AVX-512 / AVX2 code.

Functions: ``exp64_fma``, ``log64_fma``, ``log1p64_fma`` (float64), ``exp32_fma`` and
``log1p32_fma`` (float32 in float32 arithmetic, 16 lanes per zmm register), and ``exp64_lite``
(float64, x <= 0, to the 2**-34 a float32 result needs).  ``_math`` picks them by dtype.

Accuracy and determinism
------------------------
* Each function is a fixed sequence of IEEE-754 operations with an explicit fused multiply-add
  (``_simd.fma``: LLVM's ``llvm.fma``, one rounding, exactly IEEE fusedMultiplyAdd).  It is not
  the ``contract`` fast-math flag, which lets the compiler fuse or not as it likes: every
  ``fma`` is fused and no other operation is, so the results are the same bits on every machine
  and at every vector width.  With FMA hardware (x86-64 since Haswell / Zen, AArch64) each is one
  instruction; without it LLVM calls libm's ``fma``, exact but slow and scalar
  (``tests/test_vmath.py::test_fma_same_bits_without_fma_hardware``).
* Error below 1 ulp of the exact value for every function and every input, gradual underflow
  included (no flush to zero), i.e. at most one step from the correctly rounded result.  The
  large leading terms are added with error-free transformations (Fast2Sum), so what is rounded
  are terms below ~0.07 (exp) / ~0.02 (log).  Largest errors measured by ``tests/test_vmath.py``
  (float32: all 2**32 inputs under ``-m slow``; float64: ~15 million inputs per function,
  random bit patterns plus the hard regions):

  ===========  =====================================================
  exp32_fma    0.71 ulp; 0.78 ulp where the result is subnormal
  log1p32_fma  0.67 ulp
  exp64_fma    0.73 ulp; 0.79 ulp where the result is subnormal
  log64_fma    0.60 ulp
  log1p64_fma  0.59 ulp
  ===========  =====================================================

  exp's bound: 0.5 (final rounding) + ~0.1 (the rounding of r, through r^2 H) + ~0.05 (r * h)
  + 0.06 (the small sum) + 0.03-0.06 (the polynomial), about 0.75-0.8, reached only where all
  line up (|r| near ln2/2, the result just above 1/sqrt(2)).
* Special values follow C99 Annex F: ``exp(-inf) = 0``, ``exp(inf) = inf``, ``log(+-0) = -inf``,
  ``log(x < 0) = nan``, ``log(inf) = inf``, ``log1p(-1) = -inf``, ``log1p(x < -1) = nan``,
  ``log1p(-0) = -0``, and a NaN input comes back unchanged.

What FMA buys: Cody-Waite reduction with the full-precision ln 2 (``hi = fma(-k, ln2_hi, x)`` is
exact for every x in range and ``r = fma(-k, ln2_lo, hi)`` rounds once); exact products without
a Dekker split (``fma(a, b, -a*b)`` is the rounding error of ``a*b``); Horner steps that round
once; and exp's power of two from the bits of ``z = x/ln2 + 1.5*2**p`` (rounding to an integer by
adding a "shifter"), with no round and no float-to-int conversion.  log keeps fdlibm's
``s = f/(2+f)``: one division, but the divider works beside the FMA units (for float32 a
degree-8 polynomial in f without the division measured 10% slower; float64 would need ~22).

Inlining and compiler flags
---------------------------
The functions are ``@njit(inline="always")``: Numba inlines them into the caller at the Numba IR
level, so they are compiled with the *caller's* flags.  A caller compiled with fast-math flags
lets LLVM reassociate away the error-free transformations and fuse further multiply-adds
(``test_fma_fastmath_flags_report`` measures it): call them from kernels compiled without
fast-math flags.  Division is ``fdiv``, compiled on its own with NumPy's error model, so
the caller's ``error_model="python"`` cannot insert a zero-division branch that would stop the
loop from vectorising.

Polynomial coefficients
-----------------------
Generated with a Remez exchange in mpmath (60 digits), then rounded to the target precision; the
regeneration code is in ``tests/test_vmath.py`` (``remez``, ``remez_weighted``) and the slow
tests ``test_*coefficients_regenerate`` check that it reproduces the constants below.  The
algorithms (Cody-Waite reduction with a split ln 2; ``log(1+f) = f - hfsq + s*(hfsq + R(s^2))``
with ``s = f/(2+f)``) follow FreeBSD msun / fdlibm (``e_exp.c``, ``e_log.c``, ``s_log1p.c``; Sun
Microsystems licence, BSD-style: "Permission to use, copy, modify, and distribute this software
is freely granted, provided that this notice is preserved"); the ln 2 splits ``_LN2_HI``/``_LO``
are fdlibm's constants.  The polynomials and the compensated final sums are our own.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._simd import bits_to_float, clamp, float_to_bits, fma

__all__ = [
    "exp32_fma",
    "exp64_fma",
    "exp64_lite",
    "log1p32_fma",
    "log1p64_fma",
    "log64_fma",
]

_f32 = np.float32


@njit(cache=True, error_model="numpy")
def fdiv(a, b):
    """``a / b`` with no zero-division branch whatever the caller's error model (a branch would
    stop the loop around it from vectorising): a function of its own with NumPy's error model,
    which LLVM inlines as a bare ``fdiv``."""
    return a / b


# --------------------------------------------------------------------------------------------
# Bit-level steps: integer arithmetic on a float's bits, in the float's own width (Numba widens
# int32 arithmetic to int64; LLVM narrows it back, so float32 loops keep 16 lanes per register,
# checked by tests/test_vmath.py::test_fma_vectorises).  Each wraps where the integer width
# would, so the bits are those of the same operations on i32 / i64.
# --------------------------------------------------------------------------------------------

# (integer type, bias, mantissa bits, bits of about sqrt(2)/2, of the shifter 1.5 * 2**p, and
# of the reciprocal's magic constant), by float type
_LAYOUT = {
    types.float64: (
        np.int64,
        1023,
        52,
        0x3FE6A09E667F3BCD,
        0x4338000000000000,
        0x7FDE623822FC16E6,
    ),
    types.float32: (np.int32, 127, 23, 0x3F3504F3, 0x4B400000, 0x7EF311C3),
}


def _log_reduce(x):
    """(m, k): x = 2**k * m with m in [sqrt(2)/2, sqrt(2)) and k a float of x's type, for a
    positive normal finite x: subtracting the bits of (about) sqrt(2)/2 moves the exponent
    boundary there, and k is the difference shifted down."""


@overload(_log_reduce)
def _log_reduce_impl(x):
    if x not in _LAYOUT:
        return None
    ity, _, shift, sqrt_half, _, _ = _LAYOUT[x]
    fty = np.float64 if ity == np.int64 else np.float32

    def impl(x):
        bits = float_to_bits(x)
        k = ity(bits - sqrt_half) >> shift
        return bits_to_float(ity(bits - (k << shift))), fty(k)

    return impl


def _scale_shifted(y, z):
    """``y * 2**k`` where ``z = 1.5 * 2**52 + k`` (float32: ``1.5 * 2**23 + k``), |k| < 2**20.

    k (z's bits less the shifter's) goes in two halves: k >> 1 added to y's exponent field
    (exact while y and y * 2**(k >> 1) are normal, as here), then a multiplication by
    2**(k - (k >> 1)), normal for |k| <= 2 (bias - 1).  That one rounding takes a subnormal
    result through gradual underflow once and an overflow to inf, and a caller's fast-math
    flags cannot reassociate integer arithmetic into an overflowing 2**k1 * 2**k2.  A NaN y may
    come out as anything: the callers put NaN back with a select.
    """


@overload(_scale_shifted)
def _scale_shifted_impl(y, z):
    if y not in _LAYOUT or z != y:
        return None
    ity, bias, shift, _, shifter, _ = _LAYOUT[y]

    def impl(y, z):
        k = ity(float_to_bits(z) - shifter)
        k1 = ity(k >> 1)
        y1 = ity(float_to_bits(y) + ity(k1 << shift))
        s2 = ity(ity(k - k1 + bias) << shift)
        return bits_to_float(y1) * bits_to_float(s2)

    return impl


def _pow2_shifted(z):
    """``2**k`` where ``z = 1.5 * 2**52 + k`` (float32: ``1.5 * 2**23 + k``), k in the normal
    range: k sits in z's low bits, so ``(bits(z) + bias) << mantissa_bits`` (the shifter's own
    bits fall off the top) is the bit pattern of 2**k.  Two integer operations, no conversion."""


@overload(_pow2_shifted)
def _pow2_shifted_impl(z):
    if z not in _LAYOUT:
        return None
    ity, bias, shift, _, _, _ = _LAYOUT[z]
    return lambda z: bits_to_float(ity(ity(float_to_bits(z) + bias) << shift))


def _recip_approx(x):
    """1/x within 5.1% for a positive normal x (and 1/x normal): a magic constant less the bits
    of x (one integer subtraction)."""


@overload(_recip_approx)
def _recip_approx_impl(x):
    if x not in _LAYOUT:
        return None
    ity, _, _, _, _, magic = _LAYOUT[x]
    return lambda x: bits_to_float(ity(magic - float_to_bits(x)))


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

# fdlibm's split of ln 2 for log: the high part has 32 significant bits, so k * _LN2_HI is exact
# for |k| < 2**21.
_LN2_HI = float.fromhex("0x1.62e42feep-1")  # 6.93147180369123816490e-01
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # 1.90821492927058770002e-10

# log(1+f) = 2 atanh(s) = 2s + s z G(z), s = f/(2+f), z = s^2 <= 0.02944 (f in
# [sqrt(1/2)-1, sqrt(2)-1]); G minimax in relative error, Remez degree 7: 2**-58.2
# (2**-54 after rounding), which moves log(1+f) by at most 2**-60 relative.
_LOG64_G0 = float.fromhex("0x1.5555555555555p-1")
_LOG64_G1 = float.fromhex("0x1.9999999999a38p-2")
_LOG64_G2 = float.fromhex("0x1.2492492476b9cp-2")
_LOG64_G3 = float.fromhex("0x1.c71c720177650p-3")
_LOG64_G4 = float.fromhex("0x1.745cf8f90c7acp-3")
_LOG64_G5 = float.fromhex("0x1.3b1c37987e8e8p-3")
_LOG64_G6 = float.fromhex("0x1.0fbe5e64992aep-3")
_LOG64_G7 = float.fromhex("0x1.0c05b6f3c5856p-3")

_DBL_MIN = float.fromhex("0x1p-1022")  # smallest normal float64
_TWO54 = float.fromhex("0x1p54")  # scales a subnormal to a normal number exactly

# float32: every constant is a np.float32 so that Numba types the arithmetic as float32 (a
# Python float literal would promote the whole expression to float64).
# fdlibm's e_logf.c split: high part 0x3f317200 has 15 significant bits, so k * _LN2_HI_32 is
# exact for |k| < 2**9.
_LN2_HI_32 = _f32(float.fromhex("0x1.62e4p-1"))  # 6.9314575195e-01
_LN2_LO_32 = _f32(float.fromhex("0x1.7f7d1cp-20"))  # 1.4286067653e-06

# log: degree 3, relative error 2**-29.1 (2**-24.9 after rounding): moves log by 2**-31.5.
_LOG32_G0 = _f32(float.fromhex("0x1.555556p-1"))
_LOG32_G1 = _f32(float.fromhex("0x1.9999ecp-2"))
_LOG32_G2 = _f32(float.fromhex("0x1.245c34p-2"))
_LOG32_G3 = _f32(float.fromhex("0x1.ddd19cp-3"))

_ZERO32 = _f32(0.0)
_HALF32 = _f32(0.5)
_ONE32 = _f32(1.0)
_TWO32 = _f32(2.0)
_INF32 = _f32(np.inf)
_NAN32 = _f32(np.nan)
_M120_32 = _f32(-120.0)  # exp32's clamp
_P89_32 = _f32(89.0)

# ln 2 = -(_NLN2F_HI + _NLN2F_LO) to 2**-109 relative (float64) / 2**-52 (float32), the high
# part ln 2 rounded.  With FMA it can keep all its bits: x - k ln2_hi is a multiple of
# min(ulp(x), ulp(ln2_hi)) and below ln2/2 + tiny in magnitude, hence representable, and
# fma(-k, ln2_hi, x) returns it exactly.  (Negated: each is one fma, no separate negation.)
_SHIFTER64 = float.fromhex("0x1.8p52")
_INV_LN2_F64 = float.fromhex("0x1.71547652b82fep0")
_NLN2F_HI = -float.fromhex("0x1.62e42fefa39efp-1")
_NLN2F_LO = -float.fromhex("0x1.abc9e3b39803fp-56")
_SHIFTER32 = _f32(float.fromhex("0x1.8p23"))
_INV_LN2_F32 = _f32(float.fromhex("0x1.715476p0"))
_NLN2F_HI_32 = _f32(-float.fromhex("0x1.62e430p-1"))
_NLN2F_LO_32 = _f32(float.fromhex("0x1.05c610p-29"))  # ln2 - ln2_hi is negative

# exp(r) = 1 + r + r^2 H(r), |r| <= ln2/2 (+1e-6): H minimax for the error of exp itself,
# weight (r^2 + 0.02^2)/e^r in a Remez exchange (tests/test_vmath.py::remez_weighted):
# 2**-57.9 relative to exp (before rounding the coefficients).
_EXP64_H0 = float.fromhex("0x1.0000000000009p-1")
_EXP64_H1 = float.fromhex("0x1.55555555554fbp-3")
_EXP64_H2 = float.fromhex("0x1.55555555509c2p-5")
_EXP64_H3 = float.fromhex("0x1.1111111127a66p-7")
_EXP64_H4 = float.fromhex("0x1.6c16c183eecb5p-10")
_EXP64_H5 = float.fromhex("0x1.a01a012a6bce0p-13")
_EXP64_H6 = float.fromhex("0x1.a0199a9815249p-16")
_EXP64_H7 = float.fromhex("0x1.71df25d9f1a12p-19")
_EXP64_H8 = float.fromhex("0x1.28acff7ad9b81p-22")
_EXP64_H9 = float.fromhex("0x1.ad7dbad8e1244p-26")
# float32, |r| <= ln2/2 (+1e-5), degree 4: 2**-28.2 relative to exp
_EXP32_H0 = _f32(float.fromhex("0x1.fffffcp-2"))
_EXP32_H1 = _f32(float.fromhex("0x1.555492p-3"))
_EXP32_H2 = _f32(float.fromhex("0x1.5558eep-5"))
_EXP32_H3 = _f32(float.fromhex("0x1.12399cp-7"))
_EXP32_H4 = _f32(float.fromhex("0x1.6a2544p-10"))

# exp64_lite: e**r = 1 + r Q(r), |r| <= ln2/2 (+1e-6), Q of degree 6 minimax for the error of
# exp itself (tests/test_vmath.py::remez_weighted, w = |r| / e**r; regenerated by
# test_exp64_lite_coefficients_regenerate): 2**-34.3 relative with the coefficients rounded.
_EXPL_Q0 = float.fromhex("0x1.00000000e55b5p+0")
_EXPL_Q1 = float.fromhex("0x1.0000004244e45p-1")
_EXPL_Q2 = float.fromhex("0x1.55555350f2363p-3")
_EXPL_Q3 = float.fromhex("0x1.555481bdfc03ep-5")
_EXPL_Q4 = float.fromhex("0x1.11130af0d86a2p-7")
_EXPL_Q5 = float.fromhex("0x1.6d955676a76a1p-10")
_EXPL_Q6 = float.fromhex("0x1.9e8ee1ebaa6e0p-13")
_NLN2_F64 = -float.fromhex("0x1.62e42fefa39efp-1")  # -ln 2, rounded
_EXPL_MIN = -708.39  # e**x >= 2**-1022 (normal) above it: k >= -1022

_TWO_M54 = float.fromhex("0x1p-54")  # below this, log1p(x) rounds to x
_TWO_P1000 = float.fromhex("0x1p1000")
_TWO_M25_32 = _f32(float.fromhex("0x1p-25"))
_TWO_P100_32 = _f32(float.fromhex("0x1p100"))
_MHALF32 = _f32(-0.5)


# ---------------------------------------------------------------------------------- exp


@njit(inline="always", cache=True)
def horner(x, coefficients):
    """The polynomial with ``coefficients`` (highest degree first) at ``x``: Horner's rule
    with one FMA a step (LLVM unrolls the fixed count: the same operations as written out)."""
    acc = coefficients[0]
    for k in range(1, len(coefficients)):
        acc = fma(acc, x, coefficients[k])
    return acc


@njit(inline="always", cache=True)
def _exp_h64(r):
    """H(r) with exp(r) = 1 + r + r^2 H(r): Horner with FMA."""
    h = horner(
        r,
        (
            _EXP64_H9,
            _EXP64_H8,
            _EXP64_H7,
            _EXP64_H6,
            _EXP64_H5,
            _EXP64_H4,
            _EXP64_H3,
            _EXP64_H2,
            _EXP64_H1,
        ),
    )
    return fma(h, r, _EXP64_H0)


@njit(inline="always", cache=True)
def exp64_fma(x):
    """e**x for float64 x with explicit FMA; below 1 ulp including gradual underflow."""
    # k in [-1155, 1024]: exp(-800) underflows, exp(710) overflows.  NaN lands on -800 (and
    # is put back at the end).
    xc = clamp(x, -800.0, 710.0)
    z = fma(xc, _INV_LN2_F64, _SHIFTER64)  # 1.5*2**52 + k, k = x/ln2 rounded to an integer
    kf = z - _SHIFTER64
    hi = fma(kf, _NLN2F_HI, xc)  # exact: x = k ln2_hi + hi
    r = fma(kf, _NLN2F_LO, hi)  # the reduced argument, rounded once; |r| <= ln2/2
    h = _exp_h64(r)
    # exp(r) = 1 + hi - k ln2_lo + r^2 H(r).  Fast2Sum (|1| >= |hi|): s + (1 - s) + hi is
    # exactly 1 + hi; only terms below 0.07 are rounded.  r * h rather than r * r keeps the
    # product normal down to |x| ~ 2**-1021.
    s = 1.0 + hi
    e1 = fma(kf, _NLN2F_LO, (1.0 - s) + hi)
    y = _scale_shifted(s + fma(r, r * h, e1), z)
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def exp64_lite(x):
    """e**x for float64 x <= 0 (or NaN) to a relative error below 2**-34 (2**-10 of a float32
    ulp), and 0 below -708.39 where e**x leaves the normal range: the exps of a float32 row's
    ``x - m`` (exact in float64), which end in float32 results. e**0 is exactly 1, e**-inf
    exactly 0 and a NaN comes back NaN.

    Against ``exp64_fma``: one reduction step with ln 2 rounded (k ln 2 is off by at most
    1022 * 2**-54, a relative error of e**x below 2**-43), a degree-7 polynomial without the
    compensated head, 2**k from the shifter's bits (the result is normal, so no two-step
    scaling), and one comparison for both ends: about 16 vector operations instead of 30. A
    term below 2**-1022 next to a row maximum's 1 is invisible in any float32 result (the
    only trace of the flush: ``log_softmax`` of the maximum of such a row is +0.0 where
    rounding the exact value gives -0.0). A positive x is not supported (callers pass
    differences to a row's maximum).
    """
    low = x < _EXPL_MIN  # False for NaN, which flows through the arithmetic to the end
    xc = _EXPL_MIN if low else x
    z = fma(xc, _INV_LN2_F64, _SHIFTER64)
    kf = z - _SHIFTER64
    r = fma(kf, _NLN2_F64, xc)
    q = horner(r, (_EXPL_Q6, _EXPL_Q5, _EXPL_Q4, _EXPL_Q3, _EXPL_Q2, _EXPL_Q1, _EXPL_Q0))
    y = fma(r, q, 1.0) * _pow2_shifted(z)
    return 0.0 if low else y


@njit(inline="always", cache=True)
def exp32_fma(x):
    """e**x for float32 x in float32 arithmetic with explicit FMA; below 1 ulp, gradual
    underflow included."""
    # k in [-173, 128]: exp(-120) underflows, exp(89) overflows; NaN lands on -120
    xc = clamp(x, _M120_32, _P89_32)
    z = fma(xc, _INV_LN2_F32, _SHIFTER32)
    kf = z - _SHIFTER32
    hi = fma(kf, _NLN2F_HI_32, xc)
    r = fma(kf, _NLN2F_LO_32, hi)
    h = horner(r, (_EXP32_H4, _EXP32_H3, _EXP32_H2, _EXP32_H1, _EXP32_H0))
    s = _ONE32 + hi
    e1 = fma(kf, _NLN2F_LO_32, (_ONE32 - s) + hi)
    y = _scale_shifted(s + fma(r, r * h, e1), z)
    if x != x:
        y = x
    return y


# ---------------------------------------------------------------------------------- log
#
# log(1+f) = f - f^2/2 + s (f^2/2 + z G(z)), s = f/(2+f), z = s^2 (fdlibm; the polynomials G
# above).  With FMA: f^2 = f2 + f2l exactly, and
#     k ln2 + log(1+f) = [(k ln2_hi + f) - f2/2] + [k ln2_lo - f2l/2 + s (f2/2 + z G)]
# where the first bracket is summed exactly (two Fast2Sums) and the second is below 0.02.


@njit(inline="always", cache=True)
def _log_fma_core64(kf, f, extra):
    """k ln2 + log(1 + f) + extra for f in [sqrt(1/2)-1, sqrt(2)-1] and a tiny extra."""
    s = fdiv(f, 2.0 + f)
    z = s * s
    g = horner(
        z, (_LOG64_G7, _LOG64_G6, _LOG64_G5, _LOG64_G4, _LOG64_G3, _LOG64_G2, _LOG64_G1, _LOG64_G0)
    )
    f2 = f * f
    f2l = fma(f, f, -f2)
    hf = 0.5 * f2
    hk = kf * _LN2_HI  # exact: ln2_hi has 32 significant bits
    # Fast2Sum twice: |hk| >= 0.69 > |f| unless k == 0; |t| > 0.27 > hf, or t == f, |f| > hf
    t = hk + f
    et = (hk - t) + f
    t2 = t - hf
    et2 = (t - t2) - hf
    c = fma(kf, _LN2_LO, (et + et2) + extra)
    c = fma(-0.5, f2l, c)
    c = fma(s, fma(z, g, hf), c)
    return t2 + c


@njit(inline="always", cache=True)
def _log_fma_core32(kf, f, extra):
    """float32 _log_fma_core64 (same identities, the float32 G)."""
    s = fdiv(f, _TWO32 + f)
    z = s * s
    g = horner(z, (_LOG32_G3, _LOG32_G2, _LOG32_G1, _LOG32_G0))
    f2 = f * f
    f2l = fma(f, f, -f2)
    hf = _HALF32 * f2
    hk = kf * _LN2_HI_32  # exact: 15 significant bits times |k| < 2**9
    t = hk + f
    et = (hk - t) + f
    t2 = t - hf
    et2 = (t - t2) - hf
    c = fma(kf, _LN2_LO_32, (et + et2) + extra)
    c = fma(_MHALF32, f2l, c)
    c = fma(s, fma(z, g, hf), c)
    return t2 + c


@njit(inline="always", cache=True)
def log64_fma(x):
    """Natural log of float64 x with explicit FMA; below 1 ulp, subnormals normalised."""
    # |x|: a negative x goes through the arithmetic as a harmless positive number (the
    # result is set to NaN below); zero and subnormals are scaled by 2**54 (zero stays zero,
    # which the bit reduction turns into m = 1: no garbage, no subnormal intermediate).
    ax = abs(x)
    tiny = ax < _DBL_MIN
    xs = ax * _TWO54 if tiny else ax
    m, kf = _log_reduce(xs)
    kf = kf - 54.0 if tiny else kf
    y = _log_fma_core64(kf, m - 1.0, -0.0)  # m - 1 is exact; + (-0.0) folds away
    if x < 0.0:
        y = np.nan
    if x == 0.0:
        y = -np.inf
    if not (x < np.inf):
        y = x  # +inf, and NaN unchanged
    return y


@njit(inline="always", cache=True)
def log1p64_fma(x):
    """log(1 + x) for float64 x with explicit FMA, accurate for tiny x; below 1 ulp."""
    # u = 2**k m, m in [sqrt(1/2), sqrt(2)), and log(1+x) = k ln2 + log(1 + f).
    # k == 0: f = x exactly.  k != 0 (|x| > 0.29): f = m - 1, and c = 1 + x - u (exact,
    # Fast2Sum with the operands ordered by max/min) adds log(1 + c/u) = c/u: |c/u| is at
    # most 1.7 ulp of the result, so 1/u within 5.1% (_recip_approx) leaves < 0.09 ulp.
    # |x| < 2**-54 rounds to x (also -0); f = 0 there, keeping f^2 from going subnormal.
    u = 1.0 + x
    a = x if x > 1.0 else 1.0
    b = 1.0 if x > 1.0 else x
    c = (a - u) + b
    au = abs(u)  # x < -1: a harmless positive number (NaN is set below)
    m, kf = _log_reduce(au)
    k0 = kf == 0.0
    tiny = abs(x) < _TWO_M54
    f = x if k0 else m - 1.0
    if tiny:
        f = 0.0
    c = 0.0 if k0 else c
    ru = _recip_approx(au if au < _TWO_P1000 else _TWO_P1000)  # keeps 1/u normal
    y = _log_fma_core64(kf, f, c * ru)
    if tiny:
        y = x
    if x == -1.0:
        y = -np.inf
    if x < -1.0:
        y = np.nan
    if not (x < np.inf):
        y = x
    return y


@njit(inline="always", cache=True)
def log1p32_fma(x):
    """log(1 + x) for float32 x in float32 arithmetic with explicit FMA; below 1 ulp."""
    u = _ONE32 + x
    a = x if x > _ONE32 else _ONE32
    b = _ONE32 if x > _ONE32 else x
    c = (a - u) + b
    au = abs(u)
    m, kf = _log_reduce(au)
    k0 = kf == _ZERO32
    tiny = abs(x) < _TWO_M25_32
    f = x if k0 else m - _ONE32
    if tiny:
        f = _ZERO32
    c = _ZERO32 if k0 else c
    ru = _recip_approx(au if au < _TWO_P100_32 else _TWO_P100_32)
    y = _log_fma_core32(kf, f, c * ru)
    if tiny:
        y = x
    if x == -_ONE32:
        y = -_INF32
    if x < -_ONE32:
        y = _NAN32
    if not (x < _INF32):
        y = x
    return y
