"""Agreement of fastce with its peers: SciPy and, where installed, PyTorch.

Every peer is imported with ``pytest.importorskip`` inside a fixture, so that a missing peer skips
only the tests that need it (PyTorch is never a hard dependency).

Tolerances (stated once, never loosened per test):

* float64 input, peer computing in float64: ``rtol=1e-12``. Where the exact result can be a
  cancellation close to 0 (KL of nearby distributions, a tiny entropy, a near-certain loss) an
  ``atol`` of a few float64 ulps of the terms that cancel, ``1e-14``, is added.
* float32 input: fastce's float32 result against the peer computing in float64 on the *same*
  float32 values (upcast exactly), ``rtol=2e-6`` (a few float32 ulps), with ``atol=1e-37`` for
  results that underflow in float32.

Peers' different defaults are spelled out at each call: ``scipy.stats.entropy`` renormalises and
defaults to ``axis=0`` (inputs are normalised and the axis is passed); ``scipy.special.softmax``
and ``logsumexp`` default to ``axis=None``; ``jensenshannon`` returns the square root of the
divergence; PyTorch's class dimension is 1, its ``ignore_index`` defaults to -100 and its
``reduction`` to ``"mean"`` (both passed explicitly).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastce

RTOL64, ATOL64 = 1e-12, 1e-14
RTOL32, ATOL32 = 2e-6, 1e-37

SETTINGS = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------------------------------------
# Peers (each skips only its own tests when missing)


@pytest.fixture(scope="module")
def scipy_special():
    return pytest.importorskip("scipy.special")


@pytest.fixture(scope="module")
def scipy_stats():
    return pytest.importorskip("scipy.stats")


@pytest.fixture(scope="module")
def jensenshannon():
    return pytest.importorskip("scipy.spatial.distance").jensenshannon


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def F(torch):
    return torch.nn.functional


# ---------------------------------------------------------------------------------------------
# Helpers


def assert_close64(actual, expected, atol=ATOL64):
    actual = np.asarray(actual)
    assert actual.dtype == np.float64
    np.testing.assert_allclose(actual, expected, rtol=RTOL64, atol=atol)


def assert_close32(actual, expected, atol=ATOL32):
    """fastce's float32 result against a float64 peer computation on the same values."""
    actual = np.asarray(actual)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=RTOL32, atol=atol)


def assert_close(actual, expected, dtype, atol64=ATOL64, peer_atol=0.0):
    """``peer_atol``: the peer's own absolute error, where it is larger than fastce's."""
    if np.dtype(dtype) == np.float32:
        assert_close32(actual, expected, atol=max(ATOL32, peer_atol))
    else:
        assert_close64(actual, expected, atol=max(atol64, peer_atol))


def torch_lse_error(x):
    """PyTorch forms log_softmax as ``x - logsumexp(x)``: a loss near 0 carries an absolute
    error of a few ulps of the logits' magnitude (fastce's stays relative: it returns
    ``log1p(exp(-77))`` = 2.8e-34 where PyTorch returns 0.0)."""
    finite = np.abs(np.asarray(x, np.float64))
    return 4 * np.finfo(np.float64).eps * (float(finite[np.isfinite(finite)].max()) + 1.0)


def simplex(rng, shape, axis, zeros=0.0):
    """Random probability rows along ``axis`` (float64), with exact zeros at rate ``zeros``.

    The concentration varies per call so that peaked, flat and sparse rows all occur.
    """
    alpha = rng.choice([0.05, 0.5, 1.0, 5.0])
    g = rng.gamma(alpha, size=shape)
    if zeros:
        g[rng.random(shape) < zeros] = 0.0
    # keep every row non-empty: put mass on the first class of rows that lost all of it
    g = np.moveaxis(g, axis, -1)
    total = g.sum(axis=-1, keepdims=True)
    g[..., :1] = np.where(total == 0, 1.0, g[..., :1])
    g = g / g.sum(axis=-1, keepdims=True)
    return np.moveaxis(g, -1, axis)


def interior_simplex(rng, shape, axis, low=1e-3):
    """Probability rows whose entries all lie in ``[low / C, 1 - low]``: no clipping acts."""
    p = simplex(rng, shape, axis)
    c = shape[axis]
    return (1.0 - low) * p + low / c


shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
bases = st.sampled_from([None, 2, 10])


