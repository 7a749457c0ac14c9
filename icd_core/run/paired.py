"""Comparing two states' figures with a 95 % CI, and the one verdict rule every gate uses.

A comparison pairs what can be paired: interleaved timing rounds (the per-round ratio b/a),
or evaluation items (the figure's statistic recomputed on one bootstrap resample of items for
both states). Independent repeats (``window`` samples, e.g. energy windows) are bootstrapped
per state. A figure without samples is an exact value only when its source is deterministic
(``computed:``, ``modelled:``, ``simulated:``, or a measure that flags
``detail["deterministic"]``); a single noisy measurement has no CI and decides nothing.

:func:`judge`: pass only when the whole CI lies beyond the target, fail when the whole CI
lies short of it, otherwise inconclusive.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from icd_core.contract.records import Figure, Samples
from icd_core.run.stats import MIN_ROUNDS_FOR_CI, median_ci  # noqa: F401 - median_ci is used and re-exported

RESAMPLES = 1000
SOURCE_PRIORITY = ("measured", "simulated", "modelled", "computed")
"""Which figure is shown first when several measures give one: measured > simulated > modelled."""

Kind = Literal["relative", "difference"]
Better = Literal["lower", "higher"]
Verdict = Literal["pass", "fail", "inconclusive", "not evaluated"]


@attrs.frozen
class Change:
    """``b`` vs ``a`` on one figure: ``relative`` in % of ``a``, or a ``difference`` in the
    figure's unit; the estimate, its 95 % CI and what the CI was computed over."""

    metric: str
    kind: Kind
    unit: str
    estimate: float
    ci95: tuple[float, float] | None
    basis: str
    source: str
    n: int | None = None

    def to_json(self) -> dict:
        return {"metric": self.metric, "kind": self.kind, "unit": self.unit, "estimate": self.estimate,
                "ci95": list(self.ci95) if self.ci95 is not None else None, "basis": self.basis,
                "source": self.source, "n": self.n}


def priority(figure: Figure) -> int:
    """Rank of a figure's source kind (lower is preferred)."""
    kind = figure.kind
    return SOURCE_PRIORITY.index(kind) if kind in SOURCE_PRIORITY else len(SOURCE_PRIORITY)


def deterministic(figure: Figure) -> bool:
    return figure.kind in ("computed", "modelled", "simulated") or bool(figure.detail.get("deterministic"))


def decides(figure: Figure, allow_modelled: bool) -> bool:
    """Whether a figure may decide a gate or a rollback (measured, or opted in)."""
    return figure.kind == "measured" or allow_modelled


def statistic(samples: Samples, index: np.ndarray | None = None) -> np.ndarray | float:
    """The figure's value from its samples; with ``index`` (resamples × n) one per resample."""
    v = samples.values if index is None else samples.values[index]
    axis = -1 if samples.values.ndim == 1 else -2
    if samples.statistic == "median":
        out = np.median(v, axis=axis)
    elif samples.statistic == "mean":
        out = v.mean(axis=axis)
    else:
        x, y = v[..., 0], v[..., 1]
        if samples.statistic == "spearman":
            from scipy.stats import rankdata

            x, y = rankdata(x, axis=-1), rankdata(y, axis=-1)
        x = x - x.mean(axis=-1, keepdims=True)
        y = y - y.mean(axis=-1, keepdims=True)
        denom = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
        out = np.divide((x * y).sum(-1), denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)
    return out * samples.scale


