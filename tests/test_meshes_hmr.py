"""HMR regressor (SPIN key layout), rotation conversions and the crop/camera mapping."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from genreid.errors import CheckpointError
from genreid.meshes.crop import crop_cam_to_image_cam, crop_square, full_image_boxes, project_weak_perspective
from genreid.meshes.hmr import (
    build_hmr,
    load_hmr_state,
    load_smpl_mean_params,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    spin_to_y_up,
)


def _write_mean_params(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, pose=rng.normal(size=144).astype(np.float32), shape=rng.normal(size=10), cam=[0.9, 0.1, -0.1])
    return path


@pytest.fixture(scope="module")
def hmr_model(tmp_path_factory):
    torch.manual_seed(0)
    path = _write_mean_params(tmp_path_factory.mktemp("hmr") / "smpl_mean_params.npz")
    return build_hmr(None, path)


def test_rot6d_matches_pytorch3d_and_is_a_rotation():
    from pytorch3d.transforms import rotation_6d_to_matrix

    x = torch.randn(50, 6, dtype=torch.float64)
    r = rot6d_to_rotmat(x)
    # SPIN reads the 6 numbers as a row-major (3,2) matrix of two columns; pytorch3d as two rows.
    ref = rotation_6d_to_matrix(x.reshape(-1, 3, 2).transpose(1, 2).reshape(-1, 6)).transpose(1, 2)
    assert torch.allclose(r, ref, atol=1e-10)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-10)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50, dtype=torch.float64), atol=1e-10)
    ident = rot6d_to_rotmat(torch.tensor([[1.0, 0, 0, 1, 0, 0]]))
    assert torch.allclose(ident[0], torch.eye(3))


def test_rotmat_to_axis_angle_round_trip():
    from pytorch3d.transforms import axis_angle_to_matrix

    aa = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [0.0, math.pi / 2, 0.0]], dtype=torch.float64)
    back = rotmat_to_axis_angle(axis_angle_to_matrix(aa))
    assert torch.allclose(back, aa, atol=1e-7)


def test_hmr_forward_shapes_and_iterations(hmr_model):
    assert hmr_model.n_iter == 3 and not hmr_model.training
    with torch.no_grad():
        rotmat, shape, cam = hmr_model(torch.randn(2, 3, 96, 96))
    assert rotmat.shape == (2, 24, 3, 3) and shape.shape == (2, 10) and cam.shape == (2, 3)
    assert torch.allclose(rotmat @ rotmat.transpose(-1, -2), torch.eye(3).expand(2, 24, 3, 3), atol=1e-5)
    keys = set(hmr_model.state_dict())
    for k in ("fc1.weight", "fc2.bias", "decpose.weight", "deccam.bias", "decshape.weight", "init_pose",
              "init_shape", "init_cam", "layer4.2.conv3.weight", "bn1.running_mean"):
        assert k in keys
    assert not any(k.startswith("fc.") for k in keys)  # SPIN drops torchvision's classifier


def test_checkpoint_round_trip_with_dataparallel_prefix(hmr_model, tmp_path):
    state = {"module." + k: v.clone() for k, v in hmr_model.state_dict().items() if "num_batches" not in k}
    torch.save({"model": state, "epoch": 3}, tmp_path / "model_checkpoint.pt")
    fresh = copy.deepcopy(hmr_model)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
        fresh.init_pose.zero_()
    load_hmr_state(fresh, tmp_path / "model_checkpoint.pt")
    x = torch.randn(1, 3, 64, 64)  # the trunk pools adaptively: small inputs keep the test fast
    with torch.no_grad():
        a, b = hmr_model(x), fresh(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_checkpoint_key_report_lists_missing_and_unexpected(hmr_model, tmp_path):
    state = dict(hmr_model.state_dict())
    state.pop("deccam.weight")
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc1.bias"] = torch.zeros(7)
    torch.save({"model": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_hmr_state(copy.deepcopy(hmr_model), tmp_path / "bad.pt")
    msg = str(err.value)
    assert "1 missing key(s): deccam.weight" in msg
    assert "1 unexpected key(s): fc.weight" in msg
    assert "fc1.bias: checkpoint (7,) vs model (1024,)" in msg


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(CheckpointError, match="smpl_mean_params.npz.*\n.*fetch_data.sh"):
        load_smpl_mean_params(tmp_path / "smpl_mean_params.npz")
    mean = _write_mean_params(tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="HMR checkpoint not found.*\n.*mesh.hmr_checkpoint"):
        build_hmr(tmp_path / "model_checkpoint.pt", mean)
    np.savez(tmp_path / "short.npz", pose=np.zeros(72), shape=np.zeros(10), cam=np.zeros(3))
    with pytest.raises(CheckpointError, match="'pose' has 72 values, expected 144"):
        load_smpl_mean_params(tmp_path / "short.npz")


def test_spin_to_y_up_keeps_the_projection():
    """The same point must land on the same crop pixel before (SPIN, y down) and after conversion."""
    torch.manual_seed(1)
    from pytorch3d.transforms import random_rotations

    rot = random_rotations(4, dtype=torch.float64).reshape(4, 1, 3, 3).expand(4, 24, 3, 3).clone()
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.1, -0.3, 0.05], [0.8, 0.0, 0.3], [1.0, 0.2, 0.2]], dtype=torch.float64)
    points = torch.randn(4, 30, 3, dtype=torch.float64)
    c = 112.0
    spin_pts = points @ rot[:, 0].transpose(1, 2)
    u_spin = c + c * cam[:, None, 0] * (spin_pts[..., 0] + cam[:, None, 1])
    v_spin = c + c * cam[:, None, 0] * (spin_pts[..., 1] + cam[:, None, 2])
    rot2, cam2 = spin_to_y_up(rot, cam)
    ours = points @ rot2[:, 0].transpose(1, 2)
    uv = project_weak_perspective(ours, cam2, 224, 224)
    assert torch.allclose(uv[..., 0], u_spin, atol=1e-9) and torch.allclose(uv[..., 1], v_spin, atol=1e-9)
    assert torch.equal(rot2[:, 1:], rot[:, 1:])  # only the root turns


def test_crop_camera_maps_back_to_the_image():
    torch.manual_seed(2)
    h, w = 128, 64
    boxes = torch.tensor([[32.0, 64.0, 153.6], [40.0, 60.0, 100.0]])
    cam_crop = torch.tensor([[0.9, 0.05, -0.1], [1.2, -0.2, 0.1]])
    points = torch.randn(2, 40, 3)
    uv_crop = project_weak_perspective(points, cam_crop, 224, 224)
    # crop pixel -> image pixel through the box
    scale = boxes[:, 2, None] / 224
    u_img = boxes[:, 0, None] - boxes[:, 2, None] / 2 + uv_crop[..., 0] * scale
    v_img = boxes[:, 1, None] - boxes[:, 2, None] / 2 + uv_crop[..., 1] * scale
    uv = project_weak_perspective(points, crop_cam_to_image_cam(cam_crop, boxes, h, w), h, w)
    assert torch.allclose(uv[..., 0], u_img, atol=1e-4) and torch.allclose(uv[..., 1], v_img, atol=1e-4)


def test_crop_square_puts_a_pixel_where_the_box_says():
    h, w = 128, 64
    img = torch.zeros(1, 3, h, w)
    img[0, :, 30:34, 20:24] = 1.0  # a 4x4 block centred at (u=22, v=32)
    boxes = full_image_boxes(1, h, w, rescale=1.2)
    crop = crop_square(img, boxes, 224)
    side = 1.2 * h
    u = (22 - (w / 2 - side / 2)) * 224 / side
    v = (32 - (h / 2 - side / 2)) * 224 / side
    ys, xs = torch.nonzero(crop[0, 0] > 0.5, as_tuple=True)
    assert abs(xs.float().mean().item() + 0.5 - u) < 1.0 and abs(ys.float().mean().item() + 0.5 - v) < 1.0
    assert crop[0, :, :5, :].abs().max() == 0  # padding outside the image is black
