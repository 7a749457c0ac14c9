"""Gates and regression checks on figures; the HTML/CSV reports, `icd report` and `icd compare`."""

from __future__ import annotations

import csv
import io
import json

import pytest

from icd_core.config import GatesConfig, RollbackConfig
from icd_core.gates import evaluate_gates, regressions
from icd_core.report_model import comparison_rows

from .conftest import icd, run_pipeline


def result(lat=None, ci=None, n=30, l2=None, ept=None, q=None):
    def fig(v, **extra):
        return {"value": v, "source": "measured:test", **extra} if v is not None else {"value": None, "reason": "absent"}

    return {"figures": {"lat_ms": fig(lat, ci95=ci or [lat, lat], n=n) if lat else fig(None),
                        "l2_hit_pct": fig(l2), "ept_j_per_tok": fig(ept)},
            "quality": {"acc": fig(q)}}


def test_gate_verdicts():
    linear = result(lat=10.0, l2=50.0, ept=2.0, q=80.0)
    iterative = result(lat=7.9, l2=61.0, ept=1.8, q=79.95)
    verdicts = {v["gate"]: v for v in evaluate_gates(linear, iterative, "acc", GatesConfig())}
    assert verdicts["latency"]["value"] == pytest.approx(-21.0) and verdicts["latency"]["pass"] is True
    assert verdicts["l2_hit"]["value"] == pytest.approx(11.0) and verdicts["l2_hit"]["pass"] is True
    assert verdicts["energy_per_token"]["value"] == pytest.approx(-10.0) and verdicts["energy_per_token"]["pass"] is False
    assert verdicts["quality_drop"]["value"] == pytest.approx(0.05) and verdicts["quality_drop"]["pass"] is True


def test_missing_figures_are_not_evaluated_never_passed():
    verdicts = evaluate_gates(result(lat=10.0, q=80), result(lat=5.0, q=80), "acc", GatesConfig())
    l2 = next(v for v in verdicts if v["gate"] == "l2_hit")
    assert l2["pass"] is None and l2["value"] is None and l2["reason"] == "absent"


def test_regressions_respect_tolerances_and_noise():
    cfg = RollbackConfig(quality_pp=0.5)
    pre = result(lat=10.0, ci=[9.8, 10.2], l2=60, ept=1.0, q=90)
    assert regressions(pre, result(lat=10.5, ci=[10.3, 10.7], l2=59, ept=1.05, q=89.8), "acc", cfg) == []
    bad = regressions(pre, result(lat=12.0, ci=[11.8, 12.2], l2=50, ept=1.2, q=80), "acc", cfg)
    assert [b.split()[0] for b in bad] == ["latency", "L2", "energy/token", "quality"]
    # a big slowdown measured with too few repeats is not judged
    assert regressions(pre, result(lat=20.0, ci=[19, 21], n=3), "acc", cfg) == []
    # overlapping confidence intervals are not a regression
    assert regressions(pre, result(lat=12.0, ci=[9.9, 14.0]), "acc", cfg) == []


def test_reports_render_and_escape(tmp_path):
    outcome, run = run_pipeline(tmp_path, name="esc", overrides={"workload": {"name": "mock", "hidden": 64, "tokens": 8}})
    html = (run / "report.html").read_text()
    assert "<h2>Acceptance gates (iterative vs linear)</h2>" in html
    assert "measured:wallclock" in html and "not measured" in html
    rows = list(csv.reader(io.StringIO((run / "report.csv").read_text())))
    assert rows[0] == ["metric", "unit", "pre", "linear", "iterative", "source", "reason"]
    assert {r[0] for r in rows} >= {"lat_ms", "l2_hit_pct", "quality.cosine_pct", "layout.mlp.hidden.C",
                                    "gate.latency", "gate.quality_drop"}
    l2 = next(r for r in rows if r[0] == "l2_hit_pct")
    assert l2[5] == "modelled:cache-sim" and all(float(v) > 0 for v in l2[2:5])
    energy = next(r for r in rows if r[0] == "ept_j_per_tok")
    assert energy[2:5] == ["", "", ""] and energy[6].startswith("not measured")
    assert 'class="modelled"' in html
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["run"]["solver"] = "<script>alert(1)</script>"
    from icd_core.builtins.reporters import render_html

    rendered = render_html(metrics, [])
    assert "<script>alert(1)" not in rendered and "&lt;script&gt;alert(1)" in rendered


def test_rows_distinguish_absent_branch_from_null(tmp_path):
    _, run = run_pipeline(tmp_path, overrides={"pipeline.mode": "linear"})
    rows = {r["metric"]: r for r in comparison_rows(json.loads((run / "metrics.json").read_text()))}
    assert rows["lat_ms"]["iterative_present"] is False and rows["lat_ms"]["linear"] is not None
    assert rows["ept_j_per_tok"]["linear_present"] is True and rows["ept_j_per_tok"]["linear"] is None


def test_icd_report_rerenders_and_compare_diffs(tmp_path):
    _, a = run_pipeline(tmp_path, name="a")
    _, b = run_pipeline(tmp_path, name="b", overrides={"graph.mock.noise": 0.3})
    (a / "report.html").unlink()
    done = icd("report", str(a))
    assert done.returncode == 0, done.stderr
    assert (a / "report.html").is_file() and str(a / "report.html") in done.stdout
    diff = icd("compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert diff.returncode == 0, diff.stderr
    assert "layout.mlp.hidden.C" in diff.stdout
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["a"]["name"] == "a" and doc["b"]["branch"] == "iterative"
    c_row = next(r for r in doc["rows"] if r["metric"] == "layout.mlp.hidden.C")
    assert c_row["delta"] == pytest.approx(c_row["b"] - c_row["a"])
    missing = icd("report", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.strip().endswith("not an icd run directory (no metrics.json)")
