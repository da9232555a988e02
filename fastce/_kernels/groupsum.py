"""Exact per-group sums in a compact form: only the bins each group uses, in canonical form.

A dense superaccumulator pair (``exactsum``) is 2 x 17 KiB whatever it holds; a million of them
would be 35 GB. A *group state* keeps, for every group, only the nonzero entries of its pair,
as two parallel int64 arrays sorted by key::

    key = group * KEY_GROUP + which * KEY_WHICH + slot     (which 0: values, 1: weights)
    val = the entry of that accumulator row at ``slot``

Bins (``1 <= slot < N_BINS``) are stored in ``acc_normalize``'s canonical form: the exact
integer's signed 32-bit digits in bins 32 i + 1, so a group whose values lie within a few
binades needs two or three bins per row, and two states holding the same exact sums are equal
entry by entry (so their bytes are). Flags (``slot >= N_BINS``) are stored as 1 where set. Only
a sum beyond about 2**1100 (more than 2**78 values near DBL_MAX) has no canonical form: its
group is then kept as the carried bins of its dense row, still exact.

Merging two states adds equal keys (two entries within the bin limit cannot overflow int64),
carries any bin beyond the limit 32 bins up, and writes the group back in canonical form; the
value of a group is its rows rebuilt into a scratch pair and read with ``acc_value_range``, the
code of ``acc_value``, so the result has the bits of the dense accumulator's.
"""

import numpy as np
from numba import njit

from .exactsum import (
    ACC_LEN,
    FLAG_NAN,
    MAX_CANONICAL_LIMB,
    N_BINS,
    N_FLAGS,
    N_LIMBS,
    _bin_of,
    _carry,
    acc_add,
    acc_value_range,
    group_order,
    to_limbs_range,
)

KEY_WHICH = 4096
KEY_GROUP = 2 * KEY_WHICH
MAX_GROUPS = (2**63 - 1) // KEY_GROUP
"""Group ids must be below this (2**50) for their keys to fit int64."""

_BIN_LIMIT = np.int64((1 << 62) - 1)
# A bin's carries climb 32 bins at a time, at most four levels (see exactsum's layout).
_CARRY_REACH = 4 * 32 + 1


@njit(cache=True)
def _room(keys, vals, n, need):
    """``keys``/``vals`` with room for ``need`` more entries after the first ``n``."""
    if n + need <= keys.shape[0]:
        return keys, vals
    size = max(2 * keys.shape[0], n + need)
    k = np.empty(size, np.int64)
    v = np.empty(size, np.int64)
    k[:n] = keys[:n]
    v[:n] = vals[:n]
    return k, v


@njit(cache=True)
def _emit(row, lo, hi, base, keys, vals, n, limbs):
    """Append the entries of the dense ``row`` (nonzero bins only within ``lo <= e < hi``) with
    keys ``base + slot``, canonical where the sum has a canonical form, and clear the row.
    Returns ``(keys, vals, n)``."""
    keys, vals = _room(keys, vals, n, max(MAX_CANONICAL_LIMB + 1, hi - lo) + N_FLAGS)
    sign = to_limbs_range(row, lo, hi, limbs)
    canonical = True
    for i in range(MAX_CANONICAL_LIMB + 1, N_LIMBS):
        if limbs[i] != 0:
            canonical = False
    if canonical:
        for i in range(MAX_CANONICAL_LIMB + 1):
            if limbs[i] != 0:
                keys[n] = base + 32 * i + 1
                vals[n] = sign * limbs[i]
                n += 1
    else:
        for e in range(lo, hi):
            if row[e] != 0:
                keys[n] = base + e
                vals[n] = row[e]
                n += 1
    for f in range(N_BINS, N_BINS + N_FLAGS):
        if row[f] != 0:
            keys[n] = base + f
            vals[n] = 1
            n += 1
    for e in range(lo, hi):
        row[e] = 0
    for f in range(N_BINS, ACC_LEN):
        row[f] = 0
    return keys, vals, n


@njit(nogil=True, cache=True)
def group_state(groups, values, weights, n_groups):
    """The group state of samples ``(groups[k], values[k], weights[k])`` (weight 1 for every
    sample where ``weights`` is empty; a negative group leaves the sample out), and the number
    of samples of each group ``0 .. n_groups - 1``: ``(keys, vals, counts)``.

    As ``exactsum.group_sums``: a counting sort of the samples by group, one accumulator pair
    cleared after each group over the bins it touched; each group's rows are emitted instead of
    rounded.
    """
    start, order = group_order(groups, n_groups)
    counts = np.empty(n_groups, np.int64)
    acc = np.zeros((2, ACC_LEN), np.int64)
    limbs = np.empty(N_LIMBS, np.int64)
    weighted = weights.shape[0] > 0
    keys = np.empty(4 * n_groups + 16, np.int64)
    vals = np.empty(4 * n_groups + 16, np.int64)
    m = 0
    for g in range(n_groups):
        counts[g] = start[g + 1] - start[g]
        if counts[g] == 0:
            continue
        lo = N_BINS
        hi = 0
        for j in range(start[g], start[g + 1]):
            k = order[j]
            w = weights[k] if weighted else 1.0
            acc_add(acc[0], values[k])
            acc_add(acc[1], w)
            b = _bin_of(values[k])
            b2 = _bin_of(w)
            lo = min(lo, b, b2)
            hi = max(hi, b, b2)
        hi = min(N_BINS, hi + _CARRY_REACH)
        keys, vals, m = _emit(acc[0], lo, hi, g * KEY_GROUP, keys, vals, m, limbs)
        keys, vals, m = _emit(acc[1], lo, hi, g * KEY_GROUP + KEY_WHICH, keys, vals, m, limbs)
    return keys[:m].copy(), vals[:m].copy(), counts


