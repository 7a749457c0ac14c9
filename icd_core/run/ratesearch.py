"""The most aggressive rate whose quality drop stays within a limit, by bisection.

A candidate passes when the upper end of the 95 % CI of its paired quality loss (vs the
dense state, item by item: a drop of agreement, a rise of KL) is at most the limit — so noise cannot let a damaging rate through.
The knob is assumed monotone (a more aggressive value never has better quality); the search
tries the most aggressive value first, then bisects between the best passing and the best
failing value, within a bounded number of evaluations, every one recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from icd_core.contract.records import Figure, Knob
from icd_core.run.paired import Change, compare


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
