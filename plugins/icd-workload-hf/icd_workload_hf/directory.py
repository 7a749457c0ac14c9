"""``icd run --model DIR``: any local transformers checkpoint whose architecture icd knows.

The directory is checked before anything is built (:mod:`.preflight`: bounded config and
tokenizer files, shards inside it, config.json's numbers against the checkpoint's headers, the
user's text files, sequence lengths within the model's positions); groups come from
:mod:`.architectures`. Decoders are judged by next-token quality
(a Llama-family decoder decodes against its KV cache, as SmolLM2 does), encoders by embedding
fidelity. Calibration text (W, page layouts) and evaluation text (the judged batch and the
decoded continuation) are the user's files when given, else disjoint parts of gensim's news
corpus. Without tokenizer files seeded token ids stand in for text, and the run says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from icd_core import Figure, InputDataError, ModelState

from .architectures import Architecture, architecture_of
from .corpus import HELDOUT_CORPUS, calibration_texts, decoder_texts
from .heldout import heldout_figures
from .kernels import check_backend
from .models import (
    CALIBRATION,
    HELDOUT,
    MiniLMWorkload,
    finish,
    kinds_of,
    place,
    quiet_transformers,
    random_ids,
    safe_pretrained,
    safe_tokenizer,
    text_batches,
    tolerance,
)
from .plugin import ModelOptions
from .preflight import check_directory, check_positions, check_tokenizer_files, has_tokenizer
from .torchmodel import TorchWorkload


def load_pretrained(arch: Architecture, path: Path) -> Any:
    import transformers

    quiet_transformers()
    return safe_pretrained(getattr(transformers, arch.auto_class), path, "model", dtype=torch.float32)


@attrs.define(eq=False)
class CausalLMWorkload(TorchWorkload):
    """A decoder judged on its next-token distributions over the judged batch (calibration-side
    text): KL and top-1 agreement vs the unmodified model per token; perplexity on held-out text
    (``heldout_ids``) that decides nothing."""

    rate_metric: str = "kl_nats"
    rate_limit: float = 0.005
    primary_quality: str = "top1_agree_pct"
    heldout_ids: torch.Tensor | None = None
    heldout_corpus: str = ""

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict[str, Figure]:
        from .smollm2 import next_token_figures

        targets = self.batch["input_ids"][:, 1:]
        figures = super().quality(state, output, reference)
        figures.update(next_token_figures(output[:, :-1].float(), reference[:, :-1].float(), targets,
                                          "measured:judged-batch"))
        figures.update(heldout_figures(self, state))
        return figures


def token_windows(tokenizer: Any, texts: list[str], batch: int, seq: int, count: int) -> list[dict]:
    """``count`` batches of ``batch`` consecutive ``seq``-token windows of the texts (no padding)."""
    ids = tokenizer("\n".join(texts), return_tensors="pt")["input_ids"][0]
    need = count * batch * seq
    if ids.numel() < need:
        ids = ids.repeat(need // max(ids.numel(), 1) + 1)
    windows = ids[:need].reshape(count, batch, seq)
    return [{"input_ids": w.clone()} for w in windows]


def _texts(options: ModelOptions, decoder: bool) -> tuple[list[str], list[str]]:
    """(calibration, evaluation) passages: the user's files, else disjoint parts of the news
    corpus (decoders: the split whose evaluation part is held out for perplexity)."""
    if options.calibration and not options.evaluation:
        raise InputDataError("model.evaluation: give an evaluation file beside model.calibration "
                             "(the judged text must not be the calibration text)")
    if decoder:
        calibration, evaluation = decoder_texts()
    else:
        lines = calibration_texts(None)
        calibration, evaluation = lines[:len(lines) // 2], lines[len(lines) // 2:]
    return (calibration_texts(options.calibration) if options.calibration else calibration,
            calibration_texts(options.evaluation, "evaluation file") if options.evaluation else evaluation)


def _heldout(workload: Any, tokenizer: Any, evaluation: list[str], options: ModelOptions) -> None:
    """Held-out perplexity text for a decoder (none without a tokenizer: random ids have no language)."""
    from .smollm2 import heldout_ids

    if tokenizer is not None:
        workload.heldout_ids = heldout_ids(tokenizer, evaluation, options.heldout)
        workload.heldout_corpus = options.evaluation or HELDOUT_CORPUS


def default_kinds(arch: Architecture) -> set[str]:
    """``groups=auto``: every kind the architecture offers, so every Linear's input is grouped —
    but ``kv`` (a KV cache's token axis: what KV adapters read) and an encoder's ``hidden``
    (its output, the hidden states, would come out in permuted order)."""
    return set(arch.kinds) - {"kv"} - ({"hidden"} if arch.task == "encoder" else set())


def load_model_directory(options: ModelOptions, seed: int, backend: str, warn: Any) -> ModelState:
    path, raw_config = check_directory(options.path)
    arch = architecture_of(raw_config.get("model_type"), f"model {path}")
    kinds = default_kinds(arch) if options.groups == "auto" else \
        kinds_of(options.groups, set(arch.kinds), f"model ({raw_config.get('model_type')})")
    name = str(raw_config.get("model_type"))
    kv_decode = arch.kv_cache and options.device == "cpu"  # decoders of the Llama family keep a KV cache
    check_backend(backend, options.device, kv_decode, f"model ({name})")
    lengths = {"prompt + decode": options.prompt + options.decode} if kv_decode else {"seq": options.seq}
    check_positions(raw_config, lengths, "model")
    if "kv" in kinds and not kv_decode:
        raise InputDataError(f"model ({name}).groups: kv needs icd's KV-cache decode (CPU, Llama family)")
    texts = _texts(options, decoder=arch.task != "encoder")  # the user's files are read before the model
    check_tokenizer_files(path)
    module = load_pretrained(arch, path)
    tokenizer = None
    if has_tokenizer(path):
        tokenizer = safe_tokenizer(path, "model")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    else:
        warn(f"model {path}: no tokenizer files — seeded random token ids stand in for text "
             f"(quality is fidelity on random ids, not on language)")
    if kv_decode:
        return _kv_decoder(module, tokenizer, texts, options, seed, backend, kinds, name, path)
    state = _batched(arch, module, tokenizer, texts, options, seed, kinds, name, path)
    state.workload.backend = backend  # bsr / auto: the pruned weights run through sparse kernels
    return state


def _ids(tokenizer: Any, module: Any, texts: list[str], options: ModelOptions, seed: int, count: int,
         encoder: bool) -> list[dict]:
    if tokenizer is None:
        return random_ids(module.config.vocab_size, options.batch, options.seq, seed, count)
    if encoder:
        return text_batches(tokenizer, texts, options.batch, options.seq, count, 0)
    return token_windows(tokenizer, texts, options.batch, options.seq, count)


def _batched(arch: Architecture, module: Any, tokenizer: Any, texts: tuple[list[str], list[str]],
             options: ModelOptions, seed: int, kinds: set[str], name: str, path: Path) -> ModelState:
    encoder = arch.task == "encoder"
    calibration_text, evaluation_text = texts
    if encoder:  # judged on evaluation text (embedding fidelity)
        judged = _ids(tokenizer, module, evaluation_text, options, seed + 1, 1 + HELDOUT, encoder)
        calibration = _ids(tokenizer, module, calibration_text, options, seed + 2, CALIBRATION, encoder)
    else:  # judged batch and calibration from the calibration side; evaluation text only for perplexity
        windows = _ids(tokenizer, module, calibration_text, options, seed + 1, 1 + HELDOUT + CALIBRATION, encoder)
        judged, calibration = windows[:1 + HELDOUT], windows[1 + HELDOUT:]
    batches = judged + calibration
    if arch.family == "mamba":
        for b in batches:
            b["use_cache"] = False
            b.pop("attention_mask", None)
    module = place(module, batches, options)
    common = dict(name=name, module=module, batch=judged[0], tokens=options.batch * options.seq, probes={},
                  calibration=calibration, heldout=judged[1:], device=options.device,
                  repeats=10, warmup=2, equivalence_tol=tolerance(options, 1e-4))
    if encoder:
        workload: TorchWorkload = MiniLMWorkload(output=lambda out, _b: out.last_hidden_state, output_group="hidden",
                                                 primary_quality="embedding_cosine_pct", **common)
    else:
        workload = CausalLMWorkload(output=lambda out, _b: out.logits, **common)
        _heldout(workload, tokenizer, evaluation_text, options)
    workload.origin, workload.tokenizer, workload.auto_class = str(path), tokenizer, arch.auto_class
    shapes = {k: tuple(p.shape) for k, p in module.named_parameters()}
    return finish(workload, module, arch.groups(module.config, kinds, shapes))


def _kv_decoder(module: Any, tokenizer: Any, texts: tuple[list[str], list[str]], options: ModelOptions, seed: int,
                backend: str, kinds: set[str], name: str, path: Path) -> ModelState:
    from .smollm2 import decoder_state

    calibration_text, evaluation_text = texts
    need = options.prompt + options.decode + 1
    if tokenizer is None:
        gen = torch.Generator().manual_seed(seed + 1)
        ids = torch.randint(0, module.config.vocab_size, (1, need), generator=gen)
        calibration = random_ids(module.config.vocab_size, 4, 128, seed + 2, CALIBRATION + HELDOUT)
    else:
        calibration = text_batches(tokenizer, calibration_text, 4, 128, CALIBRATION + HELDOUT, 0)
        ids = token_windows(tokenizer, calibration_text, 1, need, 1)[0]["input_ids"]  # prompt + decode
    state = decoder_state(module, ids, options.prompt, options.decode, kinds, calibration, name=name, backend=backend)
    state.workload.origin, state.workload.tokenizer = str(path), tokenizer
    state.workload.auto_class = "AutoModelForCausalLM"
    _heldout(state.workload, tokenizer, evaluation_text, options)
    return state

