"""pluggy markers for the ``icd`` project: plugins decorate their hooks with ``hookimpl``."""

from __future__ import annotations

import pluggy

PROJECT = "icd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
