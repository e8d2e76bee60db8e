"""SynthReID's people renderer in numpy: the same pixels on every machine.

The torch/PyTorch3D renderer (:mod:`genreid.render.colour`) gives last-bit differences between
CPUs (its kernels follow the instruction set and thread count), and one such bit can flip a
pixel. This renderer decides coverage with integers and computes everything else in float64
with IEEE basic operations in a fixed order (:mod:`genreid.utils.exactmath`):

* vertices are projected with the camera convention of :mod:`genreid.render.camera` and snapped
  to a fixed-point grid of 1/256 pixel (as GPUs do); a pixel centre is inside a triangle when
  its three integer edge functions have the triangle's sign (edges count as inside);
* barycentric weights are integer ratios, depth is their weighted sum; the nearest surface
  wins and exact ties go to the lowest face index;
* shading is Lambert with interpolated vertex normals and colours (as the torch path), at
  ``supersample`` x the size, then box-averaged in a fixed order.
"""

from __future__ import annotations

import numpy as np

from genreid.render.lighting import Lighting
from genreid.utils import exactmath

SUBPIXEL = 256  # fixed-point steps per pixel
_COORD_LIMIT = 1 << 24  # clamp snapped coordinates so every edge-function product fits in int64


def _edge(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray,
          cy: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangle (a, b, c), exact in int64."""
    return (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)


def project(vertices: np.ndarray, cam: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point pixel coordinates (V,) x, y (int64, 1/SUBPIXEL pixel) of body-frame ``vertices``."""
    s, tx, ty = (float(c) for c in cam)
    u = width / 2 + (height / 2 * s) * (vertices[:, 0] + tx)
    v = height / 2 - (height / 2 * s) * (vertices[:, 1] + ty)
    fx = np.clip(np.rint(u * SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT).astype(np.int64)
    fy = np.clip(np.rint(v * SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT).astype(np.int64)
    return fx, fy


def rasterize(vertices: np.ndarray, faces: np.ndarray, cam: np.ndarray, height: int,
              width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible face per covered pixel: ``(pixel index r*width+c, face, barycentrics (n,3))``."""
    fx, fy = project(vertices, cam, height, width)
    x, y = fx[faces], fy[faces]  # (F, 3)
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    half = SUBPIXEL // 2
    # pixel c's centre is at c * SUBPIXEL + half: columns whose centre lies within the face's box
    c0 = np.maximum(-((half - x.min(1)) // SUBPIXEL), 0)
    c1 = np.minimum((x.max(1) - half) // SUBPIXEL, width - 1)
    r0 = np.maximum(-((half - y.min(1)) // SUBPIXEL), 0)
    r1 = np.minimum((y.max(1) - half) // SUBPIXEL, height - 1)
    ncol = np.maximum(c1 - c0 + 1, 0)
    count = np.where(area != 0, ncol * np.maximum(r1 - r0 + 1, 0), 0)
    face = np.repeat(np.arange(len(faces)), count)
    offset = np.arange(len(face)) - np.repeat(np.cumsum(count) - count, count)
    row = r0[face] + offset // ncol[face]
    col = c0[face] + offset % ncol[face]
    px, py = col * SUBPIXEL + half, row * SUBPIXEL + half
    xf, yf = x[face], y[face]
    e0 = _edge(px, py, xf[:, 1], yf[:, 1], xf[:, 2], yf[:, 2])
    e1 = _edge(xf[:, 0], yf[:, 0], px, py, xf[:, 2], yf[:, 2])
    e2 = _edge(xf[:, 0], yf[:, 0], xf[:, 1], yf[:, 1], px, py)
    sign = np.sign(area)[face]
    inside = (e0 * sign >= 0) & (e1 * sign >= 0) & (e2 * sign >= 0)
    face, row, col = face[inside], row[inside], col[inside]
    a = area[face].astype(np.float64)
    bary = np.stack([e0[inside] / a, e1[inside] / a, e2[inside] / a], 1)
    z = vertices[:, 2][faces[face]]
    depth = bary[:, 0] * z[:, 0] + bary[:, 1] * z[:, 1] + bary[:, 2] * z[:, 2]  # larger z: nearer the camera
    pixel = row * width + col
    keep = _nearest_per_pixel(pixel, depth, height * width)
    return pixel[keep], face[keep], bary[keep]


def _nearest_per_pixel(pixel: np.ndarray, depth: np.ndarray, num_pixels: int) -> np.ndarray:
    """Indices of the winning candidate of every covered pixel: the largest depth, and among
    exact ties the earliest candidate (candidates come in ascending face order)."""
    key = pixel.astype(np.uint16) if num_pixels <= 1 << 16 else pixel  # 16-bit keys: numpy's radix sort
    order = np.argsort(key, kind="stable")
    pixel, depth = pixel[order], depth[order]
    start = np.flatnonzero(np.diff(pixel, prepend=-1))
    size = np.diff(start, append=len(pixel))
    best = np.repeat(np.maximum.reduceat(depth, start), size)
    winner = np.flatnonzero(depth == best)  # ascending: per pixel, the earliest of its ties first
    group = np.repeat(np.arange(len(start)), size)[winner]
    first = np.ones(len(winner), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    return order[winner[first]]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals: the sum of adjacent faces' area-weighted normals, accumulated in face order."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    a, b = v1 - v0, v2 - v0
    face_normal = np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], 1)
    corner = faces.reshape(-1)
    summed = np.stack([np.bincount(corner, weights=np.repeat(face_normal[:, c], 3), minlength=len(vertices))
                       for c in range(3)], 1)
    return exactmath.normalize(summed, eps=1e-6)


def render_person(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, cam: np.ndarray, height: int,
                  width: int, light: Lighting, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (H,W,3) premultiplied, alpha (H,W))`` float64 of one vertex-coloured mesh.

    Lambert shading ``colour * (ambient + diffuse * max(0, n.l))`` with ``light.direction`` (3,) in the
    body frame (camera at +z) and scalar ``light.ambient`` / ``light.diffuse``, at ``supersample`` x then
    box-averaged; alpha is the covered fraction of the sub-pixels (a multiple of 1/supersample^2)."""
    vertices, colours = np.asarray(vertices, np.float64), np.asarray(colours, np.float64)
    faces = np.asarray(faces, np.int64)
    hh, ww = height * supersample, width * supersample
    pixel, face, bary = rasterize(vertices, faces, cam, hh, ww)
    tri = faces[face]
    normals = vertex_normals(vertices, faces)

    def interpolate(values: np.ndarray) -> np.ndarray:
        v = values[tri]  # (n, 3 corners, 3)
        return bary[:, 0, None] * v[:, 0] + bary[:, 1, None] * v[:, 1] + bary[:, 2, None] * v[:, 2]

    normal = exactmath.normalize(interpolate(normals), eps=1e-6)
    towards = exactmath.normalize(np.asarray(light.direction, np.float64), eps=1e-6)
    lambert = np.maximum(exactmath.dot3(normal, towards[None]), 0.0)
    shaded = np.clip(interpolate(colours) * (light.ambient + light.diffuse * lambert)[:, None], 0.0, 1.0)
    rgb = np.zeros((hh * ww, 3))
    rgb[pixel] = shaded
    cover = np.zeros(hh * ww)
    cover[pixel] = 1.0
    return box_average(rgb.reshape(hh, ww, 3), supersample), box_average(cover.reshape(hh, ww), supersample)


def box_average(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks, summed row by row in a fixed order."""
    if factor == 1:
        return image
    acc = None
    for dy in range(factor):
        for dx in range(factor):
            part = image[dy::factor, dx::factor]
            acc = part.copy() if acc is None else acc + part
    return acc / (factor * factor)
