"""Walking-like SMPL poses: a gait phase drives hips, knees, arms; yaw turns the whole body.

The vectors are plain SMPL axis-angle poses (24 joints), so they mean the same on the official
model and the procedural stand-in (both start from SMPL's T-pose)."""

from __future__ import annotations

import numpy as np
import torch


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def walking_pose(rng: np.random.Generator, yaw_deg: float) -> np.ndarray:
    """One (72,) pose: random gait phase, stride, arm carriage and head turn, body turned by
    ``yaw_deg`` about +y (0 = facing the camera, 90 = facing the image right)."""
    from pytorch3d.transforms import matrix_to_axis_angle

    phase = rng.uniform(0, 2 * np.pi)
    stride = rng.uniform(0.15, 0.45)
    knee = rng.uniform(0.3, 0.8) * stride / 0.3
    down = rng.uniform(1.15, 1.35)
    swing = rng.uniform(0.4, 0.9) * stride
    elbow = rng.uniform(0.1, 0.5)
    rot = {j: np.eye(3) for j in range(24)}
    rot[0] = _ry(np.deg2rad(yaw_deg)) @ _rx(rng.uniform(0.0, 0.08))
    for side, hip, kn, ank, sh, el in ((1, 1, 4, 7, 16, 18), (-1, 2, 5, 8, 17, 19)):
        ph = phase if side == 1 else phase + np.pi
        rot[hip] = _rx(-stride * np.sin(ph)) @ _rz(side * rng.uniform(0.0, 0.06))
        bend = knee * (0.15 + 0.85 * max(0.0, np.sin(ph + np.pi / 3)))
        rot[kn] = _rx(bend)
        rot[ank] = _rx(-0.3 * bend + 0.1 * stride * np.sin(ph))
        rot[sh] = _rx(swing * np.sin(ph)) @ _rz(-side * down)
        rot[el] = _ry(-side * (elbow + 0.3 * swing * max(0.0, -np.sin(ph))))
    twist = 0.15 * stride * np.sin(phase)
    rot[3] = _ry(twist)
    rot[9] = _ry(-twist) @ _rx(rng.uniform(-0.05, 0.1))
    rot[15] = _ry(rng.uniform(-0.35, 0.35)) @ _rx(rng.uniform(-0.1, 0.2))
    mats = torch.as_tensor(np.stack([rot[j] for j in range(24)]), dtype=torch.float64)
    return matrix_to_axis_angle(mats).reshape(72).numpy()
