"""``--format compressed-tensors``: int4 / int8 group-quantized weights in that library's packed
format, the groups contiguous in icd's order (no ``g_idx``: the permutation that made them is
already in the weights, and preserves the function).

The quant adapter executes dequantised weights; each group's scale (and zero point) is read
back from them exactly: min-max puts a group's extreme value on a grid end, so the scale is
``max|w| / 2^(b−1)`` or ``max|w| / (2^(b−1) − 1)`` (symmetric: whichever puts every value on the
grid) or ``(max w − min w) / (2^b − 1)`` (asymmetric). The
library's own ``PackedQuantizationCompressor`` packs them, and its ``decompress`` must give the
state's weights back within 1e-6 (relative to each tensor's largest value) before anything is
written. Needs the optional ``compressed-tensors`` package (``pip install compressed-tensors``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from icd_core import InputDataError, ModelState

DECOMPRESS_TOLERANCE = 1e-6
BITS = {"int4": 4, "int8": 8}


def _quant_meta(state: ModelState):
    metas = [m for m in state.applied if m.details.get("quant") and not m.noop]
    if not metas:
        raise InputDataError("export --format compressed-tensors: the state has no quantization transform "
                             "(use --format hf, or run with --adapter quant:int4:g128)")
    if len(metas) > 1:
        raise InputDataError(f"export --format compressed-tensors: {len(metas)} quantization transforms applied; "
                             f"one is supported")
    meta = metas[0]
    dtype = meta.details["quant"]["dtype"]
    if dtype not in BITS:
        raise InputDataError(f"export --format compressed-tensors: {dtype} is not supported "
                             f"(int4, int8; use --format hf)")
    return meta


def symmetric_scale(runs: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """The scale of each run (last axis) of dequantised symmetric values: its largest magnitude is
    either on the grid's negative end (max|w| / |qmin|) or, clipped, on its positive end
    (max|w| / qmax); the first is taken where every value lands on the grid with it."""
    amax = runs.abs().amax(-1)
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    low = safe / -qmin
    q = runs / low[..., None]
    on_grid = ((q - q.round()).abs() <= 1e-6 * -qmin).all(-1) & (q.round() <= qmax).all(-1)
    return torch.where(amax > 0, torch.where(on_grid, low, safe / qmax), torch.ones_like(amax))


def scales_of(weight: torch.Tensor, bits: int, symmetric: bool, group: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (row, group of input channels): the scale and the library's zero point (its signed
    grid, as a float: it may fall off that grid) that put the dequantised ``weight`` back on its
    grid. ``group`` None: one per row."""
    rows, columns = weight.shape
    g = group or columns
    runs = weight.double().reshape(rows, columns // g, g)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if symmetric:
        scale = symmetric_scale(runs, qmin, qmax)
        zero = torch.zeros_like(scale)
    else:
        lo, hi = runs.amin(-1), runs.amax(-1)
        span = hi - lo
        flat = lo.abs()  # a constant group: its value is ±scale on the grid, zero point 0
        scale = torch.where(span > 0, span / (2 ** bits - 1), torch.where(flat > 0, flat, torch.ones_like(flat)))
        zero = torch.where(span > 0, torch.round(-lo / scale) + qmin, torch.zeros_like(scale))
    return scale.float(), zero


def export_compressed(state: ModelState, module: torch.nn.Module, weights: dict[str, torch.Tensor],
                      out_dir: Path) -> dict[str, Any]:
    """Replace the quantized weights in ``weights`` by their packed form, write the library's
    ``quantization_config`` into config.json, and check the round trip."""
    try:
        from compressed_tensors.compressors import PackedQuantizationCompressor
        from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme
    except ImportError:
        raise InputDataError("export --format compressed-tensors: the compressed-tensors package is not installed "
                             "(pip install compressed-tensors)") from None
    meta = _quant_meta(state)
    bits, symmetric = BITS[meta.details["quant"]["dtype"]], meta.details["quant"]["method"] == "minmax-sym"
    group = meta.details["quant"]["group"] if isinstance(meta.details["quant"]["group"], int) else None
    if meta.details["quant"]["group"] == "per-tensor":
        raise InputDataError("export --format compressed-tensors: per-tensor scales are not supported (use groups)")
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric,
                            strategy="group" if group else "channel", group_size=group)
    modules = [name.rsplit(".", 1)[0] for name in meta.stats["tensors"]]
    for name in modules:
        if not isinstance(module.get_submodule(name), torch.nn.Linear):
            raise InputDataError(f"export --format compressed-tensors: {name} is a "
                                 f"{type(module.get_submodule(name)).__name__}, not a Linear (use --format hf)")
    scheme = QuantizationScheme(targets=modules, weights=args)
    worst, stored, float32 = 0.0, 0, 0
    for name in modules:
        weight = weights.pop(f"{name}.weight")
        scale, zero = scales_of(weight, bits, symmetric, group)
        outside = int(((zero < -(2 ** (bits - 1))) | (zero > 2 ** (bits - 1) - 1)).sum())
        if outside:
            raise InputDataError(f"export --format compressed-tensors: {name}: {outside} asymmetric groups have a range "
                                 f"that excludes 0, so their zero point lies off the int{bits} grid that "
                                 f"compressed-tensors packs it in (export a symmetric quant, or --format hf)")
        local = {"weight": weight, "weight_scale": scale, "weight_zero_point": zero.to(torch.int8)}
        packed = PackedQuantizationCompressor.compress(local, scheme)
        restored = PackedQuantizationCompressor.decompress(dict(packed), scheme)["weight"].float()
        worst = max(worst, float((restored - weight).abs().max() / weight.abs().max().clamp_min(1e-30)))
        weights.update({f"{name}.{k}": v for k, v in packed.items()})
        stored += sum(int(v.nbytes) for v in packed.values())
        float32 += 4 * int(weight.numel())
    if not worst <= DECOMPRESS_TOLERANCE:
        raise InputDataError(f"export --format compressed-tensors: decompressed weights differ from the run's by "
                             f"{worst:.3g} (max relative) > {DECOMPRESS_TOLERANCE:g}; nothing exported")
    config = QuantizationConfig(config_groups={"group_0": scheme}, format="pack-quantized",
                                quantization_status="compressed")
    module.save_pretrained(out_dir, state_dict=weights)
    import compressed_tensors

    path = out_dir / "config.json"
    document = json.loads(path.read_text())
    document["quantization_config"] = {"version": compressed_tensors.__version__, "quant_method": "compressed-tensors",
                                       **config.model_dump(exclude=["quant_method"]),
                                       "sparsity_config": _sparsity(state)}
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return {"decompress_check": {"max_rel_diff": worst, "tolerance": DECOMPRESS_TOLERANCE,
                                 "what": "compressed_tensors PackedQuantizationCompressor.decompress vs the state's "
                                         "dequantised weights, per tensor"},
            "quantized_modules": len(modules), "g_idx": None,
            "linears_left_unquantized": sorted(set(linears(module)) - set(modules)),
            "stored": {"count": len(modules), "bytes": stored, "float32_bytes": float32,
                       "vs_float32": round(stored / float32, 4) if float32 else None,
                       "what": "every stored tensor of the quantized Linears (packed weight, scale, zero point, "
                               "shape) as written, against their weights in float32"}}


def linears(module: torch.nn.Module) -> list[str]:
    """The names of every Linear in ``module`` (the LM head and any pooler too)."""
    return [name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]


def _sparsity(state: ModelState) -> dict:
    """2:4 metadata in the library's sparsity-config shape (weights stored dense, zeros in memory order)."""
    metas = [m for m in state.applied if m.details.get("sparsity") and not m.noop]
    if not metas:
        return {}
    meta = metas[-1]
    n, m = meta.details["sparsity"].get("n"), meta.details["sparsity"].get("m")
    structure = f"{n}:{m}" if n and m else "unstructured"
    return {"format": "dense", "sparsity_structure": structure,
            "targets": sorted(t.rsplit(".", 1)[0] for t in meta.stats.get("tensors", []))}
