"""The environment fingerprint written with every run (cheap: imports nothing heavy)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu_fingerprint() -> dict[str, Any]:
    """GPU name, driver, clocks and power cap through NVML, or the reason there are none."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return {"gpu": None, "gpu_reason": f"NVML unavailable: {type(exc).__name__}"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        return {
            "gpu": name.decode() if isinstance(name, bytes) else name,
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "power_cap_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
        }
    except Exception as exc:
        return {"gpu": None, "gpu_reason": f"NVML query failed: {type(exc).__name__}: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def fingerprint() -> dict[str, Any]:
    env: dict[str, Any] = {
        "icd_version": _version("icd-co"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    for dist in ("numpy", "scipy", "torch", "pluggy"):
        env[dist] = _version(dist)
    env.update(gpu_fingerprint())
    return env
