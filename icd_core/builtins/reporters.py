"""Built-in reporters: ``json`` (metrics.json), ``csv`` (report.csv), ``html`` (report.html)."""

from __future__ import annotations

import csv
import io

import jinja2

from ..jsonutil import dumps
from ..markers import hookimpl
from ..report_model import BRANCHES, comparison_rows, fmt, pairs, timeline


def render_csv(metrics: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "unit", *BRANCHES, "source", "reason"])
    for row in comparison_rows(metrics):
        writer.writerow([row["metric"], row["unit"] or "",
                         *("" if row[b] is None else repr(row[b]) for b in BRANCHES),
                         row["source"] or "", row["reason"] or ""])
    for verdict in metrics.get("gates", {}).get("verdicts", []):
        writer.writerow([f"gate.{verdict['gate']}", verdict.get("unit") or "", "", "",
                         "" if verdict.get("value") is None else repr(verdict["value"]),
                         "pass" if verdict.get("pass") else ("fail" if verdict.get("pass") is False else "not evaluated"),
                         verdict.get("reason") or ""])
    return buf.getvalue()


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("icd_core", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["fmt"] = fmt
_ENV.filters["pairs"] = pairs


def render_html(metrics: dict, events: list) -> str:
    return _ENV.get_template("report.html.j2").render(
        m=metrics, rows=comparison_rows(metrics), branches=BRANCHES, timeline=timeline(events))


@hookimpl
def icd_register(registry):
    registry.add("reporter", "json", summary="metrics.json: every figure with its source")
    registry.add("reporter", "csv", summary="report.csv: pre / linear / iterative per metric, gates")
    registry.add("reporter", "html", summary="report.html: tables, gates, timeline, environment")


@hookimpl
def icd_report(ctx, record):
    written = []
    if ctx.wants_report("json"):
        written.append(ctx.write_artifact("metrics.json", dumps(record.metrics) + "\n"))
    if ctx.wants_report("csv"):
        written.append(ctx.write_artifact("report.csv", render_csv(record.metrics)))
    if ctx.wants_report("html"):
        written.append(ctx.write_artifact("report.html", render_html(record.metrics, record.events)))
    return written