@njit(cache=True)
def _scatter(keys, vals, i, end, acc, lo, hi):
    """Add the entries ``i .. end - 1`` (one group's) into the dense pair ``acc``, carrying a
    bin that passes the limit; returns the bin range ``(lo, hi)`` widened to what they touch."""
    for j in range(i, end):
        which = (keys[j] // KEY_WHICH) & 1
        slot = keys[j] & (KEY_WHICH - 1)
        if slot >= N_BINS:
            acc[which, slot] = 1
            continue
        b = acc[which, slot] + vals[j]  # two entries within the limit: no overflow
        acc[which, slot] = b
        if b > _BIN_LIMIT or b < -_BIN_LIMIT:
            _carry(acc[which], slot)
        lo = min(lo, slot)
        hi = max(hi, slot + 1)
    return lo, hi


@njit(cache=True)
def _group_end(keys, i, g):
    """The first position at or after ``i`` whose key is not in group ``g``."""
    while i < keys.shape[0] and keys[i] // KEY_GROUP == g:
        i += 1
    return i


@njit(nogil=True, cache=True)
def merge_states(keys_a, vals_a, keys_b, vals_b):
    """The group state of the exact sums of two group states: ``(keys, vals)``.

    A group held by one side is copied; one held by both is added in a dense scratch pair and
    emitted again in canonical form, so the result does not depend on the order of merges.
    """
    na, nb = keys_a.shape[0], keys_b.shape[0]
    keys = np.empty(na + nb + 16, np.int64)
    vals = np.empty(na + nb + 16, np.int64)
    acc = np.zeros((2, ACC_LEN), np.int64)
    limbs = np.empty(N_LIMBS, np.int64)
    big = np.int64(2**62)
    i = j = m = 0
    while i < na or j < nb:
        ga = keys_a[i] // KEY_GROUP if i < na else big
        gb = keys_b[j] // KEY_GROUP if j < nb else big
        if ga != gb:
            if ga < gb:
                end = _group_end(keys_a, i, ga)
                keys, vals = _room(keys, vals, m, end - i)
                keys[m : m + end - i] = keys_a[i:end]
                vals[m : m + end - i] = vals_a[i:end]
                m += end - i
                i = end
            else:
                end = _group_end(keys_b, j, gb)
                keys, vals = _room(keys, vals, m, end - j)
                keys[m : m + end - j] = keys_b[j:end]
                vals[m : m + end - j] = vals_b[j:end]
                m += end - j
                j = end
            continue
        end_a = _group_end(keys_a, i, ga)
        end_b = _group_end(keys_b, j, gb)
        lo, hi = _scatter(keys_a, vals_a, i, end_a, acc, N_BINS, 1)
        lo, hi = _scatter(keys_b, vals_b, j, end_b, acc, lo, hi)
        lo = min(lo, hi)
        hi = min(N_BINS, hi + _CARRY_REACH)
        base = ga * KEY_GROUP
        keys, vals, m = _emit(acc[0], lo, hi, base, keys, vals, m, limbs)
        keys, vals, m = _emit(acc[1], lo, hi, base + KEY_WHICH, keys, vals, m, limbs)
        i, j = end_a, end_b
    return keys[:m].copy(), vals[:m].copy()


@njit(nogil=True, cache=True)
def state_sums(keys, vals, sums, wsums):
    """Each group's two exact sums correctly rounded to float64, as ``acc_value`` gives them:
    ``sums[g]`` of its values, ``wsums[g]`` of its weights (0.0 for a group with no entries)."""
    sums[:] = 0.0
    wsums[:] = 0.0
    acc = np.zeros((2, ACC_LEN), np.int64)
    limbs = np.empty(N_LIMBS, np.int64)
    i = 0
    while i < keys.shape[0]:
        g = keys[i] // KEY_GROUP
        end = _group_end(keys, i, g)
        lo, hi = _scatter(keys, vals, i, end, acc, N_BINS, 1)
        lo = min(lo, hi)
        sums[g] = acc_value_range(acc[0], lo, hi, limbs)
        wsums[g] = acc_value_range(acc[1], lo, hi, limbs)
        for w in range(2):
            acc[w, lo:hi] = 0
            acc[w, FLAG_NAN:] = 0
        i = end
    return sums, wsums


@njit(nogil=True, cache=True)
def check_state(keys, vals, n_groups):
    """-1 when ``(keys, vals)`` is a well-formed group state of groups below ``n_groups`` (keys
    strictly increasing, slots in range, bins within the limit, flags 1), else the position of
    the first bad entry."""
    for j in range(keys.shape[0]):
        k = keys[j]
        slot = k & (KEY_WHICH - 1)
        if k < 0 or k // KEY_GROUP >= n_groups or (j > 0 and k <= keys[j - 1]):
            return j
        if slot == 0 or slot >= N_BINS + N_FLAGS:
            return j
        if slot >= N_BINS and vals[j] != 1:
            return j
        if vals[j] == 0 or vals[j] > _BIN_LIMIT or vals[j] < -_BIN_LIMIT:
            return j
    return -1
