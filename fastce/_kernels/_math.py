"""The elementary functions every kernel uses, in one place.

Kernels never call ``math.exp``/``math.log`` directly: they call ``exp``, ``log`` and ``log1p``
from here, so that the implementation (libm today, vectorised polynomials later) is swapped for
every kernel at once. All three take and return float64: kernels accumulate in float64 whatever
the storage dtype.
"""

import math

from numba import njit


@njit(inline="always", cache=True)
def exp(x):
    return math.exp(x)


@njit(inline="always", cache=True)
def log(x):
    return math.log(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan)


@njit(inline="always", cache=True)
def log1p(x):
    return math.log1p(x) if x > -1.0 else (-math.inf if x == -1.0 else math.nan)
