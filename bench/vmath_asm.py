"""Does each fastce._kernels.vmath function vectorise?  Counts instructions in the assembly.

For each function and dtype, compiles ``for i in range(n): out[i] = f(x[i])`` with no
fast-math flag (``--fastmath`` adds the NaN-keeping flag set) and counts, in the whole function
and in its hottest block (the basic block with the most packed arithmetic, i.e. the vector
loop body; the one with the most scalar arithmetic if nothing is packed):

* packed arithmetic on zmm / ymm / xmm registers (``v{add,sub,mul,div,min,max,rndscale,
  fmadd...}{pd,ps}`` and friends),
* scalar arithmetic (``...sd`` / ``...ss``): the remainder loop that handles the last
  ``n % vector_width`` elements runs the same function one element at a time,
* FMA instructions: the functions use them by design (an explicit ``llvm.fma``, the same
  bits everywhere; ``exp64_lite`` too), and ``math.exp`` / ``math.log`` none,
* calls to libm's exp/log (there must be none),
* in the hottest block, every instruction on ymm/zmm registers ("all vec": the packed
  arithmetic plus integer operations, compares, blends, loads and stores), which is closer to
  the issue cost than the arithmetic alone.

The baselines ``math.exp`` / ``math.log`` show what Numba makes of libm: scalar calls.

LLVM picks the vector width from the host CPU's tuning: Intel cores with AVX-512 (Skylake-X ..
Sapphire Rapids; LLVM names this VM's CPU 'rocketlake') are tuned to prefer 256-bit vectors
(ymm), AMD Zen 4 uses zmm.  ``NUMBA_CPU_NAME=znver4`` shows the Zen 4 tuning (Numba keeps the
host's feature list unless ``NUMBA_CPU_FEATURES`` is set too).  On an Intel host, zmm code
comes from appending ``,-prefer-256-bit`` to the host features:
``NUMBA_CPU_FEATURES="$(python -c 'import llvmlite.binding as b;
print(b.get_host_cpu_features().flatten())'),-prefer-256-bit"`` (measured here: exp32 and
exp64 1.4-1.5x faster in cache).

Usage: python bench/vmath_asm.py [--fastmath]
"""

import math
import pathlib
import re
import sys
from collections import Counter

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from fastce._kernels import vmath

FASTMATH_FLAGS = {"reassoc", "contract", "arcp", "nsz", "afn"}

ARITH = r"(?:add|sub|mul|div|min|max|sqrt|rndscale|round|fn?m(?:add|sub)\d{3})"
PACKED = re.compile(rf"^\s*v{ARITH}p[sd]\s+(.*)$")
SCALAR = re.compile(rf"^\s*v{ARITH}s[sd]\s")
FMA = re.compile(r"^\s*vfn?m(?:add|sub)")
LIBM = re.compile(r"\$(exp|log|log1p|expm1)f?\b")
VECTOR = re.compile(r"^\s*v\w+\s[^#]*%[yz]mm")  # any ymm/zmm instruction: int, blend, cmp too


def _math_exp(x):
    return math.exp(x)


def _math_log(x):
    return math.log(x)


def make_loop(fn, fastmath):
    # fn must be a closure variable (a global in effect): as a default argument it would be a
    # first-class function value, called through a pointer and never inlined.
    @njit(fastmath=fastmath)
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return loop


def count(asm):
    """Counters for the whole function and for its hottest basic block."""
    total, blocks, current = Counter(), [], Counter()
    for line in asm.splitlines():
        if re.match(r"^[.\w$]+:", line):  # a label starts a new basic block
            blocks.append(current)
            current = Counter()
            continue
        m = PACKED.match(line)
        for c in (total, current):
            if m:
                reg = re.search(r"%([xyz])mm", m.group(1))
                c[f"packed_{reg.group(1) if reg else 'x'}mm"] += 1
            elif SCALAR.match(line):
                c["scalar"] += 1
            if FMA.match(line):
                c["fma"] += 1
            if LIBM.search(line):
                c["libm_calls"] += 1
            if VECTOR.match(line):
                c["vector_all"] += 1
    blocks.append(current)
    hot = max(
        blocks, key=lambda c: (c["packed_zmm"] + c["packed_ymm"] + c["packed_xmm"], c["scalar"])
    )
    return total, hot


def main():
    fastmath = FASTMATH_FLAGS if "--fastmath" in sys.argv else False
    print(
        f"numba {numba.__version__}, host CPU {llvm.get_host_cpu_name()!r}, "
        f"target {numba.config.CPU_NAME or 'host'!r}, fastmath={fastmath or 'off'}"
    )
    names64 = ("exp64_fma", "exp64_lite", "log64_fma", "log1p64_fma")
    cases = [(name, np.float64) for name in names64]
    cases += [("exp32_fma", np.float32), ("log1p32_fma", np.float32)]
    cases += [("math.exp", np.float64), ("math.log", np.float64)]
    header = (
        "function",
        "zmm",
        "ymm",
        "xmm",
        "scalar",
        "fma",
        "libm",
        "| hot:zmm",
        "ymm",
        "scalar",
        "fma",
        "all vec",
    )
    print("{:<13}{:>6}{:>6}{:>6}{:>8}{:>6}{:>6}{:>10}{:>6}{:>8}{:>6}{:>9}".format(*header))
    for name, dtype in cases:
        fn = {"math.exp": _math_exp, "math.log": _math_log}.get(name) or getattr(vmath, name)
        fn = njit(inline="always")(fn) if name.startswith("math.") else fn

        loop = make_loop(fn, fastmath)
        x = np.ones(64, dtype)
        loop(x, np.empty_like(x))
        total, hot = count(loop.inspect_asm(loop.signatures[0]))
        print(
            f"{name:<13}{total['packed_zmm']:>6}{total['packed_ymm']:>6}{total['packed_xmm']:>6}"
            f"{total['scalar']:>8}{total['fma']:>6}{total['libm_calls']:>6}"
            f"{hot['packed_zmm']:>10}{hot['packed_ymm']:>6}{hot['scalar']:>8}"
            f"{hot['fma']:>6}{hot['vector_all']:>9}"
        )


if __name__ == "__main__":
    main()
