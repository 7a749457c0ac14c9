"""icd — re-optimise the memory layout of neural-network inference (the micro-kernel).

Plugin authors need: :data:`hookimpl`, the records (:class:`TransformMeta`,
:class:`TransformResult`, :class:`FitResult`, :class:`GraphW`, :class:`Figure`, …) and
:mod:`icd_core.testing`. Nothing here imports torch.
"""

from __future__ import annotations

from importlib import metadata

from icd_core.contract.abilities import (
    CapturesActivations,
    ChecksState,
    ListsLinears,
    PlansPages,
    ReplaysKvAccesses,
    ReportsAttentionMass,
    ReportsKernels,
    SearchesRate,
    SuggestsGraphSource,
    SuggestsMeasurement,
    SuggestsRate,
    SuggestsTolerance,
    TimesRegions,
)
from icd_core.contract.errors import (
    ConfigError,
    ContractError,
    IcdError,
    InputDataError,
    PluginError,
    SolverTimeout,
    UsageError,
)
from icd_core.contract.hookmarkers import hookimpl, hookspec
from icd_core.contract.records import (
    AUTO,
    KV_TOKENS,
    Constraints,
    Figure,
    FitResult,
    GraphW,
    GroupMember,
    Knob,
    PermutationGroup,
    Samples,
    TransformMeta,
    TransformResult,
)
from icd_core.contract.state import Layout, ModelState, Workload

try:
    __version__ = metadata.version("icd-co")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AUTO", "ConfigError", "KV_TOKENS", "Knob", "Constraints", "ContractError", "Figure", "FitResult", "GraphW", "GroupMember",
    "IcdError", "InputDataError", "Layout", "ModelState", "PermutationGroup", "PluginError",
    "Samples", "SolverTimeout", "TransformMeta", "TransformResult", "UsageError", "Workload", "__version__",
    "hookimpl", "hookspec",
    # optional workload abilities (runtime-checkable protocols: isinstance, never attribute probes)
    "CapturesActivations", "ListsLinears", "PlansPages", "ReplaysKvAccesses", "ReportsAttentionMass", "ReportsKernels",
    "SuggestsGraphSource", "SuggestsMeasurement", "SuggestsRate", "SuggestsTolerance", "TimesRegions",
    # optional abilities of an adapter's options class
    "ChecksState", "SearchesRate",
]
