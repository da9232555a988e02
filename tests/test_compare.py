"""fastce.compare and fastce.Comparison against a straightforward NumPy computation of every
figure, against fastce's own functions bit for bit, on adversarial inputs, and streamed."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import pickle
from typing import Any

import numpy as np
import pytest
from scipy.special import log_softmax

import fastce
from fastce.comparison import QUANTILES

RNG = np.random.default_rng(20261207)

# Figures that are exact sums (or counts, minima, maxima): the same bits however the samples
# were split (fastce compare's chunks, fastce.dask.compare's blocks); quantiles are apart.
EXACT = [
    "top1_agreement",
    "n_samples",
    "n_masked",
    "n_ignored",
    "unit",
    "n_groups",
    "reference_cross_entropy",
    "candidate_cross_entropy",
    "cross_entropy_difference",
    "reference_perplexity",
    "candidate_perplexity",
    "perplexity_ratio",
    "reference_top1_correct",
    "candidate_top1_correct",
]
EXACT_DISTRIBUTION = ["mean", "standard_error", "rms", "minimum", "maximum"]


def _models(n: int, c: int, dtype: type = np.float64, noise: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(scale=2.0, size=(n, c))
    cand = ref + noise * rng.normal(size=(n, c))
    y = rng.integers(0, c, n)
    return ref.astype(dtype), cand.astype(dtype), y


def _numpy_figures(ref, cand, y, kept, weights=None, from_logits=True):
    """Every figure computed plainly in float64 with NumPy over the kept samples."""
    a, b = np.asarray(ref, np.float64)[kept], np.asarray(cand, np.float64)[kept]
    if from_logits:
        lp, lq = log_softmax(a, axis=-1), log_softmax(b, axis=-1)
    else:
        lp, lq = np.log(a), np.log(np.clip(b, np.finfo(np.float64).eps, None))
    p = np.exp(lp)
    kl = np.sum(np.where(p > 0, p * (lp - lq), 0.0), axis=-1)
    w = np.ones(kl.shape) if weights is None else np.asarray(weights, np.float64)[kept]
    out = {
        "kl": kl,
        "kl_mean": np.sum(w * kl) / np.sum(w),
        "agree": np.sum(w * (np.argmax(a, -1) == np.argmax(b, -1))) / np.sum(w),
        "n": int(kl.size),
    }
    if y is not None:
        yk = np.asarray(y)[kept]
        rows = np.arange(yk.size)
        ce_p, ce_q = -lp[rows, yk], -lq[rows, yk]
        dp = np.exp(lq[rows, yk]) - np.exp(lp[rows, yk])
        out |= {
            "ce_ref": np.sum(w * ce_p) / np.sum(w),
            "ce_cand": np.sum(w * ce_q) / np.sum(w),
            "dp": dp,
            "dp_mean": np.sum(w * dp) / np.sum(w),
            "dp_rms": np.sqrt(np.sum(w * dp * dp) / np.sum(w)),
            "hit_ref": np.sum(w * (np.argmax(a, -1) == yk)) / np.sum(w),
            "hit_cand": np.sum(w * (np.argmax(b, -1) == yk)) / np.sum(w),
        }
    return out


def test_every_figure_against_numpy() -> None:
    ref, cand, y = _models(3000, 37)
    r = fastce.compare(ref, cand, y, from_logits=True)
    f = _numpy_figures(ref, cand, y, np.ones(3000, bool))
    assert r.n_samples == 3000 and r.n_masked == 0 and r.n_ignored == 0
    np.testing.assert_allclose(r.kl.mean, f["kl_mean"], rtol=1e-12)
    kl = f["kl"]
    se = np.sqrt(np.var(kl) / (kl.size - 1))
    np.testing.assert_allclose(r.kl.standard_error, se, rtol=1e-9)
    np.testing.assert_allclose(r.kl.rms, np.sqrt(np.mean(kl * kl)), rtol=1e-12)
    for q in QUANTILES:
        np.testing.assert_allclose(r.kl.quantiles[q], np.quantile(kl, q), rtol=1e-10)
        np.testing.assert_allclose(r.delta_p.quantiles[q], np.quantile(f["dp"], q), atol=1e-13)
    np.testing.assert_allclose(r.kl.minimum, kl.min(), rtol=1e-10)
    np.testing.assert_allclose(r.kl.maximum, kl.max(), rtol=1e-10)
    assert r.top1_agreement == f["agree"]
    np.testing.assert_allclose(r.reference_cross_entropy, f["ce_ref"], rtol=1e-12)
    np.testing.assert_allclose(r.candidate_cross_entropy, f["ce_cand"], rtol=1e-12)
    np.testing.assert_allclose(
        r.cross_entropy_difference, f["ce_cand"] - f["ce_ref"], rtol=1e-9, atol=1e-14
    )
    np.testing.assert_allclose(r.reference_perplexity, np.exp(f["ce_ref"]), rtol=1e-12)
    np.testing.assert_allclose(r.candidate_perplexity, np.exp(f["ce_cand"]), rtol=1e-12)
    np.testing.assert_allclose(
        r.perplexity_ratio, np.exp(f["ce_cand"]) / np.exp(f["ce_ref"]), rtol=1e-12
    )
    np.testing.assert_allclose(r.delta_p.mean, f["dp_mean"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(r.delta_p.rms, f["dp_rms"], rtol=1e-10)
    np.testing.assert_allclose(r.delta_p.minimum, f["dp"].min(), atol=1e-14)
    np.testing.assert_allclose(r.delta_p.maximum, f["dp"].max(), atol=1e-14)
    assert r.reference_top1_correct == f["hit_ref"]
    assert r.candidate_top1_correct == f["hit_cand"]
    assert r.kl.method == "exact" and all(e == 0.0 for e in r.kl.rank_error.values())


def test_bit_for_bit_with_fastce_functions() -> None:
    """kl.mean is kl_divergence's "mean"; the cross-entropies are cross_entropy's; the
    quantiles are np.quantile of kl_divergence's per-sample values (float64 input)."""
    ref, cand, y = _models(2000, 50, seed=1)
    keep = RNG.random(2000) < 0.8
    y = np.where(RNG.random(2000) < 0.1, -100, y)
    w = RNG.random(2000) + 0.5
    r = fastce.compare(
        ref, cand, y, from_logits=True, where=keep, ignore_index=-100, sample_weight=w
    )
    scored = keep & (y != -100)
    flags = {"from_logits": True, "target_from_logits": True}
    kl = fastce.kl_divergence(ref, cand, **flags, reduction="mean", where=scored, sample_weight=w)
    assert r.kl.mean == kl
    assert r.n_samples == scored.sum()
    assert r.n_masked == (~keep).sum()
    assert r.n_ignored == (keep & (y == -100)).sum()
    for model, attr in ((ref, "reference_cross_entropy"), (cand, "candidate_cross_entropy")):
        ce = fastce.cross_entropy(
            y, model, from_logits=True, reduction="mean", where=keep, ignore_index=-100,
            sample_weight=w,
        )  # fmt: skip
        assert getattr(r, attr) == ce
        ppl = fastce.perplexity(
            y, model, from_logits=True, where=keep, ignore_index=-100, sample_weight=w
        )
        name = attr.replace("cross_entropy", "perplexity")
        assert getattr(r, name) == ppl
    per_sample = fastce.kl_divergence(ref, cand, **flags)[scored]
    for q in QUANTILES:
        assert r.kl.quantiles[q] == np.quantile(np.maximum(per_sample, 0.0), q)
    # float32: the mean has the float32 bits of kl_divergence's
    r32 = fastce.compare(ref.astype(np.float32), cand.astype(np.float32), from_logits=True)
    kl32 = fastce.kl_divergence(
        ref.astype(np.float32), cand.astype(np.float32), **flags, reduction="mean"
    )
    assert r32.kl.mean.dtype == np.float32 and r32.kl.mean == kl32


