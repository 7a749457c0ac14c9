"""The product configuration: attrs records, validated by the one converter.

Every key has a default, so an empty file is a valid config. Unknown keys and bad values
are rejected with their dotted path (``solver.time_budget_s: must be > 0 (got -1)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from icd_core.config.validators import between, non_negative, positive, power_of_two
from icd_core.contract.converter import converter

SpecValue = Union[str, dict[str, Any]]
"""A component spec: ``"sparsity:2:4"`` or ``{"name": "sparsity", "n": 2, "m": 4}``."""


def absolute_path(value: Any) -> Any:
    """A non-empty path string made absolute (``~`` expanded; relative to the working directory
    when the config is read); anything else as given."""
    if isinstance(value, str) and value:
        from pathlib import Path

        return str(Path(value).expanduser().absolute())
    return value


def _structure_spec_value(value: Any, _type: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return dict(value)
    raise ValueError(f"expected 'name:option…' or a table with a 'name' key, got {value!r}")


converter.register_structure_hook_func(lambda t: t == SpecValue, _structure_spec_value)


@attrs.frozen
class PipelineConfig:
    """How stages run: ``compare`` runs linear and iterative on the same inputs and seed.

    ``repeats`` / ``warmup_iter``: at most this many timed rounds (every state once per
    round, in a shuffled order) after this many untimed ones; ``null`` takes the workload's
    suggestion (30 / 5 for small models, fewer for slow ones on a CPU). With
    ``stop_when_decided`` sampling ends once every latency gate and rollback tolerance has a
    CI wholly on one side of its threshold, after at least ``min_repeats`` rounds (6: the
    fewest whose distribution-free CI of a median reaches 95 % coverage).

    ``equivalence_tol``: the largest relative output change π₀ may cause (permutations are
    function-preserving, so only round-off is allowed); beyond it the run fails and rolls
    back. ``null``: the workload's own bound (1e-4 unless deep fp32 models need more).

    ``random_orders``: in ``compare`` mode with a transform, how many random function-preserving
    orders (the control) get the same transform as π₀ does; the card says layout helped only
    when π₀ beats natural order and the best of them with the whole 95 % CI (0: no control).

    ``hook_timeout_s``: the longest one plugin hook call may take (loading a model, building
    W, a solve, a transform, a measure); past it the call is abandoned and recorded as that
    plugin's failure, and the run goes on or stops as for any plugin error.
    """

    mode: Literal["linear", "iterative", "compare"] = "compare"
    repeats: int | None = attrs.field(default=None, validator=positive())
    min_repeats: int = attrs.field(default=6, validator=positive())
    stop_when_decided: bool = True
    warmup_iter: int | None = attrs.field(default=None, validator=non_negative())
    fixed_clock: bool = False
    equivalence_tol: float | None = attrs.field(default=None, validator=positive())
    hook_timeout_s: float = attrs.field(default=3600.0, validator=positive())
    random_orders: int = attrs.field(default=3, validator=non_negative())


@attrs.frozen
class MockGraphConfig:
    """Planted co-access blocks behind a hidden random relabelling."""

    blocks: int = attrs.field(default=32, validator=positive())
    noise: float = attrs.field(default=0.05, validator=between(0.0, 1.0))
    seed: int | None = None


@attrs.frozen
class TraceGraphConfig:
    """JSONL access events; ``on_error: mock`` substitutes a mock W (recorded in events).
    ``holdout``: the share of events kept out of W for measures to replay (0: none)."""

    path: str | None = None
    on_error: Literal["abort", "mock"] = "abort"
    holdout: float = attrs.field(default=0.2, validator=between(0.0, 0.5))


@attrs.frozen
class ActivationsGraphConfig:
    """W from forward activity: per token the ``top_frac`` largest |activations| of a group
    (every non-zero for ReLU) are its accessed set; ``batches`` calibration batches;
    W keeps each row's ``topk_per_row`` strongest co-access counts (or |correlations|)."""

    top_frac: float = attrs.field(default=0.1, validator=between(0.001, 1.0))
    batches: int = attrs.field(default=4, validator=positive())
    topk_per_row: int = attrs.field(default=32, validator=positive())
    weight: Literal["count", "correlation"] = "count"


