"""Permutation arrays (``perm[new_position] = old_index``) and layout constraints."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.contract.errors import ContractError
from icd_core.contract.records import Constraints


def identity(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int32)


def inverse(perm: np.ndarray) -> np.ndarray:
    """``inv[old_index] = new_position``."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm), dtype=perm.dtype)
    return inv


def check_permutation(perm: np.ndarray, n: int, constraints: Constraints, where: str) -> np.ndarray:
    """Validate a solver's answer; return it as int32 or raise :class:`ContractError`."""
    perm = np.asarray(perm)
    if perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer):
        raise ContractError(f"{where}: π must be an integer array of shape ({n},), got {perm.dtype} {perm.shape}")
    if not np.array_equal(np.sort(perm), np.arange(n)):
        raise ContractError(f"{where}: π is not a permutation of 0..{n - 1}")
    s = constraints.supernode
    if s > 1:
        blocks = perm.reshape(-1, s)
        aligned = (blocks[:, 0] % s == 0) & np.all(np.diff(blocks, axis=1) == 1, axis=1)
        if not aligned.all():
            raise ContractError(f"{where}: π splits an aligned group of {s} (constraint supernode={s})")
    for node in constraints.fixed:
        if perm[node * s] != node * s:
            raise ContractError(f"{where}: π moves fixed super-node {node}")
    return perm.astype(np.int32)


def contract(w: sp.csr_matrix, size: int) -> sp.csr_matrix:
    """W summed over aligned super-nodes of ``size`` (the graph a constrained solver orders)."""
    n = w.shape[0]
    if size == 1:
        return w
    groups = np.arange(n) // size
    p = sp.csr_matrix((np.ones(n, dtype=np.float32), (groups, np.arange(n))), shape=(n // size, n))
    out = (p @ w @ p.T).tocsr()
    out.setdiag(0)
    out.eliminate_zeros()
    return out


def expand(order: np.ndarray, size: int) -> np.ndarray:
    """A super-node order → the element permutation that moves each super-node whole."""
    order = np.asarray(order, dtype=np.int64)
    return (order[:, None] * size + np.arange(size)[None, :]).reshape(-1).astype(np.int32)


def supernode_count(n: int, constraints: Constraints, where: str) -> int:
    if n % constraints.supernode:
        raise ContractError(f"{where}: group size {n} is not a multiple of supernode {constraints.supernode}")
    return n // constraints.supernode


def random_order(n: int, constraints: Constraints, rng: np.random.Generator, where: str = "group") -> np.ndarray:
    """A uniformly drawn π that respects ``constraints`` (aligned super-nodes move whole, fixed
    ones stay): a function-preserving order that knows nothing of the model, the control a
    fitted layout is compared with."""
    order = pin_fixed(rng.permutation(supernode_count(n, constraints, where)), constraints.fixed)
    return check_permutation(expand(order, constraints.supernode), n, constraints, where)


def pin_fixed(order: np.ndarray, fixed: tuple[int, ...]) -> np.ndarray:
    """Put every fixed node back at its own index with one swap each (the least disturbance)."""
    out = np.asarray(order, dtype=np.int64).copy()
    if not fixed:
        return out
    position = np.empty_like(out)
    position[out] = np.arange(out.size)
    for node in sorted(fixed):
        here, occupant = position[node], out[node]
        out[node], out[here] = node, occupant
        position[node], position[occupant] = node, here
    return out
