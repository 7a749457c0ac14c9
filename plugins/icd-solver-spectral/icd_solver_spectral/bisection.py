"""Recursive spectral bisection down to g-blocks, one batched level at a time.

At each level every segment longer than g is split at the multiple of g nearest its
middle: nodes are ranked along a direction in the span of the segment's two leading
non-trivial eigenvectors (:mod:`.lanczos`) — the Fiedler vector and rotations of it towards
the next one, keeping per segment the direction whose split cuts least (this matters where
the two eigenvalues are nearly equal, as on grids) — and the split is then improved by
Kernighan–Lin passes (:mod:`.kl`). Segments stay contiguous in the order, so
the result places each g-block's nodes together and sibling blocks side by side.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.toolkit import Deadline

from .kl import refine_bisections
from .lanczos import fiedler_batch


def split_position(start: int, end: int, g: int) -> int | None:
    """The multiple of g inside (start, end) nearest the middle, or None if the segment lies
    within one g-block (positions are global, so blocks stay aligned to the whole order)."""
    first = (start // g + 1) * g
    if first >= end:
        return None
    last = ((end - 1) // g) * g
    middle = (start + end) / 2
    candidate = int(round((middle - first) / g)) * g + first
    return min(max(candidate, first), last)


def shifted_split(start: int, end: int, g: int, offset: int) -> int | None:
    """:func:`split_position` of a segment whose positions are counted from ``offset``."""
    split = split_position(start + offset, end + offset, g)
    return None if split is None else split - offset


def _intra(w: sp.csr_matrix, seg: np.ndarray, nodes: np.ndarray) -> sp.csr_matrix:
    """W among ``nodes`` (re-indexed 0..len-1), keeping only edges inside one segment."""
    sub = w[nodes][:, nodes].tocoo()
    keep = seg[sub.row] == seg[sub.col]
    return sp.csr_matrix((sub.data[keep], (sub.row[keep], sub.col[keep])), shape=(len(nodes), len(nodes)))


ANGLES = np.linspace(0.0, np.pi, 12, endpoint=False)
NEAR_DEGENERATE = 0.1  # relative gap below which rotated directions are tried


def _split_by(f: np.ndarray, seg: np.ndarray, starts: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Side 1 for nodes ranked at or beyond ``cut`` by ``f`` inside their segment."""
    lo = np.minimum.reduceat(f, starts)[seg]
    span = np.maximum(np.maximum.reduceat(f, starts)[seg] - lo, 1e-300)
    ranked = np.argsort(seg + 0.999 * (f - lo) / span, kind="stable")  # segments stay contiguous
    rank = np.arange(f.size) - starts[seg[ranked]]
    side = np.empty(f.size, dtype=np.int64)
    side[ranked] = (rank >= cut[seg[ranked]]).astype(np.int64)
    return side


def best_direction(a: sp.csr_matrix, seg: np.ndarray, nseg: int, pair: np.ndarray, values: np.ndarray,
                   cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, side): the Fiedler split, or — in segments whose two leading eigenvalues are
    nearly equal — the rotation of it whose split cuts the least weight."""
    starts = np.r_[0, np.cumsum(np.bincount(seg, minlength=nseg))[:-1]]
    best_f = pair[0]
    best_side = _split_by(best_f, seg, starts, cut)
    gap = (values[:, 0] - values[:, 1]) / np.maximum(np.abs(values[:, 0]), 1e-12)
    close = gap < NEAR_DEGENERATE
    if not close.any():
        return best_f, best_side
    coo = sp.triu(a, k=1).tocoo()  # each undirected edge once
    inside = close[seg[coo.row]]
    rows, cols, data = coo.row[inside], coo.col[inside], coo.data[inside]

    def cost(side: np.ndarray) -> np.ndarray:
        cross = side[rows] != side[cols]
        return np.bincount(seg[rows[cross]], weights=data[cross], minlength=nseg)

    best_cut = cost(best_side)
    for angle in ANGLES[1:]:
        f = np.cos(angle) * pair[0] + np.sin(angle) * pair[1]
        side = _split_by(f, seg, starts, cut)
        trial = cost(side)
        better = close & (trial < best_cut - 1e-12)
        best_f = np.where(better[seg], f, best_f)
        best_side = np.where(better[seg], side, best_side)
        best_cut = np.where(better, trial, best_cut)
    return best_f, best_side


def steps_for(steps: int, segments: int) -> int:
    """More Lanczos steps where few, large segments make each step cheap per segment and
    their eigenvectors converge slowly (the top levels decide the coarse layout)."""
    return steps * 4 if segments <= 4 else steps * 2 if segments <= 64 else steps


def recursive_bisection(w: sp.csr_matrix, g: int, *, steps: int, passes: int, deadline: Deadline,
                        seed: int, order: np.ndarray | None = None,
                        bounds: list[tuple[int, int]] | None = None, offset: int = 0) -> tuple[np.ndarray, bool, int]:
    """(order, timed_out, levels): ``order[position] = node``.

    ``order`` and ``bounds`` (contiguous [start, end) position ranges) seed the recursion,
    e.g. with clusters whose order is kept; by default one segment holds every node.
    ``offset``: where position 0 lies in a larger layout (a chunk of it), so that g-blocks
    stay aligned to the whole order.
    """
    n = w.shape[0]
    order = np.arange(n) if order is None else np.asarray(order).copy()
    bounds = [(0, n)] if bounds is None else list(bounds)
    levels = 0
    while True:
        splits = {(s, e): shifted_split(s, e, g, offset) for s, e in bounds}
        active = [b for b in bounds if splits[b] is not None]
        if not active:
            return order, False, levels
        if deadline.expired():
            return order, True, levels
        levels += 1
        sizes = np.array([e - s for s, e in active])
        positions = np.concatenate([np.arange(s, e) for s, e in active])
        nodes = order[positions]
        seg = np.repeat(np.arange(len(active)), sizes)
        a = _intra(w, seg, nodes)
        pair, values = fiedler_batch(a, seg, len(active), steps_for(steps, len(active)), seed + levels, vectors=2)
        cut = np.array([splits[b] - b[0] for b in active])
        f, side = best_direction(a, seg, len(active), pair, values, cut)
        if passes:
            side = refine_bisections(a, seg, len(active), side, passes)
        # new order inside each segment: side 0 then side 1, each by Fiedler value
        within = np.lexsort((nodes, f, side, seg))
        order[positions] = nodes[within]
        bounds = [part for b in bounds for part in
                  (((b[0], splits[b]), (splits[b], b[1])) if splits[b] is not None else (b,))]
