"""``python -m icd_core.cli`` runs the CLI."""

from . import main

main()
