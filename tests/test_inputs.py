"""Arrays from other libraries: torch tensors, DLPack objects (JAX), ml_dtypes bfloat16.

Each is read as the NumPy array of the same values (CPU tensors and DLPack objects over their
own memory, no copy), so it gives the bits of the NumPy call; half precision gives the
float32 result of the same values in float32.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastce


def bits(a):
    return np.asarray(a).tobytes()


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _data(seed=0, n=64, c=9):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, c)) * 3).astype(np.float32)
    return x, rng.integers(0, c, n), fastce.softmax(rng.normal(size=(n, c)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_torch_tensors_give_the_numpy_bits(torch, dtype):
    x, y, p = _data()
    tx = torch.from_numpy(x).to(getattr(torch, dtype))
    # the same values as NumPy holds them (half precision: their float32 values)
    nx = tx.double().numpy() if dtype == "float64" else tx.float().numpy()
    ty, tp = torch.from_numpy(y), torch.from_numpy(p)
    cases = [
        (fastce.cross_entropy, (ty, tx.requires_grad_()), (y, nx), {"from_logits": True}),
        (fastce.cross_entropy, (tp.T, tx.T), (p.T, nx.T), {"from_logits": True, "axis": 0}),
        (fastce.entropy, (tx,), (nx,), {"from_logits": True, "reduction": "mean"}),
        (fastce.kl_divergence, (tp, tx), (p, nx), {"from_logits": True, "reduction": "sum"}),
        (fastce.softmax, (tx,), (nx,), {}),
        (fastce.binary_cross_entropy, (tx > 0, tx), (nx > 0, nx), {"from_logits": True}),
    ]
    for f, targs, nargs, kw in cases:
        got = f(*targs, **kw)
        assert isinstance(got, (np.ndarray, np.generic)), f.__name__
        assert bits(got) == bits(f(*nargs, **kw)), (f.__name__, dtype)
    half = dtype in ("float16", "bfloat16")
    assert fastce.cross_entropy(ty, tx, from_logits=True).dtype == (
        np.float32 if half else np.dtype(dtype)
    )


def test_a_float32_tensor_is_read_in_place(torch):
    """No array of the input's size is made for a CPU float32 tensor (tracemalloc sees every
    NumPy allocation; the tensor's own memory is torch's)."""
    rng = np.random.default_rng(1)
    tx = torch.from_numpy((rng.normal(size=(200_000, 20)) * 2).astype(np.float32))
    ty = torch.from_numpy(rng.integers(0, 20, 200_000))
    fastce.cross_entropy(ty, tx, from_logits=True, reduction="mean")  # compiled, warm
    tracemalloc.start()
    fastce.cross_entropy(ty, tx.requires_grad_(), from_logits=True, reduction="mean")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < tx.numel() * 4 / 20, peak  # 16 MB of logits; well under 1 MB extra


def test_tensors_off_the_cpu_are_refused(torch):
    meta = torch.empty((4, 3), device="meta")
    with pytest.raises(TypeError, match=r"pred is a torch tensor on the 'meta' device; .*"
                       r"move it to the CPU first \(pred.cpu\(\)\)"):  # fmt: skip
        fastce.cross_entropy(np.zeros(4, np.int64), meta, from_logits=True)


def test_jax_arrays_and_ml_dtypes_bfloat16():
    jnp = pytest.importorskip("jax.numpy")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x, y, _ = _data(2)
    want = fastce.cross_entropy(y, x, from_logits=True)
    assert bits(fastce.cross_entropy(jnp.asarray(y), jnp.asarray(x), from_logits=True)) == bits(
        want
    )
    xb = x.astype(ml_dtypes.bfloat16)
    want = fastce.cross_entropy(y, xb.astype(np.float32), from_logits=True)
    for arr in (xb, jnp.asarray(xb)):
        got = fastce.cross_entropy(y, arr, from_logits=True)
        assert got.dtype == np.float32 and bits(got) == bits(want)


def test_import_fastce_imports_neither_torch_nor_ml_dtypes():
    code = "import sys, fastce; print('torch' in sys.modules, 'ml_dtypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _half(dtype):
    if dtype == "bfloat16":
        return pytest.importorskip("ml_dtypes").bfloat16
    return np.float16


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_gives_the_float32_bits_of_its_values(dtype):
    """float16 and bfloat16 arrays are widened a tile of rows at a time: every row function,
    layout, reduction and temperature gives the bits of the same values in float32."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(70, 2100)) * 4).astype(_half(dtype))  # rows longer than a block
    x[5, 7] = -np.inf
    p = fastce.softmax(rng.normal(size=x.shape)).astype(_half(dtype))
    y = rng.integers(0, x.shape[1], x.shape[0])
    xf = x.astype(np.float32)
    for xv, pv, axis in [(x, p, -1), (x.T, p.T, 0), (x[::2, ::3], p[::2, ::3], -1)]:
        yv = y[: xv.shape[0]] % xv.shape[-1] if axis == -1 else y[: xv.shape[1]] % xv.shape[0]
        xfv, pfv = xv.astype(np.float32), pv.astype(np.float32)
        calls = [
            (fastce.cross_entropy, (yv, xv), (yv, xfv), {"from_logits": True}),
            (fastce.cross_entropy, (pv, xv), (pfv, xfv), {"from_logits": True}),
            (fastce.entropy, (pv,), (pfv,), {}),
            (fastce.kl_divergence, (xv, xv[::-1]), (xfv, xfv[::-1]),
             {"from_logits": True, "target_from_logits": True, "temperature": 2.0}),
            (fastce.js_divergence, (pv, pv[::-1]), (pfv, pfv[::-1]), {}),
            # half probabilities beside tempered logits: only the logits are divided
            (fastce.kl_divergence, (pv, xv), (pfv, xfv),
             {"from_logits": True, "temperature": 3.0}),
            (fastce.cross_entropy, (pv, xv), (pfv, xfv),
             {"from_logits": True, "temperature": 0.5}),
        ]  # fmt: skip
        for f, args, fargs, kw in calls:
            for reduction in ("none", "mean"):
                got = f(*args, axis=axis, reduction=reduction, **kw)
                want = f(*fargs, axis=axis, reduction=reduction, **kw)
                assert got.dtype == np.float32 and bits(got) == bits(want), (f.__name__, axis)
        for f in (fastce.logsumexp, fastce.log_softmax, fastce.softmax):
            got = f(xv, axis=axis)
            assert got.dtype == np.float32 and bits(got) == bits(f(xfv, axis=axis))
    assert fastce.perplexity(y, x, from_logits=True) == fastce.perplexity(y, xf, from_logits=True)
    with pytest.raises(ValueError, match="pred must hold probabilities"):
        fastce.cross_entropy(y, x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_long_rows_of_half_logits_give_the_float32_bits(dtype):
    """Class-index cross-entropy from rows longer than a block widens each block as it reads
    it (no tile of float32 rows): the bits of the float32 values, also for rows of -inf, NaN,
    +inf, ties, subnormals, few rows (split over the threads), masks and ignored labels."""
    rng = np.random.default_rng(8)
    for n, c, scale in [(40, 2049, 1.0), (12, 5000, 1e4), (3, 5000, 30.0)]:
        x = (rng.normal(size=(n, c)) * scale).astype(_half(dtype))
        x[0, 5] = -np.inf
        if n > 3:
            x[1, :] = -np.inf
            x[2, 7] = np.nan
            x[3, 100] = np.inf
            x[4, :] = x[4, 0]
        x[-1, :50] = np.float32(6e-8) if dtype == "float16" else np.float32(1e-40)
        y = rng.integers(0, c, n)
        y[0] = 5
        y_ign = np.where(rng.random(n) < 0.2, -100, y)
        m = rng.random(n) < 0.8
        for kw, labels in [({}, y), ({"ignore_index": -100}, y_ign), ({"where": m}, y)]:
            for reduction in ("none", "sum", "mean"):
                got = fastce.cross_entropy(labels, x, from_logits=True, reduction=reduction, **kw)
                want = fastce.cross_entropy(
                    labels, x.astype(np.float32), from_logits=True, reduction=reduction, **kw
                )
                assert got.dtype == np.float32 and bits(got) == bits(want), (n, c, kw)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_binary_cross_entropy_of_half_precision_gives_the_float32_bits(dtype):
    """Element-wise: tiles of whole rows, ranges of one long row, strided views, a float64
    target (the logits then read as float64), a temperature, a mask."""
    rng = np.random.default_rng(6)
    for shape in [(700, 37), (3, 70_000), (90_000,), (20, 30, 40)]:
        x = (rng.normal(size=shape) * 3).astype(_half(dtype))
        y = (rng.random(shape) < 0.4).astype(_half(dtype))
        p = rng.random(shape).astype(_half(dtype))
        xf, yf, pf = (a.astype(np.float32) for a in (x, y, p))
        m = rng.random(shape) < 0.8
        cases = [
            ((y, x), (yf, xf), {"from_logits": True}),
            ((y, p), (yf, pf), {}),
            ((y, x), (yf, xf), {"from_logits": True, "temperature": 2.0}),
            ((y, x), (yf, xf), {"from_logits": True, "where": m}),
            ((yf.astype(np.float64), x), (yf.astype(np.float64), xf), {"from_logits": True}),
            ((y[..., ::2], x[..., ::2]), (yf[..., ::2], xf[..., ::2]), {"from_logits": True}),
        ]
        for args, fargs, kw in cases:
            for reduction in ("none", "mean"):
                got = fastce.binary_cross_entropy(*args, reduction=reduction, **kw)
                want = fastce.binary_cross_entropy(*fargs, reduction=reduction, **kw)
                assert got.dtype == want.dtype and bits(got) == bits(want), (shape, kw)


def test_binary_cross_entropy_reads_half_and_mixed_inputs_in_place():
    """No copy of a bfloat16 input, nor of float32 logits beside a float64 target."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1000, 3000)).astype(np.float32)  # 12 MB
    y = (rng.random(x.shape) < 0.5).astype(np.float64)
    xb, yb = x.astype(ml_dtypes.bfloat16), y.astype(ml_dtypes.bfloat16)
    want = fastce.binary_cross_entropy(y, x.astype(np.float64), from_logits=True, reduction="sum")
    for target, pred, nbytes in [(yb, xb, xb.nbytes), (y, x, x.nbytes)]:
        fastce.binary_cross_entropy(target, pred, from_logits=True, reduction="sum")  # warm
        tracemalloc.start()
        got = fastce.binary_cross_entropy(target, pred, from_logits=True, reduction="sum")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < nbytes / 5, (peak, nbytes)
    assert bits(got) == bits(want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_read_in_place(dtype):
    """No float32 copy of a half input: the peak of NumPy allocations stays far below it."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300_000, 50)).astype(_half(dtype))  # 30 MB
    y = rng.integers(0, 50, 300_000)

    def calls():
        fastce.cross_entropy(y, x, from_logits=True, reduction="mean")
        fastce.kl_divergence(x, x, from_logits=True, target_from_logits=True, reduction="sum")

    calls()  # compiled (Numba's compiler allocates Python objects), warm
    tracemalloc.start()
    calls()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes / 10, (peak, x.nbytes)


def test_a_bfloat16_tensor_is_read_in_place(torch):
    pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(5)
    tx = torch.from_numpy(rng.normal(size=(300_000, 50)).astype(np.float32)).bfloat16()
    ty = torch.from_numpy(rng.integers(0, 50, 300_000))
    want = fastce.cross_entropy(ty.numpy(), tx.float().numpy(), from_logits=True, reduction="mean")
    fastce.cross_entropy(ty, tx, from_logits=True, reduction="mean")  # compiled, warm
    tracemalloc.start()
    got = fastce.cross_entropy(ty, tx, from_logits=True, reduction="mean")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert bits(got) == bits(want)
    assert peak < tx.numel() * 2 / 10, peak
