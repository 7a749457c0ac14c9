"""The CI regression gates: the verdict rule, and planted regressions in real code that fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import regression_gates as gates  # noqa: E402

BASELINES = json.loads(gates.BASELINES.read_text())


def test_every_gate_has_a_committed_baseline():
    assert set(BASELINES) == {g.name for g in gates.GATES}
    for entry in BASELINES.values():
        assert entry["direction"] in ("lower", "higher") and entry["tolerance"] > 0 and entry["value"] > 0


@pytest.mark.parametrize(("value", "passed", "head"), [
    (2.9, True, "ok "), (3.1, False, "REGRESSION "), (0.5, True, "ok, much better"),
])
def test_judge_lower_is_better(value, passed, head):
    ok, line = gates.judge("solver_time", "solver", "× ref", value, {"value": 1.5, "tolerance": 1.0, "direction": "lower"})
    assert ok is passed and line.startswith(head)
    assert f"{value:.4g} × ref vs baseline 1.5 (limit 3" in line


def test_judge_absolute_higher_is_better():
    base = {"value": 35.79, "tolerance": 0.5, "direction": "higher", "kind": "absolute"}
    assert gates.judge("e", "efficacy", "%", 35.4, base)[0]
    ok, line = gates.judge("e", "efficacy", "%", 35.2, base)
    assert not ok and line == "REGRESSION efficacy (e): 35.2 % vs baseline 35.79 (limit 35.29, higher is better)"


def test_the_efficacy_gate_passes_as_is_and_fails_on_a_weaker_search(monkeypatch, capsys):
    assert gates.main(["--only", "efficacy_2_4_apex"]) == 0
    import icd_adapter_sparsity.efficacy as efficacy

    real = efficacy.search
    monkeypatch.setattr(efficacy, "search", lambda *a, **k: real(*a, **{**k, "rounds": 1}))  # planted: fewer rounds
    assert gates.main(["--only", "efficacy_2_4_apex"]) == 1
    err = capsys.readouterr().err
    assert "REGRESSION 2:4 efficacy on the Apex matrix (efficacy_2_4_apex): 34.97 % vs baseline 35.79" in err


def test_a_planted_slowdown_of_the_solver_fails_the_gate(monkeypatch, capsys):
    import icd_solver_spectral.solve as solve

    real = solve.fit_spectral

    def four_times(*args, **kwargs):  # planted: the whole spectral fit does its work three more times (~4x slower)
        for _ in range(3):
            real(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(solve, "fit_spectral", four_times)
    baselines = {"solver_time": BASELINES["solver_time"]}
    ok, measured, lines = gates.run_gates(["solver_time"], 3, baselines)
    assert not ok, lines
    assert lines[0].startswith("REGRESSION spectral solver time, n = 2,500 (solver_time): ")
    assert f"vs baseline {BASELINES['solver_time']['value']:.4g}" in lines[0]


def test_a_missing_baseline_or_an_unreadable_file_fails(tmp_path, capsys):
    ok, _, lines = gates.run_gates(["report_time"], 1, {})
    assert not ok and lines == ["REGRESSION report time (csv + html, mock run with 2:4 and int8) (report_time): "
                                "no baseline in regression.json"]
    bad = tmp_path / "b.json"
    bad.write_text("{")
    assert gates.main(["--baselines", str(bad)]) == 1
    assert "cannot read the baselines" in capsys.readouterr().err
