"""SMPL-format body models through ``smplx``: the official file or the procedural stand-in.

Both are SMPL data dicts handed to ``smplx.SMPL`` as a ready ``data_struct`` (its own pickle
path needs chumpy), so the same linear blend skinning, kinematic tree and pose convention
apply to both. Body frame: metres, y up, the body faces +z at zero pose, its left hand at +x.
"""

from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path

import numpy as np
import torch

from genreid.body.model_files import check_model_arrays, read_smpl_file
from genreid.body.procedural import build_procedural_body
from genreid.errors import ConfigError

NUM_JOINTS = 24
NUM_BETAS = 10
POSE_DIM = 3 * NUM_JOINTS


class BodyModel(torch.nn.Module):
    """``forward(betas (B,10), pose (B,72)) -> (vertices (B,V,3), joints (B,24,3))``.

    ``pose`` is SMPL's axis-angle vector: global orientation (root) then 23 body joints."""

    def __init__(self, data: dict[str, np.ndarray], name: str):
        super().__init__()
        import smplx
        from smplx.utils import Struct
        from smplx.vertex_ids import vertex_ids

        check_model_arrays(data, name)
        self.name = name
        num_verts = data["v_template"].shape[0]
        # smplx appends extra joints picked by SMPL vertex ids; keep them in range for any mesh
        ids = vertex_ids["smplh"] if num_verts == 6890 else {k: 0 for k in vertex_ids["smplh"]}
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10 betas
            self.smpl = smplx.SMPL(model_path="", data_struct=Struct(**data), create_betas=False,
                                   create_global_orient=False, create_body_pose=False, create_transl=False,
                                   num_betas=NUM_BETAS, vertex_ids=ids)
        self.register_buffer("faces", torch.as_tensor(np.asarray(data["f"], dtype=np.int64)), persistent=False)
        self.skinning_weights = np.asarray(data["weights"], dtype=np.float32)
        self.template = np.asarray(data["v_template"], dtype=np.float32)

    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    def forward(self, betas: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if betas.ndim != 2 or betas.shape[1] != NUM_BETAS or pose.ndim != 2 or pose.shape[1] != POSE_DIM:
            raise ValueError(f"expected betas (B,{NUM_BETAS}) and pose (B,{POSE_DIM}), "
                             f"got {tuple(betas.shape)} and {tuple(pose.shape)}")
        dtype = self.smpl.v_template.dtype
        out = self.smpl(betas=betas.to(dtype), global_orient=pose[:, :3].to(dtype), body_pose=pose[:, 3:].to(dtype))
        return out.vertices, out.joints[:, :NUM_JOINTS]


@functools.lru_cache(maxsize=4)
def _cached(spec: str, seed: int) -> BodyModel:
    if spec == "procedural":
        return BodyModel(build_procedural_body(seed), f"procedural(seed={seed})")
    if spec.endswith((".pkl", ".npz")) or Path(spec).exists():
        return BodyModel(read_smpl_file(spec), spec)
    raise ConfigError(f"body model {spec!r} is neither 'procedural' nor a .pkl/.npz path",
                      "set data.synthetic.body_model / mesh.body_model to 'procedural' or an SMPL model file")


def load_body_model(spec: str, seed: int = 0) -> BodyModel:
    """``'procedural'`` (the stand-in, shape from ``seed``) or a path to an SMPL .pkl/.npz.

    Cached per process: models are read-only, and loading SMPL takes a second."""
    return _cached(str(spec), int(seed)).eval()
