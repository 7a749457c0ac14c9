"""Entry point of ``icd-solver-spectral``: registration and the fit hook (numpy/scipy load lazily)."""

from __future__ import annotations

from icd_core import hookimpl

NAME = "spectral"


@hookimpl
def icd_register(registry):
    registry.add("solver", NAME, summary="recursive spectral bisection of W down to cache-line blocks")


@hookimpl
def icd_fit_permutation(ctx, solver, w, constraints):
    if solver.name != NAME:
        return None
    from .bisection import fit_spectral

    return fit_spectral(w, constraints, ctx.deadline(), seed=ctx.seed)
