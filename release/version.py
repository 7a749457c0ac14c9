"""Print the core's version, read from pyproject.toml (its one source; the code reads it from
the installed distribution's metadata)."""

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    return tomllib.loads(pyproject.read_text())["project"]["version"]


if __name__ == "__main__":
    sys.stdout.write(project_version() + "\n")
