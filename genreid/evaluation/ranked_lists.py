"""Ranked-list pictures: a query and its top-k gallery items, true matches framed green and
others red, for the best and the worst queries (by AP). Drawn with PIL so the bytes are the
same for the same inputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genreid.utils.atomic import atomic_path

GREEN, RED, GREY, WHITE = (0, 170, 0), (210, 0, 0), (90, 90, 90), (255, 255, 255)


def ranked_gallery(dist_row: np.ndarray, q_pid: int, q_camid: int, g_pids: np.ndarray, g_camids: np.ndarray,
                   top: int = 10, camera_filter: bool = True) -> np.ndarray:
    """Indices of the first ``top`` kept gallery items in the evaluation's order (distance, then index)."""
    order = np.argsort(dist_row, kind="stable")
    if camera_filter:
        order = order[~((g_pids[order] == q_pid) & (g_camids[order] == q_camid))]
    return order[:top]


def pick_queries(ap_per_query: np.ndarray, count: int) -> tuple[list[int], list[int]]:
    """The ``count`` best and worst valid queries by AP (ties: lower query index first)."""
    valid = np.flatnonzero(~np.isnan(ap_per_query))
    by_ap = valid[np.argsort(-ap_per_query[valid], kind="stable")]
    best = by_ap[:count].tolist()
    worst_order = valid[np.argsort(ap_per_query[valid], kind="stable")]
    worst = [q for q in worst_order.tolist() if q not in best][:count]
    return best, worst


def _tile(path: str, size: tuple[int, int], colour: tuple[int, int, int], border: int = 3) -> Image.Image:
    w, h = size
    with Image.open(path) as im:
        img = im.convert("RGB").resize((w - 2 * border, h - 2 * border), Image.BILINEAR)
    tile = Image.new("RGB", (w, h), colour)
    tile.paste(img, (border, border))
    return tile


def draw_ranked_lists(path: str | os.PathLike, rows: Sequence[tuple[str, int, list[int]]],
                      query_paths: Sequence[str], gallery_paths: Sequence[str], is_match: Callable[[int, int], bool],
                      tile_size: tuple[int, int] = (64, 128)) -> Path:
    """One row per (label, query index, gallery indices): the query (grey frame), then its ranked items."""
    w, h = tile_size
    label_w, gap, text_h = 110, 8, 14
    cols = max((len(g) for _, _, g in rows), default=0)
    width = label_w + (cols + 1) * w + cols * 2 + gap
    height = max(1, len(rows)) * (h + text_h + 4)
    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    for r, (label, q, gallery) in enumerate(rows):
        y = r * (h + text_h + 4) + text_h
        draw.text((4, y + h // 2 - 6), label, fill=(0, 0, 0))
        canvas.paste(_tile(query_paths[q], tile_size, GREY), (label_w, y))
        for k, g in enumerate(gallery):
            x = label_w + w + gap + k * (w + 2)
            canvas.paste(_tile(gallery_paths[g], tile_size, GREEN if is_match(q, g) else RED), (x, y))
            draw.text((x + 2, y - text_h + 1), str(k + 1), fill=(0, 0, 0))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return path
