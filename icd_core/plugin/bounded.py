"""Calling plugin code with a time limit, and never letting it end the process.

A hook runs in a daemon worker thread (the caller's context variables copied in) that the
caller waits on for at most ``timeout_s``: a plugin that hangs becomes a :class:`PluginTimeout`
naming the plugin and hook, and the run goes on as for any plugin error (the stuck thread is
abandoned; it cannot hold the process open at exit). ``SystemExit`` raised by a plugin is a
:class:`PluginError`, never a silent exit 0; ``KeyboardInterrupt`` stays an interrupt.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from icd_core.contract.errors import PluginError


class PluginTimeout(PluginError):
    """A plugin's hook did not answer within its time limit."""


def call_bounded(fn: Callable[..., Any], kwargs: dict[str, Any], timeout_s: float | None, what: str) -> Any:
    """``fn(**kwargs)`` with a time limit (None: none); ``what`` names the plugin and hook in errors."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = exc

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(target,), daemon=True, name=f"icd {what}")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise PluginTimeout(f"{what} did not answer within {timeout_s:g} s (abandoned)")
    error = box.get("error")
    if isinstance(error, SystemExit):
        raise PluginError(f"{what} raised SystemExit({error.code!r}); a plugin may not end the process") from None
    if error is not None:
        raise error
    return box.get("result")
