"""Built-in reporters: ``csv`` (report.csv) and ``html`` (report.html). metrics.json is written by
the core itself, first (:func:`icd_core.plugin.dispatch.write_reports`)."""

from __future__ import annotations

import jinja2

from icd_core.contract.hookmarkers import hookimpl
from icd_core.report.cells import change_text, csv_text, fmt
from icd_core.report.rows import (
    BRANCHES,
    comparison_rows,
    decomposition_rows,
    summary_rows,
    timeline,
)
from icd_core.report.verdict import RULE

CSV_HEADER = ["metric", "unit", *BRANCHES, "source", "reason", "change_iterative_vs_linear", "ci95_low",
              "ci95_high", "verdict", "rule"]


def _num(value) -> str:
    return "" if value is None else repr(value)


def render_csv(metrics: dict) -> str:
    """Per metric the three states' values and the paired change iterative vs linear with its
    CI; then one row per gate with its verdict and rule."""
    rows: list[list] = [list(CSV_HEADER)]
    for row in comparison_rows(metrics):
        change = row["change"] or {}
        ci = change.get("ci95") or [None, None]
        rows.append([row["metric"], row["unit"] or "", *(_num(row[b]) for b in BRANCHES), row["source"] or "",
                     row["reason"] or "", _num(change.get("estimate")), _num(ci[0]), _num(ci[1]), "", ""])
    for v in metrics.get("gates", {}).get("verdicts", []):
        ci = v.get("ci95") or [None, None]
        rows.append([f"gate.{v['gate']}", v.get("unit") or "", *[""] * len(BRANCHES), v.get("source") or "",
                     v.get("reason") or "", _num(v.get("value")), _num(ci[0]), _num(ci[1]), v["verdict"],
                     v.get("rule") or ""])
    return csv_text(rows)


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("icd_core.report", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["fmt"] = fmt
_ENV.filters["change"] = change_text


def render_html(metrics: dict, events: list) -> str:
    """report.html: the verdict card, the figures (inline SVG), the compact table, readable
    per-group details (long tables collapsed), and the raw metrics behind a toggle."""
    from icd_core.contract.jsonify import dumps
    from icd_core.report.card import verdict_card
    from icd_core.report.details import fits_table, layout_table, transform_details
    from icd_core.report.figures import run_figures

    summary, missing = summary_rows(metrics)
    return _ENV.get_template("report.html.j2").render(
        m=metrics, card=verdict_card(metrics), plots=run_figures(metrics), summary=summary, missing=missing,
        branches=[b for b in BRANCHES if b in metrics.get("results", {})], layout=layout_table(metrics),
        transforms=transform_details(metrics), fits=fits_table(metrics),
        timeline=timeline(events), rule=RULE, decomposition=decomposition_rows(metrics["decomposition"])
        if metrics.get("decomposition") else None, raw=dumps(metrics),
        warnings=list(dict.fromkeys(e["message"] for e in events if e.get("event") == "warning")))


def render_compare_html(runs: list[dict], diffs: list[dict], warnings: list[str]) -> str:
    """compare.html: the runs' verdict cards and figures side by side, then the diffs."""
    from icd_core.report.card import verdict_card
    from icd_core.report.figures import run_figures

    entries = [{"m": m, "card": verdict_card(m), "plots": run_figures(m, prefix=f"r{i}-")} for i, m in enumerate(runs)]
    return _ENV.get_template("compare.html.j2").render(runs=entries, diffs=diffs, warnings=warnings, rule=RULE)


@hookimpl
def icd_register(registry):
    registry.add("reporter", "csv", summary="report.csv: pre / linear / iterative per metric, gates")
    registry.add("reporter", "html", summary="report.html: tables, gates, timeline, environment")


@hookimpl
def icd_report(ctx, record):
    written = []
    if ctx.wants_report("csv"):
        written.append(ctx.write_artifact("report.csv", render_csv(record.metrics)))
    if ctx.wants_report("html"):
        written.append(ctx.write_artifact("report.html", render_html(record.metrics, record.events)))
    return written
