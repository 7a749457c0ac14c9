"""Permutation groups of transformer, Mamba and MLP models, with the probes that show their
activity.

Each group lists every (tensor, axis[, slices]) that indexes one hidden dimension, so one
permutation applied to all of them leaves the model's function unchanged. Each also names
its probe: the module input or output whose slice is the group's activity per token (what
the ``activations`` graph source captures).

Rotary embeddings make query/key head dims position-coded: pair i of a head is rotated by
frequency θ_i, so moving a pair to another slot changes every attention score. Llama-family
QK dims are therefore not offered as groups (the V/O dims of each KV head are).
"""

from __future__ import annotations

from typing import Literal

import attrs

from icd_core import KV_TOKENS, GroupMember, PermutationGroup


@attrs.frozen
class Probe:
    """Where a group's per-token activity is read: ``module``'s ``where`` (input/output),
    last axis slice ``[offset, offset + size)``; ``relu``: active means non-zero."""

    module: str
    where: Literal["input", "output"]
    offset: int = 0
    relu: bool = False


@attrs.frozen
class GroupSpec:
    group: PermutationGroup
    probes: tuple[Probe, ...]


def _g(name: str, size: int, kind: str, members: list[GroupMember], probes: list[Probe]) -> GroupSpec:
    return GroupSpec(PermutationGroup(name=name, size=size, members=tuple(members), kind=kind), tuple(probes))


# -- BERT ----------------------------------------------------------------------------------
def bert_groups(n_layers: int, hidden: int, heads: int, intermediate: int, kinds: set[str],
                pooler: bool = True, token_type: bool = True) -> list[GroupSpec]:
    d = hidden // heads
    out: list[GroupSpec] = []
    for layer in range(n_layers):
        p = f"encoder.layer.{layer}"
        if "ffn" in kinds:
            out.append(_g(f"L{layer}.ffn", intermediate, "ffn", [
                GroupMember(f"{p}.intermediate.dense.weight", 0, "out"),
                GroupMember(f"{p}.intermediate.dense.bias", 0),
                GroupMember(f"{p}.output.dense.weight", 1, "in")],
                [Probe(f"{p}.output.dense", "input")]))
        if "heads" in kinds:
            for h in range(heads):
                a = f"{p}.attention.self"
                out.append(_g(f"L{layer}.h{h}.qk", d, "heads", [
                    GroupMember(f"{a}.query.weight", 0, "out", offset=h * d),
                    GroupMember(f"{a}.query.bias", 0, offset=h * d),
                    GroupMember(f"{a}.key.weight", 0, "out", offset=h * d),
                    GroupMember(f"{a}.key.bias", 0, offset=h * d)],
                    [Probe(f"{a}.query", "output", h * d)]))
                out.append(_g(f"L{layer}.h{h}.vo", d, "heads", [
                    GroupMember(f"{a}.value.weight", 0, "out", offset=h * d),
                    GroupMember(f"{a}.value.bias", 0, offset=h * d),
                    GroupMember(f"{p}.attention.output.dense.weight", 1, "in", offset=h * d)],
                    [Probe(f"{a}.value", "output", h * d)]))
    if "hidden" in kinds:
        embeddings = ("word", "position", "token_type") if token_type else ("word", "position")
        members = [GroupMember(f"embeddings.{e}_embeddings.weight", 1, "out") for e in embeddings]
        members += [GroupMember("embeddings.LayerNorm.weight", 0), GroupMember("embeddings.LayerNorm.bias", 0)]
        for layer in range(n_layers):
            p = f"encoder.layer.{layer}"
            members += [GroupMember(f"{p}.attention.self.{x}.weight", 1, "in") for x in ("query", "key", "value")]
            members += [GroupMember(f"{p}.attention.output.dense.weight", 0, "out"),
                        GroupMember(f"{p}.attention.output.dense.bias", 0),
                        GroupMember(f"{p}.attention.output.LayerNorm.weight", 0),
                        GroupMember(f"{p}.attention.output.LayerNorm.bias", 0),
                        GroupMember(f"{p}.intermediate.dense.weight", 1, "in"),
                        GroupMember(f"{p}.output.dense.weight", 0, "out"),
                        GroupMember(f"{p}.output.dense.bias", 0),
                        GroupMember(f"{p}.output.LayerNorm.weight", 0),
                        GroupMember(f"{p}.output.LayerNorm.bias", 0)]
        if pooler:
            members += [GroupMember("pooler.dense.weight", 1, "in"), GroupMember("pooler.dense.weight", 0, "out"),
                        GroupMember("pooler.dense.bias", 0)]
        probes = [Probe(f"encoder.layer.{layer}.attention.self.query", "input") for layer in range(n_layers)]
        out.append(_g("hidden", hidden, "hidden", members, probes))
    return out


