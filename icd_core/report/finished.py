"""What reporters receive: a finished run's metrics document and events, and reading one back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from icd_core.contract.errors import InputDataError
from icd_core.contract.limits import read_text

SCHEMA = "icd.metrics/1"


@attrs.frozen
class FinishedRun:
    """``metrics``: the ``metrics.json`` document; ``events``: the ``events.jsonl`` lines."""

    metrics: dict[str, Any]
    events: list[dict[str, Any]] = attrs.Factory(list)


def load_run(run: Path) -> FinishedRun:
    """Read a finished run directory back (for ``icd report`` / ``icd compare``)."""
    metrics_path = run / "metrics.json"
    if run.exists() and not run.is_dir():
        raise InputDataError(f"{run}: not an icd run directory (not a directory)")
    if not (metrics_path.exists() or metrics_path.is_symlink()):
        raise InputDataError(f"{run}: not an icd run directory (no metrics.json)")
    text = read_text(metrics_path, "metrics file", "json_bytes")
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{metrics_path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise InputDataError(f"{metrics_path}: unreadable JSON ({'nested too deeply' if isinstance(exc, RecursionError) else exc})") from None
    if not isinstance(metrics, dict) or metrics.get("schema") != SCHEMA or not isinstance(metrics.get("run"), dict):
        raise InputDataError(f"{metrics_path}: not an icd metrics document (expected a JSON object with "
                             f"\"schema\": \"{SCHEMA}\" and a \"run\" table)")
    events = []
    events_path = run / "events.jsonl"
    if events_path.exists() or events_path.is_symlink():
        for number, line in enumerate(read_text(events_path, "events log", "json_bytes").splitlines(), 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except (RecursionError, ValueError) as exc:
                    raise InputDataError(f"{events_path}:{number}: invalid JSON "
                                         f"({getattr(exc, 'msg', None) or 'nested too deeply'})") from None
    return FinishedRun(metrics=metrics, events=events)
