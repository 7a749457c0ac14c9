"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from icd_core.cli.console import echo
from icd_core.report.card import Card, verdict_card
from icd_core.report.cells import change_text, fmt
from icd_core.report.rows import (
    BRANCHES,
    comparison_rows,
    decomposition_rows,
    summary_rows,
)
from icd_core.report.verdict import RULE


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def card_lines(card: Card) -> list[str]:
    """The verdict card as console lines."""
    lines = [card.layout_answer] if card.layout_answer else []
    lines += [f"{card.question} {card.answer}", "ran: " + " · ".join(f"{k} {v}" for k, v in card.ran)]
    if card.gates:
        lines += render_table(["gate", "change", "95 % CI", "target", "decision", "decided by"],
                              [[g.gate, g.change, g.ci, g.target, g.decision, g.source] for g in card.gates]).splitlines()
    if card.gates_note:
        lines.append(card.gates_note)
    lines += [f"rollback: {card.rollback}", f"layout bought: {card.bought}"]
    return lines


def print_summary(metrics: dict[str, Any], verbose: bool = False) -> None:
    """The verdict card, then a compact table (one row per figure, layout metrics as means over
    groups, unmeasured figures on one line); ``verbose``: every row, the gates' rules, the verdict."""
    for line in card_lines(verdict_card(metrics)):
        echo(line)
    branches = [b for b in BRANCHES if b in metrics.get("results", {})]
    echo()
    if not verbose:
        rows, missing = summary_rows(metrics)
        echo(render_table(["figure", *branches, "iterative vs linear (95 % CI)", "source"],
                          [[r["metric"], *(fmt(r[b]) for b in branches), change_text(r["change"]),
                            r["source"] or ""] for r in rows]))
        if missing:
            echo("not measured: " + "; ".join(missing))
        decomposition = metrics.get("decomposition")
        searched = any(a.get("rate") is not None for a in (decomposition or {}).get("arms", {}).values())
        if decomposition and (searched or metrics.get("execution", {}).get("layout_reading")):
            echo()  # dense kernels at a fixed rate: the card's first line says it all
            echo(render_table(*decomposition_rows(metrics["decomposition"])))
        echo("(every row: --verbose, or report.html)")
        return
    rows = []
    for row in comparison_rows(metrics):
        rows.append([row["metric"], *(fmt(row[b]) for b in branches), change_text(row["change"]),
                     row["source"] or f"null: {row['reason']}"])
    echo(render_table(["metric", *branches, "iterative vs linear (95 % CI)", "source"], rows))
    timing = metrics.get("timing") or {}
    if timing:
        echo(f"\ntiming: {timing['rounds']} interleaved rounds (order {timing['order']}), stopped at "
             f"{timing['stopped_at']}; threads {timing['threads'].get('threads')} pinned by "
             f"{timing['threads'].get('by')}")
    gates = metrics.get("gates", {})
    if gates.get("evaluated"):  # the card showed each gate; here the rule and the reasons in full
        echo()
        for v in gates["verdicts"]:
            if v.get("reason"):
                echo(f"{v['gate']}: {v['verdict']}: {v['reason']}")
        echo(f"rule: {RULE}; modelled figures decide "
             f"{'gates too (gates.allow_modelled)' if gates.get('allow_modelled') else 'nothing'}.")
    decomposition = metrics.get("decomposition")
    if decomposition:
        echo()
        echo(render_table(*decomposition_rows(decomposition)))
    echo()
    echo(metrics.get("verdict", ""))

