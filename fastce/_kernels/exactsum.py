"""Exact, order-independent summation of float64 values (a "large superaccumulator").

This is R. M. Neal's large superaccumulator ("Fast exact summation using small and large
superaccumulators", arXiv:1505.05571, 2015), written for Numba. Every finite float64 is an integer
mantissa times a power of two, so a sum of floats is an integer multiple of 2**-1074. The state
keeps that integer exactly, spread over one int64 *bin* per binary exponent; adding a value is one
integer addition into the bin of its exponent. Integer addition is associative, so the state (and
the correctly rounded value read from it) does not depend on the order of the additions, on how the
input was split into chunks, or on how the partial states were merged. That is what lets a
reduction split over threads give the same bits for every thread count.

State layout (one 1-D ``int64`` array of length ``ACC_LEN``, zero-initialised)::

    acc[0]                  unused, always 0
    acc[e], 1 <= e < N_BINS bin e; it is worth  acc[e] * 2**(e - 1075)
    acc[FLAG_NAN]           1 once a NaN was added
    acc[FLAG_POS_INF]       1 once +inf was added
    acc[FLAG_NEG_INF]       1 once -inf was added
    acc[FLAG_NEG_ZERO]      1 once -0.0 was added
    acc[FLAG_OTHER]         1 once any finite value other than -0.0 was added
    (a few spare slots pad the row to a multiple of 64 bytes)

A normal value with biased exponent E (1..2046) is ``m * 2**(E - 1075)`` with the 53-bit integer
``m = 2**52 | fraction``; a subnormal is ``fraction * 2**(1 - 1075)``, so it goes to bin 1 with
its raw fraction. Bins 2047 and up only ever receive carries.

Invariant: between operations every bin satisfies ``|acc[e]| <= BIN_LIMIT = 2**62 - 1``. One add
moves a bin by less than 2**53 and one merge adds two bins that each obey the invariant, so
neither can overflow int64; a bin found above the limit afterwards is *carried*: its high part
``c = acc[e] >> 32`` moves exactly into bin ``e + 32``, whose unit is exactly 2**32 times larger.
With mantissas below 2**53 a bin needs at least 2**9 additions before it carries, so the carry
branch is almost never taken and costs nothing on the hot path.

The bins above the direct ones make overflow impossible in practice: bin 2046 carries into 2078,
which carries into 2110; for bin 2110 (unit 2**1035) to pass 2**62 the values added would have to
total about 2**1097, i.e. more than 2**72 values near DBL_MAX. Bins at 2144 and above therefore
never carry (they have no bin 32 above them and could not overflow in any feasible computation).

Signed zeros follow IEEE round-to-nearest addition (and ``np.sum``, and ``math.fsum`` from Python
3.12 on): the result is -0.0 only when at least one value was added and every value added was
-0.0; an exact zero reached any other way is +0.0, and the empty sum is +0.0. (``math.fsum`` on
Python 3.10/3.11 returns +0.0 even for ``[-0.0]``.)

Special values do not raise: the result is NaN when a NaN, or both +inf and -inf, were added;
otherwise +inf/-inf when that infinity was added; a finite exact sum whose correctly rounded value
is out of range gives +-inf, as IEEE arithmetic would (``math.fsum`` raises OverflowError there).

Everything here is compiled with no fast-math flag: the exactness rests on integer arithmetic done
exactly as written, and specials are detected on the bit pattern. A caller that inlines
``acc_add`` into a loop compiled with fast-math flags must still leave out ``nnan``/``ninf``: under
them LLVM may treat a NaN or infinite ``x`` as impossible, and the special-value slots would then
never be set. (Under ``nsz`` a computed -0.0 may arrive as +0.0, which only matters for the sign
of an all-negative-zero sum.)

Bit patterns are read and written with ``_simd``'s bit casts (``float_to_bits``/``bits_to_float``
on float64/int64); everything else here is plain Numba.
"""

import numpy as np
from numba import njit

from ._simd import bits_to_float as _bits_to_f64
from ._simd import float_to_bits as _f64_to_bits

# --- layout -------------------------------------------------------------------------------------

