"""No secrets and no home paths in a run's artifacts (events, metrics, config, reports)."""

from __future__ import annotations

import json

import numpy as np

from icd_core.run.privacy import redact

from .conftest import icd

TOKEN = "hf_FAKEzQ8wT3stT0k3nDoNotLeak42"
SECRET = "sk-planted-s3cret-Value-9911"


def test_redact_replaces_home_and_secret_values(monkeypatch, tmp_path):
    home = tmp_path / "home" / "fake-user-q7z"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("OMP_NUM_THREADS", "12345678")  # not secret-looking: kept
    text = f'{{"path": "{home}/runs/x", "other": "{home}-backup", "t": "{TOKEN}", "n": "12345678"}}'
    assert json.loads(redact(text)) == {"path": "~/runs/x", "other": f"{home}-backup", "t": "[redacted]",
                                        "n": "12345678"}


def test_no_artifact_of_a_run_holds_the_token_or_the_home_path(tmp_path):
    home = tmp_path / "home" / "fake-user-q7z"
    (home / "work").mkdir(parents=True)
    rng = np.random.default_rng(0)
    trace = home / "work" / "trace.jsonl"  # an input under home: its path is recorded, as ~
    blocks = rng.permutation(512).reshape(32, 16)
    trace.write_text("".join(json.dumps({"dims": rng.choice(blocks[i % 32], 6, replace=False).tolist()}) + "\n"
                             for i in range(600)))
    env = {"HOME": str(home), "HF_TOKEN": TOKEN, "AWS_SECRET_ACCESS_KEY": SECRET, "ICD_API_KEY": SECRET + "x"}
    done = icd("run", "--workload", "mock", "--solver", "spectral", "--trace", str(trace), "--out-dir",
               str(home / "runs"), "--name", "private", env=env, cwd=home / "work")
    assert done.returncode == 0, done.stderr
    run = home / "runs" / "private"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {"events.jsonl", "metrics.json", "config.json", "report.html", "report.csv"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        for planted in (TOKEN, SECRET, str(home)):
            assert planted.encode() not in data, f"{path.name} holds {planted}"
    config = json.loads((run / "config.json").read_text())
    assert config["graph"]["trace"]["path"] == "~/work/trace.jsonl"
    assert config["report"]["out_dir"] == "~/runs"
    # The recorded config replays: ~ is expanded again.
    again = icd("run", "--config", str(run / "config.json"), "--name", "again", env=env, cwd=home)
    assert again.returncode == 0, again.stderr
    assert (home / "runs" / "again" / "metrics.json").exists()
