"""The worked examples of the cross-entropy literature."""

import numpy as np
import pytest

import fastce

P = [0.10, 0.40, 0.50]
Q = [0.80, 0.15, 0.05]


@pytest.mark.parametrize(
    "value,expected",
    [
        (lambda: fastce.cross_entropy(P, Q, base=2), 3.288),
        (lambda: fastce.cross_entropy(Q, P, base=2), 2.906),
        (lambda: fastce.entropy(P, base=2), 1.361),
        (lambda: fastce.entropy(Q, base=2), 0.884),
        (lambda: fastce.kl_divergence(P, Q, base=2), 1.927),
    ],
    ids=["H(P,Q)", "H(Q,P)", "H(P)", "H(Q)", "KL(P||Q)"],
)
def test_three_class_example_in_bits(value, expected):
    assert round(float(value()), 3) == expected


def test_three_class_identity_in_bits():
    h_pq = fastce.cross_entropy(P, Q, base=2)
    assert h_pq == pytest.approx(fastce.entropy(P, base=2) + fastce.kl_divergence(P, Q, base=2))


Y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
YHAT = [0.8, 0.9, 0.9, 0.6, 0.8, 0.1, 0.4, 0.2, 0.1, 0.3]


def test_ten_binary_predictions():
    per_sample = fastce.binary_cross_entropy(Y, YHAT)
    expected = [0.223, 0.105, 0.105, 0.511, 0.223, 0.105, 0.511, 0.223, 0.105, 0.357]
    np.testing.assert_array_equal(np.round(per_sample, 3), expected)
    assert round(float(fastce.binary_cross_entropy(Y, YHAT, reduction="mean")), 3) == 0.247
    # The same figures through the categorical path and the scikit-learn drop-in.
    two_class = np.stack([1 - np.array(YHAT), YHAT], axis=1)
    np.testing.assert_allclose(fastce.cross_entropy(Y, two_class), per_sample, rtol=1e-15)
    assert fastce.log_loss(Y, YHAT) == pytest.approx(0.2469198908, rel=1e-9)
