"""Resolving the config's component names against the registry, before anything runs."""

from __future__ import annotations

import attrs

from .config import Config
from .errors import ConfigError
from .registry import Registry
from .specs import ComponentSpec, resolve

PREFERRED_SOLVER = "spectral"
FALLBACK_SOLVER = "identity"


@attrs.frozen
class Selection:
    """Every component a run uses, validated, and the effective config (``auto`` resolved)."""

    config: Config
    workload: ComponentSpec
    graph: ComponentSpec
    solver: ComponentSpec
    adapters: tuple[ComponentSpec, ...]
    measures: tuple[ComponentSpec, ...]


def select(config: Config, registry: Registry) -> Selection:
    """Resolve names and options; unknown names raise with a did-you-mean (exit 2)."""
    solver_raw = config.solver.name
    if solver_raw == "auto":
        solver_raw = PREFERRED_SOLVER if PREFERRED_SOLVER in registry.names("solver") else FALLBACK_SOLVER
    solver = resolve(registry, "solver", solver_raw)
    adapters = tuple(resolve(registry, "adapter", raw) for raw in config.transform.chain())
    measure_names = config.measure.use if config.measure.use is not None else registry.names("measure")
    measures = tuple(resolve(registry, "measure", name) for name in measure_names)
    for name in config.report.formats or ():
        if name not in registry.names("reporter"):
            registry.get("reporter", name)  # raises the did-you-mean error
    if not measures:
        raise ConfigError("measure.use: empty (at least wallclock is needed)")
    effective = attrs.evolve(config, solver=attrs.evolve(config.solver, name=solver_raw))
    return Selection(
        config=effective,
        workload=resolve(registry, "workload", config.workload),
        graph=resolve(registry, "graph", config.graph.source),
        solver=solver, adapters=adapters, measures=measures)