def test_base_and_probabilities() -> None:
    ref, cand, y = _models(500, 6, seed=2)
    p, q = fastce.softmax(ref), fastce.softmax(cand)
    r = fastce.compare(p, q, y, from_logits=False, base=2)
    assert r.unit == "bits"
    assert r.kl.mean == fastce.kl_divergence(p, q, base=2, reduction="mean")
    assert r.candidate_cross_entropy == fastce.cross_entropy(y, q, base=2, reduction="mean")
    f = _numpy_figures(p, q, y, np.ones(500, bool), from_logits=False)
    np.testing.assert_allclose(r.kl.mean, f["kl_mean"] / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(r.delta_p.mean, f["dp_mean"], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(r.reference_perplexity, np.exp(f["ce_ref"]), rtol=1e-12)


def test_identical_models_and_ties() -> None:
    ref, _, y = _models(400, 9, seed=3)
    ref[:50] = 1.0  # every class tied: the top class is 0 in both
    ref[50:60, 3:5] = 10.0  # a tie for the top: the first wins
    r = fastce.compare(ref, ref.copy(), y, from_logits=True)
    assert r.kl.mean == 0.0 and r.kl.maximum == 0.0 and r.kl.minimum == 0.0
    assert all(x == 0.0 for x in r.kl.quantiles.values())
    assert r.top1_agreement == 1.0
    assert r.cross_entropy_difference == 0.0 and r.perplexity_ratio == 1.0
    assert r.delta_p.mean == 0.0 and r.delta_p.rms == 0.0
    hits = np.mean(np.argmax(ref, -1) == y)
    assert r.reference_top1_correct == hits == r.candidate_top1_correct
    # ties broken as NumPy's argmax breaks them, on each side
    cand = ref.copy()
    cand[50:60, 4] += 1e-12  # the candidate's top moves to class 4 on these rows
    r2 = fastce.compare(ref, cand, from_logits=True)
    assert r2.top1_agreement == np.mean(np.argmax(ref, -1) == np.argmax(cand, -1)) == 0.975


def test_inf_and_nan() -> None:
    ref, cand, y = _models(100, 5, seed=4)
    ref[:10, 0] = -np.inf  # a class the reference rules out: no KL term
    cand[10:20, 1] = -np.inf  # ...the candidate rules out a class the reference allows
    r = fastce.compare(ref[:10], cand[:10], from_logits=True)
    assert np.isfinite(r.kl.mean)
    r = fastce.compare(ref[10:20], cand[10:20], from_logits=True)
    assert r.kl.mean == np.inf and r.kl.maximum == np.inf
    cand2 = cand.copy()
    cand2[30, 2] = np.nan
    r = fastce.compare(ref, cand2, y, from_logits=True)
    assert np.isnan(r.kl.mean) and np.isnan(r.kl.maximum) and np.isnan(r.kl.quantiles[0.5])
    assert np.isnan(r.delta_p.mean) and np.isnan(r.candidate_cross_entropy)
    # NumPy's argmax takes the first NaN as the top class
    assert r.top1_agreement == np.mean(np.argmax(ref, -1) == np.argmax(cand2, -1))
    # masked out, the NaN leaves every figure
    keep = np.ones(100, bool)
    keep[10:20] = False  # (the infinite KL)
    keep[30] = False
    r = fastce.compare(ref, cand2, y, from_logits=True, where=keep)
    assert np.isfinite(r.kl.mean) and np.isfinite(r.delta_p.quantiles[0.999])


def test_negative_rounding_counts_as_zero() -> None:
    # Nearly equal rows of probabilities: per-sample KL can round below zero
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(30), size=2000)
    q = p * (1 + 1e-15 * rng.normal(size=p.shape))
    per = fastce.kl_divergence(p, q)
    r = fastce.compare(p, q, from_logits=False)
    assert r.kl.mean == fastce.kl_divergence(p, q, reduction="mean")
    assert r.kl.minimum >= 0.0
    clamped = np.maximum(per, 0.0)
    assert r.kl.minimum == clamped.min()
    for q_ in QUANTILES:
        assert r.kl.quantiles[q_] == np.quantile(clamped, q_)


def test_groups_are_each_group_alone() -> None:
    ref, cand, y = _models(1500, 12, seed=6)
    g = RNG.integers(0, 7, 1500)
    g[g == 3] = 4  # group 3 empty
    keep = RNG.random(1500) < 0.9
    r = fastce.compare(ref, cand, y, from_logits=True, groups=g, where=keep)
    assert r.n_groups == 7 and r.kl.mean.shape == (7,)
    d = r.to_dict()
    for k in range(7):
        rows = g == k
        if not (rows & keep).any():
            assert np.isnan(r.kl.mean[k]) and r.n_samples[k] == 0
            continue
        alone = fastce.compare(ref[rows], cand[rows], y[rows], from_logits=True, where=keep[rows])
        one = alone.to_dict()
        for name, value in one.items():
            if name == "n_groups":
                continue
            if isinstance(value, dict):
                for field, x in value.items():
                    got = d[name][field]
                    if isinstance(x, dict):
                        for key, xx in x.items():
                            np.testing.assert_equal(got[key][k], xx)
                    elif not isinstance(x, str):
                        np.testing.assert_equal(got[k], x)
            elif not isinstance(value, str):
                np.testing.assert_equal(d[name][k], value)


def test_a_left_out_sample_may_have_any_group_id() -> None:
    """As in the loss functions, the id of a sample left out (masked, ignored) is not
    checked: a negative or huge one counts in no group (the mask's count too)."""
    ref, cand, y = _models(4, 3, seed=17)
    y[3] = -100
    keep = np.array([True, True, False, True])
    for odd in (-1, 2**62):
        ids = np.array([0, 1, odd, odd])
        r = fastce.compare(
            ref, cand, y, from_logits=True, groups=ids, where=keep, ignore_index=-100
        )
        assert r.n_groups == 2 and list(r.n_samples) == [1, 1]
        assert list(r.n_masked) == [0, 0] and list(r.n_ignored) == [0, 0]
        ids = np.array([0, 1, odd, 1])
        r = fastce.compare(ref, cand, from_logits=True, groups=ids, where=keep)
        assert list(r.n_masked) == [0, 0] and list(r.n_samples) == [1, 2]


def test_no_groups_gives_empty_figures() -> None:
    """Zero groups (no sample kept): every per-group figure has zero entries, the quantiles,
    minima and maxima as the means (in memory and streamed)."""
    ref, cand, y = _models(4, 3, seed=16)
    results = [
        fastce.compare(
            ref, cand, y, from_logits=True, groups=np.arange(4), where=np.zeros(4, bool)
        )
    ]
    if importlib.util.find_spec("datasketches") is not None:
        results.append(fastce.Comparison(from_logits=True, groups=True).result())
    for r in results:
        assert r.n_groups == 0
        for dist in (d for d in (r.kl, r.delta_p) if d is not None):
            shapes = {np.shape(dist.mean), np.shape(dist.minimum), np.shape(dist.maximum)}
            shapes |= {np.shape(x) for x in [*dist.quantiles.values(), *dist.rank_error.values()]}
            assert shapes == {(0,)}, shapes


def test_half_precision_is_float32() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    ref, cand, y = _models(300, 40, seed=7)
    for half in (np.float16, ml_dtypes.bfloat16):
        a, b = ref.astype(half), cand.astype(half)
        r = fastce.compare(a, b, y, from_logits=True)
        r32 = fastce.compare(a.astype(np.float32), b.astype(np.float32), y, from_logits=True)
        assert r.to_dict() == r32.to_dict()


def test_axis_and_temperature() -> None:
    ref, cand, y = _models(256, 16, seed=8)
    a = np.ascontiguousarray(ref.reshape(4, 64, 16).transpose(0, 2, 1))  # (N, C, d)
    b = np.ascontiguousarray(cand.reshape(4, 64, 16).transpose(0, 2, 1))
    r = fastce.compare(a, b, y.reshape(4, 64), from_logits=True, axis=1, temperature=2.0)
    flat = fastce.compare(ref / 2.0, cand / 2.0, y, from_logits=True)
    assert r.kl.mean == fastce.kl_divergence(
        a, b, axis=1, from_logits=True, target_from_logits=True, temperature=2.0,
        reduction="mean",
    )  # fmt: skip
    np.testing.assert_allclose(r.kl.mean, flat.kl.mean, rtol=1e-14)
    assert r.top1_agreement == flat.top1_agreement


def test_peer_pytorch() -> None:
    torch = pytest.importorskip("torch")
    ref, cand, y = _models(1000, 20, dtype=np.float32, seed=9)
    t_ref, t_cand, t_y = torch.from_numpy(ref), torch.from_numpy(cand), torch.from_numpy(y)
    lp, lq = torch.log_softmax(t_ref.double(), -1), torch.log_softmax(t_cand.double(), -1)
    kl_rows = torch.nn.functional.kl_div(lq, lp, log_target=True, reduction="none").sum(-1)
    r = fastce.compare(ref, cand, y, from_logits=True)
    np.testing.assert_allclose(r.kl.mean, kl_rows.mean().item(), rtol=1e-6)
    for q in QUANTILES:
        expect = torch.quantile(kl_rows.clamp_min(0), q).item()
        np.testing.assert_allclose(r.kl.quantiles[q], expect, rtol=1e-5)
    agree = (t_ref.argmax(-1) == t_cand.argmax(-1)).double().mean().item()
    np.testing.assert_allclose(r.top1_agreement, agree, rtol=1e-7)
    ce = torch.nn.functional.cross_entropy(t_cand.double(), t_y).item()
    np.testing.assert_allclose(r.candidate_cross_entropy, ce, rtol=1e-6)
    rows = torch.arange(1000)
    dp = lq.exp()[rows, t_y] - lp.exp()[rows, t_y]
    np.testing.assert_allclose(r.delta_p.mean, dp.mean().item(), rtol=1e-4, atol=1e-8)


def _split(n: int, rng: np.random.Generator) -> list[slice]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(1, 8), replace=False))
    edges = [0, *cuts.tolist(), n]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def _merge_tree(parts: list[fastce.Comparison], rng: np.random.Generator) -> fastce.Comparison:
    parts = list(parts)
    while len(parts) > 1:
        i = int(rng.integers(0, len(parts) - 1))
        a, b = parts[i], parts.pop(i + 1)
        parts[i] = fastce.Comparison.from_bytes(a.to_bytes()).merge(pickle.loads(pickle.dumps(b)))
    return parts[0]


