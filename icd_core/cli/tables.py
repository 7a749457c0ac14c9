"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from icd_core.report.cells import change_text, fmt
from icd_core.report.rows import BRANCHES, comparison_rows, decomposition_rows
from icd_core.report.verdict import RULE, signed


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def gate_rows(gates: dict[str, Any]) -> list[list[str]]:
    """gate, target, paired change, 95 % CI, verdict, what decided it."""
    rows = []
    for v in gates.get("verdicts", []):
        ci = v.get("ci95")
        interval = f"[{signed(ci[0])}, {signed(ci[1])}]" if ci else "—"
        value = "—" if v.get("value") is None else signed(v["value"])
        verdict = v["verdict"] if v["verdict"] != "not evaluated" else f"not evaluated: {v['reason']}"
        if v["verdict"] == "inconclusive" and v.get("reason"):
            verdict += f" ({v['reason']})"
        rows.append([v["gate"], f"{v['target']:+g} {v['unit']}", value, interval, verdict, v.get("decided_by") or ""])
    return rows


def print_summary(metrics: dict[str, Any]) -> None:
    """The pre / linear / iterative table, the gates with their paired CIs, and the verdict."""
    branches = [b for b in BRANCHES if b in metrics.get("results", {})]
    rows = []
    for row in comparison_rows(metrics):
        rows.append([row["metric"], *(fmt(row[b]) for b in branches), change_text(row["change"]),
                     row["source"] or f"null: {row['reason']}"])
    click.echo(render_table(["metric", *branches, "iterative vs linear (95 % CI)", "source"], rows))
    timing = metrics.get("timing") or {}
    if timing:
        click.echo(f"\ntiming: {timing['rounds']} interleaved rounds (order {timing['order']}), stopped at "
                   f"{timing['stopped_at']}; threads {timing['threads'].get('threads')} pinned by "
                   f"{timing['threads'].get('by')}")
    gates = metrics.get("gates", {})
    if gates.get("evaluated"):
        click.echo()
        click.echo(render_table(["gate", "target", "iterative vs linear", "95 % CI", "verdict", "decided by"],
                                gate_rows(gates)))
        click.echo(f"rule: {RULE}; modelled figures decide "
                   f"{'gates too (gates.allow_modelled)' if gates.get('allow_modelled') else 'nothing'}.")
    decomposition = metrics.get("decomposition")
    if decomposition:
        click.echo()
        click.echo(render_table(*decomposition_rows(decomposition)))
    click.echo()
    click.echo(metrics.get("verdict", ""))

