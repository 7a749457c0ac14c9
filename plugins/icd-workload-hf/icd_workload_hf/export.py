"""A state as a transformers directory, checked by reloading it in a process without icd.

``hf``: the state's tensors in their stored order (permuted; pruned weights with their zeros
where the mask put them; quantized weights dequantised to float32) saved with
``save_pretrained`` (safetensors, sharded above 2 GB), the tokenizer and generation config
beside them. A KV page plan is not a weight: it goes to ``kv_plan.json``. Before the core
renames the directory into place, a fresh interpreter that never imports icd loads it with
the transformers class the model came from and runs the workload's judged batch; its
output must equal the state's within the tolerance, else nothing is exported.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from icd_core import InputDataError, ModelState
from icd_core.toolkit import die_with_parent, held_directory, max_rel_diff, python_command

from .plugin import EXPORT_FORMATS
from .torchmodel import host

RELOAD_TOLERANCE = 1e-5
FORMATS = EXPORT_FORMATS
RELOAD_TIMEOUT_S = 600
SHARD = "2GB"
RELOAD = r"""
import sys, torch, transformers
directory, auto_class, batch_file, out_file = sys.argv[1:5]
cls = getattr(transformers, auto_class)
config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
attention = "sdpa" if getattr(cls._model_mapping.get(type(config), None), "_supports_sdpa", False) else "eager"
config._attn_implementation = attention
model = cls.from_pretrained(directory, config=config, dtype=torch.float32, local_files_only=True,
                            trust_remote_code=False, attn_implementation=attention).eval()
batch = torch.load(batch_file, weights_only=True)
with torch.no_grad():
    out = model(**batch)
y = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
leaked = sorted(m for m in sys.modules if m == "icd" or m.startswith(("icd_", "icd.")))
if leaked:
    raise SystemExit(f"icd was imported while reloading: {leaked}")
