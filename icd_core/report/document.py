"""The documents of a run: ``metrics.json`` (run info, results per branch, paired comparisons,
gates, environment) and ``perm.json`` (π₀ / π₁ per group, and whether they are in effect)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icd_core.config.schema import Config
from icd_core.report.environment import fingerprint
from icd_core.report.finished import SCHEMA
from icd_core.report.gates import evaluate_gates
from icd_core.report.verdict import verdict
from icd_core.run.events import EventBus
from icd_core.run.permcache import version_tag
from icd_core.run.record import RunRecord
from icd_core.run.results import BranchResult, all_changes, is_control


def _gates(cfg: Config, results: Mapping[str, BranchResult], error: str | None) -> dict[str, Any]:
    if cfg.pipeline.mode != "compare" or "iterative" not in results:
        reason = "gates compare iterative with linear: needs pipeline.mode 'compare'" if error is None else "run failed"
        return {"evaluated": False, "verdicts": [], "reason": reason}
    verdicts = evaluate_gates(results["linear"], results["iterative"], cfg.gates, cfg.seed)
    return {"evaluated": True, "reason": None, "primary_quality": results["pre"].primary_quality,
            "allow_modelled": cfg.gates.allow_modelled, "verdicts": verdicts}


def execution(results: Mapping[str, BranchResult]) -> dict[str, Any]:
    """Which kernels the timed states ran: layout-reading ones, or dense ones only."""
    kernels = {b: dict(r.best("lat_ms").detail.get("kernels", {})) for b, r in results.items()
               if r.best("lat_ms") is not None and r.best("lat_ms").value is not None}
    reading = {b: k for b, k in kernels.items() if k}
    return {"layout_reading": bool(reading), "kernels": reading or "dense on every state"}


COST_FIGURES = ("kv_pages_per_query", "bsr_tiles", "cache_misses_per_access")
"""What an arm reads, first found wins: KV pages (paged attention), BSR tiles, modelled misses."""
STEPS = (("layout", "identity", "linear"), ("re-permutation", "linear", "iterative"),
         ("layout + re-permutation", "identity", "iterative"), ("identity vs dense", "pre", "identity"),
         ("linear vs dense", "pre", "linear"), ("iterative vs dense", "pre", "iterative"))


def decomposition(results: Mapping[str, BranchResult], changes: Mapping[str, Any], searches: Mapping[str, Any],
                  backend: str, metric: str | None) -> dict[str, Any] | None:
    """Each arm at its own rate (dense, identity, linear, iterative), and what layout and
    re-permutation each bought: paired changes of latency, attention time, cost and quality."""
    if "identity" not in results:
        return None
    cost = next((key for key in COST_FIGURES if any(r.best(key) and r.best(key).value is not None
                                                    for r in results.values())), None)
    quality = metric or results["pre"].primary_quality
    reference = results["pre"].quality.get(quality)
    worse = -1.0 if reference is None or reference.better == "higher" else 1.0  # a loss is positive
    arms = {}
    for arm, result in results.items():
        if is_control(arm):
            continue
        search = searches.get(arm, {})
        change = changes.get(f"{arm}_vs_pre", {}).get(quality, {})
        arms[arm] = {"rate": search.get("chosen"), "rate_met": search.get("met"), "knob": search.get("knob"),
                     "quality_metric": quality,
                     "quality_loss": worse * change["estimate"] + 0.0 if change.get("estimate") is not None else
                     (0.0 if arm == "pre" else None),
                     "cost": result.best(cost).value if cost and result.best(cost) else None, "cost_unit": cost,
                     **{key: (result.best(key).value if result.best(key) else None)
                        for key in ("lat_ms", "attention_ms")},
                     "ms_per_token": _ms_per_token(result)}
    steps = {}
    for label, a, b in STEPS:
        row = changes.get(f"{b}_vs_{a}")
        if row is not None:
            steps[label] = {key: row[key] for key in ("lat_ms", "attention_ms", cost, quality) if key and key in row}
    return {"backend": backend, "cost": cost, "arms": arms, "steps": steps}


CONTROL_WHAT = ("the same transforms after a random function-preserving order of every group instead of π₀ "
                "(seeded by the run seed and the arm's name); paired against the linear arm on the same items")


def control(results: Mapping[str, BranchResult], changes: Mapping[str, Any], no_control: str | None
            ) -> dict[str, Any]:
    """Per quality metric: each random order's value, the best of them, and π₀'s (linear)
    paired change against that best — what separates the layout from chance."""
    randoms = [b for b in results if is_control(b)]
    if not randoms or "linear" not in results:
        return {"orders": 0, "reason": no_control or "the run stopped before its arms ran"}
    metrics = {}
    for metric, figure in results["linear"].quality.items():
        values = {r: results[r].quality[metric].value for r in randoms
                  if metric in results[r].quality and results[r].quality[metric].value is not None}
        if not values or figure.value is None:
            continue
        best = (max if figure.better == "higher" else min)(values, key=values.__getitem__)
        metrics[metric] = {"random": values, "best": best, "linear": figure.value,
                           "linear_vs_best": changes.get(f"linear_vs_{best}", {}).get(metric)}
    return {"orders": len(randoms), "what": CONTROL_WHAT, "metrics": metrics}


def _ms_per_token(result: BranchResult) -> float | None:
    """Wall-clock ms per token (per decoded token for a decoder) from the measured throughput."""
    rate = result.best("toks_per_s")
    return 1e3 / rate.value if rate is not None and rate.value else None


def metrics_document(run: RunRecord, bus: EventBus, plugins: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``metrics.json`` document of a run record (``bus``: its events and counters)."""
    cfg, sel, results, duration = run.config, run.selection, run.results, run.duration_s
    metrics = {
        "schema": SCHEMA,
        "run": {"name": run.name, "mode": cfg.pipeline.mode, "ok": run.ok, "error": run.error,
                "version_tag": run.tag, "seed": cfg.seed, "workload": sel.workload.text,
                "graph": sel.graph.text if sel.graph else None, "solver": sel.solver.text,
                "adapters": [a.text for a in sel.adapters], "measures": [m.text for m in sel.measures],
                "started": run.started.isoformat(timespec="seconds"), "duration_s": duration,
                "repeats": cfg.pipeline.repeats, "warmup_iter": cfg.pipeline.warmup_iter,
                "plugins": list(plugins or [])},
        "results": {b: r.to_json() for b, r in results.items()},
        "comparisons": all_changes(results, cfg.seed), "timing": run.timing,
        "execution": {"backend": cfg.execution.backend, **execution(results)}, "rate_search": dict(run.searches),
        "fits": list(run.fits), "gates": _gates(cfg, results, run.error), "rollback": run.rollback,
        "equivalence": run.equivalence,
        "final": {"state_digest": run.final_digest, "rolled_back": run.rollback is not None},
        "events": {"count": len(bus.events), "overhead_s": bus.overhead_s,
                   "overhead_pct": 100.0 * bus.overhead_s / duration if duration else None,
                   "counters": bus.counters},
        "env": {**fingerprint(), "fixed_clock_requested": cfg.pipeline.fixed_clock},
    }
    metrics["decomposition"] = decomposition(results, metrics["comparisons"], run.searches, cfg.execution.backend,
                                             run.rate_metric)
    metrics["control"] = control(results, metrics["comparisons"], run.no_control)
    metrics["verdict"] = verdict(metrics)
    return metrics


def perm_document(tag: str, perms: Mapping[str, Mapping[str, Any]], rollback: dict[str, Any] | None) -> dict[str, Any]:
    """π₀ and π₁ per group with their tags; a rolled-back run says they are not in effect."""
    doc: dict[str, Any] = {"version_tag": tag, "groups": {
        name: {**entry, "tag": version_tag(tag, name)} for name, entry in perms.items()}}
    if rollback is not None:
        doc["rolled_back"] = {"in_effect": "none: the pre-run order was restored" if rollback["verified"]
                              else "unknown: the rollback did not verify", "trigger": rollback["trigger"],
                              "verified": rollback["verified"], "why": rollback["why"]}
    return doc