@st.composite
def shape_and_axis(draw, min_classes=1):
    shape = list(draw(shapes))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    shape[axis] = max(shape[axis], min_classes)
    return tuple(shape), axis


# ---------------------------------------------------------------------------------------------
# SciPy: entropy, rel_entr, jensenshannon


@SETTINGS
@given(shape_and_axis(), seeds, bases, st.sampled_from([0.0, 0.3]))
def test_entropy_vs_scipy_stats(scipy_stats, scipy_special, sa, seed, base, zeros):
    shape, axis = sa
    p = simplex(np.random.default_rng(seed), shape, axis, zeros)
    expected = scipy_stats.entropy(p, base=base, axis=axis)
    assert_close64(fastce.entropy(p, axis=axis, base=base), expected)
    # float32: scipy.stats.entropy would renormalise the rounded rows (a change of ~1 float32
    # ulp per entry), so the float64 peer on the same values is -sum xlogy(p, p)
    p32 = p.astype(np.float32)
    p32_64 = p32.astype(np.float64)
    expected32 = -scipy_special.xlogy(p32_64, p32_64).sum(axis=axis)
    if base is not None:
        expected32 = expected32 / np.log(base)
    assert_close32(fastce.entropy(p32, axis=axis, base=base), expected32)


@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_reductions_vs_scipy(scipy_stats, base):
    rng = np.random.default_rng(1)
    p = simplex(rng, (7, 5, 3), axis=1, zeros=0.2)
    w = rng.uniform(0, 3, size=(7, 3))
    h = scipy_stats.entropy(p, base=base, axis=1)
    assert_close64(fastce.entropy(p, axis=1, base=base, sample_weight=w), h * w)
    assert_close64(
        fastce.entropy(p, axis=1, base=base, sample_weight=w, reduction="sum"), (h * w).sum()
    )
    assert_close64(
        fastce.entropy(p, axis=1, base=base, sample_weight=w, reduction="mean"),
        (h * w).sum() / w.sum(),
    )


def test_entropy_from_logits_vs_scipy(scipy_stats, scipy_special):
    rng = np.random.default_rng(2)
    x = rng.normal(scale=4.0, size=(6, 4, 5))
    expected = scipy_stats.entropy(scipy_special.softmax(x, axis=1), axis=1)
    assert_close64(fastce.entropy(x, axis=1, from_logits=True), expected)


@SETTINGS
@given(shape_and_axis(), seeds, bases, st.sampled_from([0.0, 0.3]))
def test_kl_vs_rel_entr(scipy_special, scipy_stats, sa, seed, base, zeros):
    shape, axis = sa
    rng = np.random.default_rng(seed)
    p = simplex(rng, shape, axis, zeros)
    q = simplex(rng, shape, axis, zeros)
    with np.errstate(divide="ignore"):
        kl = scipy_special.rel_entr(p, q).sum(axis=axis)
    if base is not None:
        kl = kl / np.log(base)
    # eps=0: no clipping, so q == 0 where p > 0 gives +inf on both sides
    assert_close64(fastce.kl_divergence(p, q, axis=axis, base=base, eps=0), kl)
    # scipy.stats.entropy(p, q) is the same KL (after renormalising, a no-op to rounding)
    if zeros == 0.0:
        expected = scipy_stats.entropy(p, q, base=base, axis=axis)
        assert_close64(fastce.kl_divergence(p, q, axis=axis, base=base, eps=0), expected)


@SETTINGS
@given(shape_and_axis(min_classes=2), seeds, bases)
def test_kl_default_eps_vs_rel_entr(scipy_special, sa, seed, base):
    """Away from 0 and 1 the default clipping does not act: the same as rel_entr."""
    shape, axis = sa
    rng = np.random.default_rng(seed)
    p = simplex(rng, shape, axis, zeros=0.3)  # zeros in the target are fine (0 log 0 = 0)
    q = interior_simplex(rng, shape, axis)
    kl = scipy_special.rel_entr(p, q).sum(axis=axis) / (1.0 if base is None else np.log(base))
    assert_close64(fastce.kl_divergence(p, q, axis=axis, base=base), kl)
    q32, p32 = q.astype(np.float32), p.astype(np.float32)
    kl32 = scipy_special.rel_entr(p32.astype(np.float64), q32.astype(np.float64)).sum(axis=axis)
    kl32 = kl32 / (1.0 if base is None else np.log(base))
    assert_close32(fastce.kl_divergence(p32, q32, axis=axis, base=base), kl32)


