"""Our foreground-only shading equals PyTorch3D's HardPhongShader (directional light, no specular)."""

from __future__ import annotations

import torch

from genreid.body import load_body_model
from genreid.render import framing_cam, make_cameras
from genreid.render.lighting import Lighting
from genreid.render.shading import shade_meshes


def test_shading_matches_pytorch3d_hard_phong():
    from pytorch3d.renderer import (
        BlendParams,
        DirectionalLights,
        HardPhongShader,
        Materials,
        MeshRasterizer,
        RasterizationSettings,
        TexturesVertex,
    )
    from pytorch3d.structures import Meshes

    body = load_body_model("procedural")
    gen = torch.Generator().manual_seed(1)
    verts, _ = body(torch.zeros(2, 10), 0.2 * torch.randn(2, 72, generator=gen))
    colours = torch.rand(2, body.num_vertices, 3, generator=gen)
    cams = framing_cam(verts, 0.9)
    light = torch.tensor([[0.3, 0.5, 1.0], [-0.6, 0.2, 0.7]])
    h, w = 48, 24
    rgb, alpha = shade_meshes(verts, body.faces, colours, cams, h, w,
                              Lighting(light, ambient=0.4, diffuse=torch.tensor([0.6, 0.5])))

    cameras = make_cameras(cams, h, w)
    meshes = Meshes(verts=list(verts), faces=[body.faces] * 2, textures=TexturesVertex(list(colours)))
    lights = DirectionalLights(direction=light, ambient_color=torch.full((2, 3), 0.4),
                               diffuse_color=torch.tensor([[0.6] * 3, [0.5] * 3]), specular_color=torch.zeros(2, 3))
    shader = HardPhongShader(cameras=cameras, lights=lights, materials=Materials(specular_color=((0, 0, 0),)),
                             blend_params=BlendParams(background_color=(0.0, 0.0, 0.0)))
    settings = RasterizationSettings(image_size=(h, w), faces_per_pixel=1, bin_size=0)
    fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    ref = shader(fragments, meshes)[..., :3].clamp(0, 1)
    both = (fragments.pix_to_face[..., 0] >= 0) & (alpha > 0)
    assert int(both.sum()) > 200
    diff = (ref - rgb)[both].abs()
    assert float(diff.quantile(0.99)) < 2e-3  # edge pixels may pick the neighbouring face
    assert torch.all(rgb[alpha == 0] == 0)
