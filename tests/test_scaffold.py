"""``icd plugins new``: what it writes installs, is listed, keeps the contract and passes its tests."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from icd_core.plugin.scaffold import KINDS
from icd_core.testing import check_conformance, fresh_manager

from .conftest import icd, pythonpath

FAST = ["--repeats", "3", "--set", "pipeline.warmup_iter=1", "--workload", "mock:hidden=128:tokens=32"]


def pytest_of(project, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_new_adapter_installs_is_listed_checks_passes_its_tests_and_runs(tmp_path):
    made = icd("plugins", "new", "adapter", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "icd-adapter-demo"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(project)],
                   check=True, capture_output=True, text=True)
    env = pythonpath(target)
    listed = json.loads(icd("plugins", "list", "--json", env=env).stdout)
    row = next(r for r in listed if r["distribution"] == "icd-adapter-demo")
    assert (row["name"], row["status"], row["provides"]) == ("demo", "ok", ["adapter:demo"])
    checked = icd("plugins", "check", env=env)
    assert checked.returncode == 0 and "ok    demo (icd-adapter-demo 0.1.0)" in checked.stdout, checked.stdout
    tested = pytest_of(project, env={**os.environ, **env})
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout + tested.stderr
    run = icd("run", *FAST, "--adapter", "demo:0.3", "--out-dir", str(tmp_path / "runs"), "--name", "r", env=env)
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())["results"]["linear"]["transforms"][0]
    assert meta["adapter"] == "demo" and meta["noop"] is False and meta["stats"]["zeroed"] > 0


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "adapter"])
def test_every_other_kind_keeps_the_contract_and_passes_its_tests(tmp_path, kind, monkeypatch):
    assert icd("plugins", "new", kind, "demo", "--dir", str(tmp_path)).returncode == 0
    project = tmp_path / f"icd-{kind}-demo"
    monkeypatch.syspath_prepend(str(project))
    plugin = importlib.import_module(f"icd_{kind}_demo.plugin")
    manager = fresh_manager(plugin)
    assert check_conformance(manager, plugin) == []
    tested = pytest_of(project, env={**os.environ, "PYTHONPATH": str(project)})
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout + tested.stderr


def test_bad_kinds_names_and_an_existing_directory_get_one_line_and_write_nothing(tmp_path):
    bad_kind = icd("plugins", "new", "reporter", "x", "--dir", str(tmp_path))
    assert bad_kind.returncode == 2 and "'reporter' is not one of" in bad_kind.stderr
    bad_name = icd("plugins", "new", "adapter", "Bad-Name", "--dir", str(tmp_path))
    assert bad_name.returncode == 2
    assert bad_name.stderr.strip() == ("icd: error: plugins new: NAME 'Bad-Name': expected lower-case letters, "
                                       "digits and _ (a component name and a Python identifier), starting with a "
                                       "letter")
    assert list(tmp_path.iterdir()) == []
    assert icd("plugins", "new", "adapter", "demo", "--dir", str(tmp_path)).returncode == 0
    again = icd("plugins", "new", "adapter", "demo", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists (nothing was written)" in again.stderr
