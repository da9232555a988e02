"""The elementary functions and row primitives every kernel uses, in one place.

Kernels never call ``math.exp``/``math.log`` (scalar libm calls: Numba here has no SVML): they
call the functions below, which pick the vectorisable implementation from ``vmath`` for the
row's dtype at compile time. Swapping an implementation here swaps it for every kernel.

Everything is compiled without fast-math flags, so each value is defined by the source alone:
the same bits for any vector width, any thread count, any machine. Loops that *reduce* (a max,
a sum) do not vectorise under those rules unless written with explicit lanes; that is what
``row_max`` (an integer max over the float bit patterns) and ``sum8`` (explicit vector lanes) do.

The implementations are vmath's FMA variants: an explicit fused multiply-add is one IEEE
operation (one rounding), so the bits are still defined by the source and the same on every
machine with FMA (every x86-64 CPU since 2013, every arm64); without FMA hardware the same bits
come from libm's ``fma``, slowly.

Dtype policy: float64 rows use the float64 functions. float32 rows compute ``exp`` and ``log``
of float32 values in float32 (16 lanes per AVX-512 register instead of 8; each result within
1 ulp of float32) and accumulate in float64; the exps of a float32 row's ``x - m`` (exact in
float64, not in float32) are ``exp_lite``: float64, to the 2**-34 a float32 result needs.
"""

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .vmath import (
    _fma,
    bits_to_float,
    exp64_lite,
    float_to_bits,
)
from .vmath import exp32_fma as exp32
from .vmath import exp64_fma as exp64
from .vmath import log1p32_fma as log1p32
from .vmath import log1p64_fma as log1p64
from .vmath import log64_fma as log64

# ---------------------------------------------------------------------------------------------
# Scalar functions, float64 in, float64 out (per-row work, not inner loops).


# Not inlined at Numba's IR level (that multiplies type inference and IR work by the number of
# call sites): each is compiled once as a small function, and LLVM inlines it into the loops
# that call it, where it vectorises as before.
@njit(cache=True)
def log(x):
    return log64(np.float64(x))


@njit(cache=True)
def log1p(x):
    return log1p64(np.float64(x))


@njit(inline="always", cache=True)
def fma(a, b, c):
    """a * b + c rounded once (an IEEE fused multiply-add: the same bits on every machine)."""
    return _fma(a, b, c)


@njit(inline="always", cache=True)
def two_sum(a, b):
    """(s, err) with s = fl(a + b) and s + err = a + b exactly (Knuth's TwoSum)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


@njit(inline="always", cache=True)
def exp_diff(a, b):
    """e**(a - b) for float64 a, b, with the rounding error of a - b put back.

    fl(a - b) is off by up to half an ulp of the difference, which e**x turns into a relative
    error of |a - b| 2**-53: 20 ulps for a term e**-40 far below a row's maximum. With
    a - b = d + err exactly (TwoSum), e**(a - b) = e**d (1 + err) to within err**2 / 2, and
    that is one fused multiply-add. Where d is infinite (a = -inf: e**d = 0, err = NaN) the
    plain e**d is kept; a NaN stays NaN. (For float32 inputs, a - b is exact in float64.)
    """
    nb = -b  # loop-invariant in the callers: hoisted
    d = a + nb
    z = d - a
    err = (a - (d - z)) + (nb - z)
    e = exp64(d)
    r = _fma(e, err, e)
    return r if r == r else e


# ---------------------------------------------------------------------------------------------
# Element functions in the row's own dtype (inner loops).


def exp_native(x):
    """e**x in x's own float dtype (float32 or float64)."""


@overload(exp_native)
def _exp_native(x):
    if x == types.float32:
        return lambda x: exp32(x)
    if x == types.float64:
        return lambda x: exp64(x)
    return None


def exp_lite(x):
    """e**x for x <= 0 (or NaN), accurate enough for a float32 result: ``exp64_lite`` for
    float64 x (relative error below 2**-34), ``exp32`` for float32 x. The exps of a float32
    row's ``x - m`` (float64, exact) use it."""


@overload(exp_lite)
def _exp_lite(x):
    if x == types.float32:
        return lambda x: exp32(x)
    if x == types.float64:
        return lambda x: exp64_lite(x)
    return None


def log1p_native(x):
    """log1p(x) in x's own float dtype."""


@overload(log1p_native)
def _log1p_native(x):
    if x == types.float32:
        return lambda x: log1p32(x)
    if x == types.float64:
        return lambda x: log1p64(x)
    return None


