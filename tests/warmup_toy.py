"""A tiny prepared dataset for the warm-up tests: people as two coloured blocks, with a colour cast
and noise per camera, written as a prepared folder (images + manifests). Nothing is fetched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from genreid.data.manifest import manifest_path, write_manifest


def _image(rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray, cast: np.ndarray, h: int, w: int):
    img = np.full((h, w, 3), 100.0) + rng.normal(0, 8, (h, w, 3))
    x0, x1 = w // 4 + int(rng.integers(-1, 2)), w - w // 4 + int(rng.integers(-1, 2))
    img[h // 8:h // 2, x0:x1] = top
    img[h // 2:h - h // 8, x0:x1] = bottom
    return np.clip(img + cast + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _split(root: Path, split: str, rng: np.random.Generator, pids: range, cams: int, per_cam: int,
           h: int, w: int) -> pd.DataFrame:
    casts = rng.normal(0, 15, (cams, 3))
    rows = []
    for pid in pids:
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        for cam in range(cams):
            for k in range(per_cam):
                rel = Path("images") / split / f"{pid:04d}_c{cam}_{k}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_image(rng, top, bottom, casts[cam], h, w)).save(root / rel)
                rows.append({"path": str(rel), "pid": pid, "camid": cam, "split": split, "sha1": "-"})
    return pd.DataFrame(rows)


def make_prepared(root: str | Path, train_ids: int = 8, val_ids: int = 4, cams: int = 2, per_cam: int = 3,
                  h: int = 32, w: int = 16, seed: int = 0) -> Path:
    """Write ``root`` as a prepared dataset (train/val/query/gallery manifests) and return it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    frames = {"train": _split(root, "train", rng, range(train_ids), cams, per_cam, h, w),
              "val": _split(root, "val", rng, range(1000, 1000 + val_ids), cams, per_cam, h, w)}
    test = _split(root, "test", rng, range(2000, 2000 + val_ids), cams, per_cam, h, w)
    frames["query"] = test[test["camid"] == 0].assign(split="query")
    frames["gallery"] = test[test["camid"] != 0].assign(split="gallery")
    for split, df in frames.items():
        write_manifest(df, manifest_path(root, split))
    return root
