"""The verdict card: what ran, what each gate decided and how sure it is, whether anything was
rolled back, and one sentence on what layout bought — first thing in every report."""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.report.cells import fmt, short_reason
from icd_core.report.rows import layout_means
from icd_core.report.verdict import overall, signed

ANSWERS = {"pass": "YES", "fail": "NO", "inconclusive": "UNDECIDED", "not evaluated": "NOT EVALUATED"}
QUESTION = "Is iterative (re-permuted) cheaper than linear at equal quality?"
GATE_NAMES = {"latency": "latency", "l2_hit": "L2 hit rate", "energy_per_token": "energy / token",
              "quality_drop": "quality drop"}


@attrs.frozen
class GateLine:
    """One gate on the card: the paired change, its CI, the target and the decision in words."""

    gate: str
    change: str
    ci: str
    target: str
    decision: str
    source: str


@attrs.frozen
class Card:
    title: str
    ok: bool
    answer: str
    question: str
    ran: tuple[tuple[str, str], ...]
    gates: tuple[GateLine, ...]
    gates_note: str | None
    rollback: str
    rollback_ok: bool
    bought: str


def _ran(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    run, execution = metrics["run"], metrics.get("execution", {})
    kernels = execution.get("kernels")
    backend = execution.get("backend", "dense")
    if isinstance(kernels, str):
        backend = f"{backend} ({kernels})"
    return (("workload", run["workload"]), ("transforms", ", ".join(run.get("adapters") or []) or "none"),
            ("solver", run["solver"]), ("graph", str(run.get("graph"))), ("backend", backend),
            ("mode", run["mode"]), ("seed", str(run["seed"])))


def _gate_line(v: dict[str, Any]) -> GateLine:
    name = GATE_NAMES.get(v["gate"], v["gate"])
    side = "≤" if v["gate"] in ("latency", "energy_per_token", "quality_drop") else "≥"
    target = f"{side} {v['target']:+g} {v['unit']}"
    if v["verdict"] == "not evaluated":
        return GateLine(name, "—", "—", target, f"not evaluated: {short_reason(v.get('reason'))}",
                        v.get("source") or "no figure")
    ci = v.get("ci95")
    undecided = "inconclusive: the CI straddles the target" if ci else "inconclusive: no 95 % CI"
    return GateLine(name, f"{signed(v['value'])} {v['unit']}",
                    f"[{signed(ci[0])}, {signed(ci[1])}]" if ci else "no CI", target,
                    {"pass": "PASS", "fail": "FAIL"}.get(v["verdict"], undecided),
                    v.get("decided_by") or v.get("source") or "")


def _rollback(metrics: dict[str, Any]) -> tuple[str, bool]:
    rollback = metrics.get("rollback")
    if not rollback:
        return ("nothing rolled back" if metrics["run"]["ok"] else "nothing had been applied"), True
    why = "; ".join(rollback.get("why") or [])
    if rollback.get("verified"):
        return f"rolled back to the pre-run state ({rollback['trigger']}: {why}); restoration verified bit for bit", True
    return f"rolled back ({rollback['trigger']}: {why}) but the restoration did NOT verify", False


def bought(metrics: dict[str, Any]) -> str:
    """One sentence on what layout and re-permutation bought, or why they could not pay here."""
    if not metrics["run"]["ok"]:
        return f"Nothing: the run failed ({metrics['run']['error']})."
    c = layout_means(metrics, "C")
    lines = layout_means(metrics, "lines_per_access")
    moved = ""
    if c.get("pre") is not None and c.get("linear") is not None:
        moved = f"π₀ moved the mean block cost C {fmt(c['pre'], 3)} → {fmt(c['linear'], 3)}"
        if lines.get("pre") is not None and lines.get("linear") is not None:
            moved += f" (lines per access {fmt(lines['pre'], 3)} → {fmt(lines['linear'], 3)})"
        if c.get("iterative") is not None and c["iterative"] != c["linear"]:
            moved += f" and re-permutation to {fmt(c['iterative'], 3)}"
    decomposition = metrics.get("decomposition")
    if decomposition:
        step = decomposition.get("steps", {}).get("layout", {})
        cost = decomposition.get("cost")
        change = step.get(cost) if cost else None
        if change and change.get("estimate") is not None:
            ci = change.get("ci95") or [None, None]
            return (f"At equal quality, layout changed {cost} by {signed(change['estimate'])} % "
                    f"[{signed(ci[0]) if ci[0] is not None else '?'}, {signed(ci[1]) if ci[1] is not None else '?'}]"
                    f" against the identity order{'; ' + moved if moved else ''}.")
    if not metrics.get("execution", {}).get("layout_reading", True):
        return (f"Layout could not pay here: every state ran dense kernels, which read every element whatever "
                f"the order, so no latency can change; {moved or 'the permutation changed the layout only'} — "
                f"bytes a layout-reading kernel (--backend bsr or paged) would save.")
    answer = overall(metrics.get("gates", {}).get("verdicts", []))
    if answer == "pass":
        return f"Re-permutation paid: a cost gate passed at equal quality{'; ' + moved if moved else ''}."
    return (f"Layout-reading kernels ran, but no cost gate passed at equal quality"
            f"{'; ' + moved if moved else ''}.")


def verdict_card(metrics: dict[str, Any]) -> Card:
    gates = metrics.get("gates", {})
    rollback, rollback_ok = _rollback(metrics)
    if not metrics["run"]["ok"]:
        answer = "RUN FAILED"
    elif not gates.get("evaluated"):
        answer = "NOT EVALUATED"
    else:
        answer = ANSWERS[overall(gates["verdicts"])]
    note = None if gates.get("evaluated") else f"gates not evaluated: {gates.get('reason')}"
    return Card(title=f"icd run {metrics['run']['name']}", ok=bool(metrics["run"]["ok"]), answer=answer,
                question=QUESTION, ran=_ran(metrics), gates=tuple(_gate_line(v) for v in gates.get("verdicts", [])),
                gates_note=note, rollback=rollback, rollback_ok=rollback_ok, bought=bought(metrics))
