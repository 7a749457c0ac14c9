"""What icd prints: every line redacted like the artifacts (home as ``~``, secret values as
``[redacted]``) and with control characters escaped, so a model directory or run name holding an
escape sequence (``ESC ]0;…BEL`` retitles a terminal) is shown, never obeyed."""

from __future__ import annotations

import re

import click

from icd_core.run.privacy import redact

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline: C0, DEL, C1


def escape_controls(text: str) -> str:
    """``text`` with every control character but tab and newline written as ``\\xNN``."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shown(text: str) -> str:
    return escape_controls(redact(text))


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo`` of :func:`shown` text."""
    click.echo(shown(str(text)), err=err, nl=nl)
