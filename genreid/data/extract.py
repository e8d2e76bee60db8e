"""Unpacking that keeps every member inside its folder and bounded in size.

Dataset archives come from mirrors and colleagues' disks, not from us: a member named
``../../x`` or ``/etc/x``, a link pointing out of the tree, or a zip bomb (a few kB that
inflate to terabytes) must be refused with its name, never written. Zip members are streamed
and counted as they inflate (the sizes in the directory are only claims); tar members go
through Python's ``data`` filter, whose refusals are reported as unsafe members.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from genreid.errors import DataError

CHUNK = 1 << 20
MAX_MEMBER_BYTES = 4 << 30     # a ReID image or list file is kilobytes; 4 GiB is no dataset member
MAX_TOTAL_BYTES = 512 << 30    # MSMT17 unpacks to a few GiB
MAX_RATIO = 200                # JPEGs barely compress; text lists ~10x; deflate bombs ~1000x
RATIO_FLOOR = 1 << 20          # members under 1 MiB may compress arbitrarily well (Thumbs.db zeros)


def unsafe(dataset: str, source: Path, name: str, why: str) -> DataError:
    return DataError(f"{dataset}: unsafe member {name} in {source}: {why}; nothing was unpacked into the dataset",
                     "use an intact copy of the original archive (one whose members all stay inside its folder)")


def member_parts(name: str) -> tuple[str, ...] | None:
    """The path components of an archive member, or None when it would leave the target folder."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return None
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    return None if any(p == ".." for p in parts) else parts


def extract_zip(source: Path, dest: Path, dataset: str, max_member: int = MAX_MEMBER_BYTES,
                max_total: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO) -> None:
    """Stream every member of a zip into ``dest``, checking names, sizes and compression ratios."""
    total = 0
    with zipfile.ZipFile(source) as zf:
        infos = zf.infolist()
        for info in infos:  # refuse before writing anything
            parts = member_parts(info.filename)
            if parts is None:
                raise unsafe(dataset, source, info.filename, "its path leaves the dataset folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise unsafe(dataset, source, info.filename, "it is a symbolic link")
            _check_size(dataset, source, info.filename, info.file_size, info.compress_size, max_member, max_ratio)
            total += info.file_size
        if total > max_total:
            raise DataError(f"{dataset}: {source} would unpack to {total / 2**30:.1f} GiB, more than the "
                            f"{max_total / 2**30:.0f} GiB limit", "use the original archive")
        written = 0
        for info in infos:
            target = dest.joinpath(*member_parts(info.filename))
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            got = 0
            with zf.open(info) as src, open(target, "wb") as dst:
                for block in iter(lambda: src.read(CHUNK), b""):
                    got += len(block)
                    written += len(block)
                    if got > info.file_size or written > max_total:  # the directory lied: a bomb
                        raise unsafe(dataset, source, info.filename,
                                     f"it inflates beyond its declared {info.file_size} bytes")
                    dst.write(block)


def _check_size(dataset: str, source: Path, name: str, size: int, packed: int, max_member: int,
                max_ratio: float) -> None:
    if size > max_member:
        raise unsafe(dataset, source, name, f"it unpacks to {size / 2**20:.0f} MiB, more than the "
                                            f"{max_member / 2**20:.0f} MiB limit for one member")
    if size > RATIO_FLOOR and size > max_ratio * max(packed, 1):
        raise unsafe(dataset, source, name, f"compression ratio {size / max(packed, 1):.0f}:1 exceeds "
                                            f"{max_ratio:.0f}:1 (a zip bomb)")


def extract_tar(source: Path, dest: Path, dataset: str, max_member: int = MAX_MEMBER_BYTES,
                max_total: int = MAX_TOTAL_BYTES) -> None:
    """Extract a (compressed) tar member by member through the ``data`` filter, with size limits."""
    total = 0
    with tarfile.open(source) as tf:
        for member in tf:
            if member_parts(member.name) is None:  # the data filter would strip a leading '/': refuse it
                raise unsafe(dataset, source, member.name, "its path is absolute or leaves the dataset folder")
            if member.isfile():
                total += member.size
                _check_size(dataset, source, member.name, member.size, member.size, max_member, MAX_RATIO)
                if total > max_total:
                    raise DataError(f"{dataset}: {source} unpacks to more than {max_total / 2**30:.0f} GiB",
                                    "use the original archive")
            try:
                tf.extract(member, dest, filter="data")
            except tarfile.FilterError as exc:
                raise unsafe(dataset, source, member.name, _filter_reason(exc)) from None


def _filter_reason(exc: tarfile.FilterError) -> str:
    if isinstance(exc, tarfile.AbsolutePathError):
        return "it has an absolute path"
    if isinstance(exc, tarfile.OutsideDestinationError):
        return "its path leaves the dataset folder"
    if isinstance(exc, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
        return "it links outside the dataset folder"
    if isinstance(exc, tarfile.SpecialFileError):
        return "it is a device or other special file"
    return str(exc)


def copy_folder(source: Path, dest: Path, dataset: str) -> None:
    """Copy a user's unpacked folder; a symbolic link leading out of it is refused, not followed."""
    root = source.resolve()
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise unsafe(dataset, source, path.relative_to(source).as_posix(),
                             f"it is a link to {os.readlink(path)}, outside the folder")
    shutil.copytree(source, dest / source.name, dirs_exist_ok=False)