N_BINS = 2176
"""Bins 0..2175: direct bins 1..2046 plus 4 * 32 carry bins (canonical form uses bins 32*i + 1
for i <= 67, which is why there are more than the 2110 that carries alone could reach)."""

FLAG_NAN = N_BINS
FLAG_POS_INF = N_BINS + 1
FLAG_NEG_INF = N_BINS + 2
FLAG_NEG_ZERO = N_BINS + 3
FLAG_OTHER = N_BINS + 4
N_FLAGS = 5

ACC_LEN = N_BINS + 8
"""Length of one accumulator row: bins, 5 flags, 3 spare slots (17,472 bytes: 64-byte multiple)."""

# Module-level int64 constants: Numba freezes globals, and keeping them np.int64 stops a literal
# such as 1 << 63 from being typed uint64 (int64 op uint64 is float64 in Numba's typing rules).
_BIN_LIMIT = np.int64((1 << 62) - 1)
_CARRY_SHIFT = np.int64(32)
_MANT_MASK = np.int64((1 << 52) - 1)
_HIDDEN_BIT = np.int64(1 << 52)
_EXP_MASK = np.int64(0x7FF)
_MASK32 = np.int64(0xFFFFFFFF)
_SIGN_BIT = np.int64(-(1 << 63))
_INF_BITS = np.int64(0x7FF0000000000000)
_NAN_BITS = np.int64(0x7FF8000000000000)

# 32-bit limbs of the exact integer (in units of 2**-1074) while folding: bit offsets go up to
# 2174 + 63 (a full int64 bin), plus headroom for the carries and the sign.
N_LIMBS = 72
# Highest limb that canonical form can store back (bin 32 * 67 + 1 = 2145 < N_BINS).
MAX_CANONICAL_LIMB = (N_BINS - 2) // 32

# --- adding -------------------------------------------------------------------------------------


@njit(cache=True)
def _carry(acc, e):
    """Move the high part of bin e up by 32 bins until every touched bin is within the limit.

    A function of its own because it is cold (about once per 2**9 additions to a bin); whether
    LLVM inlines it or not, the hot path only pays for the compare that guards it.
    """
    while e + 32 < N_BINS:
        b = acc[e]
        if -_BIN_LIMIT <= b <= _BIN_LIMIT:
            return
        carry = b >> _CARRY_SHIFT  # arithmetic shift: floor, so the remainder is in [0, 2**32)
        acc[e] = b - (carry << _CARRY_SHIFT)
        e += 32
        acc[e] += carry


@njit(cache=True)
def _add_special(acc, bits):
    """Record an infinity or a NaN (exponent field all ones); out of line because it is rare."""
    if bits & _MANT_MASK:
        acc[FLAG_NAN] = 1
    elif bits < 0:
        acc[FLAG_NEG_INF] = 1
    else:
        acc[FLAG_POS_INF] = 1


@njit(inline="always", cache=True)
def acc_add(acc, x):
    """Add one float (float64, or float32, which converts to float64 exactly) to ``acc``.

    The hot path: a bit cast, a few integer operations and one read-modify-write of the bin; the
    rare cases (specials, zeros, carries) branch off. Inlined into the caller by Numba, so a
    kernel's row loop can call it once per value at no call cost. Integers are converted
    with ``np.float64`` first (rounded if beyond 2**53).
    """
    bits = _f64_to_bits(np.float64(x))
    e = (bits >> 52) & _EXP_MASK
    m = bits & _MANT_MASK
    if e == _EXP_MASK:
        _add_special(acc, bits)
        return
    if e == 0:
        if m == 0:
            # Zeros add nothing; they only decide the sign of an exact-zero result.
            if bits < 0:
                acc[FLAG_NEG_ZERO] = 1
            else:
                acc[FLAG_OTHER] = 1
            return
        e = 1  # subnormal: raw fraction, same unit as bin 1
    else:
        m |= _HIDDEN_BIT
    if bits < 0:
        m = -m
    acc[FLAG_OTHER] = 1
    b = acc[e] + m
    acc[e] = b
    if b > _BIN_LIMIT or b < -_BIN_LIMIT:
        _carry(acc, e)


