"""Typed calls into the phase hooks, with the contract checked on every answer. Each call goes to
the plugin that registered the component named (``PluginManager.hook_for``), no other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from icd_core.contract.errors import ContractError
from icd_core.contract.records import (
    Constraints,
    FitResult,
    GraphW,
    MetricsFragment,
    PermutationGroup,
    TransformResult,
)
from icd_core.contract.state import Layout, ModelState
from icd_core.layout.graphs import check_w
from icd_core.layout.permutations import check_permutation
from icd_core.plugin.bounded import call_bounded
from icd_core.plugin.specs import ComponentSpec

DEFAULT_HOOK_TIMEOUT_S = 3600.0  # hooks called without a run context (export)

if TYPE_CHECKING:
    from icd_core.plugin.manager import PluginManager
    from icd_core.run.context import RunContext


def _answer(manager: PluginManager, hook: str, spec: ComponentSpec, expected: type, **kwargs: Any) -> Any:
    provider = manager.registry.get(spec.kind, spec.name).provider
    ctx = kwargs.get("ctx")
    timeout_s = ctx.config.pipeline.hook_timeout_s if ctx is not None else DEFAULT_HOOK_TIMEOUT_S
    result = call_bounded(manager.hook_for(hook, spec), kwargs, timeout_s,
                          f"{provider}: {hook} for {spec.kind} {spec.name!r}")
    if result is None:
        raise ContractError(f"{provider}: registered {spec.kind} {spec.name!r} but no {hook} "
                            f"implementation answered for it")
    if not isinstance(result, expected):
        raise ContractError(f"{provider}: {hook} for {spec.name!r} returned "
                            f"{type(result).__name__}, expected {expected.__name__}")
    return result


def load_workload(manager: PluginManager, ctx: RunContext, spec: ComponentSpec) -> ModelState:
    return _answer(manager, "icd_load_workload", spec, ModelState, ctx=ctx, workload=spec)


def build_w(manager: PluginManager, ctx: RunContext, spec: ComponentSpec, state: ModelState,
            group: PermutationGroup) -> GraphW:
    w = _answer(manager, "icd_build_w", spec, GraphW, ctx=ctx, source=spec, state=state, group=group)
    check_w(w, group.size, f"graph {spec.name!r}, group {group.name!r}")
    return w


def fit_permutation(manager: PluginManager, ctx: RunContext, spec: ComponentSpec, w: GraphW,
                    constraints: Constraints) -> FitResult:
    fit = _answer(manager, "icd_fit_permutation", spec, FitResult, ctx=ctx, solver=spec, w=w,
                  constraints=constraints)
    perm = check_permutation(fit.perm, w.n, constraints, f"solver {spec.name!r}")
    return FitResult(perm=perm, stats=dict(fit.stats))


def apply_transform(manager: PluginManager, ctx: RunContext, spec: ComponentSpec, state: ModelState,
                    layout: Layout) -> TransformResult:
    return _answer(manager, "icd_apply_transform", spec, TransformResult, ctx=ctx, adapter=spec,
                   state=state, layout=layout)


def measure(manager: PluginManager, ctx: RunContext, spec: ComponentSpec, state: ModelState) -> MetricsFragment:
    from icd_core.contract.records import Figure

    fragment = _answer(manager, "icd_measure", spec, Mapping, ctx=ctx, measure=spec, state=state)
    bad = [k for k, v in fragment.items() if not isinstance(v, Figure)]
    if bad:
        raise ContractError(f"measure {spec.name!r}: values for {bad} are not Figure records")
    return fragment


def bridge(manager: PluginManager, ctx: RunContext, spec: ComponentSpec, run_dir: Any, out_dir: Any) -> Mapping:
    return _answer(manager, "icd_bridge", spec, Mapping, ctx=ctx, target=spec, run_dir=run_dir, out_dir=out_dir)


def export(manager: PluginManager, spec: ComponentSpec, state: ModelState, out_dir: Any, fmt: str) -> Mapping:
    return _answer(manager, "icd_export", spec, Mapping, workload=spec, state=state, out_dir=out_dir, format=fmt)


def report(manager: PluginManager, ctx: RunContext, record: Any) -> tuple[list[str], str | None]:
    """Run every reporter, stopping at the first failure: (files written, the failure naming
    the reporter and the file, or None)."""
    written: list[str] = []
    for impl in manager.pm.hook.icd_report.get_hookimpls():
        try:
            answers = manager.call_one("icd_report", impl.plugin, timeout_s=ctx.config.pipeline.hook_timeout_s,
                                       ctx=ctx, record=record)
        except Exception as exc:
            return written, f"reporter {impl.plugin_name} failed: {exc}"
        for paths in answers:
            written.extend(paths or [])
    return written, None


PENDING = "interrupted while writing the reports (metrics.json is rewritten once they are all written)"


def write_reports(manager: PluginManager, ctx: RunContext, record: Any) -> str | None:
    """``metrics.json`` first, then every reporter, then ``metrics.json`` again as final.

    Until the reporters are done, the metrics.json on disk says the run is not complete; a
    reporter that fails leaves it saying why (naming the reporter and file) and the reports
    written before it are removed, so nothing in the run directory claims a success that did
    not happen. Returns the failure, or None. A metrics.json that cannot be written raises.
    """
    from icd_core.contract.jsonify import dumps

    run = record.metrics["run"]
    ctx.write_artifact("metrics.json", dumps({**record.metrics, "run": {**run, "ok": False, "error": PENDING}}) + "\n")
    mark = len(ctx.written)
    _, failure = report(manager, ctx, record)
    if failure is None:
        ctx.write_artifact("metrics.json", dumps(record.metrics) + "\n")
        return None
    ctx.bus.warn(failure)
    for relative in ctx.written[mark:]:  # every report written before the failure claims a success
        ctx.run_dir.file(relative).unlink(missing_ok=True)
    error = f"{run['error']}; {failure}" if run.get("error") else failure
    try:
        ctx.write_artifact("metrics.json", dumps({**record.metrics, "run": {**run, "ok": False, "error": error}}) + "\n")
    except Exception:  # noqa: BLE001 - the provisional metrics.json already says the run is incomplete
        pass
    return failure
