"""Layout metrics of a permutation over W (vectorised, O(nnz)).

``cut_g``: fraction of W's weight crossing contiguous g-blocks (the block cost C);
``modularity``: Newman Q of the contiguous g-blocks (``q_intra`` = 1 − cut_g is the
paper-style intra-block fraction); ``linear_arrangement``: Σ W_ij·|pos_i −
pos_j| / (Σ W_ij · n); ``lines_per_access``: mean distinct g-blocks an access touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from icd_core.layout.permutations import inverse


def _blocks(perm: np.ndarray, g: int) -> np.ndarray:
    return inverse(np.asarray(perm, dtype=np.int64)) // g


def cut_g(w: sp.csr_matrix, perm: np.ndarray, g: int) -> float:
    coo = w.tocoo()
    total = float(coo.data.sum())
    if total == 0:
        return 0.0
    block = _blocks(perm, g)
    return float(coo.data[block[coo.row] != block[coo.col]].sum() / total)


def partition_modularity(w: sp.csr_matrix, labels: np.ndarray) -> float:
    """Newman modularity of any partition (``labels[i]``: the part of node i)."""
    coo = w.tocoo()
    two_m = float(coo.data.sum())
    if two_m == 0:
        return 0.0
    labels = np.asarray(labels, dtype=np.int64)
    inside = coo.data[labels[coo.row] == labels[coo.col]].sum() / two_m
    degree = np.asarray(w.sum(axis=1)).ravel()
    part_degree = np.bincount(labels, weights=degree) / two_m
    return float(inside - np.square(part_degree).sum())


def modularity(w: sp.csr_matrix, perm: np.ndarray, g: int) -> float:
    """Newman modularity of the contiguous g-blocks of the layout."""
    return partition_modularity(w, _blocks(perm, g))


def linear_arrangement(w: sp.csr_matrix, perm: np.ndarray) -> float:
    coo = w.tocoo()
    total = float(coo.data.sum())
    n = w.shape[0]
    if total == 0 or n < 2:
        return 0.0
    pos = inverse(np.asarray(perm, dtype=np.int64))
    return float((coo.data * np.abs(pos[coo.row] - pos[coo.col])).sum() / (total * n))


def lines_per_access(accesses: Sequence[np.ndarray], perm: np.ndarray, g: int) -> float | None:
    if not accesses:
        return None
    block = _blocks(perm, g)
    return float(np.mean([len(np.unique(block[np.asarray(a)])) for a in accesses]))


def layout_metrics(w: sp.csr_matrix, perm: np.ndarray, g: int,
                   accesses: Sequence[np.ndarray] | None = None) -> dict[str, float | None]:
    """All metrics of one layout, as reported in ``metrics.json``."""
    return {
        "C": cut_g(w, perm, g),
        "Q": modularity(w, perm, g),
        "la": linear_arrangement(w, perm),
        "lines_per_access": lines_per_access(accesses or (), perm, g),
    }


def fit_stats(w: sp.csr_matrix, perm: np.ndarray, g: int, *, method: str, time_s: float,
              timed_out: bool = False, **extra: object) -> dict[str, object]:
    """The stats a solver returns with π: C and Q before/after, la, timing, flags."""
    start = np.arange(w.shape[0])
    before, after = cut_g(w, start, g), cut_g(w, perm, g)
    stats: dict[str, object] = {
        "method": method, "block": g, "C_initial": before, "C": after,
        "Q_initial": modularity(w, start, g), "Q": modularity(w, perm, g), "Q_intra": 1.0 - after,
        "la": linear_arrangement(w, perm), "improved": after < before,
        "time_s": time_s, "timed_out": timed_out,
    }
    stats.update(extra)
    return stats
