"""Where per-image SMPL parameters come from. Adding an estimator is one subclass of :class:`Estimator`
and one entry of :data:`ESTIMATORS`.

Every estimator returns, per image, SMPL ``betas`` (10), axis-angle ``pose`` (72) in genreid's
body frame (y up, facing +z), the weak-perspective camera ``cam`` = (s, tx, ty) of the full
image (genreid/render/camera.py), so renders overlay the photo whatever the estimator, and
``detected`` (1 where it found a person, 0 where it fell back to a standing body).

- ``oracle``: SynthReID's ground truth (the generator's own parameters);
- ``hmr``: a SPIN-format HMR regressor (the papers'), which needs its checkpoint;
- ``landmarks``: MediaPipe pose landmarks with the body model fitted to them (licence-free,
  from registry packages only, no download at run time);
- ``standing``: no estimation: every image gets the fallback body (a baseline for the accuracy table).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genreid.errors import DataError
from genreid.meshes.crop import crop_cam_to_image_cam, crop_square, full_image_boxes
from genreid.meshes.fit import FitSettings
from genreid.meshes.hmr import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, build_hmr, rotmat_to_axis_angle, spin_to_y_up


@dataclass
class SmplParams:
    """A batch of SMPL parameters; arrays are float32 numpy with a leading batch axis.

    ``detected`` (B, 1): 1 where the estimator found the person, 0 where it fell back (None: all found)."""

    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray
    detected: np.ndarray | None = None

    def found(self) -> np.ndarray:
        """(B, 1) float32 detection flags (ones when the estimator has no notion of a miss)."""
        if self.detected is None:
            return np.ones((len(self.betas), 1), dtype=np.float32)
        return np.asarray(self.detected, dtype=np.float32).reshape(-1, 1)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"betas": self.betas, "pose": self.pose, "cam": self.cam, "detected": self.found()}


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


STANDING_FILL = 0.9  # share of the image height a person box's person spans (SynthReID's cameras: 0.84-0.96)


def standing_params(body_model, batch: int, fill: float = STANDING_FILL) -> SmplParams:
    """The fallback: the mean body standing upright, facing the camera, arms down, centred in the
    image and spanning ``fill`` of its height (a ReID crop is a person box); ``detected`` 0."""
    from genreid.meshes.fit import standing_pose
    from genreid.render.camera import framing_cam

    pose = standing_pose(torch.float32).reshape(1, -1)
    betas = torch.zeros(1, 10)
    device = next((t.device for t in body_model.buffers()), torch.device("cpu"))
    with torch.no_grad():
        vertices, _ = body_model.forward(betas.to(device), pose.to(device))
    cam = framing_cam(vertices.float().cpu(), fill)
    return SmplParams(betas=betas.numpy().repeat(batch, 0), pose=pose.numpy().repeat(batch, 0),
                      cam=cam.numpy().repeat(batch, 0), detected=np.zeros((batch, 1), dtype=np.float32))


class StandingEstimator(Estimator):
    """Estimates nothing: every image gets :func:`standing_params`. The floor of the accuracy table
    (what an estimator must beat) and an ablation of the structure input (no pose information)."""

    name = "standing"

    def __init__(self, body_model):
        self.body_model = body_model

    def estimate(self, paths: Sequence[Path], rel_paths: Sequence[str]) -> SmplParams:
        return standing_params(self.body_model, len(paths))  # detected 0: it never looks

    def signature(self) -> dict[str, Any]:
        return {"estimator": self.name, "fill": STANDING_FILL}


# BlazePose landmark -> body point of genreid.meshes.fit.Skeleton (joints by SMPL id, anchors by name).
# The eyes, mouth and hand points are left out: a few pixels apart on a 128 x 64 crop.
LANDMARK_POINTS: dict[int, str] = {
    0: "nose", 7: "left_ear", 8: "right_ear",
    11: "joint:16", 12: "joint:17", 13: "joint:18", 14: "joint:19", 15: "joint:20", 16: "joint:21",  # arms
    23: "joint:1", 24: "joint:2", 25: "joint:4", 26: "joint:5", 27: "joint:7", 28: "joint:8",  # legs
    29: "left_heel", 30: "right_heel", 31: "left_toe", 32: "right_toe",
}


def landmarks_to_targets(fractions: np.ndarray, aspect: float) -> np.ndarray:
    """(..., 2) landmark (u / W, v / H) -> the camera convention's normalised (x, y) of an image
    of width/height ``aspect`` (the renders'): ``x = (u/W - 1/2) * 2 aspect``, ``y = (1/2 - v/H) * 2``."""
    f = np.asarray(fractions, dtype=np.float64)
    return np.stack([(f[..., 0] - 0.5) * 2.0 * aspect, (0.5 - f[..., 1]) * 2.0], -1)


@dataclass(frozen=True)
class LandmarkOptions:
    input_size: int = 512  # side of the square the crop is placed on for MediaPipe
    fill: float = 0.6  # share of that side the crop's long side spans
    aspect: float = 0.5  # width / height of the frame the cameras refer to (the renders')
    fit: FitSettings = field(default_factory=FitSettings)
    # A ReID crop is a person box: a fitted body spanning less than this share of the image height means
    # the landmarks were not a whole person. On SynthReID that is about 8 % of the crops (MediaPipe answers
    # on 96 %): their fits scored silhouette IoU 0.16 and median yaw error 85 degrees, where the standing
    # body scores 0.51 and 94 over all crops, at the same joint error; so they get the fallback too.
    min_height: float = 0.5


class LandmarkEstimator(Estimator):
    """MediaPipe Pose landmarks (genreid/meshes/landmarks.py), then the body model fitted to them
    (genreid/meshes/fit.py); images where no person is found, or whose fitted body spans less than
    ``min_height`` of the image, get :func:`standing_params` (``detected`` 0)."""

    name = "landmarks"

    def __init__(self, body_model, options: LandmarkOptions = LandmarkOptions()):
        from genreid.meshes.fit import Skeleton
        from genreid.meshes.landmarks import PoseLandmarker

        self.body_model, self.options, self.settings = body_model, options, options.fit
        self.skeleton = Skeleton(body_model).cpu()
        self.columns = [self.skeleton.point_index(n) for n in LANDMARK_POINTS.values()]
        self.landmarker = PoseLandmarker(options.input_size, options.fill)

    def signature(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"estimator": self.name, "mediapipe": version("mediapipe"), "input_size": self.options.input_size,
                "fill": self.options.fill, "aspect": self.options.aspect, "fit": asdict(self.settings),
                "standing_fill": STANDING_FILL, "min_height": self.options.min_height}

    def estimate(self, paths: Sequence[Path], rel_paths: Sequence[str]) -> SmplParams:
        return self.estimate_images(load_rgb(paths))

    def estimate_images(self, images: Sequence[np.ndarray]) -> SmplParams:
        """Parameters of uint8 RGB images (any sizes); the cameras refer to each image resized to the aspect."""
        from genreid.meshes.fit import fit_body, yaw_from_world

        found = self.landmarker(images)
        params = standing_params(self.body_model, len(images))
        rows = np.flatnonzero(found.detected)
        if len(rows) == 0:
            return params
        ids = list(LANDMARK_POINTS)
        targets = torch.from_numpy(landmarks_to_targets(found.fractions[rows][:, ids], self.options.aspect))
        weights = torch.from_numpy(found.visibility[rows][:, ids])
        world = torch.from_numpy(found.world[rows][:, ids])
        shoulders_hips = ([ids.index(11), ids.index(23)], [ids.index(12), ids.index(24)])
        yaw = yaw_from_world(world, weights, *shoulders_hips)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: threads only add waiting (12 s against 88 s on 2 busy cores)
        try:
            fit = fit_body(self.skeleton, self.columns, targets, weights, world, weights, yaw, self.settings)
        finally:
            torch.set_num_threads(threads)
        keep = self.spans(fit.betas, fit.pose, fit.cam) >= self.options.min_height
        rows = rows[keep]
        params.betas[rows] = fit.betas[keep].float().numpy()
        params.pose[rows] = fit.pose[keep].float().numpy()
        params.cam[rows] = fit.cam[keep].float().numpy()
        params.detected[rows] = 1.0
        return params

    def spans(self, betas: torch.Tensor, pose: torch.Tensor, cam: torch.Tensor) -> np.ndarray:
        """Share of the image height each posed body covers under its camera."""
        device = next((t.device for t in self.body_model.buffers()), torch.device("cpu"))
        with torch.no_grad():
            vertices, _ = self.body_model.forward(betas.float().to(device), pose.float().to(device))
        y = vertices[..., 1].double().cpu()
        return (cam[:, 0].double().cpu() * (y.amax(1) - y.amin(1)) / 2).numpy()


def load_rgb(paths: Sequence[Path]) -> list[np.ndarray]:
    """uint8 RGB arrays of image files at their stored size."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise DataError(f"cannot read image {p}: {exc}", "rerun the prepare stage") from exc
    return out


ESTIMATORS: dict[str, type[Estimator]] = {"oracle": OracleEstimator, "hmr": HmrEstimator,
                                          "landmarks": LandmarkEstimator, "standing": StandingEstimator}


@dataclass(frozen=True)
class EstimatorFiles:
    """Where the estimators' inputs are: SynthReID ground truth, SPIN's HMR files."""

    ground_truth: str | os.PathLike
    hmr_checkpoint: str | os.PathLike = "data/models/hmr/model_checkpoint.pt"
    smpl_mean_params: str | os.PathLike = "data/models/hmr/smpl_mean_params.npz"
    hmr_rescale: float = 1.2
    landmarks: LandmarkOptions = field(default_factory=LandmarkOptions)


def resolve_estimator(name: str, files: EstimatorFiles) -> str:
    """``auto``: the oracle where ground truth exists (SynthReID), HMR where its checkpoint is given,
    else the landmark fit (the authors used HMR: a deviation, listed in the params docs)."""
    if name != "auto":
        return name
    if Path(files.ground_truth).is_file():
        return "oracle"
    return "hmr" if Path(files.hmr_checkpoint).is_file() else "landmarks"


def make_estimator(name: str, dataset: str, files: EstimatorFiles, body_model,
                   device: torch.device | str = "cpu") -> Estimator:
    """The estimator named in params (``auto``: :func:`resolve_estimator`)."""
    name = resolve_estimator(name, files)
    if name == "oracle":
        if not Path(files.ground_truth).is_file():
            raise DataError(f"mesh.estimator is 'oracle' but {dataset!r} has no ground truth "
                            f"({files.ground_truth} missing)",
                            "ground-truth SMPL exists only for 'synthetic'; set mesh.estimator: landmarks, hmr "
                            "or auto")
        return OracleEstimator(files.ground_truth)
    if name == "hmr":
        est = HmrEstimator.from_files(files.hmr_checkpoint, files.smpl_mean_params, device)
        est.rescale = files.hmr_rescale
        return est
    if name == "landmarks":
        return LandmarkEstimator(body_model, files.landmarks)
    if name == "standing":
        return StandingEstimator(body_model)
    raise DataError(f"unknown mesh.estimator {name!r}", f"use one of {sorted(ESTIMATORS)} or 'auto'")
