"""Atomic writes: a reader never sees a half-written file or folder.

Everything is written to a temporary sibling, flushed, then renamed into place
(``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genreid.errors import GenreidError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _free_space(folder: Path) -> str:
    """Free space where ``path`` lives, for the disk-full message (best effort)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return f"{shutil.disk_usage(probe).free / 2**20:.0f} MiB free in {probe}"
    except OSError:
        return f"free space in {probe} unknown"


def _what_was_kept(path: Path) -> str:
    """What a failed write left, as it is on disk now: DVC removes a stage's outputs (all but ``persist``
    ones) before the stage runs, so an earlier file may be gone for a reason that is not ours."""
    if path.exists():
        return f"the earlier {path} is unchanged (a file is replaced only when complete)"
    return (f"no partial {path} was left; no earlier one is here either (DVC removes a stage's outputs before it "
            f"runs: `dvc checkout {path}` restores the recorded one)")


def _explain_os_error(path: Path, exc: OSError) -> GenreidError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return GenreidError(f"disk full (no space left on device) writing {path}: {_free_space(path.parent)}",
                            "free space (see `df -h`) or point the output elsewhere, then rerun; "
                            f"{_what_was_kept(path)}; finished checkpoints are kept")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return GenreidError(f"cannot write {path}: {exc.strerror}",
                            f"make the output directory writable and rerun; {_what_was_kept(path)}")
    return GenreidError(f"cannot write {path}: {exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; final files get the usual mode
        os.close(fd)
    except OSError as exc:
        raise _explain_os_error(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _explain_os_error(path, exc) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON with sorted keys so identical content gives identical bytes."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


class _RecordingWriter:
    """A file handle that remembers the OSError of a failed write: torch.save hides it behind a
    RuntimeError ("unexpected pos ..."), which would leave the user without the real cause."""

    def __init__(self, fh: Any):
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._fh.flush()


def torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary file, so a kill never leaves a truncated checkpoint.

    torch names the records inside its zip archive after the file it writes to; saving into an
    open handle gives them the fixed name ``archive``, so the same weights always give the same
    bytes (and the same DVC hash) whatever the temporary file was called.
    """
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            writer = _RecordingWriter(fh)
            try:
                torch.save(obj, writer)
            except RuntimeError as exc:
                if writer.error is not None:
                    raise writer.error from exc
                raise
            fh.flush()
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it in on success.

    An existing folder at ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
    except OSError as exc:
        raise _explain_os_error(path, exc) from exc
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _explain_os_error(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove ``.*.tmp`` leftovers of a killed run; returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    count = 0
    for p in folder.glob(".*.tmp*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        count += 1
    return count
