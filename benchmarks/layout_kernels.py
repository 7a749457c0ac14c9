"""Where layout pays: kernels that read the layout, each arm at its own rate of equal quality.

Every path is one `icd run` through the CLI (compare mode with a layout-reading backend, so
the arms are dense, identity — the transform with no permutation —, linear — π₀ then the
transform — and iterative — π₀, transform, W′, π₁), each arm at the most aggressive rate
whose quality loss stays within the limit (a bounded bisection on the upper end of the paired
CI). Latency and attention time are paired, interleaved wall clock; pages and tiles are what
the kernels read. Then each kernel's own cost curve shows its time following pages or tiles.

    python benchmarks/layout_kernels.py            # SmolLM2 at 4,096 tokens, MiniLM BSR
    python benchmarks/layout_kernels.py --quick    # 2,048 tokens, 16 decoded, fewer trials and rounds
    python benchmarks/layout_kernels.py --json     # one JSON document on stdout

Quality decides per path: SmolLM2 by next-token KL vs the dense model (nats per decoded token,
smooth and per token; top-1 agreement and perplexity are reported beside it), MiniLM by the
embedding fidelity of every labelled-task item (the labelled task scores beside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGETS = {"pages_vs_identity": 1.5, "attention_vs_identity": 1.3, "iterative_latency_pct": -20.0}


def paths(quick: bool) -> list[dict]:
    prompt, decode = (2048, 16) if quick else (4096, 64)
    smollm2 = f"smollm2:prompt={prompt}:decode={decode}:groups=kv"
    light = ["--set", "execution.rate_evaluations=6", "--set", "pipeline.repeats=6"] if quick else []
    kv = ["--backend", "paged", "--measure", "wallclock", "--measure", "kv-pages", *light]
    return [
        {"name": "smollm2-pages", "workload": smollm2, "backend": "paged", "args": [*kv, "--adapter", "kv:pages:16:auto"],
         "transform": "kv:pages:16:auto"},
        {"name": "smollm2-evict-pages", "workload": smollm2, "backend": "paged",
         "args": [*kv, "--adapter", "kv:1:0.05:score=attention", "--adapter", "kv:pages:16:auto"],
         "transform": "kv:1:0.05:score=attention → kv:pages:16:auto"},
        {"name": "minilm-bsr", "workload": "minilm", "backend": "bsr",
         "args": ["--backend", "bsr", "--measure", "wallclock", "--measure", "tiles", *light[2:], "--adapter",
                  "sparsity:block:32:auto", "--set", "execution.rate_limit=1.0"],
         "transform": "sparsity:block:32:auto (fidelity loss <= 1 pp)"},
    ]


def run_path(path: dict, out: Path) -> dict:
    """One `icd run`; the path's arms and ratios from its metrics.json."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "icd_core.cli", "run", "--workload", path["workload"], "--solver",
                           "spectral", *path["args"], "--out-dir", str(out), "--name", path["name"]],
                          capture_output=True, text=True)
    metrics_path = out / path["name"] / "metrics.json"
    if not metrics_path.is_file():
        return {"workload": path["workload"], "backend": path["backend"], "transform": path["transform"],
                "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    m = json.loads(metrics_path.read_text())
    decomposition = m.get("decomposition") or {}
    cost = decomposition.get("cost")
    arms = {}
    for arm, row in decomposition.get("arms", {}).items():
        arms["dense" if arm == "pre" else arm] = {
            "rate": row["rate"], "rate_met": row["rate_met"], "quality_loss": row["quality_loss"],
            "quality_unit": row["quality_metric"],
            "cost": row["cost"], "cost_unit": row["cost_unit"], "latency_ms": row["lat_ms"],
            "attention_ms": row["attention_ms"], "latency_source": "measured:wallclock"}
    comparisons = m.get("comparisons", {})

    def ratio(a: str, b: str) -> dict:
        row = comparisons.get(f"{b}_vs_{a}", {})
        out_row = {}
        for key, label in (("lat_ms", "latency"), ("attention_ms", "attention"), (cost, "cost")):
            change = row.get(key) if key else None
            if change and change.get("estimate") is not None:
                out_row[label] = 1 + change["estimate"] / 100
                ci = [1 + x / 100 for x in change["ci95"]] if change.get("ci95") else None
                out_row["ci95" if label == "latency" else f"{label}_ci95"] = ci
        return out_row

    search = m.get("rate_search", {})
    metric = next(iter(search.values()), {}).get("metric")
    return {"workload": path["workload"], "backend": path["backend"], "transform": path["transform"],
            "quality_metric": metric, "quality_limit": next(iter(search.values()), {}).get("limit"),
            "arms": arms, "ratios": {"linear_vs_identity": ratio("identity", "linear"),
                                     "iterative_vs_linear": ratio("linear", "iterative"),
                                     "linear_vs_dense": ratio("pre", "linear")},
            "run_s": round(time.perf_counter() - t0, 1), "ok": m["run"]["ok"], "verdict": m["verdict"],
            "selectors": _selectors(m)}


def _selectors(m: dict) -> dict:
    out = {}
    for arm in ("identity", "linear", "iterative"):
        for t in m.get("results", {}).get(arm, {}).get("transforms", []):
            if (t.get("kv") or {}).get("mode") == "pages":
                out[arm] = t["stats"]["selector_choice"]["chosen"]
    return out


def time_call(call, repeats: int) -> float:
    """Milliseconds per call, after one untimed call."""
    call()
    t0 = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - t0) / repeats * 1e3


