"""``sweep.csv``: one row per trial — its name, state and parameters, then every figure and
quality of every branch with its source (read from the trial's metrics.json), and the paired
change iterative vs linear of each figure where the run computed one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icd_core.report.cells import csv_text
from icd_core.report.rows import BRANCHES


def _trial_cells(run: Path) -> dict[str, Any]:
    path = run / "metrics.json"
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return {}
    cells: dict[str, Any] = {"run.ok": metrics["run"].get("ok"), "run.duration_s": metrics["run"].get("duration_s")}
    for branch in BRANCHES:
        result = metrics.get("results", {}).get(branch)
        if not result:
            continue
        for section in ("figures", "quality"):
            for key, figure in sorted(result.get(section, {}).items()):
                column = f"{branch}.{key}" if section == "figures" else f"{branch}.quality.{key}"
                cells[column] = figure.get("value")
                cells[f"{column}.source"] = figure.get("source") or figure.get("reason")
    for key, change in sorted(metrics.get("comparisons", {}).get("iterative_vs_linear", {}).items()):
        if change.get("estimate") is not None:
            ci = change.get("ci95") or [None, None]
            cells[f"iterative_vs_linear.{key}"] = change["estimate"]
            cells[f"iterative_vs_linear.{key}.ci95"] = f"{ci[0]}..{ci[1]}" if ci[0] is not None else ""
    return cells


def sweep_csv(sweep_dir: Path, manifest: dict[str, Any]) -> str:
    """The CSV text of a sweep (its columns: the union over trials, in a stable order)."""
    params = list(dict.fromkeys(k for t in manifest["trials"] for k in t["params"]))
    rows = []
    for trial in manifest["trials"]:
        row = {"trial": trial["name"], "state": trial["state"], "error": trial.get("error") or "",
               **{f"param.{k}": trial["params"].get(k) for k in params},
               **_trial_cells(sweep_dir / trial["run_dir"])}
        rows.append(row)
    fixed = ["trial", "state", "error", *(f"param.{k}" for k in params)]
    rest = sorted({k for r in rows for k in r} - set(fixed))
    fields = fixed + rest
    return csv_text([fields, *([r.get(k, "") for k in fields] for r in rows)])
