"""Streaming accumulators: the same bits as the in-memory reductions, however data is split."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import struct
import threading
import zlib

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastce
from fastce import Accumulator


def bits(x):
    return np.float64(x).tobytes()


def _probs(rng, n, c, dtype):
    p = rng.dirichlet(np.full(c, 0.7), size=n)
    p[rng.random((n, c)) < 0.05] = 0.0
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def make_case(measure, dtype, n=600, c=9, seed=0, weighted=False):
    """(arrays, options, sample_weight) for ``measure`` with ``n`` samples."""
    rng = np.random.default_rng(seed)
    w = rng.exponential(1.0, n) if weighted else None
    if measure == "entropy":
        return (_probs(rng, n, c, dtype),), {"base": 2}, w
    if measure in ("cross_entropy", "perplexity"):
        logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
        y = rng.integers(0, c, n)
        y[rng.random(n) < 0.1] = -100
        cw = rng.uniform(0.5, 2.0, c)
        options = {"from_logits": True, "class_weight": cw, "ignore_index": -100}
        if measure == "cross_entropy":
            options["base"] = 2  # perplexity has no base: it is e to the mean in nats
        return (y, logits), options, w
    if measure == "binary_cross_entropy":
        y = (rng.random((n, 3)) < 0.4).astype(dtype)
        p = rng.random((n, 3)).astype(dtype)
        return (y, p), {}, None if w is None else np.repeat(w[:, None], 3, axis=1)
    if measure == "kl_divergence":
        return (_probs(rng, n, c, dtype), _probs(rng, n, c, dtype)), {}, w
    if measure == "js_divergence":
        return (_probs(rng, n, c, dtype), _probs(rng, n, c, dtype)), {"base": 2}, w
    if measure == "log_loss":
        y = rng.integers(0, c, n)
        return (y, _probs(rng, n, c, dtype)), {"labels": np.arange(c)}, w
    raise AssertionError(measure)


def in_memory(measure, arrays, options, w):
    if measure == "log_loss":
        s = fastce.log_loss(*arrays, sample_weight=w, normalize=False, **options)
        m = fastce.log_loss(*arrays, sample_weight=w, **options)
        return m, s
    # perplexity accumulates cross-entropy in nats (Result.perplexity is checked apart)
    f = fastce.cross_entropy if measure == "perplexity" else getattr(fastce, measure)
    return (
        f(*arrays, reduction="mean", sample_weight=w, **options),
        f(*arrays, reduction="sum", sample_weight=w, **options),
    )


def streamed(measure, arrays, options, w, cuts):
    acc = Accumulator(measure, **options)
    bounds = [0, *sorted(cuts), len(arrays[0])]
    for lo, hi in itertools.pairwise(bounds):
        acc.update(*(a[lo:hi] for a in arrays), sample_weight=None if w is None else w[lo:hi])
    return acc


MEASURES = sorted(fastce.accumulator.MEASURES)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_equals_in_memory_bits(measure, dtype, weighted):
    arrays, options, w = make_case(measure, dtype, weighted=weighted)
    mean, total = in_memory(measure, arrays, options, w)
    rng = np.random.default_rng(1)
    for n_cuts in (0, 1, 7, 80):
        cuts = rng.integers(0, len(arrays[0]), n_cuts)
        res = streamed(measure, arrays, options, w, cuts).result()
        assert bits(res.mean) == bits(mean), (n_cuts, res.mean, mean)
        assert bits(res.sum) == bits(total), (n_cuts, res.sum, total)
        want_dtype = "float64" if measure == "log_loss" else np.dtype(dtype).name
        assert res.dtype == want_dtype
        assert res.mean == res.sum / res.weight or math.isclose(
            res.mean, res.sum / res.weight, rel_tol=1e-6
        )
        if measure == "perplexity":
            want = fastce.perplexity(*arrays, sample_weight=w, **options)
            assert bits(res.perplexity) == bits(want), (n_cuts, res.perplexity, want)
            assert res.as_dict()["perplexity"] == res.perplexity
        else:
            assert res.perplexity is None and "perplexity" not in res.as_dict()


@settings(max_examples=40, deadline=None)
@given(
    measure=st.sampled_from(MEASURES),
    cuts=st.lists(st.integers(0, 300), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_and_merge_tree(measure, cuts, seed):
    arrays, options, w = make_case(measure, np.float64, n=300, seed=seed, weighted=True)
    mean, total = in_memory(measure, arrays, options, w)
    bounds = [0, *sorted(cuts), 300]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        a = Accumulator(measure, **options)
        a.update(*(x[lo:hi] for x in arrays), sample_weight=w[lo:hi])
        parts.append(a)
    # Merge in reverse order, in a pairwise tree, and through bytes: all the same bits.
    rev = Accumulator(measure, **options)
    for p in reversed(parts):
        rev.merge(p)
    tree = list(parts)
    while len(tree) > 1:
        tree = [
            tree[i].merge(Accumulator.from_bytes(tree[i + 1].to_bytes()))
            if i + 1 < len(tree)
            else tree[i]
            for i in range(0, len(tree), 2)
        ]
    for acc in (rev, tree[0]):
        res = acc.result()
        assert bits(res.mean) == bits(mean)
        assert bits(res.sum) == bits(total)
        assert res.count == (
            np.count_nonzero(arrays[0] != -100)
            if measure in ("cross_entropy", "perplexity")
            else w.size
        )
    # Canonical serialisation: the same state gives the same bytes, however it was built.
    assert rev.to_bytes() == tree[0].to_bytes()


def test_same_bits_for_one_and_two_threads():
    arrays, options, w = make_case("cross_entropy", np.float32, n=20000, c=50)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(streamed("cross_entropy", arrays, options, w, [5000, 12345]).to_bytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]


def test_nan_propagates_and_empty_batches_are_no_ops():
    p = np.array([[0.5, 0.5], [np.nan, 0.5]])
    acc = Accumulator("entropy")
    acc.update(p[:0]).update(p[:1]).update(np.empty((0, 2)))
    assert acc.result().count == 1
    assert acc.result().mean == math.log(2)
    acc.update(p[1:])
    assert math.isnan(acc.result().mean) and math.isnan(acc.result().sum)
    empty = Accumulator("binary_cross_entropy").update([], []).result()
    assert math.isnan(empty.mean) and empty.sum == 0.0 and empty.count == 0
    assert empty.weight == 0.0
    # An empty log_loss batch is a no-op, although log_loss itself rejects empty input.
    ll = Accumulator("log_loss", labels=[0, 1]).update([], np.empty((0, 2)))
    assert ll.result().count == 0


def test_ignored_only_batch_matches_in_memory():
    logits = np.array([[1.0, 2.0], [0.5, 0.0]])
    y = np.array([-100, -100])
    acc = Accumulator("cross_entropy", from_logits=True, ignore_index=-100).update(y, logits)
    res = acc.result()
    want = fastce.cross_entropy(y, logits, from_logits=True, ignore_index=-100, reduction="mean")
    assert math.isnan(res.mean) and math.isnan(want) and res.count == 0 and res.sum == 0.0


def test_pickle_and_bytes_round_trip():
    arrays, options, w = make_case("cross_entropy", np.float64, weighted=True)
    acc = streamed("cross_entropy", arrays, options, w, [100, 200])
    again = pickle.loads(pickle.dumps(acc))
    assert again.result() == acc.result()
    assert again.options.keys() == acc.options.keys()
    np.testing.assert_array_equal(again.options["class_weight"], options["class_weight"])
    blob = acc.to_bytes()
    assert len(blob) < 4096
    assert Accumulator.from_bytes(blob).to_bytes() == blob
    # Continuing after the trip gives what continuing the original gives.
    extra = (arrays[0][:50], arrays[1][:50])
    assert again.update(*extra).result() == acc.update(*extra).result()


def test_from_bytes_rejects_bad_blobs():
    blob = Accumulator("entropy").update([[0.25, 0.75]]).to_bytes()
    with pytest.raises(ValueError, match="truncated or corrupt"):
        Accumulator.from_bytes(blob[:-9] + blob[-4:])
    with pytest.raises(ValueError, match=r"not a fastce accumulator|truncated or corrupt"):
        Accumulator.from_bytes(blob[:10])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    with pytest.raises(ValueError, match="corrupt"):
        Accumulator.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="not a fastce accumulator"):
        Accumulator.from_bytes(b"PK\x03\x04" + blob[4:])
    newer = bytearray(blob)
    newer[6:8] = struct.pack("<H", 99)
    body = bytes(newer[:-4])
    with pytest.raises(ValueError, match="format 99"):
        Accumulator.from_bytes(body + struct.pack("<I", zlib.crc32(body)))
    # A well-formed blob (valid checksum) whose content is wrong is still refused.
    body = blob[:-4].replace(b'"entropy"', b'"entropx"')
    with pytest.raises(ValueError, match="corrupt"):
        Accumulator.from_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(TypeError):
        Accumulator.from_bytes("not bytes")


def _with_header(blob: bytes, **changes: object) -> bytes:
    """``blob`` with its JSON header changed (``None`` drops a field), checksum recomputed."""
    import json

    (length,) = struct.unpack_from("<I", blob, 8)
    header = json.loads(blob[12 : 12 + length])
    for key, value in changes.items():
        if value is None:
            header.pop(key)
        else:
            header[key] = value
    text = json.dumps(header, sort_keys=True).encode()
    body = blob[:8] + struct.pack("<I", len(text)) + text + blob[12 + length : -4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_states_of_other_kernel_generations_are_read_but_not_mixed():
    from fastce._measures import KERNELS_GENERATION

    p = np.array([[0.25, 0.75], [0.5, 0.5]])
    acc = Accumulator("entropy").update(p)
    blob = acc.to_bytes()
    assert f'"kernels": {KERNELS_GENERATION}'.encode() in blob
    # A state from before generations were recorded is generation 1.
    old = Accumulator.from_bytes(_with_header(blob, kernels=None, fastce="0.4.0"))
    assert old.result() == acc.result()
    if KERNELS_GENERATION == 1:
        assert Accumulator("entropy").merge(old).result() == acc.result()
    other = KERNELS_GENERATION + 1
    foreign = Accumulator.from_bytes(_with_header(blob, kernels=other, fastce="9.0.0"))
    assert foreign.result() == acc.result()  # its own sums stay readable
    names_both = rf"9\.0\.0 \(kernels of generation {other}\).*generation {KERNELS_GENERATION}"
    with pytest.raises(ValueError, match=names_both):
        Accumulator("entropy").merge(foreign)
    names_both = rf"generation {KERNELS_GENERATION}\).*9\.0\.0 \(generation {other}\)"
    with pytest.raises(ValueError, match=names_both):
        foreign.merge(Accumulator("entropy"))
    with pytest.raises(ValueError, match=rf"fastce 9\.0\.0 .*generation {other}"):
        foreign.update(p)
    # The generation survives a round trip, and a bad one is corrupt.
    assert f'"kernels": {other}'.encode() in foreign.to_bytes()
    with pytest.raises(ValueError, match=r"corrupt.*kernel generation"):
        Accumulator.from_bytes(_with_header(blob, kernels="1"))


def test_argument_errors():
    with pytest.raises(ValueError, match="measure must be one of"):
        Accumulator("crossentropy")
    with pytest.raises(TypeError, match="'perplexity' has no option 'base'"):
        Accumulator("perplexity", base=2)
    with pytest.raises(TypeError, match="no option 'reduction'"):
        Accumulator("entropy", reduction="mean")
    with pytest.raises(TypeError, match="no option 'labels'"):
        Accumulator("entropy", labels=[0, 1])
    with pytest.raises(ValueError, match="needs labels="):
        Accumulator("log_loss")
    with pytest.raises(ValueError, match="base"):
        Accumulator("entropy", base=1)
    with pytest.raises(TypeError, match="takes two arrays"):
        Accumulator("cross_entropy").update([[0.5, 0.5]])
    acc = Accumulator("entropy").update(np.array([[0.5, 0.5]], np.float32))
    with pytest.raises(ValueError, match="float32 results and the batch gives float64"):
        acc.update(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="must be the same"):
        Accumulator("entropy", base=2).merge(Accumulator("entropy"))
    with pytest.raises(ValueError, match="must be the same"):
        Accumulator("kl_divergence").merge(Accumulator("js_divergence"))
    with pytest.raises(TypeError, match="takes an Accumulator"):
        Accumulator("entropy").merge(3)
    # The in-memory checks apply, with their messages, and leave the state untouched.
    ce = Accumulator("cross_entropy").update([0], [[0.5, 0.5]])
    before = ce.to_bytes()
    with pytest.raises(ValueError, match="target"):
        ce.update([5], [[0.5, 0.5]])
    assert ce.to_bytes() == before


def test_merge_with_itself_doubles():
    acc = Accumulator("entropy").update([[0.25, 0.75], [0.5, 0.5]])
    once = acc.result()
    acc.merge(acc)
    twice = acc.result()
    assert twice.count == 2 * once.count and twice.sum == 2 * once.sum
    assert twice.mean == once.mean


def test_concurrent_updates_from_threads():
    arrays, options, w = make_case("kl_divergence", np.float64, n=4000, weighted=True)
    mean, total = in_memory("kl_divergence", arrays, options, w)
    acc = Accumulator("kl_divergence", **options)
    slices = [slice(lo, lo + 250) for lo in range(0, 4000, 250)]

    def work(k):
        for s in slices[k::4]:
            acc.update(*(a[s] for a in arrays), sample_weight=w[s])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = acc.result()
    assert bits(res.mean) == bits(mean) and bits(res.sum) == bits(total)
    assert res.count == 4000


def test_perplexity_accumulator_round_trips_and_merges():
    arrays, options, _ = make_case("perplexity", np.float32)
    want = fastce.perplexity(*arrays, **options)
    halves = [streamed("perplexity", [a[lo:hi] for a in arrays], options, None, [50])
              for lo, hi in [(0, 250), (250, 600)]]  # fmt: skip
    merged = Accumulator.from_bytes(halves[0].to_bytes()).merge(
        pickle.loads(pickle.dumps(halves[1]))
    )
    res = merged.result()
    assert res.dtype == "float32" and bits(res.perplexity) == bits(want)
    assert math.isnan(Accumulator("perplexity").result().perplexity)  # nothing seen
    with pytest.raises(ValueError, match="cannot merge"):
        merged.merge(Accumulator("cross_entropy", **options))


def test_mean64_reproduces_perplexity_of_float32_data():
    arrays, _, _ = make_case("cross_entropy", np.float32)
    options = {"from_logits": True, "ignore_index": -100}
    res = streamed("cross_entropy", arrays, options, None, [77, 300]).result()
    assert res.dtype == "float32" and res.sum == float(np.float32(res.sum64))
    want = fastce.perplexity(arrays[0], arrays[1], from_logits=True, ignore_index=-100)
    acc = Accumulator("cross_entropy", from_logits=True, ignore_index=-100)
    res = acc.update(*arrays).result()
    assert np.float32(math.exp(res.mean64)) == want


def test_log_loss_batch_with_all_zero_weights_adds_nothing_but_its_count():
    arrays, options, w = make_case("log_loss", np.float64, weighted=True)
    w[100:200] = 0.0
    mean, total = in_memory("log_loss", arrays, options, w)
    res = streamed("log_loss", arrays, options, w, [100, 200]).result()
    assert bits(res.mean) == bits(mean) and bits(res.sum) == bits(total)
    assert res.count == len(w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_batchmean_of_batches_along_the_first_axis(dtype):
    """``Result.batchmean`` counts the first axis of every batch (ignoring nothing), so it is
    ``kl_divergence(..., reduction="batchmean")`` of all the data, bit for bit, for batches of
    (batch, sequence, classes) split along the batch, merged, serialised and pickled."""
    rng = np.random.default_rng(5)
    t = (rng.normal(size=(23, 5, 7)) * 2).astype(dtype)
    s = (t + rng.normal(size=t.shape)).astype(dtype)
    w = rng.exponential(1.0, (23, 5))
    options = {"from_logits": True, "target_from_logits": True}
    want = fastce.kl_divergence(t, s, **options, reduction="batchmean", sample_weight=w)
    assert want.dtype == dtype
    parts = [
        streamed("kl_divergence", [a[lo:hi] for a in (t, s)], options, w[lo:hi], [3, 4])
        for lo, hi in [(0, 11), (11, 23)]
    ]
    merged = Accumulator.from_bytes(parts[0].to_bytes()).merge(
        pickle.loads(pickle.dumps(parts[1]))
    )
    res = merged.result()
    assert res.positions == 23 and res.count == 23 * 5
    assert bits(res.batchmean) == bits(want)
    assert res.as_dict()["batchmean"] == res.batchmean
    # not the mean: that divides by the weights of all 115 positions
    assert bits(res.mean) == bits(fastce.kl_divergence(t, s, **options, reduction="mean",
                                                       sample_weight=w))  # fmt: skip
    assert Accumulator("entropy").update(_probs(rng, 4, 3, dtype)).result().batchmean is None
    empty = Accumulator("kl_divergence").result()
    assert empty.positions == 0 and math.isnan(empty.batchmean)


def test_states_without_positions_have_no_batchmean():
    """A state written before positions were counted reads back with ``positions`` None, and
    so does anything it is merged into: its batchmean is unknown, not a wrong number."""
    acc = Accumulator("kl_divergence").update([[0.5, 0.5]], [[0.25, 0.75]])
    blob = acc.to_bytes()
    head = struct.Struct("<6sHI")
    _, version, n = head.unpack_from(blob)
    header = json.loads(blob[head.size : head.size + n])
    del header["positions"]
    text = json.dumps(header, sort_keys=True).encode()
    body = head.pack(b"FCEACC", version, len(text)) + text + blob[head.size + n : -4]
    old = Accumulator.from_bytes(body + struct.pack("<I", zlib.crc32(body)))
    assert old.result().positions is None and old.result().batchmean is None
    assert old.result().mean == acc.result().mean
    fresh = Accumulator("kl_divergence").update([[0.5, 0.5]], [[0.25, 0.75]])
    assert fresh.merge(old).result().batchmean is None
