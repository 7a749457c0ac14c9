"""Entry point of ``icd-solver-spectral``: ``spectral`` plus baselines ``rcm``, ``fiedler``,
``random`` (numpy/scipy work is imported inside the hook)."""

from __future__ import annotations

from typing import Literal

import attrs

from icd_core import hookimpl

NAME = "spectral"
BASELINE_SUMMARIES = {
    "rcm": "reverse Cuthill-McKee order (scipy; a bandwidth baseline)",
    "fiedler": "one global Fiedler order (a linear-arrangement baseline)",
    "random": "seeded random order (the floor every solver must beat)",
}


@attrs.frozen
class SpectralOptions:
    """``seeds``: cluster the graph first (``louvain`` via networkx, or ``spectral`` k-means
    into ``solver.k_blocks`` clusters) and keep the clusters' order; ``none`` by default.
    ``multilevel``: METIS coarse parts first (``auto``: from 2,048 super-nodes, when pymetis
    is installed; ``on``; ``off``: pure spectral bisection)."""

    seeds: Literal["none", "louvain", "spectral"] = "none"
    multilevel: Literal["auto", "on", "off"] = "auto"


@hookimpl
def icd_register(registry):
    registry.add("solver", NAME, summary="recursive spectral bisection + KL + block swaps down to cache-line blocks",
                 options=SpectralOptions, positional=("seeds",), preference=10)  # solver.name auto
    for name, summary in BASELINE_SUMMARIES.items():
        registry.add("solver", name, summary=summary)


@hookimpl
def icd_fit_permutation(ctx, solver, w, constraints):
    if solver.name == NAME:
        from .solve import fit_spectral

        options = solver.options or SpectralOptions()
        return fit_spectral(w, constraints, ctx.deadline(w.n), seed=ctx.seed,
                            refine_steps=ctx.config.solver.refine_steps, seeds=options.seeds,
                            k_blocks=ctx.config.solver.k_blocks, multilevel=options.multilevel)
    if solver.name in BASELINE_SUMMARIES:
        from .solve import fit_baseline

        return fit_baseline(solver.name, w, constraints, seed=ctx.seed)
    return None
