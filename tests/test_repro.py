"""The reproducibility package: built, unpacked, and its check run on the mock workload."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICD = str(Path(sys.executable).parent / "icd")


def test_the_package_unpacks_and_its_check_reproduces_the_mock_figures(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    out = tmp_path / "repro.tar.gz"
    done = subprocess.run([sys.executable, str(ROOT / "release" / "repro.py"), "build", "--dist", str(dist),
                           "--only", "mock", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    package = next((tmp_path / "unpacked").iterdir())
    names = {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    assert {"README.md", "check", "experiments.json", "expected.json", "configs/mock.json", "requirements.txt",
            "requirements-models.txt"} <= names and any(n.startswith("wheels/icd_co-") for n in names)
    expected = json.loads((package / "expected.json").read_text())["mock"]
    kinds = {f["kind"] for f in expected}
    assert kinds == {"deterministic", "paired"} and len(expected) >= 10
    assert json.loads((package / "configs" / "mock.json").read_text())["seed"] == 0

    check = subprocess.run([sys.executable, str(package / "check"), "--icd", ICD], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1] == f"check: every figure reproduced ({len(expected)}/{len(expected)} ok)"

    # A figure that no longer reproduces is named, and the check fails.
    planted = [dict(f, value=f["value"] + 0.5) if f["path"] == "results/pre/layout/mlp.hidden/C" else f
               for f in expected]
    (package / "expected.json").write_text(json.dumps({"mock": planted}))
    check = subprocess.run([sys.executable, str(package / "check"), "--icd", ICD], capture_output=True, text=True)
    assert check.returncode == 1
    row = next(line for line in check.stdout.splitlines() if "results/pre/layout/mlp.hidden/C " in line)
    assert row.split()[-1] == "DIFFERS"
    bad = subprocess.run([sys.executable, str(package / "check"), "--only", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no experiment 'nope' (have: mock)" in bad.stderr
