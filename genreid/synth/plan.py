"""Who appears where: identities, cameras, splits and Market-1501 file names.

Market-1501 rules: train and test identities are disjoint; every identity is seen by several
cameras; the query holds one image per (test identity, camera); the gallery holds the other
test images plus distractors with pid 0 (``0000_...``). Names are ``PPPP_cCsS_FFFFFF_BB.jpg``
(pid, 1-based camera, sequence, frame, box index); frames count per camera, so every name is
unique across splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreid.errors import ConfigError

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass(frozen=True)
class Shot:
    index: int  # position in the plan: seeds this image's randomness
    split: str  # train | query | gallery
    pid: int  # Market pid; 0 = distractor
    person: int  # identity key: pid, or -(k+1) for the k-th distractor
    camera: int  # 0-based
    name: str

    @property
    def rel_path(self) -> str:
        return f"{SPLIT_DIRS[self.split]}/{self.name}"


def check_plan_args(num_train_ids: int, num_test_ids: int, num_cameras: int, cameras_per_id: int,
                    images_per_camera: int, num_distractors: int) -> None:
    if cameras_per_id > num_cameras:
        raise ConfigError(f"data.synthetic.cameras_per_id={cameras_per_id} exceeds num_cameras={num_cameras}",
                          "lower cameras_per_id or raise num_cameras")
    if cameras_per_id < 2:
        raise ConfigError(f"data.synthetic.cameras_per_id={cameras_per_id}: a query needs a match in another camera",
                          "set cameras_per_id >= 2")
    if num_train_ids + num_test_ids > 9999:
        raise ConfigError(f"data.synthetic: {num_train_ids + num_test_ids} identities do not fit Market's 4-digit "
                          "pids", "keep num_train_ids + num_test_ids <= 9999")
    if min(num_train_ids, num_test_ids, images_per_camera) < 1 or num_distractors < 0:
        raise ConfigError("data.synthetic: identity, image and distractor counts must be positive",
                          "check num_train_ids, num_test_ids, images_per_camera, num_distractors")


def make_plan(seed: int, num_train_ids: int, num_test_ids: int, num_cameras: int, cameras_per_id: int,
              images_per_camera: int, num_distractors: int) -> list[Shot]:
    """Every image of the dataset in a fixed order (train, test, distractors)."""
    check_plan_args(num_train_ids, num_test_ids, num_cameras, cameras_per_id, images_per_camera, num_distractors)
    rng = np.random.default_rng([seed, 3])
    frames = np.zeros(num_cameras, dtype=int)
    shots: list[Shot] = []

    def add(split: str, pid: int, person: int, cam: int) -> None:
        frames[cam] += int(rng.integers(1, 40))  # frames advance unevenly, as in a video
        name = f"{pid:04d}_c{cam + 1}s1_{frames[cam]:06d}_01.jpg"
        shots.append(Shot(len(shots), split, pid, person, cam, name))

    for pid in range(1, num_train_ids + num_test_ids + 1):
        cams = np.sort(rng.choice(num_cameras, size=cameras_per_id, replace=False))
        for cam in cams:
            for k in range(images_per_camera):
                split = "train" if pid <= num_train_ids else ("query" if k == 0 else "gallery")
                add(split, pid, pid, int(cam))
    for k in range(num_distractors):
        add("gallery", 0, -(k + 1), int(rng.integers(num_cameras)))
    return shots


def split_counts(shots: list[Shot]) -> dict[str, dict[str, int]]:
    """Images, ids and cameras per split, counted the way the dataset loader counts them
    (the gallery's ids include pid 0 when there are distractors, as Market-1501's 751)."""
    out = {}
    for split in SPLIT_DIRS:
        sel = [s for s in shots if s.split == split]
        out[split] = {"images": len(sel), "ids": len({s.pid for s in sel}), "cameras": len({s.camera for s in sel}),
                      "distractor_images": sum(s.pid == 0 for s in sel)}
    return out
