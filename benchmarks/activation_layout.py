"""Does W from real activity carry structure? Lines per access on held-out tokens.

For MiniLM's six FFN layers (1536 dims, GELU: top 10 % |activation| per token) and the repo's
MLP (ReLU non-zeros), W is built from calibration batches by the ``activations`` source, the
spectral solver lays it out, and lines per access (16 fp32 per 64-byte line) is measured on
held-out batches the solver never saw — beside the original order and a random order.

    .venv/bin/python benchmarks/activation_layout.py
"""

from __future__ import annotations

import time

import attrs
import numpy as np
from icd_solver_spectral.solve import fit_spectral
from icd_workload_hf import plugin
from icd_workload_hf.models import load_minilm, load_mlp
from icd_workload_hf.plugin import MiniLMOptions, MlpOptions
from icd_workload_hf.sources import active_sets

from icd_core.config.schema import Config
from icd_core.contract.records import Constraints
from icd_core.layout.metrics import lines_per_access
from icd_core.plugin.specs import resolve
from icd_core.run.context import Deadline
from icd_core.testing import context, fresh_manager

G = 16


def heldout_accesses(state, group, relu: bool, top_frac: float) -> list[np.ndarray]:
    workload = state.workload
    acts = workload.capture(state, len(workload.heldout), heldout=True)[group.name]
    incidence = active_sets(acts, relu, top_frac)
    return [incidence.indices[incidence.indptr[i]:incidence.indptr[i + 1]] for i in range(incidence.shape[0])]


def main() -> None:
    manager = fresh_manager(plugin)
    config = Config()
    ctx = context(manager, config)
    source = resolve(manager.registry, "graph", "activations")
    top_frac = config.graph.activations.top_frac
    rows = []
    for label, state in (("mlp", load_mlp(MlpOptions(), 0)), ("minilm", load_minilm(MiniLMOptions(tasks=False), 0))):
        for group in state.groups:
            t0 = time.perf_counter()
            w = manager.call("icd_build_w", ctx=ctx, source=source, state=state, group=group)
            again = manager.call("icd_build_w", ctx=ctx, source=source, state=state, group=group)
            deterministic = (w.matrix != again.matrix).nnz == 0
            build_s = time.perf_counter() - t0
            fit = fit_spectral(attrs.evolve(w, block=G), Constraints(), Deadline(60), 0)
            relu = state.workload.probes[group.name][0].relu
            held = heldout_accesses(state, group, relu, top_frac)
            ours = lines_per_access(held, fit.perm, G)
            original = lines_per_access(held, np.arange(group.size), G)
            shuffled = lines_per_access(held, np.random.default_rng(0).permutation(group.size), G)
            rows.append((label, group.name, group.size, len(held), original, shuffled, ours, deterministic, build_s))
    print(f"{'workload':<8} {'group':<8} {'dims':>5} {'tokens':>7} {'original':>9} {'random':>8} {'spectral':>9} "
          f"{'spectral/random':>16} {'W deterministic':>16}")
    for label, name, size, tokens, original, shuffled, ours, det, _ in rows:
        print(f"{label:<8} {name:<8} {size:>5} {tokens:>7} {original:9.2f} {shuffled:8.2f} {ours:9.2f} "
              f"{ours / shuffled:16.3f} {str(det):>16}")
    for label in ("mlp", "minilm"):
        ratios = [r[6] / r[5] for r in rows if r[0] == label]
        print(f"{label}: mean spectral/random lines per held-out token = {np.mean(ratios):.3f}")


if __name__ == "__main__":
    main()
