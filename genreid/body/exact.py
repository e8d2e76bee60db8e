"""SMPL linear blend skinning in numpy float64 with a fixed order of every sum (SynthReID's path).

The same maths as ``smplx.lbs`` (shape blend, joint regression, Rodrigues, kinematic chain,
pose blend, skinning), but written with :mod:`genreid.utils.exactmath`: no BLAS matrix product,
no SIMD-dependent reduction or transcendental, so the posed vertices are the same bits on
every machine. The torch :class:`genreid.body.BodyModel` stays the model for training-side
stages (meshes, GAN); both agree to float32 precision (``tests/test_synth_exact.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreid.body.model_files import check_model_arrays, read_smpl_file
from genreid.body.procedural import PARENTS, build_procedural_body
from genreid.errors import ConfigError
from genreid.utils import exactmath

NUM_JOINTS = 24


@dataclass(frozen=True)
class PosedBodies:
    """One batch of posed bodies, float64: ``vertices`` (B,V,3), ``joints`` (B,24,3), the world
    ``rotations`` (B,24,3,3) of every joint, and the rest-pose (shaped, unposed) vertices and joints."""

    vertices: np.ndarray
    joints: np.ndarray
    rotations: np.ndarray
    rest_vertices: np.ndarray
    rest_joints: np.ndarray


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis-angle -> (..., 3, 3); exactly the identity for a zero vector."""
    angle = np.sqrt(exactmath.dot3(rotvec, rotvec))
    safe = np.where(angle > 0, angle, 1.0)
    axis = rotvec / safe[..., None]
    sin, cos = exactmath.sincos(angle)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + sin[..., None, None] * k + (1.0 - cos)[..., None, None] * exactmath.matmul(k, k)


class ExactBody:
    """``forward(betas (B,10), pose (B,72))`` on the model's float64 arrays (SMPL data dict)."""

    def __init__(self, data: dict[str, np.ndarray], name: str):
        check_model_arrays(data, name)
        self.name = name
        self.template = np.asarray(data["v_template"], dtype=np.float64)
        self.faces = np.asarray(data["f"], dtype=np.int64)
        self.shapedirs = np.asarray(data["shapedirs"], dtype=np.float64)[:, :, :10]
        posedirs = np.asarray(data["posedirs"], dtype=np.float64)
        self.posedirs = posedirs if np.any(posedirs) else None  # the procedural body has none
        regressor = np.asarray(data["J_regressor"], dtype=np.float64)
        regressor = regressor.toarray() if hasattr(regressor, "toarray") else regressor
        self.regressor = [(np.nonzero(row)[0], row[np.nonzero(row)[0]]) for row in regressor]
        self.skinning_weights = np.asarray(data["weights"], dtype=np.float64)
        # skinning sums over each vertex's nonzero joint weights, in ascending joint order
        taps = int((self.skinning_weights != 0).sum(1).max())
        order = np.argsort(self.skinning_weights == 0, axis=1, kind="stable")[:, :taps]
        self._skin_joint = order
        self._skin_weight = np.take_along_axis(self.skinning_weights, order, 1)

    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    def shaped(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rest-pose vertices (B,V,3) and joints (B,24,3) of shape ``betas`` (B,10)."""
        betas = np.asarray(betas, dtype=np.float64)
        verts = np.broadcast_to(self.template, (len(betas), *self.template.shape)).copy()
        for k in range(betas.shape[1]):
            verts = verts + self.shapedirs[None, :, :, k] * betas[:, None, None, k]
        joints = np.stack([exactmath.ordered_sum(verts[:, ids] * w[None, :, None], 1) for ids, w in self.regressor],
                          1)
        return verts, joints

    def forward(self, betas: np.ndarray, pose: np.ndarray) -> PosedBodies:
        betas, pose = np.asarray(betas, dtype=np.float64), np.asarray(pose, dtype=np.float64)
        b = len(betas)
        rest_verts, rest_joints = self.shaped(betas)
        local = axis_angle_to_matrix(pose.reshape(b, NUM_JOINTS, 3))
        verts = rest_verts
        if self.posedirs is not None:
            feature = (local[:, 1:] - np.eye(3)).reshape(b, -1)
            for k in range(feature.shape[1]):
                verts = verts + self.posedirs[None, :, :, k] * feature[:, None, None, k]
        rot = [local[:, 0]]
        trans = [rest_joints[:, 0]]
        for j in range(1, NUM_JOINTS):
            p = PARENTS[j]
            rot.append(exactmath.matmul(rot[p], local[:, j]))
            trans.append(exactmath.matvec(rot[p], rest_joints[:, j] - rest_joints[:, p]) + trans[p])
        rotations, joints = np.stack(rot, 1), np.stack(trans, 1)
        offset = joints - exactmath.matvec(rotations, rest_joints)  # x -> R x + offset moves rest to posed
        js, ws = self._skin_joint, self._skin_weight
        blend_r = ws[None, :, 0, None, None] * rotations[:, js[:, 0]]
        blend_t = ws[None, :, 0, None] * offset[:, js[:, 0]]
        for t in range(1, js.shape[1]):
            blend_r = blend_r + ws[None, :, t, None, None] * rotations[:, js[:, t]]
            blend_t = blend_t + ws[None, :, t, None] * offset[:, js[:, t]]
        posed = exactmath.matvec(blend_r, verts) + blend_t
        return PosedBodies(posed, joints, rotations, rest_verts, rest_joints)


@functools.lru_cache(maxsize=4)
def load_exact_body(spec: str, seed: int = 0) -> ExactBody:
    """``'procedural'`` or a path to an SMPL .pkl/.npz, as :func:`genreid.body.load_body_model`."""
    if spec == "procedural":
        return ExactBody(build_procedural_body(seed), f"procedural(seed={seed})")
    if spec.endswith((".pkl", ".npz")) or Path(spec).exists():
        return ExactBody(read_smpl_file(spec), spec)
    raise ConfigError(f"body model {spec!r} is neither 'procedural' nor a .pkl/.npz path",
                      "set data.synthetic.body_model to 'procedural' or an SMPL model file")
