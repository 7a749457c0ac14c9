"""Sparsity: masks, the efficacy search (Apex reference), equivalence under π, tiles, specs."""

from __future__ import annotations

import numpy as np
import pytest
from icd_adapter_sparsity import plugin
from icd_adapter_sparsity.efficacy import kept, row_bound, search
from icd_adapter_sparsity.nm import block_mask, magnitude_mask, nm_mask, nonzero_tiles

from icd_core import ConfigError, GroupMember, ModelState, PermutationGroup
from icd_core.testing import (
    MockOptions,
    build_mock_state,
    check_conformance,
    context,
    fresh_manager,
    resolve,
)
from icd_core.toolkit import inverse


@pytest.fixture(scope="module")
def manager():
    return fresh_manager(plugin)


def mock(hidden=64, seed=0):
    return build_mock_state(MockOptions(hidden=hidden, d_in=16, d_out=8, tokens=6), np.random.default_rng(seed))


def apply(manager, spec, state):
    adapter = resolve(manager.registry, "adapter", spec)
    return manager.call("icd_apply_transform", ctx=context(manager), adapter=adapter, state=state,
                                               layout=state.layout_for({"mlp.hidden": 16}))


def test_apex_reference_numbers_and_efficacy_target():
    np.random.seed(1)
    w = np.random.rand(128, 64)
    assert w.sum() == pytest.approx(4083.169, abs=1e-3)
    assert kept(w, np.arange(64), 2, 4) == pytest.approx(2852.377, abs=1e-3)
    assert row_bound(w, 2, 4) == pytest.approx(3042.332, abs=1e-3)
    perm, stats = search(w, 2, 4, budget_s=600, seed=0)
    assert sorted(perm) == list(range(64)) and not stats["timed_out"] and not stats["work_cut"]
    assert stats["efficacy_pct"] >= 35.5  # Apex OSG(8)
    assert kept(w, perm, 2, 4) == pytest.approx(stats["kept"])


def test_search_never_does_worse_than_identity_and_blocks_stay_put():
    w = np.random.default_rng(3).standard_normal((48, 128))
    perm, stats = search(w, 2, 4, budget_s=600, seed=0, blocks=16)
    assert stats["kept"] >= stats["kept_default"]
    assert np.array_equal(np.sort(perm.reshape(-1, 16), axis=1), np.arange(128).reshape(-1, 16))


def test_a_search_cut_by_its_work_budget_gives_one_answer_whatever_the_load():
    """The work budget counts pair-gain evaluations, so where it ends the search does not
    depend on how fast the machine ran: the same order under a busy loop as alone."""
    import threading

    w = np.abs(np.random.default_rng(5).standard_normal((256, 256)))
    quiet, stats = search(w, 2, 4, budget_s=600, seed=0, work=2e7)
    assert stats["work_cut"] and not stats["timed_out"] and stats["work"] <= 2e7
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(10_000))

    spinners = [threading.Thread(target=busy) for _ in range(2)]
    for t in spinners:
        t.start()
    try:
        loaded, again = search(w, 2, 4, budget_s=600, seed=0, work=2e7)
    finally:
        stop.set()
        for t in spinners:
            t.join()
    assert np.array_equal(quiet, loaded) and again["work"] == stats["work"]
    _, unbounded = search(w, 2, 4, budget_s=600, seed=0)
    assert unbounded["kept"] >= stats["kept"] and not unbounded["work_cut"]


def test_masks():
    w = np.array([[4.0, -5.0, 1.0, 0.5, 0.0, 0.0, -1.0, 2.0]])
    assert nm_mask(w, 1, 2, 4).tolist() == [[True, True, False, False, False, False, True, True]]
    assert magnitude_mask(np.abs(w), 0.5).sum() == 4
    score = np.zeros((4, 4))
    score[:2, :2] = 1
    assert block_mask(score, 2, 0.75).tolist() == [[True, True, False, False], [True, True, False, False],
                                                   [False] * 4, [False] * 4]
    assert nonzero_tiles(score, 2) == 1


