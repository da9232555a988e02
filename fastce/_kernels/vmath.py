"""Vectorisable exp, log, log1p and expm1 written in Numba.

Numba on our machines has no SVML, so ``math.exp``/``math.log`` in a loop compile to one scalar
libm call per element (0.3-0.5 G values/s).  The functions here are plain arithmetic instead:
range reduction, a minimax polynomial, and a power of two built from exponent bits.  Every special
case is a select (an ``if`` that only assigns), never an early return, so when a function is
inlined into a simple loop LLVM turns the whole body into packed AVX-512 / AVX2 code.

Each function also comes as an FMA variant (``exp32_fma``, ``log32_fma``, ``log1p32_fma``,
``exp64_fma``, ``log64_fma``, ``log1p64_fma``, ``expm1_64_fma``): same interface, same specials,
also below 1 ulp, built on an explicit fused multiply-add (IEEE fusedMultiplyAdd, one rounding,
so still the same bits everywhere) and 1.3-2x faster.  See "FMA variants" further down.

Accuracy and determinism
------------------------
* No fast-math flag and no FMA: each function is a fixed sequence of IEEE-754 operations, so it
  gives the same bits on any x86-64 machine and for any vector width (scalar, ymm or zmm).  The
  functions are accurate without a fused multiply-add: the large leading terms are added with
  error-free transformations (Fast2Sum / TwoSum, a Dekker split for exact squares).
* Error below 1 ulp of the exact value for every function and every input, gradual underflow
  included (no flush to zero), i.e. at most one step from the correctly rounded result.
  Largest errors measured by ``tests/test_vmath.py`` (float32: all 2**32 inputs; float64:
  ~15 million inputs per function, random bit patterns plus the hard regions):

  =========  ========================================================================
  exp64      0.67 ulp; 0.78 ulp where the result is subnormal (rounded twice)
  log64      0.62 ulp (subnormal inputs are normalised first)
  log1p64    0.61 ulp
  expm1_64   0.57 ulp
  exp32      0.68 ulp; 0.76 ulp where the result is subnormal
  log32      0.66 ulp
  log1p32    0.68 ulp
  =========  ========================================================================
* Special values follow C99 Annex F: ``exp(-inf) = 0``, ``exp(inf) = inf``, ``log(+-0) = -inf``,
  ``log(x < 0) = nan``, ``log(inf) = inf``, ``log1p(-1) = -inf``, ``log1p(x < -1) = nan``,
  ``log1p(-0) = expm1(-0) = -0``, and a NaN input comes back unchanged.

Inlining and compiler flags
---------------------------
The functions are ``@njit(inline="always")``: Numba inlines them into the caller at the Numba IR
level, so they are compiled with the *caller's* flags.  A caller compiled with fast-math flags
lets LLVM reassociate away the error-free transformations (``(1 - s) + hi`` folds to 0) and
fuse multiply-adds: with ``{"reassoc", "contract", "arcp", "nsz", "afn"}`` exp and log stay
within 2 ulp, but log1p and expm1 lose their small-argument accuracy entirely (errors of 10**7
ulp and more) and the bits depend on the machine (``test_fastmath_flags_report`` measures this).
Call them from kernels compiled without fast-math flags.  Division goes through an intrinsic that
emits a bare ``fdiv``, so the caller's ``error_model="python"`` cannot insert a zero-division
branch that would stop the loop from vectorising.

Numba's on-disk cache records only the file of the function it compiled: a kernel with
``cache=True`` that inlines these functions does NOT notice an edit to this module.  Clear the
kernel's cache (``__pycache__/*.nbi``/``*.nbc``) when this file changes.

Polynomial coefficients
-----------------------
Generated for this module with a Remez exchange in mpmath (60 digits) minimising the relative
error of the polynomial, then rounded to the target precision.  The regeneration code is
``tests/test_vmath.py::remez`` and the slow test ``test_coefficients_regenerate`` checks that it
reproduces the constants below.  The algorithms (Cody-Waite reduction with a split ln 2;
``log(1+f) = f - hfsq + s*(hfsq + R(s^2))`` with ``s = f/(2+f)``; splitting ln 2 with trailing
zeros in the high part) follow FreeBSD msun / fdlibm (``e_exp.c``, ``e_log.c``, ``s_log1p.c``;
Sun Microsystems licence, BSD-style: "Permission to use, copy, modify, and distribute this
software is freely granted, provided that this notice is preserved"); the ln 2 splits are
fdlibm's constants.  The polynomials and the compensated final sums are our own.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "exp32",
    "exp32_fma",
    "exp64",
    "exp64_fma",
    "exp64_lite",
    "expm1_64",
    "expm1_64_fma",
    "log1p32",
    "log1p32_fma",
    "log1p64",
    "log1p64_fma",
    "log32",
    "log32_fma",
    "log64",
    "log64_fma",
]

_f32 = np.float32

# --------------------------------------------------------------------------------------------
# Intrinsics: bit-level operations that nopython mode cannot express on scalars (no ``.view``),
# and a bare division.  Each one is a handful of LLVM instructions, so it vectorises.
# --------------------------------------------------------------------------------------------


def _int_type(fltype):
    return ir.IntType(64) if fltype == types.float64 else ir.IntType(32)


@intrinsic
def float_to_bits(typingctx, x):
    """Reinterpret a float64 as int64 (float32 as int32): LLVM ``bitcast``."""
    if x == types.float64:
        sig = types.int64(types.float64)
    elif x == types.float32:
        sig = types.int32(types.float32)
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _int_type(signature.args[0]))

    return sig, codegen


@intrinsic
def bits_to_float(typingctx, i):
    """Reinterpret an int64 as float64 (int32 as float32): LLVM ``bitcast``."""
    if i == types.int64:
        sig = types.float64(types.int64)
        lltype = ir.DoubleType()
    elif i == types.int32:
        sig = types.float32(types.int32)
        lltype = ir.FloatType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], lltype)

    return sig, codegen


@intrinsic
def _fdiv(typingctx, a, b):
    """``a / b`` as a bare IEEE ``fdiv``: no zero-division check, whatever the error model."""
    if a in (types.float32, types.float64) and b == a:

        def codegen(context, builder, signature, args):
            return builder.fdiv(args[0], args[1])

        return a(a, b), codegen
    return None


@intrinsic
def _pow2(typingctx, k):
    """``2**k`` for an integer-valued float ``k`` in the normal exponent range.

    Built from exponent bits, ``bitcast((int(k) + bias) << mantissa_bits)``, all in the float's
    own integer width (i32 for float32) so float32 code keeps 16 lanes per zmm register.
    """
    if k not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, bias, shift, fty = ir.IntType(64), 1023, 52, ir.DoubleType()
        else:
            ity, bias, shift, fty = ir.IntType(32), 127, 23, ir.FloatType()
        ki = builder.fptosi(args[0], ity)
        e = builder.shl(builder.add(ki, ir.Constant(ity, bias)), ir.Constant(ity, shift))
        return builder.bitcast(e, fty)

    return k(k), codegen


@intrinsic
def _split_high(typingctx, x):
    """x with the low half of its significand cleared (26 significant bits for float64, 12 for
    float32), so that ``_split_high(x) ** 2`` is exact: Dekker's split, done on the bits
    because without FMA an exact square needs it."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, mask = ir.IntType(64), -(1 << 27)
        else:
            ity, mask = ir.IntType(32), -(1 << 12)
        ix = builder.bitcast(args[0], ity)
        return builder.bitcast(builder.and_(ix, ir.Constant(ity, mask)), args[0].type)

    return x(x), codegen


