"""Energy per token from NVML's total-energy counter (mJ), read around a ≥ 2 s window.

The counter updates every 20–100 ms, so the forward is repeated until the window reaches
``MIN_WINDOW_S``; joules per token = ΔE / (tokens × iterations).
"""

from __future__ import annotations

import time

from icd_core import Figure

MIN_WINDOW_S = 2.0
SOURCE = "measured:nvml"


def measure_energy(state) -> dict[str, Figure]:
    device = state.workload.device
    if not device.startswith("cuda"):
        return {"ept_j_per_tok": Figure.missing(f"workload runs on {device}; NVML measures GPU energy", "J/tok")}
    import pynvml
    import torch

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        state.run()
        torch.cuda.synchronize()
        iterations = 0
        start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < MIN_WINDOW_S:
            state.run()
            iterations += 1
            torch.cuda.synchronize()
        window = time.perf_counter() - t0
        end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    finally:
        pynvml.nvmlShutdown()
    joules = (end_mj - start_mj) / 1000.0
    tokens = state.workload.tokens * iterations
    return {"ept_j_per_tok": Figure(joules / tokens, SOURCE, unit="J/tok",
                                    detail={"window_s": window, "iterations": iterations, "energy_j": joules,
                                            "avg_power_w": joules / window})}
