"""Readable details for the report: per-group tables with a summary (mean / worst) row, built
from transform and solver stats instead of dumping their dicts."""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.report.cells import fmt

PREFERRED = ("kept", "kept_default", "bound", "efficacy_pct", "rel_err_pct", "mse", "tokens_before",
             "tokens_after", "blocks_dropped", "search_s", "rounds", "permute", "timed_out")
HIGHER_IS_BETTER = {"kept", "efficacy_pct", "tokens_after"}
LOWER_IS_BETTER = {"search_s", "rel_err_pct", "mse", "error", "blocks_dropped", "time_s", "C", "lines_per_access"}
LABELS = {"kept": "kept", "kept_default": "kept (default order)", "bound": "row bound", "efficacy_pct": "efficacy %",
          "search_s": "search s", "timed_out": "timed out", "rounds": "rounds", "permute": "permute"}


@attrs.frozen
class GroupTable:
    """A per-group table: its caption, headers, the summary rows (always shown) and every row."""

    caption: str
    headers: tuple[str, ...]
    summary: tuple[tuple[str, ...], ...]
    rows: tuple[tuple[str, ...], ...]


def _columns(groups: dict[str, dict[str, Any]]) -> list[str]:
    """Scalar keys every group has, preferred ones first (per-tensor keys like ``<w>.density`` left out)."""
    common = set.intersection(*(set(k for k, v in g.items() if isinstance(v, (int, float, str, bool)) or v is None)
                                for g in groups.values()))
    return [k for k in PREFERRED if k in common] + sorted(common - set(PREFERRED))


def _summary(columns: list[str], groups: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    mean_row, worst_row = ["mean"], ["worst"]
    for key in columns:
        values = [g[key] for g in groups.values()]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if all(isinstance(v, bool) for v in values):
            mean_row.append(f"{sum(values)} of {len(values)}")
            worst_row.append("yes" if any(values) else "no")
        elif numbers and len(numbers) == len(values):
            mean_row.append(fmt(sum(numbers) / len(numbers)))
            base = key.split(" ")[0]
            if base in HIGHER_IS_BETTER:
                worst_row.append(f"{fmt(min(numbers))} ({_which(groups, key, min(numbers))})")
            elif base in LOWER_IS_BETTER:
                worst_row.append(f"{fmt(max(numbers))} ({_which(groups, key, max(numbers))})")
            else:
                worst_row.append("")
        else:
            mean_row.append("")
            worst_row.append("")
    return [tuple(mean_row), tuple(worst_row)]


def _which(groups: dict[str, dict[str, Any]], key: str, value: Any) -> str:
    return next(name for name, g in groups.items() if g[key] == value)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt(value)


def group_table(caption: str, groups: dict[str, dict[str, Any]]) -> GroupTable | None:
    """``groups``: group name → its stats. None when there is nothing tabular."""
    groups = {k: v for k, v in groups.items() if isinstance(v, dict)}
    if not groups:
        return None
    columns = _columns(groups)
    if not columns:
        return None
    headers = ("group", *(LABELS.get(k, k.replace("_", " ")) for k in columns))
    rows = tuple((name, *(_cell(g.get(k)) for k in columns)) for name, g in sorted(groups.items()))
    summary = tuple(_summary(columns, groups)) if len(groups) > 1 else ()
    return GroupTable(caption, headers, summary, rows)


def settings_text(transform: dict[str, Any]) -> str:
    """``type 2:4 · rate 0.5 · score magnitude`` from the adapter's settings."""
    for detail in (transform.get("details") or {}).values():
        if detail:
            return " · ".join(f"{k} {fmt(v)}" for k, v in detail.items() if v not in (None, [], {}) and not isinstance(v, dict))
    return ""


def transform_details(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per branch and transform: spec, outcome, settings, notes and its per-group table."""
    out = []
    for branch in ("linear", "iterative", "identity"):
        for t in metrics.get("results", {}).get(branch, {}).get("transforms", []):
            stats = t.get("stats") or {}
            groups = stats.get("groups") if isinstance(stats.get("groups"), dict) else {
                k: v for k, v in stats.items() if isinstance(v, dict)}
            notes = {k: v for k, v in stats.items() if k != "groups" and isinstance(v, (str, int, float, bool))}
            out.append({"branch": branch, "spec": t["spec"], "noop": t.get("noop"), "reason": t.get("reason"),
                        "repermute": t.get("repermute_reason") if t.get("repermute") else None,
                        "settings": settings_text(t), "notes": notes,
                        "table": group_table(f"{branch}: {t['spec']} per group", groups or {})})
    return out


def layout_table(metrics: dict[str, Any]) -> GroupTable | None:
    """C and lines per access per group, pre / linear / iterative."""
    results = metrics.get("results", {})
    states = [b for b in ("pre", "linear", "iterative") if b in results]
    groups = sorted({g for b in states for g in results[b].get("layout", {})})
    table = {g: {f"{key} {b}": results[b].get("layout", {}).get(g, {}).get(key)
                 for key in ("C", "lines_per_access") for b in states} for g in groups}
    return group_table("layout per group", table) if groups else None


def fits_table(metrics: dict[str, Any]) -> GroupTable | None:
    """Every fit (π₀ per group, π₁ per group): C before and after, Q, time, flags."""
    rows = {}
    for f in metrics.get("fits", []):
        s = f.get("stats", {})
        rows[f"{f['stage']} {f['branch']} {f['group']}"] = {
            "method": s.get("method"), "C before": s.get("C_initial"), "C": s.get("C"), "Q": s.get("Q"),
            "time_s": s.get("time_s"), "budget_s": s.get("budget_s"), "timed_out": bool(s.get("timed_out")),
            "cache": f.get("cache"),
            "applied": "no: " + str(s["rejected"]) if s.get("rejected") else "yes"}
    return group_table("permutations", rows) if rows else None
