"""Body model: procedural SMPL-format stand-in, smplx skinning, chumpy-free file loading."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from scipy import sparse

from genreid.body import load_body_model
from genreid.body.model_files import read_smpl_file
from genreid.body.procedural import PARENTS, build_procedural_body
from genreid.body.smpl import BodyModel
from genreid.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return load_body_model("procedural")


def test_procedural_is_smpl_format_and_deterministic():
    a, b, c = build_procedural_body(0), build_procedural_body(0), build_procedural_body(3)
    v = a["v_template"].shape[0]
    assert 2000 <= v <= 8000
    assert a["shapedirs"].shape == (v, 3, 10) and a["posedirs"].shape == (v, 3, 207)
    assert a["J_regressor"].shape == (24, v) and a["weights"].shape == (v, 24)
    assert list(a["kintree_table"][0, 1:]) == list(PARENTS[1:])
    np.testing.assert_allclose(a["weights"].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(a["J_regressor"].sum(1), 1.0, atol=1e-9)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["v_template"], c["v_template"])
    np.testing.assert_array_equal(a["f"], c["f"])  # same topology for every seed


def test_rest_pose_is_smpl_t_pose(body: BodyModel):
    verts, joints = body(torch.zeros(1, 10), torch.zeros(1, 72))
    j = joints[0].numpy()
    height = float(verts[0, :, 1].max() - verts[0, :, 1].min())
    assert 1.6 < height < 1.85
    assert j[1, 0] > 0.05 and j[2, 0] < -0.05  # SMPL: left hip at +x
    assert j[20, 0] > 0.5 and abs(j[20, 1] - j[16, 1]) < 0.02  # left wrist straight out (T-pose)
    assert j[15, 1] > j[12, 1] > j[9, 1] > j[0, 1] > j[4, 1] > j[7, 1]
    v = verts[0].numpy()
    assert v[v[:, 2].argmax(), 1] < j[7, 1]  # toes are the foremost points: the body faces +z
    head = v[v[:, 1] > j[15, 1]]
    nose = head[head[:, 2].argmax()]
    assert abs(nose[0]) < 0.01 and nose[2] > 0.08


def test_shape_directions_change_height_and_girth(body: BodyModel):
    betas = torch.zeros(3, 10)
    betas[1, 0] = 2.0
    betas[2, 1] = 2.0
    verts, joints = body(betas, torch.zeros(3, 72))
    height = verts[:, :, 1].amax(1) - verts[:, :, 1].amin(1)
    assert height[1] > height[0] + 0.1
    waist = verts[:, :, 0].abs() * (verts[:, :, 1].sub(joints[:, 3:4, 1]).abs() < 0.03)
    assert waist[2].max() > waist[0].max() * 1.1


def test_pose_rotates_only_the_chain_below_a_joint(body: BodyModel):
    pose = torch.zeros(2, 72)
    pose[1, 3 * 18 + 1] = -1.0  # left elbow about y: forearm bends forwards
    verts, joints = body(torch.zeros(2, 10), pose)
    moved = (verts[1] - verts[0]).norm(dim=1) > 1e-5
    below = torch.as_tensor(body.skinning_weights[:, [18, 20, 22]].sum(1) > 0.01)
    assert moved.any() and not (moved & ~below).any()
    assert joints[1, 20, 2] > joints[0, 20, 2] + 0.1  # wrist moved towards +z
    yaw = torch.zeros(1, 72)
    yaw[0, 1] = np.pi / 2  # global orientation: 90 degrees about +y
    turned, _ = body(torch.zeros(1, 10), yaw)
    assert float(turned[0, :, 0].max()) == pytest.approx(float(verts[0, :, 2].max()), abs=0.02)


def _fake_chumpy_pickle(data: dict, path, protocol: int) -> None:
    """Pickle ``data`` the way the official SMPL file is: chumpy arrays, sparse J_regressor."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch, chumpy.ch = Ch, ch
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch})
    try:
        out = {k: Ch(v) if k in ("shapedirs", "posedirs", "v_template", "weights") else v for k, v in data.items()}
        out["J_regressor"] = sparse.csc_matrix(data["J_regressor"])
        out["bs_style"] = "lbs"
        with open(path, "wb") as fh:
            pickle.dump(out, fh, protocol=protocol)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_pickle_and_npz_load_without_chumpy(tmp_path, body: BodyModel, protocol: int):
    data = build_procedural_body(0)
    _fake_chumpy_pickle(data, tmp_path / "SMPL_NEUTRAL.pkl", protocol)
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **data)
    assert "chumpy" not in sys.modules
    betas, pose = torch.randn(2, 10), 0.3 * torch.randn(2, 72)
    ref, ref_j = body(betas, pose)
    for name in ("SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz"):
        loaded = read_smpl_file(tmp_path / name)
        np.testing.assert_allclose(loaded["J_regressor"], data["J_regressor"])
        model = load_body_model(str(tmp_path / name))
        verts, joints = model(betas, pose)
        torch.testing.assert_close(verts, ref)
        torch.testing.assert_close(joints, ref_j)


def test_bad_body_model_files_raise_user_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_smpl_file(tmp_path / "missing.pkl")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(types.SimpleNamespace(a=1)))
    with pytest.raises(DataError, match="refusing"):
        read_smpl_file(evil)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((10, 3)))
    with pytest.raises(DataError, match="lacks"):
        read_smpl_file(partial)
    with pytest.raises(ConfigError, match="procedural"):
        load_body_model("smpl-please")
