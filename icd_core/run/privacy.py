"""What never leaves the machine in a run's artifacts: the user's home directory and the values
of secret-looking environment variables (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``,
…). Every text artifact and event line goes through :func:`redact`: the home directory becomes
``~`` (which the config loader expands again), a secret ``[redacted]``. Nothing is uploaded
anywhere; profiler outputs stay in the run directory."""

from __future__ import annotations

import json
import os
import re
from typing import IO

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") are settings, and would redact everything
REDACTED = "[redacted]"


def secrets(environ: os._Environ | dict[str, str] = os.environ) -> list[str]:
    """Values of secret-looking variables, longest first, with their JSON-escaped forms."""
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    values |= {json.dumps(v)[1:-1] for v in values}
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Replaces the home directory and the secret values of the environment as it is now."""

    def __init__(self) -> None:
        self.secrets = secrets()
        home = os.path.expanduser("~").rstrip("/")
        self.home = re.compile(re.escape(home) + r"(?![\w.-])") if len(home) > 1 else None

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                text = text.replace(value, REDACTED)
        return self.home.sub("~", text) if self.home is not None else text


def redact(text: str) -> str:
    """``text`` with the home directory as ``~`` and secret values as ``[redacted]``."""
    return Redactor()(text)


class RedactingWriter:
    """A text file whose writes go through one :class:`Redactor` (the events log: the
    environment is read once, not on every line)."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._redact = Redactor()

    def write(self, text: str) -> int:
        return self._file.write(self._redact(text))

    def flush(self) -> None:
        self._file.flush()
