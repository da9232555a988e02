"""Two models' predictions side by side (``fastce.compare``): each row's KL divergence with the
top class of each model and, against a target, each model's value at the target's class.

The KL of a row is KL's own body (``pair.kl_probs_block``, ``pair.kl_target_logits_block``
with ``both_lse``), so a row's value has the bits of ``kl_divergence``'s; the rest is
written by the body's prologue, which reads the row once more while it is in cache:

* ``top[i] = (argmax of the reference row, argmax of the candidate row)``, NumPy's argmax
  (the first maximum; the first NaN where there is one);
* with class-index targets, ``at[i]`` = each model's log-probability of the target's class
  (logits: ``(x_y - M) - log S``, from the row's log-sum-exp) or its probability (rows of
  probabilities, as given); NaN for a label outside the row (an ignored one).

The launcher (``_launch.run``, ``writes=``) passes ``top`` and ``at`` as operands that the
kernel writes, a chunk of rows at a time. A masked-out row's entries are left unwritten.
"""

import numpy as np
from numba import njit

from ._driver import Body, row_kernels, same_params
from ._math import any_nan, first_index, row_max
from .pair import both_lse, kl_probs_block, kl_target_logits_block, log_softmax_at
from .partials import sum_finish, sum_merge


@njit(inline="always", cache=True)
def top_class(row):
    """NumPy's ``argmax`` of a row: the first position of its maximum, or of its first NaN (-1
    for an empty row)."""
    n = row.shape[0]
    if n == 0:
        return -1
    if any_nan(row):
        for k in range(n):
            if row[k] != row[k]:
                return k
    return first_index(row, row_max(row))


@njit(inline="always", cache=True)
def top_of_logits(row, lse):
    """``top_class`` of a row of logits whose (M, S, log S) is ``lse``: the first position of
    M, the row's maximum, where the row holds no NaN (S is then not NaN); else ``top_class``."""
    if lse[0] == lse[0] and lse[1] == lse[1] and row.shape[0] > 0:
        return first_index(row, lse[0])
    return top_class(row)


@njit(inline="always", cache=True)
def tops_probs(ops, i, params, buf):
    """Prologue of two rows of probabilities: their top classes."""
    ops[2][i, 0] = top_class(ops[0][i])
    ops[2][i, 1] = top_class(ops[1][i])
    return same_params(ops, i, params, buf)


@njit(inline="always", cache=True)
def tops_logits(ops, i, params, buf):
    """Prologue of two rows of logits: their log-sum-exps, then their top classes."""
    row_params = both_lse(ops, i, params, buf)
    ops[2][i, 0] = top_of_logits(ops[0][i], row_params[3])
    ops[2][i, 1] = top_of_logits(ops[1][i], row_params[4])
    return row_params


@njit(inline="always", cache=True)
def label_of(ops, i):
    """Row i's class index, or -1 where it is outside the row (an ignored label)."""
    y = ops[2][i]
    return y if y >= 0 and y < ops[0].shape[1] else -1


@njit(inline="always", cache=True)
def target_probs(ops, i, params, buf):
    """Prologue of two rows of probabilities with a class index: tops, and p_y of each."""
    ops[3][i, 0] = top_class(ops[0][i])
    ops[3][i, 1] = top_class(ops[1][i])
    y = label_of(ops, i)
    ops[4][i, 0] = np.float64(ops[0][i, y]) if y >= 0 else np.nan
    ops[4][i, 1] = np.float64(ops[1][i, y]) if y >= 0 else np.nan
    return same_params(ops, i, params, buf)


@njit(inline="always", cache=True)
def target_logits(ops, i, params, buf):
    """Prologue of two rows of logits with a class index: tops, the log-sum-exps, and
    log P_y, log Q_y."""
    row_params = both_lse(ops, i, params, buf)
    ops[3][i, 0] = top_of_logits(ops[0][i], row_params[3])
    ops[3][i, 1] = top_of_logits(ops[1][i], row_params[4])
    y = label_of(ops, i)
    if y >= 0:
        ops[4][i, 0] = log_softmax_at(np.float64(ops[0][i, y]), row_params[3])
        ops[4][i, 1] = log_softmax_at(np.float64(ops[1][i, y]), row_params[4])
    else:
        ops[4][i, 0] = np.nan
        ops[4][i, 1] = np.nan
    return row_params


_PARAMS = ("eps", "class_weight", "smoothing")

# Operands (p, x, top): the reference's and the candidate's rows, and the (n, 2) top classes.
KERNELS = row_kernels(
    __name__,
    operands=("p", "x", "top"),
    params=_PARAMS,
    array_params=("class_weight",),
    bodies={
        "compare_probs": Body(kl_probs_block, sum_merge, sum_finish, prologue=tops_probs),
        "compare_logits": Body(
            kl_target_logits_block, sum_merge, sum_finish, prologue=tops_logits
        ),
    },
)

# Operands (p, x, labels, top, at): with class indices, and the (n, 2) values at them.
TARGET_KERNELS = row_kernels(
    __name__,
    operands=("p", "x", "labels", "top", "at"),
    params=_PARAMS,
    array_params=("class_weight",),
    bodies={
        "compare_target_probs": Body(kl_probs_block, sum_merge, sum_finish, prologue=target_probs),
        "compare_target_logits": Body(
            kl_target_logits_block, sum_merge, sum_finish, prologue=target_logits
        ),
    },
)
