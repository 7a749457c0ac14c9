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


def structure_problem(m: sp.spmatrix) -> str | None:
    """What makes a sparse matrix's stored arrays unusable (indices out of range, an ``indptr``
    that runs backwards or disagrees with the data, a complex dtype), or None. Checked before
    any arithmetic: scipy trusts these arrays in C and reads out of bounds otherwise."""
    if np.issubdtype(m.dtype, np.complexfloating):
        return f"has complex values (dtype {m.dtype}); co-access weights are real"
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == np.bool_):
        return f"has non-numeric values (dtype {m.dtype})"
    try:
        if m.format in ("csr", "csc", "bsr"):
            m.check_format(full_check=True)
        elif m.format == "coo":
            rows, cols = m.shape
            if m.nnz and (m.row.min() < 0 or m.row.max() >= rows or m.col.min() < 0 or m.col.max() >= cols):
                return f"has an index outside its {rows}×{cols} shape"
    except (ValueError, TypeError) as exc:
        return f"is not a valid {m.format.upper()} matrix ({exc})"
    return None


def user_matrix(W: object, where: str) -> sp.spmatrix:
    """A matrix a user handed over (scipy sparse, numpy array, nested lists) as a sparse matrix
    whose arrays are safe to compute on, or one :class:`InputDataError` line."""
    if W is None:
        raise InputDataError(f"{where}: W is None; expected a square matrix (scipy sparse or numpy array)")
    if sp.issparse(W):
        problem = structure_problem(W)
        if problem:
            raise InputDataError(f"{where}: W {problem}")
        return W
    try:
        dense = np.asarray(W)
    except (ValueError, TypeError) as exc:
        raise InputDataError(f"{where}: W is not a matrix ({exc})") from None
    if np.iscomplexobj(dense):
        raise InputDataError(f"{where}: W has complex values (dtype {dense.dtype}); co-access weights are real")
    if not (np.issubdtype(dense.dtype, np.number) or dense.dtype == np.bool_):
        raise InputDataError(f"{where}: W has non-numeric entries (dtype {dense.dtype}); expected numbers")
    if dense.ndim != 2:
        raise InputDataError(f"{where}: W has {dense.ndim} dimension(s) (shape {dense.shape}); expected a square matrix")
    return sp.csr_matrix(dense.astype(np.float64))


def check_w(w: GraphW, n: int, where: str) -> None:
    """Raise :class:`ContractError` unless W is the documented kind of matrix for ``n`` dims."""
    m = w.matrix
    problem = None
    if not sp.issparse(m) or m.format != "csr":
        problem = f"must be a scipy CSR matrix, got {type(m).__name__}"
    elif structure_problem(m):
        problem = structure_problem(m)
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


def prepare_user_w(m: object, where: str, block: int, symmetrise: bool = False) -> tuple[sp.csr_matrix, list[str]]:
    """A user's matrix as a valid W, or one :class:`InputDataError` line naming the problem.

    Rejected: non-square, empty, NaN/inf, negative weights, asymmetric. Handled (and noted):
    self-loops are dropped; float64 becomes float32; n < g or n not a multiple of g leaves
    a partial last block; no edges or several components are laid out as they come.
    ``symmetrise``: an asymmetric W becomes (W + Wᵀ) / 2, with a note, instead of an error.
    """
    notes: list[str] = []
    m = user_matrix(m, where)
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
        if asym > 1e-6 * float(np.abs(w.data).max()) and symmetrise:
            w = ((w + w.T) * 0.5).tocsr()
            notes.append(f"symmetrised W as (W + W^T) / 2 (max |W - W^T| was {asym:.6g})")
        elif asym > 1e-6 * float(np.abs(w.data).max()):
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
