"""fastce._kernels._simd: every intrinsic against its plain-Numba twin, every patch of a Numba
internal against the Numba installed, and no low-level code anywhere else.

Twins: each intrinsic and its twin in ``_plain`` run in small ``@njit`` wrappers over the same
adversarial inputs (NaN of both signs and with payloads, +-inf, -0.0, subnormals, extreme
exponents, random bit patterns; every length 0 .. 33, so every tail of the 8- and 16-lane loops;
float32 and float64) and must give the same bits. Where an intrinsic adds or multiplies, a NaN
result must be a NaN on both sides (its payload is the hardware's choice of operand).

Patches: each test names the patch in its failure message, so that a Numba upgrade that moves
an internal says which fastce patch to port.
"""

import inspect
import pathlib
import re

import numba
import numpy as np
import pytest
from numba import njit, prange

from fastce._kernels import _plain, _simd

from .probes import probe_bits

LENGTHS = range(34)
FLOATS = [np.float32, np.float64]


def _int_type(dtype):
    return np.int32 if np.dtype(dtype) == np.float32 else np.int64


def _bits(x):
    x = np.asarray(x)
    return x.view(_int_type(x.dtype)) if x.dtype.kind == "f" else x


def assert_same_bits(got, want, nan_payload=True, what=""):
    """Equal bit patterns; with ``nan_payload=False`` any two NaNs also count as equal."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype)
    same = _bits(got) == _bits(want)
    if not nan_payload:
        same |= np.isnan(got) & np.isnan(want)
    bad = np.flatnonzero(~same.reshape(-1))[:5]
    got, want = got.reshape(-1)[bad], want.reshape(-1)[bad]
    assert bad.size == 0, f"{what}: differ at {bad}: {got} vs {want}"


def _from_bits(bits, dtype):
    return np.array(bits, dtype=np.uint64 if dtype == np.float64 else np.uint32).view(dtype)


def adversarial(dtype, n, rng):
    """n values of ``dtype``: specials and edge values first (in a shuffled order), then random
    bit patterns and ordinary values."""
    f = np.finfo(dtype)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, f.tiny, -f.tiny, f.max, -f.max]
    specials += [f.smallest_subnormal, -f.smallest_subnormal, f.tiny / 3, 0.5, 2.0, 1e-3, -7.25]
    nans = _from_bits(
        [0x7FF0000000000001, 0xFFF8000000000000, 0x7FF8DEADBEEF0001]
        if dtype == np.float64
        else [0x7F800001, 0xFFC00000, 0x7FC0BEEF],
        dtype,
    )
    special = np.concatenate([np.array(specials, dtype), nans])
    width = 64 if dtype == np.float64 else 32
    random_bits = _from_bits(rng.integers(0, 2**width, n, dtype=np.uint64), dtype)
    ordinary = (rng.normal(size=n) * 10.0 ** rng.integers(-5, 5, n)).astype(dtype)
    pool = np.concatenate([special, random_bits, ordinary])
    return pool[rng.permutation(pool.size)[:n]]


@pytest.fixture
def gen():
    return np.random.default_rng(20261)


# ---------------------------------------------------------------------------------------------
# Scalar intrinsics


# The wrappers close over the function: Numba takes neither an intrinsic nor an overloaded
# function as an argument.
def _map1(f):
    @njit
    def run(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return run


def _map3(f):
    @njit
    def run(a, b, c, out):
        for i in range(a.shape[0]):
            out[i] = f(a[i], b[i], c[i])

    return run


def _run_both(wrap, intrinsic, twin, args, out_like):
    """(intrinsic's outputs, twin's) through ``wrap(f)(*args, out)`` for each."""
    a, b = np.empty_like(out_like), np.empty_like(out_like)
    wrap(intrinsic)(*args, a)
    wrap(twin)(*args, b)
    return a, b


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_to_bits_and_back(dtype, gen):
    x = adversarial(dtype, 4000, gen)
    ints = np.empty(x.size, _int_type(dtype))
    a, b = _run_both(_map1, _simd.float_to_bits, _plain.float_to_bits, (x,), ints)
    assert_same_bits(a, b, what="float_to_bits")
    assert_same_bits(a, x.view(ints.dtype), what="float_to_bits against NumPy's view")
    a, b = _run_both(_map1, _simd.bits_to_float, _plain.bits_to_float, (a,), x)
    assert_same_bits(a, b, what="bits_to_float")
    assert_same_bits(a, x, what="bits_to_float against NumPy's view")


def _fma_cases(dtype, rng, n=20_000):
    """(a, b, c): every combination of the edge values, random bit patterns, and the hard
    cases of a fused multiply-add: c the negated rounded product (the result is the product's
    rounding error), or near it; short mantissas (exact midpoints); extreme exponents."""
    f = np.finfo(dtype)
    edge = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.5, f.tiny, f.smallest_subnormal, f.max]
        + [-f.max, 2.0 ** (f.maxexp // 2), 2.0 ** (f.minexp // 2), 3.0 * f.smallest_subnormal],
        dtype,
    )
    a, b, c = (g.ravel() for g in np.meshgrid(edge, edge, edge, indexing="ij"))
    parts = [(a, b, c)]
    parts.append(tuple(adversarial(dtype, n, rng) for _ in range(3)))
    with np.errstate(all="ignore"):
        x = (rng.normal(size=n) * 2.0 ** rng.integers(-60, 60, n)).astype(dtype)
        y = (rng.normal(size=n) * 2.0 ** rng.integers(-60, 60, n)).astype(dtype)
        p = -(x.astype(np.float64) * y).astype(dtype)
        near = np.where(rng.random(n) < 0.5, p, np.nextafter(p, dtype(np.inf)))
        parts.append((x, y, near))
        sign = rng.choice([-1.0, 1.0], n)
        short = [
            (rng.integers(1, 2**12, n) * 2.0 ** rng.integers(-30, 0, n) * sign).astype(dtype)
            for _ in range(3)
        ]
        parts.append(tuple(short))
        e = rng.integers(f.minexp - f.nmant, f.maxexp, (3, n))
        wide = np.ldexp(rng.uniform(0.5, 1.0, (3, n)) * rng.choice([-1, 1], (3, n)), e)
        wide[2] = np.where(rng.random(n) < 0.5, -(wide[0] * wide[1]), wide[2])
        parts.append(tuple(wide.astype(dtype)))
    parts.append(_double_rounding_traps(dtype, rng))
    with np.errstate(all="ignore"):  # float64 values beyond float32's range become inf
        return tuple(np.concatenate([part[k] for part in parts]).astype(dtype) for k in range(3))


def _double_rounding_traps(dtype, rng):
    """Triples whose exact a b + c lies within a hair of a midpoint of the result's format, on
    the side that rounding the small parts to nearest first (rather than to odd) loses: the
    small parts then round to the midpoint itself, and the tie breaks the wrong way. Found with
    exact rational arithmetic; scaled by powers of two and with the signs flipped."""
    if dtype == np.float64:  # a b + c = 16 + 2**-49 + 2**-104: rounds up to 16 + 2**-48
        a0, b0 = (float.fromhex(h) for h in ("0x1.0000000000003p0", "0x1.aaaaaaaaaaaabp0"))
        c0 = float.fromhex("0x1.caaaaaaaaaaabp3")
    else:  # a b + c = 2**13 + 3 * 2**-11 - 2**-46: rounds down to 2**13 + 2**-10
        a0, b0, c0 = 1 + 2.0**-23, 1 - 2.0**-23, 8191 + 3 * 2.0**-11
    f = np.finfo(dtype)
    n = 400
    ka, kb = rng.integers(f.minexp // 2, f.maxexp // 2 - 4, (2, n))
    sa, sb = rng.choice([-1.0, 1.0], (2, n))
    return np.ldexp(sa * a0, ka), np.ldexp(sb * b0, kb), np.ldexp(sa * sb * c0, ka + kb)


@pytest.mark.parametrize("dtype", FLOATS)
def test_fma(dtype, gen):
    a, b, c = _fma_cases(dtype, gen)
    got, want = _run_both(_map3, _simd.fma, _plain.fma, (a, b, c), a)
    assert_same_bits(want, got, nan_payload=False, what="fma")


@pytest.mark.parametrize("dtype", FLOATS)
def test_clamp(dtype, gen):
    x = adversarial(dtype, 6000, gen)
    bounds = [(-800.0, 710.0), (-120.0, 89.0), (-40.0, 710.0), (1e-30, 1e-30), (-3.0, 2.5)]
    for lo, hi in bounds:
        lo_, hi_ = np.full(x.size, lo, dtype), np.full(x.size, hi, dtype)
        got, want = _run_both(_map3, _simd.clamp, _plain.clamp, (x, lo_, hi_), x)
        assert_same_bits(got, want, what=f"clamp to [{lo}, {hi}]")
        assert not np.isnan(got).any()


# ---------------------------------------------------------------------------------------------
# Arrays and vector loops


def test_unowned():
    for f in (_simd.unowned, _plain.unowned):

        @njit
        def write_through(a, f=f):
            b = f(a)
            for i in range(b.shape[0]):
                b[i] = 2.0 * i
            return b[-1]

        a = np.zeros(5)
        assert write_through(a) == 8.0
        np.testing.assert_array_equal(a, 2.0 * np.arange(5))


@pytest.mark.parametrize("dtype", FLOATS)
def test_lanes8_sums(dtype, gen):
    sums = [_scalar_of(f) for f in (_simd.lanes8_sum, _plain.lanes8_sum)]
    compensated = [
        _pair_of(f) for f in (_simd.lanes8_sum_compensated, _plain.lanes8_sum_compensated)
    ]
    for length in [*LENGTHS, 100, 1000]:
        for trial in range(4):
            x = adversarial(dtype, length, gen) if trial else gen.normal(size=length)
            if trial == 3:  # no NaN or inf, so that the compensation itself is compared
                x = np.where(np.isfinite(x), x, 1.0)
            x = np.ascontiguousarray(x, dtype)
            for n in sorted({0, length // 2, max(length - 1, 0), length}):
                got, want = (f(x, n) for f in sums)
                assert_same_bits(got, want, nan_payload=False, what=f"lanes8_sum {length} {n}")
                got, want = (f(x, n) for f in compensated)
                assert_same_bits(got, want, nan_payload=False, what=f"compensated {length} {n}")


def _scalar_of(f):
    @njit
    def run(x, n):
        return f(x, n)

    return lambda x, n: np.array([run(x, n)])


def _pair_of(f):
    @njit
    def run(x, n):
        return f(x, n)

    return lambda x, n: np.array(run(x, n))


def test_lanes8_max_f64(gen):
    both = [_scalar_of(f) for f in (_simd.lanes8_max_f64, _plain.lanes8_max_f64)]
    for length in LENGTHS:
        for _ in range(6):
            x = adversarial(np.float64, length, gen)
            for n in range(0, length + 1, 8):
                got, want = (f(x, n) for f in both)
                assert_same_bits(got, want, what=f"lanes8_max_f64 {length} {n}")


def _segments(dtype, gen):
    for length in [*LENGTHS, 100]:
        for trial in range(8):
            seg = adversarial(dtype, length, gen)
            if trial == 1:  # ties of the maximum, and its zeros of both signs
                seg = np.round(gen.normal(size=length)).astype(dtype)
                seg[gen.integers(0, max(length, 1), 3)[:length]] = -0.0
            if trial == 2:
                seg = np.full(length, -np.inf, dtype)
            if trial == 3:  # only negative NaNs and -inf: no lane ever updates
                seg = np.where(gen.random(length) < 0.5, -np.inf, -np.nan).astype(dtype)
            yield length, trial, seg


@pytest.mark.parametrize("dtype", FLOATS)
def test_copy_max(dtype, gen):
    name = "copy_max_f32" if dtype == np.float32 else "copy_max_index_f64"
    both = [_pair_of(getattr(module, name)) for module in (_simd, _plain)]
    for length, trial, seg in _segments(dtype, gen):
        results = []
        for f in both:
            buf = np.full(((length + 15) & ~15) + 8, 7.0)  # 8 entries past the padding
            out = np.atleast_1d(f(seg, buf))
            results.append((buf, out[:1].astype(np.float64), out[1:].astype(np.int64)))
        what = f"{name} length {length} trial {trial}"
        for got, want in zip(results[0], results[1], strict=True):
            assert_same_bits(got, want, what=what)
        assert np.all(results[0][0][-8:] == 7.0), what


def _into(f):
    @njit
    def run(cols, out):
        f(cols, out)

    return run


def test_lanes16(gen):
    cases = [
        ("lanes_max16", True, [_into(_simd.lanes_max16), _into(_plain.lanes_max16)]),
        ("lanes_sum16", False, [_into(_simd.lanes_sum16), _into(_plain.lanes_sum16)]),
    ]
    for trial in range(200):
        cols = adversarial(np.float64, 128, gen)
        if trial % 2:
            cols[gen.integers(0, 128, 40)] = -np.inf
        for name, payload, both in cases:
            got, want = np.zeros(8), np.zeros(8)
            both[0](cols, got)
            both[1](cols, want)
            assert_same_bits(got, want, nan_payload=payload, what=name)


def test_every_intrinsic_has_a_twin():
    intrinsics = {
        name
        for name, value in vars(_simd).items()
        if isinstance(value, numba.core.extending._Intrinsic)
    }
    if _simd.PLAIN:
        pytest.skip("FASTCE_PLAIN=1: _simd exports the twins")
    assert intrinsics == set(_plain.__all__)


PLAIN_CHECK = """
from fastce._kernels import _plain, _simd
assert _simd.PLAIN and _simd.fma is _plain.fma and _simd.lanes8_sum is _plain.lanes8_sum
"""


@pytest.mark.slow  # compiles the probe's kernels twice in fresh caches (minutes on 2 cores)
def test_plain_twins_give_the_kernels_the_same_bits(tmp_path):
    """``FASTCE_PLAIN=1``: the kernels compile without one LLVM intrinsic, with the same bits."""
    native = probe_bits(tmp_path / "0", {"FASTCE_PLAIN": "0"})
    plain = probe_bits(tmp_path / "1", {"FASTCE_PLAIN": "1"}, check=PLAIN_CHECK)
    assert native == plain


# ---------------------------------------------------------------------------------------------
# Patches of Numba internals


def _moved(patch, detail):
    return f"fastce patch `{patch}` no longer applies on Numba {numba.__version__}: {detail}"


def test_patch_add_ir_module():
    """Kernel functions carry LLVM's "prefer-vector-width" attribute."""
    from numba.core import codegen

    patch = "CPUCodeLibrary.add_ir_module"
    library = getattr(codegen, "CPUCodeLibrary", None)
    assert library is not None, _moved(patch, "numba.core.codegen.CPUCodeLibrary is gone")
    method = getattr(library, "add_ir_module", None)
    assert method is not None, _moved(patch, "CPUCodeLibrary has no add_ir_module")
    assert getattr(method, "_fastce", False), _moved(patch, "the method was not replaced")
    from fastce._kernels import logsumexp

    # an uncached copy of a kernel helper keeps its module, hence fastce's mangled name
    helper = njit(error_model="numpy")(logsumexp.lse_block64.py_func)
    helper(np.zeros(20), np.empty(32))
    attribute = f'"prefer-vector-width"="{_simd.PREFER_VECTOR_WIDTH}"'
    llvm_ir = helper.inspect_llvm(helper.signatures[0])
    assert attribute in llvm_ir, _moved(patch, "a kernel's LLVM IR lacks " + attribute)
    other = njit(lambda x: x + 1.0)
    other(1.0)
    assert attribute not in other.inspect_llvm(other.signatures[0]), _moved(
        patch, "functions outside fastce got the attribute too"
    )