def _ci(draws: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def _relative(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (np.asarray(b) / np.asarray(a) - 1.0)


"""The fewest values whose range covers their median with ≥ 95 % (1 − 2^(1−n) ≥ 0.95)."""


def _draws(a: Samples, b: Samples, kind: Kind,
           rng: np.random.Generator) -> tuple[np.ndarray | tuple | None, float, str]:
    """Bootstrap draws of the change (or, for rounds, the exact CI; ``None`` when too few
    rounds give none), the point estimate and the basis text."""
    n = len(a)
    if a.paired and b.paired:
        if a.unit == "round":  # per-round ratios: each round timed both states back to back
            per_round = _relative(a.values, b.values) if kind == "relative" else b.values - a.values
            return median_ci(per_round), float(np.median(per_round)), \
                f"{n} interleaved rounds, median with its order-statistic CI"
        index = rng.integers(0, n, (RESAMPLES, n))
        sa, sb = statistic(a, index), statistic(b, index)
        change = _relative(sa, sb) if kind == "relative" else sb - sa
        point = _relative(statistic(a), statistic(b)) if kind == "relative" else statistic(b) - statistic(a)
        return np.asarray(change), float(point), f"{n} {a.unit}s, paired bootstrap"
    ia = rng.integers(0, len(a), (RESAMPLES, len(a)))
    ib = rng.integers(0, len(b), (RESAMPLES, len(b)))
    sa, sb = statistic(a, ia), statistic(b, ib)
    change = _relative(sa, sb) if kind == "relative" else sb - sa
    point = _relative(statistic(a), statistic(b)) if kind == "relative" else statistic(b) - statistic(a)
    return np.asarray(change), float(point), f"{len(a)} and {len(b)} independent {a.unit}s (unpaired bootstrap)"


def compare(metric: str, a: Figure, b: Figure, kind: Kind, seed: int = 0) -> Change | str:
    """The change from ``a`` to ``b`` with a 95 % CI, or why it cannot be computed."""
    if a.value is None or b.value is None:
        return (a.reason if a.value is None else b.reason) or "not measured"
    if a.source != b.source:
        return f"different sources: {a.source} vs {b.source}"
    unit = "%" if kind == "relative" else (a.unit or "")
    if kind == "relative" and a.value == 0:
        return f"{metric}: the reference value is 0, a relative change is undefined"
    sa, sb = a.samples, b.samples
    if sa is not None and sb is not None and sa.unit == sb.unit and sa.statistic == sb.statistic:
        if sa.paired and len(sa) != len(sb):
            return f"{metric}: {len(sa)} vs {len(sb)} {sa.unit}s cannot be paired"
        if len(sa) >= 2 and len(sb) >= 2:
            draws, point, basis = _draws(sa, sb, kind, np.random.default_rng(seed))
            ci = None if draws is None else draws if isinstance(draws, tuple) else _ci(draws)
            if not np.isfinite([point, *(ci or ())]).all():
                return f"{metric}: the relative change is undefined (a zero in the reference values)"
            if ci is None:
                basis = f"{basis}: too few for a 95 % CI (≥ {MIN_ROUNDS_FOR_CI} needed), so it decides nothing"
            return Change(metric, kind, unit, point, ci, basis, str(a.source), len(sa))
    point = float(_relative(a.value, b.value)) if kind == "relative" else float(b.value - a.value)
    if deterministic(a) and deterministic(b):
        return Change(metric, kind, unit, point, (point, point), "exact values (deterministic source)",
                      str(a.source), None)
    return Change(metric, kind, unit, point, None, f"one value per state from {a.source}: no confidence interval",
                  str(a.source), None)


def judge(ci: tuple[float, float] | None, target: float, better: Better) -> Verdict:
    """pass: the whole CI lies beyond ``target``; fail: the whole CI lies short of it."""
    if ci is None:
        return "inconclusive"
    lo, hi = ci
    if better == "lower":
        return "pass" if hi <= target else "fail" if lo > target else "inconclusive"
    return "pass" if lo >= target else "fail" if hi < target else "inconclusive"


def pick_common(a: tuple[Figure, ...], b: tuple[Figure, ...]) -> tuple[Figure, Figure] | str:
    """The best-ranked source both sides have a value from, or why there is none."""
    have_b = {f.source: f for f in b if f.value is not None}
    for fa in sorted((f for f in a if f.value is not None), key=priority):
        if fa.source in have_b:
            return fa, have_b[fa.source]
    sources_a = ", ".join(str(f.source) for f in a if f.value is not None) or "none"
    sources_b = ", ".join(str(f.source) for f in b if f.value is not None) or "none"
    if sources_a == "none" or sources_b == "none":
        missing = next((f.reason for f in (*a, *b) if f.value is None and f.reason), None)
        return missing or "not measured"
    return f"no common source ({sources_a} vs {sources_b})"
