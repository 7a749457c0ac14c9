"""N:M sparsity: the mask, the Apex reference numbers, metadata, constraints, errors."""

from __future__ import annotations

import numpy as np
import pytest

from icd_adapter_sparsity import plugin
from icd_adapter_sparsity.nm import nm_mask
from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.errors import ConfigError
from icd_core.specs import resolve
from icd_core.testing import check_conformance, context, fresh_manager


@pytest.fixture(scope="module")
def manager():
    return fresh_manager(plugin)


def apply(manager, spec, state):
    adapter = resolve(manager.registry, "adapter", spec)
    return manager.pm.hook.icd_apply_transform(ctx=context(manager), adapter=adapter, state=state,
                                               layout=state.layout_for({"mlp.hidden": 16}))


def test_matches_the_apex_reference_efficacy_numbers():
    np.random.seed(1)
    w = np.random.rand(128, 64)
    mask = nm_mask(w, axis=1, n=2, m=4)
    assert w.sum() == pytest.approx(4083.169, abs=1e-3)
    assert w[mask].sum() == pytest.approx(2852.377, abs=1e-3)
    best_half = np.sort(w, axis=1)[:, 32:].sum()
    assert best_half == pytest.approx(3042.332, abs=1e-3)


def test_mask_keeps_the_n_largest_of_every_m():
    w = np.array([[4.0, -5.0, 1.0, 0.5, 0.0, 0.0, -1.0, 2.0]])
    assert nm_mask(w, 1, 2, 4).tolist() == [[True, True, False, False, False, False, True, True]]
    col = nm_mask(w.T, 0, 1, 4)
    assert col[:, 0].tolist() == [False, True, False, False, False, False, False, True]


def test_transform_prunes_the_input_dim_and_leaves_constraints(manager):
    state = build_mock_state(MockOptions(hidden=64, d_in=16, d_out=8, tokens=4), np.random.default_rng(0))
    result = apply(manager, "sparsity:2:4", state)
    w2 = result.state.tensors["mlp.fc2.weight"]
    assert ((w2.reshape(8, 16, 4) != 0).sum(axis=-1) <= 2).all()
    assert np.array_equal(result.state.tensors["mlp.fc1.weight"], state.tensors["mlp.fc1.weight"])
    assert result.meta.sparsity == {"type": "2:4", "rate": 0.5}
    assert result.meta.repermute is True and result.meta.constraints["mlp.hidden"].supernode == 4
    assert result.state.constraints["mlp.hidden"].supernode == 4
    assert 50 < result.meta.stats["kept_magnitude_pct"] < 100
    assert (state.tensors["mlp.fc2.weight"] != 0).all()  # the input state is untouched


def test_not_divisible_is_a_recorded_noop(manager):
    state = build_mock_state(MockOptions(hidden=30, d_in=8, d_out=4, tokens=2), np.random.default_rng(0))
    result = apply(manager, "sparsity:2:4", state)
    assert result.meta.noop and result.meta.reason == "group sizes not divisible: mlp.hidden (size 30 not a multiple of 4)"
    assert result.state is state


def test_options_are_validated(manager):
    with pytest.raises(ConfigError, match=r"^sparsity: n \(4\) must be < m \(2\)$"):
        resolve(manager.registry, "adapter", "sparsity:4:2")
    assert resolve(manager.registry, "adapter", "sparsity:1:8").options.m == 8


def test_conforms(manager):
    assert check_conformance(manager, plugin) == []
