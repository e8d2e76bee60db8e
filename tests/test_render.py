"""Camera convention, rasterizer and renderers: pixel positions checked numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genreid.body import load_body_model
from genreid.render import (
    framing_cam,
    make_cameras,
    project_points,
    render_people,
    render_structure,
    rotate_about_vertical,
)
from genreid.render.lighting import Lighting
from genreid.render.raster import BoxRasterizer


def _quad(x0: float, x1: float, y0: float, y1: float, z: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    verts = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return verts, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _expected_mask(verts: torch.Tensor, cam: torch.Tensor, h: int, w: int) -> np.ndarray:
    uv = project_points(verts[None], cam[None], h, w)[0]
    cols, rows = np.arange(w) + 0.5, np.arange(h) + 0.5
    inside_u = (cols > float(uv[:, 0].min())) & (cols < float(uv[:, 0].max()))
    inside_v = (rows > float(uv[:, 1].min())) & (rows < float(uv[:, 1].max()))
    return inside_v[:, None] & inside_u[None, :]


@pytest.mark.parametrize("h,cam", [(64, (1.1, 0.0, 0.0)), (64, (0.9, 0.13, -0.21)), (128, (1.3, -0.07, 0.3)),
                                   (32, (2.0, 0.05, 0.1))])
def test_structure_render_lands_where_the_convention_says(h: int, cam: tuple):
    w = h // 2
    verts, faces = _quad(-0.213, 0.171, -0.377, 0.262)
    cam_t = torch.tensor(cam)
    img = render_structure(verts[None], faces, cam_t[None], h, w)
    assert img.shape == (1, h, w) and img.dtype == torch.uint8
    expected = _expected_mask(verts, cam_t, h, w)
    assert expected.sum() > 20
    np.testing.assert_array_equal(img[0].numpy() > 0, expected)
    # and the formula itself: (0,0,0) -> u = W/2 + H/2*s*tx, v = H/2 - H/2*s*ty
    uv = project_points(torch.zeros(1, 1, 3), cam_t[None], h, w)[0, 0]
    assert float(uv[0]) == pytest.approx(w / 2 + h / 2 * cam[0] * cam[1])
    assert float(uv[1]) == pytest.approx(h / 2 - h / 2 * cam[0] * cam[2])


def test_supersampled_colour_render_is_aligned_with_the_convention():
    h, w = 64, 32
    verts, faces = _quad(-0.2, 0.15, -0.3, 0.25)
    cam = torch.tensor([[1.05, 0.031, -0.047]])
    rgb, alpha = render_people([verts], [faces], [torch.ones(4, 3)], cam, h, w,
                               Lighting(torch.tensor([[0.0, 0.0, 1.0]])), supersample=4)
    # 4x4 sub-pixel centres inside the quad, by the convention at 4x the resolution, averaged
    fine = torch.as_tensor(_expected_mask(verts, cam[0], 4 * h, 4 * w), dtype=torch.float32)
    expected = torch.nn.functional.avg_pool2d(fine[None, None], 4)[0, 0]
    a = alpha[0]
    torch.testing.assert_close(a, expected)
    assert 0 < float(((a > 0) & (a < 1)).float().sum()) < 2 * (h + w)  # anti-aliased border only
    assert torch.all(rgb[0][a == 0] == 0) and float(rgb[0][a == 1].min()) > 0.9


def test_box_rasterizer_matches_pytorch3d():
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    body = load_body_model("procedural")
    pose = 0.25 * torch.randn(2, 72, generator=torch.Generator().manual_seed(0))
    verts, _ = body(torch.zeros(2, 10), pose)
    h, w = 48, 24
    cams = make_cameras(framing_cam(verts, 0.9), h, w)
    meshes = Meshes(verts=list(verts), faces=[body.faces] * 2)
    settings = RasterizationSettings(image_size=(h, w), faces_per_pixel=1, bin_size=0)
    ref = MeshRasterizer(cameras=cams, raster_settings=settings)(meshes)
    ours = BoxRasterizer(cameras=cams, raster_settings=settings)(meshes)
    same = ref.pix_to_face == ours.pix_to_face
    assert float(same.float().mean()) > 0.998
    assert int(((ref.pix_to_face >= 0) != (ours.pix_to_face >= 0)).sum()) <= 2
    both = same & (ref.pix_to_face >= 0)
    assert float((ref.zbuf - ours.zbuf)[both].abs().max()) < 1e-2  # depth ~10 in float32
    assert float((ref.bary_coords - ours.bary_coords)[both[..., None].expand_as(ref.bary_coords)].abs().max()) < 5e-3


def test_rotate_about_vertical_turns_the_body_to_face_the_image_right():
    body = load_body_model("procedural")
    verts, joints = body(torch.zeros(1, 10), torch.zeros(1, 72))
    centre = joints[:, 0]
    turned = rotate_about_vertical(verts, 90.0, centre)
    torch.testing.assert_close(turned[..., 1], verts[..., 1])
    radius = lambda v: (v - centre[:, None])[..., [0, 2]].norm(dim=-1)
    torch.testing.assert_close(radius(turned), radius(verts))
    assert float(turned[0, :, 0].max() - centre[0, 0]) == pytest.approx(float(verts[0, :, 2].max() - centre[0, 2]),
                                                                         abs=1e-5)
    torch.testing.assert_close(rotate_about_vertical(verts, torch.tensor([360.0]), centre), verts, atol=1e-5,
                               rtol=0)
    # the same turn through the root's global orientation gives the same mesh
    pose = torch.zeros(1, 72)
    pose[0, 1] = math.pi / 2
    posed, _ = body(torch.zeros(1, 10), pose)
    torch.testing.assert_close(posed, turned, atol=1e-4, rtol=0)


def test_structure_render_of_a_body_is_lit_from_the_front():
    body = load_body_model("procedural")
    pose = torch.zeros(2, 72)
    pose[1, 1] = math.pi  # back to the camera
    verts, _ = body(torch.zeros(2, 10), pose)
    img = render_structure(verts, body.faces, framing_cam(verts, 0.9), 64, 32).float()
    fg = img > 0
    assert 0.1 < float(fg.float().mean()) < 0.5
    assert int(img[:, 0, :].max()) == 0 and int(img[:, -1, :].max()) == 0  # 0.9 fill: black margins
    # outward normals: a front light makes the body much brighter than ambient alone (54)
    assert float(img[fg].mean()) > 120
