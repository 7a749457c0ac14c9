"""Entry point of ``icd-bridge-tvm``: ``icd bridge RUN --to tvm --out DIR``."""

from __future__ import annotations

import importlib.util

from icd_core import hookimpl

NAME = "tvm"


def _check() -> str | None:
    missing = [m for m in ("tvm", "torch") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(missing)} not installed (pip install 'icd-bridge-tvm[tvm]')" if missing else None


@hookimpl
def icd_register(registry):
    registry.add("bridge", NAME, summary="TVM Relax: export, layout attributes, permutation pass, llvm build",
                 check=_check)


@hookimpl
def icd_bridge(ctx, target, run_dir, out_dir):
    from .bridge import run_bridge

    return run_bridge(run_dir, out_dir)
