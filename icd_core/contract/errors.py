"""Exception hierarchy: every error icd raises on purpose derives from :class:`IcdError`.

The CLI maps :class:`UsageError` (and subclasses) to exit code 2 and every other
:class:`IcdError` to exit code 1, printing one line; tracebacks only with ``--debug``.
"""

from __future__ import annotations


class IcdError(Exception):
    """Root of icd's deliberate errors."""

    exit_code = 1


class UsageError(IcdError):
    """The user asked for something that cannot be done as written (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file, ``--set`` override or component spec is invalid."""


class UnknownComponentError(UsageError):
    """A component name is not registered (the message carries a did-you-mean)."""


class PluginError(IcdError):
    """A plugin failed to load, register or keep the contract."""


class AmbiguousComponentError(UsageError, PluginError):
    """Two installed plugins provide the same component name: a usage error (exit 2), fixed
    by disabling one."""


class ContractError(PluginError):
    """No hook answered for a registered component, or a hook returned a bad value."""


class InputDataError(IcdError):
    """An input file (trace, matrix, run directory) is missing, empty or corrupt."""


class RunDirectoryError(IcdError):
    """A run directory is locked by another process, would be overwritten, or cannot be made."""


class ArtifactWriteError(IcdError):
    """A file could not be written (full disk, read-only directory, …); names the file."""


class SolverTimeout(IcdError):
    """A solver ran out of its time budget before producing any solution."""
