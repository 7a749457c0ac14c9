"""Plugins installed the way a third party's would be (pip install --target + PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from .conftest import ICD, icd, pythonpath

FAST = ["--repeats", "3", "--set", "pipeline.warmup_iter=1", "--workload", "mock:hidden=128:tokens=32"]


def test_example_adapter_is_listed_and_runs(thirdparty, tmp_path):
    env = pythonpath(thirdparty["icd-adapter-bf16"])
    listed = json.loads(icd("plugins", "list", "--json", env=env).stdout)
    row = next(r for r in listed if r["name"] == "bf16")
    assert (row["distribution"], row["version"], row["status"]) == ("icd-adapter-bf16", "0.2.0", "ok")
    assert row["provides"] == ["adapter:bf16"]
    assert "bf16" in icd("--version", env=env).stdout
    done = icd("run", *FAST, "--adapter", "bf16", "--out-dir", str(tmp_path), "--name", "bf", env=env)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "bf" / "metrics.json").read_text())
    meta = metrics["results"]["linear"]["transforms"][0]
    assert meta["adapter"] == "bf16" and meta["noop"] is False and meta["details"]["quant"]["dtype"] == "bf16"
    cosine = metrics["results"]["linear"]["quality"]["cosine_pct"]["value"]
    assert 99.99 < cosine < 100.0  # bf16 rounding costs a little, not nothing


def test_bf16_rounding_matches_torch():
    import torch

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "thirdparty" / "icd-adapter-bf16"))
    try:
        from icd_adapter_bf16.plugin import round_to_bf16
    finally:
        sys.path.pop(0)
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 100
    expected = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(round_to_bf16(x), expected)


def test_broken_plugin_is_isolated(thirdparty):
    env = pythonpath(thirdparty["icd-broken-plugin"])
    helped = icd("--help", env=env)
    assert helped.returncode == 0 and "Commands:" in helped.stdout
    version = icd("--version", env=env)
    assert version.returncode == 0 and "broken" in version.stdout
    listed = icd("plugins", "list", env=env)
    assert listed.returncode == 0
    broken_line = next(line for line in listed.stdout.splitlines() if line.startswith("broken"))
    assert "error: import failed: ModuleNotFoundError: No module named 'icd_missing_dependency_xyz'" in broken_line
    assert any(line.startswith("spectral") and line.rstrip().endswith("ok") for line in listed.stdout.splitlines())
    checked = icd("plugins", "check", env=env)
    assert checked.returncode == 1 and "FAIL  broken (icd-broken-plugin)" in checked.stdout
    strict = icd("plugins", "list", env={**env, "ICD_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.strip().startswith("icd: error: plugin 'broken' (icd-broken-plugin): import failed")
    disabled = icd("plugins", "check", env={**env, "ICD_DISABLE_PLUGINS": "broken"})
    assert disabled.returncode == 0
    shown = json.loads(icd("plugins", "list", "--json", env={**env, "ICD_DISABLE_PLUGINS": "icd-broken-plugin"}).stdout)
    assert next(r for r in shown if r["name"] == "broken")["status"] == "disabled"


def test_duplicate_names_from_two_distributions(thirdparty, tmp_path):
    env = pythonpath(thirdparty["icd-dup-sparsity"])
    listed = json.loads(icd("plugins", "list", "--json", env=env).stdout)
    statuses = {r["distribution"]: r["status"] for r in listed}
    assert statuses["icd-dup-sparsity"] == "error: duplicate adapter 'sparsity' (also provided by icd-adapter-sparsity)"
    assert statuses["icd-adapter-sparsity"] == "error: duplicate adapter 'sparsity' (also provided by icd-dup-sparsity)"
    done = icd("run", *FAST, "--adapter", "sparsity:2:4", "--out-dir", str(tmp_path), env=env)
    assert done.returncode == 2  # a usage error: disable one of them
    assert "adapter 'sparsity' is provided by both icd-adapter-sparsity and icd-dup-sparsity" in done.stderr
    assert icd("plugins", "check", env=env).returncode == 1


def test_killed_run_leaves_no_partial_artifact(thirdparty, tmp_path):
    marker = tmp_path / "reached"
    runs = tmp_path / "runs"
    env = {**os.environ, **pythonpath(thirdparty["icd-testkit"]), "ICD_TESTKIT_MARKER": str(marker)}
    proc = subprocess.Popen([*ICD, "run", *FAST, "--adapter", "sleepy", "--out-dir", str(runs), "--name", "k"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, "run ended before reaching the adapter"
            time.sleep(0.05)
        staging = [p for p in runs.iterdir() if p.name.startswith(".k.partial-")]
        assert staging and (staging[0] / "W.npz").exists()  # artifacts were being written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    visible = [p.name for p in runs.iterdir() if not p.name.startswith(".")]
    assert visible == []  # no run directory, so no partial artifact anyone could read
    done = icd("run", *FAST, "--out-dir", str(runs), "--name", "k", env=pythonpath(thirdparty["icd-testkit"]))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in runs.iterdir() if ".partial-" in p.name] == []
    assert json.loads((runs / "k" / "metrics.json").read_text())["run"]["ok"] is True


def test_testkit_failure_and_regression_through_the_cli(thirdparty, tmp_path):
    env = pythonpath(thirdparty["icd-testkit"])
    done = icd("run", *FAST, "--adapter", "explode", "--out-dir", str(tmp_path), "--name", "e", env=env)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["results"]["linear"]["transforms"][0]["reason"] == "RuntimeError: injected adapter failure"
    done = icd("run", *FAST, "--adapter", "degrade", "--set", "rollback.quality_pp=1", "--out-dir", str(tmp_path),
               "--name", "d", env=env)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["rollback"]["verified"] is True
    assert metrics["final"]["state_digest"] == metrics["results"]["pre"]["state_digest"]
    assert (tmp_path / "d" / "rollback" / "rollback.json").is_file()


def test_a_misspelled_hook_argument_shows_pluggys_whole_reason(thirdparty, tmp_path):
    env = pythonpath(thirdparty["icd-misspelled"])
    listed = icd("plugins", "list", env=env)
    line = next(line for line in listed.stdout.splitlines() if line.startswith("misspelled"))
    assert "error: invalid hooks: PluginValidationError:" in line
    assert "{'measur'}" in line and "hookspec" in line  # pluggy's second and third lines, not only its first
    checked = icd("plugins", "check", env=env)
    assert checked.returncode == 1 and "{'measur'}" in checked.stdout
    run = icd("run", *FAST, "--measure", "typo", "--out-dir", str(tmp_path), env=env)
    assert run.returncode == 2
    assert "unknown measure 'typo'" in run.stderr
    assert "plugin icd-misspelled (misspelled) failed to load: invalid hooks" in run.stderr


def test_a_failed_measure_and_a_failed_adapter_each_warn_once_on_the_console_and_in_the_report(thirdparty,
                                                                                                 tmp_path):
    env = pythonpath(thirdparty["icd-testkit"])
    done = icd("run", *FAST, "--adapter", "explode", "--measure", "wallclock", "--measure", "floaty",
               "--out-dir", str(tmp_path), "--name", "w", env=env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    floaty = [w for w in warnings if "measure floaty failed" in w]
    explode = [w for w in warnings if "adapter explode failed" in w]
    assert len(floaty) == 1 and "not Figure records" in floaty[0]
    assert len(explode) == 1 and "injected adapter failure" in explode[0]
    html = (tmp_path / "w" / "report.html").read_text()
    assert "measure floaty failed" in html and "adapter explode failed" in html


def test_metrics_and_the_version_tag_carry_every_plugins_version(thirdparty, tmp_path):
    base = pythonpath(thirdparty["icd-adapter-bf16"])
    done = icd("run", *FAST, "--adapter", "bf16", "--out-dir", str(tmp_path), "--name", "a", env=base)
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "a" / "metrics.json").read_text())["run"]
    plugins = {p["distribution"]: p["version"] for p in run["plugins"]}
    assert plugins["icd-adapter-bf16"] == "0.2.0" and "icd-solver-spectral" in plugins and "icd-co" in plugins
    both = pythonpath(thirdparty["icd-adapter-bf16"], thirdparty["icd-testkit"])
    done = icd("run", *FAST, "--adapter", "bf16", "--out-dir", str(tmp_path), "--name", "b", env=both)
    assert done.returncode == 0, done.stderr
    other = json.loads((tmp_path / "b" / "metrics.json").read_text())["run"]
    assert other["version_tag"] != run["version_tag"]  # one more plugin installed: another tag
