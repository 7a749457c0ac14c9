"""Fails at import time, as a plugin with a missing dependency would."""

import icd_missing_dependency_xyz  # noqa: F401
