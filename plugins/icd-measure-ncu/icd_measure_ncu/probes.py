"""Availability probes: cheap, no torch import, a reason string when a measure cannot run."""

from __future__ import annotations

import shutil


def nvml_unavailable() -> str | None:
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed (module pynvml)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"NVML cannot initialise ({type(exc).__name__}): no NVIDIA driver on this machine"
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return "NVML sees no GPU"
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as exc:
        return f"GPU energy counter not readable ({type(exc).__name__})"
    finally:
        pynvml.nvmlShutdown()
    return None


def ncu_unavailable() -> str | None:
    if shutil.which("ncu") is None:
        return "Nsight Compute (ncu) is not on PATH"
    gpu = nvml_unavailable()
    return f"no usable GPU: {gpu}" if gpu else None


def rapl_unavailable() -> str | None:
    from .rapl import unavailable

    return unavailable()
