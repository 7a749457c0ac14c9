"""SmolLM2 KV cache: low-bit K/V by channel grouping, block eviction, page grouping.

On SmolLM2-135M's 256-token cache (30 layers, 3 KV heads × 64):
1. 2- and 4-bit K/V relative error (‖Q(x)−x‖/‖x‖, mean over layers) and next-token logit KL
   vs the dense cache for: grouped scales without reordering, grouped after a k-means channel
   reorder (SKVQ-style), and KIVI (per-channel keys, per-token values);
2. block eviction (16-token blocks, first and last kept) at 10 % and 25 %: logit KL vs dense,
   importance by key norm and by attention mass;
3. page selection: pages (16 tokens) a decoding query touches to read its top-16 tokens, in
   the cache's own order vs a layout from the ``kv`` co-selection W (spectral).

    .venv/bin/python benchmarks/kv_cache.py
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from icd_adapter_kv.eviction import apply_eviction
from icd_adapter_kv.plugin import KvOptions
from icd_adapter_kv.quant import apply_kv_quant
from icd_solver_spectral.solve import fit_spectral
from icd_workload_hf.plugin import SmolLM2Options
from icd_workload_hf.smollm2 import load_smollm2
from icd_workload_hf.sources import co_access, sparsify

from icd_core import KV_TOKENS
from icd_core.contract.records import Constraints, GraphW
from icd_core.layout.metrics import lines_per_access
from icd_core.run.context import Deadline

KIND = KV_TOKENS


def kl(state, reference) -> float:
    return state.workload.quality(state, state.run(), reference)["kl_nats"].value


def main() -> None:
    state = load_smollm2(SmolLM2Options(groups="kv"), 0)
    reference = state.run()
    print("1. K/V quantization (group 32 channels per token for 'grouped')")
    print(f"{'bits':>4} {'scheme':<26} {'K rel err':>10} {'V rel err':>10} {'logit KL':>10}")
    for bits in (2, 4):
        for label, options in (("grouped, no reorder", KvOptions(mode="quant", bits=bits, reorder="none")),
                               ("grouped, k-means reorder", KvOptions(mode="quant", bits=bits)),
                               ("KIVI (per-ch K, per-tok V)", KvOptions(mode="quant", bits=bits, scheme="kivi"))):
            result = apply_kv_quant(state, options, f"kv:quant:{bits}", KIND, 0)
            s = result.meta.stats
            print(f"{bits:>4} {label:<26} {s['key_rel_error']:10.4f} {s['value_rel_error']:10.4f} "
                  f"{kl(result.state, reference):10.5f}")
    print("\n2. block eviction (16-token blocks, sinks 1, recent 1)")
    print(f"{'drop':>5} {'score':<10} {'tokens kept':>12} {'logit KL':>10}")
    for drop in (0.1, 0.25):
        for score in ("key_norm", "attention"):
            result = apply_eviction(state, KvOptions(block=16, drop=drop, score=score), "kv", KIND)
            kept = sum(v["tokens_after"] for k, v in result.meta.stats.items() if k.startswith("kv."))
            heads = sum(1 for k in result.meta.stats if k.startswith("kv."))
            print(f"{drop:5.2f} {score:<10} {kept / heads:12.0f} {kl(result.state, reference):10.5f}")
    print("\n3. page selection: pages of 16 tokens read per decoding query (its top-16 tokens), per KV head")
    ratios = []
    for group in (g for g in state.groups if g.kind == KIND):
        fit_sets = state.workload.kv_accesses(state, group.name, 16, calibration=True)
        held = state.workload.kv_accesses(state, group.name, 16, calibration=False)  # the decoding queries
        rows = np.repeat(np.arange(len(fit_sets)), [len(s) for s in fit_sets])
        incidence = sp.csr_matrix((np.ones(rows.size), (rows, np.concatenate(fit_sets))),
                                  shape=(len(fit_sets), group.size))
        w = sparsify(co_access(incidence), 32)
        perm = fit_spectral(GraphW(matrix=w, meta={}, block=16), Constraints(), Deadline(30), 0).perm
        ratios.append(lines_per_access(held, perm, 16) / lines_per_access(held, np.arange(group.size), 16))
    print(f"  {len(ratios)} KV heads: co-selection layout / cache order, pages per held-out decoding query: "
          f"median {np.median(ratios):.3f}× (range {min(ratios):.3f}–{max(ratios):.3f}×)")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
