"""Built-in measure ``cachegrind`` (opt-in, CPU): the gather kernel under valgrind's cache
simulator, deterministic run to run.

The same kernel the ``cache`` model replays — each sampled access gathers its dims as columns
of a row-major weight laid out by the state — runs in a child Python under ``valgrind
--tool=callgrind --cache-sim=yes`` with the configured D1 / LL geometry, collecting only
inside numpy's gather (``--toggle-collect=PyArray_TakeFrom``), so interpreter start-up does
not count. Reports the LL hit rate of D1 misses and LL read misses per access, labelled
``simulated:cachegrind``; address randomisation is switched off (``setarch -R``) so the counts
repeat (to within a few lines of thousands). 40–60× slower than native, so it is never run unless listed in ``measure.use``.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from icd_core.contract.children import python_command
from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import Figure
from icd_core.layout.cachesim import sample

NAME = "cachegrind"
SOURCE = "simulated:cachegrind"
TIMEOUT_S = 900
KERNEL = """
import sys
import numpy as np
data = np.load(sys.argv[1])
weight = np.zeros((int(data["rows"]), int(data["n"])), dtype=np.float32)
index, starts = data["index"], data["starts"]
for a, b in zip(starts[:-1], starts[1:]):
    np.take(weight, index[a:b], axis=1)
"""


def unavailable() -> str | None:
    return None if shutil.which("valgrind") else "valgrind is not installed"


def parse_totals(text: str) -> dict[str, int]:
    """The ``events:`` / ``summary:`` lines of a callgrind output file, as a dict."""
    events = summary = None
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            summary = [int(x) for x in line.split()[1:]]
    if events is None or summary is None:
        raise ValueError("no events/summary lines in the callgrind output")
    return dict(zip(events, summary))


def run_kernel(accesses: list[np.ndarray], layout: np.ndarray, rows: int, d1: str, ll: str) -> dict[str, int]:
    position = np.empty(len(layout), dtype=np.int64)
    position[layout] = np.arange(len(layout))
    cols = [np.sort(position[np.asarray(a)]) for a in accesses]
    with tempfile.TemporaryDirectory(prefix="icd-cachegrind-") as tmp:
        data, out, script = Path(tmp) / "k.npz", Path(tmp) / "cg.out", Path(tmp) / "kernel.py"
        np.savez(data, rows=rows, n=len(layout), index=np.concatenate(cols),
                 starts=np.concatenate([[0], np.cumsum([len(c) for c in cols])]))
        script.write_text(KERNEL)
        norandom = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []  # fixed addresses
        cmd = [*norandom, "valgrind", "--tool=callgrind", "--cache-sim=yes", f"--D1={d1}", f"--LL={ll}",
               "--toggle-collect=PyArray_TakeFrom", f"--callgrind-out-file={out}", *python_command(str(script)),
               str(data)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"valgrind exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        return parse_totals(out.read_text())


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="opt-in: LL misses of the gather kernel under valgrind (deterministic)",
                 check=unavailable, provides=("l2_hit_pct", "cache_misses_per_access"), opt_in=True)


@hookimpl
def icd_measure(ctx, measure, state):
    cfg = ctx.config.measure.cache
    reads = misses = d1_misses = accesses = 0
    for group, accesses in state.accesses.items():
        layout = np.asarray(state.layout.get(group, []))
        if layout.size != state.group(group).size:
            continue
        chosen = sample(accesses.sets, cfg.accesses)
        totals = run_kernel(chosen, layout, cfg.rows, cfg.cachegrind_D1, cfg.cachegrind_LL)
        reads += totals.get("Dr", 0)
        d1_misses += totals.get("D1mr", 0)
        misses += totals.get("DLmr", 0)
        accesses += len(chosen)
    if accesses == 0:
        return {"l2_hit_pct": Figure.missing("no accesses to replay under valgrind", "%")}
    detail = {"D1": cfg.cachegrind_D1, "LL": cfg.cachegrind_LL, "data_reads": reads, "D1_read_misses": d1_misses,
              "LL_read_misses": misses, "accesses": accesses, "rows": cfg.rows,
              "scope": "numpy's gather (PyArray_TakeFrom) only", "deterministic": True}
    hit = 100.0 * (1 - misses / d1_misses) if d1_misses else 100.0
    return {"l2_hit_pct": Figure(hit, SOURCE, unit="%", detail=detail),
            "cache_misses_per_access": Figure(misses / accesses, SOURCE, unit="lines", detail=detail)}
