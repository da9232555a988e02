"""Properties of the kernels themselves: column blocks, row splitting across threads, the
vectorised primitives, and warm-up."""

import io

import numba
import numpy as np
import pytest

import fastce
from fastce._kernels._common import COL_BLOCK
from fastce._kernels._math import copy_max, copy_max_index

from .probes import probe_bits

LONG = 2 * COL_BLOCK + 123  # three column blocks, the last one partial


def _logits(rows, cols, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, cols)) * 3).astype(dtype)
    x[:, rng.integers(0, cols, 5)] = -np.inf
    return x


CASES = {
    "cross_entropy": lambda x, y, p: fastce.cross_entropy(y, x, from_logits=True),
    "cross_entropy smoothed": lambda x, y, p: fastce.cross_entropy(
        y, x, from_logits=True, label_smoothing=0.1, class_weight=np.linspace(0.5, 2, x.shape[1])
    ),
    "cross_entropy probabilities": lambda x, y, p: fastce.cross_entropy(y, p),
    "soft cross_entropy": lambda x, y, p: fastce.cross_entropy(p, x, from_logits=True),
    "entropy logits": lambda x, y, p: fastce.entropy(x, from_logits=True),
    "entropy": lambda x, y, p: fastce.entropy(p),
    "kl logits": lambda x, y, p: fastce.kl_divergence(p, x, from_logits=True),
    "kl": lambda x, y, p: fastce.kl_divergence(p, np.roll(p, 1, axis=-1)),
    "js": lambda x, y, p: fastce.js_divergence(p, np.roll(p, 7, axis=-1)),
    "logsumexp": lambda x, y, p: fastce.logsumexp(x),
    "log_softmax": lambda x, y, p: fastce.log_softmax(x),
    "softmax": lambda x, y, p: fastce.softmax(x),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_split_across_threads_give_the_same_bits(name, dtype):
    """One long row is split into column blocks spread over the threads; the same row among
    many others is computed by one thread. Both fold the blocks in column order."""
    fn = CASES[name]
    x = _logits(64, LONG, dtype)
    p = fastce.softmax(x.astype(np.float64)).astype(dtype)
    y = np.random.default_rng(1).integers(0, LONG, 64)
    many = np.asarray(fn(x, y, p))
    for i in [0, 17, 63]:
        one = np.asarray(fn(x[i : i + 1], y[i : i + 1], p[i : i + 1]))
        np.testing.assert_array_equal(one[0], many[i], err_msg=f"row {i}")


@pytest.mark.parametrize("name", list(CASES))
def test_long_rows_same_bits_for_one_and_two_threads(name):
    fn = CASES[name]
    x = _logits(3, LONG, np.float64, seed=2)
    p = fastce.softmax(x)
    y = np.array([0, LONG - 1, 77])
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = np.asarray(fn(x, y, p))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = np.asarray(fn(x, y, p))
    finally:
        numba.set_num_threads(saved)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_match_the_reference(dtype):
    from fastce import reference

    x = _logits(2, LONG, dtype, seed=3)
    y = np.array([5, LONG - 2])
    np.testing.assert_allclose(
        fastce.cross_entropy(y, x, from_logits=True),
        reference.cross_entropy(y, x, from_logits=True),
        rtol=2e-7 if dtype == np.float32 else 1e-12,
    )
    np.testing.assert_allclose(
        fastce.logsumexp(x), reference.logsumexp(x), rtol=2e-7 if dtype == np.float32 else 1e-14
    )
    p = fastce.softmax(x.astype(np.float64))
    np.testing.assert_allclose(
        fastce.entropy(x, from_logits=True), reference.entropy(p), rtol=1e-6
    )


def test_blocks_of_minus_inf_and_nan_in_long_rows():
    x = np.zeros((3, LONG))
    x[0, :COL_BLOCK] = -np.inf  # a whole block of -inf contributes nothing
    x[1, :] = -np.inf  # every logit -inf: undefined softmax
    x[2, LONG - 1] = np.nan  # a NaN in the last block
    lse = fastce.logsumexp(x)
    assert lse[0] == pytest.approx(np.log(LONG - COL_BLOCK), rel=1e-15)
    assert lse[1] == -np.inf and np.isnan(lse[2])
    ce = fastce.cross_entropy(np.array([LONG - 1, 0, 0]), x, from_logits=True)
    assert ce[0] == pytest.approx(np.log(LONG - COL_BLOCK), rel=1e-15)
    assert np.isnan(ce[1]) and np.isnan(ce[2])
    # target mass on a block of -inf logits: an infinite loss
    p = np.zeros((1, LONG))
    p[0, 0] = 1.0
    assert fastce.cross_entropy(p, x[:1], from_logits=True)[0] == np.inf


def test_float32_small_loss_keeps_every_bit_of_its_sum():
    # s' below the subtraction threshold: the maximum's term is removed, not subtracted.
    x = np.zeros((1, 200), np.float32)
    x[0, 1:] = -40.0
    loss = fastce.cross_entropy(np.array([0]), x, from_logits=True)[0]
    expected = np.log1p(199 * np.exp(np.float64(np.float32(-40.0))))
    assert loss == np.float32(expected)


def test_warmup_runs_every_listed_call(monkeypatch):
    from fastce import _warmup

    calls = _warmup._calls(np.float64)
    names = [c[0] for c in calls]
    assert any("4100" in n for n in names), "the column-split kernels must be warmed too"
    monkeypatch.setattr(_warmup, "_calls", lambda dtype: calls[:2])
    out = io.StringIO()
    assert _warmup.warmup(out) >= 0
    assert "done in" in out.getvalue()


SMALL_CASES = {
    **CASES,
    "bce": lambda x, y, p: fastce.binary_cross_entropy((p > 0.01).astype(p.dtype), p),
    "bce logits": lambda x, y, p: fastce.binary_cross_entropy(p, x, from_logits=True),
}


@pytest.mark.parametrize("name", list(SMALL_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_inputs_run_in_the_calling_thread_with_the_same_bits(name, dtype, monkeypatch):
    """A small call runs its kernel in the calling thread (one chunk, no pool); the same rows
    inside a large call, cut into chunks that the pool's threads take, give the same bits."""
    from fastce import _launch

    fn = SMALL_CASES[name]
    x = _logits(3000, 100, dtype, seed=3)
    p = fastce.softmax(x.astype(np.float64)).astype(dtype)
    y = np.random.default_rng(4).integers(0, 100, 3000)
    assert _launch.n_chunks(3000, 100) > 1 and _launch.n_chunks(7, 100) == 1
    handed = []
    real = _launch.run_tasks

    def spy(tasks, n_slots):
        handed.append(n_slots)
        real(tasks, n_slots)

    monkeypatch.setattr(_launch, "run_tasks", spy)
    big = np.asarray(fn(x, y, p))
    assert handed and max(handed) > 1, "a large call's chunks are spread over threads"
    handed.clear()
    small = np.asarray(fn(x[100:107], y[100:107], p[100:107]))
    assert max(handed, default=1) == 1, "a small call runs in the calling thread"
    np.testing.assert_array_equal(small, big[100:107])


def test_kernels_are_serial_and_release_the_gil():
    """Parallelism is the launcher's thread pool: every kernel is a serial function compiled
    with ``nogil`` (no parfor, no threading layer), so pool threads run them at once."""
    from numba.core.registry import CPUDispatcher

    from fastce._kernels import binary, entropy, logsumexp, nll, pair

    entries = [
        getattr(m, name)
        for m in (binary, entropy, logsumexp, nll, pair)
        for name in dir(m)
        if name.endswith(("_kernel", "_tiles", "_fold", "_rows"))
        and isinstance(getattr(m, name), CPUDispatcher)
    ]
    # and the kernels that _driver writes for each entry of the families' tables
    entries += [k for m in (entropy, nll, pair) for ks in m.KERNELS.values() for k in ks if k]
    entries += [k for ks in logsumexp.TRANSFORMS.values() for k in ks]
    entries += list(nll.HOT.values())
    assert len(entries) >= 30
    for kernel in entries:
        assert kernel.targetoptions.get("nogil") is True, kernel.py_func.__name__
        assert not kernel.targetoptions.get("parallel"), kernel.py_func.__name__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("classes", [10, 2])
def test_small_call_fast_path_gives_the_general_paths_bits(dtype, from_logits, reduction, classes):
    """A small cross_entropy call with default options skips the general argument handling;
    ``label_smoothing=0`` (an int) takes the general path: both give the same bits."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(100, classes)) * 3).astype(dtype)
    x[3, 1] = np.nan
    p = fastce.softmax(x)
    y = rng.integers(0, classes, 100)
    pred = x if from_logits else p
    fast = fastce.cross_entropy(y, pred, from_logits=from_logits, reduction=reduction)
    general = fastce.cross_entropy(
        y, pred, from_logits=from_logits, reduction=reduction, label_smoothing=0
    )
    assert np.asarray(fast).dtype == np.dtype(dtype) == np.asarray(general).dtype
    np.testing.assert_array_equal(fast, general)
    bad = y.copy()
    bad[7] = classes
    with pytest.raises(ValueError, match=f"label {classes} at position 7"):
        fastce.cross_entropy(bad, pred, from_logits=from_logits, reduction=reduction)
    if not from_logits:
        q = p.copy()
        q[2, 1] = 1.5
        with pytest.raises(ValueError, match="position"):
            fastce.cross_entropy(y, q, reduction=reduction)


@pytest.mark.slow  # compiles the probe's kernels twice in fresh caches (~1 min on 2 cores)
def test_vector_width_preference_does_not_change_bits(tmp_path):
    """The kernels prefer 512-bit vectors (an LLVM function attribute); with 256-bit vectors
    the same source gives the same bits, because nothing is reassociated or contracted."""
    wide = probe_bits(tmp_path / "512", {"FASTCE_PREFER_VECTOR_WIDTH": "512"})
    narrow = probe_bits(tmp_path / "256", {"FASTCE_PREFER_VECTOR_WIDTH": "256"})
    assert wide == narrow


def test_kernels_use_512_bit_vectors_where_the_cpu_has_them():
    import re

    import llvmlite.binding as llvm

    from fastce._kernels import PREFER_VECTOR_WIDTH

    if "+avx512f" not in llvm.get_host_cpu_features().flatten() or PREFER_VECTOR_WIDTH != "512":
        pytest.skip("no AVX-512 here (or another width was asked for)")
    from fastce._kernels import logsumexp

    # An uncached copy of a kernel helper (so its assembly can be inspected); it keeps its
    # module, hence fastce's mangled name and the attribute.
    f = numba.njit(error_model="numpy")(logsumexp.lse_block64.py_func)
    f(np.zeros(100), np.empty(112))
    asm = f.inspect_asm(f.signatures[0])
    assert len(re.findall(r"zmm", asm)) > 50, "the exp loop should use 512-bit registers"


@numba.njit
def _copy_max_call(seg, buf):
    return copy_max(seg, buf)


def _copy_max_expected(seg):
    """``row_max`` by its definition: the largest value, -inf if none; a NaN with its sign bit
    clear counts as above +inf (the result is then NaN), one with the sign bit set as below
    -inf."""
    nan = np.isnan(seg)
    if np.any(nan & ~np.signbit(seg)):
        return np.nan
    rest = seg[~nan]
    return float(rest.max()) if rest.size else -np.inf


def _misaligned(rng, base, n):
    """(seg, buf, store, boff): n values of ``base`` from a random offset, and a float64
    buffer of the padded length + 16 at a random offset into ``store`` (filled with 7.0)."""
    off = int(rng.integers(0, 4))
    n16 = (n + 15) & ~15
    store = np.full(n16 + 24, 7.0)
    boff = int(rng.integers(0, 3))
    return base[off : off + n], store[boff : boff + n16 + 16], store, boff


def _check_padded_copy(seg, buf, store, boff):
    """buf holds seg (as float64), then -inf up to the padded length; nothing else written."""
    n = seg.shape[0]
    n16 = (n + 15) & ~15
    np.testing.assert_array_equal(buf[:n], seg.astype(np.float64))
    assert np.all(buf[n:n16] == -np.inf), n
    assert np.all(buf[n16:] == 7.0) and np.all(store[:boff] == 7.0), n


def test_copy_max_float32_pads_and_finds_the_row_max():
    """The fused one-pass copy + max of float32 rows (16 lanes and a masked tail): every
    length 0 .. 70 and a few long ones, every alignment of the row and the buffer, NaN of
    both signs, +-inf and +-0; entries past the padding untouched."""
    rng = np.random.default_rng(5)
    specials = np.array([np.inf, -np.inf, 0.0, -0.0], np.float32)
    neg_nan = np.frombuffer(np.uint32(0xFFC00001).tobytes(), np.float32)[0]
    lengths = [*range(71), 100, 1000, 2047, 2048]
    for n in lengths:
        for trial in range(3):
            base = (rng.normal(size=n + 8) * 10).astype(np.float32)
            if trial == 1 and n:
                base[rng.integers(0, n + 8, 3)] = rng.choice(specials, 3)
            if trial == 2 and n:
                base[rng.integers(0, n + 8, 2)] = [neg_nan, np.nan][rng.integers(0, 2)]
            seg, buf, store, boff = _misaligned(rng, base, n)
            m = _copy_max_call(seg, buf)
            want = _copy_max_expected(seg)
            assert (np.isnan(m) and np.isnan(want)) or m == want, (n, trial, m, want)
            _check_padded_copy(seg, buf, store, boff)


@numba.njit
def _copy_max_index_call(seg, buf):
    return copy_max_index(seg, buf)


def test_copy_max_index_float64_pads_and_finds_the_row_max_and_its_first_position():
    """The one-pass copy + max + first position of float64 rows (two 8-lane chains, one
    8-entry step, a masked tail): every length 0 .. 70 and a few long ones, every alignment,
    ties, NaN of both signs, +-inf, rows whose maximum is a zero of either sign (the first zero
    of either sign counts, as ``first_index``) or -inf; entries past the padding untouched."""
    rng = np.random.default_rng(6)
    specials = np.array([np.inf, -np.inf, 0.0, -0.0])
    neg_nan = np.frombuffer(np.uint64(0xFFF8000000000001).tobytes(), np.float64)[0]
    lengths = [*range(71), 100, 1000, 2047, 2048]
    for n in lengths:
        for trial in range(6):
            base = rng.normal(size=n + 8) * 10
            if trial == 1 and n:
                base[rng.integers(0, n + 8, 3)] = rng.choice(specials, 3)
            if trial == 2 and n:
                base[rng.integers(0, n + 8, 2)] = [neg_nan, np.nan][rng.integers(0, 2)]
            if trial == 3:
                base = np.round(base / 10)  # many ties of the maximum
            if trial == 4:
                base = -np.abs(base)
                base[rng.integers(0, n + 8, 4)] = rng.choice([0.0, -0.0], 4)
            if trial == 5:
                base[:] = -np.inf
            seg, buf, store, boff = _misaligned(rng, base, n)
            m, j = _copy_max_index_call(seg, buf)
            want = _copy_max_expected(seg)
            hits = np.flatnonzero(seg == want)
            want_j = int(hits[0]) if hits.size else n
            assert (np.isnan(m) and np.isnan(want)) or m == want, (n, trial, m, want)
            if want == 0.0:  # +0.0 is above -0.0 in row_max's order
                assert np.signbit(m) == (not np.any((seg == 0.0) & ~np.signbit(seg))), (n, trial)
            assert j == want_j, (n, trial, j, want_j)
            _check_padded_copy(seg, buf, store, boff)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_hard_and_soft_label_segments_give_the_same_bits(dtype):
    """Segments whose labels are all 0 or 1 take one log per element instead of two; an
    element's value must not depend on whether a soft label shares its segment (else it would
    depend on how the data is split)."""
    rng = np.random.default_rng(3)
    n = 3 * 2048 + 77
    p = rng.random(n).astype(dtype)
    p[:50] = np.float32(2.0**-30)  # small p: the log(1 - p) correction matters
    p[50:100] = 1 - np.float32(2.0**-20)
    p[100:110] = [0.0, 1.0, 0.5, np.nextafter(0.5, 0), np.nextafter(0.5, 1), 1e-300, 0, 1, 0, 1]
    y = (rng.random(n) < 0.5).astype(dtype)
    hard = fastce.binary_cross_entropy(y, p, reduction="none", pos_weight=1.5, eps=1e-12)
    mixed_y = y.copy()
    soft_at = np.arange(7, n, 2048)
    mixed_y[soft_at] = 0.25
    mixed = fastce.binary_cross_entropy(mixed_y, p, reduction="none", pos_weight=1.5, eps=1e-12)
    others = np.setdiff1d(np.arange(n), soft_at)
    assert hard[others].tobytes() == mixed[others].tobytes()
    # and against an independent float64 reference (the soft path's arithmetic is not shared)
    pc = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    ref = -(1.5 * y * np.log(pc) + (1 - y) * np.log1p(-pc))
    np.testing.assert_allclose(
        hard, ref.astype(dtype), rtol=4e-16 if dtype == np.float64 else 2e-7
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_axis_not_last_is_read_in_tiles_with_the_same_bits(dtype, monkeypatch):
    """A class axis that is not the last one ((N, C, d) with axis=1, a Fortran-ordered array):
    the launcher copies tiles of rows into a contiguous scratch and runs the same kernel on
    them, so every value is the bits of the C-contiguous layout. Cross-entropy from float32
    logits reads such rows itself (``nll.HOT["columns"]``): no copies, the same bits."""
    from fastce import _launch

    rng = np.random.default_rng(11)
    x = (rng.normal(size=(3, 300, 700)) * 3).astype(dtype)
    x[0, 5, 7] = -np.inf
    x[1, :, 3] = -np.inf
    x[2, 9, 9] = np.nan
    y = rng.integers(0, 300, (3, 700))
    p = np.ascontiguousarray(fastce.softmax(x.astype(np.float64), axis=1).astype(dtype))
    q = np.ascontiguousarray(np.roll(p, 1, axis=1))
    arrays = {"x": x, "p": p, "q": q}
    last = {k: np.ascontiguousarray(np.moveaxis(v, 1, -1)) for k, v in arrays.items()}
    cases = {
        "cross_entropy": lambda a, ax, r: fastce.cross_entropy(
            y, a["x"], axis=ax, from_logits=True, reduction=r
        ),
        "cross_entropy weighted": lambda a, ax, r: fastce.cross_entropy(
            y, a["x"], axis=ax, from_logits=True, reduction=r, label_smoothing=0.1
        ),
        "entropy": lambda a, ax, r: fastce.entropy(a["p"], axis=ax, reduction=r),
        "kl logits": lambda a, ax, r: fastce.kl_divergence(
            a["p"], a["x"], axis=ax, from_logits=True, reduction=r
        ),
        "js": lambda a, ax, r: fastce.js_divergence(a["p"], a["q"], axis=ax, reduction=r),
    }
    copies = []
    real = _launch.transpose_rows

    def spy(src, dst):
        copies.append(src.shape)
        real(src, dst)

    monkeypatch.setattr(_launch, "transpose_rows", spy)
    class_major = dtype == np.float32  # the hot path's own kernel reads the rows as they are
    for name, fn in cases.items():
        for reduction in ("none", "mean"):
            copies.clear()
            got = np.asarray(fn(arrays, 1, reduction))
            if name == "cross_entropy" and class_major:
                assert not copies, f"{name}: copied in tiles"
            else:
                assert copies, f"{name}: the strided rows were not read in tiles"
            want = np.asarray(fn(last, -1, reduction))
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {reduction}")
    # A Fortran-ordered 2-D array: its rows are adjacent too.
    f = np.asfortranarray(last["x"][0])
    copies.clear()
    got = fastce.cross_entropy(y[0], f, from_logits=True)
    assert bool(copies) != class_major
    np.testing.assert_array_equal(got, fastce.cross_entropy(y[0], last["x"][0], from_logits=True))


@pytest.mark.parametrize("classes", [1, 2, 17, 300, COL_BLOCK])
def test_class_major_float32_rows_give_the_row_kernels_bits(classes):
    """Cross-entropy from float32 logits whose class axis is not the last one is computed in
    place, across rows (``lse_columns``: the maximum and the eight lanes of the row's sum, each
    a vector loop over adjacent rows); every row gets the bits of the row kernel on the
    C-contiguous layout, including rows it hands back to the row kernel (a dominant class,
    whose term must leave the sum; NaN; infinities; a row of -inf), with every option of the
    hot path, and the sums match."""
    rng = np.random.default_rng(classes)
    d = 700  # one full tile of rows and a partial one, not a multiple of 8
    x = (rng.normal(size=(2, classes, d)) * 3).astype(np.float32)
    y = rng.integers(0, classes, (2, d))
    x[0, 0, :40] = 60.0  # dominant class: s' below 2**-10
    x[0, :, 50] = -np.inf
    x[0, -1, 60] = np.inf
    x[1, :, 61] = np.inf
    x[1, 0, 70] = np.nan
    x[1, :, 80] = 1.5  # a tie of every class
    x[1, :, 90] = x[1, 0, 90]
    x[1, -1, 90] = np.nextafter(x[1, 0, 90], np.float32(np.inf))
    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    ignored = y.copy()
    ignored[:, ::5] = -100
    option_sets = [
        ({}, y),
        ({"base": 2}, y),
        ({"class_weight": rng.random(classes), "sample_weight": rng.random((2, d))}, y),
        ({"ignore_index": -100}, ignored),
        ({}, y.astype(np.float64)),
    ]
    for options, labels in option_sets:
        for reduction in ("none", "sum", "mean"):
            got = fastce.cross_entropy(
                labels, x, axis=1, from_logits=True, reduction=reduction, **options
            )
            want = fastce.cross_entropy(
                labels, last, from_logits=True, reduction=reduction, **options
            )
            np.testing.assert_array_equal(got, want, err_msg=f"{options} {reduction}")
    bad = y.copy()
    bad[1, 3] = classes
    with pytest.raises(ValueError, match=f"label {classes} at position"):
        fastce.cross_entropy(bad, x, axis=1, from_logits=True)


_EDGES = [0.0, -0.0, 1.0, -1.0, 1e-30, 30.0, -30.0, 88.7, -103.0, 1e30, -1e30, 3.4e38, -3.4e38,
          1e-45, np.inf, -np.inf, np.nan]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_class_rows_give_the_general_row_kernels_bits(dtype, monkeypatch):
    """Two-class rows from logits take a kernel of their own (``nll.HOT["pairs"]``: rows side
    by side in vector lanes, sums a block at a time); it gives the bits of the driver's general
    row kernel (``nll_logits``) for every row, edge values, ties and near ties included, with
    every option of the hot path (weights, base, ignored and float labels), and the same sums."""
    from fastce._kernels import nll

    rng = np.random.default_rng(11)
    grid = np.array(np.meshgrid(_EDGES, _EDGES)).reshape(2, -1).T
    near = rng.normal(size=3000)
    parts = [
        np.repeat(grid, 2, axis=0),
        np.stack([near, near + rng.normal(size=3000) * 1e-6], 1),
        *[rng.normal(size=(20_000, 2)) * s for s in (0.01, 1.0, 20.0, 1e4)],
    ]
    x = np.concatenate(parts).astype(dtype)
    n = x.shape[0]
    y = rng.integers(0, 2, n)
    y[: len(grid) * 2 : 2] = 0
    y[1 : len(grid) * 2 : 2] = 1
    ignored = y.copy()
    ignored[::7] = -100
    option_sets = [
        ({}, y),
        ({"base": 2}, y),
        ({"class_weight": [0.3, 2.0], "sample_weight": rng.random(n)}, y),
        ({"ignore_index": -100}, ignored),
        ({}, y.astype(np.float64)),
    ]

    def results():
        return [
            fastce.cross_entropy(labels, x, from_logits=True, reduction=r, **options)
            for options, labels in option_sets
            for r in ("none", "sum", "mean")
        ]

    got = results()
    general = nll.KERNELS["nll_logits"].rows
    monkeypatch.setattr(nll, "HOT", {key: general for key in nll.HOT})
    want = results()
    for g, w in zip(got, want, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(g, w)
