"""Plain-Numba twins of the intrinsics in ``_simd``: the same names, arguments and bits.

Each function here computes what its intrinsic computes, written with ordinary Numba: scalar
loops in the lane order of the vector code, integer arithmetic on bit patterns (read through a
one-element array, the only way nopython mode has to reinterpret a scalar), and, for the fused
multiply-add, an error-free product and round-to-odd sum, or exact integer arithmetic where the
operands are extreme. ``tests/test_simd.py`` holds each pair to the same bits on adversarial
inputs; ``FASTCE_PLAIN=1`` compiles the kernels with these (``_simd``). They are slow: a
fallback and a specification, not a fast path.

NaN payloads are not part of the contract where an intrinsic adds or multiplies (x86 returns
the payload of one NaN operand, and LLVM may commute the operands): there both sides give a NaN.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

__all__ = [
    "bits_to_float",
    "clamp",
    "copy_max_f32",
    "copy_max_index_f64",
    "float_to_bits",
    "fma",
    "lanes8_max_f64",
    "lanes8_sum",
    "lanes8_sum_compensated",
    "lanes_max16",
    "lanes_sum16",
    "unowned",
]

_FLOAT_INT = {types.float64: (np.float64, np.int64), types.float32: (np.float32, np.int32)}
_INT_FLOAT = {types.int64: (np.int64, np.float64), types.int32: (np.int32, np.float32)}


def _reinterpret(src, dst):
    """An implementation that returns the ``dst`` value with the bits of its ``src`` argument."""

    def impl(x):
        box = np.empty(1, src)
        box[0] = x
        return box.view(dst)[0]

    return impl


def float_to_bits(x):
    """The bits of a float64 as int64, of a float32 as int32."""


@overload(float_to_bits)
def _float_to_bits(x):
    return _reinterpret(*_FLOAT_INT[x]) if x in _FLOAT_INT else None


def bits_to_float(x):
    """The float64 with the bits of the int64 x, the float32 with those of the int32 x."""


@overload(bits_to_float)
def _bits_to_float(x):
    return _reinterpret(*_INT_FLOAT[x]) if x in _INT_FLOAT else None


@njit(cache=True)
def clamp(x, lo, hi):
    """min(max(x, lo), hi) with NaN -> lo (LLVM's maxnum/minnum, for bounds that are not NaN)."""
    y = x if x > lo else lo
    return y if y < hi else hi


@njit(cache=True)
def unowned(arr):
    """``arr`` itself: with the owner's reference count, and so without the speed."""
    return arr


# ---------------------------------------------------------------------------------------------
# Fused multiply-add


@njit(cache=True)
def _two_sum(a, b):
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


@njit(cache=True)
def _add_to_odd(a, b):
    """a + b rounded to odd (the neighbour with an odd last bit where the sum is inexact), for
    float64 a, b whose sum is normal or exact."""
    s, e = _two_sum(a, b)
    if e != 0.0 and s == s and abs(s) != np.inf:
        if np.int64(math.ldexp(math.frexp(s)[0], 53)) % 2 == 0:
            s = np.nextafter(s, math.copysign(np.inf, e))
    return s


_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter


@njit(cache=True)
def _two_product(a, b):
    """(p, e): p = fl(a b) and p + e = a b exactly, without FMA (Dekker), for moderate a, b."""
    p = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    t = _SPLIT * b
    bh = t - (t - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(cache=True)
def _fma32(a, b, c):
    # a b is exact in float64; a b + c rounded to odd there (53 >= 24 + 2 bits) then to float32
    # is a b + c rounded once (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums:
    # proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008).
    return np.float32(_add_to_odd(np.float64(a) * np.float64(b), np.float64(c)))


_MODERATE = 2.0**450  # within 2**+-450 every step below is exact or a normal rounding


@njit(cache=True)
def _fma64(a, b, c):
    if a == 0.0 or b == 0.0 or not (abs(a) < np.inf and abs(b) < np.inf):
        return a * b + c  # the product is exact (or inf / NaN): one rounding
    if c == 0.0:
        return a * b  # a b + 0 is a b rounded once, with its sign even where it rounds to 0
    if not abs(c) < np.inf:
        return c + c  # a finite product and c infinite or NaN: c
    aa, ab, ac = abs(a), abs(b), abs(c)
    if min(aa, ab, ac) >= 1.0 / _MODERATE and max(aa, ab, ac) <= _MODERATE:
        # Boldo and Melquiond's emulation: the exact product and sum, the small parts added
        # rounded to odd, then one rounding to nearest.
        ph, pl = _two_product(a, b)
        th, tl = _two_sum(c, ph)
        return th + _add_to_odd(tl, pl)
    return _fma64_exact(a, b, c)


_M26 = (1 << 26) - 1
_NWORDS = 9  # 26-bit words of the exact sum: 165 bits of window plus carries and sign


@njit(cache=True)
def _split(x):
    """(negative, m, e): |x| = m 2**e with the integer m < 2**53, for finite nonzero x."""
    bits = float_to_bits(x)
    e = (bits >> 52) & 0x7FF
    m = bits & ((1 << 52) - 1)
    if e == 0:
        e = 1  # subnormal: the raw fraction, in the unit of the smallest exponent
    else:
        m |= 1 << 52
    return bits < 0, m, e - 1075


@njit(cache=True)
def _place(words, sign, digits, shift):
    """Add sign * sum_i digits[i] 2**(26 i + shift) to the window ``words`` (26-bit words, word
    0 bit 0 its lowest bit); the bits that fall below bit 1 become a +-1 in bit 0 (sticky)."""
    sticky = False
    for i in range(len(digits)):
        d = digits[i]
        if d == 0:
            continue
        pos = shift + 26 * i
        if pos < 1:
            drop = 1 - pos
            if drop >= 26:
                sticky |= d != 0
                continue
            sticky |= (d & ((1 << drop) - 1)) != 0
            d >>= drop
            pos = 1
        v = d << (pos % 26)
        words[pos // 26] += sign * (v & _M26)
        words[pos // 26 + 1] += sign * (v >> 26)
    if sticky:
        words[0] += sign


@njit(cache=True)
def _fma64_exact(a, b, c):
    """a b + c rounded once, by integer arithmetic, for finite nonzero a, b, c.

    The exact product (106 bits, in 26-bit digits) and c go into a window of 26-bit words whose
    bit 1 sits 164 bits below the larger term's top; what falls below (only ever of a term far
    smaller than the other, so below the result's rounding bit) leaves an odd sticky bit 0, and
    the window is then rounded to nearest even at the result's last place.
    """
    na, ma, ea = _split(a)
    nb, mb, eb = _split(b)
    nc, mc, ec = _split(c)
    a0, a1, b0, b1 = ma & _M26, ma >> 26, mb & _M26, mb >> 26
    low = a0 * b0
    mid = a1 * b0 + a0 * b1 + (low >> 26)
    high = a1 * b1 + (mid >> 26)
    product = (low & _M26, mid & _M26, high & _M26, (high >> 26) & _M26, high >> 52)
    base = max(ea + eb + 106, ec + 53) - 164  # the exponent of the window's bit 1
    words = np.zeros(_NWORDS, np.int64)
    _place(words, -1 if na != nb else 1, product, ea + eb - base + 1)
    _place(words, -1 if nc else 1, (mc & _M26, (mc >> 26) & _M26, mc >> 52, 0, 0), ec - base + 1)
    carry = 0
    for i in range(_NWORDS):  # carries: a two's complement number in 26-bit words
        v = words[i] + carry
        carry = v >> 26
        words[i] = v & _M26
    negative = carry < 0
    if negative:
        carry = 1
        for i in range(_NWORDS):
            v = (words[i] ^ _M26) + carry
            carry = v >> 26
            words[i] = v & _M26
    top = _NWORDS - 1
    while top >= 0 and words[top] == 0:
        top -= 1
    if top < 0:
        return 0.0  # an exact zero sum of nonzero terms
    width = 0
    while words[top] >> width:
        width += 1
    exponent = 26 * top + width - 1 + base - 1  # of the leading bit
    ulp = max(exponent - 52, -1074)
    at = ulp - base + 1  # the window bit of the last place
    m = 0
    for i in range(top + 1):
        if 26 * i >= at:
            m += words[i] << (26 * i - at)
        elif 26 * i + 26 > at:
            m += words[i] >> (at - 26 * i)
    if at >= 1:  # round to nearest even: the bit below the last place and all below it
        k, r = (at - 1) // 26, (at - 1) % 26
        sticky = (words[k] & ((1 << r) - 1)) != 0
        for i in range(k):
            sticky |= words[i] != 0
        if (words[k] >> r) & 1 and (sticky or m & 1):
            m += 1
    low_bits = ulp + 1074
    # m 2**ulp: m < 2**53 is the pattern itself when ulp = -1074, and m's leading bit makes the
    # exponent field low_bits + 1 otherwise (a carry to 2**53 moves on to the next binade, or inf)
    out = (2047 << 52) if low_bits >= 2046 else (low_bits << 52) + m
    return bits_to_float(out | (np.int64(1) << 63) if negative else out)


def fma(a, b, c):
    """``a * b + c`` rounded once, for three float32 or three float64."""


@overload(fma)
def _fma(a, b, c):
    if a == types.float32 and b == a and c == a:
        return lambda a, b, c: _fma32(a, b, c)
    if a == types.float64 and b == a and c == a:
        return lambda a, b, c: _fma64(a, b, c)
    return None


# ---------------------------------------------------------------------------------------------
# Vector loops, one lane at a time


def _image_params(values):
    """(sign shift, magnitude mask, image of -inf) of ``row_max``'s order map for the dtype."""


@overload(_image_params)
def _image_params_impl(values):
    if values.dtype == types.float64:
        return lambda values: (63, 0x7FFFFFFFFFFFFFFF, -9218868437227405313)
    if values.dtype == types.float32:
        return lambda values: (31, 0x7FFFFFFF, -2139095041)
    return None


def _from_image(values, image):
    """The float of ``values``' dtype whose order-mapped image is ``image``."""


@overload(_from_image)
def _from_image_impl(values, image):
    if values.dtype not in _FLOAT_INT:
        return None
    ity = np.int64 if values.dtype == types.float64 else np.int32
    shift, mask = (63, 0x7FFFFFFFFFFFFFFF) if ity == np.int64 else (31, 0x7FFFFFFF)
    return lambda values, image: bits_to_float(ity(image ^ ((image >> shift) & mask)))


@njit(cache=True)
def _image(values, k):
    shift, mask, _ = _image_params(values)
    b = np.int64(float_to_bits(values[k]))
    return b ^ ((b >> shift) & mask)


@njit(cache=True)
def _max_image(values, start, stop, step):
    """The largest order-mapped image of values[start:stop:step], -inf's if none is larger."""
    best = _image_params(values)[2]
    for k in range(start, stop, step):
        best = max(best, _image(values, k))
    return best


@njit(cache=True)
def _tree8(x):
    return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))


@njit(cache=True)
def lanes8_sum(arr, n):
    """Sum of arr[:n - n % 8] in eight float64 lanes (lane l adds arr[8i + l] in order of i,
    from 0.0), combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))."""
    lanes = np.zeros(8)
    for i in range(0, n - n % 8, 8):
        for lane in range(8):
            lanes[lane] = lanes[lane] + np.float64(arr[i + lane])
    return _tree8(lanes)


@njit(cache=True)
def lanes8_sum_compensated(arr, n):
    """(S, E): ``lanes8_sum`` and the sum of its additions' rounding errors: the lanes' errors
    summed as the lanes are, then the errors of the tree's additions in order."""
    lanes = np.zeros(8)
    errors = np.zeros(8)
    for i in range(0, n - n % 8, 8):
        for lane in range(8):
            lanes[lane], e = _two_sum(lanes[lane], np.float64(arr[i + lane]))
            errors[lane] = errors[lane] + e
    total = _tree8(errors)
    width = 8
    while width > 1:
        for k in range(width // 2):
            lanes[k], e = _two_sum(lanes[2 * k], lanes[2 * k + 1])
            total = total + e
        width //= 2
    return lanes[0], total


@njit(cache=True)
def lanes8_max_f64(arr, n):
    """``row_max(arr[:n])`` of a float64 array."""
    return _from_image(arr, _max_image(arr, 0, n, 1))


@njit(cache=True)
def _copy_padded(seg, buf):
    n = seg.shape[0]
    for k in range(n):
        buf[k] = np.float64(seg[k])
    for k in range(n, (n + 15) & ~15):
        buf[k] = -np.inf


@njit(cache=True)
def copy_max_f32(seg, buf):
    """Copy the float32 ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries and
    return ``row_max(seg)`` as float64."""
    _copy_padded(seg, buf)
    return np.float64(_from_image(seg, _max_image(seg, 0, seg.shape[0], 1)))


@njit(cache=True)
def copy_max_index_f64(seg, buf):
    """Copy ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries; return (m, j): m
    ``row_max(seg)``, j the first position of m's image if that is above -inf's, else len(seg)."""
    _copy_padded(seg, buf)
    n = seg.shape[0]
    top = _max_image(seg, 0, n, 1)
    j = n
    if top > _image_params(seg)[2]:
        for k in range(n):
            if _image(seg, k) == top:
                j = k
                break
    return _from_image(seg, top), j


@njit(cache=True)
def lanes_max16(cols, out):
    """out[l] = ``row_max`` of cols[l::8][:16], the 16 entries of lane l."""
    for lane in range(8):
        out[lane] = _from_image(cols, _max_image(cols, lane, 128, 8))


@njit(inline="always", cache=True)
def lane_sum16(cols, lane):
    """``lanes_sum16`` for one lane, in scalar arithmetic (the same operations in the same order;
    the kernels use it too)."""
    a0 = (0.0 + cols[lane]) + cols[64 + lane]
    a1 = (0.0 + cols[8 + lane]) + cols[72 + lane]
    a2 = (0.0 + cols[16 + lane]) + cols[80 + lane]
    a3 = (0.0 + cols[24 + lane]) + cols[88 + lane]
    a4 = (0.0 + cols[32 + lane]) + cols[96 + lane]
    a5 = (0.0 + cols[40 + lane]) + cols[104 + lane]
    a6 = (0.0 + cols[48 + lane]) + cols[112 + lane]
    a7 = (0.0 + cols[56 + lane]) + cols[120 + lane]
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + 0.0


@njit(cache=True)
def lanes_sum16(cols, out):
    """out[l] = ``lane_sum16(cols, l)`` for the eight lanes."""
    for lane in range(8):
        out[lane] = lane_sum16(cols, lane)