_EXACT = ("mean", "standard_error", "rms", "minimum", "maximum")


@pytest.mark.parametrize("grouped", [False, True])
def test_streamed_is_exact_however_split(grouped: bool) -> None:
    pytest.importorskip("datasketches")
    rng = np.random.default_rng(10 + grouped)
    ref, cand, y = _models(5000, 24, dtype=np.float32, seed=10)
    y = np.where(rng.random(5000) < 0.05, -1, y)
    w = rng.random(5000)
    g = rng.integers(0, 5, 5000) if grouped else None
    kw = {"from_logits": True, "ignore_index": -1}
    whole = fastce.compare(ref, cand, y, sample_weight=w, groups=g, **kw).to_dict()
    for _ in range(3):
        parts = []
        for sl in _split(5000, rng):
            c = fastce.Comparison(groups=grouped, **kw)
            c.update(
                ref[sl], cand[sl], y[sl], sample_weight=w[sl], groups=None if g is None else g[sl]
            )
            parts.append(c)
        got = _merge_tree(parts, rng).result().to_dict()
        for name in ("top1_agreement", "n_samples", "n_ignored", "reference_cross_entropy",
                     "candidate_perplexity", "cross_entropy_difference", "perplexity_ratio",
                     "reference_top1_correct"):  # fmt: skip
            assert got[name] == whole[name], name
        for dist in ("kl", "delta_p"):
            for field in _EXACT:
                assert got[dist][field] == whole[dist][field], (dist, field)
            assert got[dist]["method"] == "req"


