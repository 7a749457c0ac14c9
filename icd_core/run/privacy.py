"""What never leaves the machine in a run's artifacts: the user's home directory and the values
of secret-looking environment variables (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``,
…) of at least 8 characters. Every text artifact, event line, sweep manifest and console error
line goes through :func:`redact`: the home directory becomes ``~`` (which the config loader
expands again), a secret standing as a whole token ``[redacted]`` — in JSON only inside strings. Nothing is uploaded
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


TOKEN_EDGE = "A-Za-z0-9_"  # a secret counts only as a whole token: not inside a longer word or number
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class Redactor:
    """Replaces the home directory and the secret values of the environment as it is now.

    A secret is replaced only where it stands as a whole token (``/data/<secret>/x`` yes,
    the digits of a longer number no); in JSON text only inside string literals, so numbers,
    keys' structure and the document's validity never change."""

    def __init__(self) -> None:
        self.secrets = secrets()
        self.secret = re.compile(f"(?<![{TOKEN_EDGE}])(?:{'|'.join(map(re.escape, self.secrets))})(?![{TOKEN_EDGE}])") \
            if self.secrets else None
        home = os.path.expanduser("~").rstrip("/")
        self.home = re.compile(re.escape(home) + r"(?![\w.-])") if len(home) > 1 else None

    def __call__(self, text: str) -> str:
        if self.secret is not None:
            text = self.secret.sub(REDACTED, text)
        return self.home.sub("~", text) if self.home is not None else text

    def json(self, text: str) -> str:
        """JSON (or JSON Lines) text with only its string literals redacted."""
        if self.secret is None and self.home is None:
            return text
        return JSON_STRING.sub(lambda match: self(match.group(0)), text)


def redact(text: str, json_text: bool = False) -> str:
    """``text`` with the home directory as ``~`` and secret values as ``[redacted]``
    (``json_text``: inside JSON string literals only)."""
    redactor = Redactor()
    return redactor.json(text) if json_text else redactor(text)


class RedactingWriter:
    """A text file whose writes go through one :class:`Redactor` (the events log: the
    environment is read once, not on every line)."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._redact = Redactor()

    def write(self, text: str) -> int:
        return self._file.write(self._redact.json(text))

    def flush(self) -> None:
        self._file.flush()
