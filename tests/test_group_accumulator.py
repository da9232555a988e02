"""The Accumulator with ``groups=``: one exact sum and mean per group, in a compact state.

Each group's result must be the bits of the in-memory ``f(..., groups=g, reduction=...)`` over
all the data (and so of ``f`` on that group's samples alone), however the data was split into
batches, merged, serialised or pickled; the compact group state must hold the same exact sums
as the dense superaccumulator.
"""

from __future__ import annotations

import itertools
import json
import pickle
import struct
import time
import zlib

import numpy as np
import pytest

import fastce
from fastce._kernels.exactsum import (
    ACC_LEN,
    FLAG_OTHER,
    N_BINS,
    acc_add_array,
    acc_merge,
    acc_value,
    group_sums,
)
from fastce._kernels.groupsum import KEY_GROUP, KEY_WHICH, group_state, merge_states, state_sums

N, C, G = 900, 5, 23


def bits(a):
    return np.asarray(a).tobytes()


def _adversarial(rng, n):
    """Ordinary values, specials, signed zeros, subnormals, values near DBL_MAX, and values
    spread over every binade."""
    x = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5, n)
    kind = rng.integers(0, 8, n)
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -5e-324, 2.2250738585072014e-308]
    x[kind == 0] = rng.choice(specials, int((kind == 0).sum()))
    spread = kind == 1
    x[spread] = (rng.random(spread.sum()) - 0.5) * 10.0 ** rng.integers(-320, 308, spread.sum())
    huge = kind == 2
    x[huge] = np.where(rng.random(huge.sum()) < 0.5, 1.7e308, -1.7e308)
    return x


def _dense(groups, values, weights, n_groups):
    sums, wsums = np.empty(n_groups), np.empty(n_groups)
    counts = np.empty(n_groups, np.int64)
    group_sums(groups, values, weights, sums, wsums, counts)
    return sums, wsums, counts


def test_compact_state_has_the_dense_sums_in_any_split_and_merge_order():
    rng = np.random.default_rng(0)
    for trial in range(120):
        n, n_groups = int(rng.integers(0, 300)), int(rng.integers(1, 9))
        g = rng.integers(-1, n_groups, n)  # -1: left out
        v = _adversarial(rng, n)
        w = _adversarial(rng, n) if trial % 2 else np.empty(0)
        if trial % 7 == 0:
            v = np.full(n, -0.0)  # an all -0.0 group sums to -0.0
        sums, wsums, counts = _dense(g, v, w, n_groups)
        pieces = np.split(np.arange(n), np.sort(rng.integers(0, n + 1, rng.integers(0, 5))))
        states = [group_state(g[p], v[p], w[p] if w.size else w, n_groups) for p in pieces]
        rng.shuffle(states)
        keys, vals, got_counts = states[0]
        for k, x, c in states[1:]:
            keys, vals = merge_states(keys, vals, k, x)
            got_counts = got_counts + c
        one_k, one_v, _ = group_state(g, v, w, n_groups)
        # canonical: the same entries however the samples were split and merged
        assert bits(keys) == bits(one_k) and bits(vals) == bits(one_v), trial
        got, wgot = np.empty(n_groups), np.empty(n_groups)
        state_sums(keys, vals, got, wgot)
        assert bits(got) == bits(sums), (trial, got, sums)
        assert bits(wgot) == bits(wsums.astype(np.float64)), (trial, wgot, wsums)
        assert bits(got_counts) == bits(counts)


