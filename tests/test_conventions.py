"""The conventions every public function shares (docs/api.md), checked on each of them."""

import numba
import numpy as np
import pytest

import fastce

from .registry import REGISTRY

KEYS = list(REGISTRY)


def _case(key, dtype=np.float64, batch=(6, 4), n_classes=5, variant=0, seed=7):
    entry = REGISTRY[key]
    rng = np.random.default_rng(seed)
    args, kwargs = entry.make(rng, batch, n_classes, dtype, entry.variants[variant])
    return entry, args, kwargs


def _layouts(a):
    """The same values in other memory layouts: Fortran, reversed strides, a strided slice."""
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
    yield "negative strides", flipped[(slice(None, None, -1),) * a.ndim]
    big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
    big[(slice(1, None, 2),) * a.ndim] = a
    yield "strided", big[(slice(1, None, 2),) * a.ndim]
    if a.ndim >= 2:
        t = np.ascontiguousarray(np.swapaxes(a, 0, 1))
        yield "swapped", np.swapaxes(t, 0, 1)


# Functions without reduction= are run once, as "none" (not skipped for "sum" and "mean").
LAYOUT_CASES = [
    (key, reduction)
    for reduction in ("none", "sum", "mean")
    for key in KEYS
    if reduction == "none" or REGISTRY[key].reduces
]


@pytest.mark.parametrize("key, reduction", LAYOUT_CASES)
def test_layouts_give_identical_bits(key, reduction):
    entry, args, kwargs = _case(key, batch=(3, 4, 2))
    if entry.reduces:
        kwargs["reduction"] = reduction
    expected = np.asarray(entry.fast(*args, **kwargs))
    for name, _ in _layouts(args[-1]):
        views = [dict(_layouts(a))[name] if a.ndim >= 1 else a for a in args]
        for a, b in zip(views, args, strict=True):
            np.testing.assert_array_equal(a, b)
        got = np.asarray(entry.fast(*views, **kwargs))
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize("key", KEYS)
def test_inputs_are_not_modified_and_readonly_inputs_work(key):
    entry, args, kwargs = _case(key)
    frozen = []
    for a in args:
        a = a.copy()
        a.flags.writeable = False
        frozen.append(a)
    before = [a.copy() for a in frozen]
    entry.fast(*frozen, **kwargs)
    for a, b in zip(frozen, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("key", KEYS)
def test_memmap_and_list_inputs(key, tmp_path):
    entry, args, kwargs = _case(key)
    expected = entry.fast(*args, **kwargs)
    maps = []
    for i, a in enumerate(args):
        m = np.lib.format.open_memmap(
            tmp_path / f"a{i}.npy", mode="w+", dtype=a.dtype, shape=a.shape
        )
        m[...] = a
        m.flush()
        maps.append(np.load(tmp_path / f"a{i}.npy", mmap_mode="r"))
    np.testing.assert_array_equal(entry.fast(*maps, **kwargs), expected)
    lists = [a.tolist() for a in args]
    np.testing.assert_array_equal(entry.fast(*lists, **kwargs), expected)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "dtype,expected",
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.float16, np.float32),
    ],
)
def test_output_dtype_follows_input(key, dtype, expected):
    entry, args, kwargs = _case(key, dtype=np.float64)
    args = tuple(np.clip(a, -6e4, 6e4).astype(dtype) if a.dtype.kind == "f" else a for a in args)
    out = entry.fast(*args, **kwargs)
    assert out.dtype == expected
    if entry.reduces:
        scalar = entry.fast(*args, **{**kwargs, "reduction": "mean"})
        assert type(scalar) is np.dtype(expected).type


def test_integer_and_bool_inputs_promote_to_float64():
    assert fastce.entropy(np.array([[1, 0], [0, 1]])).dtype == np.float64
    assert fastce.entropy(np.array([[True, False]])).dtype == np.float64
    assert fastce.logsumexp(np.array([1, 2, 3], dtype=np.int8)).dtype == np.float64
    assert fastce.binary_cross_entropy([1, 0], [1, 0], eps=0).dtype == np.float64


def test_big_endian_input_gives_the_same_bits():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    y = rng.integers(0, 3, 5)
    swapped = x.astype(">f8")
    np.testing.assert_array_equal(
        fastce.cross_entropy(y.astype(">i4"), swapped, from_logits=True),
        fastce.cross_entropy(y, x, from_logits=True),
    )


