"""Everything in fastce below Numba's public API, in one place; the rest is plain Numba.

* LLVM IR intrinsics (``numba.extending.intrinsic``, llvmlite bodies): bit casts, a fused
  multiply-add, a clamp, arrays without reference counts, and explicit vector loops (8 float64
  or 16 float32 lanes, masked tails) that LLVM does not vectorise from scalar code without
  fast-math flags.
* Patches of Numba internals (``install``; ``fastce._kernels`` calls it): the disk cache stamp
  covers every source file here, kernel functions carry LLVM's "prefer-vector-width", and
  alias analysis learns that ``unowned(a)`` is ``a``. And ``count_compiles``, on Numba's events.

Every intrinsic has a twin of the same name in ``_plain.py``, ordinary Numba with the same bits;
``FASTCE_PLAIN=1`` at import exports the twins instead (no LLVM IR: slower, the same results),
for a Numba or llvmlite release that breaks an intrinsic. ``tests/test_simd.py`` compares each
pair and checks each patch, naming it where its Numba internal has moved.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

PLAIN = os.environ.get("FASTCE_PLAIN", "").strip() not in ("", "0")

_FLOATS = (types.float32, types.float64)
_I32, _I64 = ir.IntType(32), ir.IntType(64)


def _i64(value):
    return ir.Constant(_I64, value)


def _const(ty, value):
    """An LLVM constant of type ``ty`` (an integer or float, or a vector of them)."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)


def neg_inf_image(width):
    """``row_max``'s order-mapped image of -inf in a ``width``-bit float: where a max starts."""
    if width == 32:
        return (0xFF800000 ^ 0x7FFFFFFF) - 2**32
    return (0xFFF0000000000000 ^ 0x7FFFFFFFFFFFFFFF) - 2**64


# ---- Scalar intrinsics: a few LLVM instructions each, so loops calling them still vectorise
@intrinsic
def float_to_bits(typingctx, x):
    """Reinterpret a float64 as int64, a float32 as int32 (LLVM ``bitcast``)."""
    if x not in _FLOATS:
        return None
    sig = (types.int64 if x == types.float64 else types.int32)(x)
    ity = ir.IntType(x.bitwidth)
    return sig, lambda context, builder, signature, args: builder.bitcast(args[0], ity)


@intrinsic
def bits_to_float(typingctx, i):
    """Reinterpret an int64 as float64, an int32 as float32 (LLVM ``bitcast``)."""
    if i not in (types.int64, types.int32):
        return None
    wide = i == types.int64
    fty = ir.DoubleType() if wide else ir.FloatType()
    sig = (types.float64 if wide else types.float32)(i)
    return sig, lambda context, builder, signature, args: builder.bitcast(args[0], fty)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``: an FMA instruction, or libm's ``fma`` without
    one). Every call is fused and nothing else is, so the bits are defined by the source."""
    if a not in _FLOATS or b != a or c != a:
        return None
    return a(a, a, a), lambda context, builder, signature, args: builder.fma(*args)


@intrinsic
def clamp(typingctx, x, lo, hi):
    """min(max(x, lo), hi), NaN -> lo, for bounds lo <= hi that are neither zeros nor NaN: LLVM
    ``maxnum``/``minnum``, one vmaxps and one vminps (two selects made three compares)."""
    if x not in _FLOATS or lo != x or hi != x:
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(args[0].type, [args[0].type] * 2)
        name = f"llvm.%s.f{x.bitwidth}"
        fmax = cgutils.get_or_insert_function(builder.module, fnty, name % "maxnum")
        fmin = cgutils.get_or_insert_function(builder.module, fnty, name % "minnum")
        return builder.call(fmin, [builder.call(fmax, args[:2]), args[2]])

    return x(x, x, x), codegen


# ---- Arrays without reference counts
@intrinsic
def unowned(typingctx, arr):
    """``arr`` with a null meminfo and parent: the same data, shape and strides, no owner.

    Every view Numba makes of an owned array (``x[i]``, ``buf[:n]``) changes the owner's count
    with an atomic instruction, which threads reading one input contend for; views of an
    unowned array do not. The owner must outlive the result: kernel arguments do (the caller
    holds them); a scratch array made in a kernel is used again after its alias (``_math.keep``).
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        src = context.make_array(aryty)(context, builder, args[0])
        dst = context.make_array(aryty)(context, builder)
        for field in ("data", "shape", "strides", "itemsize", "nitems"):
            setattr(dst, field, getattr(src, field))
        dst.meminfo = ir.Constant(src.meminfo.type, None)
        dst.parent = ir.Constant(src.parent.type, None)
        return dst._getvalue()

    return arr(arr), codegen


