"""``icd sweep SPEC`` (a grid of runs, resumable; see :mod:`icd_core.run.sweep`) and
``icd sweep report DIR`` (re-render sweep.csv and sweep.html)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


class SpecOrCommand(click.Group):
    """``icd sweep SPEC …`` runs a sweep; ``icd sweep report DIR`` re-renders one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=SpecOrCommand)
def sweep() -> None:
    """Many runs from one spec: `icd sweep SPEC [options]`, or `icd sweep report DIR`."""


def write_reports(sweep_dir: Path, manifest: dict) -> str | None:
    """sweep.csv, then sweep.html; returns why sweep.html was not written, or None."""
    from icd_core.contract.errors import ArtifactWriteError
    from icd_core.report.sweep_html import render_sweep_html
    from icd_core.report.sweeps import sweep_csv
    from icd_core.run.artifacts import write_text_atomic

    def write(path: Path, text: str) -> None:
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise ArtifactWriteError(f"{path}: cannot write ({exc.strerror or exc})") from None

    write(sweep_dir / "sweep.csv", sweep_csv(sweep_dir, manifest))
    try:
        page = render_sweep_html(sweep_dir, manifest)
    except ImportError:
        return 'sweep.html not written: matplotlib is not installed (pip install matplotlib)'
    write(sweep_dir / "sweep.html", page)
    return None


@sweep.command("run")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where trials run: local processes, or Ray tasks.")
@click.option("--address", default=None, help="Ray: 'auto' or ray://host:port of a cluster (default: a local Ray).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Trials at a time (default: one per core); each gets its share of the cores.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Retries of a failed trial, with exponential backoff.")
@click.option("--out-dir", default="sweeps", show_default=True, help="Where sweep directories go.")
@click.option("--name", default=None, help="Sweep directory name (default: the spec file's stem).")
@click.option("--grid", "grid_args", multiple=True, metavar="KEY=V1,V2", help="Add or replace a grid axis.")
@click.option("--set", "set_args", multiple=True, metavar="KEY.PATH=VALUE", help="Override a base config key.")
@click.option("--trial-timeout", type=click.FloatRange(min=0, min_open=True), default=4 * 3600.0, show_default=True,
              help="Seconds one trial may run; past it the trial is stopped and marked failed.")
@click.option("--force", is_flag=True, help="Replace the manifest of another spec under the same name.")
def run_sweep(spec: str, executor: str, address: str | None, workers: int | None, retries: int, out_dir: str,
              name: str | None, grid_args: tuple[str, ...], set_args: tuple[str, ...], trial_timeout: float,
              force: bool) -> None:
    """Run every trial of SPEC (base config × grid × seeds), one `icd run` each, into
    OUT_DIR/NAME/<trial>/, with sweep.json (the resumable manifest), sweep.csv and sweep.html."""
    from filelock import FileLock, Timeout

    from icd_core import __version__
    from icd_core.contract.errors import IcdError, UsageError
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.artifacts import check_name
    from icd_core.run.executors import run_local
    from icd_core.run.sweep import Manifest, finished, load_spec, plan
    from icd_core.run.timing import available_cores

    if address and executor != "ray":
        raise UsageError("--address: only with --executor ray")
    loaded = load_spec(spec, grid_args, set_args)
    manager = load_plugin_manager()
    versions = {"icd-co": __version__, **{r.distribution: r.version for r in manager.rows if not r.failed}}
    trials = plan(loaded, manager.registry, versions)
    name = check_name(name or Path(spec).stem, "sweep name", UsageError)
    sweep_dir = Path(out_dir) / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sweep_dir / ".sweep.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(f"sweep {name}: another sweep is running in {sweep_dir} (it holds .sweep.lock)") from None
    counts = {"executed": 0, "skipped": 0, "failed": 0}
    try:
        manifest = Manifest.open(sweep_dir, name, loaded, trials, force=force)
        pending = []
        for trial in trials:
            if manifest.entry(trial.name)["state"] == "done" and finished(sweep_dir / trial.name):
                counts["skipped"] += 1
                continue
            pending.append((trial.name, dict(trial.config), (sweep_dir / trial.name).exists()))
        total, started = len(pending), time.perf_counter()
        tty = sys.stderr.isatty()

        def on_done(outcome) -> None:
            manifest.update(outcome.name, state="done" if outcome.ok else "failed", error=outcome.error,
                            seconds=round(outcome.seconds, 3),
                            attempts=manifest.entry(outcome.name)["attempts"] + outcome.attempts)
            counts["executed" if outcome.ok else "failed"] += 1
            if not outcome.ok:
                click.echo(f"trial {outcome.name} failed after {outcome.attempts} attempt(s): {outcome.error}",
                           err=True)
            if tty:
                done = counts["executed"] + counts["failed"]
                eta = (time.perf_counter() - started) / done * (total - done)
                click.echo(f"\r  {done}/{total} done, {counts['failed']} failed, ETA {eta:.0f} s ", err=True, nl=False)

        concurrency = workers or len(available_cores())
        try:
            if executor == "ray" and pending:
                from icd_core.cli.launch import run_trial
                from icd_core.run.ray_executor import run_ray

                run_ray(sweep_dir, pending, concurrency, retries, on_done, run_trial, address=address)
            elif pending:
                run_local(sweep_dir, pending, concurrency, retries, on_done, timeout_s=trial_timeout)
        except KeyboardInterrupt:
            write_reports(sweep_dir, manifest.data)
            click.echo(_summary(name, len(trials), counts) + " (interrupted: run it again to resume)")
            sys.exit(130)
        if tty and total:
            click.echo("", err=True)
        try:
            note, failure = write_reports(sweep_dir, manifest.data), None
        except IcdError as exc:  # the trials' results stand; say which report could not be written
            note, failure = None, exc
    finally:
        lock.release()
    if note:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"sweep directory: {sweep_dir}")
    click.echo(_summary(name, len(trials), counts))
    if failure is not None:
        raise failure
    if counts["failed"]:
        sys.exit(1)


@sweep.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def report_sweep(directory: str) -> None:
    """Re-render DIRECTORY's sweep.csv and sweep.html from its sweep.json and trial runs."""
    import json

    from icd_core.contract.errors import InputDataError
    from icd_core.contract.limits import read_text

    path = Path(directory) / "sweep.json"
    try:
        manifest = json.loads(read_text(path, "sweep manifest", "json_bytes"))
        trials = manifest["trials"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InputDataError(f"{path}: not a sweep manifest ({type(exc).__name__}: {exc})") from None
    if not isinstance(trials, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in trials):
        raise InputDataError(f"{path}: trials: expected a list of trial entries with a name, got "
                             f"{type(trials).__name__}")
    note = write_reports(Path(directory), manifest)
    if note:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"wrote {Path(directory) / 'sweep.csv'}" + ("" if note else f" and {Path(directory) / 'sweep.html'}"))


def _summary(name: str, trials: int, counts: dict[str, int]) -> str:
    return f"sweep {name}: {trials} trials, {counts['executed']} executed, {counts['skipped']} skipped, " \
           f"{counts['failed']} failed"
