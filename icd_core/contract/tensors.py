"""Array helpers that accept numpy arrays and torch tensors alike (torch never imported here)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def is_torch(t: Any) -> bool:
    return type(t).__module__.startswith("torch")


def take(t: Any, index: np.ndarray, axis: int) -> Any:
    """Gather ``t`` along ``axis`` (a copy; the input is never modified)."""
    if is_torch(t):
        import torch

        return torch.index_select(t, axis, torch.as_tensor(index, dtype=torch.long, device=t.device))
    return np.take(t, index, axis=axis)


def rows_along(w: np.ndarray, axis: int) -> np.ndarray:
    """``w`` as a (rows × axis length) matrix whose columns are the entries along ``axis``."""
    moved = np.moveaxis(w, axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def to_numpy(t: Any) -> np.ndarray:
    """A host numpy view/copy of ``t``."""
    if is_torch(t):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def numpy_like(values: np.ndarray, like: Any) -> Any:
    """``values`` in the container, device and dtype of ``like`` (numpy or torch)."""
    if is_torch(like):
        import torch

        return torch.from_numpy(np.ascontiguousarray(values)).to(device=like.device, dtype=like.dtype)
    return np.asarray(values).astype(np.asarray(like).dtype, copy=False)


def element_size(t: Any) -> int:
    if is_torch(t):
        return int(t.element_size())
    return int(np.asarray(t).itemsize)


def nbytes(t: Any) -> int:
    if is_torch(t):
        return int(t.numel() * t.element_size())
    return int(np.asarray(t).nbytes)


def update_digest(h: Any, name: str, t: Any) -> None:
    """Feed a tensor's name, dtype, shape and exact bytes into a hashlib object."""
    if is_torch(t):
        dtype, shape = str(t.dtype), tuple(t.shape)
        raw = t.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes()
    else:
        arr = np.ascontiguousarray(t)
        dtype, shape, raw = str(arr.dtype), arr.shape, arr.tobytes()
    h.update(f"{name}|{dtype}|{shape}|".encode())
    h.update(raw)


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def digest(tensors: dict[str, Any]) -> str:
    """sha256 over every tensor, in name order: equal digests mean bit-identical states."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        update_digest(h, name, tensors[name])
    return h.hexdigest()