# ---- Explicit vector loops; the helpers emit IR on scalars or vectors alike
def _c_vector(a, *dtypes):
    """Whether ``a`` is a 1-D C-contiguous array of one of ``dtypes`` (read as a plain pointer)."""
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in dtypes


def _data(context, builder, aryty, value):
    """(data pointer, length) of a 1-D array argument."""
    ary = context.make_array(aryty)(context, builder, value)
    return ary.data, builder.extract_value(ary.shape, 0)


def _vector_at(builder, data, index, vty):
    """A pointer to the ``vty`` vector that starts at ``data[index]``."""
    index = _i64(index) if isinstance(index, int) else index
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _splat(builder, vty, value):
    """A ``vty`` vector of the run-time scalar ``value`` in every lane."""
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, _const(_I32, 0))
    return builder.shuffle_vector(v, v, _const(ir.VectorType(_I32, vty.count), 0))


def _masked_load(builder, data, index, active, fill):
    """The vector at ``data[index]`` in the ``active`` lanes, ``fill``'s elsewhere (not read)."""
    vty = fill.type
    elt = "f32" if isinstance(vty.element, ir.FloatType) else "f64"
    name = f"llvm.masked.load.v{vty.count}{elt}.p0v{vty.count}{elt}"
    mask = ir.VectorType(ir.IntType(1), vty.count)
    fnty = ir.FunctionType(vty, [vty.as_pointer(), _I32, mask, vty])
    load = cgutils.get_or_insert_function(builder.module, fnty, name)
    align = _const(_I32, 8 if elt == "f64" else 4)
    return builder.call(load, [_vector_at(builder, data, index, vty), align, active, fill])


def _two_sum_ir(builder, a, b):
    """(s, e): s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum, no branch)."""
    s = builder.fadd(a, b)
    z = builder.fsub(s, a)
    return s, builder.fadd(builder.fsub(a, builder.fsub(s, z)), builder.fsub(b, z))


def _order_map_ir(builder, bits):
    """``row_max``'s image of float bits: a negative float's magnitude bits flipped, so that the
    integer order is the float order (NaN above +inf or below -inf by its sign). Self-inverse."""
    ty = bits.type
    width = (ty.element if isinstance(ty, ir.VectorType) else ty).width
    sign = builder.ashr(bits, _const(ty, width - 1))
    return builder.xor(bits, builder.and_(sign, _const(ty, (1 << (width - 1)) - 1)))


def _max_image(builder, v, best):
    """Lane by lane max of ``best`` and the order-mapped images of the floats ``v``."""
    return _pick(builder, ">", _order_map_ir(builder, builder.bitcast(v, best.type)), best)


def _pick(builder, op, a, b):
    """a if ``a op b`` else b, for signed integers (lane by lane on vectors): max is ``>``."""
    return builder.select(builder.icmp_signed(op, a, b), a, b)


def _fold_lanes(builder, vec, op):
    """``_pick`` over the lanes of ``vec`` as a tree of half-vectors: one scalar."""
    width = vec.type.count
    while width > 1:
        half = width // 2
        idx = ir.VectorType(_I32, half)
        lo = builder.shuffle_vector(vec, vec, ir.Constant(idx, list(range(half))))
        hi = builder.shuffle_vector(vec, vec, ir.Constant(idx, list(range(half, width))))
        vec, width = _pick(builder, op, lo, hi), half
    return builder.extract_element(vec, _const(_I32, 0))


def _guarded_ir(builder, cond, init, body):
    """``if cond: values = body(values)`` on the LLVM values ``init``; returns the values after
    it (held in stack slots across the blocks, which LLVM turns back into registers)."""
    slots = [cgutils.alloca_once_value(builder, v) for v in init]
    with builder.if_then(cond):
        for slot, v in zip(slots, body([builder.load(s) for s in slots]), strict=True):
            builder.store(v, slot)
    return [builder.load(s) for s in slots]


