"""Tests for the exact superaccumulator in fastce._kernels.exactsum.

Every comparison is on bit patterns, never approximate: the accumulator claims the correctly
rounded (round-half-even) value of the exact sum, so anything else is a bug. The truth is computed
with Python integers (every finite float64 is an integer multiple of 2**-1074), independently of
the implementation's limb arithmetic, and cross-checked against ``math.fsum`` and
``float(Fraction)`` where those apply.
"""

import math
import random
import struct
import sys
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    import fastce._kernels.exactsum as xs
except ImportError:  # the package files may not exist yet: import from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fastce._kernels.exactsum as xs

DBL_MAX = sys.float_info.max
TINY = 5e-324  # 2**-1074, the smallest subnormal
INF = math.inf
SCALE = 1074  # value = integer * 2**-SCALE for every finite float64


# --- reference --------------------------------------------------------------------------------


def bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def same(a: float, b: float) -> bool:
    """Bit equality, except that any NaN equals any NaN (payloads are not promised)."""
    if math.isnan(a) and math.isnan(b):
        return True
    return bits(a) == bits(b)


def assert_same(got: float, want: float, context: object = "") -> None:
    assert same(got, want), (
        f"got {got!r} ({bits(got):#x}), want {want!r} ({bits(want):#x}) {context}"
    )


def to_scaled_int(x: float) -> int:
    """x * 2**1074 exactly (an integer for every finite float64)."""
    p, q = x.as_integer_ratio()
    return p * ((1 << SCALE) // q)


def round_scaled(n: int) -> float:
    """n * 2**-1074 rounded to nearest float64, ties to even, overflowing to +-inf."""
    if n == 0:
        return 0.0
    sign = -1.0 if n < 0 else 1.0
    m = abs(n)
    shift = max(0, m.bit_length() - 53)
    mant, rem = m >> shift, m & ((1 << shift) - 1)
    if shift:
        half = 1 << (shift - 1)
        if rem > half or (rem == half and mant & 1):
            mant += 1
    try:
        return sign * math.ldexp(mant, shift - SCALE)
    except OverflowError:
        return sign * INF


def reference_sum(values) -> float:
    """The documented semantics, from exact integer arithmetic."""
    values = [float(v) for v in values]
    if any(math.isnan(v) for v in values):
        return math.nan
    pos, neg = INF in values, -INF in values
    if pos and neg:
        return math.nan
    if pos or neg:
        return INF if pos else -INF
    total = sum(to_scaled_int(v) for v in values)
    if total == 0:
        all_negative_zero = bool(values) and all(bits(v) == bits(-0.0) for v in values)
        return -0.0 if all_negative_zero else 0.0
    return round_scaled(total)


def fsum_compatible(values) -> float | None:
    """math.fsum's answer where its semantics coincide with ours, else None."""
    values = [float(v) for v in values]
    if any(not math.isfinite(v) for v in values):
        return None  # fsum raises for inf + -inf
    try:
        r = math.fsum(values)
    except OverflowError:
        return None  # intermediate overflow: fsum gives up, we do not
    if r == 0:
        return None  # fsum([-0.0]) is +0.0 before Python 3.12
    return r


# --- helpers around the kernels -----------------------------------------------------------------


def new_acc() -> np.ndarray:
    return np.zeros(xs.ACC_LEN, np.int64)


def acc_of(values) -> np.ndarray:
    acc = new_acc()
    xs.acc_add_array(acc, np.asarray(values, dtype=np.float64))
    return acc


def value_of(values) -> float:
    return float(xs.acc_value(acc_of(values)))


def check_invariant(acc: np.ndarray) -> None:
    bins = acc[: xs.N_BINS]
    assert bins[0] == 0
    assert np.all(np.abs(bins) <= (1 << 62) - 1)
    assert set(np.unique(acc[xs.N_BINS : xs.N_BINS + xs.N_FLAGS])) <= {0, 1}


@numba.njit(parallel=True)
def _chunked_from_another_module(values, nchunks):
    # The pattern other kernels follow: acc_add inlined into a prange body defined elsewhere.
    n = values.shape[0]
    accs = np.zeros((nchunks, xs.ACC_LEN), np.int64)
    size = (n + nchunks - 1) // nchunks
    for k in numba.prange(nchunks):
        row = accs[k]
        for i in range(k * size, min(n, (k + 1) * size)):
            xs.acc_add(row, values[i])
    for k in range(1, nchunks):
        xs.acc_merge(accs[0], accs[k])
    return xs.acc_value(accs[0])


@numba.njit(nogil=True)
def _add_chunk(values, acc):
    xs.acc_add_array(acc[0], values)


def _pool_chunked(values, nchunks):
    """The launcher's pattern: chunks of values summed by a serial kernel on fastce's thread
    pool into the state of the thread that takes them, then the states merged exactly."""
    from fastce import _launch

    accs = np.zeros((_launch.slots(nchunks), xs.ACC_LEN), np.int64)
    _launch.call_rows(
        _add_chunk, values.shape[0], nchunks, lambda r, k: (values[r], accs[k : k + 1])
    )
    for k in range(1, accs.shape[0]):
        xs.acc_merge(accs[0], accs[k])
    return xs.acc_value(accs[0])


@numba.njit(fastmath={"reassoc", "contract", "arcp", "nsz", "afn"})
def _sum_in_flagged_kernel(values):
    # The project's named fast-math flag set (no nnan/ninf) on the caller must not matter.
    acc = np.zeros(xs.ACC_LEN, np.int64)
    for i in range(values.shape[0]):
        xs.acc_add(acc, values[i])
    return xs.acc_value(acc)


# --- strategies ---------------------------------------------------------------------------------

any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
finite_float = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, width=64)