def test_kl_from_logits_vs_rel_entr(scipy_special):
    rng = np.random.default_rng(3)
    p = simplex(rng, (3, 6, 4), axis=1, zeros=0.3)
    x = rng.normal(scale=3.0, size=(3, 6, 4))
    kl = scipy_special.rel_entr(p, scipy_special.softmax(x, axis=1)).sum(axis=1)
    assert_close64(fastce.kl_divergence(p, x, axis=1, from_logits=True), kl)


@SETTINGS
@given(shape_and_axis(), seeds, bases, st.sampled_from([0.0, 0.3]))
def test_js_vs_jensenshannon(jensenshannon, scipy_special, sa, seed, base, zeros):
    rel_entr = scipy_special.rel_entr
    shape, axis = sa
    rng = np.random.default_rng(seed)
    p = simplex(rng, shape, axis, zeros)
    q = simplex(rng, shape, axis, zeros)
    expected = jensenshannon(p, q, axis=axis, base=base) ** 2
    # scipy returns sqrt(JS); squaring it back costs an ulp or two
    assert_close64(fastce.js_divergence(p, q, axis=axis, base=base), expected, atol=1e-15)
    # float32: jensenshannon would renormalise the rounded rows; the float64 peer on the same
    # values is the definition through rel_entr
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    p64, q64 = p32.astype(np.float64), q32.astype(np.float64)
    m = (p64 + q64) / 2
    expected32 = (rel_entr(p64, m) + rel_entr(q64, m)).sum(axis=axis) / 2
    expected32 = expected32 / (1.0 if base is None else np.log(base))
    assert_close32(fastce.js_divergence(p32, q32, axis=axis, base=base), expected32)


def test_js_identical_and_disjoint_rows(jensenshannon):
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    q = np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])
    expected = jensenshannon(p, q, axis=1, base=2) ** 2
    out = fastce.js_divergence(p, q, base=2)
    assert out[0] == 0.0
    assert_close64(out, expected)
    assert out[1] == 1.0


def test_cross_entropy_soft_vs_xlogy(scipy_special):
    rng = np.random.default_rng(4)
    p = simplex(rng, (5, 4, 6), axis=2, zeros=0.3)
    q = interior_simplex(rng, (5, 4, 6), axis=2)
    expected = -scipy_special.xlogy(p, q).sum(axis=2)
    assert_close64(fastce.cross_entropy(p, q), expected)
    assert_close64(fastce.cross_entropy(p, q, eps=0), expected)


# ---------------------------------------------------------------------------------------------
# SciPy: logsumexp, softmax, log_softmax


def lse_inputs(rng, shape, axis, dtype):
    """Logits with -inf entries, a row of -inf, and a row offset by 1e4."""
    x = rng.normal(scale=3.0, size=shape)
    x[rng.random(shape) < 0.15] = -np.inf
    x = np.moveaxis(x, axis, -1)
    flat = x.reshape(-1, x.shape[-1])
    if flat.shape[0] >= 2:
        flat[0] = -np.inf
        flat[1] += 1e4
    if flat.shape[0] >= 3:
        flat[2] -= 1e4
    x = np.moveaxis(flat.reshape(x.shape), -1, axis)
    return x.astype(dtype)


