"""Comparing a state's output with a reference: the equivalence check and output fidelity."""

from __future__ import annotations

from typing import Any

import numpy as np

from icd_core.contract import tensors as T
from icd_core.contract.records import Figure, Samples


def max_rel_diff(output: Any, reference: Any) -> float:
    """max |output − reference| / max |reference| (0 when both are zero)."""
    a = np.asarray(T.to_numpy(output), dtype=np.float64)
    b = np.asarray(T.to_numpy(reference), dtype=np.float64)
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    return diff / scale if scale else diff


def output_quality(output: np.ndarray, reference: np.ndarray) -> dict[str, Figure]:
    """Per output row (token): cosine and relative error (percent) vs ``reference``, averaged;
    the per-token values ride along as samples so two states can be compared token by token."""
    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    a, b = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1), b.reshape(-1, b.shape[-1]) if b.ndim else b.reshape(1, 1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(1)
    both = (na > 0) & (nb > 0)
    cosine = np.where(both, dot / np.where(both, na * nb, 1.0), (na == nb).astype(np.float64))
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(nb, 1e-30)
    source = "measured:output-fidelity"
    return {
        "cosine_pct": Figure(100.0 * float(cosine.mean()), source, unit="%",
                             samples=Samples("token", 100.0 * cosine)),
        "rel_err_pct": Figure(100.0 * float(rel.mean()), source, unit="%", samples=Samples("token", 100.0 * rel),
                              better="lower"),
    }
