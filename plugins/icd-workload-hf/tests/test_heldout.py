"""Held-out perplexity: text that never calibrated anything, each token scored once."""

from __future__ import annotations

import numpy as np
import torch


def ngrams(ids: torch.Tensor, n: int = 16) -> set[tuple[int, ...]]:
    flat = ids.reshape(-1).tolist()
    return {tuple(flat[i:i + n]) for i in range(len(flat) - n + 1)}


def test_held_out_text_shares_nothing_with_what_calibrates():
    from icd_workload_hf.corpus import continuation_text, decoder_texts
    from icd_workload_hf.models import CALIBRATION, HELDOUT, text_batches
    from icd_workload_hf.smollm2 import dequantised_directory, gguf_path, heldout_ids, load_directory, text_ids

    _, tokenizer = load_directory(dequantised_directory(gguf_path(None)))
    calibration, heldout = decoder_texts()
    assert not set(calibration) & set(heldout) and len(heldout) == 218
    held = heldout_ids(tokenizer, heldout, 50_000)  # the benchmark's 50k tokens exist
    assert held.shape == (1, 50_000)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batches = text_batches(tokenizer, calibration, 4, 128, CALIBRATION + HELDOUT, 0)  # W's activations
    used = [b["input_ids"][b["attention_mask"].bool()] for b in batches]
    used += [text_ids(tokenizer, 8160 + 33), tokenizer(continuation_text(), return_tensors="pt")["input_ids"]]
    seen = set().union(*(ngrams(u) for u in used))
    assert not ngrams(held) & seen  # no 16-token run of the held-out text calibrates, prompts or decodes


def test_sliding_windows_score_every_token_once_and_match_full_context():
    from icd_workload_hf.heldout import sliding_nll
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, vocab_size=50)).eval()
    params = dict(model.named_parameters())
    ids = torch.randint(0, 50, (1, 70), generator=torch.Generator().manual_seed(1))
    full = sliding_nll(model, params, ids, window=128, stride=64)  # one window: the whole text
    strided = sliding_nll(model, params, ids, window=32, stride=16)
    assert full.shape == strided.shape == (69,)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
    exact = -logp.gather(-1, ids[0, 1:, None])[:, 0].double().numpy()
    assert np.allclose(full, exact, atol=1e-5)
    assert np.allclose(strided[:31], exact[:31], atol=1e-5)  # the first window has all its context
    assert not np.allclose(strided, exact, atol=1e-5)  # later tokens see 16–31 tokens, not all