def _outside(x):
    return x


def test_patch_cache_locator():
    """The disk cache of a kernel is stamped with every source file of fastce._kernels."""
    from numba.core import caching

    patch = "_CacheImpl._locator_classes"
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "_CacheLocator", None)
    assert impl is not None and base is not None, _moved(patch, "no _CacheImpl/_CacheLocator")
    classes = getattr(impl, "_locator_classes", None)
    assert isinstance(classes, list) and classes, _moved(patch, f"_locator_classes is {classes!r}")
    ours = classes[0]
    assert getattr(ours, "_fastce", False), _moved(patch, "fastce's locator is not first in line")
    abstract = set(getattr(base, "__abstractmethods__", ()))
    missing = abstract - {name for name in vars(ours) if not name.startswith("__")}
    assert not missing, _moved(patch, f"_CacheLocator now also requires {sorted(missing)}")
    from fastce._kernels import logsumexp

    locator = logsumexp.lse_block64._cache._impl._locator
    assert isinstance(locator, ours), _moved(patch, f"a kernel's locator is {type(locator)}")
    stamp = locator.get_source_stamp()
    assert stamp[1] == _simd.sources_digest(), _moved(patch, f"the stamp is {stamp!r}")
    outside = numba.njit(cache=True)(_outside)
    assert not isinstance(outside._cache._impl._locator, ours), _moved(
        patch, "functions outside fastce got fastce's stamp"
    )


