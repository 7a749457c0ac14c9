"""Fiedler vectors of many disjoint segments at once (batched Lanczos).

All segments of one recursion level share one sparse matrix A (W without the edges that
cross segments), so each Lanczos step costs one sparse product for the whole level. Per
segment the operator is the regularised normalised adjacency
``M = D^-1/2 (A + τ/n·11ᵀ) D^-1/2`` (τ = 0.1 · the segment's mean degree, D = deg + τ), whose
top eigenvector ``D^1/2·1`` is projected out; the largest remaining Ritz pair gives the
Fiedler direction. Inner products are per-segment sums (``np.bincount``); the Krylov basis is
re-orthogonalised against the whole basis; the small tridiagonal problems are solved as one stacked ``eigh``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

REGULARISATION = 0.1
REORTH_EVERY = 3  # full re-orthogonalisation every few steps, local in between
EXHAUSTED = -10.0  # diagonal given to unused Lanczos steps so they never win


def fiedler_batch(a: sp.csr_matrix, seg: np.ndarray, nseg: int, steps: int, seed: int,
                  vectors: int = 1, start: np.ndarray | None = None) -> np.ndarray:
    """Per-node Fiedler values (random-walk scaling), computed separately in each segment.

    With ``vectors=2`` returns ((2, n) vectors, (nseg, 2) eigenvalues): the Fiedler vector and
    the next one, whose combinations give other candidate splits where the two eigenvalues
    are close (grids).
    ``start``: a starting vector (e.g. a coarse solution); a seeded random one otherwise.

    ``a``: symmetric CSR with no edge between different segments; ``seg``: segment id per
    node, non-decreasing (each segment's nodes contiguous), covering 0..nseg-1.
    Deterministic for a seed.
    """
    n = a.shape[0]
    counts = np.bincount(seg, minlength=nseg)
    if np.any(np.diff(seg) < 0) or np.any(counts == 0):
        raise ValueError("segments must be contiguous, non-empty and numbered in order")
    starts = np.r_[0, np.cumsum(counts)[:-1]]

    def segsum(x: np.ndarray) -> np.ndarray:
        """Per-segment sums of a vector (→ nseg) or of each row of a k × n array (→ k × nseg)."""
        return np.add.reduceat(x, starts, axis=-1)

    sizes = counts.astype(np.float64)
    degree = np.asarray(a.sum(axis=1)).ravel().astype(np.float64)
    tau = REGULARISATION * np.maximum(segsum(degree) / np.maximum(sizes, 1), 1e-12)
    scale = 1.0 / np.sqrt(degree + tau[seg])
    reg = (tau / np.maximum(sizes, 1))[seg]
    a64 = a.astype(np.float64)

    def apply(x: np.ndarray) -> np.ndarray:
        y = scale * x
        return scale * (a64 @ y + reg * segsum(y)[seg])

    top = 1.0 / scale  # D^1/2 · 1, the trivial eigenvector
    top /= np.sqrt(segsum(top * top))[seg]

    def deflate(x: np.ndarray) -> np.ndarray:
        return x - segsum(x * top)[seg] * top

    m = int(max(2, min(steps, sizes.max() - 1)))
    basis = np.zeros((m, n))
    alpha = np.full((nseg, m), EXHAUSTED)
    beta = np.zeros((nseg, m))
    if start is None:
        start = np.random.default_rng(seed).random(n) - 0.5
    q = deflate(start / scale)  # the Lanczos vector lives in the D^1/2-scaled space
    norm = np.sqrt(segsum(q * q))
    alive = norm > 1e-12
    q = np.where(alive[seg], q / np.where(alive, norm, 1)[seg], 0.0)
    previous = np.zeros(n)
    used = m
    for j in range(m):
        basis[j] = q
        w = apply(q)
        a_j = segsum(w * q)
        alpha[:, j] = np.where(alive, a_j, EXHAUSTED)
        w -= a_j[seg] * q
        if j:
            w -= beta[seg, j - 1] * previous
        lo = 0 if j % REORTH_EVERY == 0 else max(0, j - 1)  # full every few steps, else local
        dots = segsum(basis[lo: j + 1] * w)
        w -= (np.repeat(dots, counts, axis=1) * basis[lo: j + 1]).sum(axis=0)
        w = deflate(w)
        norm = np.sqrt(segsum(w * w))
        alive = alive & (norm > 1e-8)
        beta[:, j] = np.where(alive, norm, 0.0)
        previous, q = q, np.where(alive[seg], w / np.where(alive, norm, 1)[seg], 0.0)
        if not alive.any():
            used = j + 1
            break
    idx = np.arange(used)
    t = np.zeros((nseg, used, used))
    t[:, idx, idx] = alpha[:, :used]
    t[:, idx[:-1], idx[1:]] = beta[:, : used - 1]
    t[:, idx[1:], idx[:-1]] = beta[:, : used - 1]
    values, vecs = np.linalg.eigh(t)
    out = []
    for k in range(1, vectors + 1):  # largest Ritz pairs of the deflated operator
        ritz = vecs[:, :, -k] if used >= k else np.zeros((nseg, used))
        out.append(scale * (np.repeat(ritz, counts, axis=0).T * basis[:used]).sum(axis=0))
    if vectors == 1:
        return out[0]
    ranked = np.full((nseg, vectors), EXHAUSTED)
    top = values[:, ::-1][:, :vectors]
    ranked[:, : top.shape[1]] = top
    return np.stack(out), ranked
