"""Helpers for plugin authors' tests: a fresh manager, a context, component specs, the mock
workload's state (a small real model) and a conformance check.

    from icd_core.testing import fresh_manager, check_conformance
    import my_plugin

    def test_conforms():
        manager = fresh_manager(my_plugin)
        assert check_conformance(manager, my_plugin) == []
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.config.schema import Config, GraphConfig
from icd_core.contract.hookspecs import PHASE_HOOKS
from icd_core.plugin.manager import PluginManager, load_plugin_manager
from icd_core.plugin.specs import ComponentSpec, resolve
from icd_core.run.context import RunContext

__all__ = ["Config", "GraphConfig", "MockOptions", "build_mock_state", "check_conformance", "conformance_report",
           "context", "fresh_manager", "resolve"]

PROBE_NAME = "__icd_conformance_probe__"


def fresh_manager(*plugins: Any, entry_points: bool = False, strict: bool = True) -> PluginManager:
    """Built-ins plus ``plugins`` (modules or objects), isolated from what is installed.

    ``strict`` (default) makes a broken plugin raise instead of becoming an error row.
    """
    return load_plugin_manager(extra=plugins, entry_points=entry_points, strict=strict, disabled=())


def context(manager: PluginManager, config: Config | None = None) -> RunContext:
    """A run context without a run directory, for calling hooks directly in tests."""
    return RunContext(config=config or Config(), registry=manager.registry)


def check_conformance(manager: PluginManager, plugin: Any) -> list[str]:
    """Problems with ``plugin`` (empty when it keeps the contract).

    Checks: it registers at least one component; every phase hook it implements returns
    ``None`` for a component name that is not its own.
    """
    problems: list[str] = []
    label = manager.provider_of(plugin)
    if not any(c.provider == label for c in manager.registry):
        problems.append("registers no component")
    ctx = context(manager)
    probe_args: dict[str, Any] = {"state": None, "group": None, "w": None, "constraints": None, "layout": None}
    for hook, spec_param in PHASE_HOOKS.items():
        caller = getattr(manager.pm.hook, hook)
        if not any(impl.plugin is plugin for impl in caller.get_hookimpls()):
            continue
        kwargs = {a: probe_args.get(a) for a in caller.spec.argnames}
        kwargs.update(ctx=ctx, **{spec_param: ComponentSpec(kind="probe", name=PROBE_NAME)})
        try:
            answers = manager.call_one(hook, plugin, **kwargs)
        except Exception as exc:
            problems.append(f"{hook} raised {type(exc).__name__} for a name it does not own: {exc}")
            continue
        if any(answer is not None for answer in answers):
            problems.append(f"{hook} answered for a name it does not own ({PROBE_NAME!r})")
    return problems


def conformance_report(manager: PluginManager, plugins: Iterable[Any] | None = None) -> dict[str, list[str]]:
    """Problems by plugin name for every registered plugin (or the given ones)."""
    targets = list(plugins) if plugins is not None else manager.pm.get_plugins()
    return {manager.pm.get_name(p) or repr(p): check_conformance(manager, p) for p in targets}
