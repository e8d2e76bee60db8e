"""A tiny paired dataset for the generator/joint trainer tests: coloured people, silhouette renders,
and an untrained ResNet-18 identity encoder checkpoint. Everything is generated, nothing fetched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from genreid.meshes.store import RenderWriter
from genreid.models.id_encoder import build_encoder, save_encoder

ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]


def _person(rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 90.0) + rng.normal(0, 6, (h, w, 3))
    x0, x1 = w // 4, w - w // 4
    img[h // 8:h // 2, x0:x1] = top + rng.normal(0, 8, 3)
    img[h // 2:h - h // 8, x0 + 1:x1 - 1] = bottom + rng.normal(0, 8, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _silhouette(angle: int, h: int, w: int, shift: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    half = max(1.0, (w / 4) * (0.55 + 0.45 * abs(np.cos(np.deg2rad(angle)))))
    cx = w / 2 + shift * np.sin(np.deg2rad(angle))
    body = (np.abs(xx - cx) < half) & (yy > h // 10) & (yy < h - h // 10)
    shade = 120 + 100 * (xx - cx) / (2 * half)
    return np.where(body, np.clip(shade, 30, 230), 0).astype(np.uint8)


def _people(img_dir: Path, rng: np.random.Generator, pids: range, per_id: int, h: int, w: int) -> pd.DataFrame:
    rows = []
    for pid in pids:
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        for k in range(per_id):
            path = img_dir / f"{pid:03d}_{k}.png"
            Image.fromarray(_person(rng, top, bottom, h, w)).save(path)
            rows.append({"path": str(path), "pid": pid, "camid": k % 3})
    return pd.DataFrame(rows)


def make_toy(root: Path, ids: int = 6, per_id: int = 4, h: int = 32, w: int = 16, seed: int = 0,
             embedding_dim: int = 16, val_ids: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    df = _people(img_dir, rng, range(ids), per_id, h, w)
    val_df = _people(img_dir, rng, range(100, 100 + val_ids), per_id, h, w)
    render_dir = root / "meshes"
    n = len(df)
    writer = RenderWriter(render_dir, "train", n, ANGLES, h, w, chunk_size=n, signature={"toy": seed})
    for k in writer.open():
        sl = writer.chunk_rows(k)
        renders = {a: np.stack([_silhouette(a, h, w, 1 + i % 3) for i in range(sl.start, sl.stop)]) for a in ANGLES}
        smpl = {"betas": np.zeros((n, 10), np.float32), "pose": np.zeros((n, 72), np.float32),
                "cam": np.zeros((n, 3), np.float32)}
        writer.write_chunk(k, renders, smpl)
    writer.finalize(pd.DataFrame({"row": range(n), "path": df["path"], "pid": df["pid"], "camid": df["camid"]}))
    enc_path = root / "encoder.pt"
    save_encoder(build_encoder("resnet18", "none", "avg", embedding_dim, 1, 4), enc_path, {"epoch": 0})
    return {"df": df, "val_df": val_df, "render_dir": render_dir, "encoder": enc_path, "height": h, "width": w}
