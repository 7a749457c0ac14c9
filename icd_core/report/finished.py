"""What reporters receive: a finished run's metrics document and events, and reading one back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from icd_core.contract.errors import InputDataError

SCHEMA = "icd.metrics/1"


@attrs.frozen
class FinishedRun:
    """``metrics``: the ``metrics.json`` document; ``events``: the ``events.jsonl`` lines."""

    metrics: dict[str, Any]
    events: list[dict[str, Any]] = attrs.Factory(list)


def load_run(run: Path) -> FinishedRun:
    """Read a finished run directory back (for ``icd report`` / ``icd compare``)."""
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise InputDataError(f"{run}: not an icd run directory (no metrics.json)")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{metrics_path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{metrics_path}: cannot read ({exc})") from None
    if not isinstance(metrics, dict) or metrics.get("schema") != SCHEMA or not isinstance(metrics.get("run"), dict):
        raise InputDataError(f"{metrics_path}: not an icd metrics document (expected a JSON object with "
                             f"\"schema\": \"{SCHEMA}\" and a \"run\" table)")
    events = []
    events_path = run / "events.jsonl"
    if events_path.is_file():
        for number, line in enumerate(events_path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputDataError(f"{events_path}:{number}: invalid JSON ({exc.msg})") from None
    return FinishedRun(metrics=metrics, events=events)
