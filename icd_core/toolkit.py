"""Helpers that plugins share, in one place: the only part of ``icd_core`` besides its root
and :mod:`icd_core.testing` that a plugin imports (a test enforces it).

- permutations: :func:`identity`, :func:`inverse`, :func:`check_permutation`, and for solvers
  working on supernodes :func:`contract`, :func:`expand`, :func:`pin_fixed`,
  :func:`supernode_count`;
- co-access graphs and layout metrics: :func:`symmetric_csr`, :func:`cut_g`,
  :func:`modularity`, :func:`partition_modularity`, :func:`linear_arrangement`,
  :func:`lines_per_access`, :func:`fit_stats` (the stats every solver reports);
- channel orders for shared quantization scales: :func:`sort_order`, :func:`cluster_order`,
  :func:`order_for`;
- array helpers that take numpy arrays and torch tensors alike: :mod:`tensors`;
- comparing outputs: :func:`max_rel_diff`, :func:`output_quality`; a paired
  :func:`statistic` over a figure's samples; :data:`MIN_ROUNDS_FOR_CI` (the fewest timing
  rounds whose latency change gets a 95 % CI, for a workload's suggested repeats);
- adapters: :func:`plan_targets` (the weights ``targets`` / ``ignore`` select, split into those a
  group runs along and those transformed in natural order; :func:`patterns` converts the option;
  :func:`check_widths` refuses, before any work, targeted weights a group size or M cannot tile),
  :func:`undo_permutation`, :func:`no_target_reason`, :func:`activation_energy` (Σ x²
  per channel, for activation-aware scores and act-order); options: :func:`positive`,
  :func:`non_negative`, :func:`between`, :func:`power_of_two`;
- solvers: :class:`Deadline` (``ctx.deadline``'s type), :func:`solver_budget` (the default budget
  for n nodes) and :func:`solver_workers` (the processes one solve may fork);
- artifacts: :func:`csr_npz_bytes` (what ``ctx.write_artifact`` takes for sparse matrices);
- out-of-process runners: :func:`load_workload` (a run's workload rebuilt from its spec and seed),
  :func:`python_command` (a Python child that never imports from the working directory) and
  :func:`die_with_parent` (its ``preexec_fn``: killed with the parent);
- bounded input: :func:`read_bytes` / :func:`read_text` / :func:`read_json` (a regular file no larger than a named
  limit, else one error line), :func:`regular_file`, :func:`limit` (``ICD_LIMIT_<NAME>`` or the
  default; the names and defaults are in docs/limits.md);
- scratch and staging directories: :func:`held_directory` (held while used, swept by the next
  process when a kill left it behind).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core.config.validators import between, non_negative, positive, power_of_two
from icd_core.contract import tensors
from icd_core.contract.abilities import CapturesActivations
from icd_core.contract.children import die_with_parent, python_command
from icd_core.contract.limits import limit, read_bytes, read_json, read_text, regular_file
from icd_core.contract.staging import held_directory
from icd_core.contract.state import ModelState
from icd_core.contract.targets import (
    DEFAULT_TARGETS,
    TargetPlan,
    check_widths,
    ignore_patterns,
    patterns,
    plan_targets,
)
from icd_core.layout.channel_order import cluster_order, order_for, sort_order
from icd_core.layout.graphs import symmetric_csr
from icd_core.layout.metrics import (
    cut_g,
    fit_stats,
    linear_arrangement,
    lines_per_access,
    modularity,
    partition_modularity,
)
from icd_core.layout.permutations import (
    check_permutation,
    contract,
    expand,
    identity,
    inverse,
    pin_fixed,
    supernode_count,
)
from icd_core.run.artifacts import csr_npz_bytes
from icd_core.run.batch import solver_workers
from icd_core.run.context import Deadline, solver_budget
from icd_core.run.outputs import max_rel_diff, output_quality
from icd_core.run.paired import MIN_ROUNDS_FOR_CI, statistic
from icd_core.run.rollback import undo_permutation


def no_target_reason(skipped: list[str]) -> str:
    """Why a weight transform found nothing to act on (for a recorded no-op)."""
    if skipped:
        return "group sizes not divisible: " + ", ".join(skipped)
    return "no targeted weight (targets / ignore select none, and no group runs along a weight's input)"


def activation_energy(ctx: Any, state: ModelState, group: str) -> np.ndarray | None:
    """Σ x_j² per channel of ``group`` over the run's calibration batches (the Hessian diagonal
    of a layer reading it), or None when the workload captures no activity for the group."""
    workload = state.workload
    if not isinstance(workload, CapturesActivations) or group not in workload.probes:
        return None
    acts = workload.capture(state, ctx.config.graph.activations.batches)[group].astype(np.float64)
    return (acts ** 2).sum(0)


def load_workload(workload: str | dict[str, Any], seed: int = 0) -> ModelState:
    """The workload named by ``workload`` (a spec such as ``"smollm2:prompt=2048"``), loaded
    with every installed plugin exactly as ``icd run --seed seed`` loads it."""
    from icd_core.config.files import load_config
    from icd_core.plugin import dispatch
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.context import RunContext
    from icd_core.run.selection import select

    config = load_config(cli={"workload": workload, "seed": seed})
    manager = load_plugin_manager()
    selection = select(config, manager.registry)
    ctx = RunContext(config=selection.config, registry=manager.registry)
    return dispatch.load_workload(manager, ctx, selection.workload)


__all__ = [
    "DEFAULT_TARGETS", "MIN_ROUNDS_FOR_CI", "Deadline", "TargetPlan",
    "activation_energy", "between", "check_permutation", "cluster_order", "contract", "csr_npz_bytes",
    "cut_g", "die_with_parent", "expand", "ignore_patterns",
    "fit_stats", "held_directory", "identity", "inverse", "limit", "linear_arrangement", "lines_per_access", "load_workload",
    "max_rel_diff",
    "modularity", "no_target_reason", "non_negative", "order_for", "output_quality", "partition_modularity",
    "patterns", "plan_targets", "check_widths",
    "pin_fixed", "positive", "power_of_two", "python_command", "read_bytes", "read_json", "read_text", "regular_file",
    "solver_budget", "solver_workers", "sort_order", "statistic",
    "supernode_count",
    "symmetric_csr",
    "tensors", "undo_permutation",
]