# ---------------------------------------------------------------------------------------------
# Row primitives over a 1-D row (a block is passed as a slice: unit-stride loops from 0
# vectorise; loops over an offset range of a longer row were measured to gather).


def row_max(row):
    """Maximum of a 1-D row in its own dtype; -inf for an empty row.

    Computed as an integer max over the float bit patterns mapped to a monotonic signed order
    (negative floats have their magnitude bits flipped), which vectorises without fast-math
    flags where a float max does not. A NaN with its sign bit clear compares above +inf and is
    returned (the row's result is then NaN, as it must be); one with the sign bit set compares
    below -inf and is not, but it still reaches the result through exp(nan - m).
    """


def _neg_inf_image(width):
    """The order-mapped image of -inf in a ``width``-bit float (the start of every max)."""
    if width == 32:
        return (0xFF800000 ^ 0x7FFFFFFF) - 2**32
    return (0xFFF0000000000000 ^ 0x7FFFFFFFFFFFFFFF) - 2**64


def _max_impl(int_type, mask, neg_inf_image):
    sign_shift = int_type(np.iinfo(int_type).bits - 1)

    def impl(row):
        # Start from the image of -inf: an empty range gives -inf, and a NaN with its sign bit
        # set (whose image lies below) is never chosen.
        best = neg_inf_image
        for k in range(row.shape[0]):
            b = float_to_bits(row[k])
            b = int_type(b ^ ((b >> sign_shift) & mask))
            best = b if b > best else best
        best = int_type(best ^ ((best >> sign_shift) & mask))
        return bits_to_float(best)

    return impl


@overload(row_max)
def _row_max(row):
    if row.dtype == types.float32:
        return _max_impl(np.int32, np.int32(0x7FFFFFFF), np.int32(_neg_inf_image(32)))
    if row.dtype == types.float64:
        return _max_impl(np.int64, np.int64(0x7FFFFFFFFFFFFFFF), np.int64(_neg_inf_image(64)))
    return None


@njit(inline="always", cache=True)
def first_index(row, m):
    """The first k with row[k] == m (len(row) if none), as a vectorisable min-reduction."""
    n = row.shape[0]
    j = n
    for k in range(n):
        j = min(j, k if row[k] == m else n)
    return j


