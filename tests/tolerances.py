"""Tolerances, stated per dtype, used by the comparisons with the reference and the peers.

float64: the kernels and the reference both compute in float64; they differ by the rounding
of a few operations per term and by the order of summation (the reference uses math.fsum), so
a value agrees to ``RTOL64`` relative, plus an absolute term for sums with cancellation that is
proportional to the number of terms and the size of the largest one.

float32: inputs are float32, but everything is computed in float64 and rounded once, so the
result is within half an ulp of float32 (2**-24 relative) of the float64 value, plus the same
absolute term. Two exceptions: binary cross-entropy from float32 logits takes its exp and log1p
in float32 (each within 1 ulp; docs/accuracy.md), so its results are held to the documented
8 ulps (``BCE_LOGITS_RTOL32``); so are measures of target logits (``TARGET_LOGITS_RTOL32``),
whose goal docs/accuracy.md states as 8 ulps.
"""

import numpy as np

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2.0**-23}
BCE_LOGITS_RTOL32 = 8 * 2.0**-23
TARGET_LOGITS_RTOL32 = 8 * 2.0**-23


def rtol_for(function, dtype, from_logits, target_from_logits=False):
    """The relative tolerance for ``function``'s results in ``dtype``, or None for the dtype's
    default (``RTOL``). The documented exceptions in float32: BCE from float32 logits, and
    every measure of target logits, whose goal in docs/accuracy.md is 8 ulps (a KL of 1.2e-4
    between a row of logits near -86 and probabilities came out 1.45 ulps off)."""
    if np.dtype(dtype) != np.float32:
        return None
    if function == "binary_cross_entropy" and from_logits:
        return BCE_LOGITS_RTOL32
    if target_from_logits:
        return TARGET_LOGITS_RTOL32
    return None


def atol(dtype, n_terms, magnitude):
    """Absolute slack for a sum of ``n_terms`` terms each at most ``magnitude`` in size."""
    return 1e-14 * max(n_terms, 1) * max(magnitude, 1.0)


def assert_matches(actual, expected, dtype, n_terms=1, magnitude=1.0, rtol=None):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual,
        expected,
        rtol=RTOL[np.dtype(dtype)] if rtol is None else rtol,
        atol=atol(dtype, n_terms, magnitude),
        equal_nan=True,
    )
