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


@attrs.frozen
class UndoStack:
    """Steps applied since a checkpoint, each with the callable that reverses it, and the
    state they lead to (what a rollback starts from). A value: ``push`` returns a new stack."""

    state: ModelState
    steps: tuple[tuple[str, Undo], ...] = ()

    def push(self, label: str, undo: Undo, state: ModelState) -> UndoStack:
        """This stack with one more step, which led to ``state``."""
        return UndoStack(state, (*self.steps, (label, undo)))


def undo_all(stack: UndoStack) -> tuple[ModelState, list[str], list[str]]:
    """Run every undo of ``stack`` in reverse, even after one fails; returns the state reached,
    the labels undone and the failures (``label: error``)."""
    state = stack.state
    undone, failed = [], []
    for label, undo in reversed(stack.steps):
        try:
            state = undo(state)
        except Exception as exc:  # recorded; the remaining undos still run
            failed.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        undone.append(label)
    return state, undone, failed


def roll_back(stack: UndoStack, pre_state: ModelState | None, pre_digest: str) -> tuple[ModelState, dict]:
    """Undo everything on ``stack``; if that does not give back the pre-run state, fall back
    to the retained ``pre_state`` (when it is itself intact). Returns the state reached and the
    record of what happened (``verified``: its digest is the pre-run one)."""
    restored, undone, failed = undo_all(stack)
    how = "registered undos, in reverse"
    if restored.digest() != pre_digest and pre_state is not None and pre_state.digest() == pre_digest:
        restored, how = pre_state, "the retained pre-run state (the undos did not restore it)"
    digest = restored.digest()
    return restored, {"undone": undone, "undo_failures": failed, "restored": "pre-run state (π_prev)", "how": how,
                      "verified": digest == pre_digest, "state_digest": digest, "expected_digest": pre_digest}
