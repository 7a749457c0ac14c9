"""Unstructured and block sparsity as block-sparse (BSR) tiles: does the layout help?

For MiniLM's FFN down-projections (384 × 1536, input dim = the FFN group) pruned by magnitude
to 75 % and 90 %: non-zero 32×32 and 64×64 tiles and BSR matmul time (torch, CPU, fp32, batch
256, A/B interleaved, median) for the identity order, π₀ (spectral on W from FFN activity),
π₁ (spectral on W′ = |M|ᵀ|M| of the pruned weights, blocks of the tile width) and dense.
Then block pruning (64×64 tiles, 75 %): kept magnitude and output error with the TETRIS-style
channel ordering vs the identity order.

    .venv/bin/python benchmarks/sparse_tiles.py [--layers 0,3] [--matrix W.npy]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from icd_adapter_sparsity.apply import _block_order
from icd_adapter_sparsity.nm import block_mask, magnitude_mask, nonzero_tiles
from icd_solver_spectral.solve import fit_spectral
from icd_workload_hf.sources import co_access, sparsify

from icd_core.contract.records import Constraints, GraphW
from icd_core.run.context import Deadline

TOKENS = 256
REPEATS = 15


def spectral(w: sp.csr_matrix, block: int) -> np.ndarray:
    return fit_spectral(GraphW(matrix=w, meta={}, block=block), Constraints(), Deadline(120), 0).perm


def mask_order(pruned: np.ndarray, block: int) -> np.ndarray:
    incidence = sp.csr_matrix((pruned != 0).astype(np.float32))
    return spectral(sparsify(co_access(incidence), 32), block)


def bsr_times(matrices: dict[str, np.ndarray], b: int) -> dict[str, float]:
    x = torch.randn(matrices[next(iter(matrices))].shape[1], TOKENS)
    ops = {}
    for name, w in matrices.items():
        t = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        ops[name] = t if name == "dense" else t.to_sparse_bsr((b, b))  # beta API warning is expected
    samples = {name: [] for name in ops}
    for _ in range(REPEATS):  # interleaved A B C …, so drift hits all
        for name, op in ops.items():
            t0 = time.perf_counter()
            op @ x
            samples[name].append(time.perf_counter() - t0)
    return {name: 1e3 * float(np.median(s)) for name, s in samples.items()}


def activity_orders(layers: list[int]) -> tuple[dict[int, np.ndarray], object]:
    """π₀ per FFN layer (spectral on W from MiniLM's activity), and the MiniLM state."""
    from icd_workload_hf import plugin
    from icd_workload_hf.models import load_minilm
    from icd_workload_hf.plugin import MiniLMOptions

    from icd_core.config.schema import Config
    from icd_core.plugin.specs import resolve
    from icd_core.testing import context, fresh_manager

    manager = fresh_manager(plugin)
    state = load_minilm(MiniLMOptions(tasks=False), 0)
    ctx, source = context(manager, Config()), resolve(manager.registry, "graph", "activations")
    out = {}
    for layer in layers:
        group = state.group(f"L{layer}.ffn")
        w = manager.call("icd_build_w", ctx=ctx, source=source, state=state, group=group)
        out[layer] = spectral(w.matrix, 16)
    return out, state


def report(label: str, w: np.ndarray, pi0: np.ndarray | None) -> None:
    print(f"\n{label}  {w.shape[0]}×{w.shape[1]}")
    print(f"{'sparsity':>9} {'order':<9} {'tiles32':>8} {'tiles64':>8} {'BSR32 ms':>9} {'BSR64 ms':>9} {'dense ms':>9}")
    for rate in (0.75, 0.9):
        pruned = np.where(magnitude_mask(np.abs(w), rate), w, 0)
        orders = {"identity": np.arange(w.shape[1])}
        if pi0 is not None:
            orders["pi0"] = pi0
        orders["pi1"] = mask_order(pruned[:, orders.get("pi0", orders["identity"])], 32)
        if pi0 is not None:
            orders["pi1"] = pi0[orders["pi1"]]
        laid_out = {name: pruned[:, order] for name, order in orders.items()}
        times = {b: bsr_times({"dense": w, **laid_out}, b) for b in (32, 64)}
        counts = {name: (nonzero_tiles(m, 32), nonzero_tiles(m, 64)) for name, m in laid_out.items()}
        for name in laid_out:
            print(f"{rate:9.2f} {name:<9} {counts[name][0]:8d} {counts[name][1]:8d} "
                  f"{times[32][name]:9.2f} {times[64][name]:9.2f} {times[32]['dense']:9.2f}")
        full = (-(-w.shape[0] // 32)) * (-(-w.shape[1] // 32))
        if all(c[0] == full for c in counts.values()):
            print(f"{'':9} every 32×32 tile keeps a non-zero in every order: no layout lets BSR skip tiles here")
    x = np.random.default_rng(0).standard_normal((TOKENS, w.shape[1]))
    score = np.abs(w)
    for name, order in (("identity", np.arange(w.shape[1])), ("tetris", _block_order(score, 64))):
        kept = np.where(block_mask(score[:, order], 64, 0.75), w[:, order], 0)
        error = np.linalg.norm(x[:, order] @ kept.T - x @ w.T) / np.linalg.norm(x @ w.T)
        print(f"block 64×64 at 75 %, {name:<8}: kept magnitude {np.abs(kept).sum() / score.sum():.4f}, "
              f"output error {error:.4f} (N(0,1) inputs)")



def main() -> None:
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    warnings.filterwarnings("ignore", message=".*sparse BSR tensor support is in beta.*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="0,3")
    parser.add_argument("--matrix", help=".npy 2-D weight (input axis last); π₀ is skipped (no activity)")
    args = parser.parse_args()
    if args.matrix:
        report(args.matrix, np.load(args.matrix), None)
        return
    layers = [int(x) for x in args.layers.split(",")]
    orders, state = activity_orders(layers)
    for layer in layers:
        w = state.tensors[f"encoder.layer.{layer}.output.dense.weight"].numpy()
        report(f"MiniLM L{layer} output.dense", w, orders[layer])


if __name__ == "__main__":
    main()
