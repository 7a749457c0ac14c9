"""KV block eviction: which blocks go, attention on the kept cache, no-op without a cache."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest
from icd_adapter_kv import plugin
from icd_adapter_kv.eviction import blocks_to_keep

from icd_core import KV_TOKENS, Figure, GroupMember, ModelState, PermutationGroup
from icd_core.testing import (
    MockOptions,
    build_mock_state,
    check_conformance,
    context,
    fresh_manager,
    resolve,
)
from icd_core.toolkit import max_rel_diff, output_quality


@attrs.define
class OneQueryAttention:
    """softmax(q·Kᵀ/√d)·V over a cached K, V (token axis = the kv group)."""

    q: np.ndarray
    name: str = "attn"
    device: str = "cpu"
    primary_quality: str = "cosine_pct"
    tokens: int = 1

    def forward(self, state: Any) -> np.ndarray:
        k, v = state.tensors["k_cache"], state.tensors["v_cache"]
        scores = k @ self.q / np.sqrt(k.shape[1])
        p = np.exp(scores - scores.max())
        return (p / p.sum()) @ v

    def quality(self, state: Any, output: Any, reference: Any) -> dict[str, Figure]:
        return output_quality(output, reference)

    def max_rel_diff(self, output: Any, reference: Any) -> float:
        return max_rel_diff(output, reference)


@pytest.fixture(scope="module")
def manager():
    return fresh_manager(plugin)


def cache_state(tokens=512, d=32):
    rng = np.random.default_rng(0)
    k = rng.standard_normal((tokens, d)).astype(np.float32)
    k[64:128] *= 0.05  # a quiet block: small keys, little attention
    v = rng.standard_normal((tokens, d)).astype(np.float32)
    group = PermutationGroup("kv.tokens", tokens, (GroupMember("k_cache", 0), GroupMember("v_cache", 0)),
                             kind=KV_TOKENS)
    return ModelState.initial(OneQueryAttention(q=rng.standard_normal(d).astype(np.float32)),
                              {"k_cache": k, "v_cache": v}, (group,))


def apply(manager, spec, state):
    return manager.call("icd_apply_transform", ctx=context(manager), adapter=resolve(manager.registry, "adapter", spec),
                                               state=state, layout=state.layout_for({}))


def test_blocks_to_keep_protects_sinks_and_recent():
    norms = np.array([0.0] * 4 + [5.0] * 4 + [1.0] * 4 + [0.5] * 4 + [0.1] * 4)
    assert blocks_to_keep(norms, 4, 0.34, sinks=1, recent=1).tolist() == [0, 1, 2, 4]
    assert blocks_to_keep(norms, 4, 0.0, 1, 1).tolist() == [0, 1, 2, 3, 4]
    assert blocks_to_keep(norms, 4, 0.99, 1, 1).tolist() == [0, 1, 4]  # floor(0.99·3) = 2 dropped


def test_eviction_drops_the_quiet_block(manager):
    state = cache_state()
    result = apply(manager, "kv:64:0.2", state)
    kept = result.state.layout["kv.tokens"]
    assert result.meta.stats["kv.tokens"] == {"tokens_before": 512, "tokens_after": 448, "blocks_dropped": 1}
    assert not np.isin(np.arange(64, 128), kept).any()
    assert result.state.tensors["k_cache"].shape == (448, 32)
    assert output_quality(result.state.run(), state.run())["cosine_pct"].value > 99.0
    assert result.meta.details["kv"] == {"mode": "evict", "block": 64, "drop": 0.2, "score": "key_norm"}


def test_no_cache_is_a_recorded_noop(manager):
    state = build_mock_state(MockOptions(hidden=16, d_in=4, d_out=4, tokens=2), np.random.default_rng(0))
    result = apply(manager, "kv:128:0.1", state)
    assert result.meta.noop and result.meta.reason == "workload 'mock' has no KV-cache group (kind 'kv_tokens')"


def test_grouped_quant_with_reorder_beats_no_reorder():
    from icd_adapter_kv.quant import grouped, kivi, relative_error

    from icd_core.toolkit import cluster_order

    rng = np.random.default_rng(0)
    keys = rng.standard_normal((256, 64)) * rng.choice([0.1, 1.0, 6.0], size=64) + rng.standard_normal(64) * 3
    plain = relative_error(grouped(keys, 2, 16, None), keys)
    ordered = relative_error(grouped(keys, 2, 16, cluster_order(keys, 16, 0)), keys)
    assert ordered < plain
    assert relative_error(kivi(keys, 8, key=True), keys) < 0.01


def test_kv_quant_on_a_cache_and_specs(manager):
    state = cache_state()
    result = apply(manager, "kv:quant:4", state)
    assert result.meta.details["kv"]["bits"] == 4 and result.meta.details["kv"]["scheme"] == "grouped"
    assert 0 < result.meta.stats["key_rel_error"] < 0.2 and result.state.tensors["k_cache"].shape == (512, 32)
    assert output_quality(result.state.run(), state.run())["cosine_pct"].value > 99.0
    kivi_result = apply(manager, "kv:quant:2:kivi", state)
    assert kivi_result.meta.details["kv"]["scheme"] == "kivi" and kivi_result.meta.details["kv"]["group"] is None
    from icd_core import ConfigError

    for spec, message in (("kv:0:0.1", "kv.block: must be > 0 (got 0)"),
                          ("kv:quant:5", "kv: bits must be 2, 3, 4 or 8 (got 5)"),
                          ("kv:64:1.5", "kv.drop: must be between 0.0 and 0.99 (got 1.5)")):
        with pytest.raises(ConfigError) as err:
            resolve(manager.registry, "adapter", spec)
        assert str(err.value) == message


def test_conforms(manager):
    assert check_conformance(manager, plugin) == []


@pytest.mark.parametrize("spec,line", [
    ("kv:pages:16:40", "adapter kv: budget 40 is more than the 32 pages of 16 tokens in the cache (512 tokens): "
                       "give at most 32, auto or none"),
    ("kv:pages:1024:auto", "adapter kv: page 1024 is longer than the 512 cached tokens (give a page of at most "
                           "512 tokens)"),
])
def test_page_options_beyond_the_cache_are_one_line_before_any_work(manager, spec, line):
    from icd_core import ConfigError

    state = cache_state()
    with pytest.raises(ConfigError) as raised:
        resolve(manager.registry, "adapter", spec).options.check_state(state)
    assert str(raised.value) == line
    resolve(manager.registry, "adapter", "kv:pages:16:32").options.check_state(state)  # every page: fine
