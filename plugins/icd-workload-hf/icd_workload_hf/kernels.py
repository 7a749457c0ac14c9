"""Kernels that read the layout, for pruned Linear weights.

``backend bsr`` on the CPU: a pruned weight runs as torch BSR (MKL, fp32/fp64; blocks of the
pruning's tile size, else 32) or as CSR, whichever a timed product on the workload's own
token count says is faster; ``auto`` also lets dense win. Time and bytes then follow the
non-zero tiles, which the layout decides. On CUDA: 2:4 → semi-structured (fp16/bf16),
unstructured or block → BSR. A kernel that cannot run here is an error naming the backend
and the reason, or — with ``auto`` — a recorded dense fallback.

Linear modules get a forward that dispatches on their weight's layout (``F.linear`` with a
BSR weight takes a slow path on the CPU): ``y = (W @ xᵀ)ᵀ + b`` for sparse weights.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from icd_core import ConfigError, InputDataError

BSR_BLOCK = 32
SPARSE_LAYOUTS = (torch.sparse_bsr, torch.sparse_csr)
TIMED_CALLS = 5


def sparse_linear(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The Linear forward for a BSR / CSR weight (a dense one takes ``F.linear``)."""
    w = module.weight
    if w.layout not in SPARSE_LAYOUTS:
        return F.linear(x, w, module.bias)
    y = (w @ x.reshape(-1, x.shape[-1]).T.contiguous()).T.reshape(*x.shape[:-1], w.shape[0])
    return y if module.bias is None else y + module.bias


def make_sparse_aware(model: torch.nn.Module) -> None:
    """Give every Linear of ``model`` the layout-dispatching forward."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.forward = lambda x, m=module: sparse_linear(m, x)


def _time(call, x: torch.Tensor) -> float:
    """The fastest of ``TIMED_CALLS`` timed calls (ms): robust to another process's burst."""
    call(x)
    best = float("inf")
    for _ in range(TIMED_CALLS):
        t0 = time.perf_counter()
        call(x)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def _block_of(w: torch.Tensor, sparsity: dict[str, Any]) -> int | None:
    b = int(sparsity.get("block") or BSR_BLOCK)
    return b if w.shape[0] % b == 0 and w.shape[1] % b == 0 else None


def cpu_kernel(w: torch.Tensor, sparsity: dict[str, Any], backend: str, tokens: int,
               choices: dict[tuple, str] | None = None) -> tuple[torch.Tensor, str]:
    """The CPU format of one pruned weight for ``backend`` (bsr | auto), chosen by timing
    (once per sparsity structure, remembered in ``choices``)."""
    if w.dtype not in (torch.float32, torch.float64):
        if backend == "auto":
            return w, f"dense (auto: torch's CPU BSR/CSR kernels take float32/float64, weight is {w.dtype})"
        raise InputDataError(f"execution.backend bsr: torch's CPU BSR/CSR kernels take float32 or float64, "
                             f"the workload runs {w.dtype} (use --backend auto or dense)")
    x = torch.randn(tokens, w.shape[1], dtype=w.dtype)
    block = _block_of(w, sparsity)
    with warnings.catch_warnings():  # torch: "sparse CSR/BSR support is in beta" on every conversion
        warnings.simplefilter("ignore", UserWarning)
        formats = {"csr": w.to_sparse_csr()}
        if block:
            formats[f"bsr {block}×{block}"] = w.to_sparse_bsr((block, block))
    if backend == "auto":
        formats["dense"] = w
    structure = (backend, tokens, tuple(w.shape), int(formats["csr"].values().numel()),
                 int(formats[f"bsr {block}×{block}"].values().shape[0]) if block else None)
    choices = {} if choices is None else choices
    if structure in choices:
        name = choices[structure].split(" (")[0]
        return formats[name], choices[structure]
    times = {name: _time(lambda v, t=t: (t @ v.T.contiguous()).T if t.layout in SPARSE_LAYOUTS else F.linear(v, t), x)
             for name, t in formats.items()}
    best = min(times, key=times.get)
    others = "; ".join(f"{n} {ms:.2f} ms" for n, ms in times.items() if n != best)
    choices[structure] = f"{best} ({times[best]:.2f} ms on {tokens} tokens; {others})"
    return formats[best], choices[structure]


def cuda_kernel(w: torch.Tensor, kind: str) -> tuple[torch.Tensor, str]:
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


KV_DECODER_BACKENDS = ("dense", "paged")


def check_backend(backend: str, device: str, kv_decoder: bool, where: str) -> None:
    """Before the model loads: a backend this workload runs, or one line. ``semi`` needs CUDA;
    a KV-cache decoder reads its layout through paged attention only (its Linears run dense)."""
    if backend == "semi" and not device.startswith("cuda"):
        raise ConfigError(f"execution.backend semi: 2:4 semi-structured kernels need CUDA "
                          f"(torch.sparse.to_sparse_semi_structured); {where} runs on {device}")
    if kv_decoder and backend not in KV_DECODER_BACKENDS:
        raise ConfigError(f"execution.backend {backend}: {where} decodes against its KV cache, whose Linears run "
                          f"dense; it reads a layout through --backend paged (KV pages), or runs --backend dense")


def kernel_for(w: torch.Tensor, sparsity: dict[str, Any], backend: str, device: str,
               tokens: int, choices: dict[tuple, str] | None = None) -> tuple[torch.Tensor, str]:
    """The executed form of a pruned weight and what it is (or why it stayed dense).
    ``choices`` remembers the timed choice per shape, non-zero count and non-zero tile count,
    so that weights of the same sparsity structure (arms at the same rate) run one kernel."""
    if device.startswith("cuda"):
        return cuda_kernel(w, sparsity["type"])
    if backend == "semi":
        raise InputDataError("execution.backend semi: 2:4 semi-structured kernels need CUDA "
                             "(torch.sparse.to_sparse_semi_structured); this workload runs on the CPU")
    if w.dim() != 2:
        return w, "dense (not a 2-D weight)"
    return cpu_kernel(w, sparsity, backend, tokens, choices)
