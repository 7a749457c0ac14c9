"""Kernels that read the layout: paged attention over a KV cache, BSR / CSR pruned weights.

Both must compute what the dense model computes (within 1e-5 relative) whenever they read
everything, and say plainly when they cannot run here.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
from icd_workload_hf.kernels import cpu_kernel, kernel_for
from icd_workload_hf.models import load_bert_base
from icd_workload_hf.paged import Summaries, page_scores, pages_for_mass
from icd_workload_hf.plugin import BertBaseOptions

from icd_core import KV_TOKENS, InputDataError, TransformMeta
from icd_core.toolkit import max_rel_diff

from .test_hf_workloads import tiny_llama

KV_KIND = KV_TOKENS


def paged(state, budget, page=4, selector="quest"):
    """``state`` with a page plan applied and the workload reading the cache in pages."""
    groups = [g for g in state.groups if g.kind == KV_KIND]
    selectors = {".".join(map(str, state.workload.kv_head(g.name))): selector for g in groups}
    meta = TransformMeta(adapter="kv", spec="test", details={"kv": {"mode": "pages", "page": page, "budget": budget,
                                                                   "selectors": selectors}})
    state.workload.backend = "paged"
    return state.with_transform({}, meta)


@pytest.fixture(scope="module")
def llama():
    return tiny_llama(("kv",))


def test_paged_attention_over_every_page_is_exact_attention(llama):
    llama.workload.backend = "dense"
    exact = llama.run()
    every = paged(llama, budget=None)
    assert every.workload.kernels(every) == {"attention": "paged over 4-token pages, every page"}
    out = every.run()
    assert max_rel_diff(out.numpy(), exact.numpy()) < 1e-5
    assert every.workload.pages_read() == 8.0  # 32 cached tokens in pages of 4
    rng = np.random.default_rng(0)
    shuffled = every
    for group in (g for g in llama.groups if g.kind == KV_KIND):
        shuffled = shuffled.permuted(group.name, rng.permutation(group.size))
    assert max_rel_diff(shuffled.run().numpy(), exact.numpy()) < 1e-5  # any token order: exact attention
    llama.workload.backend = "dense"


def test_the_gathering_kernel_over_every_page_is_exact_and_reads_the_budget(llama):
    llama.workload.backend = "dense"
    exact = llama.run()
    every = paged(llama, budget=8)  # 32 cached tokens in pages of 4: every page, through the gather
    runtime = every.workload.runtime
    runtime.path = "gather"
    try:
        assert max_rel_diff(every.run().numpy(), exact.numpy()) < 1e-5
        assert runtime.exact_steps == 0 and every.workload.pages_read() == 8.0
    finally:
        runtime.path = "auto"
    every.run()
    assert runtime.exact_steps == 8 * 2  # every decoding step and layer: the budget covers the cache, run exact
    few = paged(llama, budget=1)
    out = few.run()
    assert runtime.exact_steps == 0 and few.workload.pages_read() == 1.0  # one page per KV head, shared by its query heads
    llama.workload.backend = "dense"
    assert 0 < max_rel_diff(out.numpy(), exact.numpy()) < 1.0  # 1 of 8 pages: changed, boundedly


def test_a_partial_last_page_is_exact_through_the_gather():
    state = tiny_llama(("kv",))
    cut = state
    for group in (g for g in state.groups if g.kind == KV_KIND):
        cut = cut.selected(group.name, np.arange(30))  # 30 cached tokens: pages of 4 leave a partial last page
    cut.workload.backend = "dense"
    exact = cut.run()
    every = paged(cut, budget=8)
    every.workload.runtime.path = "gather"
    try:
        assert max_rel_diff(every.run().numpy(), exact.numpy()) < 1e-5
    finally:
        every.workload.runtime.path = "auto"
        cut.workload.backend = "dense"


def test_decoding_appends_in_place_and_never_rebuilds_the_store(llama):
    """One preallocated store per cache: decoding twice reuses it (no copy of the cache per
    decode or per step) and gives the same logits as transformers' own DynamicCache path."""
    from transformers import DynamicCache

    llama.workload.backend = "dense"
    first = llama.run()
    store = llama.workload.store(llama)
    assert store.length == [store.cached + 8] * 2  # 8 decoded tokens appended after the 32 cached
    buffer = store.keys[0].data_ptr()
    second = llama.run()
    assert llama.workload.store(llama) is store and store.keys[0].data_ptr() == buffer
    assert torch.equal(first, second)
    w = llama.workload
    cache = DynamicCache()
    for layer in range(w.layers):
        cache.update(torch.stack([llama.tensors[f"cache.{layer}.{j}.key"] for j in range(w.kv_heads)], 1),
                     torch.stack([llama.tensors[f"cache.{layer}.{j}.value"] for j in range(w.kv_heads)], 1), layer)
    with torch.no_grad():
        ref = w.module(input_ids=w.decode_ids, cache=cache, use_cache=True,
                       position_ids=torch.arange(32, 40)[None]).logits
    assert max_rel_diff(first.numpy(), ref.numpy()) < 1e-5


