"""Architectures as data: which tensors of a transformers model index one hidden dimension.

Each :class:`Architecture` maps a family's ``model_type`` values to its loader class and to its
permutation groups, found by **module-name patterns** over the checkpoint's own parameter
names and shapes (the way llm-compressor maps layers by name, not by tracing): layer count and
sizes come from the tensors, so a config with other attribute names changes nothing. A group
lists every (tensor, axis[, slices]) of one dimension — weights, biases, norms, tied
embeddings, a GQA head's query heads — so one permutation leaves the function unchanged; a
pattern that misses a member is caught by the run's π₀ equivalence check before anything is
written.

Other plugins add an architecture with an entry point in the group
``icd_workload_hf.architectures`` whose object is an :class:`Architecture` (or a list of them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from icd_core import GroupMember, InputDataError

from .groups import GroupSpec, Probe, _g, bert_groups, llama_groups, mamba_groups

Shapes = Mapping[str, tuple[int, ...]]
ENTRY_POINT_GROUP = "icd_workload_hf.architectures"


@attrs.frozen
class Member:
    """One tensor of a group, relative to a layer prefix: ``{prefix}.{suffix}`` on ``axis``;
    ``offset`` in units of the group's size times ``slot`` (a head's slice) plus ``base``."""

    suffix: str
    axis: int
    role: Literal["in", "out", "param"] = "param"
    base: int = 0


@attrs.frozen
class LayerPattern:
    """A per-layer group: its tensors under ``layer`` (``{i}`` the layer index), the member
    whose ``axis`` gives the group's size, and the module whose input (or output, at
    ``probe_offset``) is the group's activity; ``relu``: active means non-zero."""

    layer: str
    members: tuple[Member, ...]
    probe: str
    probe_where: Literal["input", "output"] = "input"
    relu: bool = False


@attrs.frozen
class Architecture:
    """A family: its ``model_types``, ``task`` (decoder: next-token quality; encoder: embedding
    fidelity), the transformers ``auto_class`` that loads it, the group ``kinds`` it offers and
    ``groups(config, kinds, shapes)``. ``kv_cache``: icd's KV-cache decode applies (the
    attention interface routes through :mod:`.paged`)."""

    family: str
    model_types: tuple[str, ...]
    task: Literal["decoder", "encoder"]
    auto_class: str
    kinds: tuple[str, ...]
    groups: Callable[[Any, set[str], Shapes], list[GroupSpec]] = attrs.field(eq=False)
    kv_cache: bool = False


def layer_indices(shapes: Shapes, layer: str) -> list[int]:
    """The layer indices present for a ``…{i}…`` prefix pattern."""
    regex = re.compile("^" + re.escape(layer).replace(r"\{i\}", r"(\d+)") + r"\.")
    return sorted({int(m.group(1)) for name in shapes if (m := regex.match(name))})


def pattern_groups(pattern: LayerPattern, shapes: Shapes, kind: str, label: str,
                   heads: int | None = None) -> list[GroupSpec]:
    """One group per layer (``heads``: one per head slice of size axis / heads)."""
    out = []
    for i in layer_indices(shapes, pattern.layer):
        prefix = pattern.layer.format(i=i)
        first = pattern.members[0]
        size = shapes[f"{prefix}.{first.suffix}"][first.axis]
        slots = range(heads) if heads else [None]
        width = size // heads if heads else size
        for slot in slots:
            offset = 0 if slot is None else slot * width
            members = [GroupMember(f"{prefix}.{m.suffix}", m.axis, m.role, offset=m.base + offset)
                       for m in pattern.members if f"{prefix}.{m.suffix}" in shapes]
            name = f"L{i}.{label}" if slot is None else f"L{i}.h{slot}.{label}"
            out.append(_g(name, width, kind, members,
                          [Probe(f"{prefix}.{pattern.probe}", pattern.probe_where, offset + first.base, pattern.relu)]))
    return out


def _heads(config: Any, *names: str) -> int:
    for name in names:
        if getattr(config, name, None):
            return int(getattr(config, name))
    raise InputDataError(f"config.json: none of {', '.join(names)} (the attention head count) is set")


# -- Llama family: llama, mistral, qwen2, qwen3 -----------------------------------------
def _llama(config: Any, kinds: set[str], shapes: Shapes) -> list[GroupSpec]:
    layers = layer_indices(shapes, "model.layers.{i}")
    hidden, intermediate = shapes["model.embed_tokens.weight"][1], shapes["model.layers.0.mlp.up_proj.weight"][0]
    heads = _heads(config, "num_attention_heads")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = shapes["model.layers.0.self_attn.v_proj.weight"][0] // kv_heads
    specs = llama_groups(len(layers), hidden, heads, kv_heads, intermediate, kinds - {"kv"},
                         tied="lm_head.weight" not in shapes, cache="cache.0.0.value" in shapes, head_dim=head_dim,
                         v_bias="model.layers.0.self_attn.v_proj.bias" in shapes)
    return specs


# -- BERT family: bert, roberta (BertModel-shaped), distilbert --------------------------
def _bert(config: Any, kinds: set[str], shapes: Shapes) -> list[GroupSpec]:
    layers = layer_indices(shapes, "encoder.layer.{i}")
    hidden = shapes["embeddings.word_embeddings.weight"][1]
    intermediate = shapes["encoder.layer.0.intermediate.dense.weight"][0]
    return bert_groups(len(layers), hidden, _heads(config, "num_attention_heads"), intermediate, kinds,
                       pooler="pooler.dense.weight" in shapes,
                       token_type="embeddings.token_type_embeddings.weight" in shapes)


