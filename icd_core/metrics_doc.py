"""The ``metrics.json`` document of a run: run info, results per branch, gates, environment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .config import Config
from .environment import fingerprint
from .events import EventBus
from .gates import evaluate_gates
from .selection import Selection
from .verdict import verdict


def _gates(cfg: Config, results: dict[str, Any], error: str | None, paired: dict[str, Any]) -> dict[str, Any]:
    if cfg.pipeline.mode != "compare" or "iterative" not in results:
        reason = "gates compare iterative with linear: needs pipeline.mode 'compare'" if error is None else "run failed"
        return {"evaluated": False, "verdicts": [], "reason": reason}
    primary = results["pre"]["primary_quality"]
    verdicts = evaluate_gates(results["linear"], results["iterative"], primary, cfg.gates)
    pair = paired.get("iterative_vs_linear")
    if pair:  # the same ratio from interleaved rounds, with its bootstrap CI
        verdicts[0].update(paired_median_pct=pair["median_pct"], ci95_pct=pair["ci95_pct"],
                           significant=pair["ci95_pct"][1] < 0 or pair["ci95_pct"][0] > 0)
    return {"evaluated": True, "reason": None, "primary_quality": primary, "verdicts": verdicts}


def metrics_document(*, cfg: Config, sel: Selection, bus: EventBus, name: str, tag: str, started: datetime,
                     duration: float, results: dict[str, Any], fits: list[dict[str, Any]],
                     rollback: dict[str, Any] | None, error: str | None, final_digest: str | None,
                     equivalence: dict[str, Any] | None, paired: dict[str, Any]) -> dict[str, Any]:
    metrics = {
        "schema": "icd.metrics/1",
        "run": {"name": name, "mode": cfg.pipeline.mode, "ok": error is None, "error": error,
                "version_tag": tag, "seed": cfg.seed, "workload": sel.workload.text,
                "graph": sel.graph.text if sel.graph else None, "solver": sel.solver.text,
                "adapters": [a.text for a in sel.adapters], "measures": [m.text for m in sel.measures],
                "started": started.isoformat(timespec="seconds"), "duration_s": duration,
                "repeats": cfg.pipeline.repeats, "warmup_iter": cfg.pipeline.warmup_iter},
        "results": results, "fits": fits, "gates": _gates(cfg, results, error, paired), "rollback": rollback,
        "equivalence": equivalence, "latency_pairs": paired,
        "final": {"state_digest": final_digest, "rolled_back": rollback is not None},
        "events": {"count": len(bus.events), "overhead_s": bus.overhead_s,
                   "overhead_pct": 100.0 * bus.overhead_s / duration if duration else None,
                   "counters": bus.counters},
        "env": {**fingerprint(), "fixed_clock_requested": cfg.pipeline.fixed_clock},
    }
    metrics["verdict"] = verdict(metrics)
    return metrics
