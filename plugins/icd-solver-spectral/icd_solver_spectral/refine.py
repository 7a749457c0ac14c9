"""Refinement of a finished layout: block swaps across the whole order, then an
intra-block polish of the linear arrangement.

Block swaps: each node's weight to every neighbouring g-block comes from one sparse product
``W·P`` (P: node → block indicator). A node's best move gain is ``W(i, q) − W(i, own)``. Nodes
that want p → q are paired with nodes that want q → p (best with best), or with the node of
q that is least attached to q; a pair's gain counts their shared edge exactly. All positive
pairs are applied together and the exact change of the cut is computed from the moved
nodes' edges; if it is not an improvement, only the better half is tried, and so on.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.toolkit import Deadline

from .kl import cut_changes

MIN_GAIN = 1e-4  # stop when a pass wins less than this share of the total weight


def _swap_candidates(w: sp.csr_matrix, block: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, gain) of candidate swaps i ↔ j between blocks, best first, nodes used once."""
    n = block.size
    member = sp.csr_matrix((np.ones(n), (np.arange(n), block)), shape=(n, nb))
    conn = (w @ member).tocsr()
    conn.sort_indices()
    row = np.repeat(np.arange(n), np.diff(conn.indptr))
    mine = conn.indices == block[row]
    own = np.zeros(n)
    own[row[mine]] = conn.data[mine]
    gain_all = np.where(mine, -np.inf, conn.data - own[row])
    has = np.diff(conn.indptr) > 0
    row_best = np.full(n, -np.inf)
    row_best[has] = np.maximum.reduceat(gain_all, conn.indptr[:-1][has])
    at_best = np.flatnonzero((gain_all == row_best[row]) & ~mine)
    first = at_best[np.r_[True, np.diff(row[at_best]) != 0]] if at_best.size else at_best
    if first.size == 0:
        return first, first, np.zeros(0)
    i, q, gain = row[first], conn.indices[first], gain_all[first]
    p = block[i]
    # pair p→q movers with q→p movers, best with best
    pair_key = np.minimum(p, q) * nb + np.maximum(p, q)
    forward = p < q
    order = np.lexsort((-gain, ~forward, pair_key))
    i, p, q, gain, forward, pair_key = (x[order] for x in (i, p, q, gain, forward, pair_key))
    group = pair_key * 2 + (~forward)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
    key = pair_key * (n + 1) + rank
    fwd, back = np.flatnonzero(forward), np.flatnonzero(~forward)
    hit = np.minimum(np.searchsorted(key[back], key[fwd]), max(back.size - 1, 0))
    matched = back.size > 0
    if matched:
        ok = key[back][hit] == key[fwd]
        a, b = fwd[ok], back[hit[ok]]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    pairs_i, pairs_j, pairs_gain = [i[a]], [i[b]], [gain[a] + gain[b]]
    # unmatched movers: pair with the node of the target block least attached to it
    used = np.zeros(i.size, dtype=bool)
    used[a] = used[b] = True
    loners = np.flatnonzero(~used & (gain > 0))
    if loners.size:
        weakest = np.full(nb, -1)
        rank_own = np.lexsort((np.arange(n), own, block))
        first_in_block = np.r_[True, np.diff(block[rank_own]) != 0]
        weakest[block[rank_own][first_in_block]] = rank_own[first_in_block]
        j = weakest[q[loners]]
        ok = j >= 0
        loners, j = loners[ok], j[ok]
        back_gain = np.asarray(conn[j, p[loners]]).ravel() - own[j]
        pairs_i.append(i[loners])
        pairs_j.append(j)
        pairs_gain.append(gain[loners] + back_gain)
    si, sj, sg = (np.concatenate(x) for x in (pairs_i, pairs_j, pairs_gain))
    sg = sg - 2 * np.asarray(w[si, sj]).ravel()
    keep = sg > 1e-12
    si, sj, sg = si[keep], sj[keep], sg[keep]
    order = np.lexsort((si, -sg))
    si, sj, sg = si[order], sj[order], sg[order]
    # a node takes part in one swap per pass: keep a pair when it is the best one of both nodes
    first = np.full(n, si.size)
    rank = np.arange(si.size)
    np.minimum.at(first, si, rank)
    np.minimum.at(first, sj, rank)
    chosen = (first[si] == rank) & (first[sj] == rank)
    return si[chosen], sj[chosen], sg[chosen]


def block_swaps(w: sp.csr_matrix, order: np.ndarray, g: int, passes: int, deadline: Deadline,
                offset: int = 0) -> tuple[np.ndarray, int]:
    """Improve the cut of contiguous g-blocks by swapping nodes between blocks. ``offset``:
    where position 0 lies in a larger layout, whose g-blocks the swaps keep to."""
    n = order.size
    first_block = offset // g
    nb = (offset + n - 1) // g - first_block + 1
    if nb < 2:
        return order, 0
    order = order.copy()
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    swaps = 0
    negligible = MIN_GAIN * float(w.data.sum())
    for _ in range(passes):
        if deadline.expired():
            break
        block = (position + offset) // g - first_block
        si, sj, _ = _swap_candidates(w, block, nb)
        gained = 0.0
        while si.size:
            new_block = block.copy()
            new_block[si], new_block[sj] = block[sj], block[si]
            change = float(cut_changes(w, np.concatenate([si, sj]), block, new_block)[1].sum())
            if change < -1e-9:
                position[si], position[sj] = position[sj].copy(), position[si].copy()
                swaps += si.size
                gained = -change
                break
            si, sj = si[: si.size // 2], sj[: sj.size // 2]
        if gained <= negligible:
            break
    order[position] = np.arange(n)
    return order, swaps


def polish_within_blocks(w: sp.csr_matrix, order: np.ndarray, g: int) -> np.ndarray:
    """Order each block's nodes by the mean position of their neighbours (keeps every cut)."""
    n = order.size
    position = np.empty(n, dtype=np.float64)
    position[order] = np.arange(n)
    degree = np.asarray(w.sum(axis=1)).ravel()
    pull = np.where(degree > 0, (w @ position) / np.where(degree > 0, degree, 1), position)
    block = np.arange(n) // g
    return order[np.lexsort((np.arange(n), pull[order], block))]
