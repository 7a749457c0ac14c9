"""Behavioural conformance: the checks ``icd plugins check`` runs, each shown to catch its fault."""

from __future__ import annotations

import numpy as np

from icd_core import Figure, FitResult, TransformMeta, TransformResult
from icd_core.testing import check_conformance, fresh_manager
from icd_core.testing.conformance import findings

from .conftest import make_plugin

calls: list[str] = []


def register_all(registry):
    registry.add("adapter", "probe-adapter", summary="test adapter")
    registry.add("measure", "probe-measure", summary="test measure")
    registry.add("solver", "probe-solver", summary="test solver")


def checked(**hooks) -> list[str]:
    plugin = make_plugin("probe", icd_register=register_all, **hooks)
    manager = fresh_manager(plugin)
    return check_conformance(manager, next(p for p in manager.pm.get_plugins() if p is plugin))


def good_transform(ctx, adapter, state, layout):
    if adapter.name != "probe-adapter":
        return None
    calls.append("transform")
    name = state.groups[0].members[0].tensor
    meta = TransformMeta(adapter="probe-adapter", spec=adapter.text)
    return TransformResult(state=state.with_transform({name: np.asarray(state.tensors[name]) * 2}, meta), meta=meta)


def good_measure(ctx, measure, state):
    if measure.name != "probe-measure":
        return None
    calls.append("measure")
    return {"probe": Figure(1.0, "computed:probe")}


def good_solver(ctx, solver, w, constraints):
    if solver.name != "probe-solver":
        return None
    calls.append("solver")
    return FitResult(perm=np.arange(w.n)[::-1].copy())


GOOD = {"icd_apply_transform": good_transform, "icd_measure": good_measure, "icd_fit_permutation": good_solver}


def test_a_plugin_that_keeps_the_contract_passes_and_every_component_was_called():
    calls.clear()
    assert checked(**GOOD) == []
    assert sorted(calls) == ["measure", "solver", "transform"]


def test_an_adapter_that_mutates_its_input_is_caught():
    def inplace(ctx, adapter, state, layout):
        if adapter.name != "probe-adapter":
            return None
        for tensor in state.tensors.values():
            tensor *= 0.5
        meta = TransformMeta(adapter="probe-adapter", spec=adapter.text)
        return TransformResult(state=state.with_transform({}, meta), meta=meta)

    problems = checked(**{**GOOD, "icd_apply_transform": inplace})
    assert problems == ["adapter probe-adapter: modified the state it was given in place "
                        "(return a new state: state.with_transform)"]


def test_an_undo_that_does_not_restore_bit_for_bit_is_caught():
    def lossy(ctx, adapter, state, layout):
        result = good_transform(ctx, adapter, state, layout)
        if result is None:
            return None
        name = state.groups[0].members[0].tensor
        sloppy = lambda s: s.with_tensors({name: np.asarray(s.tensors[name]) / 2 + 1e-7})  # noqa: E731
        return TransformResult(state=result.state, meta=result.meta, undo=sloppy)

    assert checked(**{**GOOD, "icd_apply_transform": lossy}) == [
        "adapter probe-adapter: undo does not restore the state bit for bit"]


def test_a_hook_parameter_with_a_default_is_flagged():
    def defaulted(ctx, measure, state=None):
        return good_measure(ctx, measure, state)

    problems = checked(**{**GOOD, "icd_measure": defaulted})
    assert problems == ["defaulted: parameter(s) state have defaults; pluggy never passes them, so the default "
                        "always wins (remove it)"]


def test_a_measure_returning_a_float_or_a_figure_with_a_bad_source_is_caught():
    def floaty(ctx, measure, state):
        return {"probe": 1.0} if measure.name == "probe-measure" else None

    def unsourced(ctx, measure, state):
        return {"probe": Figure(1.0, "stopwatch")} if measure.name == "probe-measure" else None

    assert checked(**{**GOOD, "icd_measure": floaty}) == [
        "measure probe-measure: ContractError: measure 'probe-measure': values for ['probe'] are not Figure records"]
    [problem] = checked(**{**GOOD, "icd_measure": unsourced})
    assert problem.startswith("measure probe-measure: ValueError: figure source 'stopwatch': expected one of "
                              "measured:<how>")


def test_a_solver_returning_a_non_permutation_is_caught():
    def broken(ctx, solver, w, constraints):
        return FitResult(perm=np.zeros(w.n, dtype=np.int64)) if solver.name == "probe-solver" else None

    [problem] = checked(**{**GOOD, "icd_fit_permutation": broken})
    assert problem.startswith("solver probe-solver:") and "permutation" in problem


def test_shipped_plugins_keep_the_contract_and_say_what_they_could_not_check():
    manager = fresh_manager(entry_points=True)
    report = {manager.pm.get_name(p): findings(manager, p) for p in manager.pm.get_plugins()}
    assert {name: problems for name, (problems, _) in report.items() if problems} == {}
    notes = report["icd-co:builtin:graph_trace"][1]
    assert notes == ["graph trace: refuses the mock state (ConfigError: graph.trace.path: required when "
                     "graph.source is 'trace')"]
