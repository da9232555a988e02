"""The elementary functions and row primitives every kernel uses, in one place.

Kernels never call ``math.exp``/``math.log`` (scalar libm calls: Numba here has no SVML): they
call the functions below, which pick the vectorisable implementation from ``vmath`` for the
row's dtype at compile time. Swapping an implementation here swaps it for every kernel. This
module is plain Numba: what it needs below Numba's public API (bit casts, explicit vector lanes,
arrays without reference counts) comes from ``_simd``, re-exported here where kernels use it.

Everything is compiled without fast-math flags, so each value is defined by the source alone:
the same bits for any vector width, any thread count, any machine. Loops that *reduce* (a max,
a sum) do not vectorise under those rules unless written with explicit lanes; that is what
``row_max`` (an integer max over the float bit patterns) and ``sum8`` (explicit vector lanes) do.

The implementations use an explicit fused multiply-add, one IEEE
operation (one rounding), so the bits are still defined by the source and the same on every
machine with FMA (every x86-64 CPU since 2013, every arm64); without FMA hardware the same bits
come from libm's ``fma``, slowly.

Dtype policy: float64 rows use the float64 functions. float32 rows compute ``exp`` and ``log``
of float32 values in float32 (16 lanes per AVX-512 register instead of 8; each result within
1 ulp of float32) and accumulate in float64; the exps of a float32 row's ``x - m`` (exact in
float64, not in float32) are ``exp_lite``: float64, to the 2**-34 a float32 result needs.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._plain import lane_sum16  # one lane of lanes_sum16 in scalar code (its twin uses it too)
from ._simd import (
    bits_to_float,
    copy_max_f32,
    copy_max_index_f64,
    float_to_bits,
    fma,
    lanes8_max_f64,
    lanes8_sum,
    lanes8_sum_compensated,
    lanes_max16,
    lanes_sum16,
    neg_inf_image,
    unowned,
)
from .vmath import exp32_fma as exp32
from .vmath import exp64_fma as exp64
from .vmath import exp64_lite
from .vmath import log1p32_fma as log1p32
from .vmath import log1p64_fma as log1p64
from .vmath import log64_fma as log64

__all__ = [  # what the kernels import (some only re-exported from ``_simd``)
    "any_nan",
    "any_not_probability",
    "block_sum",
    "copy_max",
    "copy_max_index",
    "exp_diff",
    "exp_lite",
    "exp_native",
    "first_index",
    "fma",
    "is_float32",
    "keep",
    "lane_sum16",
    "lanes_max16",
    "lanes_sum16",
    "log",
    "log1p",
    "log1p_native",
    "sum8",
    "two_sum",
    "unowned",
]

# ---------------------------------------------------------------------------------------------
# Scalar functions, float64 in, float64 out (per-row work, not inner loops).


# Not inlined at Numba's IR level (that multiplies type inference and IR work by the number of
# call sites): each is compiled once as a small function, and LLVM inlines it into the loops
# that call it, where it vectorises as before.
@njit(cache=True)
def log(x):
    return log64(np.float64(x))


@njit(cache=True)
def log1p(x):
    return log1p64(np.float64(x))


@njit(inline="always", cache=True)
def two_sum(a, b):
    """(s, err) with s = fl(a + b) and s + err = a + b exactly (Knuth's TwoSum)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


@njit(inline="always", cache=True)
def exp_diff(a, b):
    """e**(a - b) for float64 a, b, with the rounding error of a - b put back.

    fl(a - b) is off by up to half an ulp of the difference, which e**x turns into a relative
    error of |a - b| 2**-53: 20 ulps for a term e**-40 far below a row's maximum. With
    a - b = d + err exactly (TwoSum), e**(a - b) = e**d (1 + err) to within err**2 / 2, and
    that is one fused multiply-add. Where d is infinite (a = -inf: e**d = 0, err = NaN) the
    plain e**d is kept; a NaN stays NaN. (For float32 inputs, a - b is exact in float64.)
    """
    nb = -b  # loop-invariant in the callers: hoisted
    d = a + nb
    z = d - a
    err = (a - (d - z)) + (nb - z)
    e = exp64(d)
    r = fma(e, err, e)
    return r if r == r else e


# ---------------------------------------------------------------------------------------------
# Element functions in the row's own dtype (inner loops).


def _by_dtype(name, doc, f32, f64):
    """A function of one float that Numba resolves, at compile time, to ``f32`` for a float32
    argument and ``f64`` for a float64 one (both jitted, inlined where called)."""

    def chosen(x):
        pass

    chosen.__name__ = chosen.__qualname__ = name
    chosen.__doc__ = doc

    @overload(chosen)
    def _chosen(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)
        return None

    return chosen


exp_native = _by_dtype(
    "exp_native", "e**x in x's own float dtype (float32 or float64).", exp32, exp64
)
exp_lite = _by_dtype(
    "exp_lite",
    """e**x for x <= 0 (or NaN), accurate enough for a float32 result: ``exp64_lite`` for
    float64 x (relative error below 2**-34), ``exp32`` for float32 x. The exps of a float32
    row's ``x - m`` (float64, exact) use it.""",
    exp32,
    exp64_lite,
)
log1p_native = _by_dtype("log1p_native", "log1p(x) in x's own float dtype.", log1p32, log1p64)


# ---------------------------------------------------------------------------------------------
# Row primitives over a 1-D row (a block is passed as a slice: unit-stride loops from 0
# vectorise; loops over an offset range of a longer row were measured to gather).


def row_max(row):
    """Maximum of a 1-D row in its own dtype; -inf for an empty row.

    Computed as an integer max over the float bit patterns mapped to a monotonic signed order
    (negative floats have their magnitude bits flipped), which vectorises without fast-math
    flags where a float max does not. A NaN with its sign bit clear compares above +inf and is
    returned (the row's result is then NaN, as it must be); one with the sign bit set compares
    below -inf and is not, but it still reaches the result through exp(nan - m).
    """


def _max_impl(int_type, mask, neg_inf_image):
    sign_shift = int_type(np.iinfo(int_type).bits - 1)

    def impl(row):
        # Start from the image of -inf: an empty range gives -inf, and a NaN with its sign bit
        # set (whose image lies below) is never chosen.
        best = neg_inf_image
        for k in range(row.shape[0]):
            b = float_to_bits(row[k])
            b = int_type(b ^ ((b >> sign_shift) & mask))
            best = b if b > best else best
        best = int_type(best ^ ((best >> sign_shift) & mask))
        return bits_to_float(best)

    return impl


@overload(row_max)
def _row_max(row):
    if row.dtype == types.float32:
        return _max_impl(np.int32, np.int32(0x7FFFFFFF), np.int32(neg_inf_image(32)))
    if row.dtype == types.float64:
        return _max_impl(np.int64, np.int64(0x7FFFFFFFFFFFFFFF), np.int64(neg_inf_image(64)))
    return None


@njit(inline="always", cache=True)
def first_index(row, m):
    """The first k with row[k] == m (len(row) if none), as a vectorisable min-reduction."""
    n = row.shape[0]
    j = n
    for k in range(n):
        j = min(j, k if row[k] == m else n)
    return j


@njit(inline="always", cache=True)
def sum8(buf, n):
    """sum(buf[:n]) in float64: eight lanes (``lanes8_sum``) plus the n % 8 tail, in a fixed
    order, so the bits depend on n and the values only."""
    rest = 0.0
    for j in range(n - n % 8, n):
        rest += np.float64(buf[j])
    return lanes8_sum(buf, n) + rest


@njit(inline="always", cache=True)
def sum8_compensated(buf, n):
    """sum(buf[:n]) in float64, compensated: eight lanes then the n % 8 tail, in a fixed order,
    the rounding error of each addition kept (TwoSum) and added back at the end, so a sum of
    positive terms is within about one rounding of exact whatever n. A sum that is infinite or
    NaN is the plain sum (the error terms of an infinite sum are NaN)."""
    s, e = lanes8_sum_compensated(buf, n)
    for j in range(n - n % 8, n):
        x = np.float64(buf[j])
        t = s + x
        z = t - s
        e += (s - (t - z)) + (x - z)
        s = t
    return s + e if abs(s) < np.inf else s


COMPENSATE_FROM = 128
"""Blocks of more terms than this are summed with compensation when the result is float64."""


@njit(inline="always", cache=True)
def block_sum(buf, n, float32_result, compensate_from=COMPENSATE_FROM):
    """The sum of a block's n terms in ``buf``, as accurate as the result needs.

    The plain eight lanes add n / 8 terms each in sequence: within 2 ulp of float64 up to
    n = 128 or so for sums of logarithms (entropy, KL), but 34 ulp for 2,048 equal terms. So
    float64 results take the compensated sum beyond ``compensate_from`` terms (0 for the sums
    of exps of a log-sum-exp, whose results are held to 4 ulp: a term near 1 with many small
    ones cost up to 2.7 ulp plain). float32 results never need it (a float64 sum of 2,048
    terms is off by far less than a float32 ulp). ``float32_result`` is a compile-time
    constant (``is_float32``), so each kernel keeps one branch.
    """
    if float32_result or n <= compensate_from:
        return sum8(buf, n)
    return sum8_compensated(buf, n)


@njit(cache=True)
def keep(arr):
    """A use of ``arr`` that compiles to nothing: keeps an owned scratch array alive (Numba
    releases a variable after its last use) until this point, for its ``unowned`` aliases."""
    return None


@njit(inline="always", cache=True)
def any_not_probability(row):
    """True if some row[k] lies outside [0, 1] (NaN does not count)."""
    bad = 0
    for k in range(row.shape[0]):
        v = row[k]
        bad |= (v < 0) | (v > 1)
    return bad != 0


@njit(inline="always", cache=True)
def any_nan(row):
    nan = 0
    for k in range(row.shape[0]):
        v = row[k]
        nan |= v != v
    return nan != 0


def is_float32(row):
    """True (a compile-time constant) when ``row`` holds float32."""


@overload(is_float32)
def _is_float32(row):
    flag = row.dtype == types.float32
    return lambda row: flag


def _contiguous(array_type, dtype):
    """Whether an array type is C-contiguous of ``dtype`` (what the lane intrinsics take)."""
    return array_type.dtype == dtype and array_type.layout == "C"


@njit(inline="always", cache=True)
def pad_block(buf, n16):
    """buf[n16 - 16:n16] = -inf: the padding of a block copied into ``buf`` (written before
    the block, as two fixed-size vector stores; a loop over n..n16 became a scatter)."""
    if n16 > 0:
        tail = buf[n16 - 16 : n16]
        for k in range(16):
            tail[k] = -np.inf


def copy_max(seg, buf):
    """Copy ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries; return
    ``block_max`` of the padded copy (float64)."""


@overload(copy_max)
def _copy_max(seg, buf):
    if _contiguous(seg, types.float32) and _contiguous(buf, types.float64):
        return lambda seg, buf: copy_max_f32(seg, buf)

    def impl(seg, buf):
        n = seg.shape[0]
        n16 = (n + 15) & ~15
        pad_block(buf, n16)
        for k in range(n):
            buf[k] = seg[k]
        return np.float64(block_max(buf, n16))

    return impl


def copy_max_index(seg, buf):
    """``(copy_max(seg, buf), first_index(seg, m))`` in one pass where it can (float64 rows
    and buffers): the copy, the maximum and its first position together."""


@overload(copy_max_index)
def _copy_max_index(seg, buf):
    if _contiguous(seg, types.float64) and _contiguous(buf, types.float64):

        def fused(seg, buf):
            m, j = copy_max_index_f64(seg, buf)
            if m == 0.0 or m == -np.inf:  # the first zero of either sign (-0.0 == +0.0);
                j = first_index(seg, m)  # -inf is never a lane's update
            elif m != m:  # a NaN equals nothing
                j = seg.shape[0]
            return m, j

        return fused

    def impl(seg, buf):
        m = copy_max(seg, buf)
        return m, first_index(seg, m)

    return impl


def block_max(buf, n):
    """``row_max(buf[:n])`` for a block buffer whose length n is a multiple of 16."""


@overload(block_max)
def _block_max(buf, n):
    if buf.dtype == types.float64 and buf.layout == "C":
        return lambda buf, n: lanes8_max_f64(buf, n)
    return lambda buf, n: row_max(buf[:n])
