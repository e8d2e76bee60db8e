"""Rasterization that fills PyTorch3D ``Fragments``, fast on CPU.

PyTorch3D's CPU rasterizer is its naive per-pixel loop over every face (coarse binning is
not implemented on CPU): about 9 s for one 256x128 image of a 20k-face mesh on this machine,
far too slow for a benchmark generator. :class:`BoxRasterizer` visits only the pixel centres
inside each face's bounding box, vectorised over the batch, resolves depth with scatter-min
and breaks ties by the lowest face index, so the result is deterministic. It uses the same
camera transform and NDC/pixel convention as PyTorch3D's ``MeshRasterizer`` (it calls its
``transform``), so both produce the same fragments up to pixels exactly on an edge; shading
stays with PyTorch3D's shaders. On CUDA, :func:`make_rasterizer` returns PyTorch3D's own.
"""

from __future__ import annotations

import torch


def rasterize_ndc(verts: torch.Tensor, faces: torch.Tensor, face_to_mesh: torch.Tensor, num_meshes: int,
                  height: int, width: int, max_pairs: int = 4_000_000):
    """Closest face per pixel for packed NDC vertices (x, y, view z) and packed faces.

    Returns PyTorch3D-style ``pix_to_face`` (N,H,W,1), ``zbuf``, ``bary_coords`` (N,H,W,1,3)
    and ``dists`` (unused by hard shading, -1); background is -1 everywhere."""
    dev = verts.device
    half = min(height, width) / 2.0
    # PyTorch3D: NDC x grows to the left, y up; pixel centres at (c + 0.5, r + 0.5)
    px = width / 2.0 - verts[:, 0] * half
    py = height / 2.0 - verts[:, 1] * half
    tri_x, tri_y, tri_z = px[faces], py[faces], verts[:, 2][faces]
    c0 = torch.ceil(tri_x.amin(1) - 0.5).clamp(min=0).long()
    c1 = torch.floor(tri_x.amax(1) - 0.5).clamp(max=width - 1).long()
    r0 = torch.ceil(tri_y.amin(1) - 0.5).clamp(min=0).long()
    r1 = torch.floor(tri_y.amax(1) - 0.5).clamp(max=height - 1).long()
    area = (tri_x[:, 1] - tri_x[:, 0]) * (tri_y[:, 2] - tri_y[:, 0]) - \
        (tri_x[:, 2] - tri_x[:, 0]) * (tri_y[:, 1] - tri_y[:, 0])
    ncol, nrow = (c1 - c0 + 1).clamp(min=0), (r1 - r0 + 1).clamp(min=0)
    count = torch.where(area.abs() > 1e-12, ncol * nrow, torch.zeros_like(ncol))
    # barycentrics and depth are affine in (x, y): per face, w_i = a_i x + b_i y + c_i
    inv = 1.0 / torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
    # in coordinates local to each face's box (small numbers keep float32 exact enough)
    lx, ly = tri_x - c0[:, None].to(verts.dtype), tri_y - r0[:, None].to(verts.dtype)
    coef = []
    for i, j in ((1, 2), (2, 0)):
        a = (ly[:, i] - ly[:, j]) * inv
        bb = (lx[:, j] - lx[:, i]) * inv
        c = (lx[:, i] * ly[:, j] - lx[:, j] * ly[:, i]) * inv
        coef += [a, bb, c]
    coef = torch.stack(coef + [c0.to(verts.dtype), r0.to(verts.dtype), ncol.to(verts.dtype)], 1)
    npix = num_meshes * height * width
    best_z = torch.full((npix,), float("inf"), device=dev)
    best_f = torch.full((npix,), -1, dtype=torch.long, device=dev)
    out_bary = torch.full((npix, 3), -1.0, device=dev)
    base_key = face_to_mesh * (height * width)
    # process faces in groups so the (face, pixel) pair list stays bounded in memory
    ends = torch.cumsum(count, 0)
    start_face = 0
    while start_face < len(faces):
        limit = (ends[start_face - 1] if start_face else 0) + max_pairs
        stop = max(int(torch.searchsorted(ends, limit, right=True)), start_face + 1)
        f = torch.arange(start_face, min(stop, len(faces)), device=dev)
        start_face = int(f[-1]) + 1
        f = f[count[f] > 0]
        if len(f) == 0:
            continue
        n = count[f]
        pf = torch.repeat_interleave(f, n)
        cf = coef[pf]
        offs = (torch.arange(int(n.sum()), device=dev) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n))
        offs = offs.to(verts.dtype)
        row_off = torch.div(offs, cf[:, 8], rounding_mode="floor")
        x = offs - row_off * cf[:, 8] + 0.5
        y = row_off + 0.5
        w0 = cf[:, 0] * x + cf[:, 1] * y + cf[:, 2]
        w1 = cf[:, 3] * x + cf[:, 4] * y + cf[:, 5]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        idx = inside.nonzero().squeeze(1)
        pf, cf = pf[idx], cf[idx]
        bary = torch.stack([w0[idx], w1[idx], w2[idx]], 1)
        z = (bary * tri_z[pf]).sum(1)
        key = base_key[pf] + (cf[:, 7] + y[idx] - 0.5).long() * width + (cf[:, 6] + x[idx] - 0.5).long()
        # depth test against everything seen so far; ties go to the lowest face index (earlier
        # groups hold lower indices, so a tie with them keeps theirs)
        before = best_z[key]
        best_z.scatter_reduce_(0, key, z, reduce="amin")
        win = (z <= best_z[key]) & (z < before)
        cand = torch.full((npix,), torch.iinfo(torch.long).max, dtype=torch.long, device=dev)
        cand.scatter_reduce_(0, key[win], pf[win], reduce="amin")
        sel = win & (pf == cand[key])
        changed = key[sel]
        best_f[changed] = pf[sel]
        out_bary[changed] = bary[sel]
    hit = best_f >= 0
    zbuf = torch.where(hit, best_z, torch.full_like(best_z, -1.0))
    shape = (num_meshes, height, width, 1)
    dists = torch.where(hit, torch.zeros_like(zbuf), torch.full_like(zbuf, -1.0))
    return best_f.view(shape), zbuf.view(shape), out_bary.view(*shape, 3), dists.view(shape)


