"""N:M efficacy of channel permutations: ours vs identity, random and a RIA-style baseline.

Efficacy = share of the gap closed between the default-order N:M keep (0 %) and the per-row
best-half bound (100 %). Apex's reference matrix (``np.random.seed(1); np.random.rand(128,
64)``: unpruned 4083.169, default 2:4 keep 2852.377, per-row half 3042.332; Apex OSG(8)
35.5 %, OSG(12) 36.6 %) is searched on one core; then every MiniLM weight whose input dim
is a multiple of m, with the layer-output error on N(0, 1) inputs (labelled as such).

    .venv/bin/python benchmarks/nm_efficacy.py                       # Apex + MiniLM table
    .venv/bin/python benchmarks/nm_efficacy.py --matrix W.npy [--n 2 --m 4] --json

The RIA-style baseline: channels sorted by importance are dealt to groups in a snake, then
each slot is re-dealt by a linear assignment that maximises kept score (``snake_assignment``;
our search starts from it and keeps swapping).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from icd_adapter_sparsity.efficacy import (
    efficacy,
    kept,
    row_bound,
    search,
    snake_assignment,
)
from icd_adapter_sparsity.nm import nm_mask

os.environ.setdefault("OMP_NUM_THREADS", "1")  # "on one CPU core"


def best_random(a: np.ndarray, n: int, m: int, tries: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return max(kept(a, rng.permutation(a.shape[1]), n, m) for _ in range(tries))


def evaluate(w: np.ndarray, n: int, m: int, random_tries: int) -> dict:
    a = np.abs(w.astype(np.float64))
    default, bound = kept(a, np.arange(a.shape[1]), n, m), row_bound(a, n, m)
    t0 = time.perf_counter()
    ria = kept(a, snake_assignment(a, n, m), n, m)
    ria_s = time.perf_counter() - t0
    perm, stats = search(a, n, m, budget_s=600, seed=0)
    return {"shape": list(w.shape), "n": n, "m": m, "kept_identity": default, "bound": bound,
            "efficacy_pct": {"identity": 0.0, "random_best": efficacy(default, best_random(a, n, m, random_tries, 0), bound),
                             "ria_snake_assignment": efficacy(default, ria, bound), "ours": stats["efficacy_pct"]},
            "search_s": {"ria_snake_assignment": ria_s, "ours": stats["search_s"]}, "rounds": stats["rounds"],
            "perm": perm}


def layer_error(w: np.ndarray, perm: np.ndarray | None, n: int, m: int) -> float:
    x = np.random.default_rng(0).standard_normal((256, w.shape[1]))
    order = np.arange(w.shape[1]) if perm is None else perm
    pruned = np.zeros_like(w)
    pruned[:, order] = np.where(nm_mask(w[:, order], 1, n, m), w[:, order], 0)
    return float(np.linalg.norm(x @ (w - pruned).T) / np.linalg.norm(x @ w.T))


def minilm_matrices():
    from icd_workload_hf.models import _minilm_path
    from safetensors.numpy import load_file

    weights = load_file(_minilm_path() / "model.safetensors")
    return {k: v for k, v in weights.items() if k.endswith("weight") and v.ndim == 2 and "embeddings" not in k
            and v.shape[1] % 4 == 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", help=".npy file: a 2-D weight, reduction (input) axis last")
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--random", type=int, default=1000, help="random permutations tried (best kept)")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args()
    if args.matrix:
        result = evaluate(np.load(args.matrix), args.n, args.m, args.random)
        result.pop("perm")
        print(json.dumps(result, indent=None if args.json else 2))
        return
    np.random.seed(1)
    apex = np.random.rand(128, 64)
    t0 = time.perf_counter()
    _, stats = search(apex, 2, 4, budget_s=1.0, seed=0)
    elapsed = time.perf_counter() - t0
    ref = evaluate(apex, 2, 4, 100_000)
    print("Apex reference matrix (128×64, 2:4)")
    print(f"  unpruned {apex.sum():.3f}  default keep {ref['kept_identity']:.3f}  per-row half {ref['bound']:.3f}")
    for name, value in ref["efficacy_pct"].items():
        print(f"  {name:<22} efficacy {value:6.2f} %")
    print(f"  ours in {elapsed:.2f} s on one core: {stats['efficacy_pct']:.2f} % — target ≥ 35.5 % (OSG(8)) in ≤ 1 s: "
          f"{'meets' if stats['efficacy_pct'] >= 35.5 and elapsed <= 1 else 'MISSES'}; "
          f"stretch ≥ 36.6 % (OSG(12)): {'meets' if stats['efficacy_pct'] >= 36.6 else 'misses'}")
    print("\nMiniLM weights (2:4 along the input dim); layer error = ‖(W−Ŵ)x‖/‖Wx‖ on N(0,1) inputs")
    print(f"{'weight':<48} {'shape':>10} {'random':>7} {'RIA':>7} {'ours':>7} {'s':>5} {'err id':>7} {'err ours':>8}")
    for name, w in minilm_matrices().items():
        r = evaluate(w, 2, 4, 20)
        e = r["efficacy_pct"]
        print(f"{name:<48} {'x'.join(map(str, w.shape)):>10} {e['random_best']:7.2f} {e['ria_snake_assignment']:7.2f} "
              f"{e['ours']:7.2f} {r['search_s']['ours']:5.1f} {layer_error(w, None, 2, 4):7.4f} "
              f"{layer_error(w, r['perm'], 2, 4):8.4f}")


if __name__ == "__main__":
    main()
