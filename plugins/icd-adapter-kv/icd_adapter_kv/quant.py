"""Low-bit KV-cache quantization (dequantised in place, so decoding reads the error).

``grouped``: per token, runs of ``group`` channels share an asymmetric min-max scale; the
channels are first re-ordered (k-means on each channel's (min, max) over tokens, SKVQ-style)
so runs share ranges, and restored afterwards — the order is quantizer metadata, the model
is not permuted. ``kivi``: keys per channel (over tokens), values per token (over channels).
Cache tensors are (batch, tokens, kv_heads·d); a KV group's members alternate key, value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core import TransformMeta, TransformResult
from icd_core.toolkit import cluster_order, inverse
from icd_core.toolkit import tensors as T


def asym_quant(x: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Asymmetric min-max quantize-dequantize with one scale per slice along ``axis``."""
    levels = 2 ** bits - 1
    lo, hi = x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True)
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
    return np.round((x - lo) / scale).clip(0, levels) * scale + lo


def grouped(x2d: np.ndarray, bits: int, group: int, order: np.ndarray | None) -> np.ndarray:
    """Per row (token), runs of ``group`` channels share a scale, in ``order`` if given."""
    tokens, channels = x2d.shape
    xs = x2d if order is None else x2d[:, order]
    g = group if channels % group == 0 else channels
    q = asym_quant(xs.reshape(tokens, channels // g, g), bits, axis=2).reshape(tokens, channels)
    return q if order is None else q[:, inverse(order)]


def kivi(x2d: np.ndarray, bits: int, key: bool) -> np.ndarray:
    return asym_quant(x2d, bits, axis=0 if key else 1)


def relative_error(q: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(q - x) / max(np.linalg.norm(x), 1e-30))


def quantize_cache(x2d: np.ndarray, options: Any, key: bool, seed: int) -> np.ndarray:
    if options.scheme == "kivi":
        return kivi(x2d, options.bits, key)
    order = cluster_order(x2d, options.group, seed) if options.reorder == "kmeans" else None
    return grouped(x2d, options.bits, options.group, order)


def apply_kv_quant(state, options, spec: str, kind: str, seed: int) -> TransformResult:
    groups = [g for g in state.groups if g.kind == kind]
    if not groups:
        reason = f"workload {state.workload.name!r} has no KV-cache group (kind {kind!r})"
        return TransformResult(state=state, meta=TransformMeta.skipped("kv", spec, reason))
    updates: dict[str, Any] = {}
    errors: dict[str, float] = {}
    keys, values = [], []
    for group in groups:
        for index, member in enumerate(group.members):  # members alternate: key, value, key, …
            t = state.tensors[member.tensor]
            x = T.to_numpy(t).astype(np.float64)
            flat = x.reshape(-1, x.shape[-1])
            is_key = index % 2 == 0
            q = quantize_cache(flat, options, is_key, seed)
            errors[member.tensor] = relative_error(q, flat)
            (keys if is_key else values).append(errors[member.tensor])
            updates[member.tensor] = T.numpy_like(q.reshape(x.shape), t)
    meta = TransformMeta(adapter="kv", spec=spec,
                         details={"kv": {"mode": "quant", "bits": options.bits, "scheme": options.scheme,
                                         "group": options.group if options.scheme == "grouped" else None,
                                         "reorder": options.reorder if options.scheme == "grouped" else None}},
                         stats={"key_rel_error": float(np.mean(keys)) if keys else None,
                                "value_rel_error": float(np.mean(values)) if values else None,
                                "per_tensor": errors, "stored_bits_per_value": options.bits,
                                "execution": "dequantised cache (fake-quant)"})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
