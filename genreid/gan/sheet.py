"""The generated-views sheet a person looks at to see whether the generator learned.

One pair of rows per person: the top row holds input | 0-degree mesh | reconstruction | novel
view at each angle | cycle reconstruction (from the first novel view's code); the row beneath
shows the mesh render each novel view was generated from. A band above names the columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from genreid.data.loader import denormalize
from genreid.gan.nets import GanNets
from genreid.gan.renders import renders_to_tensor
from genreid.meshes.store import RenderStore
from genreid.utils.atomic import atomic_path


def sheet_rows(pids: Sequence[int], n: int) -> list[int]:
    """Manifest rows of ``n`` different identities, spread over the id range (a fixed choice)."""
    first: dict[int, int] = {}
    for row, pid in enumerate(pids):
        first.setdefault(int(pid), row)
    ids = sorted(first)
    pick = np.linspace(0, len(ids) - 1, num=min(n, len(ids))).round().astype(int)
    return [first[ids[i]] for i in pick]


@torch.no_grad()
def generate_sheet_tiles(nets: GanNets, images: torch.Tensor, store: RenderStore, rows: Sequence[int],
                         angles: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tiles (P, C, 3, H, W) in [0,1] for the image row, meshes (P, C, 3, H, W) for the mesh row)."""
    h, w = images.shape[-2:]
    dev = images.device
    was_training = [m.training for m in (nets.id_encoder, nets.str_encoder, nets.decoder)]
    for m in (nets.id_encoder, nets.str_encoder, nets.decoder):
        m.eval()
    try:
        m0 = renders_to_tensor(store, rows, 0, h, w, dev)
        a, _ = nets.id_encoder(images)
        s0 = nets.str_encoder(m0)
        rec = nets.decoder(s0, a)
        views, meshes = [], []
        for ang in angles:
            mt = renders_to_tensor(store, rows, ang, h, w, dev)
            views.append(nets.decoder(nets.str_encoder(mt), a))
            meshes.append(mt)
        a_nv, _ = nets.id_encoder(views[0])
        cyc = nets.decoder(s0, a_nv)
    finally:
        for m, flag in zip((nets.id_encoder, nets.str_encoder, nets.decoder), was_training):
            m.train(flag)

    def grey(m: torch.Tensor) -> torch.Tensor:
        return (m * 0.5 + 0.5).clamp(0, 1).expand(-1, 3, -1, -1)

    blank = torch.ones_like(images)
    top = [denormalize(images), grey(m0), denormalize(rec), *[denormalize(v) for v in views], denormalize(cyc)]
    bottom = [blank, blank, blank, *[grey(m) for m in meshes], blank]
    return torch.stack(top, 1).cpu(), torch.stack(bottom, 1).cpu()


def column_labels(angles: Sequence[int]) -> list[str]:
    """The sheet's column headings, in :func:`generate_sheet_tiles`' column order."""
    return ["input", "mesh 0°", "recon.", *[f"view {a}°" for a in angles], "cycle"]


def tiles_to_image(top: torch.Tensor, bottom: torch.Tensor, scale: int = 2, gap: int = 2,
                   labels: Sequence[str] | None = None) -> Image.Image:
    """Lay the tiles out as a grid with white gaps; ``scale`` enlarges small images (nearest);
    ``labels`` (one per column) go in a band above the grid."""
    p, c, _, h, w = top.shape
    if labels is not None and len(labels) != c:
        raise ValueError(f"{len(labels)} column labels for {c} columns")
    rows = []
    for i in range(p):
        rows.extend([top[i], bottom[i]])
    canvas = torch.ones(3, len(rows) * (h + gap) + gap, c * (w + gap) + gap)
    for r, row in enumerate(rows):
        for j in range(c):
            y, x = gap + r * (h + gap), gap + j * (w + gap)
            canvas[:, y:y + h, x:x + w] = row[j]
    arr = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img
    return img if labels is None else _with_header(img, list(labels), (w + gap) * scale, gap * scale)


def _with_header(img: Image.Image, labels: list[str], column: int, offset: int) -> Image.Image:
    """``img`` below a white band holding each column's label, centred over its column."""
    size = max(8, min(14, column // 6))
    font = ImageFont.load_default(size=size)
    band = size * 2
    out = Image.new("RGB", (img.width, img.height + band), "white")
    out.paste(img, (0, band))
    draw = ImageDraw.Draw(out)
    for j, text in enumerate(labels):
        centre = offset + j * column + (column - offset) / 2
        draw.text((centre, band / 2), text, fill="black", font=font, anchor="mm")
    return out


def save_png(img: Image.Image, path: str | os.PathLike) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
