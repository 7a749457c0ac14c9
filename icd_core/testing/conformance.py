"""Does a plugin keep the contract? Checked by calling its hooks, as ``icd plugins check`` does.

Static checks: it registers a component; no hook parameter has a default (pluggy never passes
one: the default would silently win); it implements a phase hook only for a kind it registers
(the core calls a phase hook on the registering plugin only). Behavioural checks, on the mock workload's state (a small real model): each adapter with
default options leaves the state it was given untouched and its undo restores it bit for bit;
each measure returns Figure records (their sources are validated on construction); each graph
source returns a W the core accepts; each solver returns a valid permutation. Workloads and
reporters are not loaded or run here (they are heavy or write files); components that are
unavailable on this machine, or whose options have no defaults, are skipped with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import numpy as np

from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.config.schema import Config
from icd_core.contract.errors import ConfigError, InputDataError
from icd_core.contract.hookspecs import PHASE_HOOKS
from icd_core.contract.records import Constraints, TransformResult
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.plugin.registry import Component
from icd_core.plugin.specs import ComponentSpec, resolve
from icd_core.run.context import RunContext


def context(manager: PluginManager, config: Config | None = None) -> RunContext:
    """A run context without a run directory, for calling hooks directly."""
    return RunContext(config=config or Config(), registry=manager.registry)
REFUSALS = (ConfigError, InputDataError)  # how a component declines an input it cannot take
KIND_OF_PARAM = {"workload": "workload", "source": "graph", "solver": "solver", "adapter": "adapter",
                 "measure": "measure", "target": "bridge"}
"""A phase hook's spec parameter → the kind of component it names."""


def _own_hooks(manager: PluginManager, plugin: Any) -> list[Any]:
    return [impl for caller in vars(manager.pm.hook).values() if hasattr(caller, "get_hookimpls")
            for impl in caller.get_hookimpls() if impl.plugin is plugin]


def static_problems(manager: PluginManager, plugin: Any) -> list[str]:
    """Registration, hook parameters with defaults, phase hooks for a kind it registers nothing of."""
    problems: list[str] = []
    label = manager.provider_of(plugin)
    if not any(c.provider == label for c in manager.registry):
        problems.append("registers no component")
    for impl in _own_hooks(manager, plugin):
        defaults = [p.name for p in inspect.signature(impl.function).parameters.values()
                    if p.default is not inspect.Parameter.empty]
        if defaults:
            problems.append(f"{impl.function.__name__}: parameter(s) {', '.join(defaults)} have defaults; "
                            f"pluggy never passes them, so the default always wins (remove it)")
    kinds = {c.kind for c in manager.registry if c.provider == label}
    for hook, spec_param in PHASE_HOOKS.items():
        kind = KIND_OF_PARAM[spec_param]
        implements = any(impl.plugin is plugin for impl in getattr(manager.pm.hook, hook).get_hookimpls())
        if implements and kind not in kinds:
            problems.append(f"{hook}: implemented, but the plugin registers no {kind} (the core calls a phase "
                            f"hook only on the plugin that registered the component, so it never runs)")
    return problems


def _spec(manager: PluginManager, component: Component) -> ComponentSpec | str:
    """The component with default options, or why it cannot be built so."""
    reason = component.unavailable_reason()
    if reason:
        return f"unavailable here: {reason}"
    try:
        return resolve(manager.registry, component.kind, component.name)
    except Exception as exc:  # noqa: BLE001 - options without defaults: not checkable blind
        return f"needs options: {exc}"


def _check_adapter(manager: PluginManager, ctx: Any, spec: ComponentSpec, state: Any) -> list[str]:
    before = state.digest()
    layout = state.layout_for({g.name: 16 for g in state.groups})
    try:
        result = dispatch.apply_transform(manager, ctx, spec, state, layout)
    except Exception as exc:
        result = exc
    problems = []
    if state.digest() != before:
        problems.append(f"adapter {spec.name}: modified the state it was given in place "
                        f"(return a new state: state.with_transform)")
    if isinstance(result, Exception):
        return problems + [f"adapter {spec.name}: raised {type(result).__name__}: {result}"]
    assert isinstance(result, TransformResult)
    if result.undo is not None:
        try:
            restored = result.undo(result.state)
        except Exception as exc:
            return problems + [f"adapter {spec.name}: undo raised {type(exc).__name__}: {exc}"]
        if restored.digest() != before:
            problems.append(f"adapter {spec.name}: undo does not restore the state bit for bit")
    return problems


def behaviour_problems(manager: PluginManager, plugin: Any) -> tuple[list[str], list[str]]:
    """(problems, notes) from calling the plugin's components on the mock workload's state."""
    label = manager.provider_of(plugin)
    problems: list[str] = []
    notes: list[str] = []
    config = Config()
    ctx = context(manager, attrs.evolve(config, pipeline=attrs.evolve(config.pipeline, repeats=3, warmup_iter=1)))
    state = build_mock_state(MockOptions(hidden=64, d_in=32, d_out=32, tokens=16), np.random.default_rng(0))
    group = state.groups[0]
    for component in [c for c in manager.registry if c.provider == label]:
        if component.kind not in ("adapter", "measure", "graph", "solver"):
            continue
        spec = _spec(manager, component)
        if isinstance(spec, str):
            notes.append(f"{component.kind} {component.name}: not checked ({spec})")
            continue
        try:
            if component.kind == "adapter":
                found = _check_adapter(manager, ctx, spec, state)
                refusals = [p for p in found if p.startswith(f"adapter {spec.name}: raised ") and
                            any(f"raised {cls.__name__}:" in p for cls in REFUSALS)]
                problems += [p for p in found if p not in refusals]
                notes += [f"{p} (a clean refusal of the mock state)" for p in refusals]
            elif component.kind == "measure":
                dispatch.measure(manager, ctx, spec, state)
            elif component.kind == "graph":
                dispatch.build_w(manager, ctx, spec, state, group)
            else:
                w = dispatch.build_w(manager, ctx, resolve(manager.registry, "graph", "mock"), state, group)
                dispatch.fit_permutation(manager, ctx, spec, w, Constraints())
        except REFUSALS as exc:  # one clear line for an input it cannot take: keeps the contract
            notes.append(f"{component.kind} {component.name}: refuses the mock state ({type(exc).__name__}: {exc})")
        except Exception as exc:
            problems.append(f"{component.kind} {component.name}: {type(exc).__name__}: {exc}")
    return problems, notes


def check(manager: PluginManager, plugin: Any, behaviour: bool = True) -> list[str]:
    """Every problem found with ``plugin`` (empty when it keeps the contract)."""
    return findings(manager, plugin, behaviour)[0]


def findings(manager: PluginManager, plugin: Any, behaviour: bool = True) -> tuple[list[str], list[str]]:
    """(problems, notes on what was not checked or was cleanly refused) for ``plugin``."""
    problems = static_problems(manager, plugin)
    if behaviour and not problems:
        more, notes = behaviour_problems(manager, plugin)
        return problems + more, notes
    return problems, []
