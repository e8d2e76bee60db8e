"""Export to the authors' folder layout, for people who run the original GCL code.

The GCL loader finds a render by replacing the image folder in the image path with
``<mesh_dir>/render/`` (0 degrees) or ``<mesh_dir>/render_<deg>/``: the render keeps the
image's file name and its path below the split's image folder (flat for Market and Duke,
one sub-folder per identity for MSMT17).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from genreid.meshes.store import RenderStore
from genreid.utils.atomic import atomic_dir


def authors_folder(angle: int) -> str:
    return "render" if angle == 0 else f"render_{angle}"


def relative_below_image_folder(paths: list[str]) -> list[str]:
    """Strip the folder prefix all paths share (e.g. ``images/bounding_box_train/``)."""
    parts = [PurePosixPath(p).parts for p in paths]
    common = 0
    shortest = min(len(p) for p in parts)
    while common < shortest - 1 and all(p[common] == parts[0][common] for p in parts):
        common += 1
    return [str(PurePosixPath(*p[common:])) for p in parts]


def export_authors_layout(render_root: str | os.PathLike, splits: list[str], dest: str | os.PathLike,
                          size: tuple[int, int] | None = None) -> Path:
    """Write ``dest/render*/...`` image files for every split; ``size`` = (H, W) resizes (bilinear).

    The folder appears only once complete (built under a temporary name).
    """
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        for split in splits:
            store = RenderStore(render_root, split)
            names = relative_below_image_folder([str(p) for p in store.index["path"]])
            for angle in store.angles:
                for i, name in enumerate(names):
                    out = tmp / authors_folder(angle) / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    im = Image.fromarray(np.asarray(store.get(i, angle)))
                    if size is not None:
                        im = im.resize((size[1], size[0]), Image.BILINEAR)
                    if out.suffix.lower() in (".jpg", ".jpeg"):
                        im.save(out, quality=95)
                    else:
                        im.save(out)
    return dest
