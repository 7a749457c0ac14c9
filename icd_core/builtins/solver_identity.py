"""Built-in solver ``identity``: keeps the current order (the no-op baseline)."""

from __future__ import annotations

import time

from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import FitResult
from icd_core.layout.metrics import fit_stats
from icd_core.layout.permutations import identity

NAME = "identity"


@hookimpl
def icd_register(registry):
    registry.add("solver", NAME, summary="keep the current order (baseline; always available)",
                 preference=0)  # what ``auto`` falls back to


@hookimpl
def icd_fit_permutation(ctx, solver, w, constraints):
    t0 = time.perf_counter()
    perm = identity(w.n)
    return FitResult(perm=perm, stats=fit_stats(w.matrix, perm, w.block, method=NAME,
                                                time_s=time.perf_counter() - t0))
