"""Shipping: versions from one place, the conda export in sync, the container's build steps,
the SBOM check."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

import icd_core

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "release"))
import check_sbom  # noqa: E402
import environment  # noqa: E402


def project(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


PLUGINS = {project(p)["name"]: project(p) for p in ROOT.glob("plugins/*/pyproject.toml")}
CORE = project(ROOT / "pyproject.toml")


def test_versions_come_from_the_pyprojects_only():
    assert icd_core.__version__ == CORE["version"]  # read from the installed metadata
    literal = re.compile(r"""__version__\s*=\s*["']\d+\.\d+""")
    for path in [*ROOT.glob("icd*/**/*.py"), *ROOT.glob("plugins/*/icd_*/**/*.py")]:
        assert not literal.search(path.read_text()), f"{path}: a version literal (the pyproject is its source)"


def test_the_plugins_extra_names_every_plugin_and_admits_its_version():
    extra = {Requirement(r).name: Requirement(r) for r in CORE["optional-dependencies"]["plugins"]}
    assert set(extra) == set(PLUGINS)
    for name, plugin in PLUGINS.items():
        assert extra[name].specifier.contains(plugin["version"]), name
        core = next(Requirement(r) for r in plugin["dependencies"] if Requirement(r).name == "icd-co")
        assert core.specifier.contains(CORE["version"]), f"{name} does not admit icd-co {CORE['version']}"
    assert CORE["optional-dependencies"]["all"] == ["icd-co[plugins,gpu,ray]"]


def test_environment_yml_is_generated_from_the_pinned_requirements():
    assert (ROOT / "environment.yml").read_text() == environment.render(), "run `make environment`"
    text = environment.render()
    for line in environment.requirement_lines(ROOT / "requirements.txt"):
        assert f"      - {line}\n" in text
    assert "  - python=3.11\n" in text and "      - -e plugins/icd-workload-hf\n" in text


def test_environment_check_fails_when_requirements_change(tmp_path):
    (tmp_path / "plugins" / "p").mkdir(parents=True)
    (tmp_path / "plugins" / "p" / "pyproject.toml").write_text("")
    (tmp_path / "requirements.txt").write_text("numpy==1.0\n")
    before = environment.render(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy==2.0\n")
    assert environment.render(tmp_path) != before and "numpy==2.0" in environment.render(tmp_path)


def test_the_dockerfile_runs_the_build_script_and_the_default_job():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", docker, re.M)
    assert "release/container_build.sh /opt/icd" in docker
    make_run = re.search(r"^run:.*\n\t\$\(BIN\)/(icd run .*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    cmd = re.search(r"^CMD (\[.*\])$", docker, re.M).group(1)
    assert " ".join(eval(cmd)).startswith(make_run)  # noqa: S307 - our own Dockerfile's JSON array
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert {".venv", "runs", "dist", ".git"} <= set(ignored)
    script = (ROOT / "release" / "container_build.sh").read_text()
    for needed in ["requirements.txt", "requirements-models.txt", "release/build_dist.sh", "release/version.py"]:
        assert (ROOT / needed).is_file() and needed.split("/")[0] not in ignored
        assert needed.split("/")[-1] in script
    assert subprocess.run(["bash", "-n", ROOT / "release" / "container_build.sh"]).returncode == 0
    assert "release/container_build.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_sbom_check_names_what_is_missing():
    bom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": {"component": {"name": "icd-co"}},
           "components": [{"name": f"dep_{i}", "version": "1"} for i in range(25)] + [{"name": "NumPy", "version": "2"}]}
    assert check_sbom.problems(bom, ["icd-co", "numpy", "dep-3"]) == []
    assert check_sbom.problems(bom, ["icd-adapter-kv"]) == ["components: icd-adapter-kv is missing"]
    small = {**bom, "components": bom["components"][:3]}
    assert check_sbom.problems(small, []) == ["components: expected at least 20, got 3"]
    assert check_sbom.problems({**bom, "bomFormat": "SPDX"}, [])[0].startswith("bomFormat")
    expected = check_sbom.own_distributions() + check_sbom.pinned_requirements()
    assert "icd-workload-hf" in expected and "torch" in expected and len(expected) >= 25
