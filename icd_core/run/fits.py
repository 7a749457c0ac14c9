"""Fitting π for one group: the permutation cache, the solver under its budget, and the rule
that a π worse than the order it started from is not applied."""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.contract.errors import SolverTimeout
from icd_core.contract.records import FitResult, GraphW
from icd_core.layout.permutations import identity
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.plugin.specs import ComponentSpec
from icd_core.run.context import RunContext, solver_budget
from icd_core.run.permcache import PermutationCache, matrix_digest, version_tag

# The stages of a layout, as recorded in metrics.json ("fits") and in permutation-cache keys.
W_DENSE = "W"  # W of the pre-run state
W_PRIME = "W'"  # W′ of a transformed state (iterative mode)
PI0 = "pi0"  # π₀, fitted on W
PI1 = "pi1"  # π₁, fitted on W′ (composed with what came before)


def keep_if_better(fit: FitResult, n: int) -> FitResult:
    """A π whose block cost is worse than the order it started from is not applied."""
    before, after = fit.stats.get("C_initial"), fit.stats.get("C")
    if before is None or after is None or after <= before:
        return fit
    stats = {**fit.stats, "rejected": f"C {after:.4f} > {before:.4f} of the current order: kept it",
             "C": before, "Q": fit.stats.get("Q_initial"), "improved": False}
    return FitResult(perm=identity(n), stats=stats)


def timeout_note(fit: FitResult, budget: float) -> str:
    """What a solver that hit its budget left in place (printed and recorded)."""
    if fit.stats.get("rejected") or fit.stats.get("C") is None:
        return f"hit its {budget:g} s budget: kept the current order"
    return f"hit its {budget:g} s budget: kept its best order so far (C {fit.stats['C_initial']:.4f} → {fit.stats['C']:.4f})"


@attrs.frozen
class Fitter:
    """The selected solver behind the permutation cache; ``tag`` names the run's inputs and
    ``solver_key`` the solver, its settings and its code version (both part of every cache key)."""

    manager: PluginManager
    ctx: RunContext
    solver: ComponentSpec
    cache: PermutationCache
    tag: str
    solver_key: str

    def fit(self, w: GraphW, group: str, constraints: Any, stage: str, branch: str,
            chain: tuple[str, ...]) -> tuple[FitResult, dict[str, Any]]:
        """π for ``group`` and the record metrics.json keeps of it (``fits``)."""
        key = version_tag(self.tag, self.solver_key, matrix_digest(w.matrix), group, stage,
                          repr(attrs.astuple(constraints)), *chain)
        with self.ctx.bus.stage("fit_permutation", state="PERMUTED" if stage == PI0 else "REPERMUTED",
                                pi=stage, group=group, branch=branch, solver=self.solver.name) as meta:
            fit = self.cache.get(key, w.n)
            meta["cache"] = "hit" if fit is not None else "miss"
            if fit is None:
                try:
                    fit = dispatch.fit_permutation(self.manager, self.ctx, self.solver, w, constraints)
                except SolverTimeout as exc:
                    fit = FitResult(perm=identity(w.n), stats={"method": self.solver.name, "timed_out": True,
                                                               "reason": str(exc), "C": None, "time_s": None})
                self.cache.put(key, fit)
            fit = keep_if_better(fit, w.n)
            if fit.stats.get("timed_out"):
                budget = fit.stats.get("budget_s") or solver_budget(self.ctx.config.solver.time_budget_s, w.n)
                fit = FitResult(perm=fit.perm, stats={**fit.stats, "kept": timeout_note(fit, budget)})
                self.ctx.bus.warn(f"solver {self.solver.name} {fit.stats['kept']}", group=group, pi=stage)
            meta.update({k: fit.stats.get(k) for k in ("C_initial", "C", "Q", "time_s", "budget_s", "timed_out")})
        return fit, {"branch": branch, "stage": stage, "group": group, "cache": meta["cache"], "stats": dict(fit.stats)}
