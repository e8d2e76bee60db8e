"""Coloured people for SynthReID: vertex-coloured meshes, one light per image, anti-aliased."""

from __future__ import annotations

import torch

from genreid.render.lighting import Lighting
from genreid.render.shading import shade_meshes


@torch.no_grad()
def render_people(vertices: list[torch.Tensor], faces: list[torch.Tensor], colours: list[torch.Tensor],
                  cams: torch.Tensor, height: int, width: int, light: Lighting,
                  supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rgb (B,H,W,3), alpha (B,H,W))`` in [0,1], rgb premultiplied; meshes may differ in size
    (a person with a bag has extra vertices). ``light.direction`` is (B,3), one light per image.
    Rendered at ``supersample`` x then averaged, so edges are anti-aliased; the camera convention
    keeps it aligned with structure renders."""
    return shade_meshes(vertices, faces, colours, cams, height, width, light, supersample=supersample)


def composite(background: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Premultiplied ``rgb`` over ``background`` (B,H,W,3)."""
    return rgb + background * (1.0 - alpha[..., None])
