"""Kernighan–Lin refinement of many bisections at once.

Every segment was split into side 0 / side 1 of fixed sizes. A pass computes each node's
gain ``D = external − internal`` (weight to the other side minus weight to its own), pairs
the i-th best node of side 0 with the i-th best of side 1, scores pairs exactly for their
shared edge (``D_a + D_b − 2·w_ab``), and applies the best prefix of swaps per segment. The
exact change of each segment's cut is then computed from the moved nodes' edges only; a
segment whose cut did not fall is reverted and leaves the loop (its next proposal would be
the same), the others go on for up to ``passes`` passes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_NONE = np.iinfo(np.int64).max


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """Rank of each element within its run of equal ``keys`` (keys already sorted)."""
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    return np.arange(keys.size) - np.repeat(starts, np.diff(np.r_[starts, keys.size]))


def edges_of(w: sp.csr_matrix, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, weight) of every stored entry in the rows ``nodes``."""
    starts = w.indptr[nodes]
    lengths = w.indptr[nodes + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    idx = np.arange(lengths.sum()) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return np.repeat(nodes, lengths), w.indices[idx], w.data[idx]


def cut_changes(w: sp.csr_matrix, moved: np.ndarray, old: np.ndarray,
                new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, weighted change of the cut) for every stored entry in the rows ``moved``, when
    the part of each node goes from ``old`` to ``new``. Summed, they give the change of the
    cut weight: an edge between two moved nodes is seen from both ends, others from one
    end only (hence the factor 2)."""
    r, c, x = edges_of(w, moved)
    is_moved = np.zeros(old.size, dtype=bool)
    is_moved[moved] = True
    change = (new[r] != new[c]).astype(np.float64) - (old[r] != old[c])
    return r, change * x * np.where(is_moved[c], 1.0, 2.0)


def _pairs(gain: np.ndarray, side: np.ndarray, seg: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The i-th best node of side 0 matched with the i-th best of side 1, per segment."""
    order = candidates[np.lexsort((candidates, -gain[candidates], side[candidates], seg[candidates]))]
    rank = _group_rank(seg[order] * 2 + side[order])
    is_zero = side[order] == 0
    zero, one = order[is_zero], order[~is_zero]
    span = side.size + 1
    key0, key1 = seg[zero] * span + rank[is_zero], seg[one] * span + rank[~is_zero]
    if key1.size == 0:
        return zero[:0], one[:0]
    hit = np.minimum(np.searchsorted(key1, key0), key1.size - 1)
    matched = key1[hit] == key0
    return zero[matched], one[hit[matched]]


def _best_prefix(pair_gain: np.ndarray, pair_seg: np.ndarray, nseg: int) -> np.ndarray:
    """Mask of the pairs in each segment's best positive prefix (pairs grouped by segment)."""
    csum = np.cumsum(pair_gain)
    starts = np.r_[0, np.flatnonzero(np.diff(pair_seg)) + 1]
    before = np.repeat(np.r_[0.0, csum[starts[1:] - 1]], np.diff(np.r_[starts, pair_seg.size]))
    prefix = csum - before
    best = np.zeros(nseg)
    np.maximum.at(best, pair_seg, prefix)
    position = np.arange(pair_seg.size)
    first = np.full(nseg, _NONE)
    reach = (prefix >= best[pair_seg] - 1e-12) & (best[pair_seg] > 1e-12)
    np.minimum.at(first, pair_seg, np.where(reach, position, _NONE))
    return (position <= first[pair_seg]) & (best[pair_seg] > 1e-12)


def refine_bisections(w: sp.csr_matrix, seg: np.ndarray, nseg: int, side: np.ndarray,
                      passes: int) -> np.ndarray:
    """Improve ``side`` (0/1 per node, sizes per segment kept) within each segment of ``w``.

    ``w``: CSR holding only intra-segment edges (both directions); rows follow ``seg``.
    """
    n = side.size
    side = side.copy()
    w = w.tocsr()
    live = np.ones(nseg, dtype=bool)
    for _ in range(passes):
        candidates = np.flatnonzero(live[seg])
        if candidates.size == 0:
            break
        r, c, x = edges_of(w, candidates)
        same = side[r] == side[c]
        gain = np.bincount(r, weights=np.where(same, -x, x), minlength=n)
        a, b = _pairs(gain, side, seg, candidates)
        if a.size == 0:
            break
        pair_gain = gain[a] + gain[b] - 2 * np.asarray(w[a, b]).ravel()
        accept = _best_prefix(pair_gain, seg[a], nseg)
        if not accept.any():
            break
        moved = np.concatenate([a[accept], b[accept]])
        trial = side.copy()
        trial[moved] ^= 1
        r, change = cut_changes(w, moved, side, trial)
        delta = np.bincount(seg[r], weights=change, minlength=nseg)
        better = delta < -1e-9
        if not better.any():
            break
        side = np.where(better[seg], trial, side)
        live &= better
    return side
