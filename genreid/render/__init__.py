"""PyTorch3D renderers: coloured people (SynthReID) and grey structure renders (meshes stage),
both through the one camera convention of :mod:`genreid.render.camera`."""

from genreid.render.camera import framing_cam, make_cameras, project_points, rotate_about_vertical
from genreid.render.colour import composite, render_people
from genreid.render.lighting import Lighting
from genreid.render.structure import render_structure

__all__ = ["Lighting", "composite", "framing_cam", "make_cameras", "project_points", "render_people",
           "render_structure", "rotate_about_vertical"]