@attrs.frozen
class GraphConfig:
    """``source``: where W comes from (``auto``: the workload's own choice, e.g. activations
    for real models, mock for the mock). ``reperm_source``: the source of W′ for π₁ (``null``:
    the same; ``mask`` after sparsity)."""

    source: str = "auto"
    reperm_source: str | None = None
    mock: MockGraphConfig = MockGraphConfig()
    trace: TraceGraphConfig = TraceGraphConfig()
    activations: ActivationsGraphConfig = ActivationsGraphConfig()


@attrs.frozen
class SolverConfig:
    """``name: auto`` picks the usable installed solver that declares the highest preference
    (the built-in ``identity`` declares the lowest).

    ``block``: cache-line elements g; when unset, ``line_bytes`` / the group's element size
    (64-byte lines: 16 fp32, 32 fp16, 64 int8; 128-byte lines double them).
    ``time_budget_s``: a wall-clock cap per solve (a hard one when set: the result then depends
    on the machine's speed and load); unset, a safety cap of max(600, n / 1000) s
    (:func:`icd_core.run.context.solver_budget`), recorded as ``budget_s`` — the solver's work
    is bounded by counts (levels, ``refine_steps`` passes), so results do not follow load.
    """

    name: SpecValue = "auto"
    time_budget_s: float | None = attrs.field(default=None, validator=positive())
    refine_steps: int = attrs.field(default=10, validator=non_negative())
    k_blocks: int | None = attrs.field(default=None, validator=positive())
    block: int | None = attrs.field(default=None, validator=power_of_two())
    line_bytes: int = attrs.field(default=64, validator=power_of_two())
    cache: bool = True


@attrs.frozen
class TransformConfig:
    """Adapters applied in order: ``adapters`` first, then the ``sparsity``, ``quant`` and
    ``kv`` shorthands (``sparsity: "2:4"`` means adapter ``sparsity:2:4``)."""

    adapters: list[SpecValue] = attrs.Factory(list)
    sparsity: str | None = None
    quant: str | None = None
    kv: str | None = None

    def chain(self) -> list[SpecValue]:
        tail = [f"{name}:{value}" for name, value in
                (("sparsity", self.sparsity), ("quant", self.quant), ("kv", self.kv)) if value]
        return list(self.adapters) + tail


DEFAULT_NCU_METRICS = [
    "lts__t_sector_hit_rate.pct",
    "lts__t_sectors_op_read.sum",
    "lts__t_sectors_op_read_lookup_miss.sum",
    "dram__bytes_read.sum",
]


@attrs.frozen
class CacheModelConfig:
    """The ``cache`` measure's model. ``target``: ``auto`` models the machine that runs the
    workload (this CPU's L2 from sysfs; on CUDA the named GPU's L2); ``cpu-l2``, ``cpu-llc``
    (this CPU's last level), ``h100``, ``h200``, ``a100`` choose one; ``size_bytes`` /
    ``line_bytes`` / ``ways`` override it. ``accesses``: held-out accesses replayed.
    The opt-in ``cachegrind`` measure gathers each access from a ``rows``-row weight under
    valgrind with caches ``cachegrind_D1`` / ``cachegrind_LL`` (size,assoc,line)."""

    target: Literal["auto", "cpu-l2", "cpu-llc", "h100", "h200", "a100"] = "auto"
    size_bytes: int | None = attrs.field(default=None, validator=positive())
    line_bytes: int | None = attrs.field(default=None, validator=power_of_two())
    ways: int | None = attrs.field(default=None, validator=positive())
    rows: int = attrs.field(default=64, validator=positive())
    accesses: int = attrs.field(default=128, validator=positive())
    cachegrind_D1: str = "32768,8,64"
    cachegrind_LL: str = "1048576,16,64"


