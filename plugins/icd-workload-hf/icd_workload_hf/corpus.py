"""Text and labelled data for the workloads, all from installed packages or this repo.

The ``gensim`` wheel ships human-labelled evaluation data under ``gensim/test/test_data``
(located without importing gensim): Lee et al.'s 50 news documents with pairwise human
similarity ratings, WordSim353, SimLex-999, 200 labelled movie-review sentences (Pang & Lee),
and a 300-document news background corpus used here for calibration text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import attrs
import numpy as np

from icd_core import InputDataError

HERE = Path(__file__).parent / "data"


def gensim_data() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise InputDataError("gensim is not installed: its wheel carries the labelled evaluation data "
                             "(pip install gensim)")
    path = Path(spec.origin).parent / "test" / "test_data"
    if not (path / "lee.cor").is_file():
        raise InputDataError(f"{path}: gensim's test data is missing (lee.cor)")
    return path


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise InputDataError(f"{path}: no such calibration file") from None
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}: not {encoding} text ({exc.reason})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def calibration_texts(path: str | None) -> list[str]:
    """Paragraphs of calibration text: the user's file, else gensim's news background corpus."""
    lines = read_lines(Path(path)) if path else read_lines(gensim_data() / "lee_background.cor", "latin-1")
    if not lines:
        raise InputDataError(f"{path}: empty calibration set (no non-blank lines)")
    return lines


def continuation_text() -> str:
    """A fixed English text committed with icd (perplexity and decoding for SmolLM2)."""
    return (HERE / "continuation.txt").read_text(encoding="utf-8")


@attrs.frozen
class LabelledTasks:
    lee_docs: list[str]
    lee_human: np.ndarray  # 50 × 50 similarity ratings (upper triangle used)
    wordsim: list[tuple[str, str, float]]
    simlex: list[tuple[str, str, float]]
    polarity: list[tuple[str, int]]  # sentence, 1 = positive


def _pairs(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in read_lines(path):
        if line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        out.append((a, b, float(score)))
    return out


def labelled_tasks() -> LabelledTasks:
    root = gensim_data()
    docs = read_lines(root / "lee.cor", "latin-1")
    human = np.loadtxt(root / "similarities0-1.txt")
    polarity = []
    for line in read_lines(root / "pang_lee_polarity.cor", "cp1252"):
        label, _, sentence = line.partition(" ")
        polarity.append((sentence, 1 if label == "__label__pos" else 0))
    return LabelledTasks(lee_docs=docs, lee_human=human, wordsim=_pairs(root / "wordsim353.tsv"),
                         simlex=_pairs(root / "simlex999.txt"), polarity=polarity)
