"""The icd plugin contract.

Every hook is called with keyword arguments only; implementations must not give their
parameters default values (pluggy never passes them). A *phase* hook (everything but
``icd_register`` and ``icd_report``) is ``firstresult`` and is called on one plugin only: the
one that registered the selected component (``spec.name``), so a hook body never checks whose
name it was given (a plugin with several components of a kind picks by ``spec.name``). The
core resolves names through the registry before calling, and raises
:class:`~icd_core.contract.errors.ContractError` when the plugin gives no answer for a name it registered.

A minimal adapter plugin::

    from icd_core import hookimpl, TransformMeta, TransformResult

    @hookimpl
    def icd_register(registry):
        registry.add("adapter", "bf16", summary="round weights to bfloat16")

    @hookimpl
    def icd_apply_transform(ctx, adapter, state, layout):
        ...
        return TransformResult(state=new_state, meta=TransformMeta(adapter="bf16", spec="bf16"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icd_core.contract.hookmarkers import hookspec

if TYPE_CHECKING:
    from icd_core.contract.records import (
        Constraints,
        FitResult,
        GraphW,
        MetricsFragment,
        PermutationGroup,
        TransformResult,
    )
    from icd_core.contract.state import Layout, ModelState
    from icd_core.plugin.registry import ScopedRegistry
    from icd_core.plugin.specs import ComponentSpec
    from icd_core.run.context import RunContext


@hookspec
def icd_register(registry: ScopedRegistry) -> None:
    """Declare the components this plugin provides.

    :param registry: call ``registry.add(kind, name, summary=…, options=…, positional=…,
        check=…)`` once per component. ``kind`` is one of workload, graph, solver, adapter, bridge,
        measure, reporter, bridge. ``check`` returns ``None`` when the component can run on this
        machine, else a short reason (it is called lazily, e.g. by ``icd plugins list``).

    Combine: all implementations run, each into a registry scoped to its plugin. Called
    once when the plugin manager loads plugins. Must stay cheap: no torch import here.

    Example: ``registry.add("solver", "spectral", summary="recursive spectral bisection",
    options=SpectralOptions)``.
    """


@hookspec(firstresult=True)
def icd_load_workload(ctx: RunContext, workload: ComponentSpec) -> ModelState | None:
    """Load (or build) the model selected by ``workload`` and return its initial state.

    :param ctx: the run context (seed, config, event bus).
    :param workload: the selected workload spec; one this plugin registered.
    :return: :meth:`ModelState.initial` of the tensors, groups and a runnable workload.

    Called once per run, in state READY. Example: the built-in ``mock`` workload builds a
    seeded two-layer ReLU MLP whose hidden dimension is the group ``mlp.hidden``.
    """


@hookspec(firstresult=True)
def icd_build_w(ctx: RunContext, source: ComponentSpec, state: ModelState,
                group: PermutationGroup) -> GraphW | None:
    """Build the co-access matrix W of one permutation group, in the state's current layout.

    :param source: the selected graph source (``mock``, ``trace``, …).
    :param state: the current model state (dense before transforms, transformed for W′).
    :param group: the group whose dimensions W indexes; ``W.shape == (group.size,) * 2``.
    :return: a :class:`GraphW` (symmetric float32 CSR, zero diagonal, finite, non-negative).

    Called at W_BUILT for every group, and again at REPERMUTED (W′) in iterative mode.
    Example: ``GraphW(matrix=csr, meta={"source": "mock", "seed": 0})``.
    """


@hookspec(firstresult=True)
def icd_fit_permutation(ctx: RunContext, solver: ComponentSpec, w: GraphW,
                        constraints: Constraints) -> FitResult | None:
    """Find π for one group: ``perm[new_position] = old_index`` (int32, a bijection).

    :param solver: the selected solver spec (its ``options``, plus ``ctx.config.solver``
        for the shared budget ``time_budget_s``, ``refine_steps``, ``k_blocks``, ``block``).
    :param w: the co-access matrix in the current layout.
    :param constraints: super-node size and fixed positions the result must respect.
    :return: :class:`FitResult` with stats (``C``, ``Q``, ``la``, ``time_s``,
        ``timed_out``, ``method`` …). On a hit time budget, return the best solution so
        far with ``timed_out: True``.

    Called at PERMUTED (π₀) and REPERMUTED (π₁).
    """


@hookspec(firstresult=True)
def icd_apply_transform(ctx: RunContext, adapter: ComponentSpec, state: ModelState,
                        layout: Layout) -> TransformResult | None:
    """Apply an S/Q/K transform and describe it.

    :param adapter: the selected adapter spec with its validated options.
    :param state: the state to transform. Never modify it or its tensors in place: return
        a new state (``state.with_transform(updates, meta)``), so rollback stays exact.
    :param layout: current π per group, cache-line block ``g`` and constraints;
        ``layout.permute`` is False in the ``identity`` arm of an equal-quality comparison,
        and then the adapter must not re-order channels itself (no grouping search).
    :return: :class:`TransformResult` (new state, :class:`TransformMeta`, optional undo).
        When the transform cannot apply (dtype, shape, missing kernel), return the input
        state with ``TransformMeta.skipped(…, reason)``. Raising makes the core record a
        no-op with the exception as the reason.

    Called at TRANSFORMED, once per selected adapter, in order. An option given as ``auto``
    is searched by the core: the options class returns a :class:`Knob` from
    ``auto_knob(state)`` (its name, gentlest and most aggressive values), and the core calls
    this hook once per trial value, keeping the most aggressive one within the quality limit.
    Options that cannot apply to the loaded state (a budget beyond its size) are refused
    before any work by the options class's ``check_state(state)``, which raises a
    :class:`ConfigError` naming the option.
    """


@hookspec(firstresult=True)
def icd_measure(ctx: RunContext, measure: ComponentSpec, state: ModelState) -> MetricsFragment | None:
    """Measure ``state`` and return figures by name (``lat_ms``, ``toks_per_s``,
    ``l2_hit_pct``, ``ept_j_per_tok`` …).

    :return: a mapping of :class:`Figure`; each carries its ``source`` (``measured:…``,
        ``simulated:…``, ``modelled:…``, ``computed:…``) or ``value=None`` with the reason it
        could not be measured. Attach per-unit ``samples`` (:class:`Samples`: interleaved
        rounds, evaluation items, or independent windows) so comparisons get a CI; a measured
        figure without them is compared without one and decides no gate. Flag a figure that
        must never decide (a hit rate that rises when more is read) with
        ``detail["secondary"]``, a repeatable one with ``detail["deterministic"]``.

    Called at MEASURED for the pre-run state and each branch's final state. The run's
    ``repeats`` and ``warmup_iter`` are in ``ctx.config.pipeline``.
    """


@hookspec(firstresult=True)
def icd_bridge(ctx: RunContext, target: ComponentSpec, run_dir: Any, out_dir: Any) -> dict[str, Any] | None:
    """Carry a finished run's layout into a compiler's IR (``icd bridge RUN --to TARGET``).

    :param target: the selected bridge (e.g. ``tvm``); one this plugin registered.
    :param run_dir: the finished run directory (``config.json``, ``perm.json``, ``metrics.json``).
    :param out_dir: an empty directory for the compiled module and ``bridge.json``.
    :return: the ``bridge.json`` record (insertion points, round trip, equivalence, timing…);
        the core writes it. A workload the bridge cannot export is one clear
        :class:`~icd_core.contract.errors.InputDataError` naming the operator or reason.

    Called once by ``icd bridge``, never during ``icd run``.
    """


@hookspec(firstresult=True)
def icd_export(workload: ComponentSpec, state: ModelState, out_dir: Any, format: str) -> dict[str, Any] | None:
    """Write ``state`` (a finished run's chosen arm) as a model directory a user loads without icd.

    :param workload: the run's workload; one this plugin registered.
    :param state: the state to write: its tensors in their stored (permuted) order, with the
        transforms in ``state.applied``.
    :param out_dir: an empty temporary directory; the core writes ``icd_layout.json`` beside
        what the plugin writes, then renames it into place (nothing half-written is left).
    :param format: ``hf`` (plain transformers weights) or another format the plugin names.
    :return: a record of what was written (files, what each transform became, the check that
        reloading without icd gives the state's outputs); a format it cannot write is one
        :class:`~icd_core.contract.errors.InputDataError` naming it.

    Called by ``icd run --export`` and ``icd export``, never during the measured run.
    """


@hookspec
def icd_report(ctx: RunContext, record: Any) -> list[str] | None:
    """Write report artifacts for a finished run.

    :param record: the :class:`~icd_core.report.finished.FinishedRun`: ``metrics`` (the metrics.json
        document) and ``events`` (the events.jsonl lines).
    :return: the paths written (relative to the run directory), or ``None``.

    Combine: all implementations run; each writes only the formats it owns and only when
    ``ctx.wants_report(name)`` is true. Use ``ctx.write_artifact`` (atomic). Called at
    REPORTED and by ``icd report RUN``.
    """


PHASE_HOOKS: dict[str, str] = {
    "icd_load_workload": "workload",
    "icd_build_w": "source",
    "icd_fit_permutation": "solver",
    "icd_apply_transform": "adapter",
    "icd_measure": "measure",
    "icd_bridge": "target",
    "icd_export": "workload",
}
"""Phase hook → the name of its spec parameter."""