@njit(cache=True)
def acc_add_array(acc, values):
    """Add every element of a 1-D array (any float dtype, any stride) to ``acc``."""
    for i in range(values.shape[0]):
        acc_add(acc, values[i])


# --- adding a block at once ----------------------------------------------------------------------

BLOCK = 1024
"""Most values ``acc_add_block`` takes in one call: 1024 integers below 2**53 sum below 2**63."""

_ABS_BITS = np.int64(0x7FFFFFFFFFFFFFFF)
_MAX_LEVELS = 3


@njit(inline="always", cache=True)
def _pow2(k):
    """2.0**k for -1022 <= k <= 1023, from its bits."""
    return _bits_to_f64(np.int64(1023 + k) << 52)


@njit(inline="always", cache=True)
def _level(x, f, g):
    """(k, r) with k = trunc(x / u) and r = x - k u exactly, for the unit u = g = 1 / f (a power of
    two) and |x / u| < 2**53. k converts to float64 exactly, k u is a multiple of u no larger than
    |x|, and r (|r| < u, same sign as x) is a multiple of ulp(x) no larger than |x|: representable,
    so the subtraction is exact. Every operation is plain IEEE arithmetic (no contraction)."""
    k = np.int64(x * f)
    return k, x - np.float64(k) * g


@njit(cache=True)
def _add_scaled(acc, e, k):
    """acc += k * 2**(e - 1075) for |k| < 2**63: the low 32 bits into bin e, the rest into bin
    e + 32 (both in range: e <= 2046), each carried if it passed the limit."""
    hi = k >> _CARRY_SHIFT
    b = acc[e] + (k - (hi << _CARRY_SHIFT))
    acc[e] = b
    if b > _BIN_LIMIT:
        _carry(acc, e)
    b = acc[e + 32] + hi
    acc[e + 32] = b
    if b > _BIN_LIMIT or b < -_BIN_LIMIT:
        _carry(acc, e + 32)


@njit(cache=True)
def acc_add_block(acc, values, n):
    """Add ``values[:n]`` (float64, or float32: exact in float64; n <= ``BLOCK``) to ``acc``.

    The same value and flags as ``n`` calls of ``acc_add`` (so the same canonical state, see
    ``acc_normalize``), with vectorised integer sums instead of one bin update per value.

    The largest magnitude fixes a unit u1 = ulp of its binade; each value splits exactly into
    trunc(x / u1) u1 plus a remainder below u1, whose own 53 bits are cut the same way at
    u2 = u1 / 2**53, and so on (``_level``). The smallest nonzero magnitude says how many levels
    leave no remainder at all (at most ``_MAX_LEVELS``, i.e. magnitudes within 2**159 of each
    other); the integers of each level are summed in int64 (n < 2**10 values below 2**53) and added
    to the bin of their unit. A block with an infinity, a NaN, only zeros, or a wider spread of
    magnitudes, or values below about 2**-860, takes the one-at-a-time path, as does any block
    when n > ``BLOCK``.
    """
    top = np.int64(0)
    low = _ABS_BITS
    negative_zero = False
    for t in range(n):
        b = _f64_to_bits(np.float64(values[t]))
        a = b & _ABS_BITS
        top = max(top, a)
        low = min(low, a if a != 0 else _ABS_BITS)
        negative_zero |= b == _SIGN_BIT
    e_top = top >> 52
    e_low = max(np.int64(1), low >> 52)  # a subnormal's unit is bin 1's
    levels = 1 + (e_top - e_low + 52) // 53
    if n > BLOCK or top == 0 or e_top == _EXP_MASK or levels > _MAX_LEVELS or e_top < 53 * levels:
        for t in range(n):
            acc_add(acc, values[t])
        return
    # Level l's unit is 2**s with s = e_top - 1075 - 53 (l - 1) >= -1022 (checked above), so
    # 2**-s is a float64; |x| < 2**(e_top - 1022) keeps |x / u1| below 2**53.
    s1 = e_top - 1075
    k1 = np.int64(0)
    k2 = np.int64(0)
    k3 = np.int64(0)
    f1, g1 = _pow2(-s1), _pow2(s1)
    if levels == 1:
        for t in range(n):
            k1 += np.int64(np.float64(values[t]) * f1)
    elif levels == 2:
        f2 = _pow2(53 - s1)
        for t in range(n):
            k, r = _level(np.float64(values[t]), f1, g1)
            k1 += k
            k2 += np.int64(r * f2)
    else:
        f2, g2 = _pow2(53 - s1), _pow2(s1 - 53)
        f3 = _pow2(106 - s1)
        for t in range(n):
            k, r = _level(np.float64(values[t]), f1, g1)
            k1 += k
            k, r = _level(r, f2, g2)
            k2 += k
            k3 += np.int64(r * f3)
    acc[FLAG_OTHER] = 1  # the flags acc_add would set: a nonzero value, and any -0.0
    if negative_zero:
        acc[FLAG_NEG_ZERO] = 1
    _add_scaled(acc, e_top, k1)
    if levels >= 2:
        _add_scaled(acc, e_top - 53, k2)
    if levels >= 3:
        _add_scaled(acc, e_top - 106, k3)


