"""The one light model every renderer shades with: Lambert ``colour * (ambient + diffuse * max(0, n.l))``
under a directional light given in the body frame (camera at +z), as PyTorch3D's ``HardPhongShader`` with
no specular term. No torch import: the float64 renderer (:mod:`genreid.render.exact`) uses it too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lighting:
    """``direction`` points from the body towards the light: (3,) for the one mesh of
    :func:`genreid.render.exact.render_person`, (B, 3) one per mesh for the torch renderers. ``ambient`` and
    ``diffuse`` are scalars, or (B,) / (B, 3) per mesh for the torch renderers. The defaults are the
    coloured-people renderer's (:func:`genreid.render.colour.render_people`)."""

    direction: Any
    ambient: Any = 0.45
    diffuse: Any = 0.6
