"""Many layout problems at once (every group of a W.npz, every KV head of a prompt).

The problems are dealt to a pool of worker processes made once per batch by fork, so they
share the parent's loaded plugins and imports (no per-problem process or import cost); each
worker runs its problems with one BLAS thread. Every problem is solved with the same seed and
nothing it computes depends on its neighbours or the worker count, so the result is the same
whatever ``workers`` is.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from icd_core.contract.records import Constraints, FitResult, GraphW
from icd_core.plugin.specs import ComponentSpec
from icd_core.run.context import RunContext
from icd_core.run.timing import available_cores, default_threads

_JOB: dict = {}  # what the forked workers inherit: the manager, the context and the solver
_IN_BATCH_WORKER = False  # True in a batch's worker processes (see solver_workers)


def solver_workers() -> int:
    """Processes one solve may use for itself: 1 inside a batch worker (the batch already
    keeps every core busy), else the cores of this process's CPU affinity, capped by
    ``OMP_NUM_THREADS`` when set (a sweep or Ray sets it per trial)."""
    return 1 if _IN_BATCH_WORKER else min(len(available_cores()), default_threads())


def _enter_worker() -> None:
    global _IN_BATCH_WORKER
    _IN_BATCH_WORKER = True


def _solve(item: tuple[GraphW, Constraints]) -> FitResult:
    from threadpoolctl import threadpool_limits

    from icd_core.plugin import dispatch

    w, constraints = item
    with threadpool_limits(1):
        return dispatch.fit_permutation(_JOB["manager"], _JOB["ctx"], _JOB["solver"], w, constraints)


def solve_many(manager, ctx: RunContext, solver: ComponentSpec, problems: Sequence[GraphW],
               constraints: Sequence[Constraints] | None = None, workers: int | None = None) -> list[FitResult]:
    """One :class:`FitResult` per problem, in order; ``workers`` processes (default: the cores
    this process may use, at most one per problem)."""
    constraints = list(constraints) if constraints is not None else [Constraints()] * len(problems)
    if len(constraints) != len(problems):
        raise ValueError(f"solve_many: {len(problems)} problems but {len(constraints)} constraint sets")
    workers = max(1, min(workers or len(available_cores()), len(problems)))
    _JOB.update(manager=manager, ctx=ctx, solver=solver)
    items = list(zip(problems, constraints))
    try:
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [_solve(item) for item in items]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_enter_worker) as pool:
            return list(pool.map(_solve, items, chunksize=max(1, len(items) // (4 * workers))))
    finally:
        _JOB.clear()