@njit(parallel=True)
def _write_through_prange(a):
    b = _simd.unowned(a)
    for i in prange(b.shape[0]):
        b[i] = 3.0


def test_patch_unowned_alias():
    """Numba's alias analysis knows ``unowned(a)`` is ``a``: a ``prange`` loop that only writes
    through the alias is kept."""
    from numba.core import ir_utils

    patch = "ir_utils.alias_func_extensions"
    extensions = getattr(ir_utils, "alias_func_extensions", None)
    assert isinstance(extensions, dict), _moved(patch, "no alias_func_extensions dict")
    add_alias = getattr(ir_utils, "_add_alias", None)
    assert add_alias is not None, _moved(patch, "ir_utils._add_alias is gone")
    params = list(inspect.signature(add_alias).parameters)
    assert params == ["lhs", "rhs", "alias_map", "arg_aliases"], _moved(patch, str(params))
    assert ("unowned", _simd.__name__) in extensions, _moved(patch, "not registered")
    if _simd.PLAIN:
        pytest.skip("FASTCE_PLAIN=1: unowned is the identity")
    a = np.zeros(5)
    _write_through_prange(a)
    assert np.all(a == 3.0), _moved(patch, "a prange loop writing through unowned was removed")


def test_count_compiles_on_the_event_api():
    from numba.core import event

    patch = "numba.core.event (count_compiles)"
    for name in ("Listener", "install_listener"):
        assert hasattr(event, name), _moved(patch, f"event.{name} is gone")
    with _simd.count_compiles() as names:
        f = njit(lambda x: x * 3)
        f(2)
    assert "<lambda>" in " ".join(names), _moved(patch, f"recorded {names}")


# ---------------------------------------------------------------------------------------------
# One home for low-level code

_LOW_LEVEL = re.compile(
    r"^\s*(?:from|import)\s+(?:llvmlite|numba\.(?:core|np|cpython|misc|parfors)|"
    r"numba\.extending\s+import\s+.*\bintrinsic\b)",
    re.M,
)


def test_low_level_code_lives_in_simd_only():
    root = pathlib.Path(_simd.__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(root.parent))
        for path in sorted(root.rglob("*.py"))
        if path.name != "_simd.py" and _LOW_LEVEL.search(path.read_text())
    ]
    assert offenders == [], f"llvmlite / Numba internals / intrinsics outside _simd: {offenders}"


def test_kernel_files_stay_short():
    kernels = pathlib.Path(_simd.__file__).parent
    long = {
        p.name: n for p in kernels.glob("*.py") if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"files in fastce/_kernels over 600 lines: {long}"
