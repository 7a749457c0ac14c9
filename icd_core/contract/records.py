"""The records that travel through the hooks: groups, W, π, transform metadata, figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np

from icd_core.contract.converter import FieldError

if TYPE_CHECKING:
    import scipy.sparse

    from icd_core.contract.state import ModelState

Role = Literal["in", "out", "param"]


@attrs.frozen
class GroupMember:
    """One tensor axis (or slices of it) indexed by a permutation group.

    ``role`` says how the tensor uses the dimension: ``"in"`` — it is the reduction (input)
    axis of a weight (N:M sparsity and per-group scales act along it); ``"out"`` — the
    tensor produces the dimension; ``"param"`` — a per-dimension vector (bias, norm weight).

    By default the whole axis is the group. ``offset``/``tiles``/``stride`` select slices:
    the group's permutation is applied to ``tiles`` runs of ``group.size`` entries starting
    at ``offset + t·stride`` (one attention head: ``offset = h·d``; rotary pairs (i, i+d/2):
    ``tiles=2, stride=d/2``; Mamba's in_proj x and z halves: ``tiles=2, stride=d_inner``).
    """

    tensor: str
    axis: int
    role: Role = "param"
    offset: int = 0
    tiles: int = 1
    stride: int | None = None

    def index(self, axis_length: int, size: int, perm: np.ndarray) -> np.ndarray:
        """The gather index along the axis that applies ``perm`` to this member's slices."""
        index = np.arange(axis_length)
        step = self.stride if self.stride is not None else size
        for t in range(self.tiles):
            start = self.offset + t * step
            index[start:start + size] = start + np.asarray(perm)
        return index

    def positions(self, size: int) -> np.ndarray:
        """The axis positions this member's slices cover, in slice order (``tiles · size``)."""
        step = self.stride if self.stride is not None else size
        return np.concatenate([self.offset + t * step + np.arange(size) for t in range(self.tiles)])

    def covered(self, size: int) -> int:
        """One past the last axis position this member's slices reach."""
        step = self.stride if self.stride is not None else size
        return self.offset + (self.tiles - 1) * step + size


def _at_least_one(attribute: Any, value: int) -> None:
    if value < 1:
        raise FieldError(attribute.name, f"must be >= 1 (got {value!r})")


@attrs.frozen
class Constraints:
    """What a solver must respect when it permutes a group.

    ``supernode``: only aligned runs of this many positions may move, as a whole and in
    order (e.g. 4 after 2:4 pruning, 2 for rotary pairs). ``fixed``: super-node indices that
    must keep their place.
    """

    supernode: int = attrs.field(default=1, validator=lambda _i, a, v: _at_least_one(a, v))
    fixed: tuple[int, ...] = ()

    def merged(self, other: Constraints) -> Constraints:
        """The tighter of two constraint sets (lcm of super-node sizes, union of fixed)."""
        size = int(np.lcm(self.supernode, other.supernode))
        fixed = {p * self.supernode // size for p in self.fixed}
        fixed |= {p * other.supernode // size for p in other.fixed}
        return Constraints(supernode=size, fixed=tuple(sorted(fixed)))


KV_TOKENS = "kv_tokens"
"""The group kind of a KV cache's token axis (one group per layer and KV head): what workloads
with a cache declare and what KV adapters and graph sources look for."""


@attrs.frozen
class PermutationGroup:
    """A named hidden dimension and every tensor axis that indexes it.

    Applying one permutation to all ``members`` leaves the model's function unchanged.
    """

    name: str
    size: int
    members: tuple[GroupMember, ...]
    kind: str = "hidden"
    constraints: Constraints = Constraints()


@attrs.frozen(eq=False)
class GraphW:
    """A co-access matrix for one group: symmetric float32 CSR, zero diagonal, finite.

    ``access_groups`` (optional): the index sets of the individual accesses W was built from
    (one per token, trace event, …), in the group's current order. ``heldout`` (optional):
    accesses of the same kind kept apart from W (other tokens, other events) — what measures
    replay and ``lines_per_access`` is judged on, so a layout is not scored on its own
    training data. ``block``: the cache-line size g in elements (set by the pipeline).
    """

    matrix: scipy.sparse.csr_matrix
    meta: Mapping[str, Any]
    access_groups: tuple[np.ndarray, ...] | None = None
    block: int = 16
    heldout: tuple[np.ndarray, ...] | None = None

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])


@attrs.frozen(eq=False)
class Accesses:
    """Accesses of one group to replay (dims read together, in load order); ``heldout``
    says whether W was built without them."""

    sets: tuple[np.ndarray, ...]
    heldout: bool

    @classmethod
    def of(cls, w: GraphW) -> Accesses | None:
        """The held-out accesses of ``w``, else the ones it was built from, else None."""
        if w.heldout:
            return cls(tuple(w.heldout), True)
        return cls(tuple(w.access_groups), False) if w.access_groups else None


@attrs.frozen(eq=False)
class FitResult:
    """A permutation (``perm[new_position] = old_index``, int32) and the solver's stats."""

    perm: np.ndarray
    stats: Mapping[str, Any] = attrs.Factory(dict)


@attrs.frozen
class TransformMeta:
    """What an adapter did, in the terms DESIGN §3 fixes.

    ``expected_loss``: (low, high) quality drop in percentage points the adapter expects,
    or None when it cannot say. ``w_source``: the graph source W′ should come from for π₁
    (e.g. ``mask`` after unstructured pruning; None: the run's own). ``constraints``: per
    group, what the solver must respect from now on. ``noop``: the adapter did nothing, and ``reason`` says why.
    ``details``: what the transform did, by kind — ``{"sparsity": {"type": "2:4", "rate": 0.5}}``,
    ``{"quant": {"dtype": "int4", "group": 32, …}}``, ``{"kv": {"mode": "evict", …}}``; the kinds are
    names plugins agree on (a workload that exports quantized weights reads ``details.get("quant")``,
    whichever adapter wrote it), the core records them and reads none.
    """

    adapter: str
    spec: str
    details: Mapping[str, Mapping[str, Any]] = attrs.Factory(dict)
    expected_loss: tuple[float, float] | None = None
    repermute: bool = False
    repermute_reason: str | None = None
    w_source: str | None = None
    constraints: Mapping[str, Constraints] = attrs.Factory(dict)
    noop: bool = False
    reason: str | None = None
    stats: Mapping[str, Any] = attrs.Factory(dict)

    @classmethod
    def skipped(cls, adapter: str, spec: str, reason: str) -> TransformMeta:
        """A recorded no-op."""
        return cls(adapter=adapter, spec=spec, noop=True, reason=reason)


AUTO = "auto"
"""An adapter option given as ``auto`` is searched for (see :class:`Knob`)."""


@attrs.frozen
class Knob:
    """A rate an adapter can search: option ``name`` from ``gentle`` (least aggressive, e.g.
    rate 0 or every page) towards ``aggressive``; ``integer`` values only (stepped
    geometrically when ``geometric``); the search stops once two values are within
    ``resolution``. An options class with an ``auto`` field returns it from
    ``auto_knob(state)`` (None when nothing is ``auto``)."""

    name: str
    gentle: float
    aggressive: float
    integer: bool = False
    geometric: bool = False
    resolution: float = 0.01

    def between(self, good: float, bad: float) -> float | None:
        """A value strictly between ``good`` and ``bad``, or None when they are adjacent."""
        if self.integer:
            middle = round((good * bad) ** 0.5) if self.geometric and good > 0 and bad > 0 else round((good + bad) / 2)
            return middle if min(good, bad) < middle < max(good, bad) else None
        return (good + bad) / 2 if abs(good - bad) > self.resolution else None


Undo = Callable[["ModelState"], "ModelState"]


@attrs.frozen(eq=False)
class TransformResult:
    """An adapter's answer: the new state, its metadata, and optionally its own undo.

    Without ``undo`` the core restores the state object it passed in (adapters never
    mutate their input, so that object is still the exact pre-transform state).
    """

    state: ModelState
    meta: TransformMeta
    undo: Undo | None = None


STATISTICS = ("median", "mean", "pearson", "spearman")


@attrs.frozen(eq=False)
class Samples:
    """The per-unit values behind a figure, so two states can be compared unit by unit.

    ``unit`` names what one value is: ``"round"`` (one interleaved timing round: values of
    two states with the same index were taken back to back, so they pair), ``"example"`` /
    ``"pair"`` / ``"token"`` (one evaluation item, the same item in every state: they pair),
    or ``"window"`` (an independent repeat, e.g. one energy window: they do not pair).
    ``values``: shape (n,), or (n, 2) of (prediction, reference) for correlations.
    ``statistic``: how the figure's value follows from them (``median``, ``mean``,
    ``pearson``, ``spearman``), times ``scale`` (100 for a correlation in percent).
    """

    unit: str
    values: np.ndarray = attrs.field(converter=lambda v: np.asarray(v, dtype=np.float64))
    statistic: str = attrs.field(default="mean", validator=attrs.validators.in_(STATISTICS))
    scale: float = 1.0

    @property
    def paired(self) -> bool:
        """Whether the same index means the same unit in another state (not for windows)."""
        return self.unit != "window"

    def __len__(self) -> int:
        return int(self.values.shape[0])


SOURCE_PREFIXES = ("measured:", "modelled:", "simulated:", "computed:")


@attrs.frozen
class Figure:
    """One reported number with its provenance.

    ``source`` is ``measured:<how>``, ``modelled:<how>``, ``simulated:<how>`` or
    ``computed:<how>``; a figure that could not be obtained has ``value=None`` and a
    ``reason``. ``samples`` (optional, never written to ``metrics.json``) are the per-unit
    values comparisons pair; a figure without them is compared as an exact value only when
    its source is deterministic (anything but ``measured:``, or ``detail["deterministic"]``).
    ``better``: which way is an improvement, for quality figures (``lower`` for a divergence).
    """

    value: float | None
    source: str | None = None
    reason: str | None = None
    unit: str | None = None
    detail: Mapping[str, Any] = attrs.Factory(dict)
    samples: Samples | None = attrs.field(default=None, eq=False, repr=False)
    better: Literal["higher", "lower"] = "higher"

    def __attrs_post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise ValueError("a figure without a value needs a reason")
        if self.value is not None and not self.source:
            raise ValueError("a figure with a value needs a source")
        if self.source is not None and not (self.source.startswith(SOURCE_PREFIXES)
                                            and len(self.source) > self.source.index(":") + 1):
            raise ValueError(f"figure source {self.source!r}: expected one of "
                             f"{', '.join(p + '<how>' for p in SOURCE_PREFIXES)}")

    @classmethod
    def missing(cls, reason: str, unit: str | None = None) -> Figure:
        return cls(value=None, reason=reason, unit=unit)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "source": self.source, "unit": self.unit}
        if self.better != "higher":
            out["better"] = self.better
        if self.reason:
            out["reason"] = self.reason
        out.update(self.detail)
        if self.samples is not None:
            out.setdefault("n", len(self.samples))
            out["samples_unit"] = self.samples.unit
        return out

    @property
    def kind(self) -> str:
        """The source's prefix: measured, simulated, modelled or computed."""
        return str(self.source).split(":", 1)[0] if self.source else "none"


MetricsFragment = Mapping[str, Figure]
