"""``python -m icd_measure_ncu.region SPEC.json``: the measured region, alone in a process.

Rebuilds the run's workload from its spec and seed, swaps in the state's tensors (saved by
the parent with ``torch.save``), warms up, then runs ``repeats`` forwards inside the NVTX
range ``icd-region`` — the range Nsight Compute is told to profile.
"""

from __future__ import annotations

import json
import sys

import attrs
import numpy as np
import torch


def main(path: str) -> None:
    from icd_core.toolkit import load_workload

    spec = json.loads(open(path).read())
    state = load_workload(spec["workload"], spec["seed"])
    tensors = torch.load(spec["tensors"], map_location="cuda", weights_only=True)
    layout = {k: np.asarray(v, dtype=np.int32) for k, v in spec["layout"].items()}
    state = attrs.evolve(state, tensors=tensors, layout=layout)
    for _ in range(spec["warmup"]):
        state.run()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("icd-region")
    for _ in range(spec["repeats"]):
        state.run()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_pop()


if __name__ == "__main__":
    main(sys.argv[1])
