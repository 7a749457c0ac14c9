"""Layout metrics on hand-checked matrices, and the planted mock W."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from icd_core.builtins.graph_mock import mock_w, planted_blocks
from icd_core.contract.errors import ContractError
from icd_core.contract.records import GraphW
from icd_core.layout.graphs import check_w, symmetric_csr
from icd_core.layout.metrics import (
    cut_g,
    fit_stats,
    layout_metrics,
    linear_arrangement,
    lines_per_access,
    modularity,
    partition_modularity,
)


@pytest.fixture
def two_pairs():
    # edges 0-2 (w=3) and 1-3 (w=1): identity splits both across 2-blocks {0,1},{2,3}.
    return symmetric_csr(np.array([0, 1]), np.array([2, 3]), np.array([3.0, 1.0]), 4)


def test_cut_modularity_and_arrangement(two_pairs):
    ident, paired = np.arange(4), np.array([0, 2, 1, 3])
    assert cut_g(two_pairs, ident, 2) == 1.0
    assert cut_g(two_pairs, paired, 2) == 0.0
    # Q = Σ_b in_b/2m − (deg_b/2m)²: paired blocks hold 6/8 and 2/8 of the weight.
    assert modularity(two_pairs, paired, 2) == pytest.approx(6 / 8 + 2 / 8 - (6 / 8) ** 2 - (2 / 8) ** 2)
    assert modularity(two_pairs, ident, 2) == pytest.approx(0 - 2 * (4 / 8) ** 2)
    assert linear_arrangement(two_pairs, ident) == pytest.approx((3 * 2 + 1 * 2) * 2 / (8 * 4))
    assert linear_arrangement(two_pairs, paired) == pytest.approx((3 * 1 + 1 * 1) * 2 / (8 * 4))
    assert lines_per_access([np.array([0, 2]), np.array([1])], paired, 2) == 1.0
    assert lines_per_access([np.array([0, 2]), np.array([1])], ident, 2) == 1.5
    assert layout_metrics(two_pairs, paired, 2)["lines_per_access"] is None
    assert partition_modularity(two_pairs, np.array([0, 1, 0, 1])) == modularity(two_pairs, paired, 2)
    stats = fit_stats(two_pairs, paired, 2, method="m", time_s=0.0)
    assert (stats["C_initial"], stats["C"], stats["Q_intra"], stats["improved"]) == (1.0, 0.0, 1.0, True)


def test_symmetric_csr_contract():
    w = symmetric_csr(np.array([0, 0, 1, 2]), np.array([1, 1, 1, 0]), np.array([1.0, 2.0, 5.0, 1.0]), 3)
    assert w.dtype == np.float32 and w.format == "csr"
    assert np.array_equal(w.toarray(), [[0, 3, 1], [3, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize("matrix,message", [
    (sp.csr_matrix(np.array([[0, 1], [2, 0]], dtype=np.float32)), "is not symmetric"),
    (sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32)), "non-zero diagonal"),
    (sp.csr_matrix(np.array([[0, -1], [-1, 0]], dtype=np.float32)), "negative weights"),
    (sp.csr_matrix(np.array([[0, np.nan], [np.nan, 0]], dtype=np.float32)), "NaN or inf"),
    (sp.csr_matrix(np.array([[0, 1], [1, 0]], dtype=np.float64)), "dtype must be float32"),
    (sp.csr_matrix(np.zeros((3, 3), dtype=np.float32)), r"shape \(3, 3\) does not match the group size 2"),
    (sp.coo_matrix(np.zeros((2, 2), dtype=np.float32)), "must be a scipy CSR matrix"),
])
def test_w_contract_violations(matrix, message):
    with pytest.raises(ContractError, match=message):
        check_w(GraphW(matrix=matrix, meta={}), 2, "graph x")


def test_planted_mock_is_deterministic_sparse_and_hidden():
    w1, planted = planted_blocks(512, 32, 0.05, seed=7)
    w2, _ = planted_blocks(512, 32, 0.05, seed=7)
    assert (w1 != w2).nnz == 0
    assert w1.nnz <= 0.05 * 512 ** 2
    check_w(GraphW(matrix=w1, meta={}), 512, "mock")
    planted_order = np.argsort(planted, kind="stable")
    assert cut_g(w1, np.arange(512), 16) > 0.9  # the relabelling hides the blocks
    assert cut_g(w1, planted_order, 16) < 0.1  # the planted order reveals them
    assert (planted_blocks(512, 32, 0.05, seed=8)[0] != w1).nnz > 0


def test_stronger_noise_raises_the_planted_cut():
    cuts = []
    for noise in (0.0, 0.1, 0.3):
        w, planted = planted_blocks(256, 16, noise, seed=1)
        cuts.append(cut_g(w, np.argsort(planted, kind="stable"), 16))
    assert cuts[0] == 0.0 and cuts[0] < cuts[1] < cuts[2]


def test_mock_in_a_layout_is_the_relabelled_matrix():
    layout = np.random.default_rng(3).permutation(128)
    base = mock_w(128, 8, 0.05, 11, np.arange(128))
    moved = mock_w(128, 8, 0.05, 11, layout)
    assert np.array_equal(moved.matrix.toarray(), base.matrix.toarray()[layout][:, layout])
    assert len(moved.access_groups) == 128 and moved.meta["nnz"] == base.meta["nnz"]
