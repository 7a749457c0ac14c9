"""``icd sweep SPEC``: a grid of runs, resumable; see :mod:`icd_core.run.sweep`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--executor", type=click.Choice(["local"]), default="local", show_default=True,
              help="Where trials run: local processes.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Trials at a time (default: one per core); each gets its share of the cores.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Retries of a failed trial, with exponential backoff.")
@click.option("--out-dir", default="sweeps", show_default=True, help="Where sweep directories go.")
@click.option("--name", default=None, help="Sweep directory name (default: the spec file's stem).")
@click.option("--grid", "grid_args", multiple=True, metavar="KEY=V1,V2", help="Add or replace a grid axis.")
@click.option("--set", "set_args", multiple=True, metavar="KEY.PATH=VALUE", help="Override a base config key.")
def sweep(spec: str, executor: str, workers: int | None, retries: int, out_dir: str, name: str | None,
          grid_args: tuple[str, ...], set_args: tuple[str, ...]) -> None:
    """Run every trial of SPEC (base config × grid × seeds), one `icd run` each, into
    OUT_DIR/NAME/<trial>/, with sweep.json (resumable manifest) and sweep.csv."""
    from filelock import FileLock, Timeout

    from icd_core import __version__
    from icd_core.contract.errors import UsageError
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.report.sweeps import sweep_csv
    from icd_core.run.artifacts import write_text_atomic
    from icd_core.run.executors import available_cores, run_local
    from icd_core.run.sweep import Manifest, load_spec, plan

    loaded = load_spec(spec, grid_args, set_args)
    manager = load_plugin_manager()
    versions = {"icd-co": __version__, **{r.distribution: r.version for r in manager.rows if not r.failed}}
    trials = plan(loaded, manager.registry, versions)
    name = name or Path(spec).stem
    sweep_dir = Path(out_dir) / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sweep_dir / ".sweep.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(f"sweep {name}: another sweep is running in {sweep_dir} (it holds .sweep.lock)") from None
    counts = {"executed": 0, "skipped": 0, "failed": 0}
    try:
        manifest = Manifest.open(sweep_dir, name, loaded, trials)
        pending = []
        for trial in trials:
            entry = manifest.entry(trial.name)
            finished = (sweep_dir / trial.name / "metrics.json").is_file()
            if entry["state"] == "done" and finished:
                counts["skipped"] += 1
                continue
            pending.append((trial.name, dict(trial.config), (sweep_dir / trial.name).exists()))
        total, started = len(pending), time.perf_counter()
        tty = sys.stderr.isatty()

        def on_done(outcome) -> None:
            manifest.update(outcome.name, state="done" if outcome.ok else "failed", error=outcome.error,
                            seconds=round(outcome.seconds, 3), attempts=manifest.entry(outcome.name)["attempts"]
                            + outcome.attempts)
            counts["executed" if outcome.ok else "failed"] += 1
            if not outcome.ok:
                click.echo(f"trial {outcome.name} failed after {outcome.attempts} attempt(s): {outcome.error}",
                           err=True)
            if tty:
                done = counts["executed"] + counts["failed"]
                eta = (time.perf_counter() - started) / done * (total - done)
                click.echo(f"\r  {done}/{total} done, {counts['failed']} failed, ETA {eta:.0f} s ", err=True, nl=False)

        try:
            run_local(sweep_dir, pending, workers or len(available_cores()), retries, on_done)
        except KeyboardInterrupt:
            write_text_atomic(sweep_dir / "sweep.csv", sweep_csv(sweep_dir, manifest.data))
            click.echo(_summary(name, len(trials), counts) + " (interrupted: run it again to resume)")
            sys.exit(130)
        if tty and total:
            click.echo("", err=True)
        write_text_atomic(sweep_dir / "sweep.csv", sweep_csv(sweep_dir, manifest.data))
    finally:
        lock.release()
    click.echo(f"sweep directory: {sweep_dir}")
    click.echo(_summary(name, len(trials), counts))
    if counts["failed"]:
        sys.exit(1)


def _summary(name: str, trials: int, counts: dict[str, int]) -> str:
    return f"sweep {name}: {trials} trials, {counts['executed']} executed, {counts['skipped']} skipped, " \
           f"{counts['failed']} failed"