def _two_sum_ir(builder, a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum: six operations, no
    branch, no condition on the magnitudes), as LLVM IR on scalars or vectors."""
    s = builder.fadd(a, b)
    z = builder.fsub(s, a)
    e = builder.fadd(builder.fsub(a, builder.fsub(s, z)), builder.fsub(b, z))
    return s, e


def _guarded_ir(builder, cond, init, body):
    """Emit ``if cond: values = body(values)`` on the LLVM values ``init``; returns the values
    after it (``init`` where ``cond`` was false)."""
    then = builder.append_basic_block("guard.then")
    done = builder.append_basic_block("guard.done")
    before = builder.block
    builder.cbranch(cond, then, done)
    builder.position_at_end(then)
    nxt = body(init)
    end = builder.block
    builder.branch(done)
    builder.position_at_end(done)
    out = []
    for v0, v1 in zip(init, nxt, strict=True):
        phi = builder.phi(v0.type)
        phi.add_incoming(v0, before)
        phi.add_incoming(v1, end)
        out.append(phi)
    return out


def _vector_loop(builder, limit, step, init, body):
    """Emit ``for i in range(0, limit, step)`` (``limit`` an i64 multiple of ``step``, maybe 0)
    carrying the LLVM values ``init``; ``body(i, values)`` emits one iteration and returns the
    next values. Returns the values after the loop (``init`` where it ran no iteration)."""
    i64 = ir.IntType(64)

    def loop(values):
        entry = builder.block
        head = builder.append_basic_block("vloop.body")
        builder.branch(head)
        builder.position_at_end(head)
        i = builder.phi(i64)  # phi nodes come first in a block
        carried = [builder.phi(v.type) for v in values]
        i.add_incoming(ir.Constant(i64, 0), entry)
        for phi, v in zip(carried, values, strict=True):
            phi.add_incoming(v, entry)
        nxt = body(i, carried)
        i_next = builder.add(i, ir.Constant(i64, step))
        end = builder.block
        i.add_incoming(i_next, end)
        for phi, v in zip(carried, nxt, strict=True):
            phi.add_incoming(v, end)
        leave = builder.append_basic_block("vloop.exit")
        builder.cbranch(builder.icmp_signed("<", i_next, limit), head, leave)
        builder.position_at_end(leave)
        return nxt

    return _guarded_ir(builder, builder.icmp_signed(">", limit, ir.Constant(i64, 0)), init, loop)


def _c_vector(a, *dtypes):
    """Whether the Numba type ``a`` is a 1-D C-contiguous array of one of ``dtypes`` (what the
    explicit-lane intrinsics below read as plain pointers)."""
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in dtypes


def _lanes8_sum_impl(arr, compensated):
    """(signature, codegen) of ``_lanes8_sum`` / ``_lanes8_sum_compensated``."""
    if not _c_vector(arr, types.float32, types.float64):
        return None
    if compensated:
        sig = types.UniTuple(types.float64, 2)(arr, types.int64)
    else:
        sig = types.float64(arr, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        data = context.make_array(aryty)(context, builder, args[0]).data
        n = args[1]
        elt = context.get_value_type(aryty.dtype)
        vec = ir.VectorType(elt, 8)
        dvec = ir.VectorType(ir.DoubleType(), 8)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        n8 = builder.and_(n, ir.Constant(i64, ~7))
        zero = ir.Constant(dvec, [0.0] * 8)

        def body(i, carried):
            ptr = builder.bitcast(builder.gep(data, [i]), vec.as_pointer())
            v = builder.load(ptr, align=aryty.dtype.bitwidth // 8)
            x = builder.fpext(v, dvec) if elt != ir.DoubleType() else v
            if compensated:
                acc_next, e = _two_sum_ir(builder, carried[0], x)
                return [acc_next, builder.fadd(carried[1], e)]
            return [builder.fadd(carried[0], x)]

        final = _vector_loop(builder, n8, 8, [zero, zero] if compensated else [zero], body)
        total = final[0]
        errors = final[1] if compensated else None
        s = [builder.extract_element(total, ir.Constant(i32, k)) for k in range(8)]
        if not compensated:
            left = builder.fadd(builder.fadd(s[0], s[1]), builder.fadd(s[2], s[3]))
            right = builder.fadd(builder.fadd(s[4], s[5]), builder.fadd(s[6], s[7]))
            return builder.fadd(left, right)
        e = [builder.extract_element(errors, ir.Constant(i32, k)) for k in range(8)]
        e_all = builder.fadd(
            builder.fadd(builder.fadd(e[0], e[1]), builder.fadd(e[2], e[3])),
            builder.fadd(builder.fadd(e[4], e[5]), builder.fadd(e[6], e[7])),
        )
        level = s
        while len(level) > 1:  # the same tree as the plain sum, each addition's error kept
            nxt = []
            for k in range(0, len(level), 2):
                t, te = _two_sum_ir(builder, level[k], level[k + 1])
                e_all = builder.fadd(e_all, te)
                nxt.append(t)
            level = nxt
        return context.make_tuple(builder, signature.return_type, [level[0], e_all])

    return sig, codegen


@intrinsic
def _lanes8_sum(typingctx, arr, n):
    """Sum of arr[:n - n % 8] in eight float64 lanes (lane l adds arr[8i + l] in order of i),
    the lanes combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).

    Written as explicit LLVM vector code because neither the loop vectoriser (no reassociation
    without fast-math) nor the SLP vectoriser (measured) turns eight scalar accumulators into
    one vector: this is their exact arithmetic, three times faster.
    """
    return _lanes8_sum_impl(arr, compensated=False)


@intrinsic
def _lanes8_sum_compensated(typingctx, arr, n):
    """``_lanes8_sum`` with the rounding error of every addition (lanes and tree) found exactly
    by TwoSum: returns (S, E), S the plain sum and E the sum of those errors."""
    return _lanes8_sum_impl(arr, compensated=True)


@njit(inline="always", cache=True)
def sum8(buf, n):
    """sum(buf[:n]) in float64: eight lanes (``_lanes8_sum``) plus the n % 8 tail, in a fixed
    order, so the bits depend on n and the values only."""
    rest = 0.0
    for j in range(n - n % 8, n):
        rest += np.float64(buf[j])
    return _lanes8_sum(buf, n) + rest


@njit(inline="always", cache=True)
def sum8_compensated(buf, n):
    """sum(buf[:n]) in float64, compensated: eight lanes then the n % 8 tail, in a fixed order,
    the rounding error of each addition kept (TwoSum) and added back at the end, so a sum of
    positive terms is within about one rounding of exact whatever n. A sum that is infinite or
    NaN is the plain sum (the error terms of an infinite sum are NaN)."""
    s, e = _lanes8_sum_compensated(buf, n)
    for j in range(n - n % 8, n):
        x = np.float64(buf[j])
        t = s + x
        z = t - s
        e += (s - (t - z)) + (x - z)
        s = t
    return s + e if abs(s) < np.inf else s


COMPENSATE_FROM = 128
"""Blocks of more terms than this are summed with compensation when the result is float64."""


@njit(inline="always", cache=True)
def block_sum(buf, n, float32_result, compensate_from=COMPENSATE_FROM):
    """The sum of a block's n terms in ``buf``, as accurate as the result needs.

    The plain eight lanes add n / 8 terms each in sequence: within 2 ulp of float64 up to
    n = 128 or so for sums of logarithms (entropy, KL), but 34 ulp for 2,048 equal terms. So
    float64 results take the compensated sum beyond ``compensate_from`` terms (0 for the sums
    of exps of a log-sum-exp, whose results are held to 4 ulp: a term near 1 with many small
    ones cost up to 2.7 ulp plain). float32 results never need it (a float64 sum of 2,048
    terms is off by far less than a float32 ulp). ``float32_result`` is a compile-time
    constant (``is_float32``), so each kernel keeps one branch.
    """
    if float32_result or n <= compensate_from:
        return sum8(buf, n)
    return sum8_compensated(buf, n)


@njit(inline="always", cache=True)
def any_not_probability(row):
    """True if some row[k] lies outside [0, 1] (NaN does not count)."""
    bad = 0
    for k in range(row.shape[0]):
        v = row[k]
        bad |= (v < 0) | (v > 1)
    return bad != 0


@njit(inline="always", cache=True)
def any_nan(row):
    nan = 0
    for k in range(row.shape[0]):
        v = row[k]
        nan |= v != v
    return nan != 0


def is_float32(row):
    """True (a compile-time constant) when ``row`` holds float32."""


@overload(is_float32)
def _is_float32(row):
    flag = row.dtype == types.float32
    return lambda row: flag


@intrinsic
def unowned(typingctx, arr):
    """``arr`` without its reference-counted owner: the same data, shape and strides, with a
    null meminfo and parent.

    Every view Numba makes of an owned array (``x[i]``, ``buf[:n]``) increments and decrements
    the owner's reference count with an atomic instruction; when the threads of a ``prange``
    all take rows of the same input, those atomics contend for one cache line. Views of an
    unowned array skip them. The caller must keep the owner alive for as long as the result is
    used: kernel arguments are (the caller holds them), and scratch arrays allocated in a kernel
    must be used again after the last use of their unowned alias (see ``keep``).
    """
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        src = context.make_array(aryty)(context, builder, args[0])
        dst = context.make_array(aryty)(context, builder)
        dst.data = src.data
        dst.shape = src.shape
        dst.strides = src.strides
        dst.itemsize = src.itemsize
        dst.nitems = src.nitems
        dst.meminfo = ir.Constant(src.meminfo.type, None)
        dst.parent = ir.Constant(src.parent.type, None)
        return dst._getvalue()

    return sig, codegen


@intrinsic
def keep(typingctx, arr):
    """A use of ``arr`` that compiles to nothing: keeps an owned scratch array alive (Numba
    releases a variable after its last use) until this point, for its ``unowned`` aliases."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.none(arr), codegen


