"""Grey structure renders for the mesh stage: one channel, plain black background.

Uniform grey body, one light a little above, left of and in front of the camera plus ambient, so
limbs in front of the torso still read; the same camera convention as the SynthReID images
(:mod:`genreid.render.camera`), so the 0-degree render overlays its image pixel for pixel.
"""

from __future__ import annotations

import torch

from genreid.render.lighting import Lighting
from genreid.render.shading import shade_meshes

GREY = 0.85
LIGHT = (-0.35, 0.45, 1.0)  # body frame, towards the light
AMBIENT, DIFFUSE = 0.25, 0.75


@torch.no_grad()
def render_structure(vertices: torch.Tensor, faces: torch.Tensor, cams: torch.Tensor, height: int,
                     width: int, supersample: int = 1) -> torch.Tensor:
    """``uint8 (B,H,W)`` grey-shaded renders of posed bodies ``vertices`` (B,V,3), ``faces`` (F,3).

    ``supersample=1`` (default) gives hard silhouettes that match the image masks exactly."""
    b = vertices.shape[0]
    dev = vertices.device
    colours = torch.full_like(vertices, GREY)
    light = Lighting(torch.tensor(LIGHT, device=dev).expand(b, 3), ambient=AMBIENT, diffuse=DIFFUSE)
    rgb, _ = shade_meshes(vertices, faces.to(dev), colours, cams, height, width, light, supersample=supersample)
    return (rgb[..., 0] * 255.0).round().clamp(0, 255).to(torch.uint8)
