"""Optional abilities of a workload, each a runtime-checkable protocol.

The :class:`~icd_core.contract.state.Workload` protocol is what every workload has; what only
some have is declared here, and the core and the plugins ask ``isinstance(workload, Ability)``
instead of probing attribute names. A workload gains an ability by having its members (no
registration, no base class). ``docs/plugins.md`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from icd_core.contract.state import ModelState


@runtime_checkable
class SuggestsGraphSource(Protocol):
    """The W source ``graph.source: auto`` means for this workload (e.g. ``activations``)."""

    graph_source: str


@runtime_checkable
class SuggestsMeasurement(Protocol):
    """Timed and warm-up rounds suited to the model (used when the config leaves them unset)."""

    repeats: int
    warmup: int


@runtime_checkable
class SuggestsTolerance(Protocol):
    """The largest relative output change a permutation may cause on this model (round-off)."""

    equivalence_tol: float


@runtime_checkable
class SuggestsRate(Protocol):
    """The figure an ``auto`` rate search is judged on, and its limit in that figure's unit."""

    rate_metric: str
    rate_limit: float | None


@runtime_checkable
class ReportsKernels(Protocol):
    """Which kernel each transformed layer ran with on this state (recorded beside latency)."""

    def kernels(self, state: ModelState) -> Mapping[str, str]: ...


@runtime_checkable
class TimesRegions(Protocol):
    """Milliseconds spent in named regions of the last forward (e.g. ``attention``)."""

    def region_ms(self) -> Mapping[str, float]: ...


@runtime_checkable
class CapturesActivations(Protocol):
    """Activations of the groups it has ``probes`` for, over calibration batches."""

    probes: Mapping[str, Sequence[Any]]

    def capture(self, state: ModelState, batches: int) -> Mapping[str, np.ndarray]: ...


@runtime_checkable
class PlansPages(Protocol):
    """Plans how attention reads its KV cache in pages (a paged-attention backend)."""

    def plan_pages(self, state: ModelState, page: int, selector: str, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class ReportsAttentionMass(Protocol):
    """Attention mass per cached token of a KV group (what eviction by attention keeps)."""

    def attention_mass(self, state: ModelState, group: str) -> np.ndarray: ...


@runtime_checkable
class ReplaysKvAccesses(Protocol):
    """Which cached tokens each query reads (the KV graph source and page measures)."""

    def kv_accesses(self, state: ModelState, group: str, top: int, calibration: bool) -> np.ndarray: ...


ABILITIES = (SuggestsGraphSource, SuggestsMeasurement, SuggestsTolerance, SuggestsRate, ReportsKernels, TimesRegions,
             CapturesActivations, PlansPages, ReportsAttentionMass, ReplaysKvAccesses)


@runtime_checkable
class ChecksState(Protocol):
    """Adapter options that refuse, before any work, a state they cannot apply to (raising a
    ``ConfigError`` that names the option)."""

    def check_state(self, state: ModelState) -> None: ...


@runtime_checkable
class SearchesRate(Protocol):
    """Adapter options whose rate may be ``auto``: the knob the core searches (its name, the
    gentlest and the most aggressive values), ``None`` when nothing is ``auto``."""

    def auto_knob(self, state: ModelState) -> Any: ...


@runtime_checkable
class ListsLinears(Protocol):
    """Every Linear weight a transform may target, tensor name → the axis of its inputs: by
    default those inside the model's layers (never embeddings or the LM head). Transforms
    select from it with ``targets`` / ``ignore`` (:mod:`icd_core.contract.targets`)."""

    linear_weights: Mapping[str, int]