@st.composite
def cancelling_lists(draw):
    """Values plus most of their negations, shuffled: the sum is tiny next to the terms."""
    base = draw(st.lists(finite_float, min_size=1, max_size=30))
    extra = draw(st.lists(finite_float, max_size=5))
    keep = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
    values = base + [-v for v, k in zip(base, keep, strict=True) if k] + extra
    draw(st.randoms()).shuffle(values)
    return values


@st.composite
def scaled_floats(draw):
    """Floats with a random sign, 53-bit mantissa and any exponent (including subnormal/huge)."""
    mant = draw(st.integers(0, (1 << 53) - 1))
    exp = draw(st.integers(-1074, 971))
    sign = draw(st.sampled_from([-1, 1]))
    try:
        return sign * math.ldexp(mant, exp)
    except OverflowError:
        return sign * DBL_MAX


# --- basic semantics ----------------------------------------------------------------------------


def test_layout_constants():
    assert xs.ACC_LEN >= xs.N_BINS + xs.N_FLAGS
    assert xs.ACC_LEN * 8 % 64 == 0
    assert (
        len({xs.FLAG_NAN, xs.FLAG_POS_INF, xs.FLAG_NEG_INF, xs.FLAG_NEG_ZERO, xs.FLAG_OTHER}) == 5
    )


def test_empty_is_positive_zero():
    assert_same(value_of([]), 0.0)
    assert_same(xs.sum_exact(np.empty(0)), 0.0)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([-0.0], -0.0),
        ([-0.0, -0.0, -0.0], -0.0),
        ([0.0], 0.0),
        ([-0.0, 0.0], 0.0),
        ([0.0, -0.0], 0.0),
        ([1.0, -1.0], 0.0),
        ([-1.0, 1.0], 0.0),
        ([-0.0, 1.0, -1.0], 0.0),
        ([-1e-300, -0.0, 1e-300], 0.0),
        ([TINY, -TINY, -0.0], 0.0),
        ([-TINY, -0.0], -TINY),
    ],
)
def test_signed_zero(values, want):
    assert_same(value_of(values), want, values)
    assert_same(xs.sum_exact(np.array(values, dtype=np.float64)), want, values)
    assert_same(reference_sum(values), want, values)


