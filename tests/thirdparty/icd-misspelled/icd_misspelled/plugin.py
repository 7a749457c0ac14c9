"""``icd_measure`` takes ``measure``; this one spells it ``measur``."""

from icd_core import hookimpl


@hookimpl
def icd_register(registry):
    registry.add("measure", "typo", summary="never registered: the hook below is invalid")


@hookimpl
def icd_measure(ctx, measur, state):
    return None
