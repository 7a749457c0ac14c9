"""MiniLM's own quality: four human-labelled tasks plus embedding fidelity vs the dense model.

- Lee: Pearson between the 50 documents' embedding cosines and human similarity ratings;
- WordSim353 and SimLex-999: Spearman between word-embedding cosines and human ratings;
- Pang & Lee polarity: leave-one-out nearest-centroid accuracy on 200 labelled sentences.
Embeddings are sentence-transformers style: mean pooling over real tokens, L2-normalised.
Figures are in percent so the quality gate's "percentage points" read directly.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
import torch

from icd_core import Figure, Samples
from icd_core.toolkit import statistic

from .corpus import LabelledTasks

Embed = Callable[[dict[str, torch.Tensor]], torch.Tensor]
SOURCE = "measured:labelled-task"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 normalisation (the all-MiniLM-L6-v2 recipe)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


@attrs.frozen
class Batches:
    """Tokenised texts in length-sorted chunks (little padding) and the order that maps the
    concatenated outputs back to the texts' own order."""

    chunks: list[dict[str, torch.Tensor]]
    restore: np.ndarray

    @classmethod
    def of(cls, tokenizer, texts: list[str], length: int, chunk: int, device: str) -> Batches:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        chunks = []
        for i in range(0, len(texts), chunk):
            part = [texts[j] for j in order[i:i + chunk]]
            encoded = tokenizer(part, padding=True, truncation=True, max_length=length, return_tensors="pt")
            chunks.append({k: v.to(device) for k, v in encoded.items()})
        return cls(chunks, np.argsort(order, kind="stable"))


class TaskSuite:
    """Tokenises the task data once; ``evaluate(embed)`` scores one model state."""

    def __init__(self, tasks: LabelledTasks, tokenizer, max_length: int = 256, device: str = "cpu") -> None:
        self.tasks = tasks
        self.reference: np.ndarray | None = None  # the dense model's embeddings of every task item
        words = sorted({w for a, b, _ in tasks.wordsim + tasks.simlex for w in (a, b)})
        self.word_index = {w: i for i, w in enumerate(words)}
        self.lee = Batches.of(tokenizer, tasks.lee_docs, max_length, 25, device)
        self.words = Batches.of(tokenizer, words, 16, 448, device)  # length-sorted: most chunks unpadded
        self.polarity = Batches.of(tokenizer, [s for s, _ in tasks.polarity], 128, 50, device)

    @staticmethod
    def _embed_all(embed: Embed, batches: Batches) -> np.ndarray:
        out = torch.cat([embed(b) for b in batches.chunks]).float().cpu().numpy().astype(np.float64)
        return out[batches.restore]

    def _word_pairs(self, vectors: np.ndarray, pairs: list[tuple[str, str, float]]) -> np.ndarray:
        """(cosine, human rating) per word pair."""
        a = np.array([self.word_index[x] for x, _, _ in pairs])
        b = np.array([self.word_index[y] for _, y, _ in pairs])
        return np.column_stack([(vectors[a] * vectors[b]).sum(1), [s for _, _, s in pairs]])

    def evaluate(self, embed: Embed, dense: Embed | None = None, pristine: bool = False) -> dict[str, Figure]:
        """Each task's score in percent, with its per-item values as samples (pairs for the
        correlations, sentences for polarity) so two states can be compared item by item; and
        ``task_fidelity_pct``: the cosine of every task item's embedding to the unmodified
        model's (1,591 items: what decides a rate search). The reference embeddings are those
        of the first ``pristine`` (unmodified) state judged — free — else ``dense``'s."""
        if not pristine and dense is not None and self.reference is None:
            self.reference = np.concatenate([self._embed_all(dense, b) for b in (self.lee, self.words, self.polarity)])
        lee = self._embed_all(embed, self.lee)
        upper = np.triu_indices(len(lee), 1)
        lee_pairs = Samples("pair", np.column_stack([(lee @ lee.T)[upper], self.tasks.lee_human[upper]]),
                            statistic="pearson", scale=100.0)
        words = self._embed_all(embed, self.words)
        wordsim = Samples("pair", self._word_pairs(words, self.tasks.wordsim), statistic="spearman", scale=100.0)
        simlex = Samples("pair", self._word_pairs(words, self.tasks.simlex), statistic="spearman", scale=100.0)
        sentences = self._embed_all(embed, self.polarity)
        labels = np.array([y for _, y in self.tasks.polarity])
        correct = Samples("example", 100.0 * loo_centroid_correct(sentences, labels))

        def figure(samples: Samples, **detail) -> Figure:
            return Figure(float(statistic(samples)), SOURCE, unit="%", detail=detail, samples=samples)

        figures = {}
        every = np.concatenate([lee, words, sentences])
        if pristine and self.reference is None:
            self.reference = every
        if self.reference is not None:
            cosine = Samples("example", 100.0 * (every * self.reference).sum(1))
            figures["task_fidelity_pct"] = Figure(float(statistic(cosine)), "measured:output-fidelity", unit="%",
                                                  detail={"items": len(cosine)}, samples=cosine)
        return figures | {
            "lee_pearson_pct": figure(lee_pairs, pairs=len(lee_pairs)),
            "wordsim_spearman_pct": figure(wordsim, pairs=len(wordsim)),
            "simlex_spearman_pct": figure(simlex, pairs=len(simlex)),
            "polarity_acc_pct": figure(correct, sentences=len(correct)),
        }


def loo_centroid_correct(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sentence, 1.0 when leave-one-out nearest-centroid (cosine) classifies it right."""
    classes = np.unique(labels)
    sums = np.stack([x[labels == c].sum(0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    own = (labels[:, None] == classes[None, :])
    centroid_sum = sums[None, :, :] - own[:, :, None] * x[:, None, :]
    centroid = centroid_sum / (counts[None, :, None] - own[:, :, None])
    centroid /= np.linalg.norm(centroid, axis=2, keepdims=True)
    predicted = classes[np.argmax((centroid * x[:, None, :]).sum(2), axis=1)]
    return (predicted == labels).astype(np.float64)

