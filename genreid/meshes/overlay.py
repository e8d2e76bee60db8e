"""Checks a person can look at (overlay sheet) and one a test can assert on (silhouette IoU).

The sheet has one row per sampled image: the photo, the 0-degree render blended over the
photo in green (alignment shows at a glance), then the render at every angle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from genreid.utils.atomic import atomic_path

LABEL_HEIGHT = 14


def _resize(a: np.ndarray, height: int, width: int, resample: int = Image.BILINEAR) -> np.ndarray:
    if a.shape[:2] == (height, width):
        return a
    return np.asarray(Image.fromarray(a).resize((width, height), resample))


def blend(photo: np.ndarray, render: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Photo (H,W,3) with the grey render tinted green where the body is; render resized to the photo."""
    grey = _resize(render, photo.shape[0], photo.shape[1]).astype(np.float32) / 255.0
    body = (grey > 0)[..., None]
    tint = np.stack([0.2 * grey, 0.4 + 0.6 * grey, 0.2 * grey], axis=-1) * 255.0
    out = np.where(body, (1 - strength) * photo.astype(np.float32) + strength * tint, photo.astype(np.float32))
    return out.clip(0, 255).astype(np.uint8)


def overlay_sheet(photos: Sequence[np.ndarray], renders: dict[int, np.ndarray], angles: Sequence[int]) -> Image.Image:
    """Rows of [photo | overlay | render at each angle]; every tile at the photo size."""
    h, w = photos[0].shape[:2]
    cols = 2 + len(angles)
    sheet = Image.new("RGB", (cols * w, LABEL_HEIGHT + len(photos) * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(["photo", "overlay", *[f"{a}" for a in angles]]):
        draw.text((c * w + 2, 1), label, fill=(0, 0, 0))
    for r, photo in enumerate(photos):
        y = LABEL_HEIGHT + r * h
        tiles = [photo, blend(photo, renders[0][r])]
        tiles += [np.repeat(_resize(renders[a][r], h, w)[..., None], 3, axis=-1) for a in angles]
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (c * w, y))
    return sheet


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")


def silhouette_iou(renders: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-image IoU between render silhouettes (N,h,w uint8, body = >0) and masks (N,H,W bool).

    Masks are box-downsampled to the render size (a pixel is body when more than half of it is),
    so renders stored at the network size are compared with full-resolution masks.
    """
    n, h, w = renders.shape
    small = np.stack([_resize(m.astype(np.uint8) * 255, h, w, Image.BOX) for m in masks]) >= 128 \
        if masks.shape[1:] != (h, w) else masks.astype(bool)
    body = renders > 0
    inter = (body & small).reshape(n, -1).sum(1)
    union = (body | small).reshape(n, -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