def test_merge_carries_bins_beyond_the_limit():
    """Non-canonical entries near the bin limit (what a sum with no canonical form keeps):
    adding two of them must carry, never overflow int64."""
    rng = np.random.default_rng(1)
    limit = (1 << 62) - 1
    for _ in range(200):
        rows = [np.zeros((2, ACC_LEN), np.int64) for _ in range(2)]
        states = []
        for r in rows:
            r[:, FLAG_OTHER] = 1
            slots = np.sort(rng.choice(np.arange(1, N_BINS - 200), 6, replace=False))
            r[0, slots] = rng.integers(-limit, limit, 6, endpoint=True)
            r[0, slots[:2]] = limit * rng.choice([-1, 1], 2)
            r[1, slots[-1]] = limit
            keys = np.concatenate([
                which * KEY_WHICH + np.flatnonzero(r[which]) for which in range(2)
            ]) + 5 * KEY_GROUP  # fmt: skip
            vals = np.concatenate([r[which][r[which] != 0] for which in range(2)])
            states.append((keys, vals))
        keys, vals = merge_states(*states[0], *states[1])
        got, wgot = np.empty(6), np.empty(6)
        state_sums(keys, vals, got, wgot)
        dense = rows[0].copy()
        acc_merge(dense[0], rows[1][0])
        acc_merge(dense[1], rows[1][1])
        assert bits(got[5]) == bits(np.float64(acc_value(dense[0])))
        assert bits(wgot[5]) == bits(np.float64(acc_value(dense[1])))
        assert (np.abs(vals) <= limit).all()


def test_many_values_near_dbl_max_overflow_as_the_dense_sum_does():
    v = np.full(3000, 1.7976931348623157e308)
    v[::2] *= -1
    v[-1] = 1e300
    ids = np.zeros(v.size, np.int64)
    states = [group_state(ids[i::3], v[i::3], np.empty(0), 1) for i in range(3)]
    keys, vals = merge_states(*states[0][:2], *merge_states(*states[1][:2], *states[2][:2]))
    got, w = np.empty(1), np.empty(1)
    state_sums(keys, vals, got, w)
    dense = np.zeros(ACC_LEN, np.int64)
    acc_add_array(dense, v)
    assert bits(got[0]) == bits(np.float64(acc_value(dense))) and w[0] == v.size


def _data(measure, dtype, rng):
    """(batch arrays, per-sample keyword arrays, options) for ``measure``."""
    x = (rng.normal(size=(N, C)) * 3).astype(dtype)
    p = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    q = rng.dirichlet(np.full(C, 0.5), N).astype(dtype)
    y = rng.integers(0, C, N)
    sw, m = rng.random(N) * 2, rng.random(N) < 0.8
    if measure == "entropy":
        return (p,), {"sample_weight": sw, "where": m}, {}
    if measure == "cross_entropy":
        y = np.where(rng.random(N) < 0.15, -100, y)
        options = {"from_logits": True, "ignore_index": -100, "class_weight": rng.random(C)}
        return (y, x), {"sample_weight": sw, "where": m}, options
    if measure == "perplexity":
        y = np.where(rng.random(N) < 0.15, -100, y)
        return (y, x), {"where": m}, {"from_logits": True, "ignore_index": -100}
    if measure == "kl_divergence":
        return (p, q), {"where": m}, {}
    if measure == "js_divergence":
        return (p, x), {"sample_weight": sw}, {"from_logits": True}
    yb = (rng.random((N, 3)) < 0.4).astype(dtype)
    return (yb, x[:, :3]), {"sample_weight": rng.random((N, 3))}, {"from_logits": True}


def _in_memory(measure, arrays, per_sample, options, groups, n_groups):
    f = getattr(fastce, measure)
    kw = dict(per_sample, **options, groups=groups, n_groups=n_groups)
    if measure == "perplexity":
        return {"perplexity": f(*arrays, **kw)}
    return {red: f(*arrays, reduction=red, **kw) for red in ("sum", "mean")}


def _feed(acc, arrays, per_sample, groups, cuts):
    for lo, hi in itertools.pairwise(cuts):
        kw = {k: v[lo:hi] for k, v in per_sample.items()}
        acc.update(*(a[lo:hi] for a in arrays), groups=groups[lo:hi], **kw)
    return acc


def _merged_in_random_tree(accs, rng):
    accs = list(accs)
    while len(accs) > 1:
        i, j = sorted(rng.choice(len(accs), 2, replace=False))
        b = accs.pop(j)
        accs[i] = accs[i].merge(b) if rng.random() < 0.5 else b.merge(accs[i])
    return accs[0]


