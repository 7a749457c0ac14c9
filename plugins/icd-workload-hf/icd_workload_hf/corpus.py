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
from icd_core.toolkit import read_bytes

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


def read_lines(path: Path, encoding: str = "utf-8", what: str = "calibration file") -> list[str]:
    """The non-blank lines of a regular text file within ``ICD_LIMIT_TEXT_BYTES`` (a FIFO,
    a device such as /dev/zero or an oversized file is refused by name before reading)."""
    data = read_bytes(path, what, "text_bytes")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start}); "
                             f"expected the {what}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def calibration_texts(path: str | None, what: str = "calibration file") -> list[str]:
    """Paragraphs of text (one per non-blank line): the user's ``what`` file, else gensim's news
    background corpus."""
    lines = read_lines(Path(path), what=what) if path else read_lines(gensim_data() / "lee_background.cor", "latin-1")
    if not lines:
        raise InputDataError(f"{path}: empty {what} (no non-blank lines)")
    return lines


DECODER_CALIBRATION_PASSAGES = 80
SHINGLE_WORDS = 8
HELDOUT_CORPUS = ("gensim lee_background.cor, passages 81-300 less those repeating 8 words of passages 1-80 "
                  "(news; never used to calibrate)")


def _shingles(passage: str) -> set[tuple[str, ...]]:
    words = passage.split()
    return {tuple(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def decoder_texts() -> tuple[list[str], list[str]]:
    """gensim's news corpus split for decoders: (calibration, held-out). The first 80 passages
    (18k SmolLM2 tokens) give calibration batches and long prompts; of the other 220, those that
    repeat no 8-word run of them (218, 56k tokens: the corpus carries a few re-run stories) are
    only ever evaluated."""
    lines = calibration_texts(None)
    calibration = lines[:DECODER_CALIBRATION_PASSAGES]
    seen = set().union(*(_shingles(p) for p in calibration))
    return calibration, [p for p in lines[DECODER_CALIBRATION_PASSAGES:] if not _shingles(p) & seen]


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
