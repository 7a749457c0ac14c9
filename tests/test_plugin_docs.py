"""Every example in docs/plugins.md is a working plugin: it keeps the contract and a run uses it."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from icd_core.testing import check_conformance, fresh_manager

from .conftest import ROOT, run_pipeline

DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```python\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    return {name: code for name, code in EXAMPLE.findall(DOC.read_text())}


def load(name: str, tmp_path: Path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"docs_example_{name}.py"
    path.write_text(examples()[name])
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doc_has_the_four_examples():
    assert sorted(examples()) == ["adapter", "graph", "measure", "solver"]


RUNS = {
    "adapter": {"transform.adapters": ["pairs24"], "pipeline.mode": "compare"},
    "measure": {"measure.use": ["wallclock", "zeros"], "transform.adapters": ["pairs24"]},
    "solver": {"solver.name": "rcm"},
    "graph": {"graph.source": "rowtop"},
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_example_keeps_the_contract_and_runs(name, tmp_path):
    plugin = load(name, tmp_path)
    helpers = [load("adapter", tmp_path / "a")] if name == "measure" else []
    manager = fresh_manager(plugin, *helpers)
    assert check_conformance(manager, plugin) == []
    outcome, run = run_pipeline(tmp_path, manager=manager, overrides=RUNS[name])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["ok"] is True, metrics["run"]["error"]
    linear = metrics["results"]["linear"]
    if name == "adapter":
        meta = linear["transforms"][0]
        assert meta["adapter"] == "pairs24" and meta["noop"] is False and meta["constraints"]
        pi1 = np.asarray(json.loads((run / "perm.json").read_text())["groups"]["mlp.hidden"]["pi1"])
        pi0 = np.asarray(json.loads((run / "perm.json").read_text())["groups"]["mlp.hidden"]["pi0"])
        moved = np.argsort(pi0)[pi1]  # π₁ relative to π₀'s order: aligned runs of four move whole
        assert (moved.reshape(-1, 4) % 4 == np.arange(4)).all()
    if name == "measure":
        assert linear["figures"]["zero_pct"]["value"] == pytest.approx(50.0, abs=1.0)
        assert linear["figures"]["zero_pct"]["source"] == "computed:zero-count"
    if name == "solver":
        assert {f["stats"]["method"] for f in metrics["fits"]} == {"rcm"}
    if name == "graph":
        assert metrics["run"]["graph"] == "rowtop"
