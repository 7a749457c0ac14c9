"""Python child processes that cannot import what lies in the caller's or a model's directory.

``python -c CODE`` and ``python -m MODULE`` put the working directory first on ``sys.path``,
so a ``transformers.py`` planted in a model directory that the user ``cd``-ed into would be
imported by the child. :func:`python_command` starts the interpreter with that entry left out
(``-P`` on Python ≥ 3.11, isolated mode ``-I`` before), or fully isolated (``-I``: no
``PYTHON*`` variables, no user site-packages either) where the child needs nothing from the
caller's environment; :func:`die_with_parent` is the ``preexec_fn`` that takes a child down
when its parent is killed (Linux), so a ``kill -9`` leaves no process running on.
"""

from __future__ import annotations

import signal
import sys

PR_SET_PDEATHSIG = 1


def python_command(*args: str, isolated: bool = False) -> list[str]:
    """``[python, FLAGS, *args]``: the working directory never on ``sys.path``; ``isolated``
    also ignores ``PYTHON*`` environment variables and the user's site-packages."""
    flags = ["-I"] if isolated or sys.version_info < (3, 11) else ["-P"]
    return [sys.executable, *flags, *args]


def die_with_parent() -> None:
    """In a child before it execs: receive SIGKILL when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