def test_pages_for_mass_and_selectors_on_a_planted_cache():
    keys = torch.zeros(32, 4)
    keys[8:12, 0] = 5.0  # page 2 holds the keys a query along axis 0 wants
    q = torch.tensor([[1.0, 0, 0, 0]])
    probs = torch.softmax(q @ keys.T, dim=-1)
    summaries = Summaries.of(keys, 4)
    for selector in ("quest", "centroid", "radius"):
        scores = page_scores(q, summaries, selector)
        assert int(scores.argmax()) == 2
        assert pages_for_mass(probs, scores, 4, 0.9) == 1.0
    assert pages_for_mass(probs, -page_scores(q, summaries, "quest"), 4, 0.9) == 8.0  # worst order: every page


@pytest.fixture(scope="module")
def bert():
    state = load_bert_base(BertBaseOptions(layers=1, batch=2, seq=16, groups="ffn"), 0)
    group = state.groups[0]
    name = next(m.tensor for m in group.members if m.role == "in")
    w = state.tensors[name]
    tiles = w.reshape(w.shape[0] // 32, 32, w.shape[1] // 32, 32)
    keep = tiles.abs().sum((1, 3)) > tiles.abs().sum((1, 3)).median()
    pruned = w * keep.repeat_interleave(32, 0).repeat_interleave(32, 1)
    meta = TransformMeta(adapter="sparsity", spec="test", details={"sparsity": {"type": "block", "rate": 0.5, "block": 32}},
                         stats={"tensors": [name]})
    return state.with_transform({name: pruned}, meta), name


def test_bsr_or_csr_execution_equals_the_masked_dense_model(bert):
    state, name = bert
    state.workload.backend = "dense"
    dense = state.run()
    state.workload.backend = "bsr"
    sparse = state.run()
    kernel = state.workload.kernels(state)[name]
    assert kernel.startswith(("bsr 32×32", "csr")) and "ms on 32 tokens" in kernel
    assert max_rel_diff(sparse.numpy(), dense.numpy()) < 1e-5
    state.workload.backend = "dense"


def test_auto_may_keep_dense_and_names_the_timings():
    w = torch.randn(64, 64)
    tensor, note = cpu_kernel(w, {"type": "block", "block": 32}, "auto", 8)
    assert note.split(" (")[0] in ("dense", "csr", "bsr 32×32") and "ms on 8 tokens" in note
    assert tensor.shape == w.shape


def test_kernels_that_cannot_run_here_say_why():
    half = torch.randn(64, 64, dtype=torch.bfloat16)
    with pytest.raises(InputDataError, match=r"^execution.backend bsr: torch's CPU BSR/CSR kernels take float32"):
        cpu_kernel(half, {"type": "block"}, "bsr", 8)
    kept, note = cpu_kernel(half, {"type": "block"}, "auto", 8)
    assert kept is half and note.startswith("dense (auto: torch's CPU BSR/CSR kernels take float32/float64")
    with pytest.raises(InputDataError, match=r"^execution.backend semi: 2:4 semi-structured kernels need CUDA"):
        kernel_for(torch.randn(8, 8), {"type": "2:4"}, "semi", "cpu", 8)


def test_a_context_beyond_the_model_limit_is_one_line():
    from icd_workload_hf.smollm2 import decoder_state
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, vocab_size=50,
                                         max_position_embeddings=64)).eval()
    with pytest.raises(InputDataError, match=r"^smollm2: prompt \+ decode = 80 tokens exceeds the model's context "
                                             r"limit of 64 \(the largest prompt for decode=16 is 48\)$"):
        decoder_state(model, torch.zeros(1, 100, dtype=torch.long), 64, 16, {"kv"}, [])
    assert attrs.has(TransformMeta)


def test_interleaved_states_keep_their_kernels_and_one_structure_gets_one_choice(bert):
    """Timing rounds alternate states: none may convert (or re-time) its weights again, and
    two states with the same sparsity structure run the same kernel."""
    state, name = bert
    other = state.with_transform({}, TransformMeta(adapter="noop", spec="copy", noop=True))
    state.workload.backend = "bsr"
    try:
        first = state.workload.parameters(state)
        second = state.workload.parameters(other)
        assert state.workload.parameters(state) is first and state.workload.parameters(other) is second
        assert state.workload.kernels(state)[name] == state.workload.kernels(other)[name]
    finally:
        state.workload.backend = "dense"
