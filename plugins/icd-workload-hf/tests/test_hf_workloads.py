"""Real-model workloads: every group kind is function-preserving, W from activity is real,
bad input gives one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from icd_workload_hf import plugin
from icd_workload_hf.models import load_bert_base, load_mamba, load_minilm, load_mlp
from icd_workload_hf.plugin import (
    BertBaseOptions,
    MambaOptions,
    MiniLMOptions,
    MlpOptions,
)
from icd_workload_hf.smollm2 import decoder_state
from icd_workload_hf.sources import active_sets, key_neighbours, row_top, sparsify

from icd_core import KV_TOKENS, GroupMember, InputDataError, PermutationGroup
from icd_core.testing import (
    Config,
    GraphConfig,
    check_conformance,
    context,
    fresh_manager,
    resolve,
)
from icd_core.toolkit import undo_permutation


def tiny_llama(kinds=("ffn", "heads", "hidden", "kv")):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=120, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 120, (1, 48), generator=gen)
    calibration = [{"input_ids": torch.randint(0, 120, (2, 16), generator=gen),
                    "attention_mask": torch.ones(2, 16, dtype=torch.long)} for _ in range(10)]
    return decoder_state(model, ids, prompt=32, decode=8, kinds=set(kinds), calibration=calibration, name="llama")


STATES = {
    "mlp": lambda: load_mlp(MlpOptions(hidden=(64, 32), tokens=32), 0),
    "bert": lambda: load_bert_base(BertBaseOptions(layers=2, batch=2, seq=16, groups="ffn,heads,hidden"), 0),
    "minilm": lambda: load_minilm(MiniLMOptions(batch=2, seq=16, groups="ffn,heads,hidden", tasks=False), 0),
    "mamba": lambda: load_mamba(MambaOptions(size="tiny", seq=16, groups="inner,state,hidden"), 0),
    "llama": tiny_llama,
}
_cache: dict = {}


def state_of(name):
    if name not in _cache:
        _cache[name] = STATES[name]()
    return _cache[name]


@pytest.mark.parametrize("name", list(STATES))
def test_every_group_kind_is_function_preserving(name):
    state = state_of(name)
    reference = state.run()
    kinds = {g.kind for g in state.groups}
    expected = {"mlp": {"ffn"}, "bert": {"ffn", "heads", "hidden"}, "minilm": {"ffn", "heads", "hidden"},
                "mamba": {"inner", "state", "hidden"}, "llama": {"ffn", "heads", "hidden", KV_TOKENS}}[name]
    assert kinds == expected
    rng = np.random.default_rng(7)
    for kind in sorted(kinds):
        permuted = state
        for group in (g for g in state.groups if g.kind == kind):
            permuted = permuted.permuted(group.name, rng.permutation(group.size))
        assert permuted.digest() != state.digest()
        diff = state.workload.max_rel_diff(permuted.run(), reference)
        assert diff <= 1e-5, f"{name} {kind}: {diff}"


@pytest.mark.parametrize("name", list(STATES))
def test_identity_and_inverse_are_bit_identical(name):
    state = state_of(name)
    for group in state.groups[:3] + state.groups[-2:]:
        assert state.permuted(group.name, np.arange(group.size)).digest() == state.digest()
        perm = np.random.default_rng(3).permutation(group.size)
        back = undo_permutation(group.name, perm)(state.permuted(group.name, perm))
        assert back.digest() == state.digest()
        for tensor in {m.tensor for m in group.members}:
            assert torch.equal(back.tensors[tensor], state.tensors[tensor])


def test_rotary_query_key_pairs_are_not_permutable():
    """Why Llama QK dims are not offered: moving rotary pairs changes attention scores."""
    state = state_of("llama")
    d, half = 16, 8
    pairs = PermutationGroup("L0.kv0.qk", half, (
        GroupMember("model.layers.0.self_attn.k_proj.weight", 0, "out", offset=0, tiles=2, stride=half),
        GroupMember("model.layers.0.self_attn.q_proj.weight", 0, "out", offset=0, tiles=2, stride=half),
        GroupMember("model.layers.0.self_attn.q_proj.weight", 0, "out", offset=d, tiles=2, stride=half)))
    import attrs

    with_pairs = attrs.evolve(state, groups=state.groups + (pairs,),
                              layout={**state.layout, pairs.name: np.arange(half, dtype=np.int32)},
                              constraints={**state.constraints, pairs.name: pairs.constraints})
    moved = with_pairs.permuted(pairs.name, np.roll(np.arange(half), 1))
    assert state.workload.max_rel_diff(moved.run(), state.run()) > 1e-3


def test_activations_w_is_deterministic_and_structured():
    manager = fresh_manager(plugin)
    ctx = context(manager, Config(graph=GraphConfig()))
    source = resolve(manager.registry, "graph", "activations")
    state = load_mlp(MlpOptions(), 0)
    group = state.groups[0]
    first = manager.call("icd_build_w", ctx=ctx, source=source, state=state, group=group)
    again = manager.call("icd_build_w", ctx=ctx, source=source, state=load_mlp(MlpOptions(), 0), group=group)
    assert (first.matrix != again.matrix).nnz == 0
    assert first.matrix.shape == (512, 512) and abs(first.matrix - first.matrix.T).max() == 0
    assert first.meta["tokens"] == 4 * 256 and len(first.access_groups) == 4 * 256
    assert first.matrix.nnz <= 2 * 32 * 512 and first.matrix.getnnz(axis=1).min() >= 1  # top-32 per row, symmetrised


def test_mlp_layout_cuts_lines_on_held_out_tokens():
    from icd_solver_spectral.solve import fit_spectral

    from icd_core import Constraints
    from icd_core.toolkit import Deadline, lines_per_access

    manager = fresh_manager(plugin)
    ctx = context(manager)
    state = load_mlp(MlpOptions(), 0)
    group = state.groups[0]
    w = manager.call("icd_build_w", ctx=ctx, source=resolve(manager.registry, "graph", "activations"),
                                    state=state, group=group)
    fit = fit_spectral(w, Constraints(), Deadline(30), 0)
    held = state.workload
    acts = torch.cat([held.module.fc1(b["input"]) for b in held.heldout]).detach().numpy()
    incidence = active_sets(acts, relu=True, top_frac=0.1)
    accesses = [incidence.indices[incidence.indptr[i]:incidence.indptr[i + 1]] for i in range(incidence.shape[0])]
    ours = lines_per_access(accesses, fit.perm, 16)
    shuffled = lines_per_access(accesses, np.random.default_rng(0).permutation(group.size), 16)
    assert ours < 0.4 * shuffled


def test_mask_source_counts_shared_output_rows():
    manager = fresh_manager(plugin)
    state = load_mlp(MlpOptions(hidden=(32, 16), tokens=8), 0)
    group = state.groups[0]
    w2 = state.tensors["fc2.weight"].clone()
    w2[:, 0] = 0  # dim 0 is read by no output row after "pruning"
    w2[8:, 1] = 0  # dim 1 only by rows 0..7
    pruned = state.with_tensors({"fc2.weight": w2})
    w = manager.call("icd_build_w", ctx=context(manager), source=resolve(manager.registry, "graph", "mask"),
                                    state=pruned, group=group)
    dense = w.matrix.toarray()
    assert dense[0].sum() == 0 and dense[1].max() == 8 and w.meta["source"] == "mask"


def test_kv_source_and_eviction_on_a_decoder():
    from icd_adapter_kv import plugin as kv_plugin

    manager = fresh_manager(plugin, kv_plugin)
    state = state_of("llama")
    group = next(g for g in state.groups if g.kind == KV_TOKENS)
    w = manager.call("icd_build_w", ctx=context(manager), source=resolve(manager.registry, "graph", "kv"),
                                    state=state, group=group)
    # one group per (layer, KV head): its 2 query heads × the 32 prompt positions captured at prefill
    # make W; its 2 query heads × 8 decoding steps are held out
    assert group.name == "kv.L0.h0" and len([g for g in state.groups if g.kind == KV_TOKENS]) == 2 * 2
    assert w.matrix.shape == (32, 32) and w.meta["queries"] == 2 * 32 and w.matrix.nnz > 0
    assert w.meta["heldout_queries"] == 2 * 8 and len(w.heldout) == 16
    result = manager.call("icd_apply_transform", ctx=context(manager), adapter=resolve(manager.registry, "adapter",
                                                                                       "kv:8:0.5"),
                                                 state=state, layout=state.layout_for({}))
    assert all(s["tokens_after"] == 24 for s in result.meta.stats.values()) and len(result.meta.stats) == 4
    assert result.state.tensors["cache.1.1.key"].shape == (1, 24, 16)
    figures = state.workload.quality(result.state, result.state.run(), state.run())
    assert 0 < figures["kl_nats"].value < 5 and figures["perplexity"].value > 1


def test_the_sparse_kv_graph_equals_its_dense_definition(monkeypatch):
    """row_top (blocks of rows, torch.topk) keeps what sparsify keeps of the dense matrix, and
    key_neighbours' blocked cosine kNN is the dense one; the blocks are made small so that
    several meet."""
    from icd_workload_hf import sources

    monkeypatch.setattr(sources, "ROW_BLOCK", 64)
    rng = np.random.default_rng(3)
    n = 200
    dense = np.triu(rng.random((n, n)) * (rng.random((n, n)) < 0.2), 1)
    dense = (dense + dense.T).astype(np.float32)  # distinct values: no ties to break
    import scipy.sparse as sp

    assert (row_top(sp.csr_matrix(dense), 8) != sparsify(dense, 8)).nnz == 0
    keys = rng.standard_normal((n, 16)).astype(np.float32)
    unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :4]
    expected = np.zeros((n, n), dtype=np.float32)
    expected[np.repeat(np.arange(n), 4), nearest.ravel()] = 0.5
    expected = np.maximum(expected, expected.T)
    assert np.array_equal(key_neighbours(keys, 4, 0.5).toarray(), expected)


def test_minilm_reproduces_the_reference_task_scores():
    state = load_minilm(MiniLMOptions(), 0)
    figures = state.workload.quality(state, state.run(), state.run())
    assert figures["lee_pearson_pct"].value == pytest.approx(65.6, abs=1.0)
    assert figures["wordsim_spearman_pct"].value == pytest.approx(72.9, abs=1.0)
    assert figures["simlex_spearman_pct"].value == pytest.approx(44.6, abs=1.0)
    assert figures["polarity_acc_pct"].value == pytest.approx(74.0, abs=3.0)
    assert figures["embedding_cosine_pct"].value == pytest.approx(100.0)


def test_bad_input_gives_one_line(tmp_path):
    with pytest.raises(InputDataError, match=r"^model_path .*nope: no such directory$"):
        load_minilm(MiniLMOptions(model_path=str(tmp_path / "nope")), 0)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(InputDataError, match=r"a 'mamba' model, expected 'bert'$"):
        load_minilm(MiniLMOptions(model_path=str(tmp_path / "m")), 0)
    empty = tmp_path / "calib.txt"
    empty.write_text("\n  \n")
    with pytest.raises(InputDataError, match=r"calib.txt: empty calibration file"):
        load_minilm(MiniLMOptions(calibration=str(empty), tasks=False), 0)
    with pytest.raises(InputDataError, match=r"^minilm.groups: \['ffm'\] not among ffn, heads, hidden$"):
        load_minilm(MiniLMOptions(groups="ffm", tasks=False), 0)


def test_plugin_conforms():
    manager = fresh_manager(plugin)
    assert check_conformance(manager, plugin) == []
    assert {"mlp", "minilm", "bert-base", "mamba", "smollm2"} <= set(manager.registry.names("workload"))
    assert {"activations", "mask", "kv"} <= set(manager.registry.names("graph"))


@pytest.mark.parametrize("name", ["mlp", "bert"])
def test_one_seed_builds_one_model(name):
    """Every initial weight is drawn under the seed: two builds are bit-identical whatever
    the global torch generator did in between."""
    first = STATES[name]()
    torch.randn(1000)
    assert STATES[name]().digest() == first.digest()


def test_the_workloads_declare_their_optional_abilities():
    """The core asks isinstance(workload, Ability): a member renamed or dropped would silently
    switch a feature off (MiniLM's rate metric, a decoder's paged attention)."""
    import icd_core as core

    common = ("SuggestsGraphSource", "SuggestsMeasurement", "SuggestsTolerance", "ReportsKernels", "CapturesActivations")
    minilm = state_of("minilm").workload
    assert [a for a in (*common, "SuggestsRate") if not isinstance(minilm, getattr(core, a))] == []
    assert minilm.rate_metric == "task_fidelity_pct" and minilm.rate_limit is None
    decoder = state_of("llama").workload
    decoder_abilities = (*common, "SuggestsRate", "TimesRegions", "PlansPages", "ReportsAttentionMass", "ReplaysKvAccesses")
    assert [a for a in decoder_abilities if not isinstance(decoder, getattr(core, a))] == []


@pytest.mark.parametrize("extreme", [-8, 7])
def test_the_compressed_export_reads_a_symmetric_scale_back_whichever_end_the_extreme_took(extreme):
    """Symmetric int4 with scale max|w| / 7.5 puts a group's extreme on −8 (negative) or, clipped,
    on +7 (positive); the scale read back from the dequantised values is exact either way."""
    import torch
    from icd_workload_hf.compressed import symmetric_scale

    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(-7, 7, (6, 4, 16), generator=gen).double()
    levels[..., 3] = extreme  # one extreme per group
    scale = torch.rand(6, 4, generator=gen, dtype=torch.float64) + 0.1
    got = symmetric_scale(levels * scale[..., None], -8, 7)
    assert torch.allclose(got, scale, rtol=1e-12)
