"""``icd run``: the pipeline on a workload, into a new run directory."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from icd_core.cli.console import echo
from icd_core.cli.tables import print_summary


def _cli_settings(**given: Any) -> dict[str, Any]:
    """CLI options → dotted config keys (only the ones the user gave)."""
    keys = {"workload": "workload", "solver": "solver.name", "mode": "pipeline.mode", "seed": "seed",
            "repeats": "pipeline.repeats", "out_dir": "report.out_dir", "name": "name", "graph": "graph.source",
            "backend": "execution.backend", "model": "model"}
    out = {keys[k]: v for k, v in given.items() if k in keys and v is not None}
    if given.get("adapter"):
        out["transform.adapters"] = list(given["adapter"])
    if given.get("measure"):
        names = list(given["measure"])
        if "none" in names and len(names) > 1:
            from icd_core.contract.errors import UsageError

            raise UsageError(f"--measure none: quality only, so no other measure ({', '.join(names)})")
        out["measure.use"] = [] if names == ["none"] else names
    if given.get("trace"):
        out["graph.source"] = "trace"
        out["graph.trace.path"] = given["trace"]
    return out


def _default_name(out_dir: Path, workload: str) -> str:
    stem = f"{workload.split(':')[0]}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    name, i = stem, 1
    while (out_dir / name).exists():
        i += 1
        name = f"{stem}-{i}"
    return name


class Progress:
    """The run's progress on a TTY: a line per stage; stages repeated for every permutation
    group (W, π) become one bar each with its ETA (tqdm), sized by the groups the workload
    loaded."""

    PER_GROUP = ("build_w", "fit_permutation")

    def __init__(self) -> None:
        self.groups = 0
        self.bars: dict[tuple, Any] = {}

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("event") == "warning":
            self._close()
            echo(f"  warning: {record['message']}", err=True)
        if record.get("event") != "stage":
            return
        meta = record.get("meta", {})
        if record["stage"] == "load_workload" and isinstance(meta.get("groups"), dict):
            self.groups = len(meta["groups"])
        key = (record["stage"], meta.get("branch"), meta.get("matrix"), meta.get("pi"))
        if record["stage"] in self.PER_GROUP and record["ok"] and self.groups > 1:
            if key not in self.bars:
                self._close()
                from tqdm import tqdm

                what = " ".join(str(meta[k]) for k in ("branch", "matrix", "pi") if k in meta)
                self.bars[key] = tqdm(total=self.groups, desc=f"  {record['stage']} {what}".rstrip(), unit="group",
                                      leave=True, file=sys.stderr)
            bar = self.bars[key]
            bar.update(1)
            if bar.n >= bar.total:
                self._close()
            return
        self._close()
        what = " ".join(f"{k}={meta[k]}" for k in ("branch", "group", "matrix", "pi", "adapter") if k in meta)
        status = "ok" if record["ok"] else "FAILED"
        echo(f"  {record['stage']:<16} {what:<48} {record['t_end'] - record['t_start']:7.3f}s {status}", err=True)

    def _close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars = {}


@click.command()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="YAML, JSON or TOML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override one config key (repeatable).")
@click.option("--workload", metavar="SPEC", help="Workload, e.g. mock or mock:1024.")
@click.option("--model", type=click.Path(), help="A transformers checkpoint directory (config.json + weights).")
@click.option("--graph", metavar="SOURCE", help="Graph source: mock, trace, …")
@click.option("--trace", type=click.Path(dir_okay=False), help="JSONL access trace (implies --graph trace).")
@click.option("--solver", metavar="SPEC", help="Solver name (default auto: the installed solver that prefers itself most).")
@click.option("--adapter", multiple=True, metavar="SPEC", help="Transform, in order: sparsity:2:4, quant:int8, kv:128:0.1.")
@click.option("--measure", multiple=True, metavar="NAME",
              help="Measures to run (default: every installed one); none: quality only, no timing.")
@click.option("--backend", type=click.Choice(["dense", "bsr", "paged", "semi", "auto"]),
              help="How transformed layers execute (default dense): bsr / paged read the layout.")
@click.option("--mode", type=click.Choice(["linear", "iterative", "compare"]), help="Pipeline mode (default compare).")
@click.option("--seed", type=int, help="Seed for every random choice.")
@click.option("--repeats", type=int, help="Timed repeats per measurement.")
@click.option("--out-dir", help="Where run directories go (default runs/).")
@click.option("--name", help="Run directory name (default <workload>-<timestamp>).")
@click.option("--force", is_flag=True, help="Replace an existing run directory of the same name.")
@click.option("--export", "export_dir", type=click.Path(), help="Write the state the run kept as a model directory.")
@click.option("--export-format", default="hf", show_default=True,
              help="Format of --export, one the workload's plugin writes (hf: plain transformers weights).")
@click.option("--export-arm", help="Export this arm instead of the one the run kept (pre, identity, linear, iterative).")
@click.option("--print-config", is_flag=True, help="Print the effective config and exit.")
@click.option("-v", "--verbose", is_flag=True, help="Print every row (each layout metric per group), the gates' rules and the verdict.")
def run(config_path: str | None, overrides: tuple[str, ...], force: bool, print_config: bool, verbose: bool,
        export_dir: str | None, export_format: str, export_arm: str | None, **given: Any) -> None:
    """Build W, permute, transform, re-permute, measure and report one run."""
    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import dump_yaml, load_config
    from icd_core.contract.errors import RunDirectoryError, UsageError
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.selection import select

    config = load_config(config_path, overrides, cli=_cli_settings(**given))
    manager = load_plugin_manager()
    selection = select(config, manager.registry)
    if print_config:
        echo(dump_yaml(selection.config), nl=False)
        return
    if export_dir is not None:
        from icd_core.run.export import ARMS, check_out, check_selection

        check_out(export_dir, "--export")  # before the run: a bad target fails in a second, not after it
        if export_arm is not None and export_arm not in ARMS:
            raise UsageError(f"--export-arm {export_arm}: not an arm (arms: {', '.join(ARMS)})")
        check_selection(manager.registry, selection, export_format)
    out_dir = Path(selection.config.report.out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"report.out_dir {out_dir}: not a directory")
    name = selection.config.name or _default_name(out_dir, selection.workload.name)
    run_dir = RunDirectory(out_dir, name, replace=force).open()
    outcome = launch_committed(manager, selection, run_dir, [Progress()] if sys.stderr.isatty() else [])
    path = outcome.path
    print_summary(outcome.record.metrics, verbose)
    warnings = [e["message"] for e in outcome.record.events if e.get("event") == "warning"]
    if warnings and not sys.stderr.isatty():  # on a terminal they were shown as they happened
        for message in dict.fromkeys(warnings):
            echo(f"warning: {message}", err=True)
    echo(f"run directory: {path}")
    if not outcome.ok:
        rollback = outcome.record.metrics.get("rollback")
        rolled = "" if not rollback else (" (applied steps rolled back and verified; see rollback/)"
                                          if rollback.get("verified") else " (see rollback/)")
        echo(f"icd: error: run failed: {outcome.error}{rolled}", err=True)
        sys.exit(1)
    if export_dir is not None:
        from icd_core.cli.export import echo_export, export_outcome

        echo_export(export_outcome(manager, selection, outcome, Path(export_dir), export_format, export_arm),
                    Path(export_dir))
