"""The spectral solver: block recovery, quality vs baselines, constraints, budgets, pieces."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from icd_solver_spectral import plugin
from icd_solver_spectral.bisection import split_position
from icd_solver_spectral.kl import refine_bisections
from icd_solver_spectral.lanczos import fiedler_batch
from icd_solver_spectral.refine import block_swaps
from icd_solver_spectral.solve import fit_baseline, fit_spectral
from icd_solver_spectral.synthetic import grid_graph, planted_communities

from icd_core import Constraints, GraphW
from icd_core.testing import check_conformance, context, fresh_manager, resolve
from icd_core.toolkit import (
    Deadline,
    check_permutation,
    cut_g,
    modularity,
    symmetric_csr,
)


def solve(w, constraints=Constraints(), budget=60.0, block=16, **kw):
    return fit_spectral(GraphW(matrix=w, meta={}, block=block), constraints, Deadline(budget), seed=0, **kw)


@pytest.mark.parametrize("n", [1024, 4096])
def test_recovers_line_sized_planted_blocks_within_one_percent(n):
    w, planted = planted_communities(n, exact=16, noise=0.02, inter=0.0, degree=12, seed=7)
    fit = solve(w)
    check_permutation(fit.perm, n, Constraints(), "test")
    assert fit.stats["C"] <= cut_g(w, planted, 16) * 1.01
    assert fit.stats["C_initial"] > 0.95 and fit.stats["improved"] and not fit.stats["timed_out"]
    assert fit.stats["Q_final"] >= fit.stats["Q_cluster"] - 1e-9 and fit.stats["Q_intra"] == pytest.approx(1 - fit.stats["C"])


def test_beats_the_baselines_on_lognormal_communities():
    w, planted = planted_communities(2500, mean_size=50, degree=14, seed=3)
    ours = solve(w).stats["C"]
    others = {name: fit_baseline(name, GraphW(matrix=w, meta={}, block=16), Constraints(), 0).stats["C"]
              for name in ("rcm", "fiedler", "random")}
    assert ours < 0.68 and ours < cut_g(w, planted, 16)  # better than laying communities end to end
    assert all(ours < c - 0.2 for c in others.values()), others


def test_grid_gets_near_square_tiles():
    w = grid_graph(32)
    fit = solve(w)
    assert fit.stats["C"] < 0.30  # 4×4 tiles would give 0.226; rows of 16 give 0.47


def test_stronger_blocks_give_lower_cost_and_higher_modularity():
    results = []
    for noise in (0.0, 0.1, 0.25, 0.5):
        w, _ = planted_communities(1024, exact=16, noise=noise, inter=0.0, degree=12, seed=5)
        fit = solve(w)
        results.append((fit.stats["C"], fit.stats["Q"]))
    cuts, qs = zip(*results)
    assert list(cuts) == sorted(cuts) and list(qs) == sorted(qs, reverse=True)
    assert cuts[0] == 0.0


def test_deterministic_for_a_seed():
    w, _ = planted_communities(1500, seed=2)
    assert np.array_equal(solve(w).perm, solve(w).perm)


def grouped_planted(n: int, community: int, supernode: int, seed: int) -> sp.csr_matrix:
    """Planted communities relabelled by moving whole aligned groups of ``supernode`` only,
    so a constrained solver can still recover them."""
    from icd_core.toolkit import expand

    w, planted = planted_communities(n, exact=community, noise=0.02, inter=0.0, degree=10, seed=seed)
    w = w[planted][:, planted]  # back to the planted order
    shuffle = expand(np.random.default_rng(seed).permutation(n // supernode), supernode)
    return w[shuffle][:, shuffle].tocsr()


def test_supernode_and_fixed_constraints_are_respected():
    w = grouped_planted(512, 16, 4, seed=4)
    constraints = Constraints(supernode=4, fixed=(0, 5))
    fit = solve(w, constraints)
    check_permutation(fit.perm, 512, constraints, "test")
    assert fit.stats["C_initial"] > 0.7 and fit.stats["C"] < 0.1


def test_supernode_larger_than_a_line():
    w = grouped_planted(512, 64, 32, seed=4)
    fit = solve(w, Constraints(supernode=32))
    check_permutation(fit.perm, 512, Constraints(supernode=32), "test")
    assert cut_g(w, fit.perm, 64) < 0.1


def test_disconnected_components_stay_apart():
    a = sp.random(32, 32, density=0.5, random_state=0)
    w = sp.block_diag([a + a.T, a + a.T]).tocsr().astype(np.float32)
    w.setdiag(0)
    w.eliminate_zeros()
    shuffle = np.random.default_rng(0).permutation(64)
    fit = solve(w[shuffle][:, shuffle].tocsr(), block=32)
    assert fit.stats["C"] == 0.0


@pytest.mark.parametrize("n", [5, 16, 37, 250])
def test_small_and_ragged_sizes(n):
    w, _ = planted_communities(n, exact=8 if n > 8 else None, mean_size=4, degree=4, seed=1)
    fit = solve(w)
    check_permutation(fit.perm, n, Constraints(), "test")
    assert fit.stats["C"] <= fit.stats["C_initial"] + 1e-12


def test_no_edges_keeps_the_order():
    fit = solve(sp.csr_matrix((40, 40), dtype=np.float32))
    assert np.array_equal(fit.perm, np.arange(40)) and fit.stats["C"] == 0.0


def test_exhausted_budget_returns_a_valid_flagged_order():
    w, _ = planted_communities(2000, seed=1)
    fit = solve(w, budget=1e-9)
    check_permutation(fit.perm, 2000, Constraints(), "test")
    assert fit.stats["timed_out"] is True


@pytest.mark.parametrize("seeds", ["louvain", "spectral"])
def test_cluster_seeds(seeds):
    w, _ = planted_communities(1024, exact=32, noise=0.02, inter=0.0, degree=12, seed=9)
    fit = solve(w, seeds=seeds, k_blocks=32)
    check_permutation(fit.perm, 1024, Constraints(), "test")
    assert fit.stats["seeds"] == seeds and fit.stats["clusters"] >= 2 and fit.stats["Q_seeds"] > 0.5
    assert fit.stats["C"] < 0.6


def test_batched_fiedler_matches_dense_eigenvectors():
    rng = np.random.default_rng(0)
    parts = []
    for size in (30, 50, 40):
        a = sp.random(size, size, density=0.3, random_state=rng).toarray()
        parts.append(np.triu(a, 1) + np.triu(a, 1).T)
    w = sp.csr_matrix(sp.block_diag(parts))
    seg = np.repeat([0, 1, 2], [30, 50, 40])
    f = fiedler_batch(w, seg, 3, steps=60, seed=0)
    start = 0
    for part in parts:
        n = part.shape[0]
        degree = part.sum(1)
        tau = 0.1 * degree.mean()
        d = 1 / np.sqrt(degree + tau)
        m = d[:, None] * (part + tau / n) * d[None, :]
        exact = d * np.linalg.eigh(m)[1][:, -2]
        got = f[start:start + n]
        assert abs(np.corrcoef(got, exact)[0, 1]) > 0.999
        start += n


def test_split_positions_stay_aligned():
    assert split_position(0, 2500, 16) == 1248
    assert split_position(0, 32, 16) == 16
    assert split_position(10, 20, 16) == 16
    assert split_position(16, 32, 16) is None and split_position(3, 9, 16) is None


def test_kl_repairs_a_bad_bisection():
    # two 8-cliques; start with 2 nodes of each on the wrong side
    rows, cols = np.triu_indices(8, 1)
    w = symmetric_csr(np.r_[rows, rows + 8, 0], np.r_[cols, cols + 8, 8], np.ones(2 * rows.size + 1), 16)
    side = np.r_[np.zeros(6), 1, 1, np.zeros(2), np.ones(6)].astype(np.int64)
    fixed = refine_bisections(w, np.zeros(16, dtype=np.int64), 1, side, passes=5)
    assert fixed.sum() == 8 and len(set(fixed[:8])) == 1 and len(set(fixed[8:])) == 1


def test_block_swaps_repair_a_misplaced_pair():
    w, planted = planted_communities(256, exact=16, noise=0.0, inter=0.0, degree=10, seed=2)
    order = planted.copy()
    order[[3, 20]] = order[[20, 3]]  # one node of block 0 and one of block 1 exchanged
    assert cut_g(w, order, 16) > 0
    fixed, swaps = block_swaps(w, order, 16, 5, Deadline(10))
    assert swaps >= 1 and cut_g(w, fixed, 16) == 0.0


@pytest.mark.parametrize("name", ["rcm", "fiedler", "random"])
def test_baselines_are_valid_and_constrained(name):
    w, _ = planted_communities(256, degree=8, seed=1)
    constraints = Constraints(supernode=4)
    fit = fit_baseline(name, GraphW(matrix=w, meta={}, block=16), constraints, 3)
    check_permutation(fit.perm, 256, constraints, "test")
    assert fit.stats["method"] == name
    again = fit_baseline(name, GraphW(matrix=w, meta={}, block=16), constraints, 3)
    assert np.array_equal(fit.perm, again.perm)


def test_plugin_registers_solvers_and_conforms():
    manager = fresh_manager(plugin)
    assert check_conformance(manager, plugin) == []
    assert {"spectral", "rcm", "fiedler", "random", "identity"} <= set(manager.registry.names("solver"))
    spec = resolve(manager.registry, "solver", "spectral:louvain")
    assert spec.options.seeds == "louvain"
    w, _ = planted_communities(128, exact=16, degree=8, seed=0)
    fit = manager.call("icd_fit_permutation", ctx=context(manager), solver=resolve(manager.registry, "solver", "spectral"),
                                              w=GraphW(matrix=w, meta={}), constraints=Constraints())
    assert fit.stats["method"] == "recursive-spectral-bisection" and modularity(w, fit.perm, 16) == fit.stats["Q"]


def metis_rb(w, parts):
    """METIS recursive bisection into ``parts`` parts laid out by part: the baseline."""
    from icd_solver_spectral.coarse import coarse_parts

    labels = coarse_parts(w, -(-w.shape[0] // parts), 0)
    return np.lexsort((np.arange(w.shape[0]), labels))


def test_multilevel_is_used_from_2048_nodes_and_beats_metis_rb():
    w, _ = planted_communities(8192, mean_size=50, degree=11, seed=5)
    fit = solve(w)
    assert fit.stats["method"].startswith("multilevel") and fit.stats["coarse_parts"] == 256
    baseline = metis_rb(w, 8192 // 16)
    assert fit.stats["C"] < cut_g(w, baseline, 16)
    off = solve(w, multilevel="off")
    assert off.stats["method"] == "recursive-spectral-bisection" and "coarse_parts" not in off.stats
    small, _ = planted_communities(1024, seed=2)
    assert solve(small).stats["method"] == "recursive-spectral-bisection"
    assert solve(small, multilevel="on").stats["method"].startswith("multilevel")
    again = solve(w)
    assert np.array_equal(fit.perm, again.perm)  # deterministic for a seed


def test_a_budget_that_runs_out_leaves_a_complete_coarse_layout():
    w, _ = planted_communities(20_000, mean_size=50, degree=11, seed=9)
    fit = solve(w, budget=1e-9)
    check_permutation(fit.perm, 20_000, Constraints(), "test")
    assert fit.stats["timed_out"] is True and fit.stats["layout"].startswith("complete but coarse")
    # METIS's parts of 8 lines are laid out (C 0.999 -> 0.90 at g = 16; far lower at 128): a coarser
    # layout, not a truncated or unchanged order.
    assert fit.stats["C"] < 0.95 * fit.stats["C_initial"] and fit.stats["levels"] == 0
    assert cut_g(w, fit.perm, 128) < 0.5 * cut_g(w, np.arange(20_000), 128)


def test_the_default_budget_scales_with_n():
    from icd_core.toolkit import solver_budget

    assert [solver_budget(None, n) for n in (1000, 120_000, 200_000, 1_000_000)] == [600.0, 600.0, 600.0, 1000.0]
    assert solver_budget(5.0, 1_000_000) == 5.0
    assert solve(planted_communities(512, seed=1)[0]).stats["budget_s"] == 60.0


def test_same_seed_same_layout_whatever_the_blas_threads():
    from threadpoolctl import threadpool_limits

    w, _ = planted_communities(4096, mean_size=50, degree=11, seed=4)
    with threadpool_limits(1):
        one = solve(w).perm
    with threadpool_limits(2):
        two = solve(w).perm
    assert np.array_equal(one, two)


def test_chunks_depend_on_the_node_count_alone():
    from icd_solver_spectral.chunks import chunk_count, chunk_spans

    assert [chunk_count(n) for n in (2048, 65_535, 65_536, 100_000, 200_000, 1_000_000, 10**8)] == [1, 1, 2, 2, 4, 16, 16]
    parts = [(0, 30), (30, 61), (61, 90), (90, 128)]
    assert chunk_spans(parts, 2) == [[(0, 30), (30, 61)], [(61, 90), (90, 128)]]
    assert chunk_spans(parts, 8) == [[p] for p in parts]  # never an empty chunk


def test_offsets_keep_blocks_aligned_to_the_whole_order():
    from icd_solver_spectral.bisection import shifted_split

    assert shifted_split(5, 40, 16, 3) == 29  # global (8, 43): the block edge at 32
    assert shifted_split(0, 10, 16, 3) is None  # global (3, 13) lies in one block
    # node 12 joined to nodes 0 and 1, laid out in order: one block from position 0, but in a
    # chunk that starts at position 8 of the whole order, positions 0-7 close block 0 and 8-23
    # are block 1
    w = sp.csr_matrix(([1.0] * 4, ([0, 12, 1, 12], [12, 0, 12, 1])), shape=(24, 24))
    assert block_swaps(w, np.arange(24), 16, 4, Deadline(60.0))[1] == 0
    moved, swaps = block_swaps(w, np.arange(24), 16, 4, Deadline(60.0), offset=8)
    block = (np.argsort(moved) + 8) // 16
    assert swaps >= 1 and (block[0] != block[12]) + (block[1] != block[12]) < 2


def test_a_chunked_solve_is_the_same_whatever_the_workers(monkeypatch):
    """Chunks from 2 × CHUNK_NODES super-nodes (lowered here): the same π on 1 and 2 workers,
    a cut as good as the unchunked solve's, and one worker per problem inside a batch."""
    import icd_solver_spectral.chunks as chunks
    import icd_solver_spectral.solve as solve_module

    w, _ = planted_communities(8192, mean_size=50, degree=11, seed=6)
    whole = solve(w)
    monkeypatch.setattr(chunks, "CHUNK_NODES", 2048)
    runs = {}
    for workers in (1, 2):
        monkeypatch.setattr(solve_module, "solver_workers", lambda workers=workers: workers)
        runs[workers] = solve(w)
    one, two = runs[1], runs[2]
    assert one.stats["chunks"] == 4 and (one.stats["workers"], two.stats["workers"]) == (1, 2)
    assert np.array_equal(one.perm, two.perm)
    check_permutation(one.perm, 8192, Constraints(), "test")
    assert one.stats["C"] <= 1.02 * whole.stats["C"]
    monkeypatch.undo()
    monkeypatch.setattr(chunks, "CHUNK_NODES", 2048)
    import icd

    batch = icd.fit_permutation([w, w], time_budget_s=60.0, workers=2)
    assert [stats["workers"] for _, stats in batch] == [1, 1]  # the batch already uses both cores
    assert np.array_equal(batch[0][0], batch[1][0])


def test_solver_workers_follow_the_affinity_and_omp_num_threads(monkeypatch):
    from icd_core.toolkit import solver_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert solver_workers() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a sweep or Ray trial given one core
    assert solver_workers() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert solver_workers() == 3
