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


def blend(photo: np.ndarray, render: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Photo (H,W,3) with the render tinted green where the body is and its outline in magenta,
    so an offset shows as photo between outline and person; the render is resized to the photo."""
    grey = _resize(render, photo.shape[0], photo.shape[1], Image.NEAREST).astype(np.float32) / 255.0
    body = grey > 0
    tint = np.stack([0.2 * grey, 0.4 + 0.6 * grey, 0.2 * grey], axis=-1) * 255.0
    out = np.where(body[..., None], (1 - strength) * photo.astype(np.float32) + strength * tint,
                   photo.astype(np.float32))
    padded = np.pad(body, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    out[body & ~inner] = (255.0, 0.0, 255.0)
    return out.clip(0, 255).astype(np.uint8)


def overlay_sheet(photos: Sequence[np.ndarray], renders: dict[int, np.ndarray], angles: Sequence[int]) -> Image.Image:
    """Rows of [photo | overlay | render at each angle]; every tile at the photo size (renders
    upscaled by nearest neighbour, so their pixels show as stored)."""
    h, w = photos[0].shape[:2]
    cols = 2 + len(angles)
    sheet = Image.new("RGB", (cols * w, LABEL_HEIGHT + len(photos) * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(["photo", "overlay", *[f"{a}" for a in angles]]):
        draw.text((c * w + 2, 1), label, fill=(0, 0, 0))
    for r, photo in enumerate(photos):
        y = LABEL_HEIGHT + r * h
        tiles = [photo, blend(photo, renders[0][r])]
        tiles += [np.repeat(_resize(renders[a][r], h, w, Image.NEAREST)[..., None], 3, axis=-1) for a in angles]
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (c * w, y))
    return sheet


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")


def silhouette_agreement(renders: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image agreement of render silhouettes (N,h,w uint8, body = >0) with person masks (N,h,w bool).

    ``iou``; ``render_in_mask`` = share of body pixels inside the mask (1.0 when aligned, even if
    the mask also holds a bag or hair the body model lacks; a one-pixel shift drops it to about
    0.85 at 64x32); ``mask_covered`` = share of the mask the body covers.
    """
    if renders.shape != masks.shape:
        raise ValueError(f"renders {renders.shape} and masks {masks.shape} differ in size")
    n, pixels = len(renders), int(np.prod(renders.shape[1:]))
    body, person = (renders > 0).reshape(n, pixels), masks.astype(bool).reshape(n, pixels)
    inter, union = (body & person).sum(1), (body | person).sum(1)
    return {"iou": np.where(union > 0, inter / np.maximum(union, 1), 1.0),
            "render_in_mask": np.where(body.sum(1) > 0, inter / np.maximum(body.sum(1), 1), 0.0),
            "mask_covered": np.where(person.sum(1) > 0, inter / np.maximum(person.sum(1), 1), 0.0)}
