"""Where per-image SMPL parameters come from. Adding an estimator is one subclass of :class:`Estimator`.

Every estimator returns, per image, SMPL ``betas`` (10), axis-angle ``pose`` (72) in genreid's
body frame (y up, facing +z) and the weak-perspective camera ``cam`` = (s, tx, ty) of the full
image (genreid/render/camera.py), so renders overlay the photo whatever the estimator.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genreid.errors import DataError
from genreid.meshes.crop import crop_cam_to_image_cam, crop_square, full_image_boxes
from genreid.meshes.hmr import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, build_hmr, rotmat_to_axis_angle, spin_to_y_up


@dataclass
class SmplParams:
    """A batch of SMPL parameters; arrays are float32 numpy with a leading batch axis."""

    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"betas": self.betas, "pose": self.pose, "cam": self.cam}


class Estimator(ABC):
    """One batch of images (absolute paths and paths relative to the prepared folder) -> SMPL."""

    name: ClassVar[str]

    @abstractmethod
    def estimate(self, paths: Sequence[Path], rel_paths: Sequence[str]) -> SmplParams:
        """Parameters for each image, in input order."""

    def signature(self) -> dict[str, Any]:
        """What identifies this estimator's output; a change invalidates finished renders."""
        return {"estimator": self.name}


def _file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OracleEstimator(Estimator):
    """SynthReID ground truth: the parameters the generator rendered each person with.

    Its cameras follow the same convention as the structure renderer, so the 0-degree render
    overlays the image exactly; the person masks it carries feed the alignment check.
    """

    name = "oracle"

    def __init__(self, ground_truth: str | os.PathLike):
        from genreid.synth.ground_truth import load_ground_truth

        self.path = Path(ground_truth)
        if not self.path.is_file():
            raise DataError(f"SynthReID ground truth not found: {self.path}",
                            "run the prepare stage for 'synthetic' first, or set mesh.estimator: hmr "
                            "for a real dataset")
        self.table = load_ground_truth(self.path)

    @property
    def has_masks(self) -> bool:
        return bool(self.table.has_masks)

    def masks(self, rel_paths: Sequence[str], height: int, width: int) -> np.ndarray:
        """bool (N, height, width) person silhouettes (area-resized from the stored image size)."""
        return self.table.masks(rel_paths, height, width)

    def estimate(self, paths: Sequence[Path], rel_paths: Sequence[str]) -> SmplParams:
        rows = self.table.rows_of(rel_paths)
        return SmplParams(betas=self.table.betas[rows].astype(np.float32),
                          pose=self.table.pose[rows].astype(np.float32),
                          cam=self.table.cam[rows].astype(np.float32))

    def signature(self) -> dict[str, Any]:
        return {"estimator": self.name, "ground_truth_sha1": _file_digest(self.path)}


class HmrEstimator(Estimator):
    """SPIN-format HMR on a 224x224 crop of each image; cameras mapped back to the full image.

    Images are first resized to ``work_size`` (H, W) with the 2:1 aspect the networks see,
    so the renders overlay the image as the networks receive it, whatever its stored size.
    """

    name = "hmr"

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu",
                 work_size: tuple[int, int] = (256, 128), rescale: float = 1.2,
                 checkpoint_id: str = "random", crop_size: int = CROP_SIZE):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.work_size, self.rescale, self.checkpoint_id = work_size, rescale, checkpoint_id
        self.crop_size = crop_size  # SPIN's 224; smaller only for fast tests (the trunk pools adaptively)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_files(cls, checkpoint: str | os.PathLike, mean_params: str | os.PathLike,
                   device: torch.device | str = "cpu") -> HmrEstimator:
        """The real thing: SPIN weights and mean parameters (clear errors when either is absent)."""
        model = build_hmr(checkpoint, mean_params)
        return cls(model, device, checkpoint_id=_file_digest(checkpoint))

    def signature(self) -> dict[str, Any]:
        return {"estimator": self.name, "checkpoint": self.checkpoint_id, "work_size": list(self.work_size),
                "rescale": self.rescale, "crop_size": self.crop_size}

    def load_images(self, paths: Sequence[Path]) -> torch.Tensor:
        """(B,3,H,W) float images in [0,1] at the work size (bicubic, as the network loaders)."""
        from PIL import Image

        h, w = self.work_size
        out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
        for i, p in enumerate(paths):
            try:
                with Image.open(p) as im:
                    out[i] = np.asarray(im.convert("RGB").resize((w, h), Image.BICUBIC))
            except OSError as exc:
                raise DataError(f"cannot read image {p}: {exc}", "rerun the prepare stage") from exc
        return torch.from_numpy(out).to(self.device).permute(0, 3, 1, 2).float().div_(255)

    @torch.no_grad()
    def estimate_tensor(self, images: torch.Tensor) -> SmplParams:
        """Batched estimation from (B,3,H,W) images in [0,1]; the camera refers to that H x W frame."""
        b, _, h, w = images.shape
        boxes = full_image_boxes(b, h, w, self.rescale, device=images.device)
        crops = (crop_square(images, boxes, self.crop_size) - self._mean) / self._std
        rotmat, betas, cam = self.model(crops)
        rotmat, cam = spin_to_y_up(rotmat, cam)
        cam = crop_cam_to_image_cam(cam, boxes, h, w)
        pose = rotmat_to_axis_angle(rotmat).reshape(b, 72)
        return SmplParams(betas=betas.float().cpu().numpy(), pose=pose.float().cpu().numpy(),
                          cam=cam.float().cpu().numpy())

    def estimate(self, paths: Sequence[Path], rel_paths: Sequence[str]) -> SmplParams:
        return self.estimate_tensor(self.load_images(paths))


ESTIMATORS: dict[str, type[Estimator]] = {"oracle": OracleEstimator, "hmr": HmrEstimator}


def make_estimator(name: str, dataset: str, ground_truth: str | os.PathLike, hmr_checkpoint: str | os.PathLike,
                   smpl_mean_params: str | os.PathLike, device: torch.device | str = "cpu",
                   hmr_rescale: float = 1.2) -> Estimator:
    """The estimator named in params (``auto``: the oracle where ground truth exists, else HMR)."""
    if name == "auto":
        name = "oracle" if Path(ground_truth).is_file() else "hmr"
    if name == "oracle":
        if not Path(ground_truth).is_file():
            raise DataError(f"mesh.estimator is 'oracle' but {dataset!r} has no ground truth ({ground_truth} missing)",
                            "ground-truth SMPL exists only for 'synthetic'; set mesh.estimator: hmr (or auto)")
        return OracleEstimator(ground_truth)
    if name == "hmr":
        est = HmrEstimator.from_files(hmr_checkpoint, smpl_mean_params, device)
        est.rescale = hmr_rescale
        return est
    raise DataError(f"unknown mesh.estimator {name!r}", f"use one of {sorted(ESTIMATORS)} or 'auto'")