def paged_curve(tokens: int, repeats: int = 20) -> list[dict]:
    """Time of one decoding step's paged attention (3 KV heads × 3 query heads, d 64) as the
    pages read grow, against exact grouped attention over the same cache."""
    import torch
    from icd_workload_hf.kvstore import KVStore
    from icd_workload_hf.paged import (
        AttentionRuntime,
        LayerPages,
        PagePlan,
        Summaries,
        grouped_attention,
        paged_attention,
    )

    torch.manual_seed(0)
    kv, group, d, page = 3, 3, 64, 16
    cache = {f"cache.0.{j}.{kind}": torch.randn(1, tokens, d) for j in range(kv) for kind in ("key", "value")}
    store = KVStore.of(cache, 1, kv, 1, page)
    key, value = store.append(0, torch.randn(1, kv, 1, d), torch.randn(1, kv, 1, d))
    query = torch.randn(1, kv * group, 1, d)
    pages = -(-tokens // page)
    summaries = Summaries.of(store.keys[0][0, :, :tokens], page)

    def timed(call) -> float:
        return time_call(call, repeats)

    rows = [{"pages": pages, "kernel": "exact grouped", "ms": timed(lambda: grouped_attention(query, key, value, 0.125,
                                                                                               tokens))}]
    for budget in (4, 8, 16, 32, 64, 128):
        if budget >= pages:
            break
        runtime = AttentionRuntime(mode="paged", cached=tokens, store=store, path="gather",
                                   plan=PagePlan(page, budget, {(0, j): "centroid" for j in range(kv)}))
        runtime.layers = {0: LayerPages.of(summaries, ["centroid"] * kv, [None] * kv, store.capacity // page)}
        rows.append({"pages": budget, "kernel": "paged, gathered", "ms": timed(
            lambda: paged_attention(0, query, key, value, 0.125, runtime))})
    return rows


def bsr_curve(repeats: int = 10) -> list[dict]:
    """Time of a MiniLM FFN down-projection (384 × 1536, 1,024 tokens) as BSR with a share of
    its 32 × 32 tiles kept, against the dense product."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    w, x = torch.randn(384, 1536), torch.randn(1024, 1536)
    xt = x.T.contiguous()
    tiles = torch.rand(384 // 32, 1536 // 32)

    def timed(call) -> float:
        return time_call(call, repeats)

    rows = [{"kept": 1.0, "kernel": "dense", "ms": timed(lambda: F.linear(x, w))}]
    for kept in (0.1, 0.25, 0.5, 0.75, 1.0):
        mask = (tiles <= np.quantile(tiles.numpy(), kept)).repeat_interleave(32, 0).repeat_interleave(32, 1)
        with warnings.catch_warnings():  # torch: "sparse BSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            bsr = (w * mask).to_sparse_bsr((32, 32))
        rows.append({"kept": kept, "kernel": "bsr 32x32", "tiles": int(bsr.values().shape[0]),
                     "ms": timed(lambda: bsr @ xt)})
    return rows


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None else (f"{value:.{digits}g}" if isinstance(value, float) else str(value))


def print_table(doc: dict) -> None:
    for p in doc["paths"]:
        print(f"\n{p['workload']} · {p['backend']} · {p['transform']}")
        if "error" in p:
            print(f"  failed: {p['error']}")
            continue
        print(f"  quality: {p['quality_metric']} loss <= {p['quality_limit']} (upper end of the paired 95 % CI); "
              f"run {p['run_s']} s")
        print(f"  {'arm':<10} {'rate':>6} {'loss':>8} {'cost':>9} {'unit':<20} {'latency ms':>11} {'attention ms':>13}")
        for arm in ("dense", "identity", "linear", "iterative"):
            a = p["arms"].get(arm)
            if a:
                print(f"  {arm:<10} {fmt(a['rate']):>6} {fmt(a['quality_loss']):>8} {fmt(a['cost'], 4):>9} "
                      f"{a['cost_unit'] or '':<20} {fmt(a['latency_ms'], 4):>11} {fmt(a['attention_ms'], 4):>13}")
        for name, r in p["ratios"].items():
            def ci_of(k):
                return r.get("ci95" if k == "latency" else f"{k}_ci95")
            parts = [f"{k} {v:.3f}" + (f" [{ci_of(k)[0]:.3f}, {ci_of(k)[1]:.3f}]" if ci_of(k) else "")
                     for k, v in r.items() if not k.endswith("ci95") and v is not None]
            print(f"  {name:<20} " + "; ".join(parts))
        if p.get("selectors"):
            print(f"  page selectors chosen per head: {p['selectors']}")
    print("\nkernel cost curves")
    for row in doc["curves"]["paged_attention"]:
        print(f"  paged attention, {doc['curves']['tokens']} cached tokens: {row['kernel']:<16} {row['pages']:>4} pages "
              f"{row['ms']:.3f} ms")
    for row in doc["curves"]["bsr"]:
        print(f"  384x1536 weight, 1024 tokens: {row['kernel']:<9} kept {row['kept']:.2f} "
              f"{row.get('tiles', ''):>4} tiles {row['ms']:.2f} ms")
    print("\n" + doc["summary"])


def summary(doc: dict) -> str:
    lines = []
    for p in doc["paths"]:
        r = p.get("ratios", {})
        lvi, ivl = r.get("linear_vs_identity", {}), r.get("iterative_vs_linear", {})
        if "cost" in lvi:
            lines.append(f"{p['workload']}: layout vs identity at equal quality reads {1 / lvi['cost']:.2f}x fewer "
                         f"{p['arms']['linear']['cost_unit']} (target {TARGETS['pages_vs_identity']}x for pages)"
                         + (f", attention {1 / lvi['attention']:.2f}x faster (target {TARGETS['attention_vs_identity']}x)"
                            if "attention" in lvi else "")
                         + (f"; iterative vs linear latency {100 * (ivl['latency'] - 1):+.1f} % "
                            f"[{100 * (ivl['ci95'][0] - 1):+.1f}, {100 * (ivl['ci95'][1] - 1):+.1f}]"
                            if ivl.get("ci95") else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", nargs="*", help="path names to run (smollm2-pages, smollm2-evict-pages, minilm-bsr)")
    parser.add_argument("--keep", metavar="DIR", help="keep the run directories here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="icd-layout-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        chosen = [p for p in paths(args.quick) if not args.only or p["name"] in args.only]
        results = []
        for p in chosen:
            print(f"running {p['name']} …", file=sys.stderr, flush=True)
            results.append(run_path(p, out))
    tokens = 2048 if args.quick else 4096
    doc = {"quick": args.quick, "paths": results,
           "curves": {"tokens": tokens, "paged_attention": paged_curve(tokens), "bsr": bsr_curve()}}
    doc["summary"] = summary(doc) + f"\nbenchmark wall time {time.perf_counter() - t0:.0f} s"
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
