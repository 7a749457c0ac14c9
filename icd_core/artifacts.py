"""Run directories and the files in them: atomic writes, a lock, deterministic ``.npz``.

A run is written into a hidden staging directory ``<out>/.<name>.partial-<pid>`` and renamed
to ``<out>/<name>`` only when it ends, so a killed run leaves no partial run directory and
every file in a run directory is complete. A lock file ``<out>/.<name>.lock`` keeps two
processes from writing the same run.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from filelock import FileLock, Timeout

from .errors import InputDataError, RunDirectoryError

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
                zf.writestr(info, raw.getvalue())
    return buf.getvalue()


def load_w(path: str | Path) -> dict[str, sp.csr_matrix]:
    """Read an icd ``W.npz`` (groups) or a plain ``scipy.sparse.save_npz`` file (group ``W``)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if {"data", "indices", "indptr", "shape"} <= keys:
                return {"W": sp.load_npz(p).tocsr()}
            groups = sorted({k.rsplit("/", 1)[0] for k in keys if "/" in k})
            if not groups:
                raise InputDataError(f"{p}: no CSR matrix inside (keys: {sorted(keys)})")
            return {g: sp.csr_matrix((z[f"{g}/data"], z[f"{g}/indices"], z[f"{g}/indptr"]),
                                     shape=tuple(z[f"{g}/shape"])) for g in groups}
    except FileNotFoundError:
        raise InputDataError(f"{p}: no such file") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputDataError(f"{p}: not a readable .npz matrix file ({exc})") from None


class ArtifactDir:
    """A directory whose files are always written atomically (an existing run, re-rendered)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.out_dir = self.path.parent

    def file(self, relative: str) -> Path:
        return self.path / relative

    def write_text(self, relative: str, text: str) -> Path:
        target = self.file(relative)
        write_text_atomic(target, text)
        return target

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.file(relative)
        write_bytes_atomic(target, data)
        return target


class RunDirectory(ArtifactDir):
    """A run directory under construction; ``commit()`` makes it visible."""

    def __init__(self, out_dir: str | Path, name: str, *, replace: bool = False) -> None:
        if not name or "/" in name or name.startswith("."):
            raise RunDirectoryError(f"run name {name!r}: must be non-empty, without '/' and not start with '.'")
        self.out_dir = Path(out_dir)
        self.name = name
        self.final = self.out_dir / name
        self.replace = replace
        self._lock = FileLock(str(self.out_dir / f".{name}.lock"), timeout=0)
        self.path = self.out_dir / f".{name}.partial-{os.getpid()}"
        self._open = False

    def open(self) -> RunDirectory:
        if self.final.exists() and not self.replace:
            raise RunDirectoryError(f"{self.final}: run directory exists (choose another --name or pass --force)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunDirectoryError(f"{self.final}: locked by another icd process") from None
        for stale in self.out_dir.glob(f".{self.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the lock
        self.path.mkdir()
        self._open = True
        return self

    def commit(self) -> Path:
        """Rename the staging directory into place (replacing an old run when allowed)."""
        old = None
        if self.final.exists():
            old = self.out_dir / f".{self.name}.old-{os.getpid()}"
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


def lock_existing_run(run: Path) -> FileLock:
    """The lock of an existing run directory (``icd report`` holds it while re-rendering)."""
    return FileLock(str(run.parent / f".{run.name}.lock"), timeout=0)
