"""One honest paragraph on what re-permutation did in a run, from its metrics."""

from __future__ import annotations

from typing import Any


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


def verdict(metrics: dict[str, Any]) -> str:
    run = metrics["run"]
    if not run["ok"]:
        undone = " every applied step was rolled back" if metrics.get("rollback") else " nothing had been applied"
        return f"The run failed ({run['error']});{undone}."
    sentences = []
    gates = metrics["gates"]
    if gates["evaluated"]:
        verdicts = gates["verdicts"]
        passed = [v["gate"] for v in verdicts if v["pass"] is True]
        failed = [v["gate"] for v in verdicts if v["pass"] is False]
        missing = [v["gate"] for v in verdicts if v["pass"] is None]
        text = f"Iterative vs linear: {len(passed)} of {len(verdicts)} gates pass"
        if failed:
            text += f"; not met: {', '.join(failed)}"
        if missing:
            text += f"; not evaluated (no measurement): {', '.join(missing)}"
        modelled = [v["gate"] for v in verdicts if v["pass"] is not None and v.get("source")
                    and "measured:" not in v["source"]]
        if modelled:
            text += f"; judged on modelled figures: {', '.join(modelled)}"
        sentences.append(text + ".")
    else:
        sentences.append(f"Gates not evaluated: {gates['reason']}.")
    change = _layout_change(metrics)
    if change:
        sentences.append(change)
    elif run["mode"] != "linear":
        sentences.append("No transform asked for re-permutation, so iterative equals linear.")
    if metrics.get("rollback"):
        rb = metrics["rollback"]
        sentences.append(f"Rolled back to the pre-run state: {'; '.join(rb['why'])}.")
    return " ".join(sentences)