def test_streamed_quantiles_within_rank_error() -> None:
    pytest.importorskip("datasketches")
    ref, cand, y = _models(200_000, 8, dtype=np.float32, seed=11)
    c = fastce.Comparison(from_logits=True)
    for k in range(0, 200_000, 50_000):
        c.update(ref[k : k + 50_000], cand[k : k + 50_000], y[k : k + 50_000])
    r = c.result()
    exact = np.sort(np.maximum(fastce.kl_divergence(ref, cand, from_logits=True,
                                                    target_from_logits=True), 0.0))  # fmt: skip
    n = exact.size
    for q in QUANTILES:
        v = np.float32(r.kl.quantiles[q])
        lo = np.searchsorted(exact.astype(np.float32), v, "left") / n
        hi = np.searchsorted(exact.astype(np.float32), v, "right") / n
        err = float(r.kl.rank_error[q])
        assert 0.0 <= err < 0.01
        assert lo - err - 1.0 / n <= q <= hi + err + 1.0 / n, (q, lo, hi, err)


def test_state_round_trip_and_refusals() -> None:
    pytest.importorskip("datasketches")
    ref, cand, y = _models(100, 4, seed=12)
    c = fastce.Comparison(from_logits=True).update(ref, cand, y)
    again = fastce.Comparison.from_bytes(c.to_bytes())
    assert again.result().to_dict() == c.result().to_dict()
    with pytest.raises(ValueError, match="not the bytes of a fastce Comparison"):
        fastce.Comparison.from_bytes(b"garbage")
    with pytest.raises(ValueError, match="same options"):
        c.merge(fastce.Comparison(from_logits=False))
    with pytest.raises(ValueError, match="target or none"):
        c.update(ref, cand)
    with pytest.raises(ValueError, match="groups="):
        c.update(ref, cand, y, groups=np.zeros(100, int))


