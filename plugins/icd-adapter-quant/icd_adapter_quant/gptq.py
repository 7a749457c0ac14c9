"""GPTQ (Frantar et al. 2023) and round-to-nearest with any grouping of input columns.

Weights are rows (outputs) × columns (inputs); ``hessian`` is XᵀX of the layer's inputs over
calibration tokens. A quantization *plan* says which columns share a scale (``group_of``) and
in which order GPTQ visits them (``order``); every scheme in the comparison is a plan:

- natural order: groups of ``g`` consecutive columns, visited left to right;
- act-order (the GPTQ reference's ``desc_act``): columns visited by decreasing Hessian
  diagonal, groups of ``g`` consecutive *visits* — scattered columns, so a kernel needs a
  ``g_idx`` (column → group) and reorders its input at run time;
- a function-preserving permutation applied to the model first (icd): contiguous groups in
  the new order, no ``g_idx``;
- that permutation plus act-order inside it: groups stay contiguous, columns are visited by
  decreasing diagonal, scales fixed from the weights before the visit (``static``, as the
  reference's ``static_groups``).

Scales are symmetric min-max per (row, group). GPTQ quantizes one column at a time and
spreads its error over the columns not yet visited through the inverse Hessian's Cholesky
factor, in lazy blocks of 128 columns (the paper's Algorithm 1), with 1 % dampening.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

BLOCK = 128
DAMP = 0.01


@attrs.frozen
class Plan:
    """Which columns share a scale and the order GPTQ visits them."""

    group_of: np.ndarray  # column → group index
    order: np.ndarray  # visit order (a permutation of the columns)
    static: bool = False  # scales from the unquantized weights before the visit
    needs_g_idx: bool = False  # groups are not runs of consecutive columns

    @classmethod
    def natural(cls, columns: int, group: int) -> Plan:
        return cls(np.arange(columns) // group, np.arange(columns))

    @classmethod
    def act_order(cls, diagonal: np.ndarray, group: int) -> Plan:
        """Visit by decreasing diagonal; groups of ``group`` consecutive visits (needs a g_idx)."""
        order = np.argsort(-diagonal, kind="stable")
        group_of = np.empty(len(order), dtype=np.int64)
        group_of[order] = np.arange(len(order)) // group
        return cls(group_of, order, needs_g_idx=True)

    @classmethod
    def contiguous_act_order(cls, diagonal: np.ndarray, group: int) -> Plan:
        """Contiguous groups, visited by decreasing diagonal with static scales (no g_idx)."""
        return cls(np.arange(len(diagonal)) // group, np.argsort(-diagonal, kind="stable"), static=True)


EDGE = 1e-9  # relative float noise within which a value counts as on the negative end's rounding edge


def _scales(w: torch.Tensor, qmax: int) -> torch.Tensor:
    """Per row: max|w| / (qmax + ½), every level of the signed grid used (minmax.symmetric_levels)."""
    amax = w.abs().amax(dim=1)
    return torch.where(amax > 0, amax / (qmax + 0.5), torch.ones_like(amax))


def _round(column: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    """Round to the grid; a value on the negative end's rounding edge (−(qmax + ½), the group's
    extreme, up to float noise) goes to −(qmax + 1) whatever its last bits, so two summation orders
    of the same arithmetic never disagree there."""
    x = column / scale
    x = torch.where(x <= -(qmax + 0.5) * (1 - EDGE), torch.full_like(x, -qmax - 1.0), x)
    return torch.clamp(torch.round(x), -qmax - 1, qmax) * scale


def rtn(w: np.ndarray, bits: int, plan: Plan) -> np.ndarray:
    """Round to nearest, one symmetric scale per (row, group)."""
    qmax = 2 ** (bits - 1) - 1
    x = torch.from_numpy(np.asarray(w, dtype=np.float64))
    out = torch.empty_like(x)
    groups = torch.from_numpy(plan.group_of)
    for g in torch.unique(groups):
        cols = torch.nonzero(groups == g)[:, 0]
        part = x[:, cols]
        out[:, cols] = _round(part, _scales(part, qmax)[:, None], qmax)
    return out.numpy()


def gptq(w: np.ndarray, hessian: np.ndarray, bits: int, plan: Plan, block: int = BLOCK,
         damp: float = DAMP) -> np.ndarray:
    """GPTQ-quantized (dequantised) weights, in the columns' original order."""
    qmax = 2 ** (bits - 1) - 1
    W = torch.from_numpy(np.array(w, dtype=np.float64))
    H = torch.from_numpy(np.array(hessian, dtype=np.float64))
    cols = W.shape[1]
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    group_of = torch.from_numpy(np.asarray(plan.group_of))
    scales: dict[int, torch.Tensor] = {}
    if plan.static:
        for g in torch.unique(group_of).tolist():
            scales[g] = _scales(W[:, group_of == g], qmax)
    order = torch.from_numpy(np.asarray(plan.order))
    W, H, visit_group = W[:, order], H[order][:, order], group_of[order]
    H += damp * torch.mean(torch.diagonal(H)) * torch.eye(cols, dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1, Err1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1, dtype=W.dtype)
        for i in range(i2 - i1):
            g = int(visit_group[i1 + i])
            if g not in scales:  # first visit of a group: its columns are the next visits
                members = torch.nonzero(visit_group[i1 + i:i2] == g)[:, 0] + i
                if int((visit_group == g).sum()) != members.numel():
                    raise ValueError("a group that is not fixed up front must be visited within one block")
                scales[g] = _scales(W1[:, members], qmax)
            q = _round(W1[:, i], scales[g], qmax)
            Q[:, i1 + i] = q
            err = (W1[:, i] - q) / Hinv[i1 + i, i1 + i]
            W1[:, i:] -= err[:, None] * Hinv[i1 + i, i1 + i:i2][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    out = torch.empty_like(Q)
    out[:, order] = Q
    return out.numpy()


def output_error(w: np.ndarray, q: np.ndarray, hessian: np.ndarray) -> float:
    """Relative layer-output error tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) on the calibration inputs."""
    d = np.asarray(q, dtype=np.float64) - w
    return float(((d @ hessian) * d).sum() / ((w @ hessian) * w).sum())