def test_signed_zero_survives_merge():
    negzero, poszero, cancelled = acc_of([-0.0]), acc_of([0.0]), acc_of([2.0, -2.0])
    for other, want in [(negzero, -0.0), (poszero, 0.0), (cancelled, 0.0), (new_acc(), -0.0)]:
        dst = acc_of([-0.0])
        xs.acc_merge(dst, other)
        assert_same(xs.acc_value(dst), want)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([INF], INF),
        ([-INF], -INF),
        ([INF, 1.0, -DBL_MAX], INF),
        ([-INF, DBL_MAX, DBL_MAX], -INF),
        ([INF, INF], INF),
        ([INF, -INF], math.nan),
        ([math.nan], math.nan),
        ([1.0, math.nan, 2.0], math.nan),
        ([INF, math.nan], math.nan),
        ([-INF, -math.nan], math.nan),
        ([DBL_MAX, DBL_MAX], INF),
        ([-DBL_MAX, -DBL_MAX], -INF),
    ],
)
def test_special_values(values, want):
    assert_same(value_of(values), want, values)
    assert_same(reference_sum(values), want, values)


def test_nan_payloads_and_quiet_nan_result():
    signalling = struct.unpack("<d", struct.pack("<q", 0x7FF0000000000001))[0]
    got = value_of([1.0, signalling])
    assert math.isnan(got)


# --- rounding -----------------------------------------------------------------------------------


def ulp_up(x: float) -> float:
    return math.nextafter(x, INF)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        # 1 + 2**-53 is exactly half-way between 1 and 1 + 2**-52: ties go to the even (1.0).
        ([1.0, 2.0**-53], 1.0),
        # ... and anything beyond the half, however small and far down, rounds up.
        ([1.0, 2.0**-53, TINY], ulp_up(1.0)),
        ([1.0, 2.0**-53, -TINY], 1.0),
        # 1 + 2**-52 is odd: the tie goes up to 1 + 2**-51.
        ([ulp_up(1.0), 2.0**-53], ulp_up(ulp_up(1.0))),
        ([-ulp_up(1.0), -(2.0**-53)], -ulp_up(ulp_up(1.0))),
        # Ties across limb boundaries and at large exponents.
        ([2.0**100, 2.0**47], 2.0**100),
        ([2.0**100, 2.0**47, 2.0**-1000], ulp_up(2.0**100)),
        ([2.0**1000 + 2.0**948, 2.0**947], 2.0**1000 + 2.0**949),
        # A rounding carry that moves into the next binade.
        ([2.0 - 2.0**-52, 2.0**-53], 2.0),
        # The largest finite value and the overflow boundary (DBL_MAX's mantissa is odd, so the
        # exact half-way point DBL_MAX + 2**970 rounds to even, i.e. up, i.e. to infinity).
        ([DBL_MAX, 2.0**969], DBL_MAX),
        ([DBL_MAX, 2.0**970, -TINY], DBL_MAX),
        ([DBL_MAX, 2.0**970], INF),
        ([-DBL_MAX, -(2.0**970)], -INF),
        # Subnormal results and the subnormal/normal boundary are exact.
        ([TINY, TINY, TINY], 3 * TINY),
        ([2.0**-1022, -TINY], math.nextafter(2.0**-1022, 0.0)),
        ([2.0**-1023, 2.0**-1023], 2.0**-1022),
        ([-(2.0**-1023), -(2.0**-1074), -(2.0**-1023)], -ulp_up(2.0**-1022)),
    ],
)
def test_rounding_cases(values, want):
    assert_same(reference_sum(values), want, values)  # the reference agrees with the hand result
    assert_same(value_of(values), want, values)


