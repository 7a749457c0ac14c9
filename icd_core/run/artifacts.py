"""Run directories and the files in them: atomic writes, a lock, deterministic ``.npz``.

A run is written into a hidden staging directory ``<out>/.<name>.partial-<pid>`` and renamed
to ``<out>/<name>`` only when it ends, so a killed run leaves no partial run directory and
every file in a run directory is complete. A lock file ``<out>/.<name>.lock`` keeps two
processes from writing the same run; ``--force`` swaps the new run with the old one so that a
kill at any moment leaves one of them whole. Write failures name the file.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import io
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from filelock import FileLock, Timeout

from icd_core.contract.errors import (
    ArtifactWriteError,
    InputDataError,
    RunDirectoryError,
)
from icd_core.contract.limits import limit, regular_file
from icd_core.layout.graphs import structure_problem
from icd_core.run.privacy import redact

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def csr_npz_bytes(matrices: dict[str, sp.csr_matrix]) -> bytes:
    """Bytes of an ``.npz`` holding CSR matrices by group name; identical input → identical bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for group in sorted(matrices):
            m = matrices[group].tocsr()
            parts = {"data": m.data, "indices": m.indices, "indptr": m.indptr,
                     "shape": np.asarray(m.shape, dtype=np.int64)}
            for key, arr in parts.items():
                info = zipfile.ZipInfo(f"{group}/{key}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                raw = io.BytesIO()
                np.lib.format.write_array(raw, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(info, raw.getvalue(), compresslevel=1)  # fast; a fixed level keeps bytes deterministic
    return buf.getvalue()


def load_w(path: str | Path) -> dict[str, sp.csr_matrix]:
    """Read an icd ``W.npz`` (groups) or a plain ``scipy.sparse.save_npz`` file (group ``W``):
    a regular zip whose members unpack to at most ``limits.npz_bytes``, no pickles, and every
    matrix's index arrays checked before use."""
    p = regular_file(path, "matrix file")
    with open(p, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        raise InputDataError(f"{p}: a plain .npy array; expected a .npz matrix file (scipy.sparse.save_npz or an "
                             f"icd W.npz)")
    if not zipfile.is_zipfile(p):
        raise InputDataError(f"{p}: not a .npz (zip) file; expected scipy.sparse.save_npz output or an icd W.npz")
    try:
        with zipfile.ZipFile(p) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
        cap = limit("npz_bytes")
        if unpacked > cap:
            raise InputDataError(f"{p}: members unpack to {unpacked:,} bytes, over the {cap:,}-byte limit "
                                 f"(ICD_LIMIT_NPZ_BYTES)")
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if {"data", "indices", "indptr", "shape"} <= keys:
                matrices = {"W": sp.load_npz(p)}
            else:
                groups = sorted({k.rsplit("/", 1)[0] for k in keys if "/" in k})
                if not groups:
                    raise InputDataError(f"{p}: no CSR matrix inside (keys: {sorted(keys)})")
                matrices = {g: sp.csr_matrix((z[f"{g}/data"], z[f"{g}/indices"], z[f"{g}/indptr"]),
                                             shape=tuple(int(v) for v in z[f"{g}/shape"])) for g in groups}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as exc:
        raise InputDataError(f"{p}: not a readable .npz matrix file ({exc})") from None
    for group, m in matrices.items():
        problem = structure_problem(m)
        if problem:
            raise InputDataError(f"{p}{'' if group == 'W' else f'[{group}]'}: W {problem}")
    return {g: m.tocsr() for g, m in matrices.items()}


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    fn = getattr(_libc(), "renameat2", None)
    if fn is None:
        return False
    if fn(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class ArtifactDir:
    """A directory whose files are always written atomically (an existing run, re-rendered)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.out_dir = self.path.parent

    def file(self, relative: str) -> Path:
        return self.path / relative

    def shown(self, relative: str) -> Path:
        """The path to name in messages (a run under construction: where it will live)."""
        return self.path / relative

    def write_text(self, relative: str, text: str) -> Path:
        """Write a text artifact, home directory and secrets redacted (:mod:`icd_core.run.privacy`)."""
        json_text = relative.endswith((".json", ".jsonl"))
        return self.write_bytes(relative, redact(text, json_text=json_text).encode("utf-8"))

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.file(relative)
        try:
            write_bytes_atomic(target, data)
        except OSError as exc:
            raise ArtifactWriteError(f"{self.shown(relative)}: cannot write ({exc.strerror or exc})") from None
        return target


STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)$")


MAX_NAME_BYTES = 200  # leaves room for ".NAME.partial-PID" within a file system's 255 bytes


def check_name(name: str, what: str, error: type[Exception] = RunDirectoryError) -> str:
    """``name`` if it can name one directory entry: non-empty, no '/', not starting with '.',
    no control characters, at most 200 UTF-8 bytes; else one ``error`` line."""
    problem = None
    if not name or "/" in name or name.startswith("."):
        problem = "must be non-empty, without '/' and not start with '.'"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = "must not contain control characters (newlines, tabs, escapes)"
    elif len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        problem = f"is {len(name.encode('utf-8', 'surrogateescape'))} bytes long; at most {MAX_NAME_BYTES}"
    if problem:
        raise error(f"{what} {name[:60]!r}{'…' if len(name) > 60 else ''}: {problem}")
    return name


class RunDirectory(ArtifactDir):
    """A run directory under construction; ``commit()`` makes it visible.

    The lock is taken before anything is checked, so of two processes asking for one name
    exactly one writes it and the other is told why. Leftovers of killed runs (hidden
    ``.partial-PID`` / ``.old-PID`` directories) are cleaned under their lock; an ``.old``
    run whose replacement never arrived is put back.
    """

    def __init__(self, out_dir: str | Path, name: str, *, replace: bool = False) -> None:
        check_name(name, "run name")
        self.out_dir = Path(out_dir)
        self.name = name
        self.final = self.out_dir / name
        self.replace = replace
        self._lock = FileLock(str(self.out_dir / f".{name}.lock"), timeout=0)
        self.path = self.out_dir / f".{name}.partial-{os.getpid()}"
        self._open = False

    def shown(self, relative: str) -> Path:
        return self.final / relative

    def open(self) -> RunDirectory:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirectoryError(f"report.out_dir {self.out_dir}: cannot create it ({exc.strerror or exc})") from None
        if not self.out_dir.is_dir():
            raise RunDirectoryError(f"report.out_dir {self.out_dir}: not a directory")
        try:
            self._lock.acquire()
        except Timeout:
            raise RunDirectoryError(f"{self.final}: locked by another icd process") from None
        except OSError as exc:
            raise RunDirectoryError(f"report.out_dir {self.out_dir}: cannot write there ({exc.strerror or exc})") from None
        self._open = True
        try:
            clean_stale(self.out_dir, held=self.name)
            if self.final.exists() and not self.replace:
                raise RunDirectoryError(f"{self.final}: run directory exists (choose another --name or pass --force)")
            try:
                self.path.mkdir()
            except OSError as exc:
                raise RunDirectoryError(f"report.out_dir {self.out_dir}: cannot write there ({exc.strerror or exc})") from None
        except BaseException:
            self._release()
            raise
        return self

    def commit(self) -> Path:
        """Move the staging directory into place; with ``replace``, swap it with the old run
        atomically where the system can (else two renames that :func:`clean_stale` repairs)."""
        if self.final.exists():
            if not self.replace:
                raise RunDirectoryError(f"{self.final}: appeared while this run was written (this run is kept "
                                        f"at {self.path})")
            if _exchange(self.path, self.final):
                shutil.rmtree(self.path, ignore_errors=True)  # now the old run
            else:
                old = self.out_dir / f".{self.name}.old-{os.getpid()}"
                os.replace(self.final, old)
                os.replace(self.path, self.final)  # killed in between: the next open puts the old run back
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.path, self.final)
        self.path = self.final
        self._release()
        return self.final

    def abandon(self) -> None:
        """Drop the staging directory (bad input: nothing of this run is kept)."""
        if self._open and self.path != self.final:
            shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._open:
            self._lock.release()
            self._open = False


def _recover(out_dir: Path, name: str) -> None:
    """Under ``name``'s lock: every leftover of it is stale. Put back an old run whose
    replacement never arrived; remove the rest."""
    final = out_dir / name
    for path in sorted(out_dir.glob(f".{glob.escape(name)}.old-*")):
        if not final.exists():
            os.replace(path, final)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path in out_dir.glob(f".{glob.escape(name)}.partial-*"):
        shutil.rmtree(path, ignore_errors=True)


def clean_stale(out_dir: Path, held: str | None = None) -> None:
    """Clean the leftovers of killed runs in ``out_dir`` (``held``: the name whose lock the
    caller holds); other names are cleaned only when their lock is free."""
    names = {m["name"] for m in (STALE.match(p.name) for p in out_dir.iterdir()) if m}
    for name in sorted(names):
        if name == held:
            _recover(out_dir, name)
            continue
        lock = FileLock(str(out_dir / f".{name}.lock"), timeout=0)
        try:
            with lock:
                _recover(out_dir, name)
        except (Timeout, OSError):
            continue  # another icd process is writing it, or we may not


def lock_existing_run(run: Path) -> FileLock:
    """The lock of an existing run directory (``icd report`` holds it while re-rendering)."""
    return FileLock(str(run.parent / f".{run.name}.lock"), timeout=0)