def test_nm_transform_is_the_transform_of_the_permuted_model(manager):
    state = mock()
    result = apply(manager, "sparsity:2:4", state)
    w2 = result.state.tensors["mlp.fc2.weight"]
    assert ((w2.reshape(8, 16, 4) != 0).sum(axis=-1) == 2).all()  # exactly 2:4 in memory order
    layout = result.state.layout["mlp.hidden"]
    assert sorted(layout) == list(range(64)) and not np.array_equal(layout, np.arange(64))
    # equivalence: the same mask mapped back onto the unpermuted model gives the same outputs
    original_mask = (w2 != 0)[:, inverse(layout)]
    unpermuted = state.with_tensors({"mlp.fc2.weight": np.where(original_mask, state.tensors["mlp.fc2.weight"], 0)})
    assert np.max(np.abs(unpermuted.run() - result.state.run())) < 1e-5
    stats = result.meta.stats["groups"]["mlp.hidden"]
    assert stats["kept"] >= stats["kept_default"] and stats["efficacy_pct"] >= 0
    assert result.meta.constraints["mlp.hidden"].supernode == 4 and result.meta.w_source is None
    assert result.meta.stats["tensors"] == ["mlp.fc2.weight"]  # what a CUDA run would put on a sparse kernel
    assert (state.tensors["mlp.fc2.weight"] != 0).all()  # the input state is untouched


def test_unstructured_and_block_modes(manager):
    state = mock(hidden=128)
    result = apply(manager, "sparsity:unstructured:0.75", state)
    density = (result.state.tensors["mlp.fc2.weight"] != 0).mean()
    assert density == pytest.approx(0.25, abs=0.01)
    assert result.meta.w_source == "mask" and result.meta.constraints == {}
    block = apply(manager, "sparsity:block:4:0.5", state)
    w = block.state.tensors["mlp.fc2.weight"]
    tiles = (np.abs(w).reshape(2, 4, 32, 4).sum(axis=(1, 3)) > 0)
    assert tiles.sum() == 32  # half of the 64 tiles survive, whole
    stats = block.meta.stats["groups"]["mlp.hidden"]
    assert stats["kept"] >= stats["kept_identity"]  # TETRIS-style ordering keeps at least as much


def test_not_divisible_is_a_recorded_noop(manager):
    state = build_mock_state(MockOptions(hidden=30, d_in=8, d_out=4, tokens=2), np.random.default_rng(0))
    result = apply(manager, "sparsity:2:4", state)
    assert result.meta.noop and result.meta.reason == "group sizes not divisible: mlp.fc2.weight (input width 30 not a multiple of 4)"
    assert result.state is state


def test_wanda_without_activations_falls_back_with_a_note(manager):
    result = apply(manager, "sparsity:2:4:score=wanda", mock())
    assert "no activations to weight by; used the weights alone" in result.meta.stats["notes"][0]


@pytest.mark.parametrize("spec,message", [
    ("sparsity:4:2", "sparsity: n (4) must be < m (2)"),
    ("sparsity:5:4", "sparsity: n (5) must be < m (4)"),
    ("sparsity:unstructured:1.5", "sparsity: rate must be in [0, 1) or auto (got 1.5)"),
    ("sparsity:block:64:1", "sparsity: rate must be in [0, 1) or auto (got 1)"),
    ("sparsity:2:4:rate=auto", "sparsity: N:M has no rate to search (the rate is 1 − n/m); use "
                               "sparsity:unstructured:auto or sparsity:block:<tile>:auto"),
    ("sparsity:unstructured", "sparsity: expected sparsity:unstructured:<rate>"),
    ("sparsity:2:4:permute=all", "sparsity.permute: must be one of 'global', 'blocks', 'none' (got 'all')"),
])
def test_bad_specs(manager, spec, message):
    with pytest.raises(ConfigError) as err:
        resolve(manager.registry, "adapter", spec)
    assert str(err.value) == message


def test_tiles_measure(manager):
    state = mock(hidden=128)
    dense = manager.call("icd_measure", ctx=context(manager), measure=resolve(manager.registry, "measure", "tiles"),
                                        state=state)
    assert dense["tiles32"].value == 4 and dense["weight_density"].value == 1.0  # 8×128 weight: 1×4 tiles of 32
    pruned = apply(manager, "sparsity:block:32:0.5", state).state
    after = manager.call("icd_measure", ctx=context(manager), measure=resolve(manager.registry, "measure", "tiles"),
                                        state=pruned)
    assert after["tiles32"].value == 2 and after["tiles32"].source == "computed:tiles"


