"""Walking-like SMPL poses: a gait phase drives hips, knees, arms; yaw turns the whole body.

The vectors are plain SMPL axis-angle poses (24 joints), so they mean the same on the official
model and the procedural stand-in (both start from SMPL's T-pose). Rotations are composed as
quaternions with :mod:`genreid.utils.exactmath`, so a pose is the same bits on every machine."""

from __future__ import annotations

import numpy as np

from genreid.utils import exactmath


def _axis_quat(axis: int, angle: float) -> np.ndarray:
    """(w, x, y, z) of a rotation by ``angle`` radians about coordinate ``axis`` (0=x, 1=y, 2=z)."""
    s, c = exactmath.sincos(0.5 * angle)
    q = np.zeros(4)
    q[0], q[1 + axis] = c, s
    return q


def _rx(a: float) -> np.ndarray:
    return _axis_quat(0, a)


def _ry(a: float) -> np.ndarray:
    return _axis_quat(1, a)


def _rz(a: float) -> np.ndarray:
    return _axis_quat(2, a)


def quat_mul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product: the rotation ``p`` after ``q`` (as the matrix product R_p R_q)."""
    pw, px, py, pz = p
    qw, qx, qy, qz = q
    return np.array([pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
                     pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw])


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3) axis-angle vectors with angle in [0, pi]."""
    q = np.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    norm = np.sqrt(exactmath.dot3(xyz, xyz))
    angle = 2.0 * exactmath.atan2(norm, q[..., 0])
    scale = np.where(norm > 0, angle / np.where(norm > 0, norm, 1.0), 2.0)
    return xyz * scale[..., None]


def _sin(a: float) -> float:
    return float(exactmath.sin(a))


def walking_pose(rng: np.random.Generator, yaw_deg: float) -> np.ndarray:
    """One (72,) pose: random gait phase, stride, arm carriage and head turn, body turned by
    ``yaw_deg`` about +y (0 = facing the camera, 90 = facing the image right)."""
    phase = rng.uniform(0, 2 * np.pi)
    stride = rng.uniform(0.15, 0.45)
    knee = rng.uniform(0.3, 0.8) * stride / 0.3
    down = rng.uniform(1.15, 1.35)
    swing = rng.uniform(0.4, 0.9) * stride
    elbow = rng.uniform(0.1, 0.5)
    rot = {j: np.array([1.0, 0.0, 0.0, 0.0]) for j in range(24)}
    rot[0] = quat_mul(_ry(yaw_deg * (np.pi / 180.0)), _rx(rng.uniform(0.0, 0.08)))
    for side, hip, kn, ank, sh, el in ((1, 1, 4, 7, 16, 18), (-1, 2, 5, 8, 17, 19)):
        ph = phase if side == 1 else phase + np.pi
        rot[hip] = quat_mul(_rx(-stride * _sin(ph)), _rz(side * rng.uniform(0.0, 0.06)))
        bend = knee * (0.15 + 0.85 * max(0.0, _sin(ph + np.pi / 3)))
        rot[kn] = _rx(bend)
        rot[ank] = _rx(-0.3 * bend + 0.1 * stride * _sin(ph))
        rot[sh] = quat_mul(_rx(swing * _sin(ph)), _rz(-side * down))
        rot[el] = _ry(-side * (elbow + 0.3 * swing * max(0.0, -_sin(ph))))
    twist = 0.15 * stride * _sin(phase)
    rot[3] = _ry(twist)
    rot[9] = quat_mul(_ry(-twist), _rx(rng.uniform(-0.05, 0.1)))
    rot[15] = quat_mul(_ry(rng.uniform(-0.35, 0.35)), _rx(rng.uniform(-0.1, 0.2)))
    return quat_to_axis_angle(np.stack([rot[j] for j in range(24)])).reshape(72)