MEASURES = [
    "entropy", "cross_entropy", "perplexity", "kl_divergence", "js_divergence",
    "binary_cross_entropy",
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("measure", MEASURES)
def test_per_group_bits_equal_in_memory(measure, dtype):
    rng = np.random.default_rng([MEASURES.index(measure), np.dtype(dtype).itemsize])
    arrays, per_sample, options = _data(measure, dtype, rng)
    groups = rng.integers(0, G, N)
    if measure == "binary_cross_entropy" and dtype == np.float32:
        groups = rng.integers(0, G, (N, 3))  # a group per element (float64: per row)
    groups[groups == 7] = 8  # an empty group: sum 0.0, mean NaN, count 0
    want = _in_memory(measure, arrays, per_sample, options, groups, G)

    cuts = [0, *sorted(rng.integers(0, N, 6)), N]
    one = _feed(fastce.Accumulator(measure, **options), arrays, per_sample, groups, cuts)
    parts = [
        _feed(fastce.Accumulator(measure, **options), arrays, per_sample, groups, [lo, hi])
        for lo, hi in itertools.pairwise(cuts)
    ]
    tree = _merged_in_random_tree(parts, rng)
    blob = one.to_bytes()
    assert tree.to_bytes() == blob  # canonical: however the data was split and merged
    for acc in (one, tree, fastce.Accumulator.from_bytes(blob), pickle.loads(pickle.dumps(one))):
        res = acc.result()
        assert res.grouped and res.count.shape == (G,) and res.count[7] == 0
        assert res.dtype == np.dtype(dtype).name and res.batchmean is None
        for name, value in want.items():
            got = getattr(res, name)
            assert got.dtype == value.dtype and bits(got) == bits(value), (measure, name)
        assert np.isnan(res.mean[7]) and res.sum[7] == 0.0 and res.count.sum() == acc._count
    if measure != "perplexity":  # a group's sums are those of its rows alone
        rows = groups == 3 if groups.ndim == 1 else None
        if rows is not None:
            alone = fastce.Accumulator(measure, **options)
            alone.update(*(a[rows] for a in arrays), **{k: v[rows] for k, v in per_sample.items()})
            r = alone.result()
            assert bits(np.asarray(r.sum, dtype)) == bits(one.result().sum[3])
            assert bits(np.asarray(r.mean, dtype)) == bits(one.result().mean[3])


def test_result_lengths_dicts_and_counts():
    acc = fastce.Accumulator("entropy")
    p = np.full((4, 2), 0.5)
    acc.update(p, groups=np.array([0, 2, 2, 0]))
    acc.update(p[:1], groups=np.array([4]), where=np.array([False]))  # masked: not seen
    res = acc.result()
    assert res.count.tolist() == [2, 0, 2] and res.weight.tolist() == [2.0, 0.0, 2.0]
    d = res.to_dict()
    assert d["count"] == [2, 0, 2] and isinstance(d["mean"], list) and np.isnan(d["mean"][1])
    assert res == fastce.Accumulator.from_bytes(acc.to_bytes()).result()
    assert "in 3 groups" in repr(acc)
    # a merge with an empty accumulator of either kind changes nothing
    assert acc.merge(fastce.Accumulator("entropy")).result() == res
    assert fastce.Accumulator("entropy").merge(acc).result() == res


def test_errors():
    p = np.full((4, 2), 0.5)
    g = np.array([0, 1, 1, 0])
    with pytest.raises(TypeError, match="groups= comes with each batch"):
        fastce.Accumulator("entropy", groups=g)
    with pytest.raises(TypeError, match="takes no n_groups="):
        fastce.Accumulator("entropy", n_groups=2)
    grouped = fastce.Accumulator("entropy").update(p, groups=g)
    with pytest.raises(ValueError, match="every batch needs groups="):
        grouped.update(p)
    plain = fastce.Accumulator("entropy").update(p)
    with pytest.raises(ValueError, match="a batch with groups= needs an accumulator"):
        plain.update(p, groups=g)
    with pytest.raises(ValueError, match="without groups="):
        plain.merge(grouped)
    with pytest.raises(ValueError, match="every batch needs groups="):
        grouped.merge(plain)
    with pytest.raises(TypeError, match="'log_loss' takes no groups="):
        fastce.Accumulator("log_loss", labels=[0, 1]).update([0, 1], p[:2], groups=g[:2])
    with pytest.raises(ValueError, match="groups holds -1 at position"):
        grouped.update(p, groups=-g)
    with pytest.raises(TypeError, match="groups must hold integer group ids"):
        grouped.update(p, groups=g.astype(float))
    with pytest.raises(ValueError, match="holds float64 results and the batch gives float32"):
        grouped.update(p.astype(np.float32), groups=g)
    assert grouped.result().count.tolist() == [2, 2]  # the refused batches left no trace


def _corrupt(blob, offset, data):
    body = bytearray(blob[:-4])
    body[offset : offset + len(data)] = data
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def test_corrupt_grouped_states_are_refused():
    acc = fastce.Accumulator("entropy").update(np.full((4, 2), 0.5), groups=np.array([0, 1, 1, 3]))
    blob = acc.to_bytes()
    assert struct.unpack_from("<H", blob, 6)[0] == 2
    assert struct.unpack_from("<H", fastce.Accumulator("entropy").to_bytes(), 6)[0] == 1
    with pytest.raises(ValueError, match="checksum"):
        fastce.Accumulator.from_bytes(blob[:-12] + blob[-8:])
    (text_len,) = struct.unpack_from("<I", blob, 8)
    header = json.loads(blob[12 : 12 + text_len])
    assert header["groups"] == 4 and header["count"] == 4
    keys_at = 12 + text_len + 8 + 8 * header["groups"]  # after two empty dense rows, the counts
    vals_at = keys_at + 8 * header["entries"]
    for offset, data, why in [
        (keys_at, struct.pack("<q", 2**40), "invalid"),  # keys out of order / group too big
        (vals_at, struct.pack("<q", 0), "invalid"),  # a zero entry
        (vals_at, struct.pack("<q", 2**62), "invalid"),  # beyond the bin limit
        (keys_at - 8, struct.pack("<q", -1), "negative group count"),
        (keys_at - 8, struct.pack("<q", 5), "counts add up"),
    ]:
        with pytest.raises(ValueError, match=f"accumulator state is corrupt.*{why}"):
            fastce.Accumulator.from_bytes(_corrupt(blob, offset, data))
    with pytest.raises(ValueError, match="corrupt"):  # the header says more than there is
        fastce.Accumulator.from_bytes(_corrupt(blob, blob.index(b'"entries": ') + 11, b"9"))


def _state_bytes(acc):
    keys, vals = acc._group_state()
    return keys.nbytes + vals.nbytes + acc._group_counts.nbytes


@pytest.mark.slow
def test_a_million_groups_fit_well_under_a_gigabyte():
    """The measurement quoted in docs/api.md (``pytest -m slow -s -k million``): 10,000,000
    cross-entropy values in [0.01, 10] (10 per group, weights 1) into 1,000,000 groups through
    ``update``; then the state of values spread over every binade."""
    rng = np.random.default_rng(0)
    n, n_groups = 10_000_000, 1_000_000
    groups = rng.permutation(np.arange(n) % n_groups)
    # two classes, label 0: the loss is log(1 + e**-a), so a = -log(e**loss - 1)
    loss = np.exp(rng.uniform(np.log(0.01), np.log(10.0), n))
    logits = np.zeros((n, 2))
    logits[:, 0] = -np.log(np.expm1(loss))
    labels = np.zeros(n, np.int64)
    acc = fastce.Accumulator("cross_entropy", from_logits=True)
    acc.update(labels[:10], logits[:10], groups=groups[:10])  # compile outside the clock
    acc = fastce.Accumulator("cross_entropy", from_logits=True)
    start = time.perf_counter()
    acc.update(labels, logits, groups=groups)
    seconds = time.perf_counter() - start
    typical = _state_bytes(acc) / n_groups
    print(f"typical: {typical:.1f} bytes per group, to_bytes {len(acc.to_bytes()) / n_groups:.1f}")
    print(f"update of {n:,} samples into {n_groups:,} groups: {seconds:.2f} s")
    assert typical * n_groups < 1e9

    spread = rng.uniform(1, 2, n) * 2.0 ** rng.integers(-1074, 1023, n)
    with fastce._reduce.capture() as states:
        fastce._reduce.capture_groups(groups, spread, np.empty(0), n_groups, np.dtype("f8"))
    acc = fastce.Accumulator("entropy")
    acc._add_groups(states[0].keys, states[0].vals, states[0].counts, None, n)
    print(f"spread over all binades: {_state_bytes(acc) / n_groups:.1f} bytes per group")
