"""Energy per token from NVML's total-energy counter (mJ), read around a ≥ 2 s window.

The counter updates every 20–100 ms, so the forward is repeated until the window reaches
``MIN_WINDOW_S``; joules per token = ΔE / (tokens × iterations). A sampling thread records
instantaneous power (``NVML_FI_DEV_POWER_INSTANT``: on Hopper ``nvmlDeviceGetPowerUsage`` is
a 1 s average), SM and memory clocks and temperature at ``measure.power_sample_hz`` into
``power.csv``. With ``pipeline.fixed_clock`` the SM clock's spread over the window is checked
and a warning recorded when it moved; icd never sets clocks or power limits.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from icd_core import Figure

MIN_WINDOW_S = 2.0
SOURCE = "measured:nvml"
CLOCK_SPREAD = 0.01  # fixed clocks: SM clock may vary by at most 1 % over the window


def instant_power_w(nvml: Any, handle: Any) -> float:
    try:
        values = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])
        if values and values[0].nvmlReturn == 0:
            return float(values[0].value.uiVal) / 1000.0
    except (AttributeError, nvml.NVMLError):
        pass
    return float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0


class PowerSampler(threading.Thread):
    """Samples (t, W, SM MHz, memory MHz, °C) every 1/hz seconds until stopped."""

    def __init__(self, nvml: Any, handle: Any, hz: float) -> None:
        super().__init__(daemon=True)
        self.nvml, self.handle, self.period = nvml, handle, 1.0 / hz
        self.rows: list[tuple[float, float, int, int, int]] = []
        self._halt = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        nvml = self.nvml
        while not self._halt.is_set():
            self.rows.append((time.perf_counter() - self.t0, instant_power_w(nvml, self.handle),
                              nvml.nvmlDeviceGetClockInfo(self.handle, nvml.NVML_CLOCK_SM),
                              nvml.nvmlDeviceGetClockInfo(self.handle, nvml.NVML_CLOCK_MEM),
                              nvml.nvmlDeviceGetTemperature(self.handle, nvml.NVML_TEMPERATURE_GPU)))
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def power_csv(rows: list[tuple[float, float, int, int, int]]) -> str:
    lines = ["t_s,power_w,sm_clock_mhz,mem_clock_mhz,temperature_c"]
    lines += [f"{t:.4f},{w:.3f},{sm},{mem},{temp}" for t, w, sm, mem, temp in rows]
    return "\n".join(lines) + "\n"


def clock_spread(rows: list[tuple[float, float, int, int, int]]) -> float | None:
    clocks = [r[2] for r in rows]
    return (max(clocks) - min(clocks)) / max(clocks) if clocks and max(clocks) else None


def energy_window(nvml: Any, handle: Any, run: Any, sync: Any, hz: float) -> dict[str, Any]:
    """Run the region repeatedly for ≥ MIN_WINDOW_S, reading the energy counter around it."""
    run()
    sync()
    sampler = PowerSampler(nvml, handle, hz)
    sampler.start()
    iterations = 0
    start_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < MIN_WINDOW_S:
        run()
        iterations += 1
        sync()
    window = time.perf_counter() - t0
    end_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    sampler.stop()
    return {"joules": (end_mj - start_mj) / 1000.0, "window_s": window, "iterations": iterations,
            "samples": sampler.rows}


def measure_energy(ctx, state) -> dict[str, Figure]:
    device = state.workload.device
    if not device.startswith("cuda"):
        return {"ept_j_per_tok": Figure.missing(f"workload runs on {device}; NVML measures GPU energy", "J/tok")}
    import pynvml
    import torch

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        window = energy_window(pynvml, handle, state.run, torch.cuda.synchronize, ctx.config.measure.power_sample_hz)
    finally:
        pynvml.nvmlShutdown()
    if ctx.run_dir is not None:
        ctx.write_artifact("power.csv", power_csv(window["samples"]))
    spread = clock_spread(window["samples"])
    if ctx.config.pipeline.fixed_clock and spread is not None and spread > CLOCK_SPREAD:
        ctx.bus.warn(f"fixed_clock was requested but the SM clock moved {100 * spread:.1f} % during the energy window")
    joules = window["joules"]
    tokens = state.workload.tokens * window["iterations"]
    detail = {"window_s": window["window_s"], "iterations": window["iterations"], "energy_j": joules,
              "avg_power_w": joules / window["window_s"], "power_samples": len(window["samples"]),
              "sm_clock_spread": spread}
    return {"ept_j_per_tok": Figure(joules / tokens, SOURCE, unit="J/tok", detail=detail)}
