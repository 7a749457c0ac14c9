"""The random-order control: the transform after random function-preserving orders, beside π₀'s."""

from __future__ import annotations

import json

import numpy as np
import pytest

from icd_core import FitResult, TransformMeta, TransformResult
from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.contract.errors import ContractError
from icd_core.contract.records import Constraints
from icd_core.layout.permutations import check_permutation, random_order
from icd_core.report.card import verdict_card

from .conftest import make_plugin, run_pipeline

HIDDEN = 128


def planted_state():
    return build_mock_state(MockOptions(hidden=HIDDEN, tokens=32), np.random.default_rng(7))


def weakest_first(state) -> np.ndarray:
    """fc2's input columns in ``state``'s order, least output first (‖h_j‖·‖w_j‖ on the batch):
    the order under which zeroing the first half costs least."""
    t = state.tensors
    h = np.maximum(state.workload.inputs @ t["mlp.fc1.weight"].T + t["mlp.fc1.bias"], 0)
    return np.argsort(np.linalg.norm(h, axis=0) * np.linalg.norm(t["mlp.fc2.weight"], axis=0)).astype(np.int32)


def register(registry):
    registry.add("workload", "planted", summary="the mock MLP on a fixed seed")
    registry.add("solver", "weakest-first", summary="fc2's weakest columns first")
    registry.add("adapter", "first-half", summary="zero fc2's first half of columns, in the layout's order")
    registry.add("adapter", "weakest-half", summary="zero fc2's least-output half, whatever the order")
    registry.add("adapter", "natural-half", summary="natural order: the first half; permuted: the least-output half")


def load(ctx, workload):
    return planted_state() if workload.name == "planted" else None


def fit(ctx, solver, w, constraints):
    return FitResult(perm=weakest_first(planted_state()), stats={"method": "planted"}) if solver.name == "weakest-first" else None


def transform(ctx, adapter, state, layout):
    """Zero half of fc2's input columns: by position (``first-half``), by magnitude
    (``weakest-half``), or by position in natural order and by output once permuted."""
    if adapter.name not in ("first-half", "weakest-half", "natural-half"):
        return None
    w = state.tensors["mlp.fc2.weight"]
    by_position = adapter.name == "first-half" or (adapter.name == "natural-half" and not layout.permute)
    order = np.arange(w.shape[1]) if by_position else weakest_first(state)
    pruned = w.copy()
    pruned[:, order[:w.shape[1] // 2]] = 0
    meta = TransformMeta(adapter=adapter.name, spec=adapter.text, stats={"tensors": ["mlp.fc2.weight"]})
    return TransformResult(state=state.with_transform({"mlp.fc2.weight": pruned}, meta), meta=meta)


PLANTED = make_plugin("planted", icd_register=register, icd_load_workload=load, icd_fit_permutation=fit,
                      icd_apply_transform=transform)


def run_with(tmp_path, adapter: str, **overrides):
    outcome, run = run_pipeline(tmp_path, PLANTED, overrides={
        "workload": "planted", "solver.name": "weakest-first", "graph.source": "mock",
        "transform.adapters": [adapter], "rollback.enabled": False, **overrides})
    assert outcome.ok, outcome.error
    metrics = json.loads((run / "metrics.json").read_text())
    return metrics, verdict_card(metrics).layout_answer


def test_random_orders_respect_super_nodes_and_fixed_positions():
    rng = np.random.default_rng(0)
    constraints = Constraints(supernode=4, fixed=(0, 5))
    orders = [random_order(64, constraints, rng) for _ in range(20)]
    for perm in orders:
        check_permutation(perm, 64, constraints, "test")
        assert list(perm[:4]) == [0, 1, 2, 3] and list(perm[20:24]) == [20, 21, 22, 23]
    assert len({tuple(p) for p in orders}) == 20  # drawn, not one order
    with pytest.raises(ContractError, match="not a multiple of supernode 4"):
        random_order(30, Constraints(supernode=4), rng)


def test_a_layout_that_decides_what_is_pruned_beats_natural_and_random_orders(tmp_path):
    metrics, answer = run_with(tmp_path, "first-half")
    assert {"random1", "random2", "random3"} <= set(metrics["results"])
    control = metrics["control"]
    found = control["metrics"]["cosine_pct"]
    assert control["orders"] == 3 and found["linear"] > max(found["random"].values())
    assert found["linear_vs_best"]["ci95"][0] > 0 and found["best"] in found["random"]
    assert answer.startswith("What did layout add to first-half? Layout helped: permuted vs natural order: "), answer
    assert "against the best of 3 random orders" in answer
    # the control arms are judged, never timed, kept or exported
    assert metrics["results"]["random1"]["figures"].get("lat_ms") is None
    assert "random1" not in metrics["timing"].get("order", "")
    assert metrics["results"]["random1"]["state_digest"] != metrics["results"]["linear"]["state_digest"]


def test_an_order_blind_transform_gains_nothing_beyond_chance(tmp_path):
    metrics, answer = run_with(tmp_path, "natural-half")
    found = metrics["control"]["metrics"]["cosine_pct"]
    assert list(found["random"].values()) == pytest.approx([found["linear"]] * 3)
    assert answer.startswith("What did layout add to natural-half? Nothing beyond chance (a random order did as "
                             "well): permuted vs natural order: cosine_pct "), answer
    metrics, answer = run_with(tmp_path / "blind", "weakest-half")
    assert answer.startswith("What did layout add to weakest-half? Nothing: permuted vs natural order: "), answer


def test_no_control_says_why(tmp_path):
    metrics, answer = run_with(tmp_path, "first-half", **{"pipeline.random_orders": 0})
    assert metrics["control"] == {"orders": 0, "reason": "pipeline.random_orders is 0"}
    assert "random1" not in metrics["results"]
    assert answer.endswith("(no random-order control: pipeline.random_orders is 0)."), answer


def test_the_conclusion_needs_both_comparisons_decided():
    from icd_core.report.card import _conclusion

    control = {"orders": 3}
    assert _conclusion("better", "better", control) == "Layout helped:"
    assert _conclusion("better", "no difference shown", control) == \
        "Nothing beyond chance (a random order did as well):"
    assert _conclusion("better", "worse", control) == "Nothing beyond chance (a random order did better):"
    assert _conclusion("no difference shown", "better", control) == "Nothing:"
    assert _conclusion("worse", "better", control) == "Layout hurt:"
    assert _conclusion("better", None, {"orders": 0, "reason": "why"}) == "(no random-order control: why)"
