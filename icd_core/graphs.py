"""Co-access matrices: building them from index pairs and checking the W contract."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .errors import ContractError
from .records import GraphW


def symmetric_csr(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n: int) -> sp.csr_matrix:
    """W = A + Aᵀ from weighted pairs, duplicates summed, diagonal dropped, float32, canonical."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    off = rows != cols
    r = np.concatenate([rows[off], cols[off]])
    c = np.concatenate([cols[off], rows[off]])
    v = np.concatenate([weights[off], weights[off]])
    w = sp.coo_matrix((v, (r, c)), shape=(n, n)).tocsr()
    w.sum_duplicates()
    w.eliminate_zeros()
    w.sort_indices()
    return w.astype(np.float32)


def check_w(w: GraphW, n: int, where: str) -> None:
    """Raise :class:`ContractError` unless W is the documented kind of matrix for ``n`` dims."""
    m = w.matrix
    problem = None
    if not sp.issparse(m) or m.format != "csr":
        problem = f"must be a scipy CSR matrix, got {type(m).__name__}"
    elif m.shape != (n, n):
        problem = f"shape {m.shape} does not match the group size {n}"
    elif m.dtype != np.float32:
        problem = f"dtype must be float32, got {m.dtype}"
    elif not np.all(np.isfinite(m.data)):
        problem = "contains NaN or inf"
    elif m.nnz and m.data.min() < 0:
        problem = "has negative weights"
    elif np.any(m.diagonal() != 0):
        problem = "has a non-zero diagonal"
    elif m.nnz and abs(m - m.T).max() > 1e-5 * max(float(np.abs(m.data).max()), 1.0):
        problem = "is not symmetric"
    if problem:
        raise ContractError(f"{where}: W {problem}")
