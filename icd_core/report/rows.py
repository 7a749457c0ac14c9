"""The tables every report format shares: figures per branch, layout metrics, the equal-quality
decomposition, the stage timeline."""

from __future__ import annotations

from typing import Any

from icd_core.report.cells import change_text, fmt, short_reason, value_of
from icd_core.run.results import FIGURE_KEYS

BRANCHES = ("pre", "identity", "linear", "iterative")


def _figure_rows(results: dict[str, Any], changes: dict[str, Any]) -> list[dict[str, Any]]:
    extra = sorted({k for r in results.values() for k in r.get("figures", {})} - set(FIGURE_KEYS))
    keys: list[tuple[str, str]] = [("figures", k) for k in (*FIGURE_KEYS, *extra)]
    quality_keys = sorted({k for r in results.values() for k in r.get("quality", {})})
    keys += [("quality", k) for k in quality_keys]
    rows = []
    for section, key in keys:
        cells = {b: results.get(b, {}).get(section, {}).get(key) for b in BRANCHES}
        present = [c for c in cells.values() if c]
        if not present:
            continue
        source = next((c.get("source") for c in present if c.get("source")), None)
        reason = next((c.get("reason") for c in present if c.get("reason")), None)
        rows.append({"metric": key if section == "figures" else f"quality.{key}",
                     "unit": present[0].get("unit"), "source": source, "reason": reason,
                     "change": changes.get(key),
                     **{b: value_of(cells[b]) for b in BRANCHES},
                     **{f"{b}_present": cells[b] is not None for b in BRANCHES}})
        if section == "figures":
            rows += _alternative_rows(results, key)
    return rows


def _alternative_rows(results: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The same figure from other sources (e.g. cachegrind beside the cache model)."""
    sources = sorted({f.get("source") for r in results.values() for f in r.get("alternatives", {}).get(key, [])})
    rows = []
    for source in sources:
        cells = {b: next((f for f in results.get(b, {}).get("alternatives", {}).get(key, [])
                          if f.get("source") == source), None) for b in BRANCHES}
        unit = next((c.get("unit") for c in cells.values() if c), None)
        rows.append({"metric": f"{key} [{source}]", "unit": unit, "source": source, "reason": None, "change": None,
                     **{b: value_of(cells[b]) for b in BRANCHES},
                     **{f"{b}_present": cells[b] is not None for b in BRANCHES}})
    return rows


def _layout_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    groups = sorted({g for r in results.values() for g in r.get("layout", {})})
    for group in groups:
        for key in ("C", "Q", "la", "lines_per_access"):
            cells = {b: results.get(b, {}).get("layout", {}).get(group, {}).get(key) for b in BRANCHES}
            if all(v is None for v in cells.values()):
                continue
            rows.append({"metric": f"layout.{group}.{key}", "unit": None, "source": "computed:layout",
                         "reason": None, "change": None, **cells, **{f"{b}_present": b in results for b in BRANCHES}})
    return rows


def comparison_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: pre, linear and iterative values, unit, source (or reason), and the
    paired change iterative vs linear (``change``: estimate, CI and basis, when computed)."""
    results = metrics.get("results", {})
    changes = {k: v for k, v in metrics.get("comparisons", {}).get("iterative_vs_linear", {}).items()
               if v.get("estimate") is not None}
    return _figure_rows(results, changes) + _layout_rows(results)


SUMMARY_LAYOUT = ("C", "lines_per_access")


def layout_means(metrics: dict[str, Any], key: str) -> dict[str, float | None]:
    """Per state, the mean of one layout metric (``C``, ``lines_per_access``) over its groups."""
    results = metrics.get("results", {})
    means: dict[str, float | None] = {}
    for b in BRANCHES:
        values = [g[key] for g in results.get(b, {}).get("layout", {}).values() if g.get(key) is not None]
        means[b] = sum(values) / len(values) if values else None
    return means


def summary_rows(metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The compact table: one row per measured figure (other sources' rows left out), the layout
    metrics as means over groups, and the figures nobody measured as ``name (why)``."""
    rows, missing = [], []
    for row in comparison_rows(metrics):
        if row["metric"].startswith("layout.") or "[" in row["metric"]:
            continue
        if all(row[b] is None for b in BRANCHES):
            missing.append(f"{row['metric']} ({short_reason(row['reason'])})")
        else:
            rows.append(row)
    results = metrics.get("results", {})
    groups = sorted({g for r in results.values() for g in r.get("layout", {})})
    for key in SUMMARY_LAYOUT:
        cells = layout_means(metrics, key)
        if any(v is not None for v in cells.values()):
            label = f"layout {key} (mean of {len(groups)} groups)" if len(groups) > 1 else f"layout {key} ({groups[0]})"
            rows.append({"metric": label, "unit": None, "source": "computed:layout", "reason": None, "change": None,
                         **cells, **{f"{b}_present": b in results for b in BRANCHES}})
    return rows, missing


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stage events with start offset and duration in seconds, in order."""
    stages = [e for e in events if e.get("event") == "stage"]
    if not stages:
        return []
    t0 = min(e["t_start"] for e in stages)
    return [{"stage": e["stage"], "start_s": e["t_start"] - t0, "duration_s": e["t_end"] - e["t_start"],
             "ok": e["ok"], "meta": e.get("meta", {})} for e in stages]


def decomposition_rows(decomposition: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each arm at its own rate, then what layout and re-permutation each changed (paired)."""
    cost = decomposition.get("cost") or "cost"
    headers = ["arm / step", "rate", "quality loss", cost, "latency ms", "ms / token", "attention ms"]
    rows = []
    for arm in ("pre", "identity", "linear", "iterative"):
        a = decomposition["arms"].get(arm)
        if a:
            rows.append(["dense" if arm == "pre" else arm, fmt(a["rate"]), fmt(a["quality_loss"]), fmt(a["cost"]),
                         fmt(a["lat_ms"]), fmt(a.get("ms_per_token")), fmt(a["attention_ms"])])
    for step, changes in decomposition.get("steps", {}).items():
        cells = {k: change_text(v) if v.get("estimate") is not None else v.get("reason", "")
                 for k, v in changes.items()}
        quality = next((k for k in changes if k not in ("lat_ms", "attention_ms", cost)), None)
        rows.append([step, "", cells.get(quality, ""), cells.get(cost, ""), cells.get("lat_ms", ""),
                     "", cells.get("attention_ms", "")])  # per token: the latency change, said once
    return headers, rows
