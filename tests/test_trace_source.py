"""The trace graph source: W from JSONL events, and one-line errors for bad traces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from icd_core.builtins.graph_trace import read_events, trace_w
from icd_core.contract.errors import InputDataError

from .conftest import run_pipeline


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_co_access_counts(tmp_path):
    path = write(tmp_path / "t.jsonl", [json.dumps({"dims": [0, 1, 2]}), "",
                                        json.dumps({"dims": [1, 2], "weight": 2}),
                                        json.dumps({"dims": [3], "group": "other"})])
    events = read_events(path, "g", 4, only_group=True)
    w = trace_w(events, 4, np.arange(4), path)
    assert np.array_equal(w.matrix.toarray(), [[0, 1, 1, 0], [1, 0, 3, 0], [1, 3, 0, 0], [0, 0, 0, 0]])
    assert [a.tolist() for a in w.access_groups] == [[0, 1, 2], [1, 2]]
    layout = np.array([2, 0, 1, 3])  # position p holds load-order index layout[p]
    moved = trace_w(events, 4, layout, path).matrix.toarray()
    assert np.array_equal(moved, w.matrix.toarray()[layout][:, layout])


@pytest.mark.parametrize("lines,message", [
    ([], "empty trace (no access events)"),
    (["", "  "], "empty trace (no access events)"),
    (['{"dims": [1, 2]', ], ":1: invalid JSON"),
    (['{"dims": [0]}', "[1, 2]"], ":2: expected a JSON object, got list"),
    (['{"dims": "0,1"}'], ":1: field 'dims': expected a non-empty list of integers"),
    (['{"dims": [0, 9]}'], ":1: field 'dims': index 9 out of range for group 'g' (size 4)"),
    (['{"dims": [0, 1], "weight": -1}'], ":1: field 'weight': expected a positive number, got -1"),
    (['{"dims": [0, 1], "group": "other"}'], "no access events for group 'g'"),
])
def test_bad_traces_give_one_clear_line(tmp_path, lines, message):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(InputDataError) as err:
        read_events(path, "g", 4, only_group=True)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_group_field_required_with_several_groups(tmp_path):
    path = write(tmp_path / "t.jsonl", ['{"dims": [0, 1]}'])
    with pytest.raises(InputDataError, match="field 'group' is required"):
        read_events(path, "g", 4, only_group=False)


def test_trace_drives_a_run(tmp_path):
    rng = np.random.default_rng(0)
    blocks = rng.permutation(128).reshape(8, 16)
    path = write(tmp_path / "t.jsonl", [json.dumps({"dims": rng.choice(blocks[i % 8], 6, replace=False).tolist()})
                                        for i in range(400)])
    outcome, run = run_pipeline(tmp_path / "runs", overrides={"graph.source": "trace", "graph.trace.path": str(path)})
    assert outcome.ok
    layout = outcome.record.metrics["results"]["pre"]["layout"]["mlp.hidden"]
    assert layout["lines_per_access"] > 4  # six random dims of 128 land in ~5-6 lines


def test_corrupt_trace_aborts_or_substitutes(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("")
    with pytest.raises(InputDataError, match="empty trace"):
        run_pipeline(tmp_path / "runs", overrides={"graph.source": "trace", "graph.trace.path": str(path)})
    assert not (tmp_path / "runs" / "run").exists()
    outcome, run = run_pipeline(tmp_path / "runs", overrides={
        "graph.source": "trace", "graph.trace.path": str(path), "graph.trace.on_error": "mock"})
    assert outcome.ok
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    warnings = [e for e in events if e["event"] == "warning"]
    assert "substituted a mock W" in warnings[0]["message"] and "empty trace" in warnings[0]["message"]
    build = next(e for e in events if e.get("stage") == "build_w")
    assert build["meta"]["substitute_for"] == str(path) and build["meta"]["source"] == "mock"