@intrinsic
def _add_exponent(typingctx, y, k):
    """y * 2**k by adding k to y's exponent field (integer-valued float k of y's type).

    Exact when the result is normal; the caller keeps it so.  Integer arithmetic, so unlike
    two float multiplications it cannot be reassociated by a caller's fast-math flags.
    """
    if y not in (types.float32, types.float64) or k != y:
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, shift = ir.IntType(64), 52
        else:
            ity, shift = ir.IntType(32), 23
        iy = builder.bitcast(args[0], ity)
        ik = builder.shl(builder.fptosi(args[1], ity), ir.Constant(ity, shift))
        return builder.bitcast(builder.add(iy, ik), args[0].type)

    return y(y, k), codegen


# log's reduction x = 2**k * m with m in [sqrt(2)/2, sqrt(2)): subtracting the bits of
# (about) sqrt(2)/2 moves the exponent boundary there; k is the shifted-down difference.
_SQRT_HALF_BITS64 = 0x3FE6A09E667F3BCD
_SQRT_HALF_BITS32 = 0x3F3504F3


def _reduce_params(fltype):
    if fltype == types.float64:
        return ir.IntType(64), _SQRT_HALF_BITS64, 52, ir.DoubleType()
    return ir.IntType(32), _SQRT_HALF_BITS32, 23, ir.FloatType()


