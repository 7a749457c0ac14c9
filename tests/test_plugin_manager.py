"""Plugin manager: isolation of broken plugins, strict mode, disabling, conformance."""

from __future__ import annotations

import pytest

from icd_core import TransformMeta, TransformResult
from icd_core.contract.errors import PluginError
from icd_core.plugin.manager import load_plugin_manager
from icd_core.testing import check_conformance, fresh_manager

from .conftest import make_plugin, run_pipeline


def good_register(registry):
    registry.add("adapter", "noop", summary="does nothing")


def good_transform(ctx, adapter, state, layout):
    if adapter.name != "noop":
        return None
    return TransformResult(state=state, meta=TransformMeta.skipped("noop", adapter.text, "does nothing"))


GOOD = make_plugin("good", icd_register=good_register, icd_apply_transform=good_transform)


def test_builtins_alone_make_a_working_registry():
    manager = fresh_manager()
    assert manager.registry.names("solver") == ["identity"]
    assert manager.registry.names("measure") == ["cache", "cachegrind", "perf", "wallclock"]
    assert manager.registry.get("measure", "cachegrind").opt_in
    assert manager.registry.names("graph") == ["mock", "trace"]
    assert manager.registry.names("reporter") == ["csv", "html"]  # metrics.json: the core writes it
    assert all(row.status == "ok" and row.builtin for row in manager.rows)


def test_register_failure_becomes_an_error_row_and_leaves_no_components():
    def register(registry):
        registry.add("adapter", "half", summary="registered before the failure")
        raise RuntimeError("cannot find my config")

    bad = make_plugin("bad", icd_register=register)
    manager = load_plugin_manager(extra=[bad, GOOD], entry_points=False, strict=False)
    rows = {r.name: r for r in manager.rows}
    assert rows["bad"].status == "error: registration failed: RuntimeError: cannot find my config"
    assert rows["good"].status == "ok"
    assert "half" not in manager.registry.names("adapter")
    assert "noop" in manager.registry.names("adapter")
    assert not manager.pm.is_registered(bad)


def test_misspelled_hook_is_caught_by_check_pending():
    def icd_fit_permutaton(ctx, solver, w, constraints):  # typo on purpose
        return None

    typo = make_plugin("typo", icd_register=good_register, icd_fit_permutaton=icd_fit_permutaton)
    manager = load_plugin_manager(extra=[typo], entry_points=False, strict=False)
    row = next(r for r in manager.rows if r.name == "typo")
    assert row.status.startswith("error: registration failed: PluginValidationError")
    assert "icd_fit_permutaton" in row.status


def test_wrong_hook_signature_is_rejected():
    def icd_apply_transform(ctx, adapter, state, layout, extra):
        return None

    wrong = make_plugin("wrong", icd_apply_transform=icd_apply_transform)
    manager = load_plugin_manager(extra=[wrong], entry_points=False, strict=False)
    row = next(r for r in manager.rows if r.name == "wrong")
    assert row.status.startswith("error: invalid hooks: PluginValidationError")


def test_strict_mode_reraises():
    def register(registry):
        raise RuntimeError("nope")

    with pytest.raises(PluginError, match="registration failed: RuntimeError: nope"):
        load_plugin_manager(extra=[make_plugin("bad", icd_register=register)], entry_points=False, strict=True)


def test_duplicate_component_marks_both_plugins():
    def register(registry):
        registry.add("solver", "identity", summary="mine")

    dup = make_plugin("dup", icd_register=register)
    manager = load_plugin_manager(extra=[dup], entry_points=False, strict=False)
    row = next(r for r in manager.rows if r.name == "dup")
    assert row.status == "error: duplicate solver 'identity' (also provided by icd-co (builtin:solver_identity))"
    with pytest.raises(PluginError, match="provided by both"):
        manager.registry.get("solver", "identity")
    assert [r.name for r in manager.failures()] == ["builtin:solver_identity", "dup"]


def test_conformance_passes_for_builtins_and_good_plugins():
    manager = fresh_manager(GOOD)
    for plugin in manager.pm.get_plugins():
        assert check_conformance(manager, plugin) == []


def test_conformance_flags_a_phase_hook_for_a_kind_the_plugin_never_registers():
    def measure(ctx, measure, state):
        return {}

    manager = fresh_manager(make_plugin("stray", icd_register=good_register, icd_measure=measure))
    plugin = next(p for p in manager.pm.get_plugins() if getattr(p, "__name__", "") == "stray")
    assert check_conformance(manager, plugin) == [
        "icd_measure: implemented, but the plugin registers no measure (the core calls a phase hook only on "
        "the plugin that registered the component, so it never runs)"]


def test_a_phase_hook_reaches_only_the_plugin_that_registered_the_component(tmp_path):
    """Two adapters, neither checking the name it is given: each run calls its own."""
    def adapter_plugin(name):
        def register(registry):
            registry.add("adapter", name, summary=f"records {name}")

        def transform(ctx, adapter, state, layout):
            meta = TransformMeta(adapter=name, spec=adapter.text)
            return TransformResult(state=state.with_transform({}, meta), meta=meta)
        return make_plugin(name, icd_register=register, icd_apply_transform=transform)

    manager = fresh_manager(adapter_plugin("first"), adapter_plugin("second"))
    for name in ("first", "second"):
        outcome, _ = run_pipeline(tmp_path, name=name, manager=manager, overrides={"transform.adapters": [name]})
        assert outcome.ok and outcome.record.metrics["results"]["linear"]["transforms"][0]["adapter"] == name


