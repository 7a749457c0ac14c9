"""Hostile files for ``icd solve``, ``icd run -c``, ``--trace`` and ``icd report``: one line each,
the documented exit code, bounded time and memory, nothing already written touched."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from .conftest import run_icd

BOUNDED_S, BOUNDED_MB = 30, 600


def csr_npz(path, indices, indptr, shape=(2, 2)):
    np.savez(path, data=np.ones(len(indices), dtype=np.float32), indices=np.asarray(indices, dtype=np.int32),
             indptr=np.asarray(indptr, dtype=np.int32), shape=np.asarray(shape), format=np.array("csr"))
    return path


def zip_bomb(path, gib=3.0):
    """A W.npz of a few MB whose ``data`` member unpacks to ``gib`` GiB of zeros."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("data.npy", "w", force_zip64=True) as fh:
            count = int(gib * (1 << 30)) // 4
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (count,)})
            chunk = bytes(1 << 24)
            for _ in range(count * 4 // len(chunk)):
                fh.write(chunk)
        for key, value in {"indices": np.zeros(1, np.int32), "indptr": np.zeros(2, np.int32),
                           "shape": np.array([1, 1]), "format": np.array("csr")}.items():
            raw = io.BytesIO()
            np.save(raw, value)
            zf.writestr(f"{key}.npy", raw.getvalue())
    return path


def bounded(outcome, code):
    assert outcome.code == code, outcome.stderr
    assert outcome.seconds < BOUNDED_S and outcome.peak_mb < BOUNDED_MB, (outcome.seconds, outcome.peak_mb)
    return outcome.error


def solve(tmp_path, w):
    out = tmp_path / "perm.json"
    out.write_text("kept\n")  # what was there before must survive a refused input
    line = bounded(run_icd("solve", str(w), "--out", str(out)), 1)
    assert out.read_text() == "kept\n"
    return line


@pytest.mark.parametrize("indices, indptr, expected", [
    ([1, 5_000_000], [0, 1, 2], "W is not a valid CSR matrix (indices must be < 2)"),
    ([1, 0], [0, 5, 2], "W is not a valid CSR matrix (indptr must be a non-decreasing sequence)"),
    ([1, 0], [0, 1], "not a readable .npz matrix file"),
])
def test_a_csr_that_lies_about_its_structure_is_refused_before_any_arithmetic(tmp_path, indices, indptr, expected):
    assert expected in solve(tmp_path, csr_npz(tmp_path / "W.npz", indices, indptr))


def test_a_zip_bomb_is_refused_by_its_declared_size_before_unpacking(tmp_path, monkeypatch):
    monkeypatch.setenv("ICD_LIMIT_NPZ_BYTES", str(64 << 20))  # the default is 2 GiB; a smaller bomb shows the same
    bomb = zip_bomb(tmp_path / "W.npz", gib=0.25)
    assert os.path.getsize(bomb) < 1 << 20
    assert "bytes, over the 67,108,864-byte limit (ICD_LIMIT_NPZ_BYTES)" in \
        solve(tmp_path, bomb)


@pytest.mark.parametrize("make, expected", [
    (lambda p: np.save(p / "W.npy", np.zeros(3)) or p / "W.npy", "a plain .npy array; expected a .npz"),
    (lambda p: (p / "W.npz").write_bytes(b"garbage") and p / "W.npz", "not a .npz (zip) file"),
    (lambda p: os.mkfifo(p / "W.npz") or p / "W.npz", "is a FIFO; expected a matrix file"),
])
def test_files_that_are_not_a_matrix(tmp_path, make, expected):
    assert expected in solve(tmp_path, make(tmp_path))


def billion_laughs(levels=8):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefghi", "bcdefghij"[: levels - 1]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name, text, expected", [
    ("laughs.yaml", billion_laughs(8), "expands to more than 100,000 nodes once its aliases are resolved"),
    ("laughs9.yaml", billion_laughs(9), "expands to more than 100,000 nodes"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested more than 64 levels deep"),
    ("deep.yaml", "a: " + "[" * 2000 + "]" * 2000 + "\n", "nested more than 64 levels deep"),
    ("digits.json", '{"seed": ' + "9" * 5000 + "}", "unreadable value (Exceeds the limit (4300 digits)"),
    ("dup.yaml", "seed: 1\nseed: 2\n", "key 'seed' appears twice (lines 1 and 2)"),
    ("dup.json", '{"seed": 1, "seed": 2}', "key 'seed' appears twice in one object"),
    ("big.yaml", "name: " + "x" * (9 << 20) + "\n", "over the 8,388,608-byte limit (ICD_LIMIT_CONFIG_BYTES)"),
])
def test_configs_that_would_take_the_machine(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert expected in bounded(run_icd("run", "-c", str(path), "--print-config"), 2)


def test_a_yaml_alias_bomb_in_a_set_override(tmp_path):
    value = "[" + ",".join(["&a [" + ",".join(["1"] * 50) + "]"] + ["*a"] * 3000) + "]"
    assert "--set name: the value expands to more than 100,000 nodes" in \
        bounded(run_icd("run", "--set", f"name={value}", "--print-config"), 2)


def test_a_config_that_is_a_fifo_or_a_device(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    assert "is a FIFO; expected a config file" in bounded(run_icd("run", "-c", str(tmp_path / "c.yaml")), 2)


def test_a_trace_that_never_ends(tmp_path):
    line = bounded(run_icd("run", "--workload", "mock", "--trace", "/dev/zero", "--out-dir", str(tmp_path)), 1)
    assert "/dev/zero: is a device; expected a trace file" in line


def test_a_metrics_file_that_is_a_device_or_too_deep(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.json").symlink_to("/dev/zero")
    assert "is a device; expected a metrics file" in bounded(run_icd("report", str(run)), 1)
    (run / "metrics.json").unlink()
    (run / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "metrics.json: unreadable JSON (nested too deeply)" in bounded(run_icd("report", str(run)), 1)


@pytest.mark.parametrize("name, expected", [
    ("two\nlines", "must not contain control characters"),
    ("bell\x07", "must not contain control characters"),
    ("n" * 300, "is 300 bytes long; at most 200"),
    ("../x", "without '/'"),
])
def test_run_names_that_cannot_name_one_directory(tmp_path, name, expected):
    line = bounded(run_icd("run", "--workload", "mock", "--name", name, "--out-dir", str(tmp_path)), 1)
    assert expected in line and list(tmp_path.iterdir()) == []


def test_permute_none_is_the_choice_not_null():
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.plugin.specs import resolve

    registry = load_plugin_manager().registry
    assert resolve(registry, "adapter", "sparsity:2:4:permute=none").options.permute == "none"
    assert resolve(registry, "adapter", "sparsity:2:4:rounds=none").options.rounds is None  # null where null is meant


def test_yaml_merge_keys_still_override_while_a_repeated_key_is_refused(tmp_path):
    from icd_core.config.files import read_file

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {repeats: 3, mode: compare}\npipeline:\n  <<: *b\n  mode: linear\n")
    assert read_file(path)["pipeline"] == {"repeats": 3, "mode": "linear"}
