"""SynthReID ground truth: SMPL parameters, camera and person mask of every image.

Read by the mesh stage's oracle mode and the alignment check, never by training. Written as
an ``.npz`` whose bytes depend only on the content (fixed zip timestamps, no compression), so
the same seed gives the same file. Keys: ``paths`` (relative to the dataset folder), ``pids``, ``camids``
(0-based), ``betas`` (N,10), ``pose`` (N,72), ``cam`` (N,3) = (s, tx, ty) in the convention of
:mod:`genreid.render.camera`, ``yaw`` (degrees), ``bbox`` (N,4) person box x0,y0,x1,y1 in
pixels (-1 when nobody is visible), ``visible`` (fraction of the person not occluded),
``occluded``, ``attributes`` (N, len(ATTRIBUTE_NAMES)), ``mask_bits`` (N, H*W/8 packed person
silhouettes, before occluders, alpha >= 0.5), ``image_size`` (H, W).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from genreid.errors import DataError
from genreid.utils.atomic import atomic_path

_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz_deterministic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed entry order and timestamps, written atomically.

    Stored, not deflated: deflate's output bytes depend on the zlib build (zlib, zlib-ng), the
    stored file only on the arrays, so the ground truth is the same bytes on every machine."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_DATE)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


@dataclass
class GroundTruth:
    paths: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray
    yaw: np.ndarray
    bbox: np.ndarray
    visible: np.ndarray
    occluded: np.ndarray
    attributes: np.ndarray
    mask_bits: np.ndarray
    image_size: tuple[int, int]
    origin: str = ""

    def __post_init__(self) -> None:
        self._row = {PurePosixPath(str(p)).name: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_masks(self) -> bool:
        return self.mask_bits.size > 0

    def rows_of(self, rel_paths: Sequence[str]) -> np.ndarray:
        """Row of each image, matched by file name (Market names are unique across splits), so
        paths relative to the dataset folder or to the prepared folder (``images/...``) both work."""
        rows, missing = [], []
        for p in rel_paths:
            name = PurePosixPath(str(p).replace(os.sep, "/")).name
            if name in self._row:
                rows.append(self._row[name])
            else:
                missing.append(str(p))
        if missing:
            raise DataError(f"{self.origin}: no ground truth for {len(missing)} image(s), e.g. {missing[:3]}",
                            "the images and ground_truth.npz come from different generations: rerun "
                            "`dvc repro prepare@synthetic`")
        return np.asarray(rows, dtype=np.int64)

    def masks(self, rel_paths: Sequence[str], height: int | None = None, width: int | None = None) -> np.ndarray:
        """bool (N,H,W) person silhouettes, resized by area when H x W differs from the stored size."""
        h, w = self.image_size
        rows = self.rows_of(rel_paths)
        bits = np.unpackbits(self.mask_bits[rows], axis=1, count=h * w).reshape(len(rows), h, w)
        height, width = height or h, width or w
        if (height, width) == (h, w):
            return bits.astype(bool)
        import torch
        import torch.nn.functional as F

        area = F.interpolate(torch.from_numpy(bits[:, None].astype(np.float32)), size=(height, width), mode="area")
        return (area[:, 0] >= 0.5).numpy()


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read SynthReID ground truth {path}: {exc}",
                        "rerun `dvc repro prepare@synthetic`") from exc
    fields = [f for f in GroundTruth.__dataclass_fields__ if f not in ("image_size", "origin")]
    missing = [f for f in fields if f not in data]
    if missing or "image_size" not in data:
        raise DataError(f"SynthReID ground truth {path} lacks {missing or ['image_size']}",
                        "rerun `dvc repro prepare@synthetic` with this version of genreid")
    size = data["image_size"]
    return GroundTruth(**{f: data[f] for f in fields}, image_size=(int(size[0]), int(size[1])), origin=str(path))
