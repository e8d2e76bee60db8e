"""Mesh renders as network inputs (0-degree and novel-view renders), keyed by manifest row.

Renders come from :class:`genreid.meshes.store.RenderStore` (uint8, stored size) and enter
E_str as (x/255 - 0.5)/0.5 after a bicubic resize to the network size (the authors resize
renders with the same bicubic transform as images). Angles are drawn uniformly from the
configured set with torch's global RNG, which the trainers seed and checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from genreid.engine.dist import shard_batch
from genreid.errors import DataError
from genreid.meshes.store import RenderStore


def open_renders(render_dir: str, split: str, df: pd.DataFrame, angles: Sequence[int]) -> RenderStore:
    """The split's render store, checked against the manifest order and the angles training draws."""
    store = RenderStore(render_dir, split)
    store.check_aligned(list(df["path"]))
    missing = sorted({0, *angles} - set(store.angles))
    if missing:
        raise DataError(f"renders in {render_dir} lack angle(s) {missing} (have {store.angles})",
                        "add them to mesh.angles and rerun the meshes stage, or remove them from the "
                        "pretrain/train 'angles' list")
    return store


def renders_to_tensor(store: RenderStore, rows: Sequence[int] | np.ndarray, angles: int | Sequence[int],
                      height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 1, height, width) float renders normalised to [-1, 1]."""
    arr = store.batch(np.asarray(rows, dtype=np.int64), angles)
    t = torch.from_numpy(arr).float().div_(255.0)[:, None]
    if t.shape[-2:] != (height, width):
        t = F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
    return t.sub_(0.5).div_(0.5).to(device)


def draw_angles(n: int, angles: Sequence[int]) -> list[int]:
    """One novel-view angle per sample, uniform over ``angles`` (global torch RNG)."""
    pick = torch.randint(len(angles), (n,))
    return [int(angles[i]) for i in pick]


def view_inputs(store: RenderStore, batch: dict, angles: Sequence[int], batch_size: int, amp, info
                ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor]:
    """(x, rows, m0, m_t) of this rank's share of a batch: images, their 0-degree renders and renders at
    an angle drawn per global batch (global torch RNG), so N ranks draw what one process draws."""
    h, w = batch["image"].shape[-2:]
    x, rows = amp.input(batch["image"]), batch["index"].numpy()
    m0 = amp.input(renders_to_tensor(store, rows, 0, h, w))
    drawn = shard_batch(draw_angles(batch_size, angles), info)
    return x, rows, m0, amp.input(renders_to_tensor(store, rows, drawn, h, w))