def test_huge_cancellation():
    assert_same(value_of([1e300, 1.0, -1e300]), 1.0)
    assert_same(value_of([DBL_MAX, 1e-300, -DBL_MAX]), 1e-300)
    assert_same(value_of([TINY, DBL_MAX, -DBL_MAX, TINY]), 2 * TINY)
    rng = np.random.default_rng(1)
    big = rng.standard_normal(1000) * 1e200
    small = rng.standard_normal(50) * 1e-200
    values = np.concatenate([big, small, -big])
    rng.shuffle(values)
    want = reference_sum(values)
    assert_same(want, math.fsum(small))
    assert_same(value_of(values), want)


def test_near_dbl_max_cancels_back_to_finite():
    values = [DBL_MAX] * 1000 + [-DBL_MAX] * 999 + [-(2.0**970)]
    random.Random(0).shuffle(values)
    want = DBL_MAX - 2.0**970  # exact, and representable
    assert_same(reference_sum(values), want)
    assert_same(value_of(values), want)
    with pytest.raises(OverflowError):
        math.fsum([DBL_MAX, DBL_MAX, -DBL_MAX])  # where we differ from fsum on purpose
    assert_same(value_of([DBL_MAX, DBL_MAX, -DBL_MAX]), DBL_MAX)


def test_wide_dynamic_range_mixed_signs():
    rng = np.random.default_rng(2)
    n = 20_000
    values = rng.choice([-1.0, 1.0], n) * rng.random(n) * 10.0 ** rng.uniform(-300, 300, n)
    want = reference_sum(values)
    assert_same(want, math.fsum(values))
    assert_same(value_of(values), want)
    assert_same(xs.sum_exact(values), want)


def test_subnormals():
    rng = np.random.default_rng(3)
    sub = rng.integers(-(1 << 52), 1 << 52, 5000) * TINY  # every subnormal magnitude, both signs
    assert_same(value_of(sub), reference_sum(sub))
    mixed = np.concatenate([sub, [2.0**-1022, -(2.0**-1021), 1e-310, -3e-320]])
    rng.shuffle(mixed)
    assert_same(value_of(mixed), reference_sum(mixed))


# --- property tests -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(any_float, max_size=40))
def test_matches_reference_any_floats(values):
    got = value_of(values)
    assert_same(got, reference_sum(values), values)
    fs = fsum_compatible(values)
    if fs is not None:
        assert_same(got, fs, values)


@settings(max_examples=300, deadline=None)
@given(cancelling_lists())
def test_matches_reference_with_cancellation(values):
    got = value_of(values)
    assert_same(got, reference_sum(values), values)
    fs = fsum_compatible(values)
    if fs is not None:
        assert_same(got, fs, values)


@settings(max_examples=200, deadline=None)
@given(st.lists(scaled_floats(), min_size=1, max_size=60))
def test_matches_fraction(values):
    want = Fraction(0)
    for v in values:
        want += Fraction(v)
    try:
        via_fraction = float(want)
    except OverflowError:
        via_fraction = INF if want > 0 else -INF  # copysign would call float(want)
    if want == 0:
        via_fraction = reference_sum(values)  # the sign rule for zero is ours, not Fraction's
    assert_same(value_of(values), via_fraction, values)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(any_float, max_size=60),
    st.integers(1, 8),
    st.randoms(use_true_random=False),
)
def test_order_split_and_merge_independence(values, nparts, rnd):
    """Any permutation, split into parts and merge tree: same bits and same canonical state."""
    want = value_of(values)
    reference_state = acc_of(values)
    xs.acc_normalize(reference_state)

    shuffled = list(values)
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.randint(0, len(shuffled)) for _ in range(nparts - 1))
    parts = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    accs = [acc_of(p) for p in parts]
    while len(accs) > 1:  # merge random pairs until one is left
        i, j = rnd.sample(range(len(accs)), 2)
        xs.acc_merge(accs[i], accs[j])
        check_invariant(accs[i])
        accs.pop(j)
    merged = accs[0]
    assert_same(xs.acc_value(merged), want, values)
    xs.acc_normalize(merged)
    np.testing.assert_array_equal(merged, reference_state)
    assert_same(xs.acc_value(merged), want, values)


