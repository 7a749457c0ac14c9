"""``python -m icd_core`` runs the CLI."""

from .cli import main

main()
