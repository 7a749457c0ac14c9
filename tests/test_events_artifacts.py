"""Event bus lines, tracebacks without locals; atomic artifacts, locks, deterministic npz."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.sparse as sp

from icd_core.contract.errors import InputDataError, RunDirectoryError
from icd_core.run.artifacts import (
    RunDirectory,
    csr_npz_bytes,
    load_w,
    write_bytes_atomic,
)
from icd_core.run.events import EventBus


def test_stage_lines_and_counters(tmp_path):
    bus = EventBus(tmp_path / "events.jsonl")
    with bus.stage("build_w", group="g") as meta:
        meta["nnz"] = np.int64(12)
        bus.counter("C", np.float32(0.25), group="g")
    bus.counter("Q", 0.5)
    bus.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    stage, counter = lines
    assert stage["event"] == "stage" and stage["stage"] == "build_w" and stage["ok"] is True
    assert stage["t_end"] >= stage["t_start"]
    assert stage["meta"] == {"group": "g", "nnz": 12, "counters": [{"name": "C", "value": 0.25, "labels": {"group": "g"}}]}
    assert counter["event"] == "counter" and counter["name"] == "Q"
    assert bus.overhead_s > 0 and set(bus.counters) == {"C", "Q"}


def test_failed_stage_has_frames_but_no_locals(tmp_path):
    bus = EventBus(tmp_path / "events.jsonl")

    def leaky():
        api_token = "sk-secret-value"  # noqa: F841 - a local that must not leak
        raise ValueError("bad thing")

    with pytest.raises(ValueError):
        with bus.stage("fit_permutation"):
            leaky()
    bus.close()
    text = (tmp_path / "events.jsonl").read_text()
    record = json.loads(text)
    assert record["ok"] is False and record["meta"]["error"] == "ValueError: bad thing"
    assert record["exception"][0]["exc_type"] == "ValueError"
    assert any(frame["name"] == "leaky" for frame in record["exception"][0]["frames"])
    assert "sk-secret-value" not in text and '"locals"' not in text


def test_atomic_write_replaces_or_keeps(tmp_path):
    target = tmp_path / "a.json"
    write_bytes_atomic(target, b"one")

    with pytest.raises(TypeError):
        write_bytes_atomic(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_npz_is_deterministic_and_loadable(tmp_path):
    w = sp.random(50, 50, density=0.1, random_state=0, format="csr", dtype=np.float32)
    w = (w + w.T).tocsr()
    first = csr_npz_bytes({"g": w, "h": w * 2})
    assert first == csr_npz_bytes({"h": w * 2, "g": w})
    (tmp_path / "W.npz").write_bytes(first)
    loaded = load_w(tmp_path / "W.npz")
    assert set(loaded) == {"g", "h"} and (loaded["g"] != w).nnz == 0
    sp.save_npz(tmp_path / "plain.npz", w)
    assert (load_w(tmp_path / "plain.npz")["W"] != w).nnz == 0
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InputDataError, match="bad.npz: not a .npz \\(zip\\) file"):
        load_w(tmp_path / "bad.npz")


def test_run_directory_is_staged_locked_and_committed(tmp_path):
    run = RunDirectory(tmp_path, "r").open()
    run.write_text("metrics.json", "{}")
    assert not (tmp_path / "r").exists()
    assert run.path.name.startswith(".r.partial-")
    with pytest.raises(RunDirectoryError, match="locked by another icd process"):
        RunDirectory(tmp_path, "r").open()
    assert run.commit() == tmp_path / "r"
    assert (tmp_path / "r" / "metrics.json").read_text() == "{}"
    with pytest.raises(RunDirectoryError, match="run directory exists"):
        RunDirectory(tmp_path, "r").open()
    again = RunDirectory(tmp_path, "r", replace=True).open()
    again.write_text("metrics.json", '{"v": 2}')
    again.commit()
    assert (tmp_path / "r" / "metrics.json").read_text() == '{"v": 2}'
    dropped = RunDirectory(tmp_path, "s").open()
    dropped.write_text("x", "y")
    dropped.abandon()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["r"]


def test_stale_staging_of_a_dead_run_is_cleaned(tmp_path):
    stale = tmp_path / ".r.partial-999999"
    stale.mkdir()
    (stale / "W.npz").write_bytes(b"half")
    RunDirectory(tmp_path, "r").open().commit()
    assert not stale.exists()


@pytest.mark.parametrize("name", ["", ".hidden", "a/b"])
def test_bad_run_names(tmp_path, name):
    with pytest.raises(RunDirectoryError, match="run name"):
        RunDirectory(tmp_path, name)


def test_artifact_permissions_are_readable(tmp_path):
    write_bytes_atomic(tmp_path / "f", b"x")
    assert os.stat(tmp_path / "f").st_mode & 0o044 == 0o044
