"""Orders of channels that put similar value ranges side by side (for shared quantization scales).

Used by the weight/activation quantizer and the KV-cache quantizer alike.

Per-group scales are set by the largest |value| of each group, so a channel with a wide range
inflates the step of every narrow channel grouped with it. ``sort``: channels ordered by
their range (max |w| over rows, or over tokens for activations); ``cluster``: k-means
(RPTQ-style) on each channel's (min, max) pair, clusters ordered by centre, members by range
— groups then cut the order into runs of ``group`` channels.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2


def channel_ranges(x2d: np.ndarray) -> np.ndarray:
    """(channels × 2) min and max of each column of a rows × channels matrix."""
    return np.stack([x2d.min(0), x2d.max(0)], axis=1).astype(np.float64)


def sort_order(x2d: np.ndarray) -> np.ndarray:
    span = np.abs(x2d).max(0)
    return np.lexsort((np.arange(span.size), span))


def cluster_order(x2d: np.ndarray, group: int, seed: int) -> np.ndarray:
    ranges = channel_ranges(x2d)
    span = np.abs(x2d).max(0)
    k = max(1, min(ranges.shape[0] // max(group, 1), 64))
    if k == 1:
        return sort_order(x2d)
    centres, labels = kmeans2(ranges, k, seed=seed, minit="++")
    centre_span = np.abs(centres).max(1)
    return np.lexsort((np.arange(span.size), span, centre_span[labels]))


def order_for(x2d: np.ndarray, method: str, group: int, seed: int) -> np.ndarray | None:
    if method == "sort":
        return sort_order(x2d)
    if method == "cluster":
        return cluster_order(x2d, group, seed)
    return None
