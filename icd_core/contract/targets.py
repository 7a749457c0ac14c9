"""Which weights a transform acts on, named the way llm-compressor's recipes name them.

``targets`` and ``ignore`` are module-name patterns: ``Linear`` (every Linear the workload
lists: by default every Linear inside the model's layers, never embeddings or the LM head),
``re:REGEX`` (``re.match`` on the module name, as compressed-tensors does) or an exact
module name (a weight ``model.layers.0.mlp.down_proj.weight`` is module
``model.layers.0.mlp.down_proj``). A workload lists its Linears through the
:class:`~icd_core.contract.abilities.ListsLinears` ability; one that lists none offers the
inputs of its permutation groups.

:func:`plan_targets` splits the targeted weights into those whose input axis is a permutation
group (transformed in the layout's order, group by group) and the rest (transformed in natural
order), so a transform covers the whole model, not only where a group runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from icd_core.contract.abilities import ListsLinears
from icd_core.contract.errors import ConfigError
from icd_core.contract.records import GroupMember

DEFAULT_TARGETS = ("Linear",)
CLASS_TARGETS = ("Linear", "Conv1D")


def patterns(value: Any, option: str = "targets") -> tuple[str, ...]:
    """A pattern list from a list or a comma-separated string; a bad ``re:`` is refused here,
    naming the ``option``."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{option}: a pattern must be a non-empty string, got {item!r}")
        item = item.strip()
        if item.startswith("re:"):
            try:
                re.compile(item[3:])
            except re.error as exc:
                raise ValueError(f"{option}: {item!r} is not a regular expression ({exc})") from None
        out.append(item)
    return tuple(out)


def ignore_patterns(value: Any) -> tuple[str, ...]:
    """:func:`patterns` for an ``ignore`` option."""
    return patterns(value, "ignore")


def module_name(tensor: str) -> str:
    """The module a weight belongs to (``….down_proj.weight`` → ``….down_proj``)."""
    return tensor.removesuffix(".weight")


def matches(tensor: str, pattern: str) -> bool:
    name = module_name(tensor)
    if pattern in CLASS_TARGETS:
        return True  # every listed weight is a Linear (GPT-2's Conv1D is one by another name)
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    return name == pattern or tensor == pattern


def selected(names: Iterable[str], targets: tuple[str, ...], ignore: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(matches(n, p) for p in targets) and not any(matches(n, p) for p in ignore)]


@attrs.frozen
class TargetPlan:
    """``grouped``: per group, the targeted weights whose input axis it is (the layout's order);
    ``natural``: targeted weights no group runs along (tensor → input axis); ``skipped``:
    one note per group or weight left out and why."""

    grouped: Mapping[str, list[GroupMember]]
    natural: Mapping[str, int]
    skipped: list[str]

    def counts(self) -> dict[str, int]:
        in_layout = {m.tensor for members in self.grouped.values() for m in members}
        return {"targeted": len(in_layout) + len(self.natural), "in_layout_order": len(in_layout),
                "natural_order": len(self.natural)}

    def __bool__(self) -> bool:
        return bool(self.grouped or self.natural)

    def without(self, groups: Iterable[str], state: Any, multiple_of: int = 1) -> TargetPlan:
        """The plan with ``groups`` no longer grouped: their weights join ``natural`` (where
        no other group covers them and their width is a multiple of ``multiple_of``)."""
        dropped = set(groups)
        grouped = {g: ms for g, ms in self.grouped.items() if g not in dropped}
        covered = {m.tensor for ms in grouped.values() for m in ms}
        natural = dict(self.natural)
        for g in dropped & set(self.grouped):
            for m in self.grouped[g]:
                if m.tensor not in covered and tuple(state.tensors[m.tensor].shape)[m.axis] % multiple_of == 0:
                    natural[m.tensor] = m.axis
        return TargetPlan(grouped=grouped, natural=natural, skipped=self.skipped)


def check_widths(state: Any, targets: tuple[str, ...], ignore: tuple[str, ...], multiple_of: int,
                 where: str, option: str) -> None:
    """Refuse, before any work, targeted weights whose input width ``multiple_of`` does not
    divide (they would stay untransformed): one line naming how many, the first, and the
    powers of two that fit every width. ``where``: the adapter; ``option``: what
    ``multiple_of`` is (``group``, ``m``)."""
    if multiple_of <= 1:
        return
    inputs = linear_inputs(state)
    wanted = selected(inputs, targets, ignore)
    widths = {t: int(tuple(state.tensors[t].shape)[inputs[t]]) for t in wanted}
    bad = [t for t, width in widths.items() if width % multiple_of]
    if not bad:
        return
    common = math.gcd(*widths.values())
    fits = [2 ** k for k in range(multiple_of.bit_length() - 1, 0, -1) if common % 2 ** k == 0][:2]
    fix = f"{option} {' or '.join(map(str, fits))}" if fits else f"an {option} that divides every width"
    raise ConfigError(f"{where}: {option} {multiple_of} does not divide the input width of {len(bad)} of the "
                      f"{len(wanted)} targeted weights ({bad[0]}: {widths[bad[0]]}{', …' if len(bad) > 1 else ''}), "
                      f"which would stay untransformed: use {fix}, or leave them out with ignore=")


def linear_inputs(state: Any) -> dict[str, int]:
    """Every Linear weight the workload lists (tensor → input axis); without the ability, the
    weights whose input axis is a group."""
    listed = state.workload.linear_weights if isinstance(state.workload, ListsLinears) else None
    if listed:
        return dict(listed)
    return {m.tensor: m.axis for g in state.groups for m in g.members if m.role == "in"}


def plan_targets(state: Any, targets: tuple[str, ...] = DEFAULT_TARGETS, ignore: tuple[str, ...] = (),
                 multiple_of: int = 1) -> TargetPlan:
    """The targeted weights of ``state``, split by whether a group runs along their input axis;
    weights and groups whose input width is not a multiple of ``multiple_of`` are skipped."""
    inputs = linear_inputs(state)
    wanted = set(selected(inputs, targets, ignore))
    grouped: dict[str, list[GroupMember]] = {}
    skipped: list[str] = []
    covered: set[str] = set()
    unfit: dict[str, list[str]] = {}  # groups whose size does not divide: their weights may go whole
    for g in state.groups:
        members = [m for m in g.members if m.role == "in" and m.tensor in wanted]
        if not members:
            continue
        if g.size % multiple_of:
            unfit[g.name] = [m.tensor for m in members]
            continue
        covered.update(m.tensor for m in members)
        grouped[g.name] = members
    natural: dict[str, int] = {}
    for tensor, axis in inputs.items():
        if tensor not in wanted or tensor in covered:
            continue
        width = tuple(state.tensors[tensor].shape)[axis]
        if width % multiple_of:
            skipped.append(f"{tensor} (input width {width} not a multiple of {multiple_of})")
            continue
        natural[tensor] = axis
    skipped += [f"{name} (size {state.group(name).size} not a multiple of {multiple_of}: its weights in natural "
                f"order)" for name, tensors in unfit.items() if any(t in natural for t in tensors)]
    return TargetPlan(grouped=grouped, natural=natural, skipped=skipped)
