"""Rasterize + Lambert shading for batches of posed bodies (shared by both renderers).

The shading is PyTorch3D's ``HardPhongShader`` with directional light and no specular term
(per-pixel interpolated vertex normals and colours, ``colour * (ambient + diffuse * max(0, n.l))``),
evaluated on foreground pixels only: PyTorch3D's shader evaluates every pixel of the batch,
which costs several times the rasterization on CPU. ``tests/test_render_shading.py`` checks
the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genreid.render.camera import make_cameras
from genreid.render.lighting import Lighting
from genreid.render.raster import make_rasterizer


def shade_meshes(vertices: list[torch.Tensor] | torch.Tensor, faces: list[torch.Tensor] | torch.Tensor,
                 colours: list[torch.Tensor] | torch.Tensor, cams: torch.Tensor, height: int, width: int,
                 light: Lighting, supersample: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambert-shaded vertex-coloured meshes: ``(rgb (B,H,W,3) in [0,1], alpha (B,H,W))``.

    ``light.direction`` (B,3) points from the body towards the light, in the body frame (camera at
    +z). ``light.ambient``/``light.diffuse`` are scalars, (B,) or (B,3). ``supersample`` > 1 renders at
    that multiple and box-averages (anti-aliasing; the camera convention is resolution-free,
    so alignment is kept). ``rgb`` is premultiplied by ``alpha`` (background black)."""
    from pytorch3d.structures import Meshes

    verts = list(vertices)
    b = len(verts)
    dev = verts[0].device
    faces = list(faces) if isinstance(faces, list) else [faces] * b
    meshes = Meshes(verts=verts, faces=faces)
    hh, ww = height * supersample, width * supersample
    fragments = make_rasterizer(hh, ww, dev, make_cameras(cams.to(dev), hh, ww))(meshes)
    p2f = fragments.pix_to_face[..., 0].reshape(-1)
    fg = (p2f >= 0).nonzero().squeeze(1)
    face = p2f[fg]
    bary = fragments.bary_coords[..., 0, :].reshape(-1, 3)[fg]
    tri = meshes.faces_packed()[face]  # (n, 3) packed vertex ids
    normal = F.normalize((bary[..., None] * meshes.verts_normals_packed()[tri]).sum(1), dim=-1, eps=1e-6)
    colour = (bary[..., None] * torch.cat(list(colours)).to(dev).float()[tri]).sum(1)
    mesh_of = meshes.faces_packed_to_mesh_idx()[face]
    towards = F.normalize(light.direction.to(dev).float(), dim=-1, eps=1e-6)[mesh_of]
    amb = _per_mesh(light.ambient, b, dev)[mesh_of]
    dif = _per_mesh(light.diffuse, b, dev)[mesh_of]
    lambert = (normal * towards).sum(-1, keepdim=True).clamp(min=0)
    rgb = torch.zeros(b * hh * ww, 3, device=dev)
    rgb[fg] = (colour * (amb + dif * lambert)).clamp(0, 1)
    alpha = torch.zeros(b * hh * ww, device=dev)
    alpha[fg] = 1.0
    rgb, alpha = rgb.view(b, hh, ww, 3), alpha.view(b, hh, ww)
    if supersample > 1:
        rgb = F.avg_pool2d(rgb.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1)
        alpha = F.avg_pool2d(alpha[:, None], supersample)[:, 0]
    return rgb, alpha


def _per_mesh(value: torch.Tensor | float, b: int, dev: torch.device) -> torch.Tensor:
    """A scalar, (B,) or (B,3) light strength as (B,3)."""
    t = torch.as_tensor(value, dtype=torch.float32, device=dev)
    if t.ndim == 0:
        return t.expand(b, 3)
    return t.reshape(b, -1).expand(b, 3)
