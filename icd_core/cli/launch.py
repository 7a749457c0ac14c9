"""Launching one run: the engine into a run directory, then its documents and its reports.

The one launcher behind ``icd run``, ``icd export``'s re-derivation, the Python API's
``icd.run`` and the sweep executors' in-process trials: the engine returns a
:class:`~icd_core.run.record.RunRecord` and knows nothing of reporting; this writes
``metrics.json`` and ``perm.json`` through the reporters and commits the directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from icd_core.contract.jsonify import dumps
from icd_core.contract.state import ModelState
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.report.document import metrics_document, perm_document
from icd_core.report.finished import FinishedRun
from icd_core.run.artifacts import RunDirectory
from icd_core.run.context import RunContext
from icd_core.run.events import EventBus
from icd_core.run.pipeline import Pipeline
from icd_core.run.selection import Selection


@attrs.frozen
class Outcome:
    """What a launched run produced: the record reporters saw, where it lives, whether every
    stage succeeded, each arm's final state (``pre``: the loaded model) for an export, the arm
    the run handed back (``pre`` after a rollback; ``None``: it failed) and what it wrote."""

    record: FinishedRun
    path: Path
    ok: bool
    error: str | None = None
    states: Mapping[str, ModelState] = attrs.Factory(dict)
    kept: str | None = None
    artifacts: tuple[str, ...] = ()


def launch(manager: PluginManager, selection: Selection, run_dir: RunDirectory,
           listeners: Iterable[Any] = ()) -> Outcome:
    """Run ``selection`` into ``run_dir`` (open, not committed) and report it; raises only on
    bad input (UsageError, InputDataError) or an unwritable directory. ``listeners`` see every event."""
    bus = EventBus(run_dir.file("events.jsonl"), run_dir.shown("events.jsonl"))
    bus.listeners.extend(listeners)
    try:
        ctx = RunContext(config=selection.config, registry=manager.registry, bus=bus, run_dir=run_dir)
        run = Pipeline(manager, selection, ctx).run()
        ctx = attrs.evolve(ctx, config=run.config)
        metrics = metrics_document(run, bus, manager.loaded())
        ctx.write_artifact("perm.json", dumps(perm_document(run.tag, run.perms, run.rollback), indent=None) + "\n")
        record = FinishedRun(metrics=metrics, events=list(bus.events))
        with bus.stage("report", state="REPORTED"):
            failure = dispatch.write_reports(manager, ctx, record)
        error = run.error if not failure else (f"{run.error}; " if run.error else "") + failure
        return Outcome(record=record, path=run_dir.path, ok=error is None, error=error, states=run.states,
                       kept=run.kept, artifacts=tuple(ctx.written))
    finally:
        bus.close()


def launch_committed(manager: PluginManager, selection: Selection, run_dir: RunDirectory,
                     listeners: Iterable[Any] = ()) -> Outcome:
    """:func:`launch`, then the directory committed (abandoned if the launch raises)."""
    try:
        outcome = launch(manager, selection, run_dir, listeners)
    except BaseException:
        run_dir.abandon()
        raise
    return attrs.evolve(outcome, path=run_dir.commit())


def run_trial(sweep_dir: Path, name: str, config_path: Path) -> str | None:
    """One sweep trial in this process, as ``icd run -c CONFIG --out-dir SWEEP_DIR --name NAME``
    would run it: ``None`` when it succeeded, else its one error line (what the CLI would print)."""
    from icd_core.config.files import load_config
    from icd_core.contract.errors import IcdError
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.privacy import redact
    from icd_core.run.selection import select

    try:
        config = load_config(str(config_path), (), cli={"report.out_dir": str(sweep_dir), "name": name})
        manager = load_plugin_manager()
        outcome = launch_committed(manager, select(config, manager.registry), RunDirectory(sweep_dir, name).open())
    except IcdError as exc:
        return redact(str(exc))
    except Exception as exc:
        return f"internal error: {type(exc).__name__}: {redact(str(exc))}"
    return None if outcome.ok else redact(f"run failed: {outcome.error}")
