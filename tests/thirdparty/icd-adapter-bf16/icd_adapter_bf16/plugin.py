"""``--adapter bf16``: round every float32 weight read along a permutation group to bfloat16.

A third-party plugin needs only ``icd_core`` and an entry point in group ``icd``.
"""

from __future__ import annotations

import numpy as np

from icd_core import TransformMeta, TransformResult, hookimpl
from icd_core.toolkit import tensors as T


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 → nearest bfloat16 (round half to even), returned as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded & np.uint32(0xFFFF0000)).view(np.float32)


@hookimpl
def icd_register(registry):
    registry.add("adapter", "bf16", summary="round weights to bfloat16 precision (example third-party plugin)")


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name != "bf16":
        return None
    names = sorted({m.tensor for g in state.groups for m in g.members if m.role == "in"})
    updates = {n: round_to_bf16(T.to_numpy(state.tensors[n])) for n in names}
    meta = TransformMeta(adapter="bf16", spec=adapter.text, details={"quant": {"dtype": "bf16", "method": "round-nearest-even"}},
                         stats={"tensors": names})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