def test_conforms(manager):
    assert check_conformance(manager, plugin) == []


def test_ria_score_follows_the_paper_and_moves_with_its_channel():
    from icd_adapter_sparsity.scores import importance

    rng = np.random.default_rng(0)
    w, norms = rng.standard_normal((6, 8)), rng.uniform(0.5, 2.0, 8)
    expected = np.empty_like(w)  # RI_ij = |w_ij| / Σ_k |w_ik| + |w_ij| / Σ_k |w_kj|, times ‖x_j‖^0.5
    for i in range(6):
        for j in range(8):
            expected[i, j] = (abs(w[i, j]) / np.abs(w[i]).sum() + abs(w[i, j]) / np.abs(w[:, j]).sum()) * norms[j] ** 0.5
    assert np.allclose(importance(w, 1, "ria", norms), expected)
    assert np.allclose(importance(w.T, 0, "ria", norms), expected.T)  # input channels along axis 0
    perm = rng.permutation(8)
    assert np.allclose(importance(w[:, perm], 1, "ria", norms[perm]), expected[:, perm])


def test_ria_prunes_two_of_four_and_searches_the_same_score(manager):
    result = apply(manager, "sparsity:2:4:score=ria", mock())
    assert result.meta.details["sparsity"]["score"] == "ria" and result.meta.details["sparsity"]["type"] == "2:4"
    stats = result.meta.stats["groups"]["mlp.hidden"]
    assert stats["kept"] >= stats["kept_default"] and stats["efficacy_pct"] > 0


def _heads(state, offsets, size):
    """The mock's hidden dim cut into head-like groups: slices of one shared axis."""
    groups = tuple(PermutationGroup(f"head{k}", size, (GroupMember("mlp.fc1.weight", 0, "out", offset=o),
                                                       GroupMember("mlp.fc1.bias", 0, "param", offset=o),
                                                       GroupMember("mlp.fc2.weight", 1, "in", offset=o)))
                   for k, o in enumerate(offsets))
    return ModelState.initial(state.workload, state.tensors, groups)


@pytest.mark.parametrize("spec", ["sparsity:2:4", "sparsity:2:4:score=ria", "sparsity:unstructured:0.5"])
def test_groups_that_are_slices_of_a_shared_axis(manager, spec):
    """Attention heads are groups over slices of one tensor axis: each group searches and prunes its
    own slice, and the pruned model is the pruned unpermuted model, permuted."""
    base = mock()
    state = _heads(base, (0, 32), 32)
    result = apply_any(manager, spec, state, {"head0": 16, "head1": 16})
    assert not result.meta.noop
    w2 = result.state.tensors["mlp.fc2.weight"]
    if "2:4" in spec:
        assert ((w2.reshape(8, 16, 4) != 0).sum(axis=-1) == 2).all()
    else:
        assert (w2 != 0).mean() == pytest.approx(0.5, abs=0.02)
    whole = np.concatenate([result.state.layout["head0"], 32 + result.state.layout["head1"]])
    original_mask = (w2 != 0)[:, inverse(whole)]
    unpermuted = base.with_tensors({"mlp.fc2.weight": np.where(original_mask, base.tensors["mlp.fc2.weight"], 0)})
    assert np.max(np.abs(unpermuted.run() - result.state.run())) < 1e-5


def test_nm_leaves_out_a_slice_off_the_kernel_grid(manager):
    state = _heads(mock(), (0, 34), 28)
    result = apply_any(manager, "sparsity:2:4", state, {"head0": 4, "head1": 4})
    assert "head1 (a slice starts off a multiple of 4)" in result.meta.stats["skipped_groups"]
    w2 = result.state.tensors["mlp.fc2.weight"]
    assert ((w2[:, :28].reshape(8, 7, 4) != 0).sum(axis=-1) == 2).all() and (w2[:, 28:] != 0).all()


def apply_any(manager, spec, state, blocks):
    adapter = resolve(manager.registry, "adapter", spec)
    return manager.call("icd_apply_transform", ctx=context(manager), adapter=adapter, state=state,
                                               layout=state.layout_for(blocks))