# -- Llama (SmolLM2) ------------------------------------------------------------------------
def llama_groups(n_layers: int, hidden: int, heads: int, kv_heads: int, intermediate: int, kinds: set[str],
                 tied: bool, prefix: str = "model", cache: bool = False, head_dim: int | None = None,
                 v_bias: bool = False) -> list[GroupSpec]:
    """``cache``: the state also holds a KV cache (``cache.<layer>.<head>.value`` as batch ×
    tokens × d), whose value dims belong to the V/O groups; ``head_dim`` when it is not
    hidden / heads (Qwen3); ``v_bias``: v_proj has a bias (Qwen2)."""
    d = head_dim or hidden // heads
    per_kv = heads // kv_heads
    out: list[GroupSpec] = []
    for layer in range(n_layers):
        p = f"{prefix}.layers.{layer}"
        if "ffn" in kinds:
            out.append(_g(f"L{layer}.ffn", intermediate, "ffn", [
                GroupMember(f"{p}.mlp.gate_proj.weight", 0, "out"),
                GroupMember(f"{p}.mlp.up_proj.weight", 0, "out"),
                GroupMember(f"{p}.mlp.down_proj.weight", 1, "in")],
                [Probe(f"{p}.mlp.down_proj", "input")]))
        if "heads" in kinds:
            for j in range(kv_heads):  # V/O dims of one KV head and the query heads sharing it
                members = [GroupMember(f"{p}.self_attn.v_proj.weight", 0, "out", offset=j * d)]
                if v_bias:
                    members.append(GroupMember(f"{p}.self_attn.v_proj.bias", 0, offset=j * d))
                members += [GroupMember(f"{p}.self_attn.o_proj.weight", 1, "in", offset=h * d)
                            for h in range(j * per_kv, (j + 1) * per_kv)]
                if cache:
                    members.append(GroupMember(f"cache.{layer}.{j}.value", 2))
                out.append(_g(f"L{layer}.kv{j}.vo", d, "heads", members,
                              [Probe(f"{p}.self_attn.v_proj", "output", j * d)]))
    if "hidden" in kinds:
        members = [GroupMember(f"{prefix}.embed_tokens.weight", 1, "out")]
        for layer in range(n_layers):
            p = f"{prefix}.layers.{layer}"
            members += [GroupMember(f"{p}.input_layernorm.weight", 0),
                        GroupMember(f"{p}.post_attention_layernorm.weight", 0),
                        GroupMember(f"{p}.self_attn.o_proj.weight", 0, "out"),
                        GroupMember(f"{p}.mlp.down_proj.weight", 0, "out")]
            members += [GroupMember(f"{p}.self_attn.{x}_proj.weight", 1, "in") for x in ("q", "k", "v")]
            members += [GroupMember(f"{p}.mlp.{x}_proj.weight", 1, "in") for x in ("gate", "up")]
        members.append(GroupMember(f"{prefix}.norm.weight", 0))
        if not tied:
            members.append(GroupMember("lm_head.weight", 1, "in"))
        probes = [Probe(f"{prefix}.layers.{layer}.self_attn.q_proj", "input") for layer in range(n_layers)]
        out.append(_g("hidden", hidden, "hidden", members, probes))
    return out


