"""Scratch and staging directories that a later process can tell are abandoned.

The process that creates one holds an exclusive ``flock`` on the directory itself for as long as
it works in it; the kernel drops the lock when the process ends, however it ends (``kill -9``
included). So a directory with the prefix that nobody holds is a dead writer's leftover, and the
next process to make one of that prefix removes it — no lock files, no PIDs to reuse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: nothing is ever judged abandoned
    fcntl = None  # type: ignore[assignment]


def _hold(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or None when another holds it."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove the directories in ``parent`` named ``prefix…`` that no live process holds;
    returns what was removed."""
    removed = []
    try:
        entries = [p for p in parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in entries:
        if path.is_symlink() or not path.is_dir():
            continue
        fd = _hold(path)
        if fd is None:
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def publish(path: Path) -> None:
    """Give a staging directory (created 0700) the mode a plain ``mkdir`` would have under the
    process's umask (0755 under 022), before it is renamed into place for other users to read."""
    mask = os.umask(0o022)
    os.umask(mask)
    path.chmod(0o777 & ~mask)


@contextlib.contextmanager
def held_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory ``parent/prefix<random>`` (mode 0700), held while the block runs and
    removed at its end if still there (a caller that renamed it into place keeps it); if this
    process is killed, the next :func:`held_directory` of the same prefix removes it. Abandoned
    siblings are swept first."""
    sweep_abandoned(parent, prefix)
    for _ in range(3):  # a sweeper may take a directory between its creation and its lock: make another
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        fd = _hold(path) if fcntl is not None else -1
        if fd is not None:
            break
    else:
        raise OSError(f"{parent}: cannot hold a {prefix}* directory (another process keeps removing them)")
    try:
        yield path
    finally:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