@attrs.frozen
class MeasureConfig:
    """``use: null`` runs every registered measure; unavailable ones report null + reason;
    ``[]`` (``--measure none``) none: quality is judged, nothing is timed or modelled.
    ``threads``: CPU threads for the timed forwards (null: ``OMP_NUM_THREADS`` when set, else
    the cores this process may run on), recorded either way."""

    use: list[str] | None = None
    threads: int | None = attrs.field(default=None, validator=positive())
    cache: CacheModelConfig = CacheModelConfig()
    ncu_metrics: list[str] = attrs.Factory(lambda: list(DEFAULT_NCU_METRICS))
    power_sample_hz: float = attrs.field(default=10.0, validator=positive())


@attrs.frozen
class ReportConfig:
    """``formats: null`` writes every registered reporter's format."""

    out_dir: str = "runs"
    formats: list[str] | None = None


@attrs.frozen
class GatesConfig:
    """Acceptance gates, iterative vs linear (negative = must fall by at least that much),
    each judged on the 95 % CI of a paired change. ``allow_modelled``: let modelled or
    simulated figures (the cache model, cachegrind) decide gates and rollbacks; by default
    only measured figures do."""

    latency_pct: float = -20.0
    l2_pp: float = 10.0
    ept_pct: float = -15.0
    quality_drop_pp: float = attrs.field(default=0.1, validator=non_negative())
    allow_modelled: bool = False


@attrs.frozen
class RollbackConfig:
    """Regression tolerances of the final state vs the pre-run state; beyond any, undo all.

    A tolerance is breached when the whole 95 % CI of the paired change lies beyond it
    (``latency_pct``: slower by more than this; ``l2_pp``: hit rate lower by more; ...).
    ``traffic_pct``: cache misses per access up by more than this (a modelled figure, so
    only with ``gates.allow_modelled``). ``quality_pp``: quality drop beyond this (``null``:
    transforms may lose quality freely).
    """

    enabled: bool = True
    latency_pct: float = attrs.field(default=10.0, validator=non_negative())
    l2_pp: float = attrs.field(default=2.0, validator=non_negative())
    ept_pct: float = attrs.field(default=10.0, validator=non_negative())
    traffic_pct: float = attrs.field(default=10.0, validator=non_negative())
    quality_pp: float | None = attrs.field(default=None, validator=non_negative())


@attrs.frozen
class ExecutionConfig:
    """How transformed layers execute. ``backend``: ``dense`` (every weight dense, masks
    applied), ``bsr`` (pruned Linear weights as torch BSR, or CSR where that measures faster),
    ``paged`` (page-sparse attention over a paged KV cache), ``semi`` (2:4 semi-structured,
    CUDA only), ``auto`` (per weight the fastest of dense / BSR / CSR as measured, paged
    attention when a page plan is applied). A rate given as ``auto`` in an adapter spec is
    searched per arm: at most ``rate_evaluations`` trials, judged on ``rate_metric`` against
    ``rate_limit`` in its unit (null: the workload's suggestion, else its primary quality
    against ``gates.quality_drop_pp``)."""

    backend: Literal["dense", "bsr", "paged", "semi", "auto"] = "dense"
    rate_evaluations: int = attrs.field(default=8, validator=positive())
    rate_metric: str | None = None
    rate_limit: float | None = attrs.field(default=None, validator=non_negative())


@attrs.frozen
class Config:
    """The whole configuration (``icd run --print-config`` shows it).

    ``workload: auto`` is the usable installed workload that declares the highest preference
    (the built-in ``mock`` declares the lowest).
    """

    workload: SpecValue = "auto"
    model: str | None = attrs.field(default=None, converter=absolute_path)
    """A transformers checkpoint directory (``icd run --model DIR``): loaded by the installed
    workload that can (ability ``model-directory``), into its option ``path``; recorded as an
    absolute path, so ``icd export RUN`` finds it from any directory."""
    seed: int = attrs.field(default=0, validator=non_negative())
    name: str | None = None
    pipeline: PipelineConfig = PipelineConfig()
    graph: GraphConfig = GraphConfig()
    solver: SolverConfig = SolverConfig()
    transform: TransformConfig = TransformConfig()
    execution: ExecutionConfig = ExecutionConfig()
    measure: MeasureConfig = MeasureConfig()
    report: ReportConfig = ReportConfig()
    gates: GatesConfig = GatesConfig()
    rollback: RollbackConfig = RollbackConfig()
