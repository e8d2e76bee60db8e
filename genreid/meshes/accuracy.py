"""How close estimated bodies are to SynthReID's ground truth, per image and aggregated.

- ``pa_mpjpe_mm``: mean distance of the 24 SMPL joints after Procrustes alignment (rotation,
  translation and scale fitted per image; the usual "PA-MPJPE", here on all 24 joints), in mm;
- ``yaw_error_deg``: the angle between the true and the estimated facing direction about the
  vertical (front/back confusions show as errors near 180);
- ``silhouette_iou``: IoU of the estimate's 0-degree render with the true person mask (the
  generator's silhouette before occluders: hair, bags and clothing the body model lacks keep the
  ground truth itself near 0.9, which the oracle row shows);
- ``detected``: whether the estimator found a person (the others are its fallback).

The oracle scores zero joint and yaw error by construction: a check of the metric.
"""

from __future__ import annotations

import numpy as np
import torch


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) ``source`` moved onto ``target`` by the similarity transform minimising the squared
    distances (Umeyama 1991: rotation without reflection, isotropic scale, translation)."""
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    var = (xs ** 2).sum((1, 2))
    u, sing, vh = torch.linalg.svd(xs.transpose(1, 2) @ xt)  # 3x3 cross-covariance
    sign = torch.sign(torch.linalg.det(u @ vh))
    d = torch.ones_like(sing)
    d[:, -1] = sign
    rot = u @ torch.diag_embed(d) @ vh  # x -> x @ rot
    scale = (sing * d).sum(1) / var.clamp_min(1e-12)
    return scale[:, None, None] * xs @ rot + mu_t


def pa_mpjpe(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B,) mean joint distance after Procrustes alignment, in the joints' unit."""
    est, tru = estimate.double(), truth.double()
    return (procrustes_align(est, tru) - tru).norm(dim=-1).mean(1)


def yaw_of_pose(pose: np.ndarray | torch.Tensor) -> np.ndarray:
    """(B,) degrees in [0, 360): where the global orientation turns the body's facing axis (+z),
    measured about +y (0 = facing the camera, 90 = facing the image right)."""
    from pytorch3d.transforms import axis_angle_to_matrix

    rot = axis_angle_to_matrix(torch.as_tensor(np.asarray(pose)[:, :3], dtype=torch.float64))
    forward = rot[:, :, 2]  # R @ (0, 0, 1)
    return (np.degrees(np.arctan2(forward[:, 0].numpy(), forward[:, 2].numpy())) % 360.0)


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference of angles in degrees, in [0, 180]."""
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def silhouette_iou(renders: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N,) IoU of render silhouettes (N, H, W uint8, body = >0) with person masks (N, H, W bool)."""
    if renders.shape != masks.shape:
        raise ValueError(f"renders {renders.shape} and masks {masks.shape} differ in size")
    body, person = renders.reshape(len(renders), -1) > 0, masks.reshape(len(masks), -1).astype(bool)
    inter, union = (body & person).sum(1), (body | person).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def summarise(values: np.ndarray) -> dict[str, float]:
    """mean, median, 90th percentile and max of per-image values (NaN-free)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)),
            "max": float(v.max())}
