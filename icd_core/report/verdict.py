"""One honest paragraph on what re-permutation did in a run, from its metrics."""

from __future__ import annotations

from typing import Any

from icd_core.report.cells import short_reason, signed

COST_GATES = ("latency", "l2_hit", "energy_per_token")
RULE = "a gate passes only when the whole 95 % CI of the paired change lies beyond its target"


def _layout_change(metrics: dict[str, Any]) -> str | None:
    pi1 = [f for f in metrics.get("fits", []) if f["stage"] == "pi1"]
    if not pi1:
        return None
    moved = [f for f in pi1 if f["stats"].get("C") is not None and f["stats"].get("C_initial") is not None
             and f["stats"]["C"] < f["stats"]["C_initial"]]
    if not moved:
        return "Re-permutation (π₁) found no better layout of the transformed state than π₀."
    if len(moved) <= 3:
        parts = "; ".join(f"{f['group']}: C {f['stats']['C_initial']:.3f} → {f['stats']['C']:.3f}" for f in moved)
    else:
        before = sum(f["stats"]["C_initial"] for f in moved) / len(moved)
        after = sum(f["stats"]["C"] for f in moved) / len(moved)
        parts = f"{len(moved)} of {len(pi1)} groups, mean C {before:.3f} → {after:.3f}"
    return f"Re-permutation (π₁) lowered the block cost on W′ ({parts})."


def _decomposition(d: dict[str, Any] | None) -> str | None:
    """``At equal quality: layout (identity → linear) read 0.69× the pages, attention -18 % …``."""
    if not d:
        return None
    arms = d["arms"]
    rates = ", ".join(f"{arm} {arms[arm]['knob']} {arms[arm]['rate']:g}" for arm in ("identity", "linear", "iterative")
                      if arm in arms and arms[arm].get("rate") is not None)
    parts = []
    for step in ("layout", "re-permutation"):
        changes = d["steps"].get(step, {})
        said = []
        for key in (d.get("cost"), "attention_ms", "lat_ms"):
            c = changes.get(key) if key else None
            if c and c.get("estimate") is not None:
                ci = f" [{signed(c['ci95'][0])}, {signed(c['ci95'][1])}]" if c.get("ci95") else ""
                said.append(f"{key} {signed(c['estimate'])} %{ci}")
        if said:
            parts.append(f"{step}: " + ", ".join(said))
    if not parts:
        return None
    head = f"At equal quality ({rates})" if rates else "At each arm's rate"
    return head + " — " + "; ".join(parts) + "."


def gate_phrase(v: dict[str, Any]) -> str:
    """``latency -0.3 % (95 % CI -1.0…+1.0): fail, target -20 %`` and the like."""
    if v["verdict"] == "not evaluated":
        return f"{v['gate']} not evaluated ({short_reason(v['reason'])})"
    ci = v.get("ci95")
    interval = f"95 % CI {signed(ci[0])}…{signed(ci[1])}" if ci else "no CI"
    return (f"{v['gate']} {signed(v['value'])} {v['unit']} ({interval}; {v['metric']}, {v['source']}): "
            f"{v['verdict']}, target {v['target']:+g} {v['unit']}")


def overall(verdicts: list[dict[str, Any]]) -> str:
    """pass / fail / inconclusive / not evaluated for "cheaper at equal quality"."""
    cost = [v for v in verdicts if v["gate"] in COST_GATES and v["verdict"] != "not evaluated"]
    guard = next((v for v in verdicts if v["gate"] == "quality_drop"), None)
    if not cost:
        return "not evaluated"
    if guard is not None and guard["verdict"] == "fail":
        return "fail"
    if any(v["verdict"] == "pass" for v in cost) and guard is not None and guard["verdict"] == "pass":
        return "pass"
    if all(v["verdict"] == "fail" for v in cost):
        return "fail"
    return "inconclusive"


def verdict(metrics: dict[str, Any]) -> str:
    run = metrics["run"]
    rollback = metrics.get("rollback")
    if not run["ok"]:
        if rollback and not rollback.get("verified"):
            undone = " The rollback did NOT verify: the restored state differs from the pre-run state."
        elif rollback:
            undone = " Every applied step was rolled back (verified bit for bit)."
        else:
            undone = " Nothing had been applied."
        return f"The run failed ({run['error']}).{undone}"
    sentences = []
    gates = metrics["gates"]
    if gates["evaluated"]:
        answer = {"pass": "yes", "fail": "no", "inconclusive": "undecided",
                  "not evaluated": "not evaluated"}[overall(gates["verdicts"])]
        phrases = "; ".join(gate_phrase(v) for v in gates["verdicts"])
        sentences.append(f"Cheaper at equal quality, iterative vs linear: {answer} — {phrases} ({RULE}).")
    else:
        sentences.append(f"Gates not evaluated: {gates['reason']}.")
    if not metrics.get("execution", {}).get("layout_reading", True):
        sentences.append("Every state ran dense kernels, which read every element whatever the order: a "
                         "permutation cannot change their latency, so the latency gate cannot pass here; the "
                         "layout metrics (C, lines per access) show what the permutation changed.")
    decomposed = _decomposition(metrics.get("decomposition"))
    if decomposed:
        sentences.append(decomposed)
    change = _layout_change(metrics)
    if change:
        sentences.append(change)
    elif run["mode"] != "linear":
        sentences.append("No transform asked for re-permutation, so iterative equals linear.")
    if rollback:
        sentences.append(f"Rolled back to the pre-run state (verified): {'; '.join(rollback['why'])}.")
    return " ".join(sentences)
