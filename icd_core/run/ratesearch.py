"""The most aggressive rate whose quality drop stays within a limit, by bisection.

A candidate passes when the upper end of the 95 % CI of its paired quality loss (vs the
dense state, item by item: a drop of agreement, a rise of KL) is at most the limit — so noise cannot let a damaging rate through.
The knob is assumed monotone (a more aggressive value never has better quality); the search
tries the most aggressive value first, then bisects between the best passing and the best
failing value, within a bounded number of evaluations, every one recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from icd_core.contract.errors import ContractError
from icd_core.contract.records import Figure, Knob
from icd_core.run.measuring import judge_quality
from icd_core.run.paired import Change, compare

if TYPE_CHECKING:
    from icd_core.run.engine import ArmOutcome, Engine

RULE = "upper end of the 95 % CI of the paired quality loss vs dense <= limit"


@attrs.frozen
class Trial:
    """One evaluated value: its quality drop (pp, estimate and CI) and whether it passed."""

    value: float
    drop: float | None
    ci95: tuple[float, float] | None
    ok: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "drop": self.drop, "ci95": list(self.ci95) if self.ci95 else None,
                "ok": self.ok, "reason": self.reason}


def judge_drop(metric: str, dense: Figure, candidate: Figure, limit: float, value: float, seed: int) -> Trial:
    """Pass when the upper end of the paired CI of the loss (a fall of a higher-is-better
    figure, a rise of a lower-is-better one) is within ``limit``."""
    change = compare(metric, dense, candidate, "difference", seed)
    if not isinstance(change, Change) or change.ci95 is None:
        why = change if isinstance(change, str) else change.basis
        return Trial(value, None, None, False, f"loss not measurable: {why}")
    sign = -1.0 if dense.better == "higher" else 1.0
    low, high = sorted((sign * change.ci95[0] + 0.0, sign * change.ci95[1] + 0.0))  # + 0.0: no signed zero
    return Trial(value, sign * change.estimate + 0.0, (low, high), high <= limit)


def search(knob: Knob, evaluate: Callable[[float], Trial], max_evaluations: int) -> tuple[float, list[Trial]]:
    """(the most aggressive passing value found, every trial in order)."""
    trials: list[Trial] = []

    def passes(value: float) -> bool:
        trial = evaluate(int(value) if knob.integer else value)
        trials.append(trial)
        return trial.ok

    if passes(knob.aggressive):
        return knob.aggressive, trials
    if not passes(knob.gentle):
        return knob.gentle, trials
    good, bad = knob.gentle, knob.aggressive
    while len(trials) < max_evaluations:
        middle = knob.between(good, bad)
        if middle is None:
            break
        if passes(middle):
            good = middle
        else:
            bad = middle
    return (int(good) if knob.integer else good), trials


def search_rate(engine: Engine, branch: str, at: ArmOutcome) -> ArmOutcome:
    """The arm at the most aggressive rate of the plan's ``auto`` adapter whose quality loss
    stays within the rate limit (the adapters after it re-run for every trial). Every trial is
    an outcome of its own; the chosen one is returned, with every trial's fits and the search."""
    plan, cfg = engine.plan, engine.ctx.config
    index = plan.auto_index
    spec, later = engine.sel.adapters[index], engine.sel.adapters[index + 1:]
    knob = spec.options.auto_knob(at.state)
    outcomes: dict[float, ArmOutcome] = {}
    fitted: list[dict[str, Any]] = []  # the fits of every trial, in the order they ran

    def evaluate(value: float) -> Trial:
        key = (at.state, index, value)
        memo = engine.memo.trials.get(key)
        if memo is not None:  # another arm evaluated this very state at this value, with no π₁ in between
            outcomes[value] = attrs.evolve(memo[0], fits=at.fits)
            return memo[1]
        candidate = attrs.evolve(spec, options=attrs.evolve(spec.options, **{knob.name: value}),
                                 text=f"{spec.text} ({knob.name}={value:g})")
        outcome = engine.steps(branch, later, engine.step(branch, candidate, at))
        figure = judge_quality(outcome.state, outcome.state.run(), plan.reference).get(plan.rate_metric)
        if figure is None:
            raise ContractError(f"execution.rate_metric {plan.rate_metric!r}: the workload reports no such quality")
        outcomes[value] = outcome
        fitted.extend(outcome.fits[len(at.fits):])
        trial = judge_drop(plan.rate_metric, plan.pre_quality[plan.rate_metric], figure, plan.rate_limit, value,
                           cfg.seed)
        if len(outcome.fits) == len(at.fits):  # no re-permutation: the result depends on (state, value) only
            engine.memo.trials[key] = (outcome, trial)
        return trial

    with engine.ctx.bus.stage("rate_search", branch=branch, adapter=spec.text, knob=knob.name) as meta:
        value, trials = search(knob, evaluate, cfg.execution.rate_evaluations)
        meta.update(chosen=value, trials=len(trials))
    met = any(t.ok for t in trials if t.value == value)
    record = {"adapter": spec.text, "knob": knob.name, "chosen": value, "met": met, "metric": plan.rate_metric,
              "limit": plan.rate_limit, "rule": RULE, "evaluations": len(trials),
              "max_evaluations": cfg.execution.rate_evaluations, "trials": [t.to_json() for t in trials]}
    if not met:
        engine.ctx.bus.warn(f"{branch}: no {knob.name} of {spec.name} keeps {plan.rate_metric} within "
                            f"{plan.rate_limit:g}; kept the gentlest ({value:g})")
    return attrs.evolve(outcomes[value], fits=(*at.fits, *fitted), search=record)