def _alias_of_argument(lhs, args, alias_map, arg_aliases):
    """Tell Numba's alias analysis that ``unowned(a)`` is ``a``: without it, a ``prange`` loop
    that only writes through the alias looks dead (it writes a "fresh" array) and is removed."""
    from numba.core import ir_utils

    ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)


def _register_alias() -> None:
    from numba.core import ir_utils

    ir_utils.alias_func_extensions[("unowned", __name__)] = _alias_of_argument


_register_alias()


def _splat(ty, value):
    """An LLVM constant of type ``ty`` (an integer, or a vector of them) equal to ``value``."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)


def _order_map_ir(builder, bits):
    """``row_max``'s order-mapped image of float bit patterns (an integer or a vector of them,
    in the float's width): a negative float's magnitude bits flipped, so that the signed
    integer order is the float order (a NaN with the sign bit clear above +inf, one with it set
    below -inf). The map is its own inverse: it also turns an image back into the bits."""
    ty = bits.type
    width = (ty.element if isinstance(ty, ir.VectorType) else ty).width
    sign = builder.ashr(bits, _splat(ty, width - 1))
    return builder.xor(bits, builder.and_(sign, _splat(ty, (1 << (width - 1)) - 1)))


def _imax_ir(builder, a, b):
    """Signed integer max of two images (scalars or lane by lane)."""
    return builder.select(builder.icmp_signed(">", a, b), a, b)


@intrinsic
def _lanes8_max_f64(typingctx, arr, n):
    """``row_max(arr[:n])`` for a float64 array and n a multiple of 8: the same integer max over
    the order-mapped bit patterns, on eight explicit int64 lanes. The loop vectoriser leaves a
    16-entry block to its scalar remainder (its vector body takes 32 at a time)."""
    if not _c_vector(arr, types.float64):
        return None
    sig = types.float64(arr, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        data = context.make_array(aryty)(context, builder, args[0]).data
        n = args[1]
        i64 = ir.IntType(64)
        vd = ir.VectorType(ir.DoubleType(), 8)
        vi = ir.VectorType(i64, 8)
        start = _splat(vi, _neg_inf_image(64))

        def body(i, carried):
            ptr = builder.bitcast(builder.gep(data, [i]), vd.as_pointer())
            bits = builder.bitcast(builder.load(ptr, align=8), vi)
            return [_imax_ir(builder, _order_map_ir(builder, bits), carried[0])]

        (total,) = _vector_loop(builder, n, 8, [start], body)
        m = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
        for k in range(1, 8):
            v = builder.extract_element(total, ir.Constant(ir.IntType(32), k))
            m = builder.select(builder.icmp_signed(">", v, m), v, m)
        return builder.bitcast(_order_map_ir(builder, m), ir.DoubleType())

    return sig, codegen


@intrinsic
def _copy_max_f32(typingctx, seg, buf):
    """Copy the float32 ``seg`` into the float64 ``buf`` padded with -inf to a multiple of 16
    entries, and return its ``row_max`` (as float64): one pass, 16 lanes.

    Full vectors of 16 floats, then one masked load for the last n % 16 (the lanes past the
    end read nothing and take -inf), each widened to two float64 vectors and stored. The max
    is ``row_max``'s integer max over the order-mapped bit patterns (int32 lanes), the lanes
    combined at the end (max is order-independent), so m is exactly ``block_max`` of the
    padded float64 copy. ``buf`` must hold at least ``(len(seg) + 15) & ~15`` entries.
    (float64 rows take ``copy_max_index``, which also returns the maximum's first position:
    the plain fusion of copy and max measured slower for them than the copy loop plus
    ``_lanes8_max_f64``, but with the position it replaces a search of the row.)
    """
    if not (_c_vector(seg, types.float32) and _c_vector(buf, types.float64)):
        return None
    sig = types.float64(seg, buf)

    def codegen(context, builder, signature, args):
        i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
        f32, f64 = ir.FloatType(), ir.DoubleType()
        vf, vi, vd = ir.VectorType(f32, 16), ir.VectorType(i32, 16), ir.VectorType(f64, 8)
        seg_ary = context.make_array(signature.args[0])(context, builder, args[0])
        src = seg_ary.data
        n = builder.extract_value(seg_ary.shape, 0)
        dst = context.make_array(signature.args[1])(context, builder, args[1]).data
        start = _splat(vi, _neg_inf_image(32))

        def step(v, index, best):
            for h in range(2):
                idx = ir.Constant(ir.VectorType(i32, 8), list(range(8 * h, 8 * h + 8)))
                half = builder.fpext(builder.shuffle_vector(v, v, idx), vd)
                at = builder.add(index, ir.Constant(i64, 8 * h))
                ptr = builder.bitcast(builder.gep(dst, [at]), vd.as_pointer())
                builder.store(half, ptr, align=8)  # buf is only 8-byte aligned
            return _imax_ir(builder, _order_map_ir(builder, builder.bitcast(v, vi)), best)

        full = builder.and_(n, ir.Constant(i64, ~15))

        def body(i, carried):
            ptr = builder.bitcast(builder.gep(src, [i]), vf.as_pointer())
            return [step(builder.load(ptr, align=4), i, carried[0])]

        (acc,) = _vector_loop(builder, full, 16, [start], body)
        rest = builder.sub(n, full)
        v16i64 = ir.VectorType(i64, 16)

        def tail(values):  # the last n % 16: a masked load, -inf in the empty lanes
            rest_v = builder.insert_element(
                ir.Constant(v16i64, ir.Undefined), rest, ir.Constant(i32, 0)
            )
            rest_v = builder.shuffle_vector(rest_v, rest_v, ir.Constant(vi, [0] * 16))
            active = builder.icmp_signed("<", ir.Constant(v16i64, list(range(16))), rest_v)
            fnty = ir.FunctionType(vf, [vf.as_pointer(), i32, ir.VectorType(i1, 16), vf])
            mload = cgutils.get_or_insert_function(
                builder.module, fnty, "llvm.masked.load.v16f32.p0v16f32"
            )
            ptr = builder.bitcast(builder.gep(src, [full]), vf.as_pointer())
            neg_inf = ir.Constant(vf, [float("-inf")] * 16)
            v = builder.call(mload, [ptr, ir.Constant(i32, 4), active, neg_inf])
            return [step(v, full, values[0])]

        any_left = builder.icmp_signed(">", rest, ir.Constant(i64, 0))
        (total,) = _guarded_ir(builder, any_left, [acc], tail)
        width = 16
        while width > 1:  # the lanes combined as a tree
            half = width // 2
            pick = ir.VectorType(i32, half)
            lo = builder.shuffle_vector(total, total, ir.Constant(pick, list(range(half))))
            hi = builder.shuffle_vector(total, total, ir.Constant(pick, list(range(half, width))))
            total = _imax_ir(builder, lo, hi)
            width = half
        m = _order_map_ir(builder, builder.extract_element(total, ir.Constant(i32, 0)))
        return builder.fpext(builder.bitcast(m, f32), f64)

    return sig, codegen


def copy_max(seg, buf):
    """Copy ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries; return
    ``block_max`` of the padded copy (float64)."""


@overload(copy_max)
def _copy_max(seg, buf):
    if (
        seg.dtype == types.float32
        and seg.layout == "C"
        and buf.dtype == types.float64
        and buf.layout == "C"
    ):
        return lambda seg, buf: _copy_max_f32(seg, buf)

    def impl(seg, buf):
        n = seg.shape[0]
        n16 = (n + 15) & ~15
        if n16 > 0:
            # The last 16 entries first (two fixed-size vector stores; a loop over n..n16
            # became a scatter), then the row over them.
            tail = buf[n16 - 16 : n16]
            for k in range(16):
                tail[k] = -np.inf
        for k in range(n):
            buf[k] = seg[k]
        return np.float64(block_max(buf, n16))

    return impl


@intrinsic
def _copy_max_index_f64(typingctx, seg, buf):
    """Copy the float64 ``seg`` into ``buf`` padded with -inf to a multiple of 16 entries, and
    return (m, j): m its ``row_max`` and j the first position of m's bit pattern (len(seg) if
    none). One pass, 8 lanes, two independent chains.

    Each lane keeps the largest order-mapped image it has seen and the position where it first
    saw it (updated only on a strictly larger image, positions visited in increasing order);
    at the end m is the largest image over the lanes and j the smallest position among the
    lanes that hold it. For m other than a zero or a NaN, bit equality is float equality, so j
    is ``first_index(seg, m)``; ``copy_max_index`` redoes the two other cases. The last
    n % 8 entries are one masked load whose empty lanes read -inf.
    """
    if not (_c_vector(seg, types.float64) and _c_vector(buf, types.float64)):
        return None
    sig = types.Tuple((types.float64, types.int64))(seg, buf)

    def codegen(context, builder, signature, args):
        i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
        f64 = ir.DoubleType()
        vd, vi = ir.VectorType(f64, 8), ir.VectorType(i64, 8)
        seg_ary = context.make_array(signature.args[0])(context, builder, args[0])
        src = seg_ary.data
        n = builder.extract_value(seg_ary.shape, 0)
        dst = context.make_array(signature.args[1])(context, builder, args[1]).data
        neg_inf = ir.Constant(vd, [float("-inf")] * 8)
        lanes = ir.Constant(vi, list(range(8)))
        none = _splat(vi, 2**63 - 1)

        def store(v, at):
            ptr = builder.bitcast(builder.gep(dst, [at]), vd.as_pointer())
            builder.store(v, ptr, align=8)  # buf is only 8-byte aligned

        def splat_i64(value):
            v = builder.insert_element(ir.Constant(vi, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, 8), [0] * 8))

        def step(v, at, best, where):
            store(v, at)
            image = _order_map_ir(builder, builder.bitcast(v, vi))
            gt = builder.icmp_signed(">", image, best)
            position = builder.add(splat_i64(at), lanes)
            return builder.select(gt, image, best), builder.select(gt, position, where)

        # -inf in the last 16 entries of the padded length first; the copy overwrites the rest.
        n16 = builder.and_(builder.add(n, ir.Constant(i64, 15)), ir.Constant(i64, ~15))
        pad = builder.append_basic_block("copymaxidx.pad")
        main = builder.append_basic_block("copymaxidx.main")
        builder.cbranch(builder.icmp_signed(">", n16, ir.Constant(i64, 0)), pad, main)
        builder.position_at_end(pad)
        store(neg_inf, builder.sub(n16, ir.Constant(i64, 16)))
        store(neg_inf, builder.sub(n16, ir.Constant(i64, 8)))
        builder.branch(main)
        builder.position_at_end(main)

        start = _splat(vi, _neg_inf_image(64))
        full16 = builder.and_(n, ir.Constant(i64, ~15))

        def body16(i, carried):
            b0, w0, b1, w1 = carried
            p0 = builder.bitcast(builder.gep(src, [i]), vd.as_pointer())
            b0, w0 = step(builder.load(p0, align=8), i, b0, w0)
            i8 = builder.add(i, ir.Constant(i64, 8))
            p1 = builder.bitcast(builder.gep(src, [i8]), vd.as_pointer())
            b1, w1 = step(builder.load(p1, align=8), i8, b1, w1)
            return [b0, w0, b1, w1]

        b0, w0, b1, w1 = _vector_loop(builder, full16, 16, [start, none, start, none], body16)
        # Merge the chains: chain 1's positions follow chain 0's within each 16-entry step,
        # so on equal images the smaller position is kept explicitly.
        take1 = builder.or_(
            builder.icmp_signed(">", b1, b0),
            builder.and_(builder.icmp_signed("==", b1, b0), builder.icmp_signed("<", w1, w0)),
        )
        best = builder.select(take1, b1, b0)
        where = builder.select(take1, w1, w0)

        def eight(values):  # one more full vector when 8 or more entries are left
            p8 = builder.bitcast(builder.gep(src, [full16]), vd.as_pointer())
            return step(builder.load(p8, align=8), full16, *values)

        rest = builder.sub(n, full16)  # 0 .. 15
        more = builder.icmp_signed(">=", rest, ir.Constant(i64, 8))
        best, where = _guarded_ir(builder, more, [best, where], eight)

        full = builder.and_(n, ir.Constant(i64, ~7))
        left = builder.sub(n, full)  # 0 .. 7

        def tail(values):  # the last n % 8 entries: a masked load, -inf in the empty lanes
            active = builder.icmp_signed("<", lanes, splat_i64(left))
            fnty = ir.FunctionType(vd, [vd.as_pointer(), i32, ir.VectorType(i1, 8), vd])
            mload = cgutils.get_or_insert_function(
                builder.module, fnty, "llvm.masked.load.v8f64.p0v8f64"
            )
            ptr = builder.bitcast(builder.gep(src, [full]), vd.as_pointer())
            v = builder.call(mload, [ptr, ir.Constant(i32, 8), active, neg_inf])
            return step(v, full, *values)

        any_left = builder.icmp_signed(">", left, ir.Constant(i64, 0))
        best_f, where_f = _guarded_ir(builder, any_left, [best, where], tail)

        # The largest image over the lanes, then the smallest position holding it.
        top = builder.extract_element(best_f, ir.Constant(i32, 0))
        for k in range(1, 8):
            top = _imax_ir(builder, top, builder.extract_element(best_f, ir.Constant(i32, k)))
        found = builder.icmp_signed("==", best_f, splat_i64(top))
        cand = builder.select(found, where_f, none)
        j = builder.extract_element(cand, ir.Constant(i32, 0))
        for k in range(1, 8):
            c = builder.extract_element(cand, ir.Constant(i32, k))
            j = builder.select(builder.icmp_signed("<", c, j), c, j)
        j = builder.select(builder.icmp_signed("<", j, n), j, n)
        m = builder.bitcast(_order_map_ir(builder, top), f64)
        return context.make_tuple(builder, signature.return_type, [m, j])

    return sig, codegen


def copy_max_index(seg, buf):
    """``(copy_max(seg, buf), first_index(seg, m))`` in one pass where it can (float64 rows
    and buffers): the copy, the maximum and its first position together."""


@overload(copy_max_index)
def _copy_max_index(seg, buf):
    if (
        seg.dtype == types.float64
        and seg.layout == "C"
        and buf.dtype == types.float64
        and buf.layout == "C"
    ):

        def fused(seg, buf):
            m, j = _copy_max_index_f64(seg, buf)
            if m == 0.0 or m == -np.inf:  # the first zero of either sign (-0.0 == +0.0);
                j = first_index(seg, m)  # -inf is never a lane's update
            elif m != m:  # a NaN equals nothing
                j = seg.shape[0]
            return m, j

        return fused

    def impl(seg, buf):
        m = copy_max(seg, buf)
        return m, first_index(seg, m)

    return impl


def block_max(buf, n):
    """``row_max(buf[:n])`` for a block buffer whose length n is a multiple of 16."""


@overload(block_max)
def _block_max(buf, n):
    if buf.dtype == types.float64 and buf.layout == "C":
        return lambda buf, n: _lanes8_max_f64(buf, n)
    return lambda buf, n: row_max(buf[:n])


# ---------------------------------------------------------------------------------------------
# Eight short rows at once, one row per vector lane (rows of at most 16 classes).
#
# ``cols`` is a column-major tile: cols[8 c + l] is column c of row l, 16 columns (a row's
# block buffer, padded with -inf). Per lane, these compute exactly what ``block_max`` and
# ``sum8`` compute on that row's padded 16-entry buffer, so the values are the same bits.


def _lanes_signature(cols: Any, out: Any) -> Any:
    """void(cols, out) for two 1-D C-contiguous float64 arrays, else None (not typed)."""
    if not (_c_vector(cols, types.float64) and _c_vector(out, types.float64)):
        return None
    return types.void(cols, out)


def _lanes_pointers(context: Any, builder: Any, signature: Any, args: Any) -> tuple[Any, Any]:
    """The data pointers of the (cols, out) arguments."""
    data = context.make_array(signature.args[0])(context, builder, args[0]).data
    dest = context.make_array(signature.args[1])(context, builder, args[1]).data
    return data, dest


@intrinsic
def lanes_max16(typingctx, cols, out):
    """out[l] = block_max of lane l's 16 entries (the same integer max over order-mapped bit
    patterns, which is order-independent)."""
    sig = _lanes_signature(cols, out)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vd = ir.VectorType(ir.DoubleType(), 8)
        vi = ir.VectorType(i64, 8)
        data, dest = _lanes_pointers(context, builder, signature, args)
        best = _splat(vi, _neg_inf_image(64))
        for c in range(16):
            ptr = builder.bitcast(builder.gep(data, [ir.Constant(i64, 8 * c)]), vd.as_pointer())
            bits = builder.bitcast(builder.load(ptr, align=8), vi)
            best = _imax_ir(builder, _order_map_ir(builder, bits), best)
        back = _order_map_ir(builder, best)
        out_ptr = builder.bitcast(dest, vd.as_pointer())
        builder.store(builder.bitcast(back, vd), out_ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def lanes_sum16(typingctx, cols, out):
    """out[l] = sum8 of lane l's 16 entries: a_j = (0 + e_j) + e_(j+8) for j < 8, then
    ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)), then + 0.0 (sum8's empty tail)."""
    sig = _lanes_signature(cols, out)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vd = ir.VectorType(ir.DoubleType(), 8)
        data, dest = _lanes_pointers(context, builder, signature, args)
        zero = ir.Constant(vd, [0.0] * 8)

        def column(c):
            ptr = builder.bitcast(builder.gep(data, [ir.Constant(i64, 8 * c)]), vd.as_pointer())
            return builder.load(ptr, align=8)

        a = [builder.fadd(builder.fadd(zero, column(j)), column(j + 8)) for j in range(8)]
        left = builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3]))
        right = builder.fadd(builder.fadd(a[4], a[5]), builder.fadd(a[6], a[7]))
        total = builder.fadd(builder.fadd(left, right), zero)
        builder.store(total, builder.bitcast(dest, vd.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def lane_sum16(cols, lane):
    """``lanes_sum16`` for one lane, in scalar arithmetic (the same operations in the same
    order)."""
    a0 = (0.0 + cols[lane]) + cols[64 + lane]
    a1 = (0.0 + cols[8 + lane]) + cols[72 + lane]
    a2 = (0.0 + cols[16 + lane]) + cols[80 + lane]
    a3 = (0.0 + cols[24 + lane]) + cols[88 + lane]
    a4 = (0.0 + cols[32 + lane]) + cols[96 + lane]
    a5 = (0.0 + cols[40 + lane]) + cols[104 + lane]
    a6 = (0.0 + cols[48 + lane]) + cols[112 + lane]
    a7 = (0.0 + cols[56 + lane]) + cols[120 + lane]
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + 0.0
