"""Co-access matrices: building them from index pairs and checking the W contract."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.contract.errors import ContractError, InputDataError
from icd_core.contract.records import GraphW


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


def prepare_user_w(m: sp.spmatrix, where: str, block: int) -> tuple[sp.csr_matrix, list[str]]:
    """A user's matrix as a valid W, or one :class:`InputDataError` line naming the problem.

    Rejected: non-square, empty, NaN/inf, negative weights, asymmetric. Handled (and noted):
    self-loops are dropped; float64 becomes float32; n < g or n not a multiple of g leaves
    a partial last block; no edges or several components are laid out as they come.
    """
    notes: list[str] = []
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InputDataError(f"{where}: W is {m.shape[0]}×{m.shape[1]}, expected a square matrix")
    n = m.shape[0]
    if n == 0:
        raise InputDataError(f"{where}: W is empty (0×0)")
    w = sp.csr_matrix(m, dtype=np.float64)
    w.sum_duplicates()
    bad = int(np.count_nonzero(~np.isfinite(w.data)))
    if bad:
        raise InputDataError(f"{where}: W has {bad} NaN or inf entries")
    if w.nnz and w.data.min() < 0:
        raise InputDataError(f"{where}: W has negative weights (min {w.data.min():.6g}); co-access weights must be >= 0")
    if w.nnz:
        asym = float(abs(w - w.T).max())
        if asym > 1e-6 * float(np.abs(w.data).max()):
            raise InputDataError(f"{where}: W is not symmetric (max |W - W^T| = {asym:.6g}); symmetrise it, "
                                 f"e.g. (W + W^T) / 2")
    loops = int(np.count_nonzero(w.diagonal()))
    if loops:
        w.setdiag(0)
        notes.append(f"dropped {loops} self-loops (a dimension's co-access with itself does not affect layout)")
    w.eliminate_zeros()
    w.sort_indices()
    if w.nnz == 0:
        notes.append("W has no off-diagonal weight: every order is equally good")
    if n < block:
        notes.append(f"n = {n} < g = {block}: everything fits in one block")
    elif n % block:
        notes.append(f"n = {n} is not a multiple of g = {block}: the last block holds {n % block}")
    return w.astype(np.float32), notes
