"""Side-by-side diff of two finished runs (``icd compare``).

Two runs were not timed together, so latency cannot be paired: its change comes with an
unpaired bootstrap CI over each run's rounds, and says so. Runs of different workloads,
machines or seeds are compared as asked, with a warning naming what differs.
"""

from __future__ import annotations

from typing import Any

from icd_core.contract.records import Figure, Samples
from icd_core.report.finished import FinishedRun
from icd_core.report.rows import comparison_rows
from icd_core.run.paired import Change, compare

CHECKED = (("workload", ("run", "workload")), ("transforms", ("run", "adapters")), ("solver", ("run", "solver")),
           ("seed", ("run", "seed")), ("mode", ("run", "mode")), ("backend", ("execution", "backend")),
           ("machine (cpu)", ("env", "cpu")), ("machine (cores)", ("env", "cpu_count")), ("gpu", ("env", "gpu")),
           ("device threads", ("timing", "threads", "threads")), ("icd version", ("env", "icd_version")),
           ("torch version", ("env", "torch")))


def final_branch(metrics: dict[str, Any]) -> str:
    results = metrics.get("results", {})
    return next((b for b in ("iterative", "linear", "pre") if b in results), "pre")


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def plugin_versions(metrics: dict[str, Any]) -> dict[str, str]:
    return {p["distribution"]: p["version"] for p in metrics.get("run", {}).get("plugins", [])
            if p.get("distribution") and p.get("distribution") != "icd-co"}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What makes two runs' figures not like for like (workload, transforms, machine, plugin
    versions, …)."""
    out = []
    for label, path in CHECKED:
        va, vb = _get(a, path), _get(b, path)
        if va != vb:
            out.append(f"the runs differ in {label} ({va!r} vs {vb!r}): their figures are not like for like")
    pa, pb = plugin_versions(a), plugin_versions(b)
    changed = sorted(d for d in set(pa) | set(pb) if pa.get(d) != pb.get(d))
    if changed:
        said = ", ".join(f"{d} {pa.get(d, 'absent')} vs {pb.get(d, 'absent')}" for d in changed)
        out.append(f"the runs differ in plugin versions ({said}): their figures are not like for like")
    return out


def latency_change(a: dict[str, Any], b: dict[str, Any]) -> Change | str:
    """Relative latency change b vs a over each run's own rounds (unpaired bootstrap)."""
    figures = []
    for metrics in (a, b):
        lat = metrics.get("results", {}).get(final_branch(metrics), {}).get("figures", {}).get("lat_ms", {})
        rounds = lat.get("samples_ms")
        if not rounds:
            return "no per-round timings stored"
        figures.append(Figure(lat["value"], lat["source"], unit="ms", samples=Samples("window", rounds, "median")))
    return compare("lat_ms", figures[0], figures[1], "relative")


def diff_runs(a: FinishedRun, b: FinishedRun) -> dict[str, Any]:
    """Each metric of each run's final branch, with delta and ratio (b vs a)."""
    branch_a, branch_b = final_branch(a.metrics), final_branch(b.metrics)
    rows_a = {r["metric"]: r for r in comparison_rows(a.metrics)}
    rows_b = {r["metric"]: r for r in comparison_rows(b.metrics)}
    latency = latency_change(a.metrics, b.metrics)
    rows = []
    for metric in list(rows_a) + [m for m in rows_b if m not in rows_a]:
        va = rows_a.get(metric, {}).get(branch_a)
        vb = rows_b.get(metric, {}).get(branch_b)
        both = va is not None and vb is not None
        row = {"metric": metric, "a": va, "b": vb, "delta": vb - va if both else None,
               "ratio": vb / va if both and va else None,
               "source_a": rows_a.get(metric, {}).get("source"), "source_b": rows_b.get(metric, {}).get("source")}
        if metric == "lat_ms" and isinstance(latency, Change):
            row.update(change_pct=latency.estimate, ci95_pct=list(latency.ci95), basis=latency.basis)
        rows.append(row)
    return {"a": {"name": a.metrics["run"]["name"], "branch": branch_a, "tag": a.metrics["run"]["version_tag"]},
            "b": {"name": b.metrics["run"]["name"], "branch": branch_b, "tag": b.metrics["run"]["version_tag"]},
            "warnings": differences(a.metrics, b.metrics), "rows": rows}
