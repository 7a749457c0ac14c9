"""Shared fixtures: a builtins-only plugin manager, run helpers, third-party installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from icd_core import hookimpl
from icd_core.cli.launch import launch_committed
from icd_core.config.files import load_config
from icd_core.run.artifacts import RunDirectory
from icd_core.run.selection import select
from icd_core.testing import fresh_manager

ROOT = Path(__file__).resolve().parents[1]
THIRDPARTY = Path(__file__).parent / "thirdparty"
ICD = [sys.executable, "-m", "icd_core.cli"]

FAST = {"pipeline.repeats": 3, "pipeline.warmup_iter": 1, "workload": "mock:hidden=128:tokens=32"}


def make_plugin(name: str, **hooks) -> types.ModuleType:
    """A plugin module built in a test: each keyword is a hook implementation."""
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def run_pipeline(out_dir: Path, *plugins, name: str = "run", overrides: dict | None = None,
                 manager=None):
    """Run the pipeline in-process on the small mock; returns (outcome, run path)."""
    manager = manager or fresh_manager(*plugins)
    config = load_config(cli={**FAST, "report.out_dir": str(out_dir), **(overrides or {})})
    selection = select(config, manager.registry)
    outcome = launch_committed(manager, selection, RunDirectory(out_dir, name).open())
    return outcome, outcome.path


def icd(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (its own interpreter, real entry points)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*ICD, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def thirdparty(tmp_path_factory) -> dict[str, Path]:
    """Install each test distribution into its own --target directory, as pip would for a user.

    Returns name → directory to put on PYTHONPATH.
    """
    out = {}
    for project in sorted(THIRDPARTY.iterdir()):
        source = tmp_path_factory.mktemp("src") / project.name
        shutil.copytree(project, source)
        target = tmp_path_factory.mktemp(project.name)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(source)],
                       check=True, capture_output=True, text=True)
        out[project.name] = target
    return out


def pythonpath(*dirs: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(d) for d in dirs)}
