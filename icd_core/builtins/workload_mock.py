"""Built-in workload ``mock``: a seeded two-layer ReLU MLP in numpy (the embedded default).

Its hidden dimension ``mlp.hidden`` is one permutation group: rows of ``fc1.weight`` and
``fc1.bias``, columns of ``fc2.weight`` (the reduction axis N:M sparsity and per-group
quantization act on). Quality: per-token cosine and relative error of the output vs the dense
model (means over tokens, with the per-token values as samples).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from icd_core.config.validators import positive
from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import Figure, GroupMember, PermutationGroup
from icd_core.contract.state import ModelState
from icd_core.run.outputs import max_rel_diff, output_quality

NAME = "mock"


@attrs.frozen
class MockOptions:
    hidden: int = attrs.field(default=512, validator=positive())
    d_in: int = attrs.field(default=256, validator=positive())
    d_out: int = attrs.field(default=256, validator=positive())
    tokens: int = attrs.field(default=256, validator=positive())


@attrs.define(eq=False)
class MockMLP:
    """``y = relu(x·W1ᵀ + b1)·W2ᵀ + b2`` on a fixed seeded batch."""

    inputs: np.ndarray
    name: str = NAME
    device: str = "cpu"
    primary_quality: str = "cosine_pct"
    graph_source: str = "mock"

    @property
    def tokens(self) -> int:
        return int(self.inputs.shape[0])

    def forward(self, state: ModelState) -> np.ndarray:
        tensors = state.tensors
        h = self.inputs @ tensors["mlp.fc1.weight"].T + tensors["mlp.fc1.bias"]
        np.maximum(h, 0, out=h)
        return h @ tensors["mlp.fc2.weight"].T + tensors["mlp.fc2.bias"]

    def quality(self, state: Any, output: Any, reference: Any) -> dict[str, Figure]:
        return output_quality(output, reference)

    def max_rel_diff(self, output: Any, reference: Any) -> float:
        return max_rel_diff(output, reference)


def build_mock_state(options: MockOptions, rng: np.random.Generator) -> ModelState:
    f32 = np.float32
    tensors = {
        "mlp.fc1.weight": (rng.standard_normal((options.hidden, options.d_in)) * np.sqrt(2 / options.d_in)).astype(f32),
        "mlp.fc1.bias": (0.1 * rng.standard_normal(options.hidden)).astype(f32),
        "mlp.fc2.weight": (rng.standard_normal((options.d_out, options.hidden)) * np.sqrt(2 / options.hidden)).astype(f32),
        "mlp.fc2.bias": (0.1 * rng.standard_normal(options.d_out)).astype(f32),
    }
    inputs = rng.standard_normal((options.tokens, options.d_in)).astype(f32)
    group = PermutationGroup(
        name="mlp.hidden", size=options.hidden,
        members=(GroupMember("mlp.fc1.weight", 0, "out"), GroupMember("mlp.fc1.bias", 0, "param"),
                 GroupMember("mlp.fc2.weight", 1, "in")))
    return ModelState.initial(MockMLP(inputs=inputs), tensors, (group,))


@hookimpl
def icd_register(registry):
    registry.add("workload", NAME, summary="seeded two-layer ReLU MLP in numpy (embedded default)", preference=0,
                 options=MockOptions, positional=("hidden",))


@hookimpl
def icd_load_workload(ctx, workload):
    return build_mock_state(workload.options, ctx.rng("workload", NAME))