def kv_cache_groups(n_layers: int, kv_heads: int, tokens: int) -> list[GroupSpec]:
    """One group per (layer, KV head): the token axis of its cached keys and values
    (``cache.<layer>.<head>.key`` / ``.value``, batch × tokens × d, positions already applied),
    so each head's cache can be laid out in pages of its own."""
    return [_g(f"kv.L{layer}.h{j}", tokens, KV_TOKENS,
               [GroupMember(f"cache.{layer}.{j}.key", 1), GroupMember(f"cache.{layer}.{j}.value", 1)], [])
            for layer in range(n_layers) for j in range(kv_heads)]


# -- Mamba ----------------------------------------------------------------------------------
def mamba_groups(n_layers: int, hidden: int, d_inner: int, d_state: int, dt_rank: int, kinds: set[str],
                 prefix: str = "", lm_head: bool = False) -> list[GroupSpec]:
    """``lm_head``: an untied output head reads the hidden dims too."""
    out: list[GroupSpec] = []
    for layer in range(n_layers):
        m = f"{prefix}layers.{layer}.mixer"
        if "inner" in kinds:
            out.append(_g(f"L{layer}.inner", d_inner, "inner", [
                GroupMember(f"{m}.in_proj.weight", 0, "out", tiles=2, stride=d_inner),  # x and z halves
                GroupMember(f"{m}.conv1d.weight", 0),
                GroupMember(f"{m}.conv1d.bias", 0),
                GroupMember(f"{m}.x_proj.weight", 1, "in"),
                GroupMember(f"{m}.dt_proj.weight", 0, "out"),
                GroupMember(f"{m}.dt_proj.bias", 0),
                GroupMember(f"{m}.A_log", 0),
                GroupMember(f"{m}.D", 0),
                GroupMember(f"{m}.out_proj.weight", 1, "in")],
                [Probe(f"{m}.out_proj", "input")]))
        if "state" in kinds:
            out.append(_g(f"L{layer}.state", d_state, "state", [
                GroupMember(f"{m}.x_proj.weight", 0, "out", offset=dt_rank, tiles=2, stride=d_state),  # B and C rows
                GroupMember(f"{m}.A_log", 1)],
                [Probe(f"{m}.x_proj", "output", dt_rank)]))
    if "hidden" in kinds:
        members = [GroupMember(f"{prefix}embeddings.weight", 1, "out")]
        for layer in range(n_layers):
            m = f"{prefix}layers.{layer}"
            members += [GroupMember(f"{m}.norm.weight", 0), GroupMember(f"{m}.mixer.in_proj.weight", 1, "in"),
                        GroupMember(f"{m}.mixer.out_proj.weight", 0, "out")]
        members.append(GroupMember(f"{prefix}norm_f.weight", 0))
        if lm_head:
            members.append(GroupMember("lm_head.weight", 1, "in"))
        probes = [Probe(f"{prefix}layers.{layer}.mixer.in_proj", "input") for layer in range(n_layers)]
        out.append(_g("hidden", hidden, "hidden", members, probes))
    return out


# -- MLP ------------------------------------------------------------------------------------
def mlp_groups(widths: list[int], kinds: set[str]) -> list[GroupSpec]:
    """Hidden layers of ``fc1 → relu → fc2 → relu → … → fcK``; kind ``ffn``."""
    out = []
    if "ffn" in kinds:
        for i, width in enumerate(widths[1:-1], start=1):
            out.append(_g(f"h{i}", width, "ffn", [
                GroupMember(f"fc{i}.weight", 0, "out"), GroupMember(f"fc{i}.bias", 0),
                GroupMember(f"fc{i + 1}.weight", 1, "in")],
                [Probe(f"fc{i + 1}", "input", relu=True)]))
    return out