DISTILBERT_FFN = LayerPattern("transformer.layer.{i}", (
    Member("ffn.lin1.weight", 0, "out"), Member("ffn.lin1.bias", 0), Member("ffn.lin2.weight", 1, "in")), "ffn.lin2")
DISTILBERT_VO = LayerPattern("transformer.layer.{i}", (
    Member("attention.v_lin.weight", 0, "out"), Member("attention.v_lin.bias", 0),
    Member("attention.out_lin.weight", 1, "in")), "attention.v_lin", "output")


def ffn_and_heads(ffn: LayerPattern, vo: LayerPattern, *head_count: str) -> Callable:
    """The group builder of a family described by its FFN and per-head V/O patterns alone
    (``head_count``: the config attributes that may hold the number of heads)."""
    def build(config: Any, kinds: set[str], shapes: Shapes) -> list[GroupSpec]:
        out = pattern_groups(ffn, shapes, "ffn", "ffn") if "ffn" in kinds else []
        if "heads" in kinds:
            out += pattern_groups(vo, shapes, "heads", "vo", heads=_heads(config, *head_count))
        return out
    return build


# -- GPT-2: Conv1D weights are (in, out) -------------------------------------------------
GPT2_FFN = LayerPattern("transformer.h.{i}", (
    Member("mlp.c_fc.weight", 1, "out"), Member("mlp.c_fc.bias", 0), Member("mlp.c_proj.weight", 0, "in")), "mlp.c_proj")


def _gpt2(config: Any, kinds: set[str], shapes: Shapes) -> list[GroupSpec]:
    out = pattern_groups(GPT2_FFN, shapes, "ffn", "ffn") if "ffn" in kinds else []
    if "heads" in kinds:  # V/O dims of each head: c_attn's V third (columns 2·hidden + h·d), c_proj's rows
        hidden = shapes["transformer.wte.weight"][1]
        vo = LayerPattern("transformer.h.{i}", (
            Member("attn.c_proj.weight", 0, "in"), Member("attn.c_attn.weight", 1, "out", base=2 * hidden),
            Member("attn.c_attn.bias", 0, base=2 * hidden)), "attn.c_proj")
        out += pattern_groups(vo, shapes, "heads", "vo", heads=_heads(config, "n_head", "num_attention_heads"))
    return out


# -- OPT -----------------------------------------------------------------------------------
OPT_FFN = LayerPattern("model.decoder.layers.{i}", (
    Member("fc1.weight", 0, "out"), Member("fc1.bias", 0), Member("fc2.weight", 1, "in")), "fc2", relu=True)
OPT_VO = LayerPattern("model.decoder.layers.{i}", (
    Member("self_attn.v_proj.weight", 0, "out"), Member("self_attn.v_proj.bias", 0),
    Member("self_attn.out_proj.weight", 1, "in")), "self_attn.v_proj", "output")


# -- Mamba -----------------------------------------------------------------------------------
def _mamba(config: Any, kinds: set[str], shapes: Shapes) -> list[GroupSpec]:
    layers = layer_indices(shapes, "backbone.layers.{i}")
    x_proj = shapes["backbone.layers.0.mixer.x_proj.weight"]
    d_inner, d_state = x_proj[1], shapes["backbone.layers.0.mixer.A_log"][1]
    return mamba_groups(len(layers), shapes["backbone.embeddings.weight"][1], d_inner, d_state,
                        x_proj[0] - 2 * d_state, kinds, prefix="backbone.",
                        lm_head="lm_head.weight" in shapes)


BUILTIN = (
    Architecture("llama", ("llama", "mistral", "qwen2", "qwen3"), "decoder", "AutoModelForCausalLM",
                 ("ffn", "heads", "hidden", "kv"), _llama, kv_cache=True),
    Architecture("bert", ("bert", "roberta"), "encoder", "AutoModel", ("ffn", "heads", "hidden"), _bert),
    Architecture("distilbert", ("distilbert",), "encoder", "AutoModel", ("ffn", "heads"),
                 ffn_and_heads(DISTILBERT_FFN, DISTILBERT_VO, "n_heads", "num_attention_heads")),
    Architecture("gpt2", ("gpt2",), "decoder", "AutoModelForCausalLM", ("ffn", "heads"), _gpt2),
    Architecture("opt", ("opt",), "decoder", "AutoModelForCausalLM", ("ffn", "heads"),
                 ffn_and_heads(OPT_FFN, OPT_VO, "num_attention_heads")),
    Architecture("mamba", ("mamba",), "decoder", "AutoModelForCausalLM", ("inner", "state", "hidden"), _mamba),
)


def known() -> dict[str, Architecture]:
    """Every architecture by ``model_type``: the built-in ones, then those of installed plugins."""
    from importlib.metadata import entry_points

    table = {t: a for a in BUILTIN for t in a.model_types}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin names itself, it does not break the others
            raise InputDataError(f"architecture entry point {entry.name!r}: cannot load ({type(exc).__name__}: {exc})") \
                from None
        for arch in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if not isinstance(arch, Architecture):
                raise InputDataError(f"architecture entry point {entry.name!r}: not an Architecture")
            table.update({t: arch for t in arch.model_types})
    return table


def architecture_of(model_type: str | None, where: str) -> Architecture:
    table = known()
    if model_type not in table:
        raise InputDataError(f"{where}: model_type {model_type!r} is not a known architecture "
                             f"(known: {', '.join(sorted(table))})")
    return table[model_type]

