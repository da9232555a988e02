"""Vectorisable exp, log, log1p and expm1 written in Numba.

Numba on our machines has no SVML, so ``math.exp``/``math.log`` in a loop compile to one scalar
libm call per element (0.3-0.5 G values/s).  The functions here are plain arithmetic instead:
range reduction, a minimax polynomial, and a power of two built from exponent bits.  Every special
case is a select (an ``if`` that only assigns), never an early return, so when a function is
inlined into a simple loop LLVM turns the whole body into packed AVX-512 / AVX2 code.

Accuracy and determinism
------------------------
* No fast-math flag and no FMA: each function is a fixed sequence of IEEE-754 operations, so it
  gives the same bits on any x86-64 machine and for any vector width (scalar, ymm or zmm).  The
  polynomials are accurate without a fused multiply-add: the leading terms are added with
  error-free transformations (Fast2Sum / TwoSum) rather than relying on a wide accumulator.
* Measured (``tests/test_vmath.py``) error below 1 ulp of the exact result for every function,
  including gradual underflow into the subnormal range, against references that are correctly
  rounded (mpmath where the faster reference is ambiguous).
* Special values follow C99 Annex F: ``exp(-inf) = 0``, ``exp(inf) = inf``, ``log(+-0) = -inf``,
  ``log(x < 0) = nan``, ``log(inf) = inf``, ``log1p(-1) = -inf``, ``log1p(x < -1) = nan``,
  ``log1p(-0) = expm1(-0) = -0``, and a NaN input comes back unchanged.

Inlining and compiler flags
---------------------------
The functions are ``@njit(inline="always")``: Numba inlines them into the caller at the Numba IR
level, so they are compiled with the *caller's* flags.  A caller compiled with ``fastmath`` flags
lets LLVM reassociate away the error-free transformations (``(1 - s) + hi`` folds to 0), which
costs accuracy; the test suite reports by how much.  Division goes through an intrinsic that
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
from numba.extending import intrinsic

__all__ = ["exp32", "exp64", "expm1_64", "log1p32", "log1p64", "log32", "log64"]

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
_TWO25_32 = _f32(float.fromhex("0x1p25"))
_ZERO32 = _f32(0.0)
_HALF32 = _f32(0.5)
_ONE32 = _f32(1.0)
_TWO32 = _f32(2.0)
_INF32 = _f32(np.inf)
_NAN32 = _f32(np.nan)
_M25_32 = _f32(-25.0)

_TWO_M126_32 = _f32(float.fromhex("0x1p-126"))
_M120_32 = _f32(-120.0)
_P120_32 = _f32(120.0)
_P126_32 = _f32(126.0)

# --------------------------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------------------------
#
# Error budget without FMA.  A plain "1 + r + r^2 q(r)" loses up to ~0.5 ulp to the rounding
# of r, of r^2 and of the partial sums, on top of the final rounding; measured, expm1 then
# reached 1.01 ulp and log 0.89 ulp.  So every term of size > 2**-8 is kept exact: x - k ln2_hi
# (Cody-Waite), r^2/2 and f^2/2 via a Dekker split of r or f, and the big partial sums via
# Fast2Sum/TwoSum.  What is left rounded are terms below ~0.02, whose errors stay below
# ~0.05 ulp; the result carries one final rounding plus that.


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
    p = _EXP64_P8 + r * _EXP64_P9
    p = _EXP64_P7 + r * p
    p = _EXP64_P6 + r * p
    p = _EXP64_P5 + r * p
    p = _EXP64_P4 + r * p
    p = _EXP64_P3 + r * p
    p = _EXP64_P2 + r * p
    p = _EXP64_P1 + r * p
    p = _EXP64_P0 + r * p
    # (r + dr)^2 / 2 = h2 + rl (r + rh) / 2 + r dr + O(dr^2)
    small = ((rl * (0.5 * (r + rh)) + r * dr) + (r * r) * (r * p)) - lo
    return kf, hi, h2, small


@njit(inline="always", cache=True)
def exp64(x):
    """e**x for float64 x; below 1 ulp including gradual underflow; no fast-math."""
    # Clamp so that k stays a small integer; exp(+-800) already over/underflows.  NaN fails
    # both comparisons and lands on -800; the last select puts it back.
    xc = x if x > -800.0 else -800.0
    xc = xc if xc < 800.0 else 800.0
    kf, hi, h2, small = _exp_reduce64(xc)
    # 1 + hi + h2 as s2 + e1 + e2 exactly (Fast2Sum twice: |1| >= |hi|, |s| > 0.6 >= h2).
    s = 1.0 + hi
    e1 = (1.0 - s) + hi
    s2 = s + h2
    e2 = (s - s2) + h2
    tail = (e1 + e2) + small
    y = s2 + tail
    # Scale by 2**k in two exact steps, each factor a normal power of two (|k| <= 1155).
    k1 = np.floor(kf * 0.5)
    y = (y * _pow2(k1)) * _pow2(kf - k1)
    # A subnormal result would be rounded twice (to 53 bits, then to the subnormal grid; up
    # to 0.78 ulp).  Instead scale s2 + tail by 2**(k + 1022) <= 1 and add 1: the single
    # rounding of 1 + Y + Z onto the 2**-52 grid of [1, 2) is the rounding onto the subnormal
    # grid 2**-1074 once scaled back (the trick of ARM optimized-routines' exp specialcase).
    sc = _pow2(kf + 1022.0)  # meaningless unless k <= -1022, which the select guarantees
    ys = s2 * sc
    zs = tail * sc
    h1 = 1.0 + ys
    eh = (1.0 - h1) + ys
    ysub = ((h1 + (eh + zs)) - 1.0) * _DBL_MIN
    if y < _DBL_MIN:
        y = ysub
    if x != x:
        y = x
    return y


@njit(inline="always", cache=True)
def expm1_64(x):
    """e**x - 1 for float64 x, accurate for tiny x; below 1 ulp; no fast-math."""
    # Below -60, e**x < 2**-86 and the result rounds to -1.  NaN lands on -60 (fixed below).
    xc = x if x > -60.0 else -60.0
    xc = xc if xc < 800.0 else 800.0
    kf, hi, h2, small = _exp_reduce64(xc)
    # e**x - 1 = (2**k - 1) + 2**k hi + 2**k h2 + 2**k small.  For k > 1000, 2**k overflows
    # before the result does: work in units of 2**kb (kb = k - 1000), scale back at the end.
    kb = kf - 1000.0 if kf > 1000.0 else 0.0
    p2 = _pow2(kf - kb)  # 2**(k - kb): from 2**-87 to 2**1000, normal
    one = _pow2(-kb)  # the "1" in the same units
    # a + ea == 2**k - 1 exactly (TwoSum; a is inexact for |k| > 53).
    a = p2 - one
    bv = a - p2
    ea = (p2 - (a - bv)) + (-one - bv)
    # Fast2Sum: |a| >= |2**k hi| when k != 0 (|hi| <= ln2/2), and a == 0 when k == 0; then
    # |sab| > 2**k h2 in every case.
    b = p2 * hi
    sab = a + b
    eab = (a - sab) + b
    c = p2 * h2
    s2 = sab + c
    e2 = (sab - s2) + c
    y = s2 + (((ea + eab) + e2) + p2 * small)
    y = y * _pow2(kb)
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
    m = _log_mantissa(u)
    kf = _log_exponent(u)
    y = _log_core64(kf, m - 1.0, _fdiv(c, u))
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
    xc = x if x > _M120_32 else _M120_32
    xc = xc if xc < _P120_32 else _P120_32
    kf = np.rint(xc * _INV_LN2_32)
    hi = xc - kf * _LN2_HI_32
    lo = kf * _LN2_LO_32
    r = hi - lo
    dr = (hi - r) - lo
    rh = _split_high(r)
    rl = r - rh
    h2 = _HALF32 * (rh * rh)
    p = _EXP32_P3 + r * _EXP32_P4
    p = _EXP32_P2 + r * p
    p = _EXP32_P1 + r * p
    p = _EXP32_P0 + r * p
    small = ((rl * (_HALF32 * (r + rh)) + r * dr) + (r * r) * (r * p)) - lo
    s = _ONE32 + hi
    e1 = (_ONE32 - s) + hi
    s2 = s + h2
    e2 = (s - s2) + h2
    tail = (e1 + e2) + small
    y = s2 + tail
    # |k| <= 174: two factors within the normal float32 exponent range
    k1 = np.floor(kf * _HALF32)
    y = (y * _pow2(k1)) * _pow2(kf - k1)
    sc = _pow2(kf + _P126_32)
    ys = s2 * sc
    zs = tail * sc
    h1 = _ONE32 + ys
    eh = (_ONE32 - h1) + ys
    ysub = ((h1 + (eh + zs)) - _ONE32) * _TWO_M126_32
    if y < _FLT_MIN:
        y = ysub
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
    m = _log_mantissa(u)
    kf = _log_exponent(u)
    y = _log_core32(kf, m - _ONE32, _fdiv(c, u))
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