# --- the accumulator's operations ---------------------------------------------------------------


def test_acc_add_single_values_and_float32():
    acc = new_acc()
    for v in (0.1, 0.2, 0.3, -0.6):
        xs.acc_add(acc, v)
    assert_same(xs.acc_value(acc), reference_sum([0.1, 0.2, 0.3, -0.6]))
    f32 = np.array([0.1, 1e30, -1e30, 3e-39], dtype=np.float32)  # the last is float32-subnormal
    acc32 = new_acc()
    xs.acc_add_array(acc32, f32)
    assert_same(xs.acc_value(acc32), reference_sum(f32.astype(np.float64)))


def test_inlined_into_kernel_with_fast_math_flags():
    rng = np.random.default_rng(6)
    values = rng.standard_normal(10_000) * 10.0 ** rng.integers(-300, 300, 10_000)
    assert_same(_sum_in_flagged_kernel(values), reference_sum(values))
    assert math.isnan(_sum_in_flagged_kernel(np.array([1.0, math.inf, -math.inf])))
    assert_same(_sum_in_flagged_kernel(np.array([DBL_MAX, DBL_MAX, -DBL_MAX])), DBL_MAX)


def test_strided_input():
    values = np.random.default_rng(4).standard_normal(1001) * 1e10
    assert_same(value_of(values[::3]), reference_sum(values[::3]))
    assert_same(xs.sum_exact(values[::-2]), reference_sum(values[::-2]))


def test_acc_value_does_not_modify_state():
    acc = acc_of([1.0, 2.0**-60, -3e300, 3e300, TINY])
    before = acc.copy()
    xs.acc_value(acc)
    np.testing.assert_array_equal(acc, before)


def test_clear():
    acc = acc_of([1.0, math.nan, -0.0, INF])
    xs.acc_clear(acc)
    assert not acc.any()
    assert_same(xs.acc_value(acc), 0.0)


def test_normalize_keeps_value_and_state_stays_usable():
    values = [1e300, -3.5, 2.0**-1074, 7e-200, -1e300, 12345.678]
    acc = acc_of(values)
    want = xs.acc_value(acc)
    xs.acc_normalize(acc)
    check_invariant(acc)
    assert_same(xs.acc_value(acc), want)
    again = acc.copy()
    xs.acc_normalize(again)
    np.testing.assert_array_equal(again, acc)  # idempotent
    xs.acc_add_array(acc, np.array([1e-10, -2.0]))
    assert_same(xs.acc_value(acc), reference_sum([*values, 1e-10, -2.0]))


def test_normalize_distinguishes_flags_and_signs():
    states = {}
    for name, values in {
        "negzero": [-0.0],
        "poszero": [0.0],
        "cancelled": [1.0, -1.0],
        "one": [1.0],
        "minus_one": [-1.0],
        "nan": [math.nan],
    }.items():
        acc = acc_of(values)
        xs.acc_normalize(acc)
        states[name] = acc.tobytes()
    # +0.0 added and an exact cancellation are the same state: same exact sum, same flags.
    assert states["poszero"] == states["cancelled"]
    del states["cancelled"]
    assert len(set(states.values())) == len(states)


# --- carries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [2.0 - 2.0**-52, -(2.0 - 2.0**-52), math.nextafter(TINY * 2**52, 0)]
)
def test_carry_many_identical_max_mantissa_values(value):
    """10**6 copies into one bin: far past the 2**9 additions after which a bin must carry."""
    n = 10**6
    values = np.full(n, value)
    want = round_scaled(n * to_scaled_int(value))
    assert_same(want, float(Fraction(value) * n))
    acc = acc_of(values)
    check_invariant(acc)
    assert_same(xs.acc_value(acc), want)
    assert_same(xs.sum_exact(values), want)