@intrinsic
def _log_mantissa(typingctx, x):
    """m with x = 2**k * m, m in [sqrt(2)/2, sqrt(2)), for positive normal finite x."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ity, off, shift, fty = _reduce_params(signature.args[0])
        ix = builder.bitcast(args[0], ity)
        k = builder.ashr(builder.sub(ix, ir.Constant(ity, off)), ir.Constant(ity, shift))
        return builder.bitcast(builder.sub(ix, builder.shl(k, ir.Constant(ity, shift))), fty)

    return x(x), codegen


@intrinsic
def _log_exponent(typingctx, x):
    """k (as a float of x's type) with x = 2**k * m, m in [sqrt(2)/2, sqrt(2))."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ity, off, shift, fty = _reduce_params(signature.args[0])
        ix = builder.bitcast(args[0], ity)
        k = builder.ashr(builder.sub(ix, ir.Constant(ity, off)), ir.Constant(ity, shift))
        return builder.sitofp(k, fty)

    return x(x), codegen


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

_INV_LN2 = 1.4426950408889634  # 1/ln 2 rounded; k only needs to be near x/ln 2
# fdlibm's split of ln 2: the high part has 32 significant bits, so k * _LN2_HI is exact for
# |k| < 2**21 and x - k * _LN2_HI is exact (Cody-Waite).
_LN2_HI = float.fromhex("0x1.62e42feep-1")  # 6.93147180369123816490e-01
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # 1.90821492927058770002e-10

# exp(r) = 1 + r + r^2/2 + r^3 P(r) for |r| <= ln2/2 (+1e-6); P minimax in relative error,
# Remez degree 9: |P/P* - 1| <= 2**-54.2 (2**-53 after rounding the leading coefficient), which
# moves exp by at most 2**-60 relative.
_EXP64_P0 = float.fromhex("0x1.5555555555556p-3")
_EXP64_P1 = float.fromhex("0x1.5555555555554p-5")
_EXP64_P2 = float.fromhex("0x1.11111111109b9p-7")
_EXP64_P3 = float.fromhex("0x1.6c16c16c1811ap-10")
_EXP64_P4 = float.fromhex("0x1.a01a01a7c016dp-13")
_EXP64_P5 = float.fromhex("0x1.a01a0198a9380p-16")
_EXP64_P6 = float.fromhex("0x1.71de0dbc6e425p-19")
_EXP64_P7 = float.fromhex("0x1.27e502c571db2p-22")
_EXP64_P8 = float.fromhex("0x1.af388b24f839fp-26")
_EXP64_P9 = float.fromhex("0x1.1f2a23437d736p-29")

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
_TWO_M200 = float.fromhex("0x1p-200")
_TWO54 = float.fromhex("0x1p54")  # scales a subnormal to a normal number exactly

# float32: every constant is a np.float32 so that Numba types the arithmetic as float32 (a
# Python float literal would promote the whole expression to float64).
_INV_LN2_32 = _f32(1.4426950408889634)
# fdlibm's e_expf.c / e_logf.c split: high part 0x3f317200 has 15 significant bits, so
# k * _LN2_HI_32 is exact for |k| < 2**9.
_LN2_HI_32 = _f32(float.fromhex("0x1.62e4p-1"))  # 6.9314575195e-01
_LN2_LO_32 = _f32(float.fromhex("0x1.7f7d1cp-20"))  # 1.4286067653e-06

# exp: degree 4, relative error 2**-24.4 (2**-23.6 after rounding): moves exp by 2**-30.7.
_EXP32_P0 = _f32(float.fromhex("0x1.555556p-3"))
_EXP32_P1 = _f32(float.fromhex("0x1.55551ap-5"))
_EXP32_P2 = _f32(float.fromhex("0x1.11112cp-7"))
_EXP32_P3 = _f32(float.fromhex("0x1.6d10d8p-10"))
_EXP32_P4 = _f32(float.fromhex("0x1.a08908p-13"))

# log: degree 3, relative error 2**-29.1 (2**-24.9 after rounding): moves log by 2**-31.5.
_LOG32_G0 = _f32(float.fromhex("0x1.555556p-1"))
_LOG32_G1 = _f32(float.fromhex("0x1.9999ecp-2"))
_LOG32_G2 = _f32(float.fromhex("0x1.245c34p-2"))
_LOG32_G3 = _f32(float.fromhex("0x1.ddd19cp-3"))

_FLT_MIN = _f32(float.fromhex("0x1p-126"))  # smallest normal float32
_TWO25_32 = _f32(float.fromhex("0x1p25"))  # scales a subnormal to a normal number exactly
_M25_32 = _f32(-25.0)
_ZERO32 = _f32(0.0)
_HALF32 = _f32(0.5)
_ONE32 = _f32(1.0)
_TWO32 = _f32(2.0)
_INF32 = _f32(np.inf)
_NAN32 = _f32(np.nan)
_M120_32 = _f32(-120.0)  # exp32's clamp
_P89_32 = _f32(89.0)
_M125_32 = _f32(-125.0)  # k below which exp32 may be subnormal
_P64_32 = _f32(64.0)
_TWO_M64_32 = _f32(float.fromhex("0x1p-64"))

# log1p's series for tiny x: x - x^2/2 + x^3/3
_TWO_M26 = float.fromhex("0x1p-26")
_THIRD = 1.0 / 3.0
_TWO_M12_32 = _f32(float.fromhex("0x1p-12"))
_THIRD32 = _f32(1.0 / 3.0)

# --------------------------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------------------------
#
# Error budget without FMA.  In a plain "1 + r + r^2 q(r)" the rounding errors of r, of r^2
# and of the partial sums add up to ~0.15-0.35 ulp on top of the final rounding.  For exp that
# is fine (measured max 0.68 ulp, bound ~0.85), and exp is the function the kernels call most,
# so it stays plain: only 1 + hi is summed exactly.  expm1 (the result can be 0.3 where the
# terms are 1 and -0.7: 1.01 ulp measured) and log (0.89 ulp) need more: there every term
# larger than 2**-8 is kept exact: x - k ln2_hi (Cody-Waite), r^2/2 and f^2/2 via a Dekker
# split of r or f, and the big partial sums via Fast2Sum/TwoSum.  What is left rounded are
# terms below ~0.02, whose errors stay below ~0.1 ulp; the result carries one final rounding
# plus that (measured max 0.57-0.62 ulp).  This costs ~15 operations of ~55.


@njit(inline="always", cache=True)
def _exp_p64(r):
    """P(r) with exp(r) = 1 + r + r^2/2 + r^3 P(r), |r| <= ln2/2: Horner (the evaluation order
    with the smallest rounding error without FMA)."""
    p = _EXP64_P8 + r * _EXP64_P9
    p = _EXP64_P7 + r * p
    p = _EXP64_P6 + r * p
    p = _EXP64_P5 + r * p
    p = _EXP64_P4 + r * p
    p = _EXP64_P3 + r * p
    p = _EXP64_P2 + r * p
    p = _EXP64_P1 + r * p
    return _EXP64_P0 + r * p


@njit(inline="always", cache=True)
def _exp_reduce64(xc):
    """Split exp(xc) = 2**k (1 + hi + h2 + small), |hi| <= ln2/2, h2 = hi_r^2/2 exact.

    Returns (k as float, hi, h2, small); small (|small| < 0.01) carries the rest: the r^3
    polynomial, -lo, and the rounding errors of r and of r's split.
    """
    kf = np.rint(xc * _INV_LN2)
    hi = xc - kf * _LN2_HI  # exact (Cody-Waite)
    lo = kf * _LN2_LO
    r = hi - lo
    dr = (hi - r) - lo  # r + dr == hi - lo (to ~2**-106 when |hi| < |lo|, where it is moot)
    rh = _split_high(r)
    rl = r - rh
    h2 = 0.5 * (rh * rh)  # exact: rh has 26 significant bits
    p = _exp_p64(r)
    # (r + dr)^2 / 2 = h2 + rl (r + rh) / 2 + r dr + O(dr^2)
    small = ((rl * (0.5 * (r + rh)) + r * dr) + (r * r) * (r * p)) - lo
    return kf, hi, h2, small


@njit(inline="always", cache=True)
def exp64(x):
    """e**x for float64 x; below 1 ulp including gradual underflow; no fast-math."""
    # Clamp so that k stays in [-1154, 1024]; exp(-800) underflows, exp(710) overflows.  NaN
    # fails both comparisons and lands on -800; the last select puts it back.
    xc = x if x > -800.0 else -800.0
    xc = xc if xc < 710.0 else 710.0
    # x = k ln2 + r, |r| <= ln2/2.  hi is exact (Cody-Waite); r = hi - lo is rounded, but r
    # only feeds the small nonlinear part: the linear part uses hi and lo separately.
    kf = np.rint(xc * _INV_LN2)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    q = (r * r) * (0.5 + r * _exp_p64(r))
    # exp(r) = 1 + hi - lo + q.  Fast2Sum (|1| >= |hi|): s + e1 == 1 + hi exactly.
    s = 1.0 + hi
    e1 = (1.0 - s) + hi
    y = s + (e1 + (q - lo))
    # times 2**k, y in [0.7, 1.5]: add k to the exponent field (integer arithmetic, exact for a
    # normal result, and out of reach of a caller's fast-math reassociation) and multiply by a
    # power of two that is 1 in the normal range; 2 for k > 0, so that k = 1024 overflows to
    # inf in the multiplication rather than running out of the exponent field; 2**-200 for a
    # possibly subnormal result (k <= -1022), whose bits stay normal until that last rounding.
    # The subnormal result is thus rounded twice (53 bits, then the subnormal grid): below
    # 0.5 + 0.85 * 2**(p - 53) ulp for a result with p significant bits, at most 0.93 ulp.
    up = kf > 0.0
    sub = kf < -1021.0
    kn = kf - 1.0 if up else kf
    kn = kn + 200.0 if sub else kn
    y = _add_exponent(y, kn) * (2.0 if up else (_TWO_M200 if sub else 1.0))
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def expm1_64(x):
    """e**x - 1 for float64 x, accurate for tiny x; below 1 ulp; no fast-math."""
    # Below -60, e**x < 2**-86 and the result rounds to -1; above 710 it overflows.  NaN
    # lands on -60 (fixed below).
    xc = x if x > -60.0 else -60.0
    xc = xc if xc < 710.0 else 710.0
    kf, hi, h2, small = _exp_reduce64(xc)
    # e**x - 1 = 2**k ((1 - 2**-k) + hi + h2 + small), summed in units of 2**k so that nothing
    # overflows before the final exponent add.  For k >= 1000, 2**-k < 2**-1000 is negligible.
    mone = _pow2(-kf if kf < 1000.0 else -1000.0)  # 2**-k
    # a + ea == 1 - 2**-k exactly (TwoSum; a is inexact for |k| > 53).
    a = 1.0 - mone
    bv = a - 1.0
    ea = (1.0 - (a - bv)) + (-mone - bv)
    # Fast2Sum: |a| >= 1/2 > |hi| when k != 0, and a == 0 when k == 0; then |sab| > h2 in
    # every case.
    sab = a + hi
    eab = (a - sab) + hi
    s2 = sab + h2
    e2 = (sab - s2) + h2
    y = s2 + (((ea + eab) + e2) + small)
    # times 2**k (see exp64); for k == 0 the bits are unchanged, subnormal or not
    up = kf > 0.0
    y = _add_exponent(y, kf - 1.0 if up else kf) * (2.0 if up else 1.0)
    if x == 0.0:
        y = x  # keeps the sign of -0
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def _log_core64(kf, f, extra):
    """k ln2 + log(1 + f) + extra for f in [sqrt(1/2)-1, sqrt(2)-1] and a tiny extra.

    log(1+f) = f - f^2/2 + s (f^2/2 + R), s = f/(2+f), R = z G(z), z = s^2 (fdlibm).  k ln2_hi,
    f and the exact half of f^2/2 are summed without error; the rest is below 0.02.
    """
    s = _fdiv(f, 2.0 + f)
    z = s * s
    g = _LOG64_G6 + z * _LOG64_G7
    g = _LOG64_G5 + z * g
    g = _LOG64_G4 + z * g
    g = _LOG64_G3 + z * g
    g = _LOG64_G2 + z * g
    g = _LOG64_G1 + z * g
    g = _LOG64_G0 + z * g
    hfsq = 0.5 * (f * f)
    fh = _split_high(f)
    hh = 0.5 * (fh * fh)  # exact
    hl = (f - fh) * (0.5 * (f + fh))  # f^2/2 - hh, to ~2**-80
    hk = kf * _LN2_HI  # exact: |k| < 2**11
    # Fast2Sum twice: |hk| >= 0.69 > |f| unless k == 0; |t| >= 0.27 or t == f, |t| > hh.
    t = hk + f
    et = (hk - t) + f
    t2 = t - hh
    et2 = (t - t2) - hh
    small = (((s * (hfsq + z * g) - hl) + kf * _LN2_LO) + extra) + (et + et2)
    return t2 + small


@njit(inline="always", cache=True)
def log64(x):
    """Natural log of float64 x; below 1 ulp, subnormals normalised; no fast-math."""
    # Subnormal (and the special-cased x <= 0) inputs: scale by 2**54 exactly first.
    tiny = x < _DBL_MIN
    xs = x * _TWO54 if tiny else x
    kadj = -54.0 if tiny else 0.0
    if x <= 0.0:
        xs = 1.0  # keeps garbage (possibly subnormal, slow) out of the arithmetic; see below
    m = _log_mantissa(xs)
    kf = _log_exponent(xs) + kadj
    y = _log_core64(kf, m - 1.0, 0.0)  # m - 1 is exact: m in [sqrt(1/2), sqrt(2))
    if x == 0.0:
        y = -np.inf
    if x < 0.0:
        y = np.nan
    if x == np.inf:
        y = x
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def log1p64(x):
    """log(1 + x) for float64 x, accurate for tiny x; below 1 ulp; no fast-math."""
    # u + c == 1 + x exactly (TwoSum); log(1+x) = log(u) + log(1 + c/u) and |c/u| <= 2**-53,
    # so log(1 + c/u) = c/u to far below an ulp.  u is never subnormal (u == 0 or u >= 2**-53).
    u = 1.0 + x
    bv = u - 1.0
    c = (1.0 - (u - bv)) + (x - bv)
    if u <= 0.0:
        u = 1.0  # x <= -1: keeps garbage out of the arithmetic; the result is set below
    m = _log_mantissa(u)
    kf = _log_exponent(u)
    y = _log_core64(kf, m - 1.0, _fdiv(c, u))
    # For |x| < 2**-26 the series is exact to 2**-80 relative and has one rounding, where the
    # path above adds the rounding of c/u (up to 0.66 ulp near |x| = 2**-52).
    if abs(x) < _TWO_M26:
        y = x + (x * x) * (x * _THIRD - 0.5)
    if x == -1.0:
        y = -np.inf
    if x < -1.0:
        y = np.nan
    if x == np.inf:
        y = x
    if x == 0.0:
        y = x  # keeps the sign of -0
    if x != x:
        y = x
    return y


# --------------------------------------------------------------------------------------------
# float32: the same algorithms in float32 arithmetic (16 lanes per zmm register)
# --------------------------------------------------------------------------------------------


@njit(inline="always", cache=True)
def exp32(x):
    """e**x for float32 x in float32 arithmetic; below 1 ulp including gradual underflow."""
    # k in [-173, 128]: exp(-120) underflows, exp(89) overflows
    xc = _clamp(x, _M120_32, _P89_32)
    kf = np.rint(xc * _INV_LN2_32)
    hi = xc - kf * _LN2_HI_32
    lo = kf * _LN2_LO_32
    r = hi - lo
    p = _EXP32_P3 + r * _EXP32_P4
    p = _EXP32_P2 + r * p
    p = _EXP32_P1 + r * p
    p = _EXP32_P0 + r * p
    q = (r * r) * (_HALF32 + r * p)
    s = _ONE32 + hi
    e1 = (_ONE32 - s) + hi
    y = s + (e1 + (q - lo))
    # as exp64: exponent add, then 2 (k > 0), 2**-64 (k <= -126: possibly subnormal) or 1
    up = kf > _ZERO32
    sub = kf < _M125_32
    kn = kf - _ONE32 if up else kf
    kn = kn + _P64_32 if sub else kn
    y = _add_exponent(y, kn) * (_TWO32 if up else (_TWO_M64_32 if sub else _ONE32))
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def _log_core32(kf, f, extra):
    s = _fdiv(f, _TWO32 + f)
    z = s * s
    g = _LOG32_G2 + z * _LOG32_G3
    g = _LOG32_G1 + z * g
    g = _LOG32_G0 + z * g
    hfsq = _HALF32 * (f * f)
    fh = _split_high(f)
    hh = _HALF32 * (fh * fh)
    hl = (f - fh) * (_HALF32 * (f + fh))
    hk = kf * _LN2_HI_32
    t = hk + f
    et = (hk - t) + f
    t2 = t - hh
    et2 = (t - t2) - hh
    small = (((s * (hfsq + z * g) - hl) + kf * _LN2_LO_32) + extra) + (et + et2)
    return t2 + small


@njit(inline="always", cache=True)
def log32(x):
    """Natural log of float32 x in float32 arithmetic; below 1 ulp, subnormals normalised."""
    tiny = x < _FLT_MIN
    xs = x * _TWO25_32 if tiny else x
    kadj = _M25_32 if tiny else _ZERO32
    if x <= _ZERO32:
        xs = _ONE32
    m = _log_mantissa(xs)
    kf = _log_exponent(xs) + kadj
    y = _log_core32(kf, m - _ONE32, _ZERO32)
    if x == _ZERO32:
        y = -_INF32
    if x < _ZERO32:
        y = _NAN32
    if x == _INF32:
        y = x
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def log1p32(x):
    """log(1 + x) for float32 x in float32 arithmetic; below 1 ulp, accurate for tiny x."""
    u = _ONE32 + x
    bv = u - _ONE32
    c = (_ONE32 - (u - bv)) + (x - bv)
    if u <= _ZERO32:
        u = _ONE32
    m = _log_mantissa(u)
    kf = _log_exponent(u)
    y = _log_core32(kf, m - _ONE32, _fdiv(c, u))
    if abs(x) < _TWO_M12_32:
        y = x + (x * x) * (x * _THIRD32 - _HALF32)
    if x == -_ONE32:
        y = -_INF32
    if x < -_ONE32:
        y = _NAN32
    if x == _INF32:
        y = x
    if x == _ZERO32:
        y = x  # keeps the sign of -0
    if x != x:
        y = x
    return y


# ============================================================================================
# FMA variants: the same functions with an explicit fused multiply-add
# ============================================================================================
#
# ``_fma(a, b, c)`` emits LLVM's ``llvm.fma`` intrinsic: a * b + c with ONE rounding, exactly as
# IEEE 754 specifies fusedMultiplyAdd.  It is not the ``contract`` fast-math flag (which lets the
# compiler fuse or not, as it likes): every ``_fma`` is fused, every other operation is not, so
# the results are the same bits on every machine, at every vector width.  With FMA hardware
# (x86-64 since Haswell / Zen, AArch64, ...) each is one instruction; without it LLVM calls
# libm's ``fma``, which is exact but slow and scalar.  No fast-math flag is used anywhere.
#
# What FMA buys here:
# * Cody-Waite reduction with the full-precision ln 2: hi = fma(-k, ln2_hi, x) is exact for
#   every x in range, whatever the bits of ln2_hi, and r = fma(-k, ln2_lo, hi) rounds once.
# * Exact products without a Dekker split: fma(a, b, -a*b) is the rounding error of a*b.
# * Horner steps that round once instead of twice.
# * exp: the power of two comes from the bits of z = x/ln2 + 1.5*2**p (rounding to an integer
#   by adding a "shifter"), so there is no round and no float-to-int conversion.
# * log keeps fdlibm's s = f/(2+f) and the polynomials G of log32/log64: one division, but
#   the divider works beside the FMA units.  For float32 a degree-8 polynomial in f without
#   the division (as accurate) measured 10% slower here; for float64 it would need degree ~22.
#
# Errors: the big terms are still added exactly (Fast2Sum); what is rounded are terms below
# ~0.07 (exp) / ~0.02 (log), so the results stay below 1 ulp with about the margin of the
# functions above.  Largest errors measured by tests/test_vmath.py (float32: all 2**32
# inputs; float64: ~15 million inputs per function, random bit patterns plus the hard
# regions), with the plain functions' for comparison:
#
#   =============  =====================================================  ===================
#   exp32_fma      0.71 ulp; 0.78 ulp where the result is subnormal        exp32: 0.68 / 0.76
#   log32_fma      0.63 ulp                                                log32: 0.66
#   log1p32_fma    0.67 ulp                                                log1p32: 0.68
#   exp64_fma      0.73 ulp; 0.79 ulp where the result is subnormal        exp64: 0.67 / 0.78
#   log64_fma      0.60 ulp                                                log64: 0.62
#   log1p64_fma    0.59 ulp                                                log1p64: 0.61
#   expm1_64_fma   0.59 ulp                                                expm1_64: 0.57
#   =============  =====================================================  ===================
#
# exp*_fma bound: 0.5 (final rounding) + ~0.1 (the rounding of r, through r^2 H) + ~0.05
# (r * h) + 0.06 (the small sum) + 0.03-0.06 (the polynomial), about 0.75-0.8, reached only
# where all line up (|r| near ln2/2, the result just above 1/sqrt(2)).
#
# Specials are the same as above (C99 Annex F), and a NaN input comes back unchanged.


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once: LLVM ``llvm.fma`` (an FMA instruction, or libm's ``fma``)."""
    if a in (types.float32, types.float64) and b == a and c == a:

        def codegen(context, builder, signature, args):
            return builder.fma(args[0], args[1], args[2])

        return a(a, b, c), codegen
    return None


@intrinsic
def _clamp(typingctx, x, lo, hi):
    """min(max(x, lo), hi) with NaN -> lo: LLVM ``maxnum``/``minnum``.  With constant bounds
    these are one vmaxps and one vminps; the same clamp written as two selects comes out as
    three compares and two blends (LLVM merges the selects' conditions)."""
    if x not in (types.float32, types.float64) or lo != x or hi != x:
        return None

    def codegen(context, builder, signature, args):
        fty = args[0].type
        suffix = "f64" if signature.args[0] == types.float64 else "f32"
        fnty = ir.FunctionType(fty, [fty, fty])
        fmax = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.maxnum.{suffix}")
        fmin = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.minnum.{suffix}")
        return builder.call(fmin, [builder.call(fmax, [args[0], args[1]]), args[2]])

    return x(x, x, x), codegen


# adding the shifter 1.5 * 2**52 (2**23) rounds to an integer k and leaves k in the low bits
_SHIFTER_BITS64 = 0x4338000000000000
_SHIFTER_BITS32 = 0x4B400000


@intrinsic
def _scale_shifted(typingctx, y, z):
    """``y * 2**k`` where ``z = 1.5 * 2**52 + k`` (float32: ``1.5 * 2**23 + k``), |k| < 2**20.

    k comes out of z's bits by an integer subtraction and is applied in two halves: k >> 1
    added to y's exponent field (exact, for y and y * 2**(k >> 1) normal, as they are in the
    callers, or k >> 1 == 0), then a multiplication by 2**(k - (k >> 1)), a normal number for every
    |k| <= 2 * (bias - 1).  The one rounding is in that multiplication, so a result in the
    subnormal range is rounded once from y (gradual underflow) and a result past the largest
    float becomes inf.  Integer arithmetic plus one multiplication: a caller's fast-math flags
    cannot reassociate it into an overflowing 2**k1 * 2**k2.  A NaN y may come out as
    anything: callers put NaN back with a select.
    """
    if y not in (types.float32, types.float64) or z != y:
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, bias, shift, shifter = ir.IntType(64), 1023, 52, _SHIFTER_BITS64
        else:
            ity, bias, shift, shifter = ir.IntType(32), 127, 23, _SHIFTER_BITS32
        fty = args[0].type
        k = builder.sub(builder.bitcast(args[1], ity), ir.Constant(ity, shifter))
        k1 = builder.ashr(k, ir.Constant(ity, 1))
        k2 = builder.sub(k, k1)
        shift_c = ir.Constant(ity, shift)
        y1 = builder.add(builder.bitcast(args[0], ity), builder.shl(k1, shift_c))
        s2 = builder.shl(builder.add(k2, ir.Constant(ity, bias)), shift_c)
        return builder.fmul(builder.bitcast(y1, fty), builder.bitcast(s2, fty))

    return y(y, z), codegen


@intrinsic
def _pow2_shifted(typingctx, z):
    """``2**k`` where ``z = 1.5 * 2**52 + k`` (float32: ``1.5 * 2**23 + k``), for k in the
    normal exponent range: k sits in z's low bits, so ``(bits(z) + bias) << mantissa_bits``
    (the shifter's own bits fall off the top) is the bit pattern of 2**k. Two integer
    operations, no conversion."""
    if z not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, bias, shift = ir.IntType(64), 1023, 52
        else:
            ity, bias, shift = ir.IntType(32), 127, 23
        bits = builder.add(builder.bitcast(args[0], ity), ir.Constant(ity, bias))
        return builder.bitcast(builder.shl(bits, ir.Constant(ity, shift)), args[0].type)

    return z(z), codegen


@intrinsic
def _recip_approx(typingctx, x):
    """1/x within 5.1% for a positive normal x (and |1/x| normal): a magic constant minus
    the bits of x (one integer subtraction)."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0] == types.float64:
            ity, magic = ir.IntType(64), 0x7FDE623822FC16E6
        else:
            ity, magic = ir.IntType(32), 0x7EF311C3
        ix = builder.bitcast(args[0], ity)
        return builder.bitcast(builder.sub(ir.Constant(ity, magic), ix), args[0].type)

    return x(x), codegen


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

_TWO_M54 = float.fromhex("0x1p-54")  # below this, expm1(x) and log1p(x) round to x
_TWO_P1000 = float.fromhex("0x1p1000")
_TWO_M25_32 = _f32(float.fromhex("0x1p-25"))
_TWO_P100_32 = _f32(float.fromhex("0x1p100"))
_MHALF32 = _f32(-0.5)
_NZERO32 = _f32(-0.0)


# ---------------------------------------------------------------------------------- exp


@njit(inline="always", cache=True)
def _exp_h64(r):
    """H(r) with exp(r) = 1 + r + r^2 H(r): Horner with FMA."""
    h = _fma(_EXP64_H9, r, _EXP64_H8)
    h = _fma(h, r, _EXP64_H7)
    h = _fma(h, r, _EXP64_H6)
    h = _fma(h, r, _EXP64_H5)
    h = _fma(h, r, _EXP64_H4)
    h = _fma(h, r, _EXP64_H3)
    h = _fma(h, r, _EXP64_H2)
    h = _fma(h, r, _EXP64_H1)
    return _fma(h, r, _EXP64_H0)


@njit(inline="always", cache=True)
def _exp_p64_fma(r):
    """exp64's P(r), exp(r) = 1 + r + r^2/2 + r^3 P(r): Horner with FMA."""
    p = _fma(_EXP64_P9, r, _EXP64_P8)
    p = _fma(p, r, _EXP64_P7)
    p = _fma(p, r, _EXP64_P6)
    p = _fma(p, r, _EXP64_P5)
    p = _fma(p, r, _EXP64_P4)
    p = _fma(p, r, _EXP64_P3)
    p = _fma(p, r, _EXP64_P2)
    p = _fma(p, r, _EXP64_P1)
    return _fma(p, r, _EXP64_P0)


@njit(inline="always", cache=True)
def exp64_fma(x):
    """e**x for float64 x with explicit FMA; below 1 ulp including gradual underflow."""
    # k in [-1155, 1024]: exp(-800) underflows, exp(710) overflows.  NaN lands on -800 (and
    # is put back at the end).
    xc = _clamp(x, -800.0, 710.0)
    z = _fma(xc, _INV_LN2_F64, _SHIFTER64)  # 1.5*2**52 + k, k = x/ln2 rounded to an integer
    kf = z - _SHIFTER64
    hi = _fma(kf, _NLN2F_HI, xc)  # exact: x = k ln2_hi + hi
    r = _fma(kf, _NLN2F_LO, hi)  # the reduced argument, rounded once; |r| <= ln2/2
    h = _exp_h64(r)
    # exp(r) = 1 + hi - k ln2_lo + r^2 H(r).  Fast2Sum (|1| >= |hi|): s + (1 - s) + hi is
    # exactly 1 + hi; only terms below 0.07 are rounded.  r * h rather than r * r keeps the
    # product normal down to |x| ~ 2**-1021.
    s = 1.0 + hi
    e1 = _fma(kf, _NLN2F_LO, (1.0 - s) + hi)
    y = _scale_shifted(s + _fma(r, r * h, e1), z)
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
    z = _fma(xc, _INV_LN2_F64, _SHIFTER64)
    kf = z - _SHIFTER64
    r = _fma(kf, _NLN2_F64, xc)
    q = _fma(_EXPL_Q6, r, _EXPL_Q5)
    q = _fma(q, r, _EXPL_Q4)
    q = _fma(q, r, _EXPL_Q3)
    q = _fma(q, r, _EXPL_Q2)
    q = _fma(q, r, _EXPL_Q1)
    q = _fma(q, r, _EXPL_Q0)
    y = _fma(r, q, 1.0) * _pow2_shifted(z)
    return 0.0 if low else y


@njit(inline="always", cache=True)
def exp32_fma(x):
    """e**x for float32 x in float32 arithmetic with explicit FMA; below 1 ulp, gradual
    underflow included."""
    # k in [-173, 128]: exp(-120) underflows, exp(89) overflows; NaN lands on -120
    xc = _clamp(x, _M120_32, _P89_32)
    z = _fma(xc, _INV_LN2_F32, _SHIFTER32)
    kf = z - _SHIFTER32
    hi = _fma(kf, _NLN2F_HI_32, xc)
    r = _fma(kf, _NLN2F_LO_32, hi)
    h = _fma(_EXP32_H4, r, _EXP32_H3)
    h = _fma(h, r, _EXP32_H2)
    h = _fma(h, r, _EXP32_H1)
    h = _fma(h, r, _EXP32_H0)
    s = _ONE32 + hi
    e1 = _fma(kf, _NLN2F_LO_32, (_ONE32 - s) + hi)
    y = _scale_shifted(s + _fma(r, r * h, e1), z)
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def expm1_64_fma(x):
    """e**x - 1 for float64 x with explicit FMA, accurate for tiny x; below 1 ulp."""
    # Below -40 the result rounds to -1; above 710 it overflows.  |x| < 2**-54 rounds to x
    # (also -0), and NaN comes back as it is: both are computed on 0 instead (no square goes
    # subnormal, no garbage) and put back at the end.
    keep = not (abs(x) >= _TWO_M54)  # tiny or NaN
    xc = _clamp(x, -40.0, 710.0)
    if keep:
        xc = 0.0
    z = _fma(xc, _INV_LN2_F64, _SHIFTER64)
    kf = z - _SHIFTER64
    hi = _fma(kf, _NLN2F_HI, xc)  # exact
    r = _fma(kf, _NLN2F_LO, hi)
    dr = _fma(kf, _NLN2F_LO, hi - r)  # r + dr = hi - k ln2_lo (hi - r is exact)
    p = _exp_p64_fma(r)  # exp(r) = 1 + r + r^2/2 + r^3 P(r)
    r2 = r * r
    r2l = _fma(r, r, -r2)  # r^2 = r2 + r2l exactly
    h2 = 0.5 * r2
    # e**x - 1 = 2**k ((1 - 2**-k) + hi + h2 + [-k ln2_lo + r2l/2 + r dr + r^3 P]), with
    # (r + dr)^2/2 = h2 + r2l/2 + r dr + O(dr^2): the three big terms are summed exactly
    # (TwoSum, then Fast2Sum twice, as in expm1_64), the bracket is below 0.01.
    mone = _pow2(-kf if kf < 1000.0 else -1000.0)  # 2**-k
    a = 1.0 - mone
    bv = a - 1.0
    ea = (1.0 - (a - bv)) + (-mone - bv)  # a + ea == 1 - 2**-k
    sab = a + hi  # Fast2Sum: |a| >= 1/2 > |hi| for k != 0, a == 0 for k == 0
    eab = (a - sab) + hi
    s2 = sab + h2  # Fast2Sum: |sab| > 0.15 > h2, or sab == hi == r with |r| > r^2/2
    e2 = (sab - s2) + h2
    small = _fma(kf, _NLN2F_LO, (ea + eab) + e2)
    small = _fma(0.5, r2l, small)
    small = _fma(r, dr, small)
    small = _fma(r2, r * p, small)
    y = _scale_shifted(s2 + small, z)
    if keep:
        y = x
    return y


# ---------------------------------------------------------------------------------- log
#
# log(1+f) = f - f^2/2 + s (f^2/2 + z G(z)), s = f/(2+f), z = s^2 (fdlibm, the polynomials G
# of log64/log32 above).  With FMA: f^2 = f2 + f2l exactly, and
#     k ln2 + log(1+f) = [(k ln2_hi + f) - f2/2] + [k ln2_lo - f2l/2 + s (f2/2 + z G)]
# where the first bracket is summed exactly (two Fast2Sums) and the second is below 0.02.


@njit(inline="always", cache=True)
def _log_fma_core64(kf, f, extra):
    """k ln2 + log(1 + f) + extra for f in [sqrt(1/2)-1, sqrt(2)-1] and a tiny extra."""
    s = _fdiv(f, 2.0 + f)
    z = s * s
    g = _fma(_LOG64_G7, z, _LOG64_G6)
    g = _fma(g, z, _LOG64_G5)
    g = _fma(g, z, _LOG64_G4)
    g = _fma(g, z, _LOG64_G3)
    g = _fma(g, z, _LOG64_G2)
    g = _fma(g, z, _LOG64_G1)
    g = _fma(g, z, _LOG64_G0)
    f2 = f * f
    f2l = _fma(f, f, -f2)
    hf = 0.5 * f2
    hk = kf * _LN2_HI  # exact: ln2_hi has 32 significant bits
    # Fast2Sum twice: |hk| >= 0.69 > |f| unless k == 0; |t| > 0.27 > hf, or t == f, |f| > hf
    t = hk + f
    et = (hk - t) + f
    t2 = t - hf
    et2 = (t - t2) - hf
    c = _fma(kf, _LN2_LO, (et + et2) + extra)
    c = _fma(-0.5, f2l, c)
    c = _fma(s, _fma(z, g, hf), c)
    return t2 + c


@njit(inline="always", cache=True)
def _log_fma_core32(kf, f, extra):
    """float32 _log_fma_core64 (same identities, log32's G)."""
    s = _fdiv(f, _TWO32 + f)
    z = s * s
    g = _fma(_LOG32_G3, z, _LOG32_G2)
    g = _fma(g, z, _LOG32_G1)
    g = _fma(g, z, _LOG32_G0)
    f2 = f * f
    f2l = _fma(f, f, -f2)
    hf = _HALF32 * f2
    hk = kf * _LN2_HI_32  # exact: 15 significant bits times |k| < 2**9
    t = hk + f
    et = (hk - t) + f
    t2 = t - hf
    et2 = (t - t2) - hf
    c = _fma(kf, _LN2_LO_32, (et + et2) + extra)
    c = _fma(_MHALF32, f2l, c)
    c = _fma(s, _fma(z, g, hf), c)
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
    m = _log_mantissa(xs)
    kf = _log_exponent(xs)
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
def log32_fma(x):
    """Natural log of float32 x in float32 arithmetic with explicit FMA; below 1 ulp."""
    ax = abs(x)
    tiny = ax < _FLT_MIN
    xs = ax * _TWO25_32 if tiny else ax
    m = _log_mantissa(xs)
    kf = _log_exponent(xs)
    kf = kf + _M25_32 if tiny else kf
    y = _log_fma_core32(kf, m - _ONE32, _NZERO32)
    if x < _ZERO32:
        y = _NAN32
    if x == _ZERO32:
        y = -_INF32
    if not (x < _INF32):
        y = x
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
    m = _log_mantissa(au)
    kf = _log_exponent(au)
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
    m = _log_mantissa(au)
    kf = _log_exponent(au)
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
