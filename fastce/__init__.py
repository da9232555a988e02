"""fastce: fast, exact and numerically stable cross-entropy, KL divergence and entropy.

Numba-compiled, parallel kernels behind a NumPy-in, NumPy-out API. Importing fastce compiles
nothing; each kernel is compiled on first use and cached on disk.
"""

from ._version import __version__
from .accumulator import Accumulator, Result
from .comparison import Comparison, ComparisonResult, Distribution, compare
from .losses import (
    binary_cross_entropy,
    cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    log_softmax,
    logsumexp,
    perplexity,
    softmax,
)
from .scoring import score_file
from .sklearn import log_loss

__all__ = [
    "Accumulator",
    "Comparison",
    "ComparisonResult",
    "Distribution",
    "Result",
    "__version__",
    "binary_cross_entropy",
    "compare",
    "cross_entropy",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "log_loss",
    "log_softmax",
    "logsumexp",
    "perplexity",
    "score_file",
    "softmax",
]
