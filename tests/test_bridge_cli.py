"""``icd bridge``: what it refuses, in one line, before anything is written."""

from __future__ import annotations

from .conftest import icd


def test_bridge_refuses_a_directory_that_is_not_a_finished_run(tmp_path):
    done = icd("bridge", str(tmp_path), "--to", "tvm", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"icd: error: {tmp_path}: not a finished icd run (no config.json)"
    assert not (tmp_path / "out").exists()


def test_bridge_names_an_unknown_target_and_refuses_a_full_output_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "perm.json", "metrics.json"):
        (run / name).write_text("{}")
    unknown = icd("bridge", str(run), "--to", "tvn", "--out", str(tmp_path / "out"))
    assert unknown.returncode == 2 and "unknown bridge 'tvn'. Did you mean 'tvm'?" in unknown.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    refused = icd("bridge", str(run), "--to", "tvm", "--out", str(full))
    assert refused.returncode == 2 and "not empty (nothing was written)" in refused.stderr
    assert (full / "keep.txt").read_text() == "mine"
