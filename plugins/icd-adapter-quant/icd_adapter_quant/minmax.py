"""Min-max quantize-dequantize of weights along the input (reduction) dimension.

Scales are shared by ``group`` consecutive input channels of each output row (or the whole
row when ``group`` is 0, or the whole tensor), so with groups the channel order decides which
ranges share a scale: channels are first re-ordered so each group shares a range (a
permutation of the whole group, function-preserving), and afterwards groups move only
whole (a super-node constraint), with re-permutation asked for. int8/int4 round to an integer grid
(symmetric: scale max|w| / 7.5 for int4, every level used, as llm-compressor scales); fp8 casts through
``torch.float8_e4m3fn`` after scaling the group's max to 448. Execution is dequantised;
the stats give the bytes the stored form would move.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core import Constraints, TransformMeta, TransformResult
from icd_core.toolkit import activation_energy as toolkit_activation_energy
from icd_core.toolkit import no_target_reason, order_for, plan_targets
from icd_core.toolkit import tensors as T

BITS = {"int8": 8, "int4": 4, "fp8": 8}
FP8_MAX = 448.0


def _fp8_round(x: np.ndarray) -> np.ndarray:
    import torch

    return torch.from_numpy(x.astype(np.float32)).to(torch.float8_e4m3fn).to(torch.float32).numpy()


def symmetric_levels(bits: int) -> float:
    """What a symmetric scale divides max|w| by: half the grid's span, (2^b − 1) / 2 — 7.5 for
    int4, so all 16 levels are used (compressed-tensors' and llm-compressor's scale; max|w| / 7
    would leave −8 unused). The largest positive value clips by at most half a step."""
    return (2 ** bits - 1) / 2


def quantize_dequantize(w: np.ndarray, axis: int, dtype: str, group: int, symmetric: bool,
                        per_tensor: bool = False) -> np.ndarray:
    """The dequantised weights; scales per (row, run of ``group`` channels along ``axis``),
    or one per tensor."""
    moved = np.moveaxis(w.astype(np.float64), axis, -1)
    size = moved.shape[-1]
    if per_tensor:
        flat = quantize_dequantize(moved.reshape(1, -1), -1, dtype, 0, symmetric)
        return np.moveaxis(flat.reshape(moved.shape), -1, axis).astype(w.dtype)
    g = group or size
    runs = moved.reshape(*moved.shape[:-1], size // g, g)
    if dtype == "fp8":
        amax = np.abs(runs).max(axis=-1, keepdims=True)
        scale = np.where(amax > 0, amax / FP8_MAX, 1.0)
        out = _fp8_round(runs / scale).astype(np.float64) * scale
    elif symmetric:
        qmax = 2 ** (BITS[dtype] - 1) - 1
        amax = np.abs(runs).max(axis=-1, keepdims=True)
        scale = np.where(amax > 0, amax / symmetric_levels(BITS[dtype]), 1.0)
        x = runs / scale
        x = np.where(x <= -(qmax + 0.5) * (1 - 1e-9), -qmax - 1.0, x)  # the extreme: −8 for int4, not float noise
        out = np.clip(np.round(x), -qmax - 1, qmax) * scale
    else:
        levels = 2 ** BITS[dtype] - 1
        lo, hi = runs.min(axis=-1, keepdims=True), runs.max(axis=-1, keepdims=True)
        scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
        zero = np.round(-lo / scale)
        out = (np.clip(np.round(runs / scale) + zero, 0, levels) - zero) * scale
    return np.moveaxis(out.reshape(moved.shape), -1, axis).astype(w.dtype)


def _group_error(x2d: np.ndarray, options, energy: np.ndarray | None = None) -> float:
    """Mean squared quantization error of a rows × channels matrix in its current order; with
    ``energy`` (Σx² per channel) each channel's error weighs by it — the layer-output error
    under uncorrelated inputs."""
    q = quantize_dequantize(x2d, 1, options.dtype, options.group, options.symmetric)
    return float(np.mean((q - x2d) ** 2 * (1.0 if energy is None else energy[None, :])))


def activation_energy(ctx, state, group: str) -> np.ndarray | None:
    """Σ x_j² per input channel over the calibration tokens (the Hessian diagonal GPTQ's
    act-order sorts by), or None when the workload captures no activity for the group."""
    return None if ctx is None else toolkit_activation_energy(ctx, state, group)


def _channel_order(ctx, state, group: str, stacked: np.ndarray, options, seed: int, notes: list[str]):
    """(order, energy the error is weighed by) for the group, or (None, None)."""
    if options.permute != "act":
        return order_for(stacked, options.permute, options.group, seed), None
    energy = activation_energy(ctx, state, group)
    if energy is None:
        notes.append(f"{group}: no activations captured for act order; kept the order")
        return None, None
    return np.argsort(-energy, kind="stable"), energy


def member_rows(state, member, size: int) -> np.ndarray:
    """The member's slices of its weight as a (rows × group size) float64 matrix: one head's
    inputs of o_proj, not the whole axis; tiles stacked as further rows."""
    w = T.rows_along(T.to_numpy(state.tensors[member.tensor]), member.axis).astype(np.float64)
    cols = w[:, member.positions(size)].reshape(w.shape[0], member.tiles, size)
    return cols.transpose(1, 0, 2).reshape(-1, size)


def _quantized(state, tensor: str, axis: int, options, updates: dict, errors: dict) -> tuple[int, int]:
    """Quantize one weight along ``axis`` into ``updates``; (stored bytes, dense bytes)."""
    w = T.to_numpy(state.tensors[tensor])
    q = quantize_dequantize(w, axis, options.dtype, options.group, options.symmetric, options.per_tensor)
    errors[tensor] = float(np.mean((q.astype(np.float64) - w) ** 2))
    rows = w.size // w.shape[axis]
    scales = 1 if options.per_tensor else rows * (w.shape[axis] // (options.group or w.shape[axis]))
    updates[tensor] = T.numpy_like(q, state.tensors[tensor])
    return w.size * BITS[options.dtype] // 8 + scales * 2 * (1 if options.symmetric else 2), w.nbytes


def apply_quant(state, options, spec: str, seed: int = 0, ctx=None) -> TransformResult:
    """Every targeted weight quantized: those a group runs along in the order that group's
    channels take (re-grouped first when ``permute`` asks), the rest in natural order."""
    constraints: dict[str, Constraints] = {}
    errors: dict[str, float] = {}
    stored_bytes = dense_bytes = 0
    plan = plan_targets(state, options.targets, options.ignore, multiple_of=options.group or 1)
    orders: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for group, members in plan.grouped.items():
        if options.group and not options.per_tensor and options.permute != "none":
            size = state.group(group).size
            stacked = np.vstack([member_rows(state, m, size) for m in members])
            order, energy = _channel_order(ctx, state, group, stacked, options, seed, notes)
            if order is not None:
                before = _group_error(stacked, options, energy)
                after = _group_error(stacked[:, order], options, None if energy is None else energy[order])
                kept = after < before  # a grouping that does not lower the error is not applied
                if kept:
                    state = state.permuted(group, order)
                orders[group] = {"error_identity": before, "error": min(after, before), "applied": kept}
        if options.group and not options.per_tensor:
            constraints[group] = Constraints(supernode=options.group)
    # Every targeted weight once, after every group has put its channels in place: a weight that
    # several groups run along (o_proj, one group per head) is quantized after the last moved.
    inputs = {m.tensor: m.axis for members in plan.grouped.values() for m in members} | dict(plan.natural)
    updates: dict[str, Any] = {}
    for tensor, axis in inputs.items():
        stored, dense = _quantized(state, tensor, axis, options, updates, errors)
        stored_bytes, dense_bytes = stored_bytes + stored, dense_bytes + dense
    if not updates:
        return TransformResult(state=state, meta=TransformMeta.skipped("quant", spec, no_target_reason(plan.skipped)))
    grouped = options.group > 0 and not options.per_tensor
    meta = TransformMeta(
        adapter="quant", spec=spec,
        details={"quant": {"dtype": options.dtype, "method": "minmax-" + ("sym" if options.symmetric else "asym"),
                           "group": "per-tensor" if options.per_tensor else (options.group or "per-row"),
                           "grouping": options.permute if grouped else "none"}},
        repermute=grouped,
        repermute_reason=f"scales are shared by groups of {options.group} channels: the order decides "
                         f"which ranges share a scale" if grouped else None,
        constraints=constraints,
        stats={"tensors": sorted(updates), "weights": plan.counts(), "natural_order": sorted(plan.natural),
               "weight_mse": errors, "grouping_mse": orders, "notes": notes, "stored_bytes": stored_bytes,
               "dense_bytes": dense_bytes, "skipped_groups": plan.skipped,
               "execution": "dequantised (fake-quant) on the workload's device"})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
