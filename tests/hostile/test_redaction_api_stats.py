"""Redaction that cannot corrupt, the Python API's checks, CSV cells, CIs that are 95 %, and
the same π on a loaded machine."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import icd
from icd_core import InputDataError, UsageError
from icd_core.run.privacy import redact
from icd_core.run.stats import median_ci, summarize

from .conftest import run_icd

NUMERIC = "12205037"  # a secret of digits: appears inside floats that must stay numbers
PATHLIKE = "tok9Zq2vPLANTED"


def test_redaction_touches_whole_tokens_inside_json_strings_only(monkeypatch):
    monkeypatch.setenv("MY_TOKEN", NUMERIC)
    monkeypatch.setenv("DATA_SECRET", PATHLIKE)
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # under 8 characters: a setting, not a secret
    doc = {"lat": 0.122050371, "v": 12205037, "ms": [1.12205037], "p": f"/data/{PATHLIKE}/t.jsonl",
           "s": NUMERIC, "word": f"x{PATHLIKE}y", "abc": "abc"}
    out = json.loads(redact(json.dumps(doc), json_text=True))
    assert out == {**doc, "p": "/data/[redacted]/t.jsonl", "s": "[redacted]"}
    assert redact(f"error: /data/{PATHLIKE}/x at 0.122050371") == "error: /data/[redacted]/x at 0.122050371"


def test_a_run_with_numeric_and_path_secrets_keeps_every_file_valid(tmp_path):
    data = tmp_path / PATHLIKE
    data.mkdir()
    rng = np.random.default_rng(0)
    trace = data / "trace.jsonl"
    trace.write_text("".join(json.dumps({"dims": rng.choice(64, 6, replace=False).tolist()}) + "\n" for _ in range(300)))
    env = {"MY_TOKEN": NUMERIC, "DATA_SECRET": PATHLIKE}
    done = run_icd("run", "--workload", "mock:hidden=64:tokens=8", "--trace", str(trace), "--set", "pipeline.repeats=3",
                   "--out-dir", str(tmp_path / "runs"), "--name", "r", env=env, timeout=90)
    assert done.code == 0, done.stderr
    run = tmp_path / "runs" / "r"
    json.loads((run / "metrics.json").read_text())
    for line in (run / "events.jsonl").read_text().splitlines():
        json.loads(line)
    config = json.loads((run / "config.json").read_text())
    assert config["graph"]["trace"]["path"] == str(data).replace(PATHLIKE, "[redacted]") + "/trace.jsonl"
    missing = run_icd("run", "--workload", "mock", "--trace", str(data / "none.jsonl"), env=env)
    assert PATHLIKE not in missing.stderr and "[redacted]/none.jsonl" in missing.error


def test_sweep_manifests_and_trial_files_are_redacted_and_the_trial_still_runs(tmp_path):
    data = tmp_path / PATHLIKE
    data.mkdir()
    trace = data / "trace.jsonl"
    trace.write_text("".join(json.dumps({"dims": [i % 64, (i * 7) % 64, (i * 13) % 64]}) + "\n" for i in range(200)))
    spec = tmp_path / "spec.yaml"
    spec.write_text("base:\n  workload: mock:hidden=64:tokens=8\n  pipeline: {repeats: 3, warmup_iter: 1, mode: linear}\n"
                    f"  graph: {{source: trace, trace: {{path: '{trace}'}}}}\nseeds: [0]\n")
    done = run_icd("sweep", str(spec), "--out-dir", str(tmp_path / "out"), env={"DATA_SECRET": PATHLIKE}, timeout=120)
    assert done.code == 0, done.stderr
    sweep = tmp_path / "out" / "spec"
    for path in [sweep / "sweep.json", *(sweep / ".trials").iterdir()]:
        assert PATHLIKE.encode() not in path.read_bytes(), path
    assert [p.name for p in (sweep / ".trials").iterdir() if p.name.startswith(".")] == []  # private copies gone


def test_csv_cells_cannot_be_formulas(tmp_path):
    from icd_core.report.cells import csv_text

    rows = list(csv.reader(csv_text([["=1+2", "+cmd", "-1.5", "@x", "\tt", 3, "-", "plain"]]).splitlines()))
    assert rows == [["'=1+2", "'+cmd", "-1.5", "'@x", "'\tt", "3", "'-", "plain"]]


@pytest.mark.parametrize("w, expected", [
    (sp.csr_matrix((np.ones(2, np.float32), np.array([1, 5_000_000]), np.array([0, 1, 2])), shape=(2, 2)),
     "W is not a valid CSR matrix (indices must be < 2)"),
    (np.array([[0, np.nan], [np.nan, 0]]), "W has 2 NaN or inf entries"),
    (np.array([[0, -1.0], [-1.0, 0]]), "W has negative weights"),
    (np.zeros((2, 3)), "W is 2×3, expected a square matrix"),
    (None, "W is None; expected a square matrix"),
    (np.array([[0, 1j], [1j, 0]]), "W has complex values"),
])
def test_the_api_checks_w_as_the_cli_does(w, expected):
    with pytest.raises(InputDataError, match=None) as info:
        icd.fit_permutation(w, time_budget_s=5)
    assert str(info.value).startswith("icd.fit_permutation: ") and expected in str(info.value)


@pytest.mark.parametrize("options, expected", [
    ({"n": -5}, "n must be an integer in [1, 1000000] (got -5)"),
    ({"blocks": 0}, "blocks must be an integer in [1, 256] (got 0)"),
    ({"noise": 2}, "noise must be a number in [0.0, 1.0] (got 2)"),
])
def test_build_w_checks_its_options(options, expected):
    with pytest.raises(UsageError) as info:
        icd.build_w("mock", **options)
    assert expected in str(info.value)


def test_apply_sparsity_takes_nested_lists_and_names_itself_on_bad_input():
    pruned, _ = icd.apply_sparsity([[1.0, 2, 3, 4]])
    assert np.asarray(pruned).tolist() == [[0, 0, 3, 4]]
    with pytest.raises(UsageError, match=r"^apply_sparsity: expected a non-empty 2-D weight .* got shape \(4,\)"):
        icd.apply_sparsity([1.0, 2, 3, 4])


def test_no_ci_below_six_rounds_and_at_least_95_percent_coverage_above():
    assert summarize([1.0, 2.0, 3.0])["ci95"] is None and median_ci([1.0] * 5) is None
    rng = np.random.default_rng(0)
    true_median = 1.0  # lognormal(0, σ): median e^0
    for n in (6, 8, 12, 30):
        low, high = median_ci(np.arange(n, dtype=float))  # the CI's order statistics, as ranks
        draws = np.sort(rng.lognormal(0.0, 0.5, size=(20_000, n)), axis=1)
        covered = (draws[:, int(low)] <= true_median) & (true_median <= draws[:, int(high)])
        assert covered.mean() >= 0.95, (n, covered.mean())


def test_the_same_seed_gives_the_same_pi_under_a_busy_neighbour(tmp_path):
    w = icd.build_w("mock", n=1024, blocks=64, seed=3)
    sp.save_npz(tmp_path / "W.npz", w)
    quiet = run_icd("solve", str(tmp_path / "W.npz"), "--out", str(tmp_path / "quiet.json"))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]  # 2 per core here
    try:
        loaded = [run_icd("solve", str(tmp_path / "W.npz"), "--out", str(tmp_path / "busy0.json"), timeout=120)]
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert quiet.code == 0 and all(o.code == 0 for o in loaded)
    perms = [json.loads((tmp_path / f"{name}.json").read_text())["perm"] for name in ("quiet", "busy0")]
    assert perms[0] == perms[1]