torch.save(y, out_file)
"""


def judged_batch(workload: Any) -> dict[str, torch.Tensor]:
    """The batch the reload check runs: the workload's own; a KV decoder's prompt tail and
    decoded tokens as one sequence (no cache)."""
    if getattr(workload, "decode_ids", None) is not None:
        return {"input_ids": workload.decode_ids[:, :64].cpu()}
    return {k: v for k, v in workload.batch.items() if isinstance(v, torch.Tensor)}


def state_dict_of(module: torch.nn.Module, state: ModelState) -> dict[str, torch.Tensor]:
    """The module's state dict with every parameter (tied ones through their first name) taken
    from the state."""
    canonical = {id(p): name for name, p in module.named_parameters()}
    params = {name: state.tensors[canonical[id(p)]] for name, p in module.named_parameters(remove_duplicate=False)}
    out = {}
    for name, tensor in module.state_dict().items():
        value = params.get(name, tensor)
        out[name] = value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype).contiguous()
    return out


def kv_plan(workload: Any, state: ModelState) -> dict | None:
    """The page plan a paged runtime reads: per layer and KV head, the token order, page size,
    selector and pinned pages."""
    plan_of = getattr(workload, "page_plan", None)
    plan = plan_of(state) if plan_of else None
    if plan is None:
        return None
    heads = {}
    for group in state.groups:
        if group.name.startswith("kv."):
            layer, head = workload.kv_head(group.name)
            heads[f"{layer}.{head}"] = {"token_order": np.asarray(state.layout[group.name]).tolist(),
                                        "selector": plan.selectors.get((layer, head)),
                                        "pinned_pages": [int(x) for x in plan.pinned.get((layer, head), [])]}
    return {"page": plan.page, "budget_pages": plan.budget, "heads": heads,
            "meaning": "token_order[i] = the prompt position stored at slot i; page p holds slots "
                       "[p·page, (p+1)·page); read budget_pages pages per query by the selector's page "
                       "scores plus pinned_pages; decoded tokens are appended after the prompt and always read"}


def reload_command(directory: Path, auto_class: str, batch_file: Path, out_file: Path) -> list[str]:
    """The reload child's argv: isolated Python (never the caller's or the model's directory on
    ``sys.path``, no ``PYTHON*`` variables), absolute paths."""
    return python_command("-c", RELOAD, str(directory.resolve()), auto_class, str(batch_file), str(out_file),
                          isolated=True)


def reload_check(directory: Path, auto_class: str, batch: dict, expected: torch.Tensor) -> dict[str, Any]:
    """Reload ``directory`` in a fresh, isolated interpreter (working directory: a scratch
    directory; offline; killed with this process) and compare its output with ``expected``."""
    with held_directory(Path(tempfile.gettempdir()), "icd-reload-") as scratch:  # a killed run's: swept next time
        batch_file, out_file = scratch / "batch.pt", scratch / "out.pt"
        torch.save(batch, batch_file)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(reload_command(directory, auto_class, batch_file, out_file), cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=RELOAD_TIMEOUT_S, preexec_fn=die_with_parent)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputDataError(f"export: reloading with transformers.{auto_class} failed ({tail}); nothing exported")
        got = torch.load(out_file, weights_only=True)
    diff = max_rel_diff(host(got), host(expected))
    if not diff <= RELOAD_TOLERANCE:
        raise InputDataError(f"export: the reloaded model's outputs differ from the run's state by {diff:.3g} "
                             f"(max relative) > {RELOAD_TOLERANCE:g}; nothing exported")
    return {"max_rel_diff": diff, "tolerance": RELOAD_TOLERANCE, "auto_class": auto_class,
            "what": "a fresh Python without icd: from_pretrained(DIR) on the judged batch vs the state's output"}


def export_hf(state: ModelState, out_dir: Path, fmt: str) -> dict[str, Any]:
    workload = state.workload
    if fmt not in FORMATS:
        raise InputDataError(f"export --format {fmt}: not available (available: {', '.join(FORMATS)})")
    module = getattr(workload, "module", None)
    if getattr(workload, "auto_class", None) is None or not hasattr(module, "save_pretrained"):
        raise InputDataError(f"export: workload {workload.name!r} is not a transformers model (nothing to save)")
    weights = state_dict_of(module, state)
    attention = module.config._attn_implementation
    module.config._attn_implementation = "sdpa"  # icd's own attention routing is not part of the model
    compressed = None
    try:
        if fmt == "compressed-tensors":
            from .compressed import export_compressed

            compressed = export_compressed(state, module, weights, out_dir)
        else:
            module.save_pretrained(out_dir, state_dict=weights, max_shard_size=SHARD)
    finally:
        module.config._attn_implementation = attention
    files = sorted(p.name for p in out_dir.iterdir())
    tokenizer = "none: the model directory had no tokenizer files"
    if workload.tokenizer is not None:
        workload.tokenizer.save_pretrained(out_dir)
        tokenizer = "saved"
    plan = kv_plan(workload, state)
    if plan is not None:
        (out_dir / "kv_plan.json").write_text(json.dumps(plan) + "\n")
    batch = judged_batch(workload)
    params = {k: v for k, v in state.tensors.items() if not k.startswith("cache.")}
    with torch.no_grad():
        out = functional_call(module, params, args=(), kwargs={k: v.to(workload.device) for k, v in batch.items()},
                              strict=False)
    expected = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    check = reload_check(out_dir, workload.auto_class, batch, expected)
    stored = "packed int (compressed-tensors pack-quantized, no g_idx)" if compressed else "dequantised (float32)"
    notes = [f"{m.spec}: quantized weights stored {stored}" for m in state.applied if m.details.get("quant") and not m.noop]
    notes += [f"{m.spec}: pruned weights stored dense, zeros in memory order" for m in state.applied
              if m.details.get("sparsity") and not m.noop]
    hidden = [g.name for g in state.groups if g.kind == "hidden"
              and not np.array_equal(state.layout[g.name], np.arange(g.size))]
    if hidden and workload.auto_class == "AutoModel":
        notes.append("the hidden dims are permuted: last_hidden_state comes out in the order of "
                     f"icd_layout.json groups[{hidden[0]!r}].pi (index with argsort(pi) to restore)")
    return {"files": files, "tokenizer": tokenizer, "kv_plan": plan is not None, "reload_check": check,
            "notes": notes, "weights": "float32 safetensors" if compressed is None else "compressed-tensors",
            **({"compressed_tensors": compressed, "transformed_weights": compressed.pop("stored")} if compressed
               else {})}

