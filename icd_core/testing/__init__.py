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
from icd_core.plugin.manager import PluginManager, load_plugin_manager
from icd_core.plugin.specs import resolve
from icd_core.testing import conformance
from icd_core.testing.conformance import context  # a context without a run directory

__all__ = ["Config", "GraphConfig", "MockOptions", "build_mock_state", "check_conformance", "conformance_report",
           "context", "fresh_manager", "resolve"]


def fresh_manager(*plugins: Any, entry_points: bool = False, strict: bool = True) -> PluginManager:
    """Built-ins plus ``plugins`` (modules or objects), isolated from what is installed.

    ``strict`` (default) makes a broken plugin raise instead of becoming an error row.
    """
    return load_plugin_manager(extra=plugins, entry_points=entry_points, strict=strict, disabled=())




def check_conformance(manager: PluginManager, plugin: Any, behaviour: bool = True) -> list[str]:
    """Problems with ``plugin`` (empty when it keeps the contract); see
    :mod:`icd_core.testing.conformance` for what is checked. ``behaviour=False`` keeps to the
    static checks (registration, hook parameters, answers for names it does not own)."""
    return conformance.check(manager, plugin, behaviour)


def conformance_report(manager: PluginManager, plugins: Iterable[Any] | None = None) -> dict[str, list[str]]:
    """Problems by plugin name for every registered plugin (or the given ones)."""
    targets = list(plugins) if plugins is not None else manager.pm.get_plugins()
    return {manager.pm.get_name(p) or repr(p): check_conformance(manager, p) for p in targets}