def _vector_loop(builder, limit, step, init, body):
    """Emit ``for i in range(0, limit, step)`` carrying the LLVM values ``init``; ``body(i,
    values)`` emits one iteration and returns the next values. Returns the values after it."""
    slots = [cgutils.alloca_once_value(builder, v) for v in init]
    zero, step = _i64(0), _i64(step)
    with cgutils.for_range_slice(builder, zero, limit, step) as (i, _):
        for slot, v in zip(slots, body(i, [builder.load(s) for s in slots]), strict=True):
            builder.store(v, slot)
    return [builder.load(s) for s in slots]


def _tree_sum(builder, x, errors=None):
    """((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)); with a list ``errors``, the rounding
    error of each addition (TwoSum) is appended to it, level by level."""
    while len(x) > 1:
        pairs = [(x[k], x[k + 1]) for k in range(0, len(x), 2)]
        if errors is None:
            x = [builder.fadd(a, b) for a, b in pairs]
        else:
            x, found = zip(*[_two_sum_ir(builder, a, b) for a, b in pairs], strict=True)
            errors.extend(found)
    return x[0]


def _lanes8_sum_impl(arr, compensated):
    if not _c_vector(arr, *_FLOATS):
        return None
    ret = types.UniTuple(types.float64, 2) if compensated else types.float64

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        data, _ = _data(context, builder, aryty, args[0])
        vec = ir.VectorType(context.get_value_type(aryty.dtype), 8)
        dvec = ir.VectorType(ir.DoubleType(), 8)

        def body(i, carried):
            v = builder.load(_vector_at(builder, data, i, vec), align=aryty.dtype.bitwidth // 8)
            x = v if aryty.dtype == types.float64 else builder.fpext(v, dvec)
            if not compensated:
                return [builder.fadd(carried[0], x)]
            total, e = _two_sum_ir(builder, carried[0], x)
            return [total, builder.fadd(carried[1], e)]

        n8 = builder.and_(args[1], _i64(~7))
        final = _vector_loop(builder, n8, 8, [_const(dvec, 0.0)] * (1 + compensated), body)
        lanes = [[builder.extract_element(v, _const(_I32, k)) for k in range(8)] for v in final]
        if not compensated:
            return _tree_sum(builder, lanes[0])
        errors = [_tree_sum(builder, lanes[1])]  # the lanes' errors, then the tree's in order
        total = _tree_sum(builder, lanes[0], errors)
        e_all = functools.reduce(builder.fadd, errors)
        return context.make_tuple(builder, signature.return_type, [total, e_all])

    return ret(arr, types.int64), codegen


@intrinsic
def lanes8_sum(typingctx, arr, n):
    """Sum of arr[:n - n % 8] (float32 or float64) in eight float64 lanes (lane l adds arr[8i +
    l] in order of i, from 0.0), combined by ``_tree_sum``: the arithmetic of eight scalar
    accumulators, which no LLVM vectoriser makes one vector of without fast-math (3x faster)."""
    return _lanes8_sum_impl(arr, compensated=False)


@intrinsic
def lanes8_sum_compensated(typingctx, arr, n):
    """(S, E): S ``lanes8_sum``, E the sum of the rounding errors (TwoSum) of its additions: the
    lanes' errors summed as S's tree is, then the tree's own errors added in order."""
    return _lanes8_sum_impl(arr, compensated=True)


@intrinsic
def lanes8_max_f64(typingctx, arr, n):
    """``row_max(arr[:n])`` of a float64 array, n a multiple of 8, on eight int64 lanes (the
    loop vectoriser leaves a 16-entry block to its scalar remainder: it takes 32 at a time)."""
    if not _c_vector(arr, types.float64):
        return None

    def codegen(context, builder, signature, args):
        data, _ = _data(context, builder, signature.args[0], args[0])
        vd = ir.VectorType(ir.DoubleType(), 8)
        start = _const(ir.VectorType(_I64, 8), neg_inf_image(64))

        def body(i, carried):
            v = builder.load(_vector_at(builder, data, i, vd), align=8)
            return [_max_image(builder, v, carried[0])]

        (best,) = _vector_loop(builder, args[1], 8, [start], body)
        top = _fold_lanes(builder, best, ">")
        return builder.bitcast(_order_map_ir(builder, top), ir.DoubleType())

    return types.float64(arr, types.int64), codegen


@intrinsic
def copy_max_f32(typingctx, seg, buf):
    """Copy the float32 ``seg`` into the float64 ``buf`` padded with -inf to a multiple of 16
    entries (buf holds that many, 8-byte aligned), and return ``row_max(seg)`` as float64: one
    pass of 16 lanes (integer max over order-mapped int32 images), then one masked load for the
    last n % 16, whose lanes past the end read nothing and take -inf."""
    if not (_c_vector(seg, types.float32) and _c_vector(buf, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        vf, vi = ir.VectorType(ir.FloatType(), 16), ir.VectorType(_I32, 16)
        vd, v16 = ir.VectorType(ir.DoubleType(), 8), ir.VectorType(_I64, 16)
        src, n = _data(context, builder, signature.args[0], args[0])
        dst, _ = _data(context, builder, signature.args[1], args[1])

        def step(v, index, best):  # store v widened to two float64 vectors; max of images
            for h in range(2):
                mask = ir.Constant(ir.VectorType(_I32, 8), list(range(8 * h, 8 * h + 8)))
                at = builder.add(index, _i64(8 * h))
                wide = builder.fpext(builder.shuffle_vector(v, v, mask), vd)
                builder.store(wide, _vector_at(builder, dst, at, vd), align=8)
            return _max_image(builder, v, best)

        def body(i, carried):
            return [step(builder.load(_vector_at(builder, src, i, vf), align=4), i, carried[0])]

        def tail(values):
            lanes = ir.Constant(v16, list(range(16)))
            active = builder.icmp_signed("<", lanes, _splat(builder, v16, rest))
            v = _masked_load(builder, src, full, active, _const(vf, float("-inf")))
            return [step(v, full, values[0])]

        full = builder.and_(n, _i64(~15))
        (best,) = _vector_loop(builder, full, 16, [_const(vi, neg_inf_image(32))], body)
        rest = builder.sub(n, full)
        (best,) = _guarded_ir(builder, builder.icmp_signed(">", rest, _i64(0)), [best], tail)
        m = _order_map_ir(builder, _fold_lanes(builder, best, ">"))
        return builder.fpext(builder.bitcast(m, ir.FloatType()), ir.DoubleType())

    return types.float64(seg, buf), codegen


@intrinsic
def copy_max_index_f64(typingctx, seg, buf):
    """Copy the float64 ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries, and
    return (m, j): m ``row_max(seg)``, j the first position whose order-mapped image is m's and
    above -inf's (len(seg) if none). One pass, two chains of 8 lanes; each lane keeps its
    largest image and the position where it first saw it (updated on a strictly larger image
    only), and j is the smallest position among the lanes holding the largest image. The last
    n % 8 entries are one masked load, -inf in the empty lanes."""
    if not (_c_vector(seg, types.float64) and _c_vector(buf, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        vd, vi = ir.VectorType(ir.DoubleType(), 8), ir.VectorType(_I64, 8)
        src, n = _data(context, builder, signature.args[0], args[0])
        dst, _ = _data(context, builder, signature.args[1], args[1])
        neg_inf, none = _const(vd, float("-inf")), _const(vi, 2**63 - 1)
        lanes = ir.Constant(vi, list(range(8)))

        def load(at):
            return builder.load(_vector_at(builder, src, at, vd), align=8)

        def step(v, at, best, where):
            builder.store(v, _vector_at(builder, dst, at, vd), align=8)
            image = _order_map_ir(builder, builder.bitcast(v, vi))
            gt = builder.icmp_signed(">", image, best)
            position = builder.add(_splat(builder, vi, at), lanes)
            return builder.select(gt, image, best), builder.select(gt, position, where)

        # -inf in the last 16 entries of the padded length first; the copy overwrites the rest.
        n16 = builder.and_(builder.add(n, _i64(15)), _i64(~15))
        with builder.if_then(builder.icmp_signed(">", n16, _i64(0))):
            for back in (16, 8):
                at = builder.sub(n16, _i64(back))
                builder.store(neg_inf, _vector_at(builder, dst, at, vd), align=8)

        def body16(i, carried):
            i8 = builder.add(i, _i64(8))
            return [*step(load(i), i, *carried[:2]), *step(load(i8), i8, *carried[2:])]

        start = _const(vi, neg_inf_image(64))
        full16 = builder.and_(n, _i64(~15))
        b0, w0, b1, w1 = _vector_loop(builder, full16, 16, [start, none, start, none], body16)
        # Chain 1's positions follow chain 0's within a step: on equal images keep the smaller.
        take1 = builder.or_(
            builder.icmp_signed(">", b1, b0),
            builder.and_(builder.icmp_signed("==", b1, b0), builder.icmp_signed("<", w1, w0)),
        )
        state = [builder.select(take1, b1, b0), builder.select(take1, w1, w0)]
        more = builder.icmp_signed(">=", builder.sub(n, full16), _i64(8))
        state = _guarded_ir(builder, more, state, lambda v: step(load(full16), full16, *v))
        full = builder.and_(n, _i64(~7))
        left = builder.sub(n, full)

        def tail(values):
            active = builder.icmp_signed("<", lanes, _splat(builder, vi, left))
            return step(_masked_load(builder, src, full, active, neg_inf), full, *values)

        any_left = builder.icmp_signed(">", left, _i64(0))
        best, where = _guarded_ir(builder, any_left, state, tail)
        top = _fold_lanes(builder, best, ">")
        found = builder.icmp_signed("==", best, _splat(builder, vi, top))
        j = _pick(builder, "<", _fold_lanes(builder, builder.select(found, where, none), "<"), n)
        m = builder.bitcast(_order_map_ir(builder, top), ir.DoubleType())
        return context.make_tuple(builder, signature.return_type, [m, j])

    return types.Tuple((types.float64, types.int64))(seg, buf), codegen


def _lanes16(cols, out, emit):
    """Eight short rows at once, one per lane: ``cols`` is a column-major tile (cols[8 c + l] is
    column c of row l, 16 columns: each row's padded block); out[l] = emit's value for lane l."""
    if not (_c_vector(cols, types.float64) and _c_vector(out, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        data, _ = _data(context, builder, signature.args[0], args[0])
        dest, _ = _data(context, builder, signature.args[1], args[1])
        vd = ir.VectorType(ir.DoubleType(), 8)
        columns = [builder.load(_vector_at(builder, data, 8 * c, vd), align=8) for c in range(16)]
        builder.store(emit(builder, columns, vd), _vector_at(builder, dest, 0, vd), align=8)
        return context.get_dummy_value()

    return types.void(cols, out), codegen


@intrinsic
def lanes_max16(typingctx, cols, out):
    """out[l] = ``block_max`` of lane l's 16 entries (the same order-independent integer max)."""

    def emit(builder, columns, vd):
        best = _const(ir.VectorType(_I64, 8), neg_inf_image(64))
        for column in columns:
            best = _max_image(builder, column, best)
        return builder.bitcast(_order_map_ir(builder, best), vd)

    return _lanes16(cols, out, emit)


@intrinsic
def lanes_sum16(typingctx, cols, out):
    """out[l] = ``sum8`` of lane l's 16 entries: a_j = (0 + e_j) + e_(j+8) for j < 8, then
    ``_tree_sum`` of the a_j, then + 0.0 (sum8's empty tail)."""

    def emit(builder, c, vd):
        zero = _const(vd, 0.0)
        a = [builder.fadd(builder.fadd(zero, c[j]), c[j + 8]) for j in range(8)]
        return builder.fadd(_tree_sum(builder, a), zero)

    return _lanes16(cols, out, emit)


# ---- Patches of Numba internals. Each leaves Numba as it is where its internal is not found.

_HERE = os.path.dirname(os.path.abspath(__file__))
_KERNEL_NAME_MARK = "6fastce8_kernels"  # "fastce._kernels" as Numba's name mangling writes it

# LLVM tunes Intel AVX-512 cores to prefer 256-bit vectors; the kernels' exp/log loops run
# 1.5-1.7x faster with zmm there (docs/performance.md). It only widens what LLVM vectorises, and
# nothing is reassociated or contracted: the same bits at any width (no AVX-512: ignored).
PREFER_VECTOR_WIDTH = os.environ.get("FASTCE_PREFER_VECTOR_WIDTH", "512").strip() or "512"


def sources_digest() -> str:
    """The cache stamp of the kernels: every source file here and the settings that change code."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            with open(os.path.join(_HERE, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return f"{digest.hexdigest()}-vw{PREFER_VECTOR_WIDTH}{'-plain' if PLAIN else ''}"


def _install_package_stamp() -> None:
    """``numba.core.caching._CacheImpl._locator_classes``: first in line for this package's
    files, Numba's own locator with ``sources_digest`` in the stamp (Numba stamps a cache with
    the defining file only; kernels inline helpers from other files, which must not go stale)."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "_CacheLocator", None)
    classes = getattr(impl, "_locator_classes", None)
    if (
        base is None
        or not isinstance(classes, list)
        or any(hasattr(c, "_fastce") for c in classes)
    ):
        return
    digest = sources_digest()

    class PackageStampLocator(base):  # type: ignore[misc, valid-type]
        _fastce = True

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def ensure_cache_path(self) -> None:
            self._inner.ensure_cache_path()

        def get_cache_path(self) -> str:
            return self._inner.get_cache_path()

        def get_source_stamp(self) -> Any:
            return (self._inner.get_source_stamp(), digest)

        def get_disambiguator(self) -> str:
            return self._inner.get_disambiguator()

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.dirname(os.path.abspath(py_file)) == _HERE:
                for other in classes:
                    inner = other.from_function(py_func, py_file)
                    if inner is not None:
                        return cls(inner)
            return None

    impl._locator_classes = [PackageStampLocator, *classes]


def _install_vector_width() -> None:
    """``numba.core.codegen.CPUCodeLibrary.add_ir_module``: every function defined in an LLVM
    module that defines one of this package's functions gets "prefer-vector-width"."""
    from numba.core import codegen

    library = getattr(codegen, "CPUCodeLibrary", None)
    original = getattr(library, "add_ir_module", None)
    if original is None or getattr(original, "_fastce", False):
        return
    attribute = f'"prefer-vector-width"="{PREFER_VECTOR_WIDTH}"'

    def add_ir_module(self: Any, ir_module: Any) -> Any:
        try:
            defined = [f for f in ir_module.functions if not f.is_declaration]
            if any(_KERNEL_NAME_MARK in f.name for f in defined):
                for f in defined:  # llvmlite writes an attribute set's strings verbatim
                    set.add(f.attributes, attribute)
        except Exception:  # pragma: no cover - an unknown llvmlite layout: leave the IR alone
            pass
        return original(self, ir_module)

    add_ir_module._fastce = True  # type: ignore[attr-defined]
    library.add_ir_module = add_ir_module


def _install_unowned_alias() -> None:
    """``numba.core.ir_utils.alias_func_extensions``: ``unowned(a)`` aliases ``a``, or a
    ``prange`` loop that only writes through it looks dead and goes (kernels are serial today)."""
    from numba.core import ir_utils

    def alias_of_argument(lhs: Any, args: Any, alias_map: Any, arg_aliases: Any) -> None:
        ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)

    extensions = getattr(ir_utils, "alias_func_extensions", None)
    if isinstance(extensions, dict) and hasattr(ir_utils, "_add_alias"):
        extensions[("unowned", __name__)] = alias_of_argument


def install() -> None:
    """Apply the patches (once; calling again changes nothing)."""
    _install_package_stamp()
    _install_vector_width()
    _install_unowned_alias()


@contextlib.contextmanager
def count_compiles() -> Iterator[list[str]]:
    """A list of the functions Numba compiles in the block (loads from the disk cache are not
    compiles), from ``numba.core.event``; it stays empty where that API is missing."""
    names: list[str] = []
    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - a Numba without the event API
        yield names
        return

    class Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            dispatcher = (ev.data or {}).get("dispatcher")
            names.append(getattr(getattr(dispatcher, "py_func", None), "__qualname__", "?"))

        def on_end(self, ev: Any) -> None:
            pass

    with event.install_listener("numba:compile", Listener()):
        yield names


if PLAIN:  # the plain twins (one per intrinsic above) replace the intrinsics for every importer
    from . import _plain

    globals().update({name: getattr(_plain, name) for name in _plain.__all__})