def test_state_keeps_numpy_scalar_options() -> None:
    # (JSON has no NumPy scalars: the options are kept as an Accumulator keeps its own)
    pytest.importorskip("datasketches")
    ref, cand, y = _models(50, 4, seed=14)
    options = {"axis": np.int64(-1), "base": np.float32(2.0), "ignore_index": np.int64(-100)}
    c = fastce.Comparison(from_logits=True, **options).update(ref, cand, y)
    again = fastce.Comparison.from_bytes(c.to_bytes())
    assert again.result().to_dict() == c.result().to_dict()
    assert pickle.loads(pickle.dumps(c)).result().to_dict() == c.result().to_dict()
    assert again.merge(c).result().n_samples == 100


def _state_with(blob: bytes, **members: Any) -> bytes:
    """``blob`` (a Comparison state) with members replaced (or, given None, left out)."""
    z = np.load(io.BytesIO(blob))
    arrays = {name: z[name] for name in z.files}
    for name, value in members.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_a_corrupt_state_is_a_value_error() -> None:
    pytest.importorskip("datasketches")
    ref, cand, y = _models(100, 4, seed=15)
    blob = fastce.Comparison(from_logits=True).update(ref, cand, y).to_bytes()
    z = np.load(io.BytesIO(blob))
    meta = json.loads(bytes(z["meta"]).decode())
    del meta["axis"]
    corrupt = {
        "no accs": _state_with(blob, accs=None),
        "no axis": _state_with(blob, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8)),
        "short lengths": _state_with(blob, kl_lengths=np.array([5, 7])),
        "garbled sketch": _state_with(blob, kl_blob=np.full(z["kl_blob"].size, 7, np.uint8)),
        "a minimum too many": _state_with(blob, kl_minimum=np.zeros(3)),
        "counts of 5 groups": _state_with(blob, counts=np.zeros((3, 5), np.int64)),
        "keys without values": _state_with(blob, keys0=np.arange(4)),
    }
    for what, state in corrupt.items():
        with pytest.raises(ValueError, match="Comparison state"):
            fastce.Comparison.from_bytes(state).result()
            raise AssertionError(what)


