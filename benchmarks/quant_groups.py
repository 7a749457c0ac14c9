"""Per-group quantization error by channel order: identity vs sort-by-range vs cluster-by-range.

int4 with groups of 32 and int8 with groups of 32 (symmetric min-max), on every MiniLM weight
(groups along the input dim, per output row) and on MiniLM activations captured over
calibration text (FFN inputs and the residual stream; groups along channels, per token).
Error is relative: ‖Q(x) − x‖² / ‖x‖².

    .venv/bin/python benchmarks/quant_groups.py [--matrix X.npy]   # rows × channels
"""

from __future__ import annotations

import argparse

import numpy as np
from icd_adapter_quant.minmax import quantize_dequantize

from icd_core.layout.channel_order import cluster_order, sort_order

SCHEMES = (("int4", 32), ("int8", 32))


def relative_error(x: np.ndarray, dtype: str, group: int) -> float:
    q = quantize_dequantize(x, 1, dtype, group, True)
    return float(((q - x) ** 2).sum() / (x ** 2).sum())


def row(label: str, x: np.ndarray) -> str:
    x = x.astype(np.float64)
    cells = []
    for dtype, group in SCHEMES:
        base = relative_error(x, dtype, group)
        s = relative_error(x[:, sort_order(x)], dtype, group)
        c = relative_error(x[:, cluster_order(x, group, 0)], dtype, group)
        cells.append(f"{base:9.2e} {s / base:6.3f} {c / base:6.3f}")
    return f"{label:<46} {'x'.join(map(str, x.shape)):>10} " + "  ".join(cells)


def header() -> str:
    parts = "  ".join(f"{d + ' g' + str(g):>9} {'sort':>6} {'clust':>6}" for d, g in SCHEMES)
    return f"{'tensor':<46} {'shape':>10} {parts}\n{'':57}(error at identity; sort and cluster as ratios to it)"


def minilm():
    from icd_workload_hf.models import _minilm_path, load_minilm
    from icd_workload_hf.plugin import MiniLMOptions
    from safetensors.numpy import load_file

    from icd_core.config.schema import Config

    weights = load_file(_minilm_path() / "model.safetensors")
    state = load_minilm(MiniLMOptions(tasks=False, groups="ffn,hidden"), 0)
    acts = state.workload.capture(state, Config().graph.activations.batches)
    return weights, acts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", help=".npy rows × channels (groups run along channels)")
    args = parser.parse_args()
    print(header())
    if args.matrix:
        print(row(args.matrix, np.load(args.matrix)))
        return
    weights, acts = minilm()
    for name, w in weights.items():
        if w.ndim == 2 and "embeddings" not in name and w.shape[1] % 32 == 0:
            print(row(name, w))
    for name, a in acts.items():
        print(row(f"activations: {name} ({'FFN input' if 'ffn' in name else 'residual'})", a))


if __name__ == "__main__":
    main()
