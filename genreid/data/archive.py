"""Getting a dataset archive onto disk and unpacked: import, download (resume + checksum), unpack.

Downloads go to ``<archive>.part`` and are renamed only after the checksum passed, so an
interrupted download resumes (HTTP ``Range``) and a bad one is never mistaken for the archive.
Unpacking writes into a folder the caller renames into place afterwards.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import lzma
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from genreid.data.extract import copy_folder, extract_tar, extract_zip
from genreid.errors import DataError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
_BROKEN_ARCHIVE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def acquire_archive(archive: str | os.PathLike, *, dataset: str, archive_name: str, url: str | None = None,
                    sha256: str | None = None, no_download_reason: str | None = None,
                    timeout: float = 60.0) -> Path:
    """Return the archive file or folder for ``dataset``, downloading it first when allowed.

    A present archive is checked against ``sha256`` (when given); an absent one is downloaded
    from ``url`` only if the dataset may be downloaded, else the error says where to put it.
    """
    path = Path(archive)
    put_it = (f"place {archive_name} (or its unpacked folder) at {path.absolute()}, or set "
              f"data.{dataset}.archive to where your copy is; then rerun `dvc repro prepare@{dataset}`")
    if path.is_dir():
        return path
    if path.is_file():
        if sha256:
            verify_checksum(path, sha256, dataset)
        return path
    if no_download_reason:
        raise DataError(f"{dataset}: {path} not found. {no_download_reason}, so it cannot be downloaded "
                        "by this tool.", put_it)
    if not url:
        raise DataError(f"{dataset}: {path} not found and data.{dataset}.url is not set",
                        f"{put_it}; or set data.{dataset}.url to a mirror you may use")
    download(url, path, sha256=sha256, timeout=timeout, dataset=dataset)
    return path


def verify_checksum(path: Path, sha256: str, dataset: str) -> None:
    found = file_sha256(path)
    if found.lower() != sha256.lower():
        raise DataError(f"{dataset}: checksum mismatch for {path}: expected sha256 {sha256}, found {found}",
                        f"the file is incomplete or a different release: delete {path} and download or copy it "
                        f"again (or correct data.{dataset}.sha256)")


def download(url: str, dest: Path, *, sha256: str | None = None, timeout: float = 60.0,
             dataset: str = "dataset") -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a previous partial download."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:  # 416: nothing left to fetch, the part is complete
            raise _download_error(url, part, dest, dataset, f"HTTP {exc.code} {exc.reason}") from None
        resp = None
    except (urllib.error.URLError, OSError) as exc:
        raise _download_error(url, part, dest, dataset, str(getattr(exc, "reason", exc))) from None
    if resp is not None:
        with resp:
            resumed = getattr(resp, "status", None) == 206
            if offset and not resumed:
                log.info("%s does not support resuming; downloading %s from the start", url, dest.name)
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            got = offset
            try:
                with open(part, "ab" if resumed else "wb") as fh, \
                        tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name) as bar:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        fh.write(block)
                        got += len(block)
                        bar.update(len(block))
            except (urllib.error.URLError, OSError) as exc:
                raise _download_error(url, part, dest, dataset, str(exc)) from None
            if total is not None and got < total:
                raise _download_error(url, part, dest, dataset, f"connection closed after {got} of {total} bytes")
    if sha256:
        found = file_sha256(part)
        if found.lower() != sha256.lower():
            part.unlink()
            raise DataError(f"{dataset}: downloaded {url} but its sha256 is {found}, expected {sha256}; "
                            "the partial file was deleted",
                            f"check data.{dataset}.url and data.{dataset}.sha256, then rerun")
    os.replace(part, dest)
    log.info("downloaded %s -> %s", url, dest)
    return dest


def _download_error(url: str, part: Path, dest: Path, dataset: str, reason: str) -> DataError:
    kept = part.stat().st_size if part.exists() else 0
    resume = f"; {kept} bytes kept in {part}, a rerun resumes from there" if kept else ""
    return DataError(f"{dataset}: could not download {url}: {reason}{resume}",
                     f"check the network and data.{dataset}.url, or place the archive at {dest.absolute()} yourself")


def unpack(source: Path, dest: Path, *, dataset: str = "dataset") -> None:
    """Unpack an archive (zip, tar, tar.gz/bz2/xz) or copy a folder into the existing folder ``dest``.

    Members must stay inside ``dest`` and within size limits (:mod:`genreid.data.extract`)."""
    if source.is_dir():
        copy_folder(source, dest, dataset)
        return
    fix = (f"{source} is damaged: delete it and download or copy it again (set data.{dataset}.sha256 to the "
           "published checksum to catch this before unpacking)")
    try:
        if zipfile.is_zipfile(source) or _magic(source).startswith(b"PK\x03\x04"):
            extract_zip(source, dest, dataset)
        elif tarfile.is_tarfile(source) or _compressed_tar(source):
            extract_tar(source, dest, dataset)
        else:
            raise DataError(f"{dataset}: {source} is neither a zip nor a tar archive (or it is truncated)",
                            f"supply the original archive or an unpacked folder; {fix}")
    except _BROKEN_ARCHIVE as exc:
        raise DataError(f"{dataset}: cannot unpack {source}: the archive is truncated or corrupt ({exc})",
                        fix) from None


def _magic(path: Path, size: int = 6) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def _compressed_tar(path: Path) -> bool:
    """``tarfile.is_tarfile`` says False for a truncated .tar.gz; route those to tarfile for a clear error."""
    magic = _magic(path)
    return magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00"


def archive_kind(path: Path) -> str | None:
    """``zip``, ``tar``, ``tar.gz``, ``tar.bz2``, ``tar.xz`` from the file's first bytes, or None."""
    head = _magic(path, 512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def archive_problem(path: Path, min_bytes: int = 0) -> str | None:
    """Why ``path`` cannot be the dataset archive (wrong signature, too small, cut short), or None.

    Cheap enough for ``genreid doctor``: the first bytes, the size and, for zips, the central
    directory at the end; a saved HTML error page or a partial download fails here."""
    size = path.stat().st_size
    kind = archive_kind(path)
    if kind is None:
        head = _magic(path, 512).lstrip().lower()
        looks = ("an HTML page (a login or error page saved in place of the archive)"
                 if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")) else
                 f"no zip or tar signature (starts with {_magic(path, 8)!r})")
        return f"{path} is not an archive: {looks}"
    if size < min_bytes:
        return (f"{path} is only {size / 2**20:.1f} MiB; the complete archive is at least "
                f"{min_bytes / 2**20:.0f} MiB (a partial download?)")
    if kind == "zip" and not zipfile.is_zipfile(path):
        return f"{path} starts like a zip but has no central directory: it is truncated"
    return None
