"""Plugin discovery and isolation: built-ins plus entry points in group ``icd``.

Entry points load one at a time; a plugin that fails to import, registers a misspelled
hook, breaks in ``icd_register`` or claims a name another plugin owns becomes a row with
status ``error: …`` and never stops the others. ``ICD_STRICT_PLUGINS=1`` re-raises instead;
``ICD_DISABLE_PLUGINS=a,b`` skips plugins by entry-point or distribution name.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import types
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import pluggy

from icd_core.contract import hookspecs
from icd_core.contract.errors import AmbiguousComponentError, PluginError
from icd_core.contract.hookmarkers import PROJECT
from icd_core.plugin.bounded import call_bounded
from icd_core.plugin.registry import Registry, ScopedRegistry

ENTRY_POINT_GROUP = "icd"
CORE_DISTRIBUTION = "icd-co"
BUILTINS = "icd_core.builtins"  # the package whose BUILTIN_MODULES are the core's own plugins


@attrs.define
class PluginRow:
    """One line of ``icd plugins list``."""

    name: str
    distribution: str
    version: str
    builtin: bool
    provides: list[str] = attrs.Factory(list)
    hooks: list[str] = attrs.Factory(list)
    status: str = "ok"

    @property
    def failed(self) -> bool:
        return self.status.startswith("error")

    @property
    def label(self) -> str:
        """The provider label its components carry: the distribution, plus the module for a
        built-in (the core ships several)."""
        return self.distribution if not self.builtin else f"{self.distribution} ({self.name})"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def register_timeout_s() -> float:
    """Seconds one plugin's ``icd_register`` may take (``ICD_REGISTER_TIMEOUT_S``, default 30):
    a plugin that hangs there becomes an error row, so ``plugins list`` and ``doctor`` answer."""
    raw = os.environ.get("ICD_REGISTER_TIMEOUT_S", "30")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise PluginError(f"ICD_REGISTER_TIMEOUT_S={raw!r}: expected a positive number of seconds")
    return value


def disabled_names() -> set[str]:
    raw = os.environ.get("ICD_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _error_text(exc: BaseException) -> str:
    """The whole reason on one line (pluggy's validation errors span several)."""
    text = "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def installed_entry_points() -> list[metadata.EntryPoint]:
    """Entry points of group ``icd``, sorted by (name, distribution) for a stable order."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(eps, key=lambda ep: (ep.name, ep.dist.name if ep.dist else ""))


def distribution_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    if ep.dist is None:
        return "?", "?"
    return ep.dist.metadata["Name"] or ep.dist.name, ep.dist.version


class PluginManager:
    """A typed façade over pluggy's manager: loading, registration, rows for listing."""

    def __init__(self, *, strict: bool | None = None, disabled: Iterable[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.rows: list[PluginRow] = []
        self.strict = _env_flag("ICD_STRICT_PLUGINS") if strict is None else strict
        self.disabled = disabled_names() if disabled is None else set(disabled)
        self._providers: dict[str, PluginRow] = {}
        self._labels: dict[str, str] = {}  # pluggy's plugin name -> provider label
        self._objects: dict[str, Any] = {}

    # -- loading -----------------------------------------------------------------------
    def load_builtins(self) -> None:
        """The core's own components, loaded by module name as entry points are (the plugin
        room never imports what it loads)."""
        version = metadata_version(CORE_DISTRIBUTION)
        for module in importlib.import_module(BUILTINS).BUILTIN_MODULES:
            short = module.__name__.rsplit(".", 1)[-1]
            self.add_plugin(module, name=f"builtin:{short}", distribution=CORE_DISTRIBUTION,
                            version=version, builtin=True)

    def load_entry_points(self) -> None:
        for ep in installed_entry_points():
            dist, version = distribution_of(ep)
            if ep.name in self.disabled or dist in self.disabled:
                self.rows.append(PluginRow(ep.name, dist, version, False, status="disabled"))
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(PluginRow(ep.name, dist, version, False), exc, "import failed")
                continue
            self.add_plugin(plugin, name=ep.name, distribution=dist, version=version)

    def add_plugin(self, plugin: Any, *, name: str, distribution: str, version: str = "0",
                   builtin: bool = False) -> PluginRow:
        """Register one plugin object (module or instance) in isolation; returns its row."""
        row = PluginRow(name, distribution, version, builtin)
        label = row.label
        try:
            self.pm.register(plugin, name=f"{distribution}:{name}")
        except Exception as exc:
            return self._fail(row, exc, "invalid hooks")
        try:
            self.pm.check_pending()
            impls = [c.name for c in self.pm.get_hookcallers(plugin) or []]
            row.hooks = sorted(impls)
            self.call_one("icd_register", plugin, registry=ScopedRegistry(self.registry, label))
        except Exception as exc:
            self.pm.unregister(plugin)
            self.registry.remove_provider(label)
            return self._fail(row, exc, "registration failed")
        row.provides = [f"{c.kind}:{c.name}" for c in self.registry if c.provider == label]
        self._providers[label] = row
        self._labels[self.pm.get_name(plugin)] = label
        self._objects[label] = plugin
        self.rows.append(row)
        self._mark_conflicts()
        return row

    def _fail(self, row: PluginRow, exc: BaseException, what: str) -> PluginRow:
        if self.strict:
            raise PluginError(f"plugin {row.name!r} ({row.distribution}): {what}: {_error_text(exc)}") from exc
        row.status = f"error: {what}: {_error_text(exc)}"
        self.rows.append(row)
        self.registry.load_failures.append(f"plugin {row.distribution} ({row.name}) failed to load: "
                                           f"{row.status.removeprefix('error: ')}")
        return row

    def _mark_conflicts(self) -> None:
        for (kind, name), providers in self.registry.conflicts().items():
            for provider in providers:
                others = " and ".join(p for p in providers if p != provider)
                message = f"error: duplicate {kind} {name!r} (also provided by {others})"
                row = self._providers[provider]
                if self.strict:
                    raise AmbiguousComponentError(f"{kind} {name!r} is provided by both {' and '.join(providers)}")
                if not row.status.startswith("error"):
                    row.status = message

    # -- listing -----------------------------------------------------------------------
    def list_rows(self, *, include_builtins: bool = False) -> list[PluginRow]:
        """Rows with availability folded into the status of healthy plugins."""
        out = []
        for row in self.rows:
            if row.builtin and not include_builtins:
                continue
            if row.status == "ok":
                reasons = [f"{c.name}: {c.unavailable_reason()}" for c in self.registry
                           if c.provider == row.label and c.unavailable_reason()]
                if reasons:
                    row = attrs.evolve(row, status="unavailable: " + "; ".join(reasons))
            out.append(row)
        return out

    def provider_of(self, plugin: Any) -> str | None:
        """The provider label a loaded plugin's components carry."""
        name = self.pm.get_name(plugin)
        return self._labels.get(name) if name else None

    def hook_for(self, hook: str, spec: Any) -> Any:
        """Phase hook ``hook`` as implemented by the plugin that registered ``spec``'s component
        only (so no hook body needs to check whose name it was given)."""
        owner = self._objects.get(self.registry.get(spec.kind, spec.name).provider)
        others = [p for p in self.pm.get_plugins() if p is not owner]
        return self.pm.subset_hook_caller(hook, remove_plugins=others)

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call phase hook ``hook`` on the plugin that registered the component its spec
        argument names (``adapter=``, ``measure=``, …): its answer, unchecked (the run checks
        answers through :mod:`icd_core.plugin.dispatch`)."""
        spec = kwargs[hookspecs.PHASE_HOOKS[hook]]
        return self.hook_for(hook, spec)(**kwargs)

    def call_one(self, hook: str, plugin: Any, timeout_s: float | None = None, **kwargs: Any) -> list[Any]:
        """Call ``hook`` on one registered plugin only, through pluggy's hook caller (so
        tracing and monitoring see it), for at most ``timeout_s`` seconds (``icd_register``:
        :func:`register_timeout_s`): its answers, empty when it does not implement it."""
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        limit = register_timeout_s() if hook == "icd_register" else timeout_s
        answer = call_bounded(caller, kwargs, limit, f"{self.pm.get_name(plugin)}: {hook}")
        spec = getattr(self.pm.hook, hook).spec
        if spec is not None and spec.opts.get("firstresult"):
            return [] if answer is None else [answer]
        return answer

    def code_version(self, provider: str) -> str:
        """Version plus a digest of the source files of the plugin behind ``provider``, so
        that caches keyed on it change when its code does (editable installs included)."""
        row = self._providers.get(provider)
        return f"{row.version if row else '?'}+{source_digest(self._objects.get(provider))}"

    def failures(self) -> list[PluginRow]:
        return [r for r in self.rows if r.failed]

    def loaded(self) -> list[dict[str, Any]]:
        """Every plugin loaded or refused: name, distribution, version, status (for
        metrics.json and the version tag)."""
        return [{"name": r.name, "distribution": r.distribution, "version": r.version, "builtin": r.builtin,
                 "status": r.status} for r in self.rows]


def source_digest(plugin: Any) -> str:
    """sha256 (16 hex) of the ``.py`` files of the package a plugin module lives in."""
    module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(type(plugin).__module__)
    where = getattr(module, "__file__", None)
    if not where:
        return "nosource"
    digest = hashlib.sha256()
    for path in sorted(Path(where).parent.rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def metadata_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def load_plugin_manager(*, extra: Iterable[types.ModuleType | Any] = (),
                        entry_points: bool = True, strict: bool | None = None,
                        disabled: Iterable[str] | None = None) -> PluginManager:
    """Built-ins, then installed entry points, then ``extra`` plugin objects (for tests)."""
    manager = PluginManager(strict=strict, disabled=disabled)
    manager.load_builtins()
    if entry_points:
        manager.load_entry_points()
    for i, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", f"extra{i}")
        manager.add_plugin(plugin, name=name, distribution=name)
    return manager
