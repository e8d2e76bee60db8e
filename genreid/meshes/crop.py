"""Person crops for HMR and the camera mapping from the crop back to the full image.

ReID images are already person crops, so the person box is the whole image: a square of
side ``rescale * max(H, W)`` (SPIN's 1.2 margin) centred on the image, padded with black.
A weak-perspective crop camera (s, tx, ty) with the genreid convention (y up)

    u_crop = c + c*s*(X_x + tx),   v_crop = c - c*s*(X_y + ty),   c = crop_size / 2

becomes the image camera of genreid/render/camera.py for an H x W image

    u = W/2 + (H/2)*s'*(X_x + tx'),   v = H/2 - (H/2)*s'*(X_y + ty')

with s' = s*side/H, tx' = tx + (cx - W/2)/(s*side/2), ty' = ty - (cy - H/2)/(s*side/2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def full_image_boxes(batch: int, height: int, width: int, rescale: float = 1.2,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 3) boxes (cx, cy, side) in pixels covering each whole H x W image with a margin."""
    box = torch.tensor([width / 2.0, height / 2.0, rescale * max(height, width)], device=device)
    return box.expand(batch, 3).clone()


def crop_square(images: torch.Tensor, boxes: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Resample the square box (cx, cy, side) of each (B,C,H,W) image to (B,C,size,size); outside is 0."""
    b, _, h, w = images.shape
    cx, cy, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1] (align_corners=False).
    theta[:, 0, 0] = side / w
    theta[:, 0, 2] = 2 * cx / w - 1
    theta[:, 1, 1] = side / h
    theta[:, 1, 2] = 2 * cy / h - 1
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_cam_to_image_cam(cam: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Map y-up crop cameras (B,3) of the boxes to cameras of the full H x W image (formula above)."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    cx, cy, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    half_scale = s * side / 2
    half_scale = torch.where(half_scale.abs() < 1e-9, torch.full_like(half_scale, 1e-9), half_scale)
    return torch.stack([s * side / height,
                        tx + (cx - width / 2) / half_scale,
                        ty - (cy - height / 2) / half_scale], dim=1)


def project_weak_perspective(points: torch.Tensor, cam: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B,N,3) body points -> (B,N,2) pixel (u, v) under genreid's camera convention (for checks)."""
    s, tx, ty = cam[:, 0, None], cam[:, 1, None], cam[:, 2, None]
    u = width / 2 + (height / 2) * s * (points[..., 0] + tx)
    v = height / 2 - (height / 2) * s * (points[..., 1] + ty)
    return torch.stack([u, v], dim=-1)
