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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.meshes.estimators import Estimator, SmplParams
from genreid.synth.ground_truth import GroundTruth


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


# ---------------------------------------------------------------- measuring estimators on a dataset
@dataclass
class Measured:
    """One estimator on one split: its parameters, 0-degree renders and the per-image scores."""

    estimator: str
    split: str
    params: SmplParams
    renders: np.ndarray  # (N, H, W) uint8 0-degree renders at the stored render size
    scores: pd.DataFrame  # one row per image (SCORE_COLUMNS)


SCORE_COLUMNS = ("estimator", "split", "path", "detected", "pa_mpjpe_mm", "yaw_error_deg", "silhouette_iou",
                 "true_yaw_deg", "yaw_deg")


def run_estimator(estimator: Estimator, paths: Sequence[Path], rel_paths: Sequence[str], body_model,
                  size: tuple[int, int], batch_size: int) -> tuple[SmplParams, np.ndarray]:
    """Parameters and 0-degree renders of every image, in chunks of ``batch_size``."""
    from genreid.meshes.views import render_views

    device = next((t.device for t in body_model.buffers()), torch.device("cpu"))
    parts, renders = [], []
    for start in range(0, len(paths), batch_size):
        part = estimator.estimate(paths[start:start + batch_size], rel_paths[start:start + batch_size])
        parts.append(part)
        renders.append(render_views(body_model, part, [0], size[0], size[1], device)[0])
    params = SmplParams(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("betas", "pose", "cam")),
                        detected=np.concatenate([p.found() for p in parts]))
    return params, np.concatenate(renders) if renders else np.zeros((0, *size), np.uint8)


def body_joints(body_model, betas: np.ndarray, pose: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """(N, 24, 3) float64 joints of SMPL parameters on the CPU."""
    device = next((t.device for t in body_model.buffers()), torch.device("cpu"))
    out = []
    with torch.no_grad():
        for s in range(0, len(betas), batch_size):
            _, joints = body_model.forward(torch.as_tensor(betas[s:s + batch_size], device=device).float(),
                                           torch.as_tensor(pose[s:s + batch_size], device=device).float())
            out.append(joints.double().cpu())
    return torch.cat(out) if out else torch.zeros(0, 24, 3, dtype=torch.float64)


def score(estimator: str, split: str, rel_paths: Sequence[str], params: SmplParams, renders: np.ndarray,
          truth: GroundTruth, bodies: tuple[Any, Any]) -> pd.DataFrame:
    """Per-image scores of ``params`` against the ground truth; ``bodies`` = (the estimate's body
    model, the body model the data were generated with)."""
    rows = truth.rows_of(rel_paths)
    estimated = body_joints(bodies[0], params.betas, params.pose)
    true = body_joints(bodies[1], truth.betas[rows], truth.pose[rows])
    true_yaw, yaw = yaw_of_pose(truth.pose[rows]), yaw_of_pose(params.pose)
    masks = truth.masks(rel_paths, renders.shape[1], renders.shape[2])
    return pd.DataFrame({
        "estimator": estimator, "split": split, "path": list(rel_paths),
        "detected": params.found()[:, 0].astype(bool),
        "pa_mpjpe_mm": (pa_mpjpe(estimated, true).numpy() * 1000.0).round(2),
        "yaw_error_deg": angle_difference(yaw, true_yaw).round(2),
        "silhouette_iou": silhouette_iou(renders, masks).round(4),
        "true_yaw_deg": true_yaw.round(1), "yaw_deg": yaw.round(1)})


def unscored(estimator: str, split: str, rel_paths: Sequence[str], params: SmplParams) -> pd.DataFrame:
    """Rows for images without ground truth: only whether a person was found."""
    nan = np.full(len(rel_paths), np.nan)
    return pd.DataFrame({"estimator": estimator, "split": split, "path": list(rel_paths),
                         "detected": params.found()[:, 0].astype(bool), "pa_mpjpe_mm": nan, "yaw_error_deg": nan,
                         "silhouette_iou": nan, "true_yaw_deg": nan, "yaw_deg": yaw_of_pose(params.pose).round(1)})


def aggregate(scores: pd.DataFrame) -> dict[str, Any]:
    """Summary of per-image scores (detection rate, then each metric over all images and over the
    images where a person was found)."""
    found = scores["detected"].to_numpy()
    out: dict[str, Any] = {"images": len(scores), "detection_rate": float(found.mean()) if len(found) else None}
    for column in ("pa_mpjpe_mm", "yaw_error_deg", "silhouette_iou"):
        values = scores[column].to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            continue
        out[column] = summarise(values)
        if 0 < found.sum() < len(found):
            out[f"{column}_detected"] = summarise(values[found])
    if len(scores) and not scores["yaw_error_deg"].isna().any():
        out["yaw_error_over_90"] = float((scores["yaw_error_deg"].to_numpy() > 90).mean())
    return out


WORST_TILE = (192, 96)  # (H, W) of a photo on the worst-cases sheet
CAPTION_HEIGHT = 26
ROW_LABEL_WIDTH = 86


def worst_cases_sheet(measured: Sequence[Measured], prepared_dir: str | Path, count: int = 8):
    """One row per estimator: its ``count`` images of largest joint error (after alignment), each the
    photo with the estimate's 0-degree render blended over it (green, magenta outline) and its scores."""
    from PIL import Image, ImageDraw

    from genreid.meshes.overlay import blend
    from genreid.meshes.stage import load_photos

    h, w = WORST_TILE
    rows = [m for m in measured if len(m.scores)]
    sheet = Image.new("RGB", (ROW_LABEL_WIDTH + count * w, max(1, len(rows)) * (h + CAPTION_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, m in enumerate(rows):
        y = r * (h + CAPTION_HEIGHT)
        error = m.scores["pa_mpjpe_mm"].to_numpy(dtype=np.float64)
        if np.isnan(error).all():  # no ground truth: the images where no person was found
            error = 1.0 - m.scores["detected"].to_numpy(dtype=np.float64)
        worst = np.argsort(-np.nan_to_num(error, nan=-np.inf), kind="stable")[:count]
        draw.text((4, y + h // 2 - 12), f"{m.estimator}\n{m.split}", fill=(0, 0, 0))
        photos = load_photos([Path(prepared_dir) / m.scores["path"].iloc[i] for i in worst], h, w)
        for c, (i, photo) in enumerate(zip(worst, photos)):
            x = ROW_LABEL_WIDTH + c * w
            sheet.paste(Image.fromarray(blend(photo, m.renders[i])), (x, y))
            row = m.scores.iloc[i]
            note = "" if row["detected"] else " fallback"
            if np.isnan(row["pa_mpjpe_mm"]):
                draw.text((x + 2, y + h + 1), "no ground truth" + note, fill=(0, 0, 0))
                continue
            draw.text((x + 2, y + h + 1), f"{row['pa_mpjpe_mm']:.0f} mm IoU {row['silhouette_iou']:.2f}",
                      fill=(0, 0, 0))
            draw.text((x + 2, y + h + 13), f"yaw err {row['yaw_error_deg']:.0f}{note}", fill=(0, 0, 0))
    return sheet
