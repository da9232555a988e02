"""Identities that hold whatever the implementation: property tests with hypothesis."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastce

from .registry import logits, probabilities

dtypes = st.sampled_from([np.float32, np.float64])
shapes = st.tuples(st.integers(1, 6), st.integers(1, 8))
seeds = st.integers(0, 2**32 - 1)


@given(dtypes, shapes, seeds, st.sampled_from([None, 2, 10]))
def test_cross_entropy_is_entropy_plus_kl(dtype, shape, seed, base):
    rng = np.random.default_rng(seed)
    p = probabilities(rng, shape, dtype)
    q = probabilities(rng, shape, dtype)
    ce = fastce.cross_entropy(p, q, base=base).astype(np.float64)
    h = fastce.entropy(p, base=base).astype(np.float64)
    kl = fastce.kl_divergence(p, q, base=base).astype(np.float64)
    tol = 1e-13 if dtype == np.float64 else 2e-6
    assert (np.abs(ce - (h + kl)) <= tol * (1 + np.abs(ce))).all()


@given(dtypes, shapes, seeds)
def test_kl_is_non_negative_and_zero_on_itself(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    p = probabilities(rng, shape, dtype)
    q = probabilities(rng, shape, dtype)
    # Gibbs' inequality, unclipped (clipping q changes the second distribution). Rounded rows
    # do not sum to exactly 1, so check its general form, valid for any non-negative p and q:
    # sum p log(p/q) >= sum p - sum q.
    kl = fastce.kl_divergence(p, q, eps=0).astype(np.float64)
    slack = p.astype(np.float64).sum(axis=-1) - q.astype(np.float64).sum(axis=-1)
    tol = 1e-15 if dtype == np.float64 else 1e-7
    assert (kl >= slack - tol * (1 + np.abs(kl))).all()
    # Exactly zero on itself without clipping, one-hot rows included...
    assert (fastce.kl_divergence(p, p, eps=0) == 0).all()
    # ...and with the default clipping wherever no entry is clipped.
    eps = np.finfo(dtype).eps
    inside = ((p == 0) | ((p >= eps) & (p <= 1 - eps))).all(axis=-1)
    assert (fastce.kl_divergence(p, p)[inside] == 0).all()
    assert (fastce.js_divergence(p, p) == 0).all()


@given(dtypes, shapes, seeds)
def test_entropy_of_one_hot_is_exactly_zero(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    p = np.zeros(shape, dtype)
    p[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = 1
    h = fastce.entropy(p)
    assert (h == 0).all() and not np.signbit(h).any()


@given(dtypes, shapes, seeds, st.sampled_from([1.0, 10.0, 100.0]))
def test_logits_equal_probabilities_of_their_softmax(dtype, shape, seed, scale):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * scale).astype(np.float64)
    y = rng.integers(0, shape[1], shape[0])
    q = fastce.softmax(x)
    from_logits = fastce.cross_entropy(y, x, from_logits=True)
    from_probs = fastce.cross_entropy(y, q, eps=0)
    finite = np.isfinite(from_probs) & (q[np.arange(shape[0]), y] > 1e-300)
    np.testing.assert_allclose(from_logits[finite], from_probs[finite], rtol=1e-12, atol=1e-12)
    p = probabilities(rng, shape, np.float64)
    np.testing.assert_allclose(
        fastce.kl_divergence(p, x, from_logits=True),
        fastce.kl_divergence(p, q, eps=0),
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        fastce.entropy(x, from_logits=True), fastce.entropy(q), rtol=1e-10, atol=1e-12
    )


@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=st.floats(-1e4, 1e4)
    ),
)
def test_log_softmax_is_x_minus_logsumexp_and_softmax_sums_to_one(x):
    lse = fastce.logsumexp(x)
    np.testing.assert_allclose(fastce.log_softmax(x), x - lse[:, None], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(fastce.softmax(x).sum(axis=-1), 1.0, rtol=1e-12)
    assert (lse >= x.max(axis=-1)).all()


@given(dtypes, seeds)
def test_huge_float32_logits_stay_finite_and_correct(dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(20, 7)) * 1e4).astype(np.float32)
    y = rng.integers(0, 7, 20)
    loss = fastce.cross_entropy(y, x, from_logits=True)
    assert np.isfinite(loss).all()
    x64 = x.astype(np.float64)
    m = x64.max(axis=1)
    terms = np.exp(x64 - m[:, None])
    terms[np.arange(20), x64.argmax(axis=1)] = 0.0  # the maximum's own term (1) goes in log1p
    others = terms.sum(axis=1)
    expected = (m - x64[np.arange(20), y]) + np.log1p(others)
    np.testing.assert_allclose(loss, expected, rtol=2**-23, atol=1e-30)


@given(dtypes, seeds)
def test_near_zero_loss_keeps_relative_accuracy(dtype, seed):
    # One logit dominates by d: the loss is log1p(sum exp(-d_c)) ~ 1e-20, not 0.
    rng = np.random.default_rng(seed)
    gaps = rng.uniform(40, 60, size=(10, 4))
    x = np.concatenate([np.zeros((10, 1)), -gaps], axis=1).astype(dtype)
    loss = fastce.cross_entropy(np.zeros(10, int), x, from_logits=True).astype(np.float64)
    expected = np.log1p(np.exp(-gaps.astype(dtype).astype(np.float64)).sum(axis=1))
    assert (loss > 0).all()
    np.testing.assert_allclose(loss, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


@given(shapes, seeds)
def test_label_smoothing_one_is_uniform_target(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    y = rng.integers(0, shape[1], shape[0])
    uniform = np.full(shape, 1.0 / shape[1])
    np.testing.assert_allclose(
        fastce.cross_entropy(y, x, from_logits=True, label_smoothing=1.0),
        fastce.cross_entropy(uniform, x, from_logits=True),
        rtol=1e-13,
    )


@given(shapes, seeds, st.floats(0.01, 100))
def test_base_changes_units_only(shape, seed, base):
    assume(abs(base - 1) > 1e-3)
    rng = np.random.default_rng(seed)
    p = probabilities(rng, shape, np.float64)
    nats = fastce.entropy(p)
    np.testing.assert_allclose(fastce.entropy(p, base=base), nats / np.log(base), rtol=1e-14)


@given(shapes, seeds)
def test_js_is_symmetric_and_bounded(shape, seed):
    rng = np.random.default_rng(seed)
    p = probabilities(rng, shape, np.float64)
    q = probabilities(rng, shape, np.float64)
    js = fastce.js_divergence(p, q, base=2)
    np.testing.assert_allclose(js, fastce.js_divergence(q, p, base=2), rtol=1e-14, atol=1e-16)
    assert ((js >= 0) & (js <= 1 + 1e-15)).all()


@given(seeds)
def test_entropy_from_logits_matches_probabilities(seed):
    rng = np.random.default_rng(seed)
    x = logits(rng, (8, 5), np.float64)
    x[~np.isfinite(x)] = -50.0
    np.testing.assert_allclose(
        fastce.entropy(x, from_logits=True),
        fastce.entropy(fastce.softmax(x)),
        rtol=1e-9,
        atol=1e-12,
    )
