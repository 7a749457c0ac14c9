"""The report a person reads: verdict card, figures, readable details, compare side by side,
and the page as Chromium shows it (skipped without a browser)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from icd_core.report.card import verdict_card
from icd_core.report.figures import run_figures

from .conftest import icd, run_pipeline

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    from icd_adapter_sparsity import plugin as sparsity
    from icd_solver_spectral import plugin as spectral

    tmp = tmp_path_factory.mktemp("card")
    _, run = run_pipeline(tmp, spectral, sparsity, name="card", overrides={
        "solver.name": "spectral", "transform.adapters": ["sparsity:2:4"], "pipeline.repeats": 6})
    return run


def test_the_card_says_what_ran_what_each_gate_decided_and_what_layout_bought(sparse_run):
    metrics = json.loads((sparse_run / "metrics.json").read_text())
    card = verdict_card(metrics)
    assert card.answer in ("NO", "UNDECIDED") and card.question.startswith("Is iterative")
    assert dict(card.ran)["transforms"] == "sparsity:2:4 (1 weight: 1 in icd's order, 0 natural)" and dict(card.ran)["solver"] == "spectral"
    assert dict(card.ran)["backend"] == "dense (dense on every state)"
    gates = {g.gate: g for g in card.gates}
    assert gates["latency"].target == "≤ -20 %" and gates["latency"].ci.startswith("[")
    assert gates["energy / token"].decision.startswith("not evaluated: not measured")
    assert gates["quality drop"].decision in ("PASS", "FAIL") or gates["quality drop"].decision.startswith("inconclusive")
    assert card.rollback == "nothing rolled back" and card.rollback_ok
    assert card.bought.startswith("Layout could not pay here: every state ran dense kernels")
    assert "π₀ moved the mean block cost C" in card.bought


def test_too_few_rounds_give_no_ci_and_the_card_says_so(tmp_path):
    _, run = run_pipeline(tmp_path, name="few")  # 3 rounds: their range is a 75 % interval, not a 95 % CI
    latency = {g.gate: g for g in verdict_card(json.loads((run / "metrics.json").read_text())).gates}["latency"]
    assert latency.ci == "no CI" and latency.decision == "inconclusive: no 95 % CI"
    assert "3 interleaved rounds" in latency.source and "too few for a 95 % CI" in latency.source


def test_report_html_has_the_card_four_figures_and_no_raw_dict_outside_the_toggle(sparse_run):
    html = (sparse_run / "report.html").read_text()
    assert html.index('<section class="card"') < html.index("<h2>Figures</h2>") < html.index("<h2>Transforms</h2>")
    assert len(re.findall(r"<svg role=\"img\"", html)) >= 4 and html.count("<title id=") >= 4
    assert len(html.encode()) < 1_000_000
    without_raw = re.sub(r"<details><summary>raw: metrics.json</summary><pre>.*?</pre></details>", "", html, flags=re.S)
    assert "raw: metrics.json" in html and "{&#39;" not in without_raw and "{&#34;" not in without_raw
    assert "{'" not in without_raw and "groups=" not in without_raw
    # The 2:4 details as a table with a summary (mean / worst) and every group behind <details>.
    transforms = html[html.index("<h2>Transforms</h2>"):html.index("<h2>Permutations</h2>")]
    assert "efficacy %" in transforms and "kept (default order)" in transforms and "row bound" in transforms
    headings = [int(h) for h in re.findall(r"<h([1-6])[ >]", html)]
    assert headings[0] == 1 and all(b <= a + 1 for a, b in zip(headings, headings[1:]))


def test_figures_degrade_with_a_reason(sparse_run, monkeypatch):
    metrics = json.loads((sparse_run / "metrics.json").read_text())
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    plots = run_figures(metrics)
    assert len(plots) == 4 and all(p.svg is None and p.missing.startswith("matplotlib is not installed") for p in plots)
    monkeypatch.delitem(sys.modules, "matplotlib")
    empty = {**metrics, "comparisons": {}, "results": {b: {**r, "quality": {}, "transforms": [], "layout": {}}
                                                      for b, r in metrics["results"].items()}}
    for p in run_figures(empty):
        if p.key != "fig-transforms":
            assert p.svg is None and p.missing, p.key


def test_the_console_summary_is_short_and_verbose_prints_every_row(tmp_path):
    args = ["run", "--workload", "mock", "--solver", "spectral", "--adapter", "sparsity:2:4", "--repeats", "4",
            "--out-dir", str(tmp_path)]
    short = icd(*args, "--name", "short")
    assert short.returncode == 0, short.stderr
    lines = short.stdout.splitlines()
    assert len(lines) <= 41 and lines[1].startswith("Is iterative (re-permuted) cheaper than linear at equal quality?")
    # The transform in natural order ran beside the permuted arms: what layout bought leads the card.
    assert re.match(r"What did layout add to sparsity:2:4\? (Layout helped|Layout hurt|Nothing[^:]*): permuted vs "
                    r"natural order: cosine_pct [\d.]+ → [\d.]+ % \([+-]?[\d.e+-]+ pp \[[^]]+\], "
                    r"(better|worse|no difference shown)\); against the best of 3 random orders", lines[0]), lines[0]
    assert any(line.startswith("layout C (mlp.hidden)") for line in lines)
    assert not any(line.startswith("layout.mlp.hidden.Q") for line in lines)
    verbose = icd(*args, "--name", "verbose", "--verbose")
    assert verbose.returncode == 0 and any(line.startswith("layout.mlp.hidden.Q") for line in verbose.stdout.splitlines())
    assert "rule: a gate passes only when" in verbose.stdout


def test_compare_shows_both_cards_and_figures_side_by_side(tmp_path, sparse_run):
    other = tmp_path / "other"
    shutil.copytree(sparse_run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["run"]["name"] = "other"
    (other / "metrics.json").write_text(json.dumps(metrics))
    done = icd("compare", str(sparse_run), str(other), "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert done.stdout.count("Is iterative (re-permuted) cheaper than linear at equal quality?") == 2
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert page.count('<section class="card"') == 2 and len(re.findall(r"<svg role=\"img\"", page)) == 8
    assert "The runs are like for like" in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # two runs' figures on one page: no clashing ids


def test_compare_warns_on_other_transforms_and_plugin_versions(tmp_path, sparse_run):
    other = tmp_path / "other"
    shutil.copytree(sparse_run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["run"]["adapters"] = ["quant:int8"]
    plugin = next(p for p in metrics["run"]["plugins"] if p["distribution"] != "icd-co")
    original, plugin["version"] = plugin["version"], "9.9.9"
    (other / "metrics.json").write_text(json.dumps(metrics))
    done = icd("compare", str(sparse_run), str(other), "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    assert "warning: the runs differ in transforms (['sparsity:2:4'] vs ['quant:int8'])" in done.stderr
    assert f"warning: the runs differ in plugin versions ({plugin['distribution']} {original} vs 9.9.9)" in done.stderr
    assert "<b>warning:</b> the runs differ in transforms" in (tmp_path / "cmp" / "compare.html").read_text()


sys.path.insert(0, str(ROOT / "benchmarks"))
from report_browser_check import chromium  # noqa: E402

CHROMIUM = chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian: apt-get install chromium)")
def test_the_page_passes_the_browser_check_and_planted_faults_fail_it(tmp_path, sparse_run):
    script = ROOT / "benchmarks" / "report_browser_check.py"
    good = subprocess.run([sys.executable, str(script), str(sparse_run), "--png-dir", str(tmp_path / "png")],
                          capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stdout + good.stderr
    assert {p.name for p in (tmp_path / "png").iterdir()} == {"report-desktop-1280px.png", "report-mobile-390px.png"}
    bad = tmp_path / "bad"
    shutil.copytree(sparse_run, bad)
    html = (bad / "report.html").read_text()
    html = html.replace("<h2>Figures</h2>", '<h2>Figures</h2><div style="width: 900px">a wide banner</div>'
                        '<p style="font-size: 9px">tiny print</p><figure id="broken"><figcaption>x</figcaption></figure>')
    (bad / "report.html").write_text(html)
    done = subprocess.run([sys.executable, str(script), str(bad), "--png-dir", str(tmp_path / "png2")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "horizontal overflow: the page is" in done.stdout and "text smaller than 12 px: p at 9.0 px" in done.stdout
    assert "figure broken: neither drawn nor says why" in done.stdout
