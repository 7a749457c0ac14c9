"""Plugins that hang or exit, sweeps with hostile names, specs, manifests and hung trials."""

from __future__ import annotations

import json

from .conftest import run_icd

MOCK = ["--workload", "mock:hidden=64:tokens=8", "--set", "pipeline.repeats=3", "--set", "pipeline.warmup_iter=1"]


def test_a_hook_that_hangs_becomes_the_plugins_recorded_failure(tmp_path, hostile_plugin):
    done = run_icd("run", *MOCK, "--adapter", "hostile", "--mode", "linear", "--set", "pipeline.hook_timeout_s=2",
                   "--out-dir", str(tmp_path), "--name", "hung", env={**hostile_plugin, "HOSTILE_MODE": "sleep_adapter"},
                   timeout=90)
    assert done.code == 0, done.stderr
    warning = next(line for line in done.lines if line.startswith("warning: adapter hostile failed"))
    assert "icd_apply_transform for adapter 'hostile' did not answer within 2 s (abandoned)" in warning
    assert json.loads((tmp_path / "hung" / "metrics.json").read_text())["run"]["ok"] is True


def test_a_plugin_that_exits_is_a_plugin_failure_never_a_silent_success(tmp_path, hostile_plugin):
    done = run_icd("run", *MOCK, "--adapter", "hostile", "--mode", "linear", "--out-dir", str(tmp_path),
                   "--name", "exits", env={**hostile_plugin, "HOSTILE_MODE": "exit_adapter"}, timeout=90)
    assert done.code == 0 and (tmp_path / "exits" / "metrics.json").is_file(), done.stderr
    assert any("raised SystemExit(0); a plugin may not end the process" in line for line in done.lines), done.stderr


def test_a_plugin_that_hangs_in_register_leaves_plugins_list_and_doctor_answering(hostile_plugin):
    env = {**hostile_plugin, "HOSTILE_MODE": "sleep_register", "ICD_REGISTER_TIMEOUT_S": "2"}
    listed = run_icd("plugins", "list", env=env, timeout=30)
    assert listed.code == 0 and listed.seconds < 15, listed.stderr
    assert "icd_register did not answer within 2 s" in listed.stdout + listed.stderr
    assert "spectral" in listed.stdout  # the others are listed as usual
    doctor = run_icd("doctor", env=env, timeout=60)
    assert doctor.seconds < 40 and "did not answer within 2 s" in doctor.stdout + doctor.stderr


def spec(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


BASE = "base:\n  workload: mock:hidden=64:tokens=8\n  pipeline: {repeats: 3, warmup_iter: 1, mode: linear}\n"


def test_a_sweep_name_that_leaves_the_out_dir_is_refused(tmp_path):
    path = spec(tmp_path, BASE + "seeds: [0]\n")
    for name in ("../../x", "/abs", ".hidden", "a\nb"):
        done = run_icd("sweep", str(path), "--out-dir", str(tmp_path / "out"), "--name", name)
        assert done.code == 2 and "sweep name" in done.error, done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x").exists()


def test_a_million_trial_grid_is_refused_before_planning(tmp_path):
    grid = "grid:\n  seed: [" + ",".join(map(str, range(1000))) + "]\n  pipeline.repeats: [" + \
        ",".join(map(str, range(3, 1003))) + "]\n"
    done = run_icd("sweep", str(spec(tmp_path, BASE + grid)), "--out-dir", str(tmp_path / "out"), timeout=30)
    assert done.code == 2 and "the grid plans 1,000,000 trials, over the limit of 10,000 (ICD_LIMIT_TRIALS)" in done.error


def test_a_trial_that_hangs_is_stopped_and_failed_and_the_sweep_goes_on(tmp_path, hostile_plugin):
    text = BASE + "grid:\n  transform.adapters: [[hostile], []]\n"
    env = {**hostile_plugin, "HOSTILE_MODE": "sleep_adapter"}
    done = run_icd("sweep", str(spec(tmp_path, text)), "--out-dir", str(tmp_path / "out"), "--workers", "1",
                   "--retries", "0", "--trial-timeout", "15", env=env, timeout=150)
    assert done.code == 1, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "sweep spec: 2 trials, 1 executed, 0 skipped, 1 failed"
    manifest = json.loads((tmp_path / "out" / "spec" / "sweep.json").read_text())
    states = {t["params"]["transform.adapters"] == ["hostile"]: (t["state"], t["error"]) for t in manifest["trials"]}
    assert states[True] == ("failed", "timed out after 15 s (stopped)") and states[False] == ("done", None)


def test_a_manifest_that_is_not_one(tmp_path):
    sweep = tmp_path / "s"
    sweep.mkdir()
    (sweep / "sweep.json").write_text('{"trials": 5}')
    done = run_icd("sweep", "report", str(sweep))
    assert done.code == 1 and "trials: expected a list of trial entries with a name, got int" in done.error
    (sweep / "sweep.json").unlink()
    (sweep / "sweep.json").symlink_to("/dev/zero")
    done = run_icd("sweep", "report", str(sweep))
    assert done.code == 1 and "is a device; expected a sweep manifest" in done.error and done.peak_mb < 600


def test_a_done_trial_whose_run_failed_runs_again_and_a_report_that_cannot_be_written_keeps_the_summary(tmp_path):
    path = spec(tmp_path, BASE + "seeds: [0]\n")
    out = tmp_path / "out"
    assert run_icd("sweep", str(path), "--out-dir", str(out), timeout=90).code == 0
    sweep = out / "spec"
    metrics = next(sweep.glob("seed-0_*/metrics.json"))
    doc = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**doc, "run": {**doc["run"], "ok": False}}))  # the manifest still says done
    (sweep / "sweep.csv").unlink()
    (sweep / "sweep.csv").mkdir()  # the report cannot be written there (as on a full disk)
    again = run_icd("sweep", str(path), "--out-dir", str(out), timeout=90)
    assert again.stdout.strip().splitlines()[-1] == "sweep spec: 1 trials, 1 executed, 0 skipped, 0 failed"
    assert again.code == 1 and again.error.endswith("sweep.csv: cannot write (Is a directory)"), again.stderr
    assert json.loads(metrics.read_text())["run"]["ok"] is True
