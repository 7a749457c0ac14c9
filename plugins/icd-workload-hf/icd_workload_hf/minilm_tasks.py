"""MiniLM's own quality: four human-labelled tasks plus embedding fidelity vs the dense model.

- Lee: Pearson between the 50 documents' embedding cosines and human similarity ratings;
- WordSim353 and SimLex-999: Spearman between word-embedding cosines and human ratings;
- Pang & Lee polarity: leave-one-out nearest-centroid accuracy on 200 labelled sentences.
Embeddings are sentence-transformers style: mean pooling over real tokens, L2-normalised.
Figures are in percent so the quality gate's "percentage points" read directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from icd_core import Figure

from .corpus import LabelledTasks

Embed = Callable[[dict[str, torch.Tensor]], torch.Tensor]
SOURCE = "measured:labelled-task"
CHUNK = 64


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 normalisation (the all-MiniLM-L6-v2 recipe)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class TaskSuite:
    """Tokenises the task data once; ``evaluate(embed)`` scores one model state."""

    def __init__(self, tasks: LabelledTasks, tokenizer, max_length: int = 256, device: str = "cpu") -> None:
        def batches(texts: list[str], length: int) -> list[dict[str, torch.Tensor]]:
            return [{k: v.to(device) for k, v in tokenizer(texts[i:i + CHUNK], padding=True, truncation=True,
                                                          max_length=length, return_tensors="pt").items()}
                    for i in range(0, len(texts), CHUNK)]

        self.tasks = tasks
        words = sorted({w for a, b, _ in tasks.wordsim + tasks.simlex for w in (a, b)})
        self.word_index = {w: i for i, w in enumerate(words)}
        self.lee = batches(tasks.lee_docs, max_length)
        self.words = batches(words, 16)
        self.polarity = batches([s for s, _ in tasks.polarity], 128)

    @staticmethod
    def _embed_all(embed: Embed, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
        return torch.cat([embed(b) for b in batches]).float().cpu().numpy().astype(np.float64)

    def _word_score(self, vectors: np.ndarray, pairs: list[tuple[str, str, float]]) -> float:
        a = np.array([self.word_index[x] for x, _, _ in pairs])
        b = np.array([self.word_index[y] for _, y, _ in pairs])
        cosine = (vectors[a] * vectors[b]).sum(1)
        return float(spearmanr(cosine, [s for _, _, s in pairs]).statistic)

    def evaluate(self, embed: Embed) -> dict[str, Figure]:
        lee = self._embed_all(embed, self.lee)
        upper = np.triu_indices(len(lee), 1)
        lee_r = float(pearsonr((lee @ lee.T)[upper], self.tasks.lee_human[upper]).statistic)
        words = self._embed_all(embed, self.words)
        sentences = self._embed_all(embed, self.polarity)
        labels = np.array([y for _, y in self.tasks.polarity])
        return {
            "lee_pearson_pct": Figure(100 * lee_r, SOURCE, unit="%", detail={"pairs": int(upper[0].size)}),
            "wordsim_spearman_pct": Figure(100 * self._word_score(words, self.tasks.wordsim), SOURCE, unit="%",
                                           detail={"pairs": len(self.tasks.wordsim)}),
            "simlex_spearman_pct": Figure(100 * self._word_score(words, self.tasks.simlex), SOURCE, unit="%",
                                          detail={"pairs": len(self.tasks.simlex)}),
            "polarity_acc_pct": Figure(100 * loo_centroid_accuracy(sentences, labels), SOURCE, unit="%",
                                       detail={"sentences": int(labels.size)}),
        }


def loo_centroid_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy (cosine), vectorised."""
    classes = np.unique(labels)
    sums = np.stack([x[labels == c].sum(0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    own = (labels[:, None] == classes[None, :])
    centroid_sum = sums[None, :, :] - own[:, :, None] * x[:, None, :]
    centroid = centroid_sum / (counts[None, :, None] - own[:, :, None])
    centroid /= np.linalg.norm(centroid, axis=2, keepdims=True)
    predicted = classes[np.argmax((centroid * x[:, None, :]).sum(2), axis=1)]
    return float((predicted == labels).mean())