def test_errors() -> None:
    ref, cand, y = _models(10, 4, seed=13)
    with pytest.raises(TypeError, match="from_logits"):
        fastce.compare(ref, cand)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"reference has shape .* candidate has shape"):
        fastce.compare(ref, cand[:, :3], from_logits=True)
    with pytest.raises(ValueError, match="target has shape"):
        fastce.compare(ref, cand, y[:5], from_logits=True)
    with pytest.raises(ValueError, match=r"target holds label 7 at position 3;"):
        fastce.compare(ref, cand, np.where(np.arange(10) == 3, 7, y), from_logits=True)
    with pytest.raises(ValueError, match="ignore_index applies"):
        fastce.compare(ref, cand, from_logits=True, ignore_index=-100)
    with pytest.raises(ValueError, match="from_logits"):
        fastce.compare(fastce.softmax(ref), fastce.softmax(cand), from_logits=False,
                       temperature=2.0)  # fmt: skip
    with pytest.raises(ValueError, match="candidate"):
        fastce.compare(fastce.softmax(ref), cand, from_logits=False)
    with pytest.raises(TypeError, match=r"axis must be an integer; got 1\.5"):
        fastce.Comparison(from_logits=True, axis=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups holds -1"):
        fastce.compare(ref, cand, from_logits=True, groups=np.full(10, -1))


def test_repr_and_to_dict() -> None:
    ref, cand, y = _models(50, 4, seed=14)
    r = fastce.compare(ref, cand, y, from_logits=True)
    text = repr(r)
    assert "mean KL (nats)" in text and "same top class" in text and "PPL ratio" in text
    d = r.to_dict()
    assert isinstance(d["kl"]["mean"], float) and isinstance(d["n_samples"], int)
    assert set(d["kl"]["quantiles"]) == {"p50", "p90", "p95", "p99", "p99_9"}
    r2 = fastce.compare(ref, cand, from_logits=True)
    assert r2.delta_p is None and r2.to_dict()["delta_p"] is None


def test_exact_quantiles_are_numpys_per_group() -> None:
    from fastce.comparison import _exact_quantiles

    rng = np.random.default_rng(15)
    sizes = [0, 1, 2, 3, 5, 8, 101]
    ids = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(size=ids.size)
    values[ids == 4] = np.where(np.arange(5) == 2, np.nan, values[ids == 4])
    order = rng.permutation(ids.size)
    qs, mins, maxs = _exact_quantiles(values[order], ids[order], len(sizes))
    for g, n in enumerate(sizes):
        part = values[ids == g]
        for q in QUANTILES:
            expect = np.quantile(part, q) if n else np.nan
            np.testing.assert_equal(qs[q][g], expect)
        np.testing.assert_equal(mins[g], part.min() if n else np.nan)
        np.testing.assert_equal(maxs[g], part.max() if n else np.nan)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [7, 2500])  # one column block, and two
