"""Permutations of model state: function preserved, exact undo, constraints, validation."""

from __future__ import annotations

import numpy as np
import pytest

from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.contract.errors import ContractError
from icd_core.contract.records import Constraints
from icd_core.layout.permutations import (
    check_permutation,
    contract,
    expand,
    identity,
    inverse,
    pin_fixed,
)
from icd_core.run.rollback import undo_permutation


@pytest.fixture
def state():
    return build_mock_state(MockOptions(hidden=64, d_in=32, d_out=16, tokens=8), np.random.default_rng(0))


def test_permuting_the_hidden_group_preserves_the_function(state):
    reference = state.run()
    perm = np.random.default_rng(1).permutation(64)
    permuted = state.permuted("mlp.hidden", perm)
    assert np.max(np.abs(permuted.run() - reference)) < 1e-5
    assert np.array_equal(permuted.layout["mlp.hidden"], perm)
    assert np.array_equal(permuted.tensors["mlp.fc2.weight"], state.tensors["mlp.fc2.weight"][:, perm])
    assert permuted.digest() != state.digest()


def test_identity_and_inverse_restore_bit_identical_state(state):
    assert state.permuted("mlp.hidden", identity(64)).digest() == state.digest()
    perm = np.random.default_rng(2).permutation(64)
    forward = state.permuted("mlp.hidden", perm)
    back = undo_permutation("mlp.hidden", perm)(forward)
    assert back.digest() == state.digest()
    for name in state.tensors:
        assert np.array_equal(back.tensors[name], state.tensors[name])


def test_states_are_values(state):
    before = {k: v.copy() for k, v in state.tensors.items()}
    state.permuted("mlp.hidden", np.arange(64)[::-1])
    for name, value in before.items():
        assert np.array_equal(state.tensors[name], value)


def test_selected_shrinks_the_group(state):
    keep = np.arange(0, 64, 2)
    small = state.selected("mlp.hidden", keep)
    assert small.group("mlp.hidden").size == 32
    assert small.tensors["mlp.fc1.weight"].shape == (32, 32)
    assert np.array_equal(small.layout["mlp.hidden"], keep)


def test_permutation_validation():
    none = Constraints()
    assert check_permutation(np.array([2, 0, 1]), 3, none, "s").dtype == np.int32
    with pytest.raises(ContractError, match="not a permutation"):
        check_permutation(np.array([0, 0, 1]), 3, none, "s")
    with pytest.raises(ContractError, match=r"shape \(3,\)"):
        check_permutation(np.array([0, 1]), 3, none, "s")
    quads = Constraints(supernode=4)
    assert check_permutation(np.r_[4:8, 0:4], 8, quads, "s") is not None
    with pytest.raises(ContractError, match="splits an aligned group of 4"):
        check_permutation(np.r_[1:5, 0, 5:8], 8, quads, "s")
    with pytest.raises(ContractError, match="moves fixed super-node 0"):
        check_permutation(np.r_[4:8, 0:4], 8, Constraints(supernode=4, fixed=(0,)), "s")


def test_supernode_helpers():
    assert np.array_equal(expand(np.array([1, 0]), 2), [2, 3, 0, 1])
    assert np.array_equal(inverse(np.array([2, 0, 1])), [1, 2, 0])
    assert np.array_equal(pin_fixed(np.array([2, 0, 1, 3]), (0,)), [0, 2, 1, 3])
    assert np.array_equal(pin_fixed(np.array([3, 2, 1, 0]), (0, 1)), [0, 1, 2, 3])  # one swap each
    import scipy.sparse as sp

    w = sp.csr_matrix(np.array([[0, 1, 2, 0], [1, 0, 0, 3], [2, 0, 0, 4], [0, 3, 4, 0]], dtype=np.float32))
    assert np.array_equal(contract(w, 2).toarray(), [[0, 2 + 0 + 0 + 3], [5, 0]])
    assert Constraints(2, (1,)).merged(Constraints(4)) == Constraints(4, (0,))
