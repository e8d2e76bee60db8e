"""A procedural stand-in for the licensed SMPL file, in the same data format.

The body is a handful of primitives (tubes with elliptic rings for torso, limbs and neck,
ellipsoids for head and hands, tubes along +z for feet) in SMPL's T-pose and joint order, so
SMPL pose vectors (axis-angle per joint, 24 joints, SMPL kinematic tree) mean the same thing
on both models and ``smplx`` does the skinning for both. Joints are regressed as the mean of
one ring of vertices (the centroid of a ring is its centre), so they follow the shape
directions exactly. The 10 shape directions are central differences of the builder with
respect to named proportions (height, girth, leg length, shoulder width, ...), scaled so that
``betas ~ N(0, 1)`` gives plausible adults, as with SMPL.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from genreid.utils import exactmath

NUM_JOINTS = 24
NUM_BETAS = 10
# SMPL joint order and kinematic tree (parent of each joint; the root's parent is -1).
JOINT_NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
               "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
               "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
               "left_wrist", "right_wrist", "left_hand", "right_hand")
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# (proportion, change per unit beta): beta k moves proportion k by this much.
SHAPE_DIRECTIONS = (("stature", 0.045), ("girth", 0.10), ("leg", 0.05), ("shoulder", 0.07), ("hip", 0.07),
                    ("belly", 0.025), ("arm", 0.05), ("limb", 0.10), ("head", 0.05), ("torso", 0.05))
# Torso profile in torso units: height, half-width (x), half-depth (z), centre z.
_TORSO = np.array([[-0.17, 0.125, 0.090, -0.005], [-0.10, 0.165, 0.105, -0.010], [-0.02, 0.165, 0.105, 0.0],
                   [0.06, 0.150, 0.100, 0.005], [0.12, 0.140, 0.100, 0.010], [0.20, 0.150, 0.108, 0.010],
                   [0.28, 0.162, 0.112, 0.005], [0.36, 0.172, 0.105, -0.005], [0.42, 0.160, 0.090, -0.010],
                   [0.46, 0.110, 0.070, -0.010], [0.49, 0.065, 0.055, -0.005]])
_SPINE_LEVELS = {0: 0.0, 3: 0.10, 6: 0.22, 9: 0.30}
# A dressed adult is bulkier than SMPL's bare template: torso width, depth, limb radius factors.
_CLOTHED = (1.12, 1.10, 1.2)


@dataclass(frozen=True)
class Proportions:
    """Multiplicative factors (1 = average adult) plus ``belly`` in metres of extra depth."""

    stature: float = 1.0
    girth: float = 1.0
    leg: float = 1.0
    shoulder: float = 1.0
    hip: float = 1.0
    belly: float = 0.0
    arm: float = 1.0
    limb: float = 1.0
    head: float = 1.0
    torso: float = 1.0


@dataclass
class _Builder:
    verts: list = field(default_factory=list)
    faces: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    regress: dict = field(default_factory=dict)
    count: int = 0

    def tube(self, centres, axes, r1, r2, weights, n: int, cap0=None, cap1=None) -> int:
        """Rings around ``centres`` (K,3) along axis ``d``, ``axes = (d, u1)`` with ``u1`` the ring's first
        in-plane direction (radius ``r1``; ``r2`` along ``u2``); returns the first vertex index.

        ``u2 = d x u1`` makes every face wind counter-clockwise seen from outside (outward
        normals); caps close the ends at the given points."""
        centres, r1, r2 = np.asarray(centres, float), np.asarray(r1, float), np.asarray(r2, float)
        d, u1 = (np.asarray(a, float) for a in axes)
        u2 = np.cross(d, u1)
        k = len(centres)
        theta = 2 * np.pi * np.arange(n) / n
        sin_t, cos_t = exactmath.sincos(theta)
        ring = (centres[:, None, :] + r1[:, None, None] * cos_t[None, :, None] * u1
                + r2[:, None, None] * sin_t[None, :, None] * u2)
        base = self.count
        self.verts.append(ring.reshape(-1, 3))
        self.weights.append(np.repeat(np.asarray(weights, float), n, axis=0))
        i = np.arange(n)
        j = (i + 1) % n
        for r in range(k - 1):
            a, b = base + r * n + i, base + r * n + j
            c, e = base + (r + 1) * n + j, base + (r + 1) * n + i
            self.faces += [np.stack([a, b, c], 1), np.stack([a, c, e], 1)]
        self.count += k * n
        for cap, r, flip in ((cap0, 0, True), (cap1, k - 1, False)):
            if cap is None:
                continue
            centre = self.count
            self.verts.append(np.asarray(cap, float)[None])
            self.weights.append(np.asarray(weights, float)[r][None])
            a, b = base + r * n + i, base + r * n + j
            tri = np.stack([np.full(n, centre), b, a] if flip else [np.full(n, centre), a, b], 1)
            self.faces.append(tri)
            self.count += 1
        return base

    def ring_ids(self, base: int, ring: int, n: int) -> np.ndarray:
        return base + ring * n + np.arange(n)


def _onehot(j: int) -> np.ndarray:
    w = np.zeros(NUM_JOINTS)
    w[j] = 1.0
    return w


def _blend(pos: np.ndarray, cuts: list[tuple[float, int]], first: int, width: float) -> np.ndarray:
    """Weights along a chain: joint ``first`` up to the first cut, then each cut's joint,
    blended linearly over ``width`` around every cut (smooth bending at joints)."""
    w = np.zeros((len(pos), NUM_JOINTS))
    w[:, first] = 1.0
    for at, joint in cuts:
        t = np.clip((pos - (at - width)) / (2 * width), 0.0, 1.0)[:, None]
        w = w * (1 - t) + t * _onehot(joint)[None]
    return w


def _levels(lo: float, hi: float, n: int, must: list[float]) -> np.ndarray:
    return np.unique(np.concatenate([np.linspace(lo, hi, n), must]).round(6))


def _build(p: Proportions):
    """Vertices, faces, skinning weights and joint rings for one set of proportions.

    The topology (vertex order, faces, rings) does not depend on ``p``."""
    b = _Builder()
    tu, hip_x, sh_x = 0.96 * p.torso, 0.085 * p.hip, 0.175 * p.shoulder
    # torso: vertical tube, joints pelvis/spine1/spine2/spine3 on rings
    lv = _levels(-0.17, 0.49, 34, list(_SPINE_LEVELS.values()))
    prof = np.stack([np.interp(lv, _TORSO[:, 0], _TORSO[:, c]) for c in (1, 2, 3)], 1)
    wide = np.interp(lv, [-0.17, 0.06, 0.20, 0.42], [p.hip, p.hip, 1.0, 1.0]) * \
        np.interp(lv, [0.06, 0.24, 0.49], [1.0, p.shoulder, p.shoulder])
    half_w, half_d = prof[:, 0] * wide * p.girth * _CLOTHED[0], prof[:, 1] * p.girth * _CLOTHED[1]
    bump = p.belly * exactmath.exp(-((lv - 0.08) / 0.09) ** 2)
    half_d, cz = half_d + bump / 2, prof[:, 2] + bump / 2
    y = lv * tu
    cen = np.stack([np.zeros_like(y), y, cz], 1)
    tw = _blend(y, [(0.05 * tu, 3), (0.16 * tu, 6), (0.26 * tu, 9)], 0, 0.04)
    n_t = 32
    t0 = b.tube(cen, ([0, 1, 0], [0, 0, 1]), half_d, half_w, tw, n_t, cap0=cen[0] - [0, 0.01, 0],
                cap1=cen[-1] + [0, 0.005, 0])
    for j, level in _SPINE_LEVELS.items():
        b.regress[j] = b.ring_ids(t0, int(np.argmin(abs(lv - level))), n_t)
    torso_ids = np.arange(t0, b.count)
    neck_y, sh_y = 0.47 * tu, 0.43 * tu
    # legs: hip (top) -> knee -> ankle, then feet along +z
    hip_y = -0.07 * tu
    knee_y, ankle_y = hip_y - 0.42 * p.leg, hip_y - 0.82 * p.leg
    sole = ankle_y - 0.075
    for side, hipj, knee, ankle, foot in ((1, 1, 4, 7, 10), (-1, 2, 5, 8, 11)):
        s = np.concatenate([np.linspace(0, 1, 4)[:-1], 1 + np.linspace(0, 1, 15)[:-1],
                            2 + np.linspace(0, 1, 15), 3 + np.linspace(0, 1, 3)[1:]])
        yk = np.array([hip_y + 0.07 * tu, hip_y, knee_y, ankle_y, ankle_y - 0.03])
        ys = np.interp(s, np.arange(5), yk)
        rad = np.interp(s, [0, 1, 1.5, 2, 2.3, 3, 4], [0.085, 0.083, 0.068, 0.048, 0.052, 0.034, 0.03]) * p.limb
        rad = rad * _CLOTHED[2]
        rad = rad * (1 + 0.6 * (p.girth - 1))
        xs = side * (hip_x - 0.01 * np.clip(s - 1, 0, 2) / 2)
        cen = np.stack([xs, ys, np.zeros_like(ys)], 1)
        w = _blend(-ys, [(-hip_y - 0.02, hipj), (-knee_y, knee), (-ankle_y, ankle)], 0, 0.035)
        base = b.tube(cen, ([0, -1, 0], [0, 0, 1]), rad * 0.95, rad, w, 20, cap1=cen[-1] - [0, 0.01, 0])
        for j, val in ((hipj, 1.0), (knee, 2.0), (ankle, 3.0)):
            b.regress[j] = b.ring_ids(base, int(np.argmin(abs(s - val))), 20)
        zf = np.array([-0.06, -0.04, 0.0, 0.05, 0.10, 0.14, 0.17])
        hw = np.array([0.032, 0.040, 0.042, 0.045, 0.046, 0.040, 0.028]) * (1 + 0.3 * (p.limb - 1))
        hh = np.array([0.025, 0.040, 0.045, 0.040, 0.030, 0.025, 0.018])
        cen = np.stack([np.full(7, side * (hip_x - 0.01)), sole + hh, zf], 1)
        w = _blend(zf, [(0.08, foot)], ankle, 0.03)
        base = b.tube(cen, ([0, 0, 1], [0, 1, 0]), hh, hw, w, 16, cap0=cen[0] - [0, 0, 0.012],
                      cap1=cen[-1] + [0, 0, 0.012])
        b.regress[foot] = b.ring_ids(base, 4, 16)
    # arms along +-x: collar -> shoulder -> elbow -> wrist, then a flat hand
    for side, collar, shoulder, elbow, wrist, hand in ((1, 13, 16, 18, 20, 22), (-1, 14, 17, 19, 21, 23)):
        xk = np.array([0.075 * p.shoulder, sh_x, sh_x + 0.26 * p.arm, sh_x + 0.505 * p.arm,
                       sh_x + 0.515 * p.arm])
        s = np.concatenate([np.linspace(0, 1, 4)[:-1], 1 + np.linspace(0, 1, 11)[:-1],
                            2 + np.linspace(0, 1, 11), [3.5]])
        xs = np.interp(s, np.arange(5), xk)
        rad = np.interp(s, [0, 1, 1.5, 2, 2.4, 3, 4], [0.05, 0.055, 0.047, 0.038, 0.038, 0.027, 0.026])
        rad = rad * p.limb * (1 + 0.6 * (p.girth - 1)) * _CLOTHED[2]
        cen = np.stack([side * xs, np.full_like(xs, sh_y), np.zeros_like(xs)], 1)
        w = _blend(xs, [(xk[1] - 0.01, shoulder), (xk[2], elbow), (xk[3], wrist)], collar, 0.03)
        base = b.tube(cen, ([side, 0, 0], [0, 1, 0]), rad, rad, w, 16)
        for j, val in ((collar, 0.0), (shoulder, 1.0), (elbow, 2.0), (wrist, 3.0)):
            b.regress[j] = b.ring_ids(base, int(np.argmin(abs(s - val))), 16)
        hx = xk[3] + 0.075 * p.arm
        base = _ellipsoid(b, [side * hx, sh_y, 0.0], ([side, 0, 0], [0, 1, 0]),
                          np.array([0.075 * p.arm, 0.022, 0.045]), 7, 12,
                          lambda a, hx=hx, wrist=wrist, hand=hand: _blend(a, [(hx - 0.04, hand)], wrist, 0.02))
        b.regress[hand] = b.ring_ids(base, 3, 12)
    # collars: the top outer corners of the torso follow the collar joints
    tv = np.concatenate(b.verts)[torso_ids]
    reach = np.clip((np.abs(tv[:, 0]) - 0.06) / 0.08, 0, 1) * np.clip((tv[:, 1] - 0.30 * tu) / (0.1 * tu), 0, 1)
    allw = np.concatenate(b.weights)
    for side, collar in ((1, 13), (-1, 14)):
        m = (np.sign(tv[:, 0]) == side)[:, None] * reach[:, None]
        allw[torso_ids] = allw[torso_ids] * (1 - m) + m * _onehot(collar)
    b.weights = [allw]
    # neck and head
    top = neck_y + 0.10 * p.head
    ys = np.linspace(neck_y - 0.06, top, 7)
    cen = np.stack([np.zeros(7), ys, np.full(7, -0.005)], 1)
    rad = np.interp(ys, [ys[0], top], [0.058, 0.05]) * (1 + 0.5 * (p.girth - 1))
    w = _blend(ys, [(neck_y - 0.02, 12), (top - 0.015, 15)], 9, 0.02)
    base = b.tube(cen, ([0, 1, 0], [0, 0, 1]), rad * 0.95, rad, w, 16)
    b.regress[12] = b.ring_ids(base, int(np.argmin(abs(ys - neck_y))), 16)
    b.regress[15] = b.ring_ids(base, 6, 16)
    hr = np.array([0.11, 0.095, 0.078]) * p.head
    _ellipsoid(b, [0, top + 0.085 * p.head, 0.012], ([0, 1, 0], [0, 0, 1]), hr, 14, 24,
               lambda a: np.tile(_onehot(15), (len(a), 1)), nose=True)
    verts = np.concatenate(b.verts) * p.stature
    return verts, np.concatenate(b.faces).astype(np.int64), np.concatenate(b.weights), b.regress


def _ellipsoid(b: _Builder, centre, axes, radii, rings: int, n: int, weight_fn, nose: bool = False) -> int:
    """An ellipsoid as a capped tube, ``axes = (d, u1)`` as in :meth:`_Builder.tube`: ``radii`` = (along d,
    along u1, along d x u1)."""
    u1 = axes[1]
    centre, d = np.asarray(centre, float), np.asarray(axes[0], float)
    phi = np.linspace(0, np.pi, rings + 2)[1:-1]
    sin_phi, cos_phi = exactmath.sincos(phi)
    along = -cos_phi * radii[0]
    cen = centre + along[:, None] * d
    base = b.tube(cen, (d, u1), sin_phi * radii[1], sin_phi * radii[2], weight_fn(along + exactmath.dot3(centre, d)),
                  n, cap0=centre - radii[0] * d, cap1=centre + radii[0] * d)
    if nose:  # a small bump on the face so front and back differ in structure renders
        v = b.verts[-3]
        rel = v - centre
        ang = exactmath.atan2(rel[:, 0], rel[:, 2])
        v[:, 2] += 0.018 * exactmath.exp(-(ang / 0.25) ** 2 - ((rel[:, 1] + 0.005) / 0.025) ** 2)
    return base


def build_procedural_body(seed: int = 0) -> dict[str, np.ndarray]:
    """An SMPL-format model dict (``v_template``, ``f``, ``shapedirs`` V x 3 x 10, ``posedirs``,
    ``J_regressor`` 24 x V, ``weights`` V x 24, ``kintree_table``), deterministic from ``seed``.

    Seed 0 is the average body; other seeds jitter the base proportions a little, so the
    stand-in is not one fixed person."""
    base = Proportions()
    if seed:
        rng = np.random.default_rng(seed)
        base = replace(base, **{name: getattr(base, name) + 0.5 * step * rng.standard_normal()
                                for name, step in SHAPE_DIRECTIONS})
    verts, faces, weights, regress = _build(base)
    shapedirs = np.zeros((len(verts), 3, NUM_BETAS))
    for k, (name, step) in enumerate(SHAPE_DIRECTIONS):
        hi = _build(replace(base, **{name: getattr(base, name) + step}))[0]
        lo = _build(replace(base, **{name: getattr(base, name) - step}))[0]
        shapedirs[:, :, k] = (hi - lo) / 2
    j_reg = np.zeros((NUM_JOINTS, len(verts)))
    for j, ids in regress.items():
        j_reg[j, ids] = 1.0 / len(ids)
    weights = weights / exactmath.ordered_sum(weights, 1)[:, None]
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in PARENTS], list(range(NUM_JOINTS))], dtype=np.int64)
    return {"v_template": verts, "f": faces, "shapedirs": shapedirs,
            "posedirs": np.zeros((len(verts), 3, 9 * (NUM_JOINTS - 1))), "J_regressor": j_reg,
            "weights": weights, "kintree_table": kintree}
