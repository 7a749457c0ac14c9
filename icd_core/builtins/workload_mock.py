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

from ..markers import hookimpl
from ..records import Figure, GroupMember, PermutationGroup, Samples
from ..state import ModelState
from ..validators import positive

NAME = "mock"


@attrs.frozen
class MockOptions:
    hidden: int = attrs.field(default=512, validator=positive())
    d_in: int = attrs.field(default=256, validator=positive())
    d_out: int = attrs.field(default=256, validator=positive())
    tokens: int = attrs.field(default=256, validator=positive())


def max_rel_diff(output: Any, reference: Any) -> float:
    """max |output − reference| / max |reference| (0 when both are zero)."""
    from .. import tensors as T

    a = np.asarray(T.to_numpy(output), dtype=np.float64)
    b = np.asarray(T.to_numpy(reference), dtype=np.float64)
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    return diff / scale if scale else diff


def output_quality(output: np.ndarray, reference: np.ndarray) -> dict[str, Figure]:
    """Per output row (token): cosine and relative error (percent) vs ``reference``, averaged;
    the per-token values ride along as samples so two states can be compared token by token."""
    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    a, b = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1), b.reshape(-1, b.shape[-1]) if b.ndim else b.reshape(1, 1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(1)
    both = (na > 0) & (nb > 0)
    cosine = np.where(both, dot / np.where(both, na * nb, 1.0), (na == nb).astype(np.float64))
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(nb, 1e-30)
    source = "measured:output-fidelity"
    return {
        "cosine_pct": Figure(100.0 * float(cosine.mean()), source, unit="%",
                             samples=Samples("token", 100.0 * cosine)),
        "rel_err_pct": Figure(100.0 * float(rel.mean()), source, unit="%", samples=Samples("token", 100.0 * rel),
                              better="lower"),
    }


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
    registry.add("workload", NAME, summary="seeded two-layer ReLU MLP in numpy (embedded default)",
                 options=MockOptions, positional=("hidden",))


@hookimpl
def icd_load_workload(ctx, workload):
    if workload.name != NAME:
        return None
    return build_mock_state(workload.options, ctx.rng("workload", NAME))
