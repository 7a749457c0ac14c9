"""A torch ``nn.Module`` as an icd workload: the state's tensors are its parameters.

``forward`` runs ``torch.func.functional_call`` with the state's tensors (no copies into
the module), on one fixed batch, and returns the output in the original coordinates: when
the output's last axis is a permuted group (the residual stream), the layout is undone.
``capture`` records the probes' activity per token over calibration batches, for the
``activations`` graph source.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch.func import functional_call

from icd_core import Figure, ModelState
from icd_core.toolkit import inverse, max_rel_diff, output_quality

from .groups import Probe

Batch = Mapping[str, torch.Tensor]


def host(t: torch.Tensor) -> np.ndarray:
    """float32 numpy on the host, whatever the device and dtype."""
    return t.detach().float().cpu().numpy()


def state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of every parameter (tied ones once): the state a workload starts from."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


LAYER = re.compile(r"(^|\.)\d+\.")  # a module inside a numbered list of layers


def layer_linears(module: torch.nn.Module) -> dict[str, int]:
    """Every Linear weight inside the model's layers (a module path through a numbered layer
    list: never embeddings, a pooler or the LM head), tensor name → the axis of its inputs
    (GPT-2's Conv1D stores in × out: axis 0). Empty when the model has no numbered layers."""
    out = {}
    for name, sub in module.named_modules():
        kind = type(sub).__name__
        if kind in ("Linear", "Conv1D") and LAYER.search(name + ".") and getattr(sub, "weight", None) is not None:
            out[f"{name}.weight"] = 0 if kind == "Conv1D" else 1
    return out


@attrs.define(eq=False)
class TorchWorkload:
    """Runs ``module`` on ``batch``; ``output`` picks the compared tensor from its result."""

    name: str
    module: torch.nn.Module
    batch: Batch
    tokens: int
    output: Callable[[Any, Batch], torch.Tensor]
    probes: Mapping[str, tuple[Probe, ...]]
    calibration: list[Batch]
    heldout: list[Batch] = attrs.Factory(list)
    output_group: str | None = None
    device: str = "cpu"
    primary_quality: str = "cosine_pct"
    graph_source: str = "activations"
    repeats: int = 30
    warmup: int = 5
    equivalence_tol: float = 1e-4
    backend: str = "dense"
    origin: str | None = None  # the model directory it was loaded from (exports copy its tokenizer files)
    tokenizer: Any = None
    auto_class: str | None = None  # the transformers class that reloads an export
    linear_weights: Mapping[str, int] = attrs.Factory(dict)  # what transforms target (layer_linears)
    _captured: dict[tuple[ModelState, int, bool], dict[str, np.ndarray]] = attrs.field(factory=dict, init=False, repr=False)
    _executable: weakref.WeakKeyDictionary = attrs.field(factory=weakref.WeakKeyDictionary, init=False, repr=False)
    _kernel_choices: dict[tuple, str] = attrs.field(factory=dict, init=False, repr=False)

    def parameters(self, state: ModelState) -> dict[str, Any]:
        """The tensors to run with; cached per state. With a layout-reading backend (``bsr``,
        ``auto``, ``semi``; or any on CUDA) the weights a sparsity transform pruned run on the
        sparse kernel :mod:`.kernels` chooses, and why is recorded."""
        held = self._executable.get(state)  # keyed by the state itself (weakly): ids are reused
        if held is not None and held[2] == self.backend:
            return held[0]
        params = {k: v for k, v in state.tensors.items() if not k.startswith("cache.")}
        notes: dict[str, str] = {}
        if self.backend in ("bsr", "auto", "semi") or self.device.startswith("cuda"):
            from .kernels import kernel_for

            for meta in state.applied:
                if meta.details.get("sparsity") and not meta.noop:
                    for name in meta.stats.get("tensors", []):
                        params[name], notes[name] = kernel_for(params[name], dict(meta.details["sparsity"]), self.backend,
                                                               self.device, self.tokens, self._kernel_choices)
        self._executable[state] = (params, notes, self.backend)  # every live state keeps its kernels: no conversion while timed
        return params

    def kernels(self, state: ModelState) -> dict[str, str]:
        """Which kernel each pruned weight ran on (or why it stayed dense)."""
        self.parameters(state)
        return dict(self._executable[state][1])

    def call(self, state: ModelState, batch: Batch) -> Any:
        params = self.parameters(state)
        with torch.no_grad():
            return functional_call(self.module, params, args=(), kwargs=dict(batch), strict=False)

    def restore_order(self, state: ModelState, y: torch.Tensor) -> torch.Tensor:
        if self.output_group and self.output_group in state.layout:
            layout = np.asarray(state.layout[self.output_group])
            if not np.array_equal(layout, np.arange(layout.size)):
                y = y[..., torch.as_tensor(inverse(layout), dtype=torch.long, device=y.device)]
        return y

    def forward(self, state: ModelState) -> torch.Tensor:
        return self.restore_order(state, self.output(self.call(state, self.batch), self.batch))

    def quality(self, state: ModelState, output: Any, reference: Any) -> dict[str, Figure]:
        return output_quality(host(output), host(reference))

    def max_rel_diff(self, output: Any, reference: Any) -> float:
        return max_rel_diff(host(output), host(reference))

    def capture(self, state: ModelState, batches: int, heldout: bool = False) -> dict[str, np.ndarray]:
        """Per group, the activity of its probes: (tokens, group size) float32 (padding
        tokens left out), over the first ``batches`` calibration batches — or, with
        ``heldout``, over held-out batches never used for W. Cached for the last state seen."""
        key = (state, batches, heldout)
        if any(k[0] is not state for k in self._captured):
            self._captured.clear()
        if key in self._captured:
            return self._captured[key]
        source = self.heldout if heldout else self.calibration
        if not source:
            raise ValueError(f"workload {self.name!r}: the {'held-out' if heldout else 'calibration'} set is empty")
        sizes = {g.name: g.size for g in state.groups}
        collected: dict[str, list[np.ndarray]] = {name: [] for name in self.probes if name in sizes}
        modules = dict(self.module.named_modules())
        for batch in source[:batches]:
            keep = batch.get("attention_mask")
            handles = []
            for group, probes in self.probes.items():
                if group not in collected:
                    continue
                for probe in probes:
                    handles.append(_hook(modules[probe.module], probe, sizes[group], collected[group], keep))
            try:
                self.call(state, batch)
            finally:
                for handle in handles:
                    handle.remove()
        result = {name: np.concatenate(parts) for name, parts in collected.items() if parts}
        self._captured[key] = result
        return result


def _hook(module: torch.nn.Module, probe: Probe, size: int, sink: list[np.ndarray],
          keep: torch.Tensor | None) -> Any:
    def take(x: torch.Tensor) -> None:
        x = x[..., probe.offset:probe.offset + size]
        if keep is not None and x.dim() == 3 and x.shape[:2] == keep.shape:
            x = x[keep.bool()]
        sink.append(host(x.reshape(-1, size)).copy())

    if probe.where == "input":
        return module.register_forward_pre_hook(lambda _m, args, *rest: take(args[0]))
    return module.register_forward_hook(lambda _m, _args, out: take(out[0] if isinstance(out, tuple) else out))
