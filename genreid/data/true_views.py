"""SynthReID's true novel views as stored files: what the ``true_views`` stage writes and its readers load.

A true view is the render of an image's person turned about the vertical axis by a mesh angle, without
occluder (rendered by :mod:`genreid.synth.novel_views`). Per split the folder holds the views
``<split>_views.npy`` uint8 (N, A, H, W, 3), the person masks ``<split>_masks.npy`` bool (N, A, H, W)
(alpha >= 0.5, bags included), the empty scenes ``<split>_backgrounds.npy`` uint8 (N, H, W, 3) (the
same at every angle), ``<split>_index.csv`` (row, path, pid, camid, jpeg_quality) and
``<split>_views.json`` (angles, image size, generator version), at the dataset's stored image size. For
a real dataset the folder holds only ``absent.json`` with the reason, which every reader repeats.

This module is the data layer's side (no renderer imported), so the stages that only read true views
(view fidelity, the oracle_views arm) do not depend on the generator's code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreid.errors import DataError

ABSENT = "absent.json"  # what the stage writes for a real dataset instead of views: why there are none


@dataclass(frozen=True)
class TrueViews:
    """True novel views of some images at some angles, at the dataset's stored image size."""

    paths: list[str]
    angles: list[int]
    images: np.ndarray  # uint8 (N, A, H, W, 3): the photo as the camera takes it, before JPEG
    masks: np.ndarray  # bool (N, A, H, W): the person (bag included), alpha >= 0.5
    backgrounds: np.ndarray  # uint8 (N, H, W, 3): the scene without the person, same camera draws
    jpeg_quality: np.ndarray  # int (N,): the JPEG quality of each image's camera

    def __len__(self) -> int:
        return len(self.paths)

    def resized(self, height: int, width: int) -> TrueViews:
        """The views at a network size as the image loader resizes photos (PIL bicubic; masks by area
        average >= 0.5, as the ground truth's masks), so they compare with what a network reads."""
        if self.images.shape[2:4] == (height, width):
            return self
        n, a = self.images.shape[:2]
        images = resize_like_loader(self.images.reshape(n * a, *self.images.shape[2:]), height, width)
        masks = resize_masks(self.masks.reshape(n * a, *self.masks.shape[2:]), height, width)
        return TrueViews(paths=self.paths, angles=self.angles, images=images.reshape(n, a, height, width, 3),
                         masks=masks.reshape(n, a, height, width),
                         backgrounds=resize_like_loader(self.backgrounds, height, width),
                         jpeg_quality=self.jpeg_quality)

    def at(self, angle: int) -> tuple[np.ndarray, np.ndarray]:
        """(images (N,H,W,3), masks (N,H,W)) at one of :attr:`angles`."""
        if angle not in self.angles:
            raise DataError(f"no true views at angle {angle}; these have {self.angles}",
                            "render them with the angles of mesh.angles (`dvc repro true_views@synthetic`)")
        j = self.angles.index(angle)
        return self.images[:, j], self.masks[:, j]


def resize_like_loader(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, height, width, 3) by PIL bicubic, the image loader's resize of photos."""
    from PIL import Image

    if images.shape[1:3] == (height, width):
        return images
    out = np.empty((len(images), height, width, 3), np.uint8)
    for i, im in enumerate(images):
        out[i] = np.asarray(Image.fromarray(im).resize((width, height), Image.BICUBIC))
    return out


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (N, H, W) -> (N, height, width): area average >= 0.5."""
    import torch
    import torch.nn.functional as F

    if masks.shape[1:3] == (height, width):
        return masks.astype(bool)
    area = F.interpolate(torch.from_numpy(masks[:, None].astype(np.float32)), size=(height, width), mode="area")
    return (area[:, 0] >= 0.5).numpy()


def write_true_views(out_dir: str | os.PathLike, split: str, views: TrueViews, pids: Sequence[int],
                     camids: Sequence[int], generator_version: int) -> None:
    """Store one split's views (layout in the module docstring); every file written atomically."""
    import pandas as pd

    from genreid.utils.atomic import atomic_path, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, array in (("views", views.images), ("masks", views.masks), ("backgrounds", views.backgrounds)):
        with atomic_path(out / f"{split}_{name}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
    index = pd.DataFrame({"row": np.arange(len(views)), "path": views.paths, "pid": np.asarray(pids),
                          "camid": np.asarray(camids), "jpeg_quality": views.jpeg_quality})
    with atomic_path(out / f"{split}_index.csv") as tmp:
        index.to_csv(tmp, index=False)
    write_json(out / f"{split}_views.json", {"angles": views.angles, "images": len(views),
                                             "image_size": list(views.images.shape[2:4]),
                                             "generator_version": int(generator_version)})


def write_absent(out_dir: str | os.PathLike, reason: str, fix: str | None) -> None:
    """Mark ``out_dir`` as holding no true views (a real dataset), with the reason its readers repeat."""
    from genreid.utils.atomic import write_json

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / ABSENT, {"reason": reason, "fix": fix})


def load_true_views(out_dir: str | os.PathLike, split: str) -> TrueViews:
    """Read one stored split; a ``DataError`` naming the stage to run when it is absent."""
    import pandas as pd

    out = Path(out_dir)
    if (out / ABSENT).is_file():
        why = json.loads((out / ABSENT).read_text())
        raise DataError(f"no true novel views in {out}: {why.get('reason')}", str(why.get("fix")))
    meta_path = out / f"{split}_views.json"
    if not meta_path.is_file():
        raise DataError(f"no true novel views of split {split!r} in {out} ({meta_path.name} missing)",
                        "true views exist only for SynthReID: run `dvc repro true_views@synthetic` (the "
                        "training split needs `true_views.splits` to include train)")
    meta = json.loads(meta_path.read_text())
    index = pd.read_csv(out / f"{split}_index.csv")
    return TrueViews(paths=index["path"].astype(str).tolist(), angles=[int(a) for a in meta["angles"]],
                     images=np.load(out / f"{split}_views.npy", allow_pickle=False),
                     masks=np.load(out / f"{split}_masks.npy", allow_pickle=False),
                     backgrounds=np.load(out / f"{split}_backgrounds.npy", allow_pickle=False),
                     jpeg_quality=index["jpeg_quality"].to_numpy())
