"""A content hash inside every model file, checked whenever the file is read.

A torch file is a zip archive whose tensor bytes are read back without any checksum: one flipped
byte on disk, in a copy or in the DVC cache (which ``dvc checkout`` restores with exit code 0) gives
slightly different weights and no error. genreid therefore stores, next to what it saves, the
sha256 of that content (every tensor's dtype, shape and bytes, every plain value, in a fixed order),
and the loaders recompute it: a file whose content no longer matches is refused by name. Files
written before the hash existed (no ``content_sha256`` entry) are read as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreid.errors import CheckpointError

HASH_KEY = "content_sha256"


def _feed(h: Any, obj: Any) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        data = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{data.dtype}{tuple(obj.shape)}:".encode())
        h.update(data.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            h.update(f"K{type(key).__name__}:{key!r}:".encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):  # torch keeps tuples; treat both alike
        h.update(f"L{len(obj)}:".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r};".encode())


def content_digest(blob: Mapping[str, Any]) -> str:
    """sha256 of ``blob``'s content (the hash entry itself left out)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in blob.items() if k != HASH_KEY})
    return h.hexdigest()


def sealed(blob: dict[str, Any]) -> dict[str, Any]:
    """``blob`` with its content hash added (what the savers write)."""
    return {**blob, HASH_KEY: content_digest(blob)}


def damaged_fix(path: str | os.PathLike) -> str:
    """What to do about a model file whose bytes changed after it was written."""
    return (f"do not use this copy. Rerun the stage that writes it (`dvc repro --force <stage>`), or restore a good "
            f"copy: delete {path} and its object in the DVC cache (`dvc cache dir`; `dvc checkout` alone restores "
            "the same damaged object), then `dvc pull` from a remote that holds an intact one")


def verify_sealed(blob: Any, path: str | os.PathLike, what: str) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when its stored content hash does not match."""
    if not isinstance(blob, Mapping) or HASH_KEY not in blob:
        return  # written before content hashes existed
    stored = blob[HASH_KEY]
    actual = content_digest(blob)
    if stored != actual:
        raise CheckpointError(f"{what} {Path(path)} is damaged: its content no longer matches the hash stored when it "
                              f"was written (stored {str(stored)[:12]}..., now {actual[:12]}...); a byte changed on "
                              "disk, in a copy or in the DVC cache", damaged_fix(path))
