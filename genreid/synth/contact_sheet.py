"""A contact sheet: sample test identities (rows) across their cameras (columns, labelled)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genreid.synth.difficulty import read_split
from genreid.utils.atomic import atomic_path


def contact_sheet(dataset_dir: str | os.PathLike, path: str | os.PathLike, num_ids: int = 8,
                  per_row: int = 8, seed: int = 0) -> Path:
    """PNG of ``num_ids`` random test identities, each row: the same number of images from each of
    the person's cameras (query and gallery), sorted by camera."""
    from PIL import Image, ImageDraw

    imgs, pids, cams, names = [], [], [], []
    for split in ("query", "gallery"):
        i, p, c, n = read_split(dataset_dir, split)
        imgs.append(i)
        pids.append(p)
        cams.append(c)
        names += n
    imgs, pids, cams = np.concatenate(imgs), np.concatenate(pids), np.concatenate(cams)
    people = np.unique(pids[pids > 0])
    chosen = np.sort(np.random.default_rng(seed).choice(people, size=min(num_ids, len(people)), replace=False))
    h, w = imgs.shape[1:3]
    label = 12
    sheet = Image.new("RGB", (per_row * w + 44, len(chosen) * (h + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, pid in enumerate(chosen):
        rows = np.nonzero(pids == pid)[0]
        rows = rows[np.lexsort((np.array(names)[rows], cams[rows]))]
        per_cam = max(1, per_row // len(np.unique(cams[rows])))  # every camera of the person, evenly
        rows = np.concatenate([rows[cams[rows] == c][:per_cam] for c in np.unique(cams[rows])])[:per_row]
        y = r * (h + label)
        draw.text((2, y + label + h // 2 - 6), f"{pid:04d}", fill=(0, 0, 0))
        for c, k in enumerate(rows):
            x = 44 + c * w
            draw.text((x + 2, y), f"cam {cams[k] + 1}", fill=(0, 0, 0))
            sheet.paste(Image.fromarray(imgs[k]), (x, y + label))
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)
