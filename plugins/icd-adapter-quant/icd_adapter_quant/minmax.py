"""Min-max quantize-dequantize of weights along the input (reduction) dimension.

Scales are shared by ``group`` consecutive input channels of each output row (or the whole
row when ``group`` is 0), so with groups the channel order decides which ranges share a
scale: the grouping leaves a super-node constraint (groups move whole) and asks for
re-permutation. int8/int4 round to an integer grid; fp8 casts through
``torch.float8_e4m3fn`` after scaling the group's max to 448. Execution is dequantised;
the stats give the bytes the stored form would move.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core import Constraints, TransformMeta, TransformResult
from icd_core import tensors as T
from icd_core.state import no_target_reason

BITS = {"int8": 8, "int4": 4, "fp8": 8}
FP8_MAX = 448.0


def _fp8_round(x: np.ndarray) -> np.ndarray:
    import torch

    return torch.from_numpy(x.astype(np.float32)).to(torch.float8_e4m3fn).to(torch.float32).numpy()


def quantize_dequantize(w: np.ndarray, axis: int, dtype: str, group: int, symmetric: bool) -> np.ndarray:
    """The dequantised weights; scales per (row, run of ``group`` channels along ``axis``)."""
    moved = np.moveaxis(w.astype(np.float64), axis, -1)
    size = moved.shape[-1]
    g = group or size
    runs = moved.reshape(*moved.shape[:-1], size // g, g)
    if dtype == "fp8":
        amax = np.abs(runs).max(axis=-1, keepdims=True)
        scale = np.where(amax > 0, amax / FP8_MAX, 1.0)
        out = _fp8_round(runs / scale).astype(np.float64) * scale
    elif symmetric:
        qmax = 2 ** (BITS[dtype] - 1) - 1
        amax = np.abs(runs).max(axis=-1, keepdims=True)
        scale = np.where(amax > 0, amax / qmax, 1.0)
        out = np.clip(np.round(runs / scale), -qmax - 1, qmax) * scale
    else:
        levels = 2 ** BITS[dtype] - 1
        lo, hi = runs.min(axis=-1, keepdims=True), runs.max(axis=-1, keepdims=True)
        scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
        zero = np.round(-lo / scale)
        out = (np.clip(np.round(runs / scale) + zero, 0, levels) - zero) * scale
    return np.moveaxis(out.reshape(moved.shape), -1, axis).astype(w.dtype)


def apply_quant(state, options, spec: str) -> TransformResult:
    updates: dict[str, Any] = {}
    constraints: dict[str, Constraints] = {}
    errors: dict[str, float] = {}
    stored_bytes = dense_bytes = 0
    targets, skipped = state.reduction_weights(multiple_of=options.group or 1)
    for group, members in targets.items():
        for member in members:
            w = T.to_numpy(updates.get(member.tensor, state.tensors[member.tensor]))
            q = quantize_dequantize(w, member.axis, options.dtype, options.group, options.symmetric)
            errors[member.tensor] = float(np.mean((q.astype(np.float64) - w) ** 2))
            rows = w.size // w.shape[member.axis]
            scales = rows * (w.shape[member.axis] // (options.group or w.shape[member.axis]))
            stored_bytes += w.size * BITS[options.dtype] // 8 + scales * 2 * (1 if options.symmetric else 2)
            dense_bytes += w.nbytes
            updates[member.tensor] = T.numpy_like(q, state.tensors[member.tensor])
        if options.group:
            constraints[group] = Constraints(supernode=options.group)
    if not updates:
        return TransformResult(state=state, meta=TransformMeta.skipped("quant", spec, no_target_reason(skipped)))
    grouped = options.group > 0
    meta = TransformMeta(
        adapter="quant", spec=spec,
        quant={"dtype": options.dtype, "method": "minmax-" + ("sym" if options.symmetric else "asym"),
               "group": options.group or "per-row"},
        repermute=grouped,
        repermute_reason=f"scales are shared by groups of {options.group} channels: the order decides "
                         f"which ranges share a scale" if grouped else None,
        constraints=constraints,
        stats={"tensors": sorted(updates), "weight_mse": errors, "stored_bytes": stored_bytes,
               "dense_bytes": dense_bytes, "skipped_groups": skipped,
               "execution": "dequantised (fake-quant) on the workload's device"})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
