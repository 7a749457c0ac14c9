"""Cluster seeds: a first grouping whose order the bisection keeps.

``louvain``: networkx Louvain communities; ``spectral``: k-means on the leading k
eigenvectors. Clusters are laid out in the order of the Fiedler vector of the graph between
clusters, and each becomes an initial segment of the recursive bisection.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .lanczos import fiedler_batch

EMBED_STEPS = 60


def louvain_labels(w: sp.csr_matrix, seed: int) -> np.ndarray:
    import networkx as nx

    communities = nx.community.louvain_communities(nx.from_scipy_sparse_array(w), weight="weight", seed=seed)
    labels = np.empty(w.shape[0], dtype=np.int64)
    for k, members in enumerate(sorted(communities, key=min)):
        labels[list(members)] = k
    return labels


def spectral_labels(w: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    from scipy.cluster.vq import kmeans2

    n = w.shape[0]
    k = max(2, min(k, n))
    vectors, _ = fiedler_batch(w, np.zeros(n, dtype=np.int64), 1, max(EMBED_STEPS, 2 * k), seed, vectors=k)
    embedding = vectors.T / np.maximum(np.linalg.norm(vectors.T, axis=1, keepdims=True), 1e-300)
    _, labels = kmeans2(embedding, k, seed=seed, minit="++")
    return np.unique(labels, return_inverse=True)[1]


def seeded_layout(w: sp.csr_matrix, labels: np.ndarray, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(order, bounds): nodes grouped by cluster, clusters in Fiedler order of their graph."""
    k = int(labels.max()) + 1
    n = labels.size
    member = sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))
    between = (member @ w @ member.T).tocsr()
    between.setdiag(0)
    between.eliminate_zeros()
    if k > 2 and between.nnz:
        rank = np.argsort(np.argsort(fiedler_batch(between, np.zeros(k, dtype=np.int64), 1, EMBED_STEPS, seed),
                                     kind="stable"), kind="stable")
    else:
        rank = np.arange(k)
    order = np.lexsort((np.arange(n), rank[labels]))
    sizes = np.bincount(rank[labels], minlength=k)
    ends = np.cumsum(sizes)
    return order, [(int(e - z), int(e)) for z, e in zip(sizes, ends) if z]
