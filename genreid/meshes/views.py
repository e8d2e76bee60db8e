"""Structure renders of one batch of SMPL parameters at every requested yaw angle.

The 0-degree render uses the image camera as is, so it overlays the photo; the other angles
rotate the posed mesh about the vertical axis through the pelvis (the body centre) and keep
the same camera, so the person turns in place (docs/method.md#pipeline). All angles of a batch go
through the renderer in one call (B x angles meshes), which is what makes the GPU fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genreid.meshes.estimators import SmplParams


def posed_vertices(body_model, params: SmplParams, device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,V,3) vertices and (B,3) rotation centres (pelvis joint) in metres, y up."""
    betas = torch.as_tensor(params.betas, dtype=torch.float32, device=device)
    pose = torch.as_tensor(params.pose, dtype=torch.float32, device=device)
    with torch.no_grad():
        vertices, joints = body_model.forward(betas, pose)
    return vertices, joints[:, 0]


def render_views(body_model, params: SmplParams, angles: Sequence[int], height: int, width: int,
                 device: torch.device | str = "cpu") -> dict[int, np.ndarray]:
    """angle -> uint8 (B, H, W) grey renders on black, pixel-aligned with the image at angle 0."""
    from genreid.render.camera import rotate_about_vertical
    from genreid.render.structure import render_structure

    vertices, centre = posed_vertices(body_model, params, device)
    b = vertices.shape[0]
    cams = torch.as_tensor(params.cam, dtype=torch.float32, device=device)
    turned = [vertices if a == 0 else rotate_about_vertical(vertices, float(a), centre) for a in angles]
    faces = torch.as_tensor(body_model.faces).to(device=device, dtype=torch.int64)  # tensor or array
    with torch.no_grad():
        images = render_structure(torch.cat(turned, 0), faces, cams.repeat(len(angles), 1), height, width)
    images = torch.as_tensor(images).reshape(len(angles), b, height, width)
    out = images.cpu().numpy().astype(np.uint8, copy=False)
    return {int(a): out[j] for j, a in enumerate(angles)}
