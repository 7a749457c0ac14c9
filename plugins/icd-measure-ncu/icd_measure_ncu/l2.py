"""L2 hit rate of the measured region under Nsight Compute, in a separate process.

The state's tensors are saved, a child process rebuilds the workload around them and runs
the region inside the NVTX range ``icd-region``; ``ncu`` profiles at most ``KERNELS`` kernel
launches of that range with ``--clock-control none`` (icd never locks clocks) and prints CSV,
which :mod:`.ncu_csv` reduces to a sector-weighted hit rate. Per-kernel rows go to
``ncu.json``, with whether the profile covered every kernel of the region or a sample.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from icd_core import Figure
from icd_core.toolkit import python_command

from . import ncu_csv

KERNELS = 200
TIMEOUT_S = 600
SOURCE = "measured:ncu"


def command(metrics: list[str], spec_path: Path, kernels: int = KERNELS) -> list[str]:
    return ["ncu", "--clock-control", "none", "--target-processes", "all", "--nvtx", "--nvtx-include",
            "icd-region/", "--launch-count", str(kernels), "--metrics", ",".join(metrics), "--csv", "--page", "raw",
            *python_command("-m", "icd_measure_ncu.region"), str(spec_path)]


def measure_l2(ctx, state) -> dict[str, Figure]:
    device = state.workload.device
    if not device.startswith("cuda"):
        return {"l2_hit_pct": Figure.missing(f"workload runs on {device}; Nsight Compute profiles CUDA kernels only",
                                             "%")}
    if shutil.which("ncu") is None:
        return {"l2_hit_pct": Figure.missing("Nsight Compute (ncu) is not on PATH", "%")}
    import torch

    metrics = sorted(set(ctx.config.measure.ncu_metrics) | {ncu_csv.HIT, *ncu_csv.SECTORS})
    with tempfile.TemporaryDirectory(prefix="icd-ncu-") as tmp:
        tensors = Path(tmp) / "tensors.pt"
        torch.save(dict(state.tensors), tensors)
        spec = Path(tmp) / "region.json"
        repeats = max(1, min(ctx.config.pipeline.repeats or 1, 3))
        spec.write_text(json.dumps({"workload": ctx.config.workload, "seed": ctx.seed, "tensors": str(tensors),
                                    "layout": {k: v.tolist() for k, v in state.layout.items()},
                                    "warmup": 1, "repeats": repeats}))
        try:
            done = subprocess.run(command(metrics, spec), capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"l2_hit_pct": Figure.missing(f"ncu did not finish within {TIMEOUT_S} s", "%")}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"l2_hit_pct": Figure.missing(f"ncu exited {done.returncode}: {tail[0]}", "%")}
    try:
        kernels = ncu_csv.parse(done.stdout)
        summary = ncu_csv.summarize(kernels)
    except ValueError as exc:
        return {"l2_hit_pct": Figure.missing(f"ncu output not usable: {exc}", "%")}
    sampled = len(kernels) >= KERNELS
    if ctx.run_dir is not None:
        ctx.write_artifact("ncu.json", json.dumps({"summary": summary, "kernels": kernels, "sampled": sampled,
                                                   "launch_count_limit": KERNELS, "repeats": repeats}, indent=1))
    detail = {**summary, "sampled": sampled, "repeats": repeats}
    return {"l2_hit_pct": Figure(summary["hit_pct"], SOURCE, unit="%", detail=detail)}