def test_top_class_is_numpys_argmax(dtype: type, n_classes: int) -> None:
    rng = np.random.default_rng(16)
    x = rng.normal(size=(40, n_classes)).astype(dtype)
    x[0] = 1.0  # all tied
    x[1, [3, 5]] = 50.0  # a tie for the top
    x[2] = -np.inf
    x[3, 4] = np.inf
    x[4, [2, 6]] = np.inf
    x[5, 3] = np.nan
    x[6, 1] = -np.nan  # the sign bit set
    x[6, 5] = 99.0
    x[7] = 0.0
    x[7, 2] = -0.0
    x[8, -1] = 1e30  # the top in the last block
    x[9, [1, -1]] = np.nan
    x[10] = -np.inf
    x[10, -2] = -1e300 if dtype == np.float64 else -3e38
    for logits in (True, False):
        if not logits:
            with np.errstate(invalid="ignore", over="ignore"):
                x = np.where(np.isfinite(x), np.abs(x) / np.abs(x).max(), x).astype(dtype)
            x[:, :] = np.where(np.isinf(x), 0.5, x)  # probabilities: no infinities
            x[11:, :] = fastce.softmax(rng.normal(size=(29, n_classes))).astype(dtype)
        top = np.argmax(x, axis=-1)
        other = np.roll(x, 1, axis=0)
        r = fastce.compare(x, other, top, from_logits=logits) if logits else None
        if not logits:
            keep = ~np.isnan(x).any(-1) & (x >= 0).all(-1) & (x <= 1).all(-1)
            r = fastce.compare(x, other, top, from_logits=False, where=keep & np.roll(keep, 1))
            kept = keep & np.roll(keep, 1)
            assert r.reference_top1_correct == 1.0
            assert r.top1_agreement == np.mean((top == np.argmax(other, -1))[kept])
            continue
        assert r.reference_top1_correct == 1.0, np.argmax(x, -1)
        assert r.top1_agreement == np.mean(top == np.argmax(other, -1))


