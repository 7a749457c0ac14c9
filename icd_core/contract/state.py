"""The model state that transforms and permutations act on, and the workload that runs it.

States are values: every permutation or transform returns a new :class:`ModelState` and
leaves its input untouched, which is what makes exact rollback possible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np

from icd_core.contract import tensors as T
from icd_core.contract.errors import ContractError
from icd_core.contract.records import (
    Accesses,
    Constraints,
    Figure,
    GroupMember,
    PermutationGroup,
    TransformMeta,
)


@runtime_checkable
class Workload(Protocol):
    """What a workload plugin provides to run and judge a state.

    ``tokens``: tokens processed by one ``forward``; ``device``: ``"cpu"`` or ``"cuda…"``;
    ``primary_quality``: the key of :meth:`quality`'s figure that gates use (percent,
    higher is better). :meth:`forward` runs the model on the state's tensors and returns
    outputs in the original coordinates (undoing ``state.layout`` where an output axis is a
    permuted group); :meth:`quality` judges a state (it may run task data through it) given
    its output and the dense reference output; :meth:`max_rel_diff` compares two outputs (the
    equivalence check). Optional attributes: ``graph_source`` (the W source ``auto`` means),
    ``repeats`` / ``warmup`` (suggested measurement counts).
    """

    name: str
    tokens: int
    device: str
    primary_quality: str

    def forward(self, state: ModelState) -> Any: ...

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict[str, Figure]: ...

    def max_rel_diff(self, output: Any, reference: Any) -> float: ...


@attrs.frozen
class Layout:
    """The layout a transform sees: per group the current π, cache-line block g, constraints.
    ``permute``: whether the adapter may re-order channels itself (False for the ``identity``
    arm of an equal-quality comparison: the transform with no permutation at all)."""

    blocks: Mapping[str, int]
    perms: Mapping[str, np.ndarray]
    constraints: Mapping[str, Constraints]
    permute: bool = True


def identity_layout(groups: tuple[PermutationGroup, ...]) -> dict[str, np.ndarray]:
    return {g.name: np.arange(g.size, dtype=np.int32) for g in groups}


@attrs.frozen(eq=False)
class ModelState:
    """Tensors by name, their permutation groups, the composite layout and applied transforms.

    ``layout[g][new_position] = index in the order the workload loaded``. ``accesses``: per
    group, the accesses measures replay (dimensions read together, as indices in the order W
    was built in: the pre-run state's) — held out from W when the graph source kept some apart;
    the pipeline attaches them once W is built, and every derived state carries them.
    """

    workload: Workload
    tensors: Mapping[str, Any]
    groups: tuple[PermutationGroup, ...]
    layout: Mapping[str, np.ndarray]
    constraints: Mapping[str, Constraints]
    applied: tuple[TransformMeta, ...] = ()
    accesses: Mapping[str, Accesses] = attrs.Factory(dict)

    @classmethod
    def initial(cls, workload: Workload, tensors: Mapping[str, Any],
                groups: tuple[PermutationGroup, ...]) -> ModelState:
        """A freshly loaded state: identity layout, the groups' own constraints."""
        for g in groups:
            for m in g.members:
                if m.tensor not in tensors:
                    raise ContractError(f"group {g.name!r}: member tensor {m.tensor!r} not in state")
                length = tuple(tensors[m.tensor].shape)[m.axis]
                if m.covered(g.size) > length:
                    raise ContractError(f"group {g.name!r}: {m.tensor} axis {m.axis} has length {length}, "
                                        f"which does not fit {m.tiles} slice(s) of {g.size} at offset {m.offset}")
        return cls(workload=workload, tensors=dict(tensors), groups=tuple(groups),
                   layout=identity_layout(tuple(groups)),
                   constraints={g.name: g.constraints for g in groups})

    def group(self, name: str) -> PermutationGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def with_tensors(self, updates: Mapping[str, Any]) -> ModelState:
        """A new state with some tensors replaced (the rest shared, not copied)."""
        unknown = set(updates) - set(self.tensors)
        if unknown:
            raise ContractError(f"unknown tensors {sorted(unknown)}")
        return attrs.evolve(self, tensors={**self.tensors, **updates})

    def with_transform(self, updates: Mapping[str, Any], meta: TransformMeta) -> ModelState:
        """Tensors replaced, ``meta`` appended, its constraints merged into the state's."""
        constraints = dict(self.constraints)
        for name, extra in meta.constraints.items():
            constraints[name] = constraints[name].merged(extra)
        state = self.with_tensors(updates)
        return attrs.evolve(state, constraints=constraints, applied=self.applied + (meta,))

    def _gathered(self, group: str, index: np.ndarray, whole: bool = False) -> dict[str, Any]:
        """Tensors with ``index`` gathered along every member's slices (``whole``: along the
        entire axis, which may shrink it)."""
        g = self.group(group)
        updated: dict[str, Any] = {}
        for m in g.members:  # a tensor may index the group on two axes, or in several slices
            current = updated.get(m.tensor, self.tensors[m.tensor])
            length = tuple(current.shape)[m.axis]
            full = index if whole or (length == g.size and m.offset == 0) else m.index(length, g.size, index)
            updated[m.tensor] = T.take(current, full, m.axis)
        return {**self.tensors, **updated}

    def permuted(self, group: str, perm: np.ndarray) -> ModelState:
        """Apply ``perm`` (new position → current index) to every member of ``group``."""
        perm = np.asarray(perm, dtype=np.int64)
        layout = {**self.layout, group: np.asarray(self.layout[group][perm], dtype=np.int32)}
        return attrs.evolve(self, tensors=self._gathered(group, perm), layout=layout)

    def selected(self, group: str, keep: np.ndarray) -> ModelState:
        """Keep only the entries ``keep`` (current positions) of ``group``; its size shrinks.

        For transforms that drop entries (KV-cache eviction, neuron pruning). The layout
        then maps the kept positions to their load-order indices. Members must span their
        whole axis (no slices).
        """
        keep = np.asarray(keep, dtype=np.int64)
        g = self.group(group)
        if any(m.offset or m.tiles != 1 or self.tensors[m.tensor].shape[m.axis] != g.size for m in g.members):
            raise ContractError(f"group {group!r}: cannot drop entries from sliced members")
        groups = tuple(attrs.evolve(g, size=len(keep)) if g.name == group else g for g in self.groups)
        layout = {**self.layout, group: np.asarray(self.layout[group][keep], dtype=np.int32)}
        return attrs.evolve(self, tensors=self._gathered(group, keep, whole=True), groups=groups, layout=layout)

    def reduction_weights(self, multiple_of: int = 1) -> tuple[dict[str, list[GroupMember]], list[str]]:
        """Members whose input (reduction) axis is a group, by group name, for groups whose
        size is a multiple of ``multiple_of``; and a note for each group left out."""
        targets: dict[str, list[GroupMember]] = {}
        skipped: list[str] = []
        for g in self.groups:
            members = [m for m in g.members if m.role == "in"]
            if not members:
                continue
            if g.size % multiple_of:
                skipped.append(f"{g.name} (size {g.size} not a multiple of {multiple_of})")
                continue
            targets[g.name] = members
        return targets, skipped

    def run(self) -> Any:
        return self.workload.forward(self)

    def digest(self) -> str:
        """sha256 of every tensor's exact bytes plus the layout."""
        layout = {f"layout:{k}": v for k, v in self.layout.items()}
        return T.digest({**dict(self.tensors), **layout})

    def layout_for(self, blocks: Mapping[str, int], permute: bool = True) -> Layout:
        return Layout(blocks=dict(blocks), perms=dict(self.layout), constraints=dict(self.constraints),
                      permute=permute)

    def element_bytes(self, group: str) -> int:
        """Bytes per element of the group's first member tensor (sets the default g)."""
        return T.element_size(self.tensors[self.group(group).members[0].tensor])
