"""``icd export RUN --out DIR``: a finished run's chosen state as a model directory.

A run directory holds the layout and the decisions, not the weights. ``icd export`` re-derives
the exported arm by running RUN's own ``config.json`` again for that arm only (same seed, same
components, no measure, into a scratch directory) and writes it only when the re-derived arm's
state digest equals the one RUN recorded; ``icd run --export DIR`` writes the state the run
itself ends with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from icd_core.cli.console import echo


def export_outcome(manager: Any, selection: Any, outcome: Any, out: Path, fmt: str, arm: str | None,
                   kept: str | None = None) -> dict:
    """Write ``arm`` of a finished run (default: the arm it kept, or ``kept`` when a replay
    re-derived it) and return icd_layout.json."""
    from icd_core.run.export import choose_arm, export_state

    chosen = choose_arm(outcome.states, outcome.kept, arm or kept, outcome.error)
    metrics = outcome.record.metrics
    why = "chosen with --arm" if arm else ("the pre-run model: the run rolled back" if chosen == "pre"
                                           else "the state the run kept after its verdicts")
    source = {"run": metrics["run"]["name"], "run_dir": str(outcome.path), "arm": chosen, "why": why,
              "version_tag": metrics["run"]["version_tag"], "verdict": metrics.get("verdict"),
              "state_digest": metrics["results"][chosen]["state_digest"] if chosen in metrics["results"] else None}
    return export_state(manager, selection.workload, outcome.states[chosen], out, fmt, source)


def echo_export(document: dict, out: Path) -> None:
    written = document["written"]
    check = written.get("reload_check") or {}
    detail = f"; reloaded without icd: max relative difference {check['max_rel_diff']:.2g}" if check else ""
    size = (f" ({written['bytes_on_disk'] / 2**20:,.1f} MiB, {written['size_vs_float32']:.2f}× the model in float32)"
            if written.get("size_vs_float32") is not None else "")
    stored = written.get("transformed_weights") or {}
    if stored.get("vs_float32") is not None:  # a format that stores the transformed weights compressed
        size += f"; its {stored['count']} transformed weights {stored['vs_float32']:.3f}× their float32 bytes"
    echo(f"exported {document['source']['arm']} ({document['source']['why']}) as {document['format']} "
         f"to {out}{size}{detail}")


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(), help="A new (or empty) directory.")
@click.option("--format", "fmt", default="hf", show_default=True,
              help="A format the workload's plugin writes (hf: plain transformers weights).")
@click.option("--arm", help="The arm to export (default: the one the run kept).")
def export(run_dir: str, out: str, fmt: str, arm: str | None) -> None:
    """Write RUN_DIR's chosen state as a model directory (re-derived from its config, digest-checked)."""
    echo_export(rederive_and_export(Path(run_dir), Path(out), fmt, arm), Path(out))


def rederive_and_export(run: Path, out: Path, fmt: str = "hf", arm: str | None = None) -> dict:
    """Re-derive the arm to export (``arm``, else the one ``run`` kept) from ``run``'s config in a
    scratch directory — that arm only, measuring nothing — and export it only if its state digest
    equals the one ``run`` recorded. Returns icd_layout.json."""
    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import load_config
    from icd_core.contract.errors import UsageError
    from icd_core.contract.staging import held_directory
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.export import ARMS, check_out, check_selection
    from icd_core.run.selection import select

    target = check_out(out)
    if arm is not None and arm not in ARMS:
        raise UsageError(f"--arm {arm}: not an arm (expected one of {', '.join(ARMS)})")
    recorded = recorded_metrics(run)
    if arm is not None and arm not in recorded["results"]:
        raise UsageError(f"--arm {arm}: {run} holds no {arm} arm (it holds {', '.join(recorded['results'])})")
    chosen = arm or _kept(recorded)
    config = replay_config(load_config(str(run / "config.json"), (), cli={}), chosen)
    manager = load_plugin_manager()
    selection = select(config, manager.registry)
    check_selection(manager.registry, selection, fmt, "--format")
    with held_directory(Path(tempfile.gettempdir()), "icd-export-") as scratch:
        outcome = launch_committed(manager, selection, RunDirectory(scratch, "replay").open())
        if not outcome.ok:
            raise UsageError(f"{run}: re-deriving the state failed ({outcome.error})")
        expected = recorded["results"].get(chosen, {}).get("state_digest")
        got = outcome.record.metrics["results"].get(chosen, {}).get("state_digest")
        if expected is None or got != expected:
            raise UsageError(f"{run}: re-running its config gave a different {chosen} state (digest "
                             f"{str(got)[:12]}… vs recorded {str(expected)[:12]}…): nothing exported — use "
                             f"icd run --export to write a run's own state")
        return export_outcome(manager, selection, named_after(outcome, run, recorded), target, fmt, arm, chosen)


def replay_config(config: Any, chosen: str) -> Any:
    """``config`` re-deriving ``chosen`` only: the mode that ends in it (compare only for the
    natural-order arm), no measure, no random-order control, no rollback (the recorded run's
    verdicts already chose the arm)."""
    import attrs

    mode = chosen if chosen in ("linear", "iterative") else ("compare" if chosen == "identity" else "linear")
    return attrs.evolve(config, pipeline=attrs.evolve(config.pipeline, mode=mode, random_orders=0),
                        measure=attrs.evolve(config.measure, use=[]),
                        rollback=attrs.evolve(config.rollback, enabled=False))


def recorded_metrics(run: Path) -> dict:
    """RUN/metrics.json of a run that succeeded, bounded (``ICD_LIMIT_JSON_BYTES``, a regular
    file) and holding what an export reads (``run.mode``, ``results``, ``final.rolled_back``); one
    line naming the file and the field otherwise."""
    from icd_core.contract.errors import InputDataError, UsageError
    from icd_core.contract.limits import read_json

    path = run / "metrics.json"
    recorded = read_json(path, "run's metrics file", "json_bytes")

    def require(field: str, kind: type) -> Any:
        value: Any = recorded
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind):
            raise InputDataError(f"{path}: {field} is missing or not a {kind.__name__} "
                                 f"(a run's metrics.json is expected)")
        return value

    if not require("run.ok", bool):
        raise UsageError(f"{run}: the run failed ({recorded['run'].get('error')}): nothing to export")
    for field, kind in (("run.mode", str), ("results", dict), ("final.rolled_back", bool)):
        require(field, kind)
    return recorded


def _kept(metrics: dict) -> str:
    return "pre" if metrics["final"]["rolled_back"] else ("linear" if metrics["run"]["mode"] == "linear"
                                                         else "iterative")


def named_after(outcome: Any, run: Path, recorded: dict) -> Any:
    """The outcome, named after the run it re-derived (not the scratch directory), with that
    run's verdict (the replay measured nothing)."""
    import attrs

    metrics = {**outcome.record.metrics, "run": {**outcome.record.metrics["run"], "name": run.name},
               "verdict": recorded.get("verdict")}
    return attrs.evolve(outcome, path=run, record=attrs.evolve(outcome.record, metrics=metrics))
