"""2D and 3D body landmarks of person crops from MediaPipe Pose (BlazePose, Bazarevsky et al. 2020).

The ``mediapipe`` wheel (Apache-2.0, the optional extra ``landmarks``) ships the person detector
and the "full" landmark model inside the package, so nothing is downloaded at run time; the
legacy ``solutions.pose`` graph is used because it reads exactly those bundled files
(``model_complexity=1``; 0 and 2 would fetch other models).

ReID crops are small (128 x 64 on Market-1501 and SynthReID) and tall, while BlazePose expects a
person of a few hundred pixels with some room around it in a roughly square frame: each crop is
upscaled so that its long side spans ``fill`` of a black square of ``input_size`` pixels (512 and 0.6:
a 128 x 64 crop is upscaled 2.4 times). On 150 SynthReID training crops, 0.6 found a person in 98 %
against 92 % with the crop filling the square (fill 1.0), with 30 % smaller knee and ankle errors;
fill 0.5 gave slightly better landmarks but found 95 %. ``min_presence`` is MediaPipe's
``min_tracking_confidence``, which gates the landmarks even on single images: its default 0.5
dropped a person from 20 % of the crops where the detector had found one (the visibilities
weigh the landmarks in the fit instead). Landmarks come back as fractions of the original crop's
width and height, with their visibility in [0, 1] and MediaPipe's metric "world" landmarks
(hip-centred, camera-aligned) turned into genreid's body frame (x to the image right, y up, z
towards the camera).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genreid.errors import GenreidError

NUM_LANDMARKS = 33  # BlazePose topology
INSTALL_HINT = ("install the optional extra: `pip install -e .[landmarks]` (mediapipe==0.10.14, pinned in "
                "requirements.lock), or choose another mesh.estimator")


@dataclass
class Landmarks:
    """A batch of BlazePose landmarks; rows of undetected images are zero with ``detected`` False."""

    fractions: np.ndarray  # (B, 33, 2) float64 (u / W, v / H) of each original image (u = column)
    visibility: np.ndarray  # (B, 33) float64 in [0, 1]
    world: np.ndarray  # (B, 33, 3) float64 metres, hip-centred, genreid body frame (y up, z to camera)
    detected: np.ndarray  # (B,) bool

    def __len__(self) -> int:
        return len(self.detected)


def square_canvas(image: np.ndarray, input_size: int, fill: float = 1.0
                  ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The image resized (bicubic) so its long side is ``fill * input_size``, centred on a black square.

    Returns the canvas and where the image lies on it: (left, top, width, height) in canvas pixels."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = fill * input_size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
    canvas = np.zeros((input_size, input_size, 3), dtype=np.uint8)
    left, top = (input_size - new_w) // 2, (input_size - new_h) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, (left, top, new_w, new_h)


class PoseLandmarker:
    """MediaPipe Pose on single images (``static_image_mode``: every image is detected afresh)."""

    def __init__(self, input_size: int = 512, fill: float = 0.6, min_detection_confidence: float = 0.2,
                 min_presence: float = 0.0):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up notes
        warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise GenreidError(f"mesh.estimator 'landmarks' needs the mediapipe package ({exc})",
                               INSTALL_HINT) from exc
        self.input_size, self.fill = input_size, fill
        self._pose = mp_pose.Pose(static_image_mode=True, model_complexity=1, smooth_landmarks=False,
                                  enable_segmentation=False, min_detection_confidence=min_detection_confidence,
                                  min_tracking_confidence=min_presence)

    def close(self) -> None:
        self._pose.close()

    def __call__(self, images: Sequence[np.ndarray]) -> Landmarks:
        """Landmarks of uint8 RGB images (H, W, 3) of any size."""
        b = len(images)
        fractions, vis = np.zeros((b, NUM_LANDMARKS, 2)), np.zeros((b, NUM_LANDMARKS))
        world, detected = np.zeros((b, NUM_LANDMARKS, 3)), np.zeros(b, dtype=bool)
        for i, image in enumerate(images):
            canvas, (left, top, placed_w, placed_h) = square_canvas(image, self.input_size, self.fill)
            result = self._pose.process(canvas)
            if result.pose_landmarks is None:
                continue
            detected[i] = True
            norm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark])
            fractions[i, :, 0] = (norm[:, 0] * self.input_size - left) / placed_w
            fractions[i, :, 1] = (norm[:, 1] * self.input_size - top) / placed_h
            vis[i] = norm[:, 2].clip(0.0, 1.0)
            if result.pose_world_landmarks is not None:
                raw = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark])
                world[i] = raw * np.array([1.0, -1.0, -1.0])  # MediaPipe: y down, z away from the camera
        return Landmarks(fractions, vis, world, detected)
