"""ncu / nvml measures: honest availability, null figures with reasons on CPU, energy on GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from icd_measure_ncu import plugin, probes

from icd_core.testing import (
    MockOptions,
    build_mock_state,
    check_conformance,
    context,
    fresh_manager,
    resolve,
)


def gpu_present() -> bool:
    return probes.nvml_unavailable() is None


@pytest.fixture(scope="module")
def manager():
    return fresh_manager(plugin)


def measure(manager, name, state):
    return manager.call("icd_measure", ctx=context(manager), measure=resolve(manager.registry, "measure", name),
                                       state=state)


def test_availability_reasons_match_the_machine(manager):
    ncu = manager.registry.get("measure", "ncu")
    nvml = manager.registry.get("measure", "nvml")
    if shutil.which("ncu") is None:
        assert ncu.status == "unavailable: Nsight Compute (ncu) is not on PATH"
    if not gpu_present():
        assert nvml.status.startswith("unavailable: ")
        assert ("NVML" in nvml.status) or ("pynvml" in nvml.status)
    assert ncu.provides == ("l2_hit_pct",) and nvml.provides == ("ept_j_per_tok",)
    rapl = manager.registry.get("measure", "rapl")
    from icd_measure_ncu import rapl as rapl_module

    if not rapl_module.packages():
        assert rapl.status == "unavailable: no RAPL counters (/sys/class/powercap is absent or empty: common in VMs)"


def test_cpu_workloads_get_null_figures_with_reasons(manager):
    state = build_mock_state(MockOptions(hidden=16, d_in=4, d_out=4, tokens=2), np.random.default_rng(0))
    energy = measure(manager, "nvml", state)["ept_j_per_tok"]
    assert energy.value is None and energy.reason == "workload runs on cpu; NVML measures GPU energy"
    l2 = measure(manager, "ncu", state)["l2_hit_pct"]
    assert l2.value is None and "Nsight Compute profiles CUDA kernels only" in l2.reason
    cpu = measure(manager, "rapl", state)["ept_j_per_tok"]
    assert cpu.value is not None or cpu.reason.startswith(("no RAPL", "RAPL counter not readable"))


def test_conforms(manager):
    assert check_conformance(manager, plugin) == []


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_present(), reason="needs an NVIDIA GPU with NVML")
def test_energy_per_token_on_a_cuda_workload(manager):
    import attrs
    import torch

    state = build_mock_state(MockOptions(hidden=4096, d_in=4096, d_out=4096, tokens=4096), np.random.default_rng(0))

    @attrs.define
    class Cuda:
        inner: object
        name: str = "mock-cuda"
        device: str = "cuda"
        primary_quality: str = "cosine_pct"
        tokens: int = 4096

        def forward(self, state):
            tensors = state.tensors
            x = torch.as_tensor(self.inner.inputs, device="cuda")
            h = torch.relu(x @ tensors["mlp.fc1.weight"].T + tensors["mlp.fc1.bias"])
            return h @ tensors["mlp.fc2.weight"].T + tensors["mlp.fc2.bias"]

        def quality(self, state, output, reference):
            return {}

        def max_rel_diff(self, output, reference):
            return 0.0

    cuda_state = attrs.evolve(state, workload=Cuda(state.workload),
                              tensors={k: torch.as_tensor(v, device="cuda") for k, v in state.tensors.items()})
    energy = measure(manager, "nvml", cuda_state)["ept_j_per_tok"]
    assert energy.source == "measured:nvml" and energy.value > 0
    assert energy.detail["window_s"] >= 2.0 and 10 < energy.detail["avg_power_w"] < 1500
