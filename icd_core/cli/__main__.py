"""``python -m icd_core.cli`` runs the CLI."""

from icd_core.cli import main

main()
