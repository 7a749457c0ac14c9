"""Registered undos, run in reverse to restore an earlier state exactly."""

from __future__ import annotations

import attrs
import numpy as np

from icd_core.contract.records import Undo
from icd_core.contract.state import ModelState
from icd_core.layout.permutations import inverse


def undo_permutation(group: str, perm: np.ndarray) -> Undo:
    """Undo of ``state.permuted(group, perm)``: the inverse gather (exact, no copies kept)."""
    inv = inverse(np.asarray(perm, dtype=np.int64))
    return lambda state: state.permuted(group, inv)


def restore(previous: ModelState) -> Undo:
    """Undo that returns the state object a step started from (adapters never mutate it)."""
    return lambda _state: previous


@attrs.define
class UndoStack:
    """Steps applied since a checkpoint, each with the callable that reverses it, and the
    state they lead to (what a rollback starts from)."""

    state: ModelState
    steps: list[tuple[str, Undo]] = attrs.Factory(list)

    def push(self, label: str, undo: Undo, state: ModelState) -> None:
        """Record a step that led to ``state``."""
        self.steps.append((label, undo))
        self.state = state

    def copy(self) -> UndoStack:
        return UndoStack(self.state, list(self.steps))

    def rollback(self) -> tuple[ModelState, list[str], list[str]]:
        """Run every undo in reverse, even after one fails; returns the state reached, the
        labels undone and the failures (``label: error``). The stack is then empty, at the
        state reached."""
        state = self.state
        undone, failed = [], []
        while self.steps:
            label, undo = self.steps.pop()
            try:
                state = undo(state)
            except Exception as exc:  # recorded; the remaining undos still run
                failed.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            undone.append(label)
        self.state = state
        return state, undone, failed


def roll_back(stack: UndoStack, pre_state: ModelState | None, pre_digest: str) -> tuple[ModelState, dict]:
    """Undo everything on ``stack``; if that does not give back the pre-run state, fall back
    to the retained ``pre_state`` (when it is itself intact). Returns the state reached (the
    stack's state from then on) and the record of what happened (``verified``: its digest is
    the pre-run one)."""
    restored, undone, failed = stack.rollback()
    how = "registered undos, in reverse"
    if restored.digest() != pre_digest and pre_state is not None and pre_state.digest() == pre_digest:
        restored, how = pre_state, "the retained pre-run state (the undos did not restore it)"
    stack.state = restored
    digest = restored.digest()
    return restored, {"undone": undone, "undo_failures": failed, "restored": "pre-run state (π_prev)", "how": how,
                      "verified": digest == pre_digest, "state_digest": digest, "expected_digest": pre_digest}
