"""The coarse level of the multilevel solver: METIS (pymetis, a well-kept multilevel
partitioner) cuts the graph into parts of a few cache lines (:func:`part_lines`), laid out in METIS's recursive
order so sibling parts sit side by side; spectral bisection then takes each part down to
g-blocks and block swaps refine across parts (:mod:`.solve`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

SMALL = 16_384  # below this many nodes, parts of 2 g-blocks: METIS does most of the work, faster at equal cut
MULTILEVEL_MIN = 2048  # super-nodes from which the coarse level is used (see part_lines)
EDGE_WEIGHT_LEVELS = 1000  # METIS takes integer edge weights: W scaled to 1..1000


def available() -> bool:
    try:
        import pymetis  # noqa: F401
    except ImportError:
        return False
    return True


def coarse_parts(w: sp.csr_matrix, part_size: int, seed: int) -> np.ndarray:
    """Part of every node: METIS recursive bisection into ⌈n / part_size⌉ parts (1 % imbalance)."""
    import pymetis

    n = w.shape[0]
    nparts = max(2, -(-n // part_size))
    weights = np.maximum(1, np.round(w.data / max(float(w.data.max()), 1e-30) * EDGE_WEIGHT_LEVELS)).astype(np.int64)
    options = pymetis.Options()
    options.ufactor = 10
    options.seed = seed
    adjacency = pymetis.CSRAdjacency(adj_starts=w.indptr.astype(np.int64), adjacent=w.indices.astype(np.int64))
    _, parts = pymetis.part_graph(nparts, adjacency, eweights=weights, recursive=True, options=options)
    return np.asarray(parts, dtype=np.int64)


def part_lines(n: int) -> int:
    """g-blocks per coarse part: 8 on large graphs, where spectral bisection refines the parts
    best, and 2 on small ones, where METIS does most of the work faster at the same cut (chosen
    from one comparison on planted graphs of 4,096 and 100,000 nodes, not kept as a benchmark;
    benchmarks/solver_scale.py measures the resulting solver)."""
    return 2 if n < SMALL else 8


def coarse_layout(w: sp.csr_matrix, g: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]], int]:
    """(order, bounds, parts): nodes laid out part by part in METIS's order, each part's
    [start, end) positions — the segments spectral bisection continues from."""
    parts = coarse_parts(w, part_lines(w.shape[0]) * g, seed)
    n = w.shape[0]
    order = np.lexsort((np.arange(n), parts))
    counts = np.bincount(parts)
    ends = np.cumsum(counts)
    bounds = [(int(e - c), int(e)) for c, e in zip(counts, ends) if c]
    return order, bounds, len(bounds)
