"""Importance scores of weights for pruning: which weight an N:M group or a rate keeps.

- ``magnitude``: |w|;
- ``wanda`` (Sun et al. 2023): |w_ij| · ‖x_j‖₂, the input channel's norm over calibration tokens;
- ``ria`` (Zhang et al. 2024, relative importance and activation): (|w_ij| / Σ_k |w_ik| +
  |w_ij| / Σ_k |w_kj|) · ‖x_j‖₂^a with a = 0.5 — a weight counts relative to its output row and
  to its input channel, so channels with uniformly large weights do not take every slot.

Every score is equivariant under a permutation of the input channels (a channel's score moves
with it), so the channel search may regroup by any of them.
"""

from __future__ import annotations

import numpy as np

from icd_core.toolkit import activation_energy

SCORES = ("magnitude", "wanda", "ria")
RIA_EXPONENT = 0.5  # the paper's a: activation norms enter as their square root
ACTIVATION_SCORES = ("wanda", "ria")


def input_norms(ctx, state, group: str, notes: list[str]) -> np.ndarray | None:
    """‖x_j‖₂ per input channel over the calibration tokens, or None with a note (no activations)."""
    energy = activation_energy(ctx, state, group)
    if energy is None:
        notes.append(f"{group}: no activations to weight by; used the weights alone")
        return None
    return np.sqrt(energy)


def importance(w: np.ndarray, axis: int, kind: str, norms: np.ndarray | None) -> np.ndarray:
    """The ``kind`` score of every element of ``w`` whose input channels lie along ``axis``."""
    score = np.abs(np.asarray(w)).astype(np.float64)
    shape = [1] * score.ndim
    shape[axis] = -1
    if kind == "ria":
        outputs = tuple(i for i in range(score.ndim) if i != axis)
        tiny = np.finfo(np.float64).tiny
        score = score / np.maximum(score.sum(axis=axis, keepdims=True), tiny) + \
            score / np.maximum(score.sum(axis=outputs, keepdims=True), tiny)
        return score if norms is None else score * (norms ** RIA_EXPONENT).reshape(shape)
    if kind == "wanda" and norms is not None:
        return score * norms.reshape(shape)
    return score
