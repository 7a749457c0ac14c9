"""Baseline orderings registered beside ``spectral`` so users and benchmarks can compare.

``rcm``: scipy's reverse Cuthill–McKee (bandwidth); ``fiedler``: one global Fiedler order
(good linear arrangement, block cut near random on community graphs); ``random``: a seeded
shuffle. Each orders the super-node graph, so constraints hold.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from .lanczos import fiedler_batch

FIEDLER_STEPS = 60


def rcm_order(w: sp.csr_matrix, seed: int) -> np.ndarray:
    return np.asarray(reverse_cuthill_mckee(w.tocsr(), symmetric_mode=True), dtype=np.int64)


def fiedler_order(w: sp.csr_matrix, seed: int) -> np.ndarray:
    n = w.shape[0]
    if n < 3 or w.nnz == 0:
        return np.arange(n)
    f = fiedler_batch(w.tocsr(), np.zeros(n, dtype=np.int64), 1, FIEDLER_STEPS, seed)
    return np.lexsort((np.arange(n), f))


def random_order(w: sp.csr_matrix, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(w.shape[0])


BASELINES = {"rcm": rcm_order, "fiedler": fiedler_order, "random": random_order}
