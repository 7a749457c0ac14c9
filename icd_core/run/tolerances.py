"""Rollback tolerances: is the final state worse than the pre-run state beyond tolerance?

A tolerance is breached only when the whole paired 95 % CI of the change lies beyond it on
the bad side, on figures of one source; modelled and simulated figures decide nothing unless
``gates.allow_modelled``, secondary figures nothing at all (as for the gates,
:mod:`icd_core.report.gates`).
"""

from __future__ import annotations

from icd_core.config.schema import RollbackConfig
from icd_core.run.paired import Change, decides
from icd_core.run.results import BranchResult, branch_change


def _fmt_ci(change: Change, ci: tuple[float, float]) -> str:
    return f"95 % CI {ci[0]:+.3g}…{ci[1]:+.3g} {change.unit}, {change.basis}, {change.source}"


def regressions(pre: BranchResult, post: BranchResult, cfg: RollbackConfig, allow_modelled: bool,
                seed: int = 0) -> list[str]:
    """Why ``post`` is worse than ``pre`` beyond tolerance: the whole CI past it (empty: none)."""
    checks = [("latency", "lat_ms", cfg.latency_pct, False), ("L2 hit", "l2_hit_pct", -cfg.l2_pp, True),
              ("energy/token", "ept_j_per_tok", cfg.ept_pct, False),
              ("cache misses/access", "cache_misses_per_access", cfg.traffic_pct, False)]
    if cfg.quality_pp is not None:
        checks.append((f"quality {pre.primary_quality}", pre.primary_quality, -cfg.quality_pp, True))
    found = []
    for label, metric, tolerance, falls in checks:
        change = branch_change(pre, post, metric, seed)
        if isinstance(change, str) or change.ci95 is None:
            continue
        figure = next(f for f in pre.candidates(metric) if f.source == change.source)
        if figure.detail.get("secondary") or not decides(figure, allow_modelled):
            continue
        lo, hi = change.ci95
        if (falls and hi < tolerance) or (not falls and lo > tolerance):
            found.append(f"{label} {change.estimate:+.3g} {change.unit} beyond the tolerance of "
                         f"{tolerance:+g} {change.unit} ({_fmt_ci(change, change.ci95)})")
    return found
