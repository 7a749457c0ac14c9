"""The registry of named components that plugins declare through ``icd_register``."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator

import attrs

from icd_core.contract.errors import (
    AmbiguousComponentError,
    PluginError,
    UnknownComponentError,
)

KINDS: tuple[str, ...] = ("workload", "graph", "solver", "adapter", "measure", "reporter", "bridge")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


_UNCHECKED = object()


@attrs.define(eq=False)
class Component:
    """A selectable component.

    ``options``: attrs class its spec parses into (``None``: takes no options);
    ``positional``: option names filled by ``name:a:b`` specs, in order; ``check``: returns
    ``None`` when usable here, otherwise the reason it is not (evaluated lazily, once);
    ``provides``: for measures, the figure keys it reports (so a missing figure can name
    the measure that would have given it); ``opt_in``: run only when named explicitly
    (slow or intrusive); ``abilities``: what else it can do, by name (a workload with
    ``model-directory`` loads ``icd run --model DIR`` through an option ``path``; one with
    ``export:<format>`` is written in that format by its plugin's ``icd_export``);
    ``preference``: how strongly ``auto`` (``solver.name``, ``workload``) should pick it: the
    usable component of the kind with the highest preference is chosen; ``None`` (the default):
    only when named.
    ``provider``: the plugin that registered it.
    """

    kind: str
    name: str
    summary: str
    options: type | None = None
    positional: tuple[str, ...] = ()
    check: Callable[[], str | None] | None = attrs.field(default=None, eq=False, repr=False)
    provides: tuple[str, ...] = ()
    opt_in: bool = False
    abilities: tuple[str, ...] = ()
    preference: int | None = None
    provider: str = ""
    _reason: object = attrs.field(init=False, default=_UNCHECKED, repr=False)

    def unavailable_reason(self) -> str | None:
        """Why the component cannot run here, or ``None`` if it can (checked once)."""
        if self._reason is _UNCHECKED:
            try:
                self._reason = self.check() if self.check else None
            except Exception as exc:  # an availability probe must never break listing
                self._reason = f"availability check failed: {type(exc).__name__}: {exc}"
        return self._reason  # type: ignore[return-value]

    @property
    def status(self) -> str:
        reason = self.unavailable_reason()
        return "ok" if reason is None else f"unavailable: {reason}"


def _validate(component: Component) -> None:
    where = f"{component.kind} {component.name!r}"
    if component.kind not in KINDS:
        raise PluginError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if not _NAME.match(component.name):
        raise PluginError(f"{where}: name must match {_NAME.pattern}")
    if not component.summary or "\n" in component.summary:
        raise PluginError(f"{where}: summary must be one non-empty line")
    if component.options is not None and not attrs.has(component.options):
        raise PluginError(f"{where}: options must be an attrs class")
    fields = {a.name for a in attrs.fields(component.options)} if component.options else set()
    missing = [p for p in component.positional if p not in fields]
    if missing:
        raise PluginError(f"{where}: positional names {missing} are not option fields")


class Registry:
    """Components by (kind, name). A name claimed by two providers is a conflict."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], list[Component]] = {}
        self.load_failures: list[str] = []  # plugins that failed to load, named in unknown-name errors

    def add(self, component: Component) -> None:
        _validate(component)
        entries = self._components.setdefault((component.kind, component.name), [])
        if any(c.provider == component.provider for c in entries):
            raise PluginError(f"{component.kind} {component.name!r} registered twice by {component.provider}")
        entries.append(component)

    def remove_provider(self, provider: str) -> None:
        """Forget everything one provider registered (used when its plugin fails)."""
        for key in list(self._components):
            self._components[key] = [c for c in self._components[key] if c.provider != provider]
            if not self._components[key]:
                del self._components[key]

    def __iter__(self) -> Iterator[Component]:
        for key in sorted(self._components):
            yield from self._components[key]

    def preferred(self, kind: str) -> str | None:
        """The usable component of ``kind`` with the highest ``preference`` (ties: by name), or None."""
        ranked = sorted((-c.preference, c.name) for c in self if c.kind == kind and c.preference is not None
                        and c.unavailable_reason() is None)
        return ranked[0][1] if ranked else None

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self._components if k == kind)

    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        """(kind, name) → providers, for every name claimed more than once."""
        return {key: [c.provider for c in cs] for key, cs in self._components.items() if len(cs) > 1}

    def get(self, kind: str, name: str) -> Component:
        """The component, or a one-line error with a did-you-mean and what is installed."""
        entries = self._components.get((kind, name))
        if not entries:
            known = self.names(kind)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            installed = ", ".join(known) or "none"
            failed = f" ({'; '.join(self.load_failures)})" if self.load_failures else ""
            raise UnknownComponentError(f"unknown {kind} {name!r}.{hint} Installed: {installed}{failed}")
        if len(entries) > 1:
            providers = " and ".join(sorted(c.provider for c in entries))
            raise AmbiguousComponentError(
                f"{kind} {name!r} is provided by both {providers}; "
                f"disable one with ICD_DISABLE_PLUGINS")
        return entries[0]


@attrs.define
class ScopedRegistry:
    """What ``icd_register`` receives: ``add`` stamps every component with its provider."""

    registry: Registry
    provider: str

    def add(self, kind: str, name: str, *, summary: str, options: type | None = None,
            positional: tuple[str, ...] = (), check: Callable[[], str | None] | None = None,
            provides: tuple[str, ...] = (), opt_in: bool = False, abilities: tuple[str, ...] = (),
            preference: int | None = None) -> Component:
        """Declare a component; see :class:`Component` for the fields."""
        component = Component(kind=kind, name=name, summary=summary, options=options,
                              positional=tuple(positional), check=check, provides=tuple(provides),
                              opt_in=opt_in, abilities=tuple(abilities), preference=preference,
                              provider=self.provider)
        self.registry.add(component)
        return component
