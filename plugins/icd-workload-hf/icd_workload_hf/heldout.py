"""Held-out perplexity of a decoder: sliding-window negative log-likelihood per token.

The text is never used to calibrate anything (W, page layouts, rate searches): for the shipped
decoders it is the last 200 passages of gensim's news corpus (``corpus.decoder_texts``), for
``--model`` the user's evaluation file or the same split. Windows of ``WINDOW`` tokens advance
by ``STRIDE``; each token is scored once, with at least ``WINDOW − STRIDE`` tokens of context
after the first window (the usual strided evaluation). The per-token NLLs are the paired items
of the run's CI machinery; perplexity is their exp-mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from icd_core import Figure, ModelState, Samples

WINDOW = 512
STRIDE = 256


def sliding_nll(module: torch.nn.Module, params: dict[str, torch.Tensor], ids: torch.Tensor,
                window: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """NLL (nats) of tokens 1 … T−1 of ``ids`` (1 × T) under ``module`` with ``params``."""
    total = ids.shape[1]
    parts, scored = [], 0  # scored: the last position already scored
    with torch.no_grad():
        for begin in range(0, max(total - 1, 1), stride):
            end = min(begin + window, total)
            x = ids[:, begin:end]
            logits = functional_call(module, params, args=(), kwargs={"input_ids": x, "use_cache": False},
                                     strict=False).logits[0, :-1].float()
            nll = -torch.log_softmax(logits, -1).gather(-1, x[0, 1:].unsqueeze(-1))[:, 0]
            parts.append(nll[scored - begin:].double().cpu().numpy())  # positions scored + 1 … end − 1
            scored = end - 1
            if end == total:
                break
    return np.concatenate(parts)


def heldout_figures(workload: Any, state: ModelState) -> dict[str, Figure]:
    """``heldout_nll`` (per token, paired across states) and ``heldout_ppl`` of the state."""
    ids = getattr(workload, "heldout_ids", None)
    if ids is None or ids.shape[1] < 2:
        return {}
    params = {k: v for k, v in state.tensors.items() if not k.startswith("cache.")}
    nll = sliding_nll(workload.module, params, ids.to(workload.device))
    detail = {"corpus": workload.heldout_corpus, "tokens": int(nll.size), "window": WINDOW, "stride": STRIDE}
    source = "measured:heldout-text"
    return {"heldout_nll": Figure(float(nll.mean()), source, unit="nats/token", samples=Samples("token", nll),
                                  better="lower", detail=detail),
            "heldout_ppl": Figure(float(np.exp(nll.mean())), source, unit="", better="lower", detail=detail)}