@pytest.mark.parametrize("key", KEYS)
def test_empty_inputs(key):
    entry, args, kwargs = _case(key, batch=(0,), n_classes=3)
    none = entry.fast(*args, **kwargs)
    assert none.size == 0
    if entry.reduces:
        assert entry.fast(*args, **{**kwargs, "reduction": "sum"}) == 0.0
        assert np.isnan(entry.fast(*args, **{**kwargs, "reduction": "mean"}))


@pytest.mark.parametrize("key", [k for k in KEYS if REGISTRY[k].reduces])
def test_reductions_are_the_exact_sum_of_the_per_sample_values(key):
    import math

    entry, args, kwargs = _case(key, batch=(50, 3), n_classes=6)
    rng = np.random.default_rng(3)
    shape = args[-1].shape if entry.kind == "elementwise" else args[-1].shape[:-1]
    kwargs["sample_weight"] = rng.random(shape)
    values = entry.fast(*args, **kwargs)
    assert entry.fast(*args, **kwargs, reduction="sum") == math.fsum(values.ravel())
    weight_sum = math.fsum(np.broadcast_to(kwargs["sample_weight"], values.shape).ravel())
    if "class_weight" in kwargs and args[0].shape == shape:  # class indices
        labels = args[0]
        keep = labels != kwargs.get("ignore_index", -(2**62))
        cw = np.asarray(kwargs["class_weight"])[np.where(keep, labels, 0)]
        weight_sum = math.fsum((kwargs["sample_weight"] * cw)[keep].ravel())
    elif "ignore_index" in kwargs and args[0].shape == shape:
        keep = args[0] != kwargs["ignore_index"]
        weight_sum = math.fsum(kwargs["sample_weight"][keep].ravel())
    assert entry.fast(*args, **kwargs, reduction="mean") == math.fsum(values.ravel()) / weight_sum


@pytest.mark.parametrize("key", [k for k in KEYS if REGISTRY[k].reduces])
def test_weight_invariances(key):
    entry, args, kwargs = _case(key, batch=(12,), n_classes=4, variant=0)
    per_sample_axis = entry.kind != "elementwise"
    n = 12
    # Unit weights equal no weights.
    for red in ["none", "sum", "mean"]:
        np.testing.assert_array_equal(
            entry.fast(*args, **kwargs, reduction=red, sample_weight=np.ones(n)),
            entry.fast(*args, **kwargs, reduction=red),
        )
    # Integer weights equal repeated rows; a zero weight equals a dropped row.
    counts = np.array([0, 1, 2, 3] * 3)
    repeated = [np.repeat(a, counts, axis=0) for a in args]
    np.testing.assert_allclose(
        entry.fast(*args, **kwargs, reduction="mean", sample_weight=counts),
        entry.fast(*repeated, **kwargs, reduction="mean"),
        rtol=1e-14,
    )
    assert per_sample_axis or args[0].ndim == 2


@pytest.mark.parametrize("key", [k for k in KEYS if REGISTRY[k].reduces])
def test_row_order_and_chunking_do_not_change_the_bits(key):
    entry, args, kwargs = _case(key, batch=(300,), n_classes=7)
    perm = np.random.default_rng(1).permutation(300)
    for red in ["sum", "mean"]:
        expected = entry.fast(*args, **kwargs, reduction=red)
        shuffled = entry.fast(*[a[perm] for a in args], **kwargs, reduction=red)
        assert shuffled == expected
    # Chunked: sums of pieces, combined exactly, equal the one-shot sum.
    import math

    parts = [entry.fast(*[a[i : i + 37] for a in args], **kwargs) for i in range(0, 300, 37)]
    assert math.fsum(np.concatenate([p.ravel() for p in parts])) == entry.fast(
        *args, **kwargs, reduction="sum"
    )


