"""``temperature=``: every logits input enters as ``x / T``, divided in float64.

The launcher hands the kernels tiles of rows holding ``x / T`` in float64, so a call at a
temperature gives the bits of the same call on the float64 array ``x / T`` (rounded to the
input's dtype at the end): checked for every function, layout and reduction, against that
array (which the test makes; fastce does not).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastce


def bits(a):
    return np.asarray(a).tobytes()


def tempered(x, t):
    return np.asarray(x).astype(np.float64) / t


def layouts(x):
    """The array as given, with its class axis first (rows adjacent in memory), and strided."""
    yield "c", x, -1
    yield "class-major", np.ascontiguousarray(np.moveaxis(x, -1, 0)), 0
    yield "strided", np.repeat(x, 2, axis=0)[::2], -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [2, 7, 40, 3000])
def test_every_function_at_a_temperature_is_the_function_of_x_over_t(dtype, c):
    rng = np.random.default_rng(c)
    n, t = 37, 2.5
    x = (rng.normal(size=(n, c)) * 4).astype(dtype)
    x[3, 1] = -np.inf
    teacher = (x + rng.normal(size=x.shape)).astype(dtype)
    p = fastce.softmax(rng.normal(size=(n, c))).astype(dtype)
    y = rng.integers(0, c, n)
    y[::5] = -100
    yb = (rng.random((n, c)) < 0.4).astype(dtype)
    for name, xv, axis in layouts(x):
        tv = np.moveaxis(np.moveaxis(teacher, -1, 0), 0, -1) if axis == -1 else teacher.T.copy()
        pv = p if axis == -1 else p.T.copy()
        xs, ts = np.moveaxis(tempered(xv, t), axis, -1), np.moveaxis(tempered(tv, t), axis, -1)
        xs, ts = np.moveaxis(xs, -1, axis), np.moveaxis(ts, -1, axis)
        calls = [
            (fastce.cross_entropy, (y, xv), (y, xs), {"from_logits": True, "ignore_index": -100}),
            (fastce.cross_entropy, (tv, xv), (ts, xs), {"from_logits": True,
                                                      "target_from_logits": True}),
            (fastce.cross_entropy, (tv, pv), (ts, pv), {"target_from_logits": True}),
            (fastce.entropy, (xv,), (xs,), {"from_logits": True}),
            (fastce.kl_divergence, (tv, xv), (ts, xs), {"from_logits": True,
                                                      "target_from_logits": True}),
            (fastce.js_divergence, (pv, xv), (pv, xs), {"from_logits": True}),
        ]  # fmt: skip
        for f, args, want_args, kw in calls:
            for reduction in ("none", "sum", "mean"):
                got = f(*args, axis=axis, temperature=t, reduction=reduction, **kw)
                want = f(*want_args, axis=axis, reduction=reduction, **kw)
                out_dtype = np.result_type(*[a.dtype for a in args if a.dtype.kind == "f"])
                assert got.dtype == out_dtype, (f.__name__, name)
                assert bits(got) == bits(np.asarray(want).astype(out_dtype)), (
                    f.__name__, name, reduction, kw)  # fmt: skip
        for f in (fastce.logsumexp, fastce.log_softmax, fastce.softmax):
            got = f(xv, axis=axis, temperature=t)
            assert got.dtype == dtype
            assert bits(got) == bits(f(tempered(xv, t), axis=axis).astype(dtype)), (f, name)
    for reduction in ("none", "sum", "mean"):
        got = fastce.binary_cross_entropy(yb, x, from_logits=True, temperature=t,
                                          reduction=reduction)  # fmt: skip
        want = fastce.binary_cross_entropy(yb.astype(np.float64), tempered(x, t),
                                           from_logits=True, reduction=reduction)  # fmt: skip
        assert bits(got) == bits(np.asarray(want).astype(dtype))
    got = fastce.perplexity(y, x, from_logits=True, temperature=t, ignore_index=-100)
    want = fastce.perplexity(y, tempered(x, t), from_logits=True, ignore_index=-100)
    assert bits(got) == bits(want.astype(dtype))


def test_temperature_one_is_the_untempered_call():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 9)).astype(np.float32)
    y = rng.integers(0, 9, 50)
    for t in (1.0, 1, np.float32(1.0)):
        assert bits(fastce.cross_entropy(y, x, from_logits=True, temperature=t)) == bits(
            fastce.cross_entropy(y, x, from_logits=True)
        )


def test_distillation_recipe_vs_torch():
    """The recipe's ``F.kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True,
    reduction="batchmean")``, with no T**2 factor."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    teacher = (rng.normal(size=(4, 6, 11)) * 3).astype(np.float32)
    student = (teacher + rng.normal(size=teacher.shape)).astype(np.float32)
    tt, ts = (torch.from_numpy(a.astype(np.float64)) for a in (teacher, student))
    for t in (0.5, 2.0, 4.0):
        want = F.kl_div(
            F.log_softmax(ts / t, -1), F.log_softmax(tt / t, -1), log_target=True,
            reduction="batchmean",
        ).item()  # fmt: skip
        got = fastce.kl_divergence(
            teacher, student, from_logits=True, target_from_logits=True, temperature=t,
            reduction="batchmean",
        )  # fmt: skip
        assert got.dtype == np.float32
        np.testing.assert_allclose(float(got), want, rtol=3e-7)
        ce = fastce.cross_entropy(
            teacher, student, from_logits=True, target_from_logits=True, temperature=t,
            label_smoothing=0.1, reduction="mean",
        )  # fmt: skip
        # (PyTorch's class axis is 1)
        soft = F.softmax(tt / t, -1).movedim(-1, 1)
        want_ce = F.cross_entropy((ts / t).movedim(-1, 1), soft, label_smoothing=0.1).item()
        np.testing.assert_allclose(float(ce), want_ce, rtol=3e-7)


def test_temperature_errors():
    x = np.zeros((2, 3))
    p = np.full((2, 3), 1 / 3)
    for bad in (0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            fastce.entropy(x, from_logits=True, temperature=bad)
    for bad in ("2", True, None, [2.0]):
        with pytest.raises(TypeError, match="temperature must be a number"):
            fastce.softmax(x, temperature=bad)
    with pytest.raises(ValueError, match=r"pass from_logits=True \(if q holds logits\) or "
                       r"target_from_logits=True \(if p holds logits\)"):  # fmt: skip
        fastce.kl_divergence(p, p, temperature=2.0)
    with pytest.raises(ValueError, match=r"pass from_logits=True \(if pred holds logits\);"):
        fastce.cross_entropy([0, 1], p, temperature=2.0)
    with pytest.raises(ValueError, match=r"from_logits=True \(if pred .*target_from_logits"):
        fastce.cross_entropy(p, p, temperature=2.0)
    with pytest.raises(ValueError, match="probabilities are never tempered"):
        fastce.binary_cross_entropy([1.0], [0.5], temperature=0.5)
    acc = fastce.Accumulator("kl_divergence", from_logits=True, temperature=2.0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        fastce.Accumulator("entropy", from_logits=True, temperature=-2.0)
    assert acc.update(x, x).result().sum == 0.0
