"""Resolving the config's component names against the registry, before anything runs."""

from __future__ import annotations

import attrs

from icd_core.config.schema import Config
from icd_core.contract.abilities import SuggestsGraphSource, SuggestsMeasurement, SuggestsTolerance
from icd_core.contract.errors import ConfigError
from icd_core.plugin.registry import Registry
from icd_core.plugin.specs import ComponentSpec, resolve, split_spec

AUTO = "auto"
MODEL_DIRECTORY = "model-directory"
DEFAULT_REPEATS = 30
DEFAULT_WARMUP = 5
DEFAULT_EQUIVALENCE_TOL = 1e-4


@attrs.frozen
class Selection:
    """Every component a run uses, validated, and the effective config (``auto`` resolved)."""

    config: Config
    workload: ComponentSpec
    graph: ComponentSpec | None  # None: "auto", settled by the workload once loaded
    graph_prime: ComponentSpec | None  # source of W′ (None: the same as graph)
    solver: ComponentSpec
    adapters: tuple[ComponentSpec, ...]
    measures: tuple[ComponentSpec, ...]


def select(config: Config, registry: Registry) -> Selection:
    """Resolve names and options; unknown names raise with a did-you-mean (exit 2)."""
    solver_raw = config.solver.name
    if solver_raw == AUTO:
        solver_raw = _preferred(registry, "solver", "solver.name")
    solver = resolve(registry, "solver", solver_raw)
    adapters = tuple(resolve(registry, "adapter", raw) for raw in config.transform.chain())
    measure_names = config.measure.use if config.measure.use is not None else \
        [n for n in registry.names("measure") if not registry.get("measure", n).opt_in]
    measures = tuple(resolve(registry, "measure", name) for name in measure_names)
    for name in config.report.formats or ():
        if name not in registry.names("reporter"):
            registry.get("reporter", name)  # raises the did-you-mean error
    workload_raw = config.workload
    if config.model is not None:
        workload_raw = model_workload(config, registry)
    elif workload_raw == AUTO:
        workload_raw = _preferred(registry, "workload", "workload")
    effective = attrs.evolve(config, workload=workload_raw, solver=attrs.evolve(config.solver, name=solver_raw))
    source, prime = config.graph.source, config.graph.reperm_source
    return Selection(
        config=effective,
        workload=resolve(registry, "workload", workload_raw),
        graph=None if source == AUTO else resolve(registry, "graph", source, prefix="graph.source"),
        graph_prime=None if prime is None else resolve(registry, "graph", prime, prefix="graph.reperm_source"),
        solver=solver, adapters=adapters, measures=measures)


def _preferred(registry: Registry, kind: str, key: str) -> str:
    """What ``auto`` means for ``kind``: the usable component that declares the highest preference."""
    name = registry.preferred(kind)
    if name is None:
        raise ConfigError(f"{key}: auto, but no installed {kind} declares a preference; name one "
                          f"({', '.join(registry.names(kind)) or 'none installed'})")
    return name


def model_workload(config: Config, registry: Registry) -> dict:
    """The workload spec that loads ``config.model``: the named workload (it must have the
    ``model-directory`` ability) or the one installed workload that has it."""
    able = [n for n in registry.names("workload") if MODEL_DIRECTORY in registry.get("workload", n).abilities]
    raw = config.workload
    if isinstance(raw, dict):
        options = dict(raw)
    else:
        name, positional, keywords = split_spec(raw)
        if positional:
            raise ConfigError(f"workload {raw!r}: with --model give its options as key=value (e.g. model:groups=ffn)")
        options = {"name": None if name == AUTO else name, **keywords}
    if options["name"] is None:
        if not able:
            raise ConfigError(f"model {config.model}: no installed workload loads a model directory "
                              f"(install icd-workload-hf)")
        options["name"] = able[0]
    elif options["name"] not in able:
        raise ConfigError(f"model {config.model}: workload {options['name']!r} does not load a model directory "
                          f"({', '.join(able) or 'none installed does'})")
    return {**options, "path": config.model}


def settle(selection: Selection, registry: Registry, workload: object) -> Selection:
    """Fill what depends on the loaded workload: an ``auto`` graph source, and the measurement
    repeats / warm-up and equivalence tolerance it suggests when the config leaves them unset."""
    config = selection.config
    graph = selection.graph
    if graph is None:
        name = workload.graph_source if isinstance(workload, SuggestsGraphSource) else "mock"
        graph = resolve(registry, "graph", name, prefix="graph.source (the workload's choice)")
        config = attrs.evolve(config, graph=attrs.evolve(config.graph, source=name))
    pipeline = config.pipeline
    suggests = isinstance(workload, SuggestsMeasurement)
    repeats = pipeline.repeats or (workload.repeats if suggests else DEFAULT_REPEATS)
    warmup = pipeline.warmup_iter if pipeline.warmup_iter is not None else \
        (workload.warmup if suggests else DEFAULT_WARMUP)
    tolerance = pipeline.equivalence_tol or \
        (workload.equivalence_tol if isinstance(workload, SuggestsTolerance) else DEFAULT_EQUIVALENCE_TOL)
    config = attrs.evolve(config, pipeline=attrs.evolve(pipeline, repeats=repeats, warmup_iter=warmup,
                                                        equivalence_tol=tolerance))
    return attrs.evolve(selection, config=config, graph=graph)