def _scipy_quiet(f, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return f(*args, **kwargs)


@SETTINGS
@given(shape_and_axis(), seeds, st.sampled_from([np.float64, np.float32]))
def test_logsumexp_softmax_vs_scipy(scipy_special, sa, seed, dtype):
    shape, axis = sa
    x = lse_inputs(np.random.default_rng(seed), shape, axis, dtype)
    x64 = x.astype(np.float64)
    expected = _scipy_quiet(scipy_special.logsumexp, x64, axis=axis)
    assert_close(fastce.logsumexp(x, axis=axis), expected, dtype)
    expected = _scipy_quiet(scipy_special.softmax, x64, axis=axis)
    assert_close(fastce.softmax(x, axis=axis), expected, dtype, atol64=0)
    # scipy takes log(sum) where fastce takes log1p(sum - 1): near 0 (a dominant class) scipy's
    # result carries an absolute error of an ulp of 1, fastce's does not (checked with mpmath)
    expected = _scipy_quiet(scipy_special.log_softmax, x64, axis=axis)
    assert_close(fastce.log_softmax(x, axis=axis), expected, dtype, atol64=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_large_offsets_and_infinities(scipy_special, dtype):
    x = np.array(
        [
            [1e4, 1e4 + 1, 1e4 - 3],
            [-1e4, -1e4 - 0.5, -np.inf],
            [-np.inf, -np.inf, -np.inf],
            [0.0, 1e-20, -1e-20],
            [-745.0, 0.0, -800.0],
        ],
        dtype=dtype,
    )
    x64 = x.astype(np.float64)
    assert_close(fastce.logsumexp(x), _scipy_quiet(scipy_special.logsumexp, x64, axis=-1), dtype)
    assert_close(fastce.softmax(x), _scipy_quiet(scipy_special.softmax, x64, axis=-1), dtype)
    assert_close(
        fastce.log_softmax(x),
        _scipy_quiet(scipy_special.log_softmax, x64, axis=-1),
        dtype,
        atol64=1e-15,
    )


def test_where_the_peers_lose_accuracy_fastce_matches_mpmath():
    """The atol granted to SciPy's log_softmax and PyTorch's cross-entropy is the peers' error,
    not fastce's: against 50-digit truth fastce is within a few ulps (times the condition)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        x = np.array([1e4 + 0.89178, 9997.53563, 9996.36390])  # a dominant class: result ~ -1.5e-5
        lse = mpmath.log(sum(mpmath.exp(mpmath.mpf(float(v))) for v in x))
        truth = np.array([float(mpmath.mpf(float(v)) - lse) for v in x])
        np.testing.assert_allclose(fastce.log_softmax(x), truth, rtol=4.5e-16, atol=0)
        logits = np.array([-13.210486, 64.04227])
        truth = float(mpmath.log1p(mpmath.exp(mpmath.mpf(logits[0]) - mpmath.mpf(logits[1]))))
    out = fastce.cross_entropy(1, logits, from_logits=True)
    # about 2.8e-34 (PyTorch: 0.0); exp(d) turns the rounding of d = x_0 - x_1 = -77.25 into a
    # relative error of |d| ulps: the problem's own condition, not the algorithm's
    np.testing.assert_allclose(out, truth, rtol=2 * 77.3 * np.finfo(float).eps, atol=0)


def test_logsumexp_and_log_softmax_of_plus_inf_as_scipy(scipy_special):
    x = np.array([[np.inf, 0.0, 1.0], [np.inf, np.inf, 0.0], [np.inf, -np.inf, 1.0]])
    assert_close64(fastce.logsumexp(x), _scipy_quiet(scipy_special.logsumexp, x, axis=-1))
    assert_close64(fastce.log_softmax(x), _scipy_quiet(scipy_special.log_softmax, x, axis=-1))


def test_softmax_of_plus_inf_as_scipy(scipy_special):
    x = np.array([[np.inf, 0.0, 1.0], [np.inf, np.inf, 0.0], [np.inf, -np.inf, 1.0]])
    assert_close64(fastce.softmax(x), _scipy_quiet(scipy_special.softmax, x, axis=-1))


# ---------------------------------------------------------------------------------------------
# PyTorch: cross_entropy, nll_loss


def ce_case(rng, dtype, scale=3.0, shape=(6, 5, 3, 2)):
    """(logits, labels) with the class axis at 1, as PyTorch lays them out."""
    x = (rng.normal(size=shape) * scale).astype(dtype)
    y = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    return x, y


def torch_ce(torch, F, x, target, **kwargs):
    out = F.cross_entropy(torch.from_numpy(np.asarray(x, np.float64)), target, **kwargs)
    return out.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("ignore", [None, "class", "padding"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices_vs_torch(
    torch, F, dtype, reduction, smoothing, ignore, weighted
):
    rng = np.random.default_rng(10)
    x, y = ce_case(rng, dtype)
    ignore_index = {None: None, "class": 1, "padding": -100}[ignore]
    if ignore == "padding":
        y[rng.random(y.shape) < 0.3] = -100
    weight = rng.uniform(0.2, 3.0, size=x.shape[1]) if weighted else None
    expected = torch_ce(
        torch,
        F,
        x,
        torch.from_numpy(y),
        weight=None if weight is None else torch.from_numpy(weight),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    out = fastce.cross_entropy(
        y,
        x,
        axis=1,
        from_logits=True,
        class_weight=weight,
        ignore_index=ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    assert_close(out, expected, dtype, peer_atol=torch_lse_error(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets_vs_torch(
    torch, F, dtype, reduction, smoothing, weighted
):
    rng = np.random.default_rng(11)
    x, _ = ce_case(rng, dtype)
    p = simplex(rng, x.shape, axis=1, zeros=0.3).astype(dtype)
    weight = rng.uniform(0.2, 3.0, size=x.shape[1]) if weighted else None
    expected = torch_ce(
        torch,
        F,
        x,
        torch.from_numpy(p.astype(np.float64)),
        weight=None if weight is None else torch.from_numpy(weight),
        label_smoothing=smoothing,
        reduction=reduction,
    )
    out = fastce.cross_entropy(
        p,
        x,
        axis=1,
        from_logits=True,
        class_weight=weight,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    assert_close(out, expected, dtype, peer_atol=torch_lse_error(x))


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_float32_logits_of_magnitude_1e4_vs_torch(torch, F, kind, reduction):
    rng = np.random.default_rng(12)
    x, y = ce_case(rng, np.float32, scale=1e4)
    target = y if kind == "indices" else simplex(rng, x.shape, axis=1).astype(np.float32)
    t_target = torch.from_numpy(y if kind == "indices" else target.astype(np.float64))
    expected = torch_ce(torch, F, x, t_target, reduction=reduction)
    out = fastce.cross_entropy(target, x, axis=1, from_logits=True, reduction=reduction)
    assert np.all(np.isfinite(out))
    assert_close32(out, expected, atol=torch_lse_error(x))


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(2, 6),
    st.lists(st.integers(1, 3), max_size=2).map(tuple),
    seeds,
    st.sampled_from([np.float64, np.float32]),
    st.sampled_from([0.0, 0.1, 1.0]),
)
def test_cross_entropy_random_shapes_vs_torch(torch, F, n, c, rest, seed, dtype, smoothing):
    rng = np.random.default_rng(seed)
    x, y = ce_case(rng, dtype, scale=rng.choice([1.0, 10.0, 100.0]), shape=(n, c, *rest))
    w = rng.uniform(0.0, 2.0, size=c)
    for reduction in ("none", "sum", "mean"):
        expected = torch_ce(
            torch,
            F,
            x,
            torch.from_numpy(y),
            weight=torch.from_numpy(w),
            label_smoothing=smoothing,
            reduction=reduction,
        )
        out = fastce.cross_entropy(
            y,
            x,
            axis=1,
            from_logits=True,
            class_weight=w,
            label_smoothing=smoothing,
            reduction=reduction,
        )
        assert_close(out, expected, dtype, peer_atol=torch_lse_error(x))


def test_cross_entropy_all_ignored_mean_is_nan_as_torch(torch, F):
    x = np.random.default_rng(13).normal(size=(4, 3))
    y = np.full(4, -100)
    expected = torch_ce(torch, F, x, torch.from_numpy(y), ignore_index=-100, reduction="mean")
    assert np.isnan(expected)
    out = fastce.cross_entropy(y, x, from_logits=True, ignore_index=-100, reduction="mean")
    assert np.isnan(out)
    assert fastce.cross_entropy(y, x, from_logits=True, ignore_index=-100, reduction="sum") == 0


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("ignore_index", [None, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probabilities_vs_nll_loss(torch, F, reduction, ignore_index, weighted):
    rng = np.random.default_rng(14)
    probs = simplex(rng, (5, 4, 3), axis=1)
    probs = np.clip(probs, 1e-300, None)  # torch.log(0) is -inf; keep the peer finite
    y = rng.integers(0, 4, size=(5, 3))
    weight = rng.uniform(0.2, 3.0, size=4) if weighted else None
    expected = F.nll_loss(
        torch.log(torch.from_numpy(probs)),
        torch.from_numpy(y),
        weight=None if weight is None else torch.from_numpy(weight),
        ignore_index=-100 if ignore_index is None else ignore_index,
        reduction=reduction,
    ).numpy()
    out = fastce.cross_entropy(
        y,
        probs,
        axis=1,
        eps=0,
        class_weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
    )
    assert_close64(out, expected)


def test_perplexity_vs_torch(torch, F):
    rng = np.random.default_rng(15)
    x, y = ce_case(rng, np.float64, shape=(8, 7, 5))
    y[rng.random(y.shape) < 0.2] = -100
    w = rng.uniform(0.5, 2.0, size=7)
    mean = torch_ce(torch, F, x, torch.from_numpy(y), weight=torch.from_numpy(w))
    out = fastce.perplexity(y, x, axis=1, from_logits=True, class_weight=w, ignore_index=-100)
    assert_close64(out, np.exp(mean), atol=torch_lse_error(x))


# ---------------------------------------------------------------------------------------------
# PyTorch: binary cross-entropy


def bce_case(rng, dtype, shape=(6, 5, 4), soft=False):
    x = (rng.normal(size=shape) * 4.0).astype(dtype)
    y = rng.random(shape) if soft else (rng.random(shape) < 0.4).astype(np.float64)
    return x, y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
    "pos_weight_shape, weight_shape, reduction",
    [
        (pw, w, r)
        for pw, w, r in itertools.product(
            [None, (4,), (6, 5, 4)], [None, (6, 5, 4), (5, 4)], ["none", "sum", "mean"]
        )
        # PyTorch's "mean" divides by the element count, fastce's by the summed weights
        if not (r == "mean" and w is not None)
    ],
)
def test_bce_with_logits_vs_torch(
    torch, F, dtype, soft, pos_weight_shape, weight_shape, reduction
):
    rng = np.random.default_rng(20)
    x, y = bce_case(rng, dtype, soft=soft)
    pw = None if pos_weight_shape is None else rng.uniform(0.2, 4.0, size=pos_weight_shape)
    w = None if weight_shape is None else rng.uniform(0.0, 3.0, size=weight_shape)
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(y.astype(np.float64)),
        weight=None if w is None else torch.from_numpy(w),
        pos_weight=None if pw is None else torch.from_numpy(pw),
        reduction=reduction,
    ).numpy()
    out = fastce.binary_cross_entropy(
        y, x, from_logits=True, pos_weight=pw, sample_weight=w, reduction=reduction
    )
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_bce_row_sample_weight_vs_torch(torch, F, reduction):
    """fastce takes a 1-D weight of length N as one weight per row; PyTorch needs (N, 1, 1)."""
    rng = np.random.default_rng(21)
    x, y = bce_case(rng, np.float64)
    w = rng.uniform(0.0, 3.0, size=x.shape[0])
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(x),
        torch.from_numpy(y),
        weight=torch.from_numpy(w[:, None, None]),
        reduction=reduction,
    ).numpy()
    out = fastce.binary_cross_entropy(y, x, from_logits=True, sample_weight=w, reduction=reduction)
    assert_close64(out, expected)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bce_with_logits_float32_magnitude_1e4_vs_torch(torch, F, reduction):
    rng = np.random.default_rng(22)
    x = (rng.normal(size=(50, 3)) * 1e4).astype(np.float32)
    y = (rng.random((50, 3)) < 0.5).astype(np.float32)
    pw = np.array([0.5, 1.0, 3.0])
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(y.astype(np.float64)),
        pos_weight=torch.from_numpy(pw),
        reduction=reduction,
    ).numpy()
    out = fastce.binary_cross_entropy(y, x, from_logits=True, pos_weight=pw, reduction=reduction)
    assert np.all(np.isfinite(out))
    assert_close32(out, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
    "weighted, reduction",
    # PyTorch's weighted "mean" divides by the element count, fastce's by the summed weights
    [(False, "none"), (False, "sum"), (False, "mean"), (True, "none"), (True, "sum")],
)
def test_bce_probabilities_vs_torch(torch, F, dtype, soft, weighted, reduction):
    rng = np.random.default_rng(23)
    p = rng.uniform(0.01, 0.99, size=(6, 5, 4)).astype(dtype)
    y = (rng.random(p.shape) if soft else rng.random(p.shape) < 0.5).astype(dtype)
    w = rng.uniform(0.0, 3.0, size=p.shape) if weighted else None
    expected = F.binary_cross_entropy(
        torch.from_numpy(p.astype(np.float64)),
        torch.from_numpy(y.astype(np.float64)),
        weight=None if w is None else torch.from_numpy(w),
        reduction=reduction,
    ).numpy()
    out = fastce.binary_cross_entropy(y, p, eps=0, sample_weight=w, reduction=reduction)
    assert_close(out, expected, dtype)


# ---------------------------------------------------------------------------------------------
# PyTorch: kl_div, logsumexp, log_softmax, softmax


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kl_vs_torch_kl_div(torch, F, dtype):
    rng = np.random.default_rng(30)
    p = simplex(rng, (4, 6, 3), axis=1, zeros=0.3).astype(dtype)
    q = interior_simplex(rng, (4, 6, 3), axis=1).astype(dtype)
    expected = (
        F.kl_div(
            torch.log(torch.from_numpy(q.astype(np.float64))),
            torch.from_numpy(p.astype(np.float64)),
            reduction="none",
        )
        .sum(1)
        .numpy()
    )
    assert_close(fastce.kl_divergence(p, q, axis=1, eps=0), expected, dtype)
    # from logits: kl_div(log_softmax(x), p)
    x = (rng.normal(size=p.shape) * 3).astype(dtype)
    expected = (
        F.kl_div(
            torch.log_softmax(torch.from_numpy(x.astype(np.float64)), dim=1),
            torch.from_numpy(p.astype(np.float64)),
            reduction="none",
        )
        .sum(1)
        .numpy()
    )
    out = fastce.kl_divergence(p, x, axis=1, from_logits=True)
    assert_close(out, expected, dtype, peer_atol=torch_lse_error(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_kl_of_two_sets_of_logits_vs_torch_log_target(torch, F, dtype, reduction, scale):
    """A teacher's and a student's logits, both sides through their own log-sum-exp:
    ``F.kl_div(log_softmax(s), log_softmax(t), log_target=True)``, summed over classes."""
    rng = np.random.default_rng(32)
    t = (rng.normal(size=(6, 9, 4)) * scale).astype(dtype)
    s = (t + rng.normal(size=t.shape)).astype(dtype)
    t[0, 3, 1] = -np.inf  # a class the teacher rules out
    tt, ts = (torch.from_numpy(a.astype(np.float64)) for a in (t, s))
    terms = F.kl_div(F.log_softmax(ts, 1), F.log_softmax(tt, 1), log_target=True, reduction="none")
    # PyTorch forms exp(log t) (log t - log s) = 0 * -inf = NaN where the target is -inf;
    # fastce takes 0 log 0 = 0 there, as it does for a probability of 0
    assert torch.isnan(terms[0, 3, 1])
    terms[0, 3, 1] = 0.0
    per_sample = terms.sum(1)
    expected = {
        "none": per_sample.numpy(),
        "sum": per_sample.sum().numpy(),
        "mean": per_sample.mean().numpy(),
    }[reduction]
    out = fastce.kl_divergence(
        t, s, axis=1, from_logits=True, target_from_logits=True, reduction=reduction
    )
    assert_close(out, expected, dtype, peer_atol=torch_lse_error(np.r_[t.ravel(), s.ravel()]))
    # target logits against predicted probabilities: kl_div(log q, log_softmax(t), log_target)
    q = interior_simplex(rng, t.shape, axis=1).astype(dtype)
    terms = F.kl_div(
        torch.log(torch.from_numpy(q.astype(np.float64))),
        F.log_softmax(tt, 1),
        log_target=True,
        reduction="none",
    )
    terms[0, 3, 1] = 0.0
    per_sample = terms.sum(1)
    out = fastce.kl_divergence(t, q, axis=1, target_from_logits=True, eps=0)
    assert_close(out, per_sample.numpy(), dtype, peer_atol=torch_lse_error(t))
    # KL of a row of logits from itself is exactly 0
    assert np.all(fastce.kl_divergence(s, s, from_logits=True, target_from_logits=True) == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 5), (5,)])
def test_kl_batchmean_vs_torch(torch, F, dtype, shape):
    """``reduction="batchmean"``: PyTorch's ``sum / input.size(0)``, the class axis last; for a
    single distribution (PyTorch would divide by the number of classes) fastce divides by 1."""
    rng = np.random.default_rng(35)
    t = (rng.normal(size=shape) * 2).astype(dtype)
    s = (rng.normal(size=shape) * 2).astype(dtype)
    tt, ts = (torch.from_numpy(a.astype(np.float64)) for a in (t, s))
    lt, ls = F.log_softmax(tt, -1), F.log_softmax(ts, -1)
    expected = F.kl_div(ls, lt, log_target=True, reduction="sum").numpy()
    if len(shape) > 1:
        expected = F.kl_div(ls, lt, log_target=True, reduction="batchmean").numpy()
    out = fastce.kl_divergence(
        t, s, from_logits=True, target_from_logits=True, reduction="batchmean"
    )
    assert out.dtype == dtype
    assert_close(out, expected, dtype, peer_atol=torch_lse_error(np.r_[t.ravel(), s.ravel()]))
    if len(shape) == 2:  # 2-D, no weights: the mean, to the bit
        mean = fastce.kl_divergence(t, s, from_logits=True, target_from_logits=True,
                                    reduction="mean")  # fmt: skip
        assert out.tobytes() == mean.tobytes()
    # weights multiply the values; the divisor stays the first axis (PyTorch has no weights)
    w = rng.uniform(0.0, 2.0, size=shape[:-1])
    got = fastce.kl_divergence(t, s, from_logits=True, target_from_logits=True,
                               reduction="batchmean", sample_weight=w)  # fmt: skip
    per = fastce.kl_divergence(t, s, from_logits=True, target_from_logits=True)
    want = np.sum(per.astype(np.float64) * w) / (shape[0] if len(shape) > 1 else 1)
    assert_close(got, want, dtype)
    with pytest.raises(ValueError, match="'batchmean' is kl_divergence's"):
        fastce.entropy(t, from_logits=True, reduction="batchmean")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_against_target_logits_vs_torch(torch, F, dtype, smoothing, weighted):
    """Soft targets given as logits: PyTorch's ``cross_entropy(s, softmax(t))``."""
    rng = np.random.default_rng(33)
    t = (rng.normal(size=(5, 7, 3)) * 4).astype(dtype)
    s = (rng.normal(size=t.shape) * 4).astype(dtype)
    weight = rng.uniform(0.2, 3.0, size=7) if weighted else None
    tt, ts = (torch.from_numpy(a.astype(np.float64)) for a in (t, s))
    for reduction in ("none", "sum", "mean"):
        expected = F.cross_entropy(
            ts,
            F.softmax(tt, 1),
            weight=None if weight is None else torch.from_numpy(weight),
            label_smoothing=smoothing,
            reduction=reduction,
        ).numpy()
        out = fastce.cross_entropy(
            t,
            s,
            axis=1,
            from_logits=True,
            target_from_logits=True,
            class_weight=weight,
            label_smoothing=smoothing,
            reduction=reduction,
        )
        assert_close(out, expected, dtype, peer_atol=torch_lse_error(s))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_js_of_logits_vs_scipy_jensenshannon(jensenshannon, scipy_special, dtype):
    """Jensen-Shannon of rows of logits: the square of SciPy's distance of their softmax."""
    rng = np.random.default_rng(34)
    t = (rng.normal(size=(40, 6)) * 3).astype(dtype)
    s = (rng.normal(size=t.shape) * 3).astype(dtype)
    pt, ps = (scipy_special.softmax(a.astype(np.float64), axis=1) for a in (t, s))
    expected = jensenshannon(pt, ps, axis=1) ** 2
    got = fastce.js_divergence(t, s, from_logits=True, target_from_logits=True)
    assert_close(got, expected, dtype)
    assert_close(fastce.js_divergence(pt.astype(dtype), s, from_logits=True), expected, dtype)
    got = fastce.js_divergence(t, ps.astype(dtype), target_from_logits=True)
    assert_close(got, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_logsumexp_softmax_vs_torch(torch, dtype, scale):
    rng = np.random.default_rng(31)
    x = (rng.normal(size=(5, 7, 3, 2)) * scale).astype(dtype)
    x[0, :, 0, 0] = -np.inf  # a whole row of -inf
    x[1, 2, 1, 1] = -np.inf
    t = torch.from_numpy(x.astype(np.float64))
    assert_close(fastce.logsumexp(x, axis=1), torch.logsumexp(t, dim=1).numpy(), dtype)
    assert_close(
        fastce.log_softmax(x, axis=1),
        torch.log_softmax(t, dim=1).numpy(),
        dtype,
        peer_atol=torch_lse_error(x),
    )
    assert_close(fastce.softmax(x, axis=1), torch.softmax(t, dim=1).numpy(), dtype, atol64=0)
    # float32 in PyTorch itself: the same up to float32 rounding on both sides
    t32 = torch.from_numpy(x.astype(np.float32))
    np.testing.assert_allclose(
        fastce.softmax(x.astype(np.float32), axis=1),
        torch.softmax(t32, dim=1).numpy(),
        rtol=1e-5,
        atol=1e-37,
    )
