"""The HTML/CSV reports, `icd report` and `icd compare`."""

from __future__ import annotations

import csv
import io
import json

import pytest

from icd_core.builtins.reporters import CSV_HEADER
from icd_core.report.rows import comparison_rows

from .conftest import icd, run_pipeline


def test_reports_render_and_escape(tmp_path):
    outcome, run = run_pipeline(tmp_path, name="esc", overrides={"workload": {"name": "mock", "hidden": 64, "tokens": 8},
                                                                "pipeline.repeats": 6})  # 6 rounds: a 95 % CI
    html = (run / "report.html").read_text()
    assert "Gates, iterative vs linear: paired change and its 95 % CI" in html and '<section class="card"' in html
    assert "measured:wallclock" in html and "not measured" in html
    rows = list(csv.reader(io.StringIO((run / "report.csv").read_text())))
    assert rows[0] == CSV_HEADER == ["metric", "unit", "pre", "identity", "linear", "iterative", "source", "reason",
                                     "change_iterative_vs_linear", "ci95_low", "ci95_high", "verdict", "rule"]
    assert {r[0] for r in rows} >= {"lat_ms", "l2_hit_pct", "cache_misses_per_access", "quality.cosine_pct",
                                    "layout.mlp.hidden.C", "gate.latency", "gate.quality_drop"}
    l2 = next(r for r in rows if r[0] == "l2_hit_pct")
    assert l2[6] == "modelled:cache-sim" and l2[3] == "" and all(float(v) > 0 for v in (l2[2], l2[4], l2[5]))
    lat = next(r for r in rows if r[0] == "lat_ms")
    assert float(lat[9]) <= float(lat[8]) <= float(lat[10])  # paired change inside its CI
    energy = next(r for r in rows if r[0] == "ept_j_per_tok")
    assert energy[2:6] == ["", "", "", ""] and energy[7].startswith("not measured")
    gate = next(r for r in rows if r[0] == "gate.latency")
    assert gate[11] in ("pass", "fail", "inconclusive") and gate[12].startswith("pass if the whole 95 % CI")
    assert 'class="modelled"' in html and "Rule: a gate passes only when the whole 95 % CI" in html
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
