"""The GPU check: real models in compare mode on one CUDA GPU, one table at the end.

BERT-base (fp16, batch 8 × 128) and Mamba (130M and the 2.8B config, fp16) with
``sparsity:2:4`` (run on PyTorch's semi-structured kernel) and ``sparsity:unstructured:0.9``
(CUDA BSR where ``F.linear`` takes it, else dense — the table says which), measuring
CUDA-event latency, ncu L2 hit rate and NVML J/token for linear and iterative. Every run's
directory stays under ``runs/gpu-check/``; the table is also written to
``benchmarks/results/gpu_check-<date>.md`` with the card and driver. Budget: ≤ 8 minutes on
one H100 (``--quick`` drops the 2.8B model). Never changes clocks or power limits.

    bash benchmarks/gpu_check.sh          # installs offline, then runs this
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

CONFIGS = [
    ("bert-base:device=cuda:dtype=float16", "sparsity:2:4"),
    ("bert-base:device=cuda:dtype=float16", "sparsity:unstructured:0.9"),
    ("mamba:size=130m:device=cuda:dtype=float16", "sparsity:2:4"),
    ("mamba:size=130m:device=cuda:dtype=float16", "sparsity:unstructured:0.9"),
    ("mamba:size=2.8b:device=cuda:dtype=float16:seq=128", "sparsity:2:4"),
]
OUT = Path("runs/gpu-check")


def fig(results: dict, branch: str, key: str) -> str:
    entry = results.get(branch, {}).get("figures", {}).get(key) or {}
    value = entry.get("value")
    return "null" if value is None else f"{value:.4g}"


def one_run(workload: str, adapter: str, index: int) -> list[str]:
    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import load_config
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.selection import select

    t0 = time.perf_counter()
    manager = load_plugin_manager()
    config = load_config(cli={"workload": workload, "transform.adapters": [adapter], "report.out_dir": str(OUT),
                              "pipeline.repeats": 20, "pipeline.warmup_iter": 3,
                              "measure.use": ["wallclock", "ncu", "nvml", "tiles"],
                              "measure.cache.target": "h100"})
    selection = select(config, manager.registry)
    run_dir = RunDirectory(OUT, f"{index}-{workload.split(':')[0]}-{adapter.replace(':', '_')}", replace=True).open()
    outcome = launch_committed(manager, selection, run_dir)
    m = outcome.record.metrics
    r = m["results"]
    kernels = (r.get("iterative", {}).get("figures", {}).get("lat_ms", {}) or {}).get("kernels") or {}
    kernel = sorted(set(kernels.values()))[0] if kernels else "dense"
    eq = (m.get("equivalence") or {}).get("max_rel_diff")
    return [workload.split(":")[0] + ("-2.8b" if "2.8b" in workload else ""), adapter, kernel,
            fig(r, "linear", "lat_ms"), fig(r, "iterative", "lat_ms"), fig(r, "linear", "l2_hit_pct"),
            fig(r, "iterative", "l2_hit_pct"), fig(r, "linear", "ept_j_per_tok"), fig(r, "iterative", "ept_j_per_tok"),
            "null" if eq is None else f"{eq:.1e}", "ok" if outcome.ok else f"failed: {outcome.error}",
            f"{time.perf_counter() - t0:.0f}s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 2.8B model")
    args = parser.parse_args()
    from icd_core.report.environment import gpu_fingerprint

    env = gpu_fingerprint()
    header = ["model", "adapter", "kernel", "lat lin ms", "lat it ms", "L2 lin %", "L2 it %", "J/tok lin",
              "J/tok it", "π₀ Δ", "run", "wall"]
    rows = []
    for i, (workload, adapter) in enumerate(CONFIGS):
        if args.quick and "2.8b" in workload:
            continue
        try:
            rows.append(one_run(workload, adapter, i))
        except Exception as exc:  # one failing config must not hide the others
            rows.append([workload.split(":")[0], adapter, "-"] + ["null"] * 7 + [f"error: {type(exc).__name__}: {exc}", "-"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"GPU check — {env.get('gpu')} — driver {env.get('driver')} — {stamp}"
    table = "\n".join(lines)
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / f"gpu_check-{stamp[:10]}.md").write_text(f"# {title}\n\n```\n{table}\n```\n")
    print(title)
    print(table)


if __name__ == "__main__":
    main()
