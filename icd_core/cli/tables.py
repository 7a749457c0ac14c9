"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ..report_model import BRANCHES, comparison_rows, fmt


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_summary(metrics: dict[str, Any]) -> None:
    """The pre / linear / iterative table, the gates and the verdict."""
    branches = [b for b in BRANCHES if b in metrics.get("results", {})]
    rows = []
    for row in comparison_rows(metrics):
        rows.append([row["metric"], *(fmt(row[b]) for b in branches), row["source"] or f"null: {row['reason']}"])
    click.echo(render_table(["metric", *branches, "source"], rows))
    gates = metrics.get("gates", {})
    if gates.get("evaluated"):
        click.echo()
        def verdict(v: dict[str, Any]) -> str:
            if v["pass"] is None:
                return f"not evaluated: {v['reason']}"
            text = "pass" if v["pass"] else "fail"
            source = v.get("source") or ""
            return text if not source or "measured:" in source else f"{text} (on {source}, not measured)"

        gate_rows = [[v["gate"], f"{fmt(v['target'])} {v['unit']}", fmt(v["value"]), verdict(v)]
                     for v in gates["verdicts"]]
        click.echo(render_table(["gate", "target", "iterative vs linear", "verdict"], gate_rows))
    click.echo()
    click.echo(metrics.get("verdict", ""))
