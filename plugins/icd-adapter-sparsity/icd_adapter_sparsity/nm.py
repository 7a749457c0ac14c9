"""N:M magnitude pruning of every weight whose reduction axis is a permutation group.

In each run of ``m`` consecutive positions along the input axis (in the current layout),
the ``n`` largest-magnitude weights of each output row are kept. Which channels share a
run decides what survives, so the layout matters; afterwards only aligned runs of ``m``
may move (the constraint left for π₁). Execution stays dense on CPU — PyTorch's 2:4
kernel (``to_sparse_semi_structured``) is CUDA-only — so the report records that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core import Constraints, TransformMeta, TransformResult
from icd_core import tensors as T
from icd_core.state import no_target_reason


def nm_mask(w: np.ndarray, axis: int, n: int, m: int) -> np.ndarray:
    """Boolean mask keeping the n largest |w| in each run of m along ``axis`` (ties: lower index)."""
    moved = np.moveaxis(np.abs(w), axis, -1)
    runs = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    rank = np.argsort(-runs, axis=-1, kind="stable")
    keep = np.zeros(runs.shape, dtype=bool)
    np.put_along_axis(keep, rank[..., :n], True, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


def apply_nm(state, options, spec: str) -> TransformResult:
    n, m = options.n, options.m
    pattern = f"{n}:{m}"
    updates: dict[str, Any] = {}
    constraints: dict[str, Constraints] = {}
    kept_mag = total_mag = 0.0
    targets, skipped = state.reduction_weights(multiple_of=m)
    for group, members in targets.items():
        for member in members:
            w = T.to_numpy(updates.get(member.tensor, state.tensors[member.tensor]))
            mask = nm_mask(w, member.axis, n, m)
            kept_mag += float(np.abs(w[mask]).sum())
            total_mag += float(np.abs(w).sum())
            updates[member.tensor] = T.numpy_like(np.where(mask, w, 0), state.tensors[member.tensor])
        constraints[group] = Constraints(supernode=m)
    if not updates:
        return TransformResult(state=state, meta=TransformMeta.skipped("sparsity", spec, no_target_reason(skipped)))
    meta = TransformMeta(
        adapter="sparsity", spec=spec,
        sparsity={"type": pattern, "rate": 1.0 - n / m},
        repermute=True,
        repermute_reason=f"the {pattern} mask changed what is co-accessed; only aligned groups of {m} may move",
        constraints=constraints,
        stats={"tensors": sorted(updates), "kept_magnitude_pct": 100.0 * kept_mag / total_mag if total_mag else None,
               "skipped_groups": skipped,
               "kernel": "dense execution of the masked weights (2:4 kernels are CUDA-only)"})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
