"""Sparse kernels for pruned weights on CUDA (the CPU runs them dense).

2:4 → ``torch.sparse.to_sparse_semi_structured`` (fp16/bf16, CUDA); unstructured or block →
BSR with 32×32 blocks, kept only if ``F.linear`` accepts it. A weight that cannot take a
sparse kernel runs dense and the reason is returned, never hidden.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BSR_BLOCK = 32


def sparse_kernel(w: torch.Tensor, kind: str) -> tuple[torch.Tensor, str]:
    if w.dim() != 2 or not w.is_cuda:
        return w, "dense (not a 2-D CUDA weight)"
    if kind == "2:4":
        if w.dtype not in (torch.float16, torch.bfloat16):
            return w, f"dense (semi-structured 2:4 needs fp16/bf16, weight is {w.dtype})"
        try:
            return torch.sparse.to_sparse_semi_structured(w), "semi-structured 2:4"
        except (RuntimeError, ValueError, NotImplementedError) as exc:
            return w, f"dense (semi-structured unavailable: {str(exc).splitlines()[0]})"
    if kind in ("unstructured", "block"):
        try:
            bsr = w.to_sparse_bsr((BSR_BLOCK, BSR_BLOCK))
            F.linear(torch.zeros(1, w.shape[1], device=w.device, dtype=w.dtype), bsr)
            return bsr, f"bsr {BSR_BLOCK}×{BSR_BLOCK}"
        except (RuntimeError, ValueError, NotImplementedError, TypeError) as exc:
            return w, f"dense (BSR linear unavailable: {str(exc).splitlines()[0]})"
    return w, f"dense (no sparse kernel for {kind})"
