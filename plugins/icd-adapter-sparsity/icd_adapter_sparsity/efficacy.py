"""Choosing which input channels share an N:M group, to keep the most magnitude.

Efficacy (Pool & Yu 2021) is the share of the gap closed between the default-order N:M keep
(0 %) and the per-row best-N-of-M-fraction bound (100 %). The search works on a score matrix
``a`` (rows × channels, |w| or Wanda's |w|·‖x‖) and moves channels between groups:

- the exact gain of swapping the channel at position p (group A) with the one at q (group B)
  needs only, per row, the top N−1 sum and the N-th value of A without p: the new keep of A
  is ``top + max(nth, a_q)``; all pair gains of a window come from one broadcast;
- steepest ascent applies the best swap until none gains, then a few random swaps perturb the
  best layout and ascent resumes (iterated local search), for a number of rounds and within
  a budget of work (pair-gain evaluations, counted: the result never depends on the machine's
  speed or load; a wall-clock cap is only a safety net);
- large matrices are searched in windows of channels (all windows at once, batched); windows
  are redrawn between rounds so channels can travel;
- a global search starts from a RIA-style grouping (channels by importance dealt to groups
  in a snake, each slot then re-dealt by a linear assignment), so it never ends below it.
"""

from __future__ import annotations

import time

import attrs
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

WINDOW = 64  # channels per search window (a multiple of m)
MAX_BATCH = 40_000_000  # elements of the gain tensor computed at once
DEFAULT_WORK = 3e10
"""Pair-gain evaluations (a row × a swap pair) one search may spend: the whole search of every
SmolLM2 and MiniLM weight (≤ 5e9), about a minute on these cores; a residual stream whose rows
stack every weight that reads it (MiniLM: 59,491 × 384, ~2e11 for its 13 rounds) stops here."""


@attrs.define
class Budget:
    """What a search may still spend: pair-gain evaluations (counted) and a wall-clock safety
    cap; ``cut`` says which one ended it (``None``: neither)."""

    work: float
    deadline: float
    spent: float = 0.0
    cut: str | None = None

    def spend(self, units: float) -> bool:
        """Whether ``units`` more may be spent (then they are counted); False ends the search."""
        if self.cut is None and self.spent + units > self.work:
            self.cut = "work"
        elif self.cut is None and time.perf_counter() >= self.deadline:
            self.cut = "time"
        if self.cut is not None:
            return False
        self.spent += units
        return True


def kept(a: np.ndarray, perm: np.ndarray, n: int, m: int) -> float:
    """Score kept by N:M in the order ``perm`` (rows × channels; channels a multiple of m)."""
    g = a[:, perm].reshape(a.shape[0], -1, m)
    return float(np.sort(g, axis=2)[:, :, m - n:].sum())


def row_bound(a: np.ndarray, n: int, m: int) -> float:
    """The per-row bound: each row keeps its best n/m fraction wherever it lies."""
    k = a.shape[1] * n // m
    return float(np.sort(a, axis=1)[:, a.shape[1] - k:].sum())


def efficacy(default: float, ours: float, bound: float) -> float:
    return 100.0 * (ours - default) / (bound - default) if bound > default else 0.0


def sum_of_max(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``out[p, q] = Σ_r max(x[r, p], y[r, q])`` (rows × P, rows × Q → P × Q), through
    max(a, b) = (a + b + |a − b|) / 2: an L1 distance matrix, computed by scipy in C."""
    l1 = cdist(x.T, y.T, "cityblock")
    return 0.5 * (x.sum(0)[:, None] + y.sum(0)[None, :] + l1)


def leave_one_out(groups: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups along the last axis (size m > n): the kept sum of each group (top n), and
    per member the sum of the top n−1 of the *other* members and their n-th largest value —
    from one descending sort and each member's rank in it."""
    m = groups.shape[-1]
    order = np.argsort(-groups, axis=-1, kind="stable")
    desc = np.take_along_axis(groups, order, -1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(m), order.shape), -1)
    head = desc[..., : n - 1].sum(-1, keepdims=True)
    top = np.where(rank >= n - 1, head, head + desc[..., n - 1:n] - groups)
    nth = np.where(rank > n - 1, desc[..., n - 1:n], desc[..., n:n + 1])
    return desc[..., :n].sum(-1), top, nth


