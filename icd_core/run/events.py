"""The event bus: one JSON line per stage, counter and warning in ``events.jsonl``.

Stage lines are ``{event: "stage", stage, t_start, t_end, ok, meta}`` (Unix seconds).
Failures carry the exception type, message and frames but never frame locals. The bus
times itself so the overhead can be reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from icd_core.contract.errors import ArtifactWriteError
from icd_core.contract.jsonify import jsonable
from icd_core.run.privacy import RedactingWriter


def _renderer() -> list[Any]:
    return [
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False, use_rich=False)),
        structlog.processors.JSONRenderer(serializer=json.dumps, default=jsonable, sort_keys=True),
    ]


class EventBus:
    """Write events to a file (or only keep them in memory when ``path`` is None)."""

    def __init__(self, path: Path | None = None, shown: Path | None = None) -> None:
        self.shown = shown or path
        try:
            self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None
        except OSError as exc:
            raise ArtifactWriteError(f"{self.shown}: cannot write ({exc.strerror or exc})") from None
        logger = structlog.WriteLogger(RedactingWriter(self._file)) if self._file else structlog.ReturnLogger()
        self._log = structlog.wrap_logger(logger, processors=_renderer(),
                                          cache_logger_on_first_use=False)
        self.events: list[dict[str, Any]] = []
        self.counters: dict[str, list[dict[str, Any]]] = {}
        self.overhead_s = 0.0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._open: list[dict[str, Any]] = []

    def _write(self, event: str, fields: dict[str, Any], exc: BaseException | None = None) -> None:
        t0 = time.perf_counter()
        record = {"event": event, **fields}
        self.events.append(record)
        try:
            self._log.info(event, **fields, **({"exc_info": exc} if exc is not None else {}))
            if self._file:
                self._file.flush()
        except OSError as err:
            raise ArtifactWriteError(f"{self.shown}: cannot write ({err.strerror or err})") from None
        self.overhead_s += time.perf_counter() - t0
        for listener in self.listeners:  # progress display; not counted as bus overhead
            listener(record)

    @contextmanager
    def stage(self, stage: str, /, **meta: Any) -> Iterator[dict[str, Any]]:
        """Time a stage; the yielded dict is its ``meta`` (add to it freely)."""
        t_start = time.time()
        self._open.append(meta)
        try:
            yield meta
        except BaseException as exc:
            self._open.pop()
            meta["error"] = f"{type(exc).__name__}: {exc}"
            self._write("stage", {"stage": stage, "t_start": t_start, "t_end": time.time(),
                                  "ok": False, "meta": meta}, exc)
            raise
        self._open.pop()
        self._write("stage", {"stage": stage, "t_start": t_start, "t_end": time.time(),
                              "ok": True, "meta": meta})

    def counter(self, name: str, value: Any, **labels: Any) -> None:
        """Record a counter (``lat_ms``, ``toks_s``, ``l2_hit_pct``, ``ept``, ``Q``, ``C``, ``nnz``).

        Inside a stage it rides on that stage's line (``meta.counters``); outside, it gets
        a line of its own.
        """
        t0 = time.perf_counter()
        entry = {"name": name, "value": value, "labels": labels}
        self.counters.setdefault(name, []).append(entry)
        if self._open:
            self._open[-1].setdefault("counters", []).append(entry)
            self.overhead_s += time.perf_counter() - t0
        else:
            self._write("counter", {**entry, "t": time.time()})

    def warn(self, message: str, **meta: Any) -> None:
        self._write("warning", {"message": message, "t": time.time(), "meta": meta})

    def close(self) -> None:
        if self._file:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass  # its last write already failed loudly