class BoxRasterizer(torch.nn.Module):
    """Drop-in for ``MeshRasterizer`` (hard, one face per pixel, no culling)."""

    def __init__(self, cameras=None, raster_settings=None):
        super().__init__()
        from pytorch3d.renderer import MeshRasterizer

        self._p3d = MeshRasterizer(cameras=cameras, raster_settings=raster_settings)
        self.cameras = cameras
        self.raster_settings = self._p3d.raster_settings

    def forward(self, meshes_world, **kwargs):
        from pytorch3d.renderer.mesh.rasterizer import Fragments

        meshes = self._p3d.transform(meshes_world, **kwargs)
        size = kwargs.get("raster_settings", self.raster_settings).image_size
        h, w = (size, size) if isinstance(size, int) else size
        p2f, zbuf, bary, dists = rasterize_ndc(meshes.verts_packed(), meshes.faces_packed(),
                                               meshes.faces_packed_to_mesh_idx(), len(meshes), h, w)
        return Fragments(pix_to_face=p2f, zbuf=zbuf, bary_coords=bary, dists=dists)


def make_rasterizer(height: int, width: int, device: torch.device | str = "cpu", cameras=None):
    """PyTorch3D's rasterizer on CUDA, :class:`BoxRasterizer` on CPU; hard, one face per pixel."""
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings

    settings = RasterizationSettings(image_size=(height, width), blur_radius=0.0, faces_per_pixel=1,
                                     cull_backfaces=False)
    if torch.device(device).type == "cuda":
        return MeshRasterizer(cameras=cameras, raster_settings=settings)
    return BoxRasterizer(cameras=cameras, raster_settings=settings)