@pytest.mark.parametrize("key", KEYS)
def test_same_bits_under_one_and_two_threads(key):
    entry, args, kwargs = _case(key, batch=(4000,), n_classes=9)
    reductions = ["none", "sum", "mean"] if entry.reduces else ["none"]
    saved = numba.get_num_threads()
    try:
        results = {}
        for threads in [1, min(2, numba.config.NUMBA_NUM_THREADS)]:
            numba.set_num_threads(threads)
            results[threads] = [
                np.asarray(
                    entry.fast(*args, **kwargs, **({"reduction": r} if entry.reduces else {}))
                )
                for r in reductions
            ]
    finally:
        numba.set_num_threads(saved)
    for a, b in zip(*results.values(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("key", KEYS)
def test_nan_in_a_sample_gives_nan_for_that_sample_only(key):
    entry, args, kwargs = _case(key, batch=(5,), n_classes=4)
    args = [a.copy() for a in args]
    pred = args[-1]
    pred[2, 3] = np.nan
    out = entry.fast(*args, **kwargs)
    if entry.kind == "elementwise":
        assert np.isnan(out[2, 3]) and np.isfinite(np.delete(out.ravel(), 2 * 4 + 3)).all()
    elif entry.kind == "transform":
        assert np.isnan(out[2]).all() and not np.isnan(np.delete(out, 2, axis=0)).any()
    else:
        assert np.isnan(out[2])
        assert not np.isnan(np.delete(out, 2)).any()
    if entry.reduces:
        assert np.isnan(entry.fast(*args, **kwargs, reduction="mean"))


def test_batch_axes_that_no_view_can_merge():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(6, 5, 7, 4))
    x = base[:, ::2, 1:, :].transpose(2, 0, 1, 3)  # (6, 6, 3, 4): strides that do not merge
    y = rng.integers(0, 4, x.shape[:-1])
    got = fastce.cross_entropy(y, x, from_logits=True)
    want = fastce.cross_entropy(y, np.ascontiguousarray(x), from_logits=True)
    np.testing.assert_array_equal(got, want)
    assert got.shape == x.shape[:-1]
    assert fastce.cross_entropy(y, x, from_logits=True, reduction="sum") == fastce.cross_entropy(
        y, np.ascontiguousarray(x), from_logits=True, reduction="sum"
    )
    np.testing.assert_array_equal(
        fastce.log_softmax(x, axis=1), fastce.log_softmax(np.ascontiguousarray(x), axis=1)
    )


def test_broadcast_stride_zero_inputs():
    row = np.array([0.2, 0.3, 0.5])
    p = np.broadcast_to(row, (1000, 3))
    np.testing.assert_array_equal(fastce.entropy(p), np.full(1000, fastce.entropy(row)))
    big = np.broadcast_to(np.float32(0.25), (3, 1 << 12, 4))
    assert fastce.entropy(big, reduction="mean") == np.float32(np.log(4))


def test_one_d_input_is_a_single_sample():
    assert np.ndim(fastce.entropy([0.5, 0.5])) == 0
    assert np.ndim(fastce.logsumexp([0.0, 0.0])) == 0
    assert fastce.cross_entropy(1, [0.2, 0.8]) == pytest.approx(-np.log(0.8))


def test_pandas_inputs():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [0.2, 0.5], "b": [0.8, 0.5]})
    np.testing.assert_array_equal(fastce.entropy(df), fastce.entropy(df.to_numpy()))
    y = pd.Series([1, 0])
    np.testing.assert_array_equal(fastce.cross_entropy(y, df), fastce.cross_entropy([1, 0], df))


def test_class_axis_can_be_any_axis():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 4))
    y = rng.integers(0, 5, (3, 4))
    np.testing.assert_array_equal(
        fastce.cross_entropy(y, x, axis=1, from_logits=True),
        fastce.cross_entropy(y, np.moveaxis(x, 1, -1), from_logits=True),
    )
    np.testing.assert_array_equal(
        fastce.softmax(x, axis=1), np.moveaxis(fastce.softmax(np.moveaxis(x, 1, -1)), -1, 1)
    )


@pytest.mark.parametrize("key", KEYS)
def test_out_receives_the_result(key):
    entry, args, kwargs = _case(key, batch=(6, 4))
    expected = entry.fast(*args, **kwargs)
    out = np.full_like(expected, np.nan)
    assert entry.fast(*args, **kwargs, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # A strided (non-contiguous) out works too.
    big = np.zeros((2,) + expected.shape, expected.dtype)
    assert entry.fast(*args, **kwargs, out=big[1]) is not None
    np.testing.assert_array_equal(big[1], expected)
    with pytest.raises(ValueError, match="out must have shape"):
        entry.fast(*args, **kwargs, out=np.empty(expected.shape + (1,), expected.dtype))
    with pytest.raises(TypeError, match="out must have dtype"):
        entry.fast(*args, **kwargs, out=np.empty(expected.shape, np.float32))
    if entry.reduces:
        with pytest.raises(ValueError, match="only for reduction='none'"):
            entry.fast(*args, **kwargs, reduction="mean", out=out)


def test_out_may_alias_the_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    expected = fastce.log_softmax(x)
    assert fastce.log_softmax(x, out=x) is x
    np.testing.assert_array_equal(x, expected)
    x = rng.normal(size=(4, 5))
    expected = fastce.softmax(x, axis=0)
    fastce.softmax(x, axis=0, out=x)
    np.testing.assert_array_equal(x, expected)
