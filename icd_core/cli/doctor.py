"""``icd doctor``: what this machine can measure, and why not."""

from __future__ import annotations

import shutil
import subprocess
import time

import click

from icd_core.cli.tables import render_table


def _perf_counters() -> str:
    if not shutil.which("perf"):
        return "perf not installed"
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"perf failed: {exc}"
    return "hardware counters readable" if "not supported" not in out.stderr and out.returncode == 0 \
        else "no hardware counters (perf says <not supported>)"


@click.command()
def doctor() -> None:
    """Environment fingerprint, measurement tools and plugin health."""
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.report.environment import fingerprint

    env = fingerprint()
    click.echo(render_table(["key", "value"], sorted((k, v) for k, v in env.items())))
    t0 = time.perf_counter()
    try:
        import torch

        torch_line = f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()} " \
                     f"(import {time.perf_counter() - t0:.1f}s)"
    except ImportError as exc:
        torch_line = f"torch not importable: {exc}"
    tools = [
        ("torch", torch_line),
        ("ncu", shutil.which("ncu") or "not on PATH"),
        ("valgrind", shutil.which("valgrind") or "not on PATH"),
        ("perf", _perf_counters()),
    ]
    click.echo()
    click.echo(render_table(["tool", "status"], tools))
    manager = load_plugin_manager()
    click.echo()
    click.echo(render_table(["component", "kind", "provider", "status"],
                            [[c.name, c.kind, c.provider, c.status] for c in manager.registry]))
    failed = manager.failures()
    if failed:
        click.echo()
        click.echo(render_table(["plugin", "distribution", "status"], [[r.name, r.distribution, r.status] for r in failed]))