def test_carry_chains_into_the_highest_bins():
    """2**20 copies of DBL_MAX carry twice above the top exponent; cancelling brings it back."""
    n = 1 << 20
    up = acc_of(np.full(n, DBL_MAX))
    check_invariant(up)
    assert np.any(up[2047 : xs.N_BINS] != 0)
    assert_same(xs.acc_value(up), INF)
    down = acc_of(np.full(n - 1, -DBL_MAX))
    xs.acc_merge(up, down)
    check_invariant(up)
    assert_same(xs.acc_value(up), DBL_MAX)
    xs.acc_add(up, -(2.0**970))
    assert_same(xs.acc_value(up), DBL_MAX - 2.0**970)


def test_merge_carries_when_both_sides_are_large():
    """Merging two nearly full bins must carry rather than overflow int64."""
    values = np.full(511, 2.0 - 2.0**-52)  # 511 * (2**53 - 1) < 2**62: no carry yet
    a, b = acc_of(values), acc_of(values)
    for _ in range(20):  # 2**20-fold doubling by self-merges
        xs.acc_merge(a, a.copy())
        check_invariant(a)
    xs.acc_merge(a, b)
    check_invariant(a)
    n = 511 * (2**20 + 1)
    assert_same(xs.acc_value(a), round_scaled(n * to_scaled_int(2.0 - 2.0**-52)))


# --- large inputs and threads -------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def test_million_values_and_thread_count_independence(restore_threads):
    rng = np.random.default_rng(5)
    n = 10**6
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    want = math.fsum(values)
    results = []
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(threads)
        results.append(xs.sum_exact(values))
    for r in results:
        assert_same(r, want)
    for nchunks in (1, 2, 3, 7, 64):
        assert_same(_pool_chunked(values, nchunks), want, nchunks)
        assert_same(_chunked_from_another_module(values, nchunks), want, nchunks)


def test_thread_count_independence_with_specials_and_zeros(restore_threads):
    values = np.zeros(200_000)
    values[::2] = -0.0
    assert_same(xs.sum_exact(values), 0.0)
    values[:] = -0.0
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(threads)
        assert_same(xs.sum_exact(values), -0.0)
        assert_same(_pool_chunked(values, 5), -0.0)
    values[123_456] = INF
    values[7] = -INF
    assert math.isnan(_pool_chunked(values, 4))


# --- adding a block at once (acc_add_block) -----------------------------------------------------


def block_state(values, block: int = xs.BLOCK) -> np.ndarray:
    """The state after adding ``values`` with acc_add_block, ``block`` values per call."""
    acc = new_acc()
    arr = np.asarray(values, dtype=np.float64)
    for t in range(0, arr.shape[0], block):
        xs.acc_add_block(acc, arr[t:], min(block, arr.shape[0] - t))
    return acc


def assert_block_matches(values, block: int = xs.BLOCK) -> None:
    """Block adds give the reference value, keep the invariant, and leave the same canonical state
    (value and flags) as one acc_add per value."""
    got = block_state(values, block)
    check_invariant(got)
    assert_same(float(xs.acc_value(got)), reference_sum(values), f"{len(values)} values")
    want = acc_of(values)
    xs.acc_normalize(want)
    xs.acc_normalize(got)
    np.testing.assert_array_equal(got, want)


