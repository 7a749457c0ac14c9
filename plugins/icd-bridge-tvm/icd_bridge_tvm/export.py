"""A run's workload as a PyTorch module with named parameters, ready for ``torch.export``.

The workload is rebuilt from the run's config and seed in its natural order (dense, as
loaded); the layout is applied later, inside TVM, by the permutation pass. Supported: the
built-in ``mock`` MLP (numpy, re-expressed in torch on the same tensors), the torch ``mlp``
workload of icd-workload-hf, and MiniLM's first encoder layer (on the hidden states its
embeddings give for the run's batch); anything else is one clear line. Only the groups whose
every member is exported are carried (for MiniLM: ``L0.ffn``).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from icd_core import InputDataError, ModelState
from icd_core.toolkit import tensors

SUPPORTED = ("mock", "mlp", "minilm (encoder layer 0)")


@attrs.frozen
class Exported:
    """The module to export, its example input, and per parameter the state tensor it is."""

    module: Any
    example: tuple[Any, ...]
    parameters: dict[str, str]  # Relax parameter name -> state tensor name
    reference: np.ndarray  # the module's output on the example, by PyTorch


def relax_name(tensor: str) -> str:
    """The name ``from_exported_program`` gives the parameter of module path ``tensor``."""
    return "p_" + tensor.replace(".", "_")


def _mock_module(state: ModelState):
    import torch

    class MockMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            t = state.tensors
            self.mlp = torch.nn.Module()
            self.mlp.fc1 = torch.nn.Linear(t["mlp.fc1.weight"].shape[1], t["mlp.fc1.weight"].shape[0])
            self.mlp.fc2 = torch.nn.Linear(t["mlp.fc2.weight"].shape[1], t["mlp.fc2.weight"].shape[0])
            with torch.no_grad():
                for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
                    layer, kind = name.split(".")
                    getattr(getattr(self.mlp, layer), kind).copy_(torch.from_numpy(np.asarray(t[f"mlp.{name}"])))

        def forward(self, x):
            return self.mlp.fc2(torch.relu(self.mlp.fc1(x)))

    return MockMLP().eval(), (torch.from_numpy(np.asarray(state.workload.inputs, dtype=np.float32)),)


def _torch_mlp(state: ModelState):
    import torch

    module = state.workload.module
    with torch.no_grad():
        for name, value in module.named_parameters():
            value.copy_(torch.as_tensor(tensors.to_numpy(state.tensors[name])))
    return module.eval(), (state.workload.batch["input"],)


def _minilm_layer(state: ModelState):
    import torch

    model = state.workload.module
    with torch.no_grad():
        for name, value in model.named_parameters():
            value.copy_(torch.as_tensor(tensors.to_numpy(state.tensors[name])))
        batch = state.workload.batch
        hidden = model.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))

    class FirstLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = model.encoder.layer[0]

        def forward(self, h):
            out = self.layer(h)
            return out[0] if isinstance(out, tuple) else out

    return FirstLayer().eval(), (hidden,), {"layer.": "encoder.layer.0."}


def exported(state: ModelState) -> Exported:
    """The state's workload as a torch module with its example input and reference output."""
    import torch

    name = state.workload.name
    prefixes = {"": ""}
    if name == "mock":
        module, example = _mock_module(state)
    elif name == "mlp":
        module, example = _torch_mlp(state)
    elif name == "minilm":
        module, example, prefixes = _minilm_layer(state)
    else:
        raise InputDataError(f"workload {name!r}: icd-bridge-tvm exports {', '.join(SUPPORTED)} so far "
                             f"(the other workloads are not wired to torch.export here yet)")
    parameters = {}
    for n, _ in module.named_parameters():
        source = next((n.replace(a, b, 1) for a, b in prefixes.items() if n.startswith(a)), n)
        if source in state.tensors:
            parameters[relax_name(n)] = source
    with torch.no_grad():
        reference = module(*example).numpy()
    return Exported(module=module, example=example, parameters=parameters, reference=reference)