def test_one_distribution_and_no_classes() -> None:
    ref, cand = [1.0, 2.0, 3.0], [1.0, 2.5, 3.0]
    one = fastce.compare(ref, cand, 2, from_logits=True)
    batch = fastce.compare([ref], [cand], [2], from_logits=True)
    np.testing.assert_equal(one.to_dict(), batch.to_dict())
    assert one.n_samples == 1 and one.top1_agreement == 1.0
    with pytest.raises(ValueError, match="no classes"):
        fastce.compare(np.zeros((3, 0)), np.zeros((3, 0)), from_logits=True)


def test_streamed_group_counts_do_not_depend_on_the_split() -> None:
    """A group's masked and ignored samples count however the batches fall: here group 2's
    masked sample comes in a batch where group 2 has nothing scored."""
    pytest.importorskip("datasketches")
    ref, cand, y = _models(6, 4, seed=17)
    g = np.array([0, 1, 2, 2, 1, 5])
    keep = np.array([True, True, False, True, True, False])
    y[4] = -1  # ignored
    kw = {"from_logits": True, "ignore_index": -1}
    whole = fastce.compare(ref, cand, y, groups=g, where=keep, **kw)
    assert whole.n_groups == 3  # group 5 has no sample scored
    assert whole.n_masked.tolist() == [0, 0, 1] and whole.n_ignored.tolist() == [0, 1, 0]
    for cut in range(1, 6):
        parts = []
        for rows in (slice(0, cut), slice(cut, 6)):
            c = fastce.Comparison(groups=True, **kw)
            c.update(ref[rows], cand[rows], y[rows], groups=g[rows], where=keep[rows])
            parts.append(fastce.Comparison.from_bytes(c.to_bytes()))
        got = parts[0].merge(parts[1]).result()
        assert got.n_groups == 3, cut
        assert got.n_masked.tolist() == [0, 0, 1], cut
        assert got.n_ignored.tolist() == [0, 1, 0], cut
        assert got.n_samples.tolist() == whole.n_samples.tolist(), cut


def test_a_streamed_comparison_needs_datasketches(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "datasketches", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'fastce\[compare\]'"):
        fastce.Comparison(from_logits=True)
    ref, cand, y = _models(10, 3, seed=18)
    assert fastce.compare(ref, cand, y, from_logits=True).n_samples == 10  # in memory: exact
