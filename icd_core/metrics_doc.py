"""The documents of a run: ``metrics.json`` (run info, results per branch, paired comparisons,
gates, environment) and ``perm.json`` (π₀ / π₁ per group, and whether they are in effect)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .config import Config
from .environment import fingerprint
from .events import EventBus
from .gates import evaluate_gates
from .permcache import version_tag
from .report_model import SCHEMA
from .results import BranchResult, all_changes
from .selection import Selection
from .verdict import verdict


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


def metrics_document(*, cfg: Config, sel: Selection, bus: EventBus, name: str, tag: str, started: datetime,
                     duration: float, results: Mapping[str, BranchResult], fits: list[dict[str, Any]],
                     rollback: dict[str, Any] | None, error: str | None, final_digest: str | None,
                     equivalence: dict[str, Any] | None, timing: dict[str, Any]) -> dict[str, Any]:
    metrics = {
        "schema": SCHEMA,
        "run": {"name": name, "mode": cfg.pipeline.mode, "ok": error is None, "error": error,
                "version_tag": tag, "seed": cfg.seed, "workload": sel.workload.text,
                "graph": sel.graph.text if sel.graph else None, "solver": sel.solver.text,
                "adapters": [a.text for a in sel.adapters], "measures": [m.text for m in sel.measures],
                "started": started.isoformat(timespec="seconds"), "duration_s": duration,
                "repeats": cfg.pipeline.repeats, "warmup_iter": cfg.pipeline.warmup_iter},
        "results": {b: r.to_json() for b, r in results.items()},
        "comparisons": all_changes(results, cfg.seed), "timing": timing, "execution": execution(results),
        "fits": fits, "gates": _gates(cfg, results, error), "rollback": rollback, "equivalence": equivalence,
        "final": {"state_digest": final_digest, "rolled_back": rollback is not None},
        "events": {"count": len(bus.events), "overhead_s": bus.overhead_s,
                   "overhead_pct": 100.0 * bus.overhead_s / duration if duration else None,
                   "counters": bus.counters},
        "env": {**fingerprint(), "fixed_clock_requested": cfg.pipeline.fixed_clock},
    }
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
