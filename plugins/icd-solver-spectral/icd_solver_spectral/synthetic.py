"""Planted community graphs for tests and benchmarks (not used by the solver itself).

Communities have lognormal sizes (mean ≈ ``mean_size``) and sit in super-groups; each node
spends ``degree`` picks: mostly inside its community (weight ≈ 1), some in its super-group
(weight ``inter``), a ``noise`` fraction anywhere (weight ``noise_weight``). A seeded
random relabelling hides the structure. Returns W and the planted order (community-sorted).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.toolkit import symmetric_csr


def community_sizes(n: int, mean_size: float, rng: np.random.Generator, exact: int | None = None) -> np.ndarray:
    if exact:
        sizes = np.full(n // exact, exact)
        if n % exact:
            sizes = np.append(sizes, n % exact)
        return sizes
    sigma = 0.5
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(max(2, int(round(rng.lognormal(np.log(mean_size) - sigma ** 2 / 2, sigma)))))
    sizes[-1] -= sum(sizes) - n
    if sizes[-1] < 2 and len(sizes) > 1:
        last = sizes.pop()
        sizes[-1] += last
    return np.asarray(sizes)


def planted_communities(n: int, *, mean_size: float = 50, degree: int = 12, noise: float = 0.05,
                        inter: float = 0.15, group_size: int = 8, exact: int | None = None,
                        seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(W in label order, planted order: labels sorted by community)."""
    rng = np.random.default_rng(seed)
    sizes = community_sizes(n, mean_size, rng, exact)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    community = np.repeat(np.arange(len(sizes)), sizes)
    supergroup = community // group_size
    group_start = np.array([starts[g * group_size] for g in range(supergroup.max() + 1)])
    group_end = np.array([starts[min((g + 1) * group_size, len(sizes)) - 1] + sizes[min((g + 1) * group_size,
                          len(sizes)) - 1] for g in range(supergroup.max() + 1)])
    src = np.repeat(np.arange(n), degree)
    kind = rng.random(src.size)
    c, g = community[src], supergroup[src]
    in_comm = starts[c] + (rng.random(src.size) * sizes[c]).astype(np.int64)
    in_group = group_start[g] + (rng.random(src.size) * (group_end[g] - group_start[g])).astype(np.int64)
    anywhere = rng.integers(0, n, src.size)
    is_noise = kind < noise
    is_inter = (kind >= noise) & (kind < noise + inter)
    dst = np.where(is_noise, anywhere, np.where(is_inter, in_group, in_comm))
    weight = np.where(is_noise, 0.3, np.where(is_inter, 0.5, 1.0)) * (0.9 + 0.2 * rng.random(src.size))
    label = rng.permutation(n)
    w = symmetric_csr(label[src], label[dst], weight, n)
    return w, label  # label[k] is the label of planted position k: the planted order


def grid_graph(side: int) -> sp.csr_matrix:
    """A 2-D 4-neighbour stencil on a side × side grid (row-major labels)."""
    idx = np.arange(side * side).reshape(side, side)
    rows = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    cols = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return symmetric_csr(rows, cols, np.ones(rows.size), side * side)