def _window_gains(a: np.ndarray, positions: np.ndarray, perm: np.ndarray, n: int, m: int) -> np.ndarray:
    """Gain of every swap inside each window: (windows × S × S); same-group pairs are −inf."""
    w, s = positions.shape
    vals = a[:, perm[positions]]  # rows × w × s
    rows = vals.shape[0]
    groups = vals.reshape(rows, w, s // m, m)
    keep, top, nth = leave_one_out(groups, n)
    top, nth = top.reshape(rows, w, s), nth.reshape(rows, w, s)
    base = (top - np.repeat(keep, m, axis=2)).sum(0)  # w × s
    lifted = np.stack([sum_of_max(nth[:, k, :], vals[:, k, :]) for k in range(w)])  # w × s × s
    gain_a = base[:, :, None] + lifted
    gain = gain_a + gain_a.transpose(0, 2, 1)
    same = (np.arange(s)[:, None] // m) == (np.arange(s)[None, :] // m)
    gain[:, same] = -np.inf
    return gain


def _disjoint_swaps(gain: np.ndarray, m: int, tol: float) -> list[tuple[int, int]]:
    """Positive-gain swaps of one window, best first, no group used twice (their gains add
    up exactly: a swap only changes its own two groups)."""
    s = gain.shape[0]
    groups = s // m
    flat = gain.ravel()
    candidates = np.argpartition(-flat, min(4 * groups, flat.size - 1))[: 4 * groups + 1]
    used = np.zeros(groups, dtype=bool)
    chosen = []
    for idx in candidates[np.argsort(-flat[candidates], kind="stable")]:
        if flat[idx] <= tol:
            break
        p, q = divmod(int(idx), s)
        if not (used[p // m] or used[q // m]):
            used[p // m] = used[q // m] = True
            chosen.append((p, q))
    return chosen


def _ascend(a: np.ndarray, positions: np.ndarray, perm: np.ndarray, n: int, m: int, budget: Budget) -> np.ndarray:
    """Steepest ascent in every window at once: each step applies, per window, the best
    swaps between distinct pairs of groups. Gains below a round-off floor (float32 sums)
    do not count, so ascent cannot cycle."""
    perm = perm.copy()
    tol = 1e-5 * float(a.sum()) / max(a.shape[1], 1)
    chunk = max(1, MAX_BATCH // (positions.shape[1] ** 2 * a.shape[0]))
    active = np.ones(len(positions), dtype=bool)
    while active.any() and budget.cut is None:
        for start in range(0, len(positions), chunk):
            idx = np.flatnonzero(active[start:start + chunk]) + start
            if idx.size == 0:
                continue
            if not budget.spend(float(a.shape[0]) * idx.size * positions.shape[1] ** 2):
                break
            gain = _window_gains(a, positions[idx], perm, n, m)
            for k, window in enumerate(idx):
                swaps = _disjoint_swaps(gain[k], m, tol)
                if not swaps:
                    active[window] = False
                for p, q in swaps:
                    pp, qq = positions[window, p], positions[window, q]
                    perm[pp], perm[qq] = perm[qq], perm[pp]
    return perm


def _windows(groups: np.ndarray, m: int, size: int) -> np.ndarray:
    """Positions of windows made of whole groups (``groups``: group indices in some order)."""
    per = max(2, min(size // m, len(groups)))  # a weight with fewer groups than a window: one window
    usable = len(groups) - len(groups) % per
    chosen = groups[:usable].reshape(-1, per)
    return (chosen[:, :, None] * m + np.arange(m)).reshape(len(chosen), per * m)


def snake_assignment(a: np.ndarray, n: int, m: int, passes: int = 2) -> np.ndarray:
    """RIA-style grouping: importance-sorted channels dealt in a snake, then per slot a linear
    assignment of the slot's channels to groups that maximises the kept score."""
    groups = a.shape[1] // m
    order = np.argsort(-a.sum(0), kind="stable")
    slots = np.empty((groups, m), dtype=np.int64)
    for k, channel in enumerate(order[: groups * m]):
        lap, pos = divmod(k, groups)
        slots[pos if lap % 2 == 0 else groups - 1 - pos, lap] = channel
    for _ in range(passes):
        for s in range(m):
            rest = np.sort(a[:, np.delete(slots, s, axis=1)], axis=2)[:, :, ::-1]  # rows × groups × (m-1)
            top, nth = rest[:, :, : n - 1].sum(2), rest[:, :, n - 1]
            candidates = slots[:, s]
            gain = top.sum(0)[:, None] + sum_of_max(nth, a[:, candidates])
            rows, cols = linear_sum_assignment(-gain)
            slots[rows, s] = candidates[cols]
    return slots.ravel()


def default_rounds(channels: int) -> int:
    """Rounds of search by size: 160 up to 64 channels, then 5120 / channels, at least 3
    (each round of a large matrix costs more and gains less)."""
    return 160 if channels <= 64 else max(3, 5120 // channels)


SMALL = 256  # up to this many channels the search also starts from the identity order


def _local_search(a: np.ndarray, scores32: np.ndarray, start: np.ndarray, n: int, m: int, rounds: int,
                  rng: np.random.Generator, budget: Budget, blocks: int | None) -> tuple[np.ndarray, float, int]:
    """Iterated local search from ``start``: (best order, its kept score, rounds)."""
    groups = a.shape[1] // m
    best_perm, best = start.copy(), kept(a, start, n, m)
    perm = start.copy()
    done = 0
    while done < rounds:
        done += 1
        if blocks:
            per = blocks // m
            order = np.arange(groups - groups % per) if per >= 2 else np.zeros(0, dtype=np.int64)
        else:
            order = rng.permutation(groups) if done > 1 else np.arange(groups)
        positions = _windows(order, m, blocks or WINDOW) if len(order) >= 2 else np.zeros((0, 2 * m), int)
        if len(positions) == 0:
            break
        perm = _ascend(scores32, positions, perm, n, m, budget)
        value = kept(a, perm, n, m)
        if value > best + 1e-12:
            best, best_perm = value, perm.copy()
        if budget.cut is not None:
            return best_perm, best, done
        perm = best_perm.copy()  # perturb the best layout, inside the same windows
        kicks = max(2, positions.shape[1] // m // 4)
        for row in positions:
            for i, j in rng.integers(0, row.size, size=(kicks, 2)):
                perm[row[i]], perm[row[j]] = perm[row[j]], perm[row[i]]
    return best_perm, best, done


def search(a: np.ndarray, n: int, m: int, budget_s: float, seed: int, blocks: int | None = None,
           rounds: int | None = None, work: float = DEFAULT_WORK) -> tuple[np.ndarray, dict[str, float]]:
    """A channel order (``perm[position] = channel``) keeping more N:M score, and its stats.

    ``rounds`` ascent-and-perturb rounds, within ``work`` pair-gain evaluations, make the
    result deterministic for a seed (``work_cut`` says when the work budget ended it);
    ``budget_s`` is a wall-clock safety cap (``timed_out`` says when it cut the search short:
    only then does the result depend on the machine).
    ``blocks``: only exchange channels inside aligned runs of this many positions (a
    cache-line block), so a layout's block structure is kept; default: anywhere. A global
    search starts from the snake-and-assignment grouping, and for small matrices also from
    the identity order (the rounds are shared); the better result is kept.
    """
    t0 = time.perf_counter()
    budget = Budget(work=work, deadline=t0 + budget_s)
    a = np.abs(np.asarray(a, dtype=np.float64))
    scores32 = a.astype(np.float32)  # gains in float32 (they only rank swaps); kept() stays exact
    c = a.shape[1]
    identity = np.arange(c)
    default = kept(a, identity, n, m)
    best_perm, best = identity, default
    rounds = rounds or default_rounds(c)
    done = 0
    if c // m >= 2:
        starts = [identity] if blocks else ([identity] if c <= SMALL else []) + [snake_assignment(a, n, m)]
        for start in starts:
            rng = np.random.default_rng(seed)
            perm, value, used = _local_search(a, scores32, start, n, m, max(1, rounds // len(starts)), rng,
                                              budget, blocks)
            done += used
            if value > best + 1e-12:
                best, best_perm = value, perm
            if budget.cut is not None:
                break
    bound = row_bound(a, n, m)
    return best_perm, {"kept_default": default, "kept": best, "bound": bound,
                       "efficacy_pct": efficacy(default, best, bound), "search_s": time.perf_counter() - t0,
                       "rounds": done, "work": budget.spent, "work_budget": work,
                       "work_cut": budget.cut == "work", "timed_out": budget.cut == "time"}
