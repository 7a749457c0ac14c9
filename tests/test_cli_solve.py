"""`icd solve`: a stored W laid out by any solver; bad matrices rejected in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from icd_core.run.artifacts import csr_npz_bytes

from .conftest import icd


def planted(n=256, block=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(n)
    rows, cols = [], []
    for b in range(n // block):
        members = labels[b * block:(b + 1) * block]
        i, j = np.triu_indices(block, 1)
        rows += list(members[i])
        cols += list(members[j])
    w = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return (w + w.T).tocsr()


def save(tmp_path, matrix, name="W.npz"):
    path = tmp_path / name
    sp.save_npz(path, sp.csr_matrix(matrix))
    return path


def test_solves_and_prints_one_json_line(tmp_path):
    path = save(tmp_path, planted())
    done = icd("solve", str(path), "--out", str(tmp_path / "perm.json"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    stats = json.loads(lines[0])
    assert stats["solver"] == "spectral" and stats["C_initial"] > 0.9 and stats["C"] == 0.0
    assert {"C", "Q", "Q_cluster", "Q_final", "la", "time_s", "improved", "timed_out", "method"} <= set(stats)
    doc = json.loads((tmp_path / "perm.json").read_text())
    assert sorted(doc["perm"]) == list(range(256)) and doc["input"]["n"] == 256 and len(doc["input"]["sha256"]) == 64


def test_baseline_solver_block_and_seed(tmp_path):
    path = save(tmp_path, planted())
    done = icd("solve", str(path), "--solver", "random", "--block", "32", "--seed", "3", "--out", str(tmp_path / "p.json"))
    stats = json.loads(done.stdout)
    assert stats["method"] == "random" and stats["block"] == 32 and stats["C"] > 0.5


def test_constraints_file(tmp_path):
    path = save(tmp_path, planted())
    constraints = tmp_path / "c.json"
    constraints.write_text(json.dumps({"supernode": 4, "fixed": [0, 3]}))
    done = icd("solve", str(path), "--constraints", str(constraints), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 0, done.stderr
    perm = np.array(json.loads((tmp_path / "p.json").read_text())["perm"])
    assert np.array_equal(perm[:4], [0, 1, 2, 3]) and np.array_equal(perm[12:16], [12, 13, 14, 15])
    blocks = perm.reshape(-1, 4)
    assert np.all(blocks[:, 0] % 4 == 0) and np.all(np.diff(blocks, axis=1) == 1)
    constraints.write_text(json.dumps({"supernode": 0}))
    bad = icd("solve", str(path), "--constraints", str(constraints), "--out", str(tmp_path / "q.json"))
    assert bad.returncode == 2 and bad.stderr.strip() == f"icd: error: {constraints}: supernode: must be >= 1 (got 0)"
    constraints.write_text(json.dumps({"supernode": 3}))
    bad = icd("solve", str(path), "--constraints", str(constraints), "--out", str(tmp_path / "q.json"))
    assert bad.returncode == 2 and "supernode 3 does not divide n = 256" in bad.stderr


def test_icd_w_npz_with_groups(tmp_path):
    path = tmp_path / "W.npz"
    path.write_bytes(csr_npz_bytes({"a": planted().astype(np.float32), "b": planted(seed=1).astype(np.float32)}))
    done = icd("solve", str(path), "--group", "b", "--out", str(tmp_path / "p.json"))
    assert done.returncode == 0 and json.loads((tmp_path / "p.json").read_text())["input"]["group"] == "b"
    alone = json.loads((tmp_path / "p.json").read_text())["perm"]
    # Every group at once, in parallel: one π and one stats line per group, the same π whatever
    # the worker count.
    for workers in ("1", "2"):
        done = icd("solve", str(path), "--workers", workers, "--out", str(tmp_path / f"all{workers}.json"))
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert [line["group"] for line in lines] == ["a", "b"] and all(line["C"] < line["C_initial"] for line in lines)
    one, two = (json.loads((tmp_path / f"all{w}.json").read_text())["groups"] for w in ("1", "2"))
    assert one["b"]["perm"] == two["b"]["perm"] == alone and one["a"]["perm"] == two["a"]["perm"]
    done = icd("solve", str(path), "--group", "c", "--out", str(tmp_path / "p.json"))
    assert done.returncode == 2 and "no group 'c' (has a, b)" in done.stderr


@pytest.mark.parametrize("matrix,message", [
    (np.array([[0, 1.0], [2.0, 0]]), "W is not symmetric (max |W - W^T| = 1); symmetrise it, e.g. (W + W^T) / 2"),
    (np.array([[0, np.nan], [np.nan, 0]]), "W has 2 NaN or inf entries"),
    (np.array([[0, np.inf], [np.inf, 0]]), "W has 2 NaN or inf entries"),
    (np.array([[0, -1.0], [-1.0, 0]]), "W has negative weights (min -1); co-access weights must be >= 0"),
    (np.ones((2, 3)), "W is 2×3, expected a square matrix"),
    (np.zeros((0, 0)), "W is empty (0×0)"),
])
def test_bad_matrices_are_rejected_in_one_line(tmp_path, matrix, message):
    path = save(tmp_path, matrix)
    done = icd("solve", str(path), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"icd: error: {path}: {message}"
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("matrix,note", [
    (planted() + sp.eye(256) * 5, "dropped 256 self-loops"),
    (planted(n=10, block=5), "n = 10 < g = 16: everything fits in one block"),
    (planted(n=40, block=8), "n = 40 is not a multiple of g = 16: the last block holds 8"),
    (sp.csr_matrix((20, 20)), "W has no off-diagonal weight: every order is equally good"),
    (sp.block_diag([planted(n=64), planted(n=64, seed=1)]), None),
])
def test_odd_but_valid_matrices_are_handled_and_noted(tmp_path, matrix, note):
    path = save(tmp_path, matrix)
    done = icd("solve", str(path), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert (note is None and stats["notes"] == []) or any(n.startswith(note) for n in stats["notes"])
    n = sp.load_npz(path).shape[0]
    assert sorted(json.loads((tmp_path / "p.json").read_text())["perm"]) == list(range(n))
    assert stats["C"] <= stats["C_initial"] + 1e-9


def test_missing_or_corrupt_file(tmp_path):
    done = icd("solve", str(tmp_path / "none.npz"), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 1 and done.stderr.strip().endswith("none.npz: no such matrix file")
    (tmp_path / "bad.npz").write_text("garbage")
    done = icd("solve", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 1 and "bad.npz: not a .npz (zip) file" in done.stderr
