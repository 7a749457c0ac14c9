"""Masks: N:M along an axis, unstructured magnitude, and whole b×b tiles."""

from __future__ import annotations

import numpy as np


def nm_mask(w: np.ndarray, axis: int, n: int, m: int) -> np.ndarray:
    """Boolean mask keeping the n largest |w| in each run of m along ``axis`` (ties: lower index)."""
    moved = np.moveaxis(np.abs(w), axis, -1)
    runs = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    rank = np.argsort(-runs, axis=-1, kind="stable")
    keep = np.zeros(runs.shape, dtype=bool)
    np.put_along_axis(keep, rank[..., :n], True, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


def magnitude_mask(score: np.ndarray, rate: float) -> np.ndarray:
    """Keep all but the ``rate`` fraction with the smallest score (ties: lower flat index)."""
    flat = score.ravel()
    drop = int(round(rate * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:drop]] = False
    return keep.reshape(score.shape)


def tile_scores(score2d: np.ndarray, b: int) -> np.ndarray:
    """Sum of the score in each b×b tile of a 2-D matrix (edges padded with zeros)."""
    r, c = score2d.shape
    padded = np.zeros((-(-r // b) * b, -(-c // b) * b))
    padded[:r, :c] = score2d
    return padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b).sum(axis=(1, 3))


def block_mask(score2d: np.ndarray, b: int, rate: float) -> np.ndarray:
    """Keep whole b×b tiles: all but the ``rate`` fraction with the least total score."""
    tiles = tile_scores(score2d, b)
    keep_tiles = magnitude_mask(tiles, rate)
    full = np.repeat(np.repeat(keep_tiles, b, axis=0), b, axis=1)
    return full[: score2d.shape[0], : score2d.shape[1]]


def nonzero_tiles(w2d: np.ndarray, b: int) -> int:
    return int(np.count_nonzero(tile_scores(np.abs(w2d) > 0, b)))