@st.composite
def windowed_floats(draw):
    """Lists whose magnitudes lie within a random window of binades: narrow windows take the
    block path with 1, 2 or 3 levels, wide ones (and tiny values) the one-at-a-time path."""
    width = draw(st.sampled_from([0, 1, 52, 53, 54, 105, 106, 107, 158, 159, 160, 400]))
    low = draw(st.integers(-1074, 971 - width))
    size = draw(st.integers(1, 80))
    values = []
    for _ in range(size):
        mant = draw(st.integers(0, (1 << 53) - 1))
        exp = draw(st.integers(low, low + width))
        sign = draw(st.sampled_from([-1.0, 1.0]))
        values.append(sign * math.ldexp(mant, exp))
    zeros = draw(st.lists(st.sampled_from([0.0, -0.0]), max_size=3))
    values += zeros
    draw(st.randoms()).shuffle(values)
    return values


@settings(max_examples=300, deadline=None)
@given(windowed_floats())
def test_block_add_matches_reference_in_every_window(values):
    assert_block_matches(values)


@settings(max_examples=150, deadline=None)
@given(st.lists(any_float, max_size=40))
def test_block_add_matches_reference_any_floats(values):
    assert_block_matches(values)


@settings(max_examples=150, deadline=None)
@given(cancelling_lists())
def test_block_add_matches_reference_with_cancellation(values):
    assert_block_matches(values, block=7)


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 0.75, -0.25],  # one level
        [3.0, 1e-10, -2.5e-14],  # two
        [7.0, 1e-30, 3e-20],  # three
        [1.0, 1e-60],  # four: one at a time
        [1e-300, 3e-290],  # below the block path's range: one at a time
        [2.0**-1074, 1e-310, 1e-300],  # subnormals
        [-0.0, -0.0],
        [-0.0, 0.0],
        [-0.0, 1.5, -0.0],
        [0.0, 0.0],
        [1.0, math.nan, 2.0],
        [1.0, INF, 2.0],
        [-INF, 1.0],
        [DBL_MAX, DBL_MAX, -DBL_MAX],
    ],
)
def test_block_add_cases(values):
    assert_block_matches(values)
    assert_block_matches(values, block=1)


def test_block_add_takes_the_integer_path():
    # One acc_add per value puts 0.75 in bin 1022; the block path adds both values' integers in
    # units of 2**-52 to bin 1023 (low 32 bits) and bin 1055 (the rest).
    acc = block_state([1.0, 0.75])
    assert acc[1022] == 0
    assert acc[1023] == 0 and acc[1055] == (7 << 50) >> 32
    assert acc_of([1.0, 0.75])[1022] != 0


def test_block_add_full_blocks_at_the_extremes():
    # 1024 integers just below 2**53 sum just below 2**63: the int64 sums' worst case, at the
    # top of the range (overflowing to inf), in the middle, with both signs, and carried.
    top = (2.0 - 2.0**-52) * 2.0**1023
    for value in (top, -top, 2.0 - 2.0**-52, -(2.0 - 2.0**-52)):
        assert_block_matches(np.full(xs.BLOCK, value))
    acc = new_acc()
    block = np.full(xs.BLOCK, 2.0 - 2.0**-52)
    for _ in range(3000):  # bins 1024 and 1056 pass 2**62 and carry
        xs.acc_add_block(acc, block, xs.BLOCK)
    check_invariant(acc)
    assert_same(
        float(xs.acc_value(acc)), round_scaled(3000 * xs.BLOCK * to_scaled_int(2.0 - 2.0**-52))
    )


def test_block_add_longer_than_a_block_and_float32():
    rng = np.random.default_rng(11)
    values = rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 8, 3000)
    assert_block_matches(values, block=xs.BLOCK)
    acc = new_acc()
    xs.acc_add_block(acc, values, values.shape[0])  # n > BLOCK: one at a time, still exact
    assert_same(float(xs.acc_value(acc)), math.fsum(values))
    f32 = values.astype(np.float32)
    acc32 = new_acc()
    for t in range(0, f32.shape[0], xs.BLOCK):
        xs.acc_add_block(acc32, f32[t:], min(xs.BLOCK, f32.shape[0] - t))
    assert_same(float(xs.acc_value(acc32)), math.fsum(f32.astype(np.float64)))
