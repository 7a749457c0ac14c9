"""The verdict card: what ran, what each gate decided and how sure it is, whether anything was
rolled back, and one sentence on what layout bought — first thing in every report."""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.report.cells import change_text, fmt, short_reason, signed
from icd_core.report.rows import layout_means
from icd_core.report.verdict import overall

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
    layout_answer: str | None = None
    """First line of a compare run with a transform: what the permutation bought at this rate."""


def _coverage(metrics: dict[str, Any], spec: str) -> str:
    """`` (14 weights: 2 in icd's order, 12 natural)`` for a transform that counted its weights."""
    results = metrics.get("results", {})
    for branch in ("linear", "iterative", "identity"):
        for t in results.get(branch, {}).get("transforms", []):
            weights = (t.get("stats") or {}).get("weights")
            if t.get("spec") == spec and isinstance(weights, dict) and not t.get("noop"):
                n = weights["targeted"]
                return (f" ({n} weight{'s' if n != 1 else ''}: {weights['in_layout_order']} in icd's order, "
                        f"{weights['natural_order']} natural)")
    return ""


def _ran(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    run, execution = metrics["run"], metrics.get("execution", {})
    kernels = execution.get("kernels")
    backend = execution.get("backend", "dense")
    if isinstance(kernels, str):
        backend = f"{backend} ({kernels})"
    transforms = ", ".join(a + _coverage(metrics, a) for a in run.get("adapters") or []) or "none"
    return (("workload", run["workload"]), ("transforms", transforms),
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
    reading = metrics.get("execution", {}).get("layout_reading", True)
    if decomposition and reading:
        step = decomposition.get("steps", {}).get("layout", {})
        cost = decomposition.get("cost")
        change = step.get(cost) if cost else None
        if change and change.get("estimate") is not None:
            ci = change.get("ci95") or [None, None]
            return (f"At equal quality, layout changed {cost} by {signed(change['estimate'])} % "
                    f"[{signed(ci[0]) if ci[0] is not None else '?'}, {signed(ci[1]) if ci[1] is not None else '?'}]"
                    f" against the identity order{'; ' + moved if moved else ''}.")
    if not reading:
        return (f"Layout could not pay here: every state ran dense kernels, which read every element whatever "
                f"the order, so no latency can change; {moved or 'the permutation changed the layout only'} — "
                f"bytes a layout-reading kernel (--backend bsr or paged) would save.")
    answer = overall(metrics.get("gates", {}).get("verdicts", []))
    if answer == "pass":
        return f"Re-permutation paid: a cost gate passed at equal quality{'; ' + moved if moved else ''}."
    return (f"Layout-reading kernels ran, but no cost gate passed at equal quality"
            f"{'; ' + moved if moved else ''}.")


def _word(change: dict[str, Any], better: str) -> str:
    """``better`` / ``worse`` when the whole 95 % CI lies on one side of zero, else ``no difference shown``."""
    ci = change.get("ci95")
    if not ci:
        return "no 95 % CI"
    if ci[0] > 0 or ci[1] < 0:
        return "better" if (ci[0] > 0) == (better == "higher") else "worse"
    return "no difference shown"


def _paired(change: dict[str, Any] | None, better: str) -> tuple[str, str | None]:
    """``+1.5 pp [+1.2, +1.8], better`` and its word (``None``: no paired change)."""
    change = change or {}
    if change.get("estimate") is None:
        return f"no paired change: {short_reason(change.get('reason'))}", None
    if change.get("kind") == "difference" and change.get("unit") == "%":
        change = {**change, "unit": "pp"}  # a difference of percentages
    word = _word(change, better)
    return f"{change_text(change)}, {word}", word


def _quality_step(metrics: dict[str, Any], metric: str) -> tuple[str, str | None, str | None] | None:
    """``task_fidelity_pct 92.4 → 93.9 % (+1.5 pp [+1.2, +1.8], better)`` — natural order → π₀ —
    then π₀ against the best random order; with the word of each comparison."""
    identity = metrics["results"].get("identity", {}).get("quality", {}).get(metric)
    linear = metrics["results"].get("linear", {}).get("quality", {}).get(metric)
    if not identity or not linear or identity.get("value") is None or linear.get("value") is None:
        return None
    better = linear.get("better", "higher")
    said, vs_natural = _paired(metrics.get("comparisons", {}).get("linear_vs_identity", {}).get(metric), better)
    text = f"{metric} {fmt(identity['value'])} → {fmt(linear['value'])} {linear.get('unit', '')}".rstrip()
    text += f" ({said})"
    control = metrics.get("control", {})
    found = control.get("metrics", {}).get(metric)
    if not found:
        return text, vs_natural, None
    said, vs_random = _paired(found["linear_vs_best"], better)
    others = " / ".join(fmt(v) for v in found["random"].values())
    return (f"{text}; against the best of {control['orders']} random orders ({others}): {said}",
            vs_natural, vs_random)


def _conclusion(vs_natural: str | None, vs_random: str | None, control: dict[str, Any]) -> str:
    """What layout added, by the first metric shown: helped only when π₀ beats natural order
    and the best random order, each with the whole 95 % CI."""
    if not control.get("orders"):
        return f"(no random-order control: {control.get('reason', 'not run')})"
    if vs_natural == "worse":
        return "Layout hurt:"
    if vs_natural == "better" and vs_random == "better":
        return "Layout helped:"
    if vs_natural == "better":
        return f"Nothing beyond chance (a random order did {'better' if vs_random == 'worse' else 'as well'}):"
    return "Nothing:"


def layout_answer(metrics: dict[str, Any]) -> str | None:
    """What layout added on top of the transform at the user's rate: the transform in natural
    order (identity) against the same transform after π₀ (linear), and π₀ against the best of
    the random-order controls — paired quality, and each arm's rate when it was searched."""
    results = metrics.get("results", {})
    if "identity" not in results or "linear" not in results or not metrics["run"]["ok"]:
        return None
    transforms = ", ".join(metrics["run"].get("adapters") or [])
    decomposition = metrics.get("decomposition") or {}
    arms = decomposition.get("arms", {})
    searched = [f"{arm} {arms[arm]['knob']} {fmt(arms[arm]['rate'])}" for arm in ("identity", "linear")
                if arms.get(arm, {}).get("rate") is not None]
    primary = metrics.get("gates", {}).get("primary_quality") or results["linear"].get("primary_quality")
    shown = list(dict.fromkeys(m for m in (arms.get("linear", {}).get("quality_metric"), primary) if m))
    steps = [found for found in (_quality_step(metrics, m) for m in shown) if found]
    head = f"What did layout add to {transforms}?"
    if searched:
        head += f" At equal quality the rate went {' → '.join(searched)};"
    if not steps:
        return f"{head} no quality figure of both arms to compare."
    conclusion = _conclusion(steps[0][1], steps[0][2], metrics.get("control", {}))
    if conclusion.startswith("("):
        return f"{head} permuted vs natural order: " + "; ".join(s[0] for s in steps) + f" {conclusion}."
    return f"{head} {conclusion} permuted vs natural order: " + "; ".join(s[0] for s in steps) + "."


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
                gates_note=note, rollback=rollback, rollback_ok=rollback_ok, bought=bought(metrics),
                layout_answer=layout_answer(metrics))