@njit(cache=True)
def acc_merge(dst, src):
    """``dst += src`` exactly; ``src`` is left unchanged.

    Bins are added in increasing order and each is carried at once if it passed the limit, so the
    bin 32 above (which a carry feeds) is back within the limit before its own turn comes.
    """
    for e in range(1, N_BINS):
        s = src[e]
        if s != 0:
            b = dst[e] + s
            dst[e] = b
            if b > _BIN_LIMIT or b < -_BIN_LIMIT:
                _carry(dst, e)
    for f in range(N_BINS, N_BINS + N_FLAGS):
        dst[f] |= src[f]


@njit(cache=True)
def acc_clear(acc):
    """Reset ``acc`` to the empty sum."""
    acc[:] = 0


# --- reading ------------------------------------------------------------------------------------


@njit(cache=True)
def _to_limbs(acc, limbs):
    """Write |exact sum| (in units of 2**-1074) into 32-bit limbs; return its sign (-1, 0, 1)."""
    return to_limbs_range(acc, 1, N_BINS, limbs)


@njit(cache=True)
def to_limbs_range(acc, lo, hi, limbs):
    """``_to_limbs`` of an accumulator whose bins outside ``lo <= e < hi`` are all 0 (only those
    are read: a per-group state touches a few bins of the 2175).

    Each bin b at bit offset p = e - 1 is split into 32-bit pieces added to the limbs it overlaps.
    Every piece is below 2**32 in magnitude and at most 96 pieces reach one limb, so no limb can
    overflow before one carry-normalising sweep makes every limb a digit in [0, 2**32).
    """
    for i in range(N_LIMBS):
        limbs[i] = 0
    for e in range(lo, hi):
        b = acc[e]
        if b != 0:
            p = e - 1
            k = p >> 5
            s = p & 31
            low = (b & _MASK32) << s  # < 2**63: non-negative
            high = (b >> 32) << s  # |.| < 2**62: signed
            limbs[k] += low & _MASK32
            limbs[k + 1] += (low >> 32) + (high & _MASK32)
            limbs[k + 2] += high >> 32
    carry = np.int64(0)
    nonzero = False
    for i in range(N_LIMBS):
        v = limbs[i] + carry
        carry = v >> 32
        v &= _MASK32
        limbs[i] = v
        if v != 0:
            nonzero = True
    # The final carry is 0 for a non-negative sum, -1 for a negative one (two's complement over
    # the limbs); the magnitude of a negative sum is then the limb-wise complement plus one.
    if carry < 0:
        c = np.int64(1)
        for i in range(N_LIMBS):
            v = (limbs[i] ^ _MASK32) + c
            c = v >> 32
            limbs[i] = v & _MASK32
        return -1
    return 1 if nonzero else 0


@njit(inline="always", cache=True)
def _read_bits(limbs, pos, count):
    """Bits ``pos .. pos + count - 1`` (count <= 32) of the limb array, as an int64."""
    k = pos >> 5
    s = pos & 31
    v = limbs[k] >> s
    if s + count > 32:
        v |= limbs[k + 1] << (32 - s)
    return v & ((np.int64(1) << count) - 1)


