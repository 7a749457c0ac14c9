"""The spectral solver: recovers planted blocks, honours constraints and budgets, conforms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from icd_core.builtins.graph_mock import planted_blocks
from icd_core.context import Deadline
from icd_core.cost import cut_g
from icd_core.perms import check_permutation
from icd_core.records import Constraints, GraphW
from icd_core.testing import check_conformance, fresh_manager
from icd_solver_spectral import plugin
from icd_solver_spectral.bisection import fiedler_vector, fit_spectral


def solve(w, constraints=Constraints(), budget=30.0, block=16):
    return fit_spectral(GraphW(matrix=w, meta={}, block=block), constraints, Deadline(budget), seed=0)


@pytest.mark.parametrize("n,blocks", [(512, 32), (1024, 64)])
def test_recovers_planted_line_sized_blocks(n, blocks):
    w, planted = planted_blocks(n, blocks, 0.02, seed=3)
    fit = solve(w)
    check_permutation(fit.perm, n, Constraints(), "test")
    assert cut_g(w, np.arange(n), 16) > 0.95
    assert fit.stats["C"] < 0.12 and fit.stats["C"] == pytest.approx(cut_g(w, fit.perm, 16))
    assert fit.stats["Q"] > 0.8 and fit.stats["improved"] and not fit.stats["timed_out"]


def test_large_segments_use_the_sparse_eigensolver():
    w, _ = planted_blocks(2048, 128, 0.02, seed=5)
    fit = solve(w)
    assert fit.stats["C"] < 0.15


def test_deterministic():
    w, _ = planted_blocks(600, 30, 0.05, seed=2)
    assert np.array_equal(solve(w).perm, solve(w).perm)


def test_supernode_and_fixed_constraints_are_respected():
    w, _ = planted_blocks(256, 16, 0.05, seed=4)
    constraints = Constraints(supernode=4, fixed=(0, 5))
    fit = solve(w, constraints)
    check_permutation(fit.perm, 256, constraints, "test")
    assert fit.stats["C"] < cut_g(w, np.arange(256), 16)


def test_disconnected_components_stay_apart():
    a = sp.random(32, 32, density=0.5, random_state=0)
    w = sp.block_diag([a + a.T, a + a.T]).tocsr().astype(np.float32)
    w.setdiag(0)
    w.eliminate_zeros()
    shuffle = np.random.default_rng(0).permutation(64)
    w = w[shuffle][:, shuffle].tocsr()
    fit = solve(w, block=32)
    assert fit.stats["C"] == 0.0


def test_fiedler_sign_is_fixed():
    w, _ = planted_blocks(64, 2, 0.0, seed=0)
    v = fiedler_vector(w, seed=0)
    assert v[np.argmax(np.abs(v))] > 0


def test_exhausted_budget_returns_a_valid_flagged_order():
    w, _ = planted_blocks(512, 32, 0.05, seed=1)
    fit = solve(w, budget=1e-9)
    check_permutation(fit.perm, 512, Constraints(), "test")
    assert fit.stats["timed_out"] is True


def test_plugin_conforms_and_answers_through_the_hook():
    manager = fresh_manager(plugin)
    assert check_conformance(manager, plugin) == []
    from icd_core.specs import resolve
    from icd_core.testing import context

    w, _ = planted_blocks(128, 8, 0.0, seed=0)
    fit = manager.pm.hook.icd_fit_permutation(ctx=context(manager), solver=resolve(manager.registry, "solver", "spectral"),
                                              w=GraphW(matrix=w, meta={}), constraints=Constraints())
    assert fit.stats["method"] == "recursive-spectral-bisection"
