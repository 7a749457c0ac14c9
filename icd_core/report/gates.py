"""Acceptance gates: iterative vs linear, the product's question.

A gate judges a paired change with its 95 % CI on figures of one source
(:mod:`icd_core.run.paired`). A gate
passes only when the whole CI lies beyond its target, fails when the whole CI lies short of
it, and is otherwise inconclusive; a missing figure, or figures of no common source, is "not
evaluated". Modelled and simulated figures decide nothing unless ``gates.allow_modelled``, and
a figure its measure flags ``secondary`` (the cache model's hit rate, which falls when fewer
lines are read) decides nothing at all. Rollback tolerances (final vs pre-run) are
:mod:`icd_core.run.tolerances`.
"""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.config.schema import GatesConfig
from icd_core.run.paired import Better, Change, decides, judge
from icd_core.run.results import BranchResult, branch_change


@attrs.frozen
class Gate:
    """One product gate: ``metric`` must change by ``target`` (``better``: which side passes)."""

    name: str
    metric: str
    target: float
    unit: str
    better: Better
    drop: bool = False  # judge the fall of the metric (quality drop) rather than its change


def product_gates(cfg: GatesConfig, primary: str) -> tuple[Gate, ...]:
    return (Gate("latency", "lat_ms", cfg.latency_pct, "%", "lower"),
            Gate("l2_hit", "l2_hit_pct", cfg.l2_pp, "pp", "higher"),
            Gate("energy_per_token", "ept_j_per_tok", cfg.ept_pct, "%", "lower"),
            Gate("quality_drop", primary, cfg.quality_drop_pp, "pp", "lower", drop=True))


def _oriented(change: Change, drop: bool) -> tuple[float, tuple[float, float] | None]:
    """The estimate and CI of the change, or of the drop (its negation)."""
    if not drop:
        return change.estimate, change.ci95
    ci = (-change.ci95[1], -change.ci95[0]) if change.ci95 is not None else None
    return -change.estimate, ci


def _rule(gate: Gate) -> str:
    what = f"the drop of {gate.metric}" if gate.drop else f"the change of {gate.metric}"
    side = "≤" if gate.better == "lower" else "≥"
    return f"pass if the whole 95 % CI of {what} is {side} {gate.target:g} {gate.unit}; fail if it lies wholly on the other side"


def judge_gate(gate: Gate, a: BranchResult, b: BranchResult, allow_modelled: bool, seed: int) -> dict[str, Any]:
    """The verdict of one gate, with the figures that decided it."""
    base = {"gate": gate.name, "metric": gate.metric, "target": gate.target, "unit": gate.unit,
            "rule": _rule(gate), "value": None, "ci95": None, "source": None, "decided_by": None}
    change = branch_change(a, b, gate.metric, seed)
    if isinstance(change, str):
        return {**base, "verdict": "not evaluated", "reason": change}
    value, ci = _oriented(change, gate.drop)
    base.update(value=value, ci95=list(ci) if ci else None, source=change.source)
    figure = next(f for f in a.candidates(gate.metric) if f.source == change.source)
    if figure.detail.get("secondary"):
        return {**base, "verdict": "not evaluated", "reason": f"{change.source} gives {gate.metric} as a secondary "
                f"figure only ({figure.detail['secondary']})"}
    if not decides(figure, allow_modelled):
        return {**base, "verdict": "not evaluated",
                "reason": f"only {change.source} figures on both sides; modelled or simulated figures decide "
                          f"nothing unless gates.allow_modelled is true"}
    verdict = judge(ci, gate.target, gate.better)
    reason = None if ci is not None else change.basis
    return {**base, "verdict": verdict, "reason": reason,
            "decided_by": f"{gate.metric} ({change.source}), {change.basis}"}


def evaluate_gates(linear: BranchResult, iterative: BranchResult, cfg: GatesConfig, seed: int = 0) -> list[dict[str, Any]]:
    """Verdicts of the four product gates, iterative vs linear."""
    return [judge_gate(g, linear, iterative, cfg.allow_modelled, seed)
            for g in product_gates(cfg, linear.primary_quality)]