@njit(cache=True)
def _bit_length(v):
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


@njit(cache=True)
def acc_value(acc):
    """The exact sum in ``acc`` correctly rounded to float64 (round half to even).

    Specials first (NaN if a NaN or both infinities were added, else the infinity added), then the
    exact integer is folded into limbs and its top 53 bits are rounded using the next bit and a
    sticky bit for everything below. ``acc`` is not modified.
    """
    return acc_value_range(acc, 1, N_BINS, np.empty(N_LIMBS, np.int64))


@njit(cache=True)
def acc_value_range(acc, lo, hi, limbs):
    """``acc_value`` of an accumulator whose bins outside ``lo <= e < hi`` are all 0, with
    ``limbs`` (``N_LIMBS`` int64) as scratch: the same code, reading only those bins."""
    if acc[FLAG_NAN] != 0 or (acc[FLAG_POS_INF] != 0 and acc[FLAG_NEG_INF] != 0):
        return _bits_to_f64(_NAN_BITS)
    if acc[FLAG_POS_INF] != 0:
        return _bits_to_f64(_INF_BITS)
    if acc[FLAG_NEG_INF] != 0:
        return _bits_to_f64(_INF_BITS | _SIGN_BIT)

    sign = to_limbs_range(acc, lo, hi, limbs)
    if sign == 0:
        if acc[FLAG_NEG_ZERO] != 0 and acc[FLAG_OTHER] == 0:
            return _bits_to_f64(_SIGN_BIT)
        return 0.0

    top = N_LIMBS - 1
    while limbs[top] == 0:
        top -= 1
    nbits = 32 * top + _bit_length(limbs[top])
    if nbits <= 53:
        # M * 2**-1074 with M < 2**53 is exact, and its bit pattern is M itself: subnormals are
        # M < 2**52 with exponent field 0, and 2**52 <= M < 2**53 is exponent field 1.
        out = limbs[0] | (limbs[1] << 32)
    else:
        low = nbits - 53  # bit offset of the mantissa's last bit
        mant = _read_bits(limbs, low, 32) | (_read_bits(limbs, low + 32, 21) << 32)
        round_bit = _read_bits(limbs, low - 1, 1)
        if round_bit != 0:
            sticky = False
            k = (low - 1) >> 5
            s = (low - 1) & 31
            if limbs[k] & ((np.int64(1) << s) - 1):
                sticky = True
            else:
                for i in range(k):
                    if limbs[i] != 0:
                        sticky = True
                        break
            if sticky or (mant & 1):
                mant += 1
        # value = mant * 2**(low - 1074), so the biased exponent is low + 1 with mant's leading
        # bit as the hidden bit. Adding mant (leading bit included) to low << 52 gives exactly that
        # pattern, and a mantissa that rounded up to 2**53 carries into the exponent by itself (up
        # to exponent field 2047 with fraction 0, which is the pattern of infinity).
        if low >= 2046:
            out = _INF_BITS  # at least 2**1024: beyond DBL_MAX (and low << 52 could wrap)
        else:
            out = (low << 52) + mant
    if sign < 0:
        out |= _SIGN_BIT
    return _bits_to_f64(out)


@njit(cache=True)
def acc_normalize(acc):
    """Rewrite ``acc`` in canonical form; the value (and every later result) is unchanged.

    Canonical form: the exact integer's 32-bit digits, sign applied, in bins 1, 33, 65, ...
    (32 * i + 1); every other bin 0; each flag 0 or 1. Two accumulators holding the same exact sum
    and the same flags are then equal element by element, whatever the order and chunking that
    built them, so serialised states can be compared or hashed.
    """
    limbs = np.empty(N_LIMBS, np.int64)
    sign = _to_limbs(acc, limbs)
    for i in range(MAX_CANONICAL_LIMB + 1, N_LIMBS):
        if limbs[i] != 0:
            # Needs more than 2**78 values near DBL_MAX; leave the (still exact) state as it is.
            return
    for e in range(N_BINS):
        acc[e] = 0
    for i in range(MAX_CANONICAL_LIMB + 1):
        acc[32 * i + 1] = sign * limbs[i]
    for f in range(N_BINS, N_BINS + N_FLAGS):
        acc[f] = 1 if acc[f] != 0 else 0
    for f in range(N_BINS + N_FLAGS, ACC_LEN):
        acc[f] = 0


