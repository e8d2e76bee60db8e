"""Bags: boxes rigidly attached to one joint (backpack to spine3, side bag to the pelvis).

They are part of the photo, not of the body model: the mesh stage's structure renders (and
an HMR estimate) show the body without the bag, as with real photographs.
"""

from __future__ import annotations

import numpy as np

from genreid.utils import exactmath


def box_mesh(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(8,3) corners and (12,3) faces wound counter-clockwise seen from outside."""
    corners = np.array([[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1], hi[2] if i & 4 else lo[2]]
                        for i in range(8)])
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    faces = []
    centre = corners.mean(0)
    for a, b, c, d in quads:
        for tri in ((a, b, c), (a, c, d)):
            p = corners[list(tri)]
            if exactmath.dot3(np.cross(p[1] - p[0], p[2] - p[0]), p.mean(0) - centre) < 0:
                tri = tri[::-1]
            faces.append(tri)
    return corners, np.array(faces, dtype=np.int64)


def bag_box(kind: str, rest_verts: np.ndarray, rest_joints: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """Rest-pose corners of a bag for one shaped body, and the joint it hangs on."""
    if kind == "backpack":
        j9, j3 = rest_joints[9], rest_joints[3]
        near = (rest_verts[:, 1] > j3[1]) & (rest_verts[:, 1] < j9[1] + 0.1) & (np.abs(rest_verts[:, 0]) < 0.12)
        back = rest_verts[near, 2].min()
        lo = np.array([-0.13, j3[1] - 0.02, back - 0.12])
        hi = np.array([0.13, j9[1] + 0.10, back + 0.01])
        return box_mesh(lo, hi)[0], 9
    j0 = rest_joints[0]
    hips = (np.abs(rest_verts[:, 1] - j0[1]) < 0.1) & (np.abs(rest_verts[:, 0]) < 0.3)
    x = np.abs(rest_verts[hips, 0]).max() + 0.005
    lo = np.array([x, j0[1] - 0.26, -0.10])
    hi = np.array([x + 0.07, j0[1] - 0.02, 0.10])
    if side < 0:
        lo, hi = np.array([-hi[0], lo[1], lo[2]]), np.array([-lo[0], hi[1], hi[2]])
    return box_mesh(lo, hi)[0], 0


def attach(corners: np.ndarray, joint: int, rest_joints: np.ndarray, posed_joints: np.ndarray,
           rotations: np.ndarray) -> np.ndarray:
    """Move rest-pose corners rigidly with ``joint``: R_j (p - J_rest) + J_posed (``rotations``: (24,3,3))."""
    rel = np.asarray(corners, np.float64) - rest_joints[joint]
    return exactmath.matvec(rotations[joint][None], rel) + posed_joints[joint]
