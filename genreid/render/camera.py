"""THE camera convention shared by SynthReID and the mesh stage (oracle renders overlay exactly).

Weak perspective ``cam = (s, tx, ty)``. A body-frame point X (metres, y up, x to the image
right, z towards the camera; the frame ``BodyModel.forward`` returns, global orientation
included) lands in an image of H x W (H = 2W) at

    u = W/2 + (H/2) * s * (X_x + tx)        (column, continuous)
    v = H/2 - (H/2) * s * (X_y + ty)        (row, continuous, 0 at the top)

where pixel (row r, column c) covers [c, c+1) x [r, r+1), its centre is (c + 0.5, r + 0.5).
So ``s * (body height)`` = 2 means the body spans the full image height, whatever H is:
the same cam gives aligned renders at any resolution (render at 2x, then 2x2 average).

Implementation: a PyTorch3D ``FoVOrthographicCameras`` with R = diag(-1, 1, -1) (PyTorch3D
view space has +x to the left and +z into the screen; this is a proper rotation, so face
winding and normals stay outward), T = (-tx, ty, DEPTH) and ``scale_xyz`` = (k, k, 1) with
k = s * H / min(H, W), because PyTorch3D's NDC spans [-1, 1] on the shorter image side.
Depth along the view ray is ``DEPTH - X_z``; lights given in the body frame are lights in
camera space (the camera looks along -z of the body frame).
"""

from __future__ import annotations

import math

import torch

DEPTH = 10.0  # metres between the camera and the body-frame origin (orthographic: only ordering matters)


def make_cameras(cams: torch.Tensor, height: int, width: int):
    """PyTorch3D cameras for a batch of weak-perspective ``cams`` (B, 3) = (s, tx, ty)."""
    from pytorch3d.renderer import FoVOrthographicCameras

    cams = torch.as_tensor(cams, dtype=torch.float32)
    if cams.ndim != 2 or cams.shape[1] != 3:
        raise ValueError(f"cams must be (B, 3) = (s, tx, ty), got {tuple(cams.shape)}")
    b = cams.shape[0]
    k = cams[:, 0] * height / min(height, width)
    rot = torch.diag(torch.tensor([-1.0, 1.0, -1.0], device=cams.device)).expand(b, 3, 3)
    trans = torch.stack([-cams[:, 1], cams[:, 2], torch.full_like(k, DEPTH)], 1)
    scale = torch.stack([k, k, torch.ones_like(k)], 1)
    return FoVOrthographicCameras(R=rot, T=trans, scale_xyz=scale, znear=0.1, zfar=2 * DEPTH, device=cams.device)


def project_points(points: torch.Tensor, cams: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The convention above in closed form: (B, N, 3) body-frame points -> (B, N, 2) pixel (u, v)."""
    s, tx, ty = (cams[:, i, None] for i in range(3))
    u = width / 2 + (height / 2) * s * (points[..., 0] + tx)
    v = height / 2 - (height / 2) * s * (points[..., 1] + ty)
    return torch.stack([u, v], -1)


def framing_cam(vertices: torch.Tensor, fill: float = 0.9) -> torch.Tensor:
    """The cam that centres each body and makes it span ``fill`` of the image height."""
    lo, hi = vertices.amin(1), vertices.amax(1)
    s = 2.0 * fill / (hi[:, 1] - lo[:, 1])
    return torch.stack([s, -(lo[:, 0] + hi[:, 0]) / 2, -(lo[:, 1] + hi[:, 1]) / 2], 1)


def rotate_about_vertical(vertices: torch.Tensor, degrees: float | torch.Tensor,
                          centre: torch.Tensor) -> torch.Tensor:
    """Turn bodies about the vertical (y) axis through ``centre`` (B, 3) or (3,).

    Positive degrees turn counter-clockwise seen from above (right-hand rule about +y): at 90
    a body that faced the camera (+z) faces the image right (+x)."""
    deg = torch.as_tensor(degrees, dtype=vertices.dtype, device=vertices.device)
    rad = deg * (math.pi / 180.0)
    c, s = torch.cos(rad).reshape(-1, 1), torch.sin(rad).reshape(-1, 1)
    centre = torch.as_tensor(centre, dtype=vertices.dtype, device=vertices.device).reshape(-1, 1, 3)
    rel = vertices - centre
    x = c * rel[..., 0] + s * rel[..., 2]
    z = -s * rel[..., 0] + c * rel[..., 2]
    return torch.stack([x, rel[..., 1], z], -1) + centre