# --- a whole array ------------------------------------------------------------------------------


def sum_exact(values: np.ndarray) -> float:
    """Correctly rounded sum of a 1-D float array: exact, so the same bits for any order or
    split of the values (kernels sum per chunk of rows and merge the chunks' states)."""
    return _sum_exact_serial(values)


@njit(cache=True)
def _sum_exact_serial(values):
    acc = np.zeros(ACC_LEN, np.int64)
    acc_add_array(acc, values)
    return acc_value(acc)


# --- per group ----------------------------------------------------------------------------------


@njit(inline="always", cache=True)
def _bin_of(x):
    """The bin ``acc_add`` puts the float64 x in (bin 1 for subnormals and zeros)."""
    return max(np.int64(1), (_f64_to_bits(np.float64(x)) >> 52) & _EXP_MASK)


@njit(cache=True)
def group_order(groups, n_groups):
    """(start, order): the positions k of the samples with ``groups[k] == g`` are
    ``order[start[g]:start[g + 1]]``, in increasing k (a counting sort; negative groups are
    left out; every id must be below ``n_groups``)."""
    n = groups.shape[0]
    start = np.zeros(n_groups + 1, np.int64)
    for k in range(n):
        g = groups[k]
        if g >= 0:
            start[g + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    order = np.empty(start[n_groups], np.int64)
    fill = start[:n_groups].copy()
    for k in range(n):
        g = groups[k]
        if g >= 0:
            order[fill[g]] = k
            fill[g] += 1
    return start, order


@njit(nogil=True, cache=True)
def group_sums(groups, values, weights, sums, wsums, counts):
    """For each group g < len(sums): the exact sum of ``values[k]`` over the k with
    ``groups[k] == g`` (``sums[g]``), that of ``weights[k]`` (``wsums[g]``; their count where
    ``weights`` is empty) and their count, each sum correctly rounded once, as ``acc_value``
    gives it: the bits of the sums over that group's values alone, in any order. A negative
    ``groups[k]`` leaves sample k out; every id must be below ``len(sums)`` (the callers
    check them: an id beyond would be written outside the arrays).

    The samples are visited group by group (a counting sort of their positions), through one
    accumulator pair cleared after each group over the bins it touched only, so the time is
    linear in the samples and the groups and the memory a few arrays of the samples' length.
    """
    n_groups = sums.shape[0]
    start, order = group_order(groups, n_groups)
    acc = np.zeros((2, ACC_LEN), np.int64)
    limbs = np.empty(N_LIMBS, np.int64)
    weighted = weights.shape[0] > 0
    for g in range(n_groups):
        lo = N_BINS
        hi = 0
        for j in range(start[g], start[g + 1]):
            k = order[j]
            acc_add(acc[0], values[k])
            b = _bin_of(values[k])
            if weighted:
                acc_add(acc[1], weights[k])
                b2 = _bin_of(weights[k])
                lo = min(lo, b2)
                hi = max(hi, b2)
            lo = min(lo, b)
            hi = max(hi, b)
        count = start[g + 1] - start[g]
        counts[g] = count
        # a bin's carries climb 32 bins at a time (at most four levels: see the layout), so
        # every nonzero bin is in [lo, top): read and cleared there only
        top = min(N_BINS, hi + 4 * 32 + 1)
        sums[g] = acc_value_range(acc[0], lo, top, limbs)
        wsums[g] = acc_value_range(acc[1], lo, top, limbs) if weighted else np.float64(count)
        for e in range(lo, top):
            acc[0, e] = 0
            acc[1, e] = 0
        for f in range(N_BINS, ACC_LEN):
            acc[0, f] = 0
            acc[1, f] = 0
