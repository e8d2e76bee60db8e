"""Image checks and content hashes: every file is read once, hashed, and its image decoded.

``header`` mode parses the image header (format, size) from the bytes already read for the
hash; ``full`` decodes every pixel, which also catches truncated files. Problems are
collected for all files, never stopping at the first.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)
VerifyMode = Literal["header", "full"]


# Smallest crop accepted: real ReID crops are at least tens of pixels; a 1x1 or 2x2 file is a
# broken export or a placeholder, and resizing it would feed the network a flat colour.
MIN_WIDTH, MIN_HEIGHT = 4, 8


@dataclass
class ImageCheck:
    """sha1 per path (hex) and the reason for each unreadable image."""

    sha1: dict[str, str] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)


def check_image_bytes(data: bytes, mode: VerifyMode) -> str | None:
    """None when the image is readable, else why it is not."""
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width < MIN_WIDTH or im.height < MIN_HEIGHT:
                return (f"image of {im.width}x{im.height} pixels is too small to be a person crop "
                        f"(at least {MIN_WIDTH}x{MIN_HEIGHT})")
            if mode == "full":
                im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"cannot decode image ({type(exc).__name__}: {exc})"
    return None


def check_images(paths: Sequence[str | Path], mode: VerifyMode = "header", progress: bool = True) -> ImageCheck:
    """Hash and check every file; unreadable files land in ``bad`` (hash still recorded)."""
    from tqdm import tqdm

    if mode not in ("header", "full"):
        raise ValueError(f"verify mode must be 'header' or 'full', got {mode!r}")
    out = ImageCheck()
    for p in tqdm(paths, desc=f"checking images ({mode})", unit="img", disable=not progress or len(paths) < 1000):
        key = str(p)
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            out.bad[key] = f"cannot read ({exc.strerror})"
            continue
        out.sha1[key] = hashlib.sha1(data).hexdigest()
        reason = check_image_bytes(data, mode)
        if reason is not None:
            out.bad[key] = reason
    return out
