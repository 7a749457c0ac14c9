"""Side-by-side diff of two finished runs (``icd compare``)."""

from __future__ import annotations

from typing import Any

from .report_model import RunRecord, comparison_rows


def final_branch(metrics: dict[str, Any]) -> str:
    results = metrics.get("results", {})
    return next((b for b in ("iterative", "linear", "pre") if b in results), "pre")


def diff_runs(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """Each metric of each run's final branch, with delta and ratio (b vs a)."""
    branch_a, branch_b = final_branch(a.metrics), final_branch(b.metrics)
    rows_a = {r["metric"]: r for r in comparison_rows(a.metrics)}
    rows_b = {r["metric"]: r for r in comparison_rows(b.metrics)}
    rows = []
    for metric in list(rows_a) + [m for m in rows_b if m not in rows_a]:
        va = rows_a.get(metric, {}).get(branch_a)
        vb = rows_b.get(metric, {}).get(branch_b)
        both = va is not None and vb is not None
        rows.append({"metric": metric, "a": va, "b": vb,
                     "delta": vb - va if both else None,
                     "ratio": vb / va if both and va else None,
                     "source_a": rows_a.get(metric, {}).get("source"),
                     "source_b": rows_b.get(metric, {}).get("source")})
    return {"a": {"name": a.metrics["run"]["name"], "branch": branch_a, "tag": a.metrics["run"]["version_tag"]},
            "b": {"name": b.metrics["run"]["name"], "branch": branch_b, "tag": b.metrics["run"]["version_tag"]},
            "rows": rows}
