"""HMR regressor in the key layout of SPIN's PyTorch ``hmr`` model (Kolotouros et al. 2019).

SPIN's ``model_checkpoint.pt`` is the HMR checkpoint people actually have: a dict whose
``'model'`` entry is the state dict of a ResNet-50 trunk (torchvision names, no ``fc``)
followed by ``fc1, drop1, fc2, drop2, decpose, decshape, deccam`` and the buffers
``init_pose (1,144) / init_shape (1,10) / init_cam (1,3)`` read from ``smpl_mean_params.npz``.
Three iterations of error feedback refine pose (24 joint rotations in the 6D representation),
shape and a weak-perspective camera in the 224x224 crop.

SPIN's output lives in an OpenCV-like frame (y down, z away from the camera);
:func:`spin_to_y_up` turns it into the body frame of genreid (y up, person facing +z).
Loading is strict: every missing, unexpected or mis-shaped key is listed
(docs/method.md#known-traps-in-the-authors-code).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genreid.errors import CheckpointError
from genreid.utils.safe_load import load_weights_only

NUM_JOINTS = 24
NPOSE_6D = NUM_JOINTS * 6
CROP_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WHERE_TO_GET = (
    "SPIN's data bundle (https://github.com/nkolot/SPIN, script fetch_data.sh, archive "
    "http://visiondata.cis.upenn.edu/spin/data.tar.gz) holds model_checkpoint.pt and "
    "smpl_mean_params.npz; put them at the paths of mesh.hmr_checkpoint and mesh.smpl_mean_params "
    "(default data/models/hmr/), or use mesh.estimator: oracle on SynthReID"
)


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotation (Zhou et al. 2019) to 3x3 matrices, exactly as SPIN reads its ``decpose`` output.

    The 6 numbers of a joint are a (3,2) matrix in row-major order whose two columns are
    Gram-Schmidt orthonormalised; the third column is their cross product.
    """
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices to (..., 3) axis-angle (SMPL's pose parameterisation)."""
    from pytorch3d.transforms import matrix_to_axis_angle

    return matrix_to_axis_angle(rotmat)


def spin_to_y_up(rotmat: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate SPIN's y-down result by 180 degrees about x: root orientation R -> Rx(pi) R, ty -> -ty.

    After this a body point X lands in the crop at u = c + c*s*(X_x + tx), v = c - c*s*(X_y + ty)
    (c = crop half-size), the genreid camera convention (genreid/render/camera.py).
    """
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=rotmat.dtype, device=rotmat.device))
    rotmat = rotmat.clone()
    rotmat[:, 0] = flip @ rotmat[:, 0]
    cam = cam.clone()
    cam[:, 2] = -cam[:, 2]
    return rotmat, cam


class HMR(nn.Module):
    """ResNet-50 features + iterative error feedback; attribute names follow SPIN's ``hmr``."""

    def __init__(self, init_pose: torch.Tensor, init_shape: torch.Tensor, init_cam: torch.Tensor,
                 n_iter: int = 3):
        super().__init__()
        from torchvision.models import resnet50

        trunk = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # SPIN: AvgPool2d(7) on a 7x7 map, identical at 224x224
        feat = 2048
        self.fc1 = nn.Linear(feat + NPOSE_6D + 13, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, NPOSE_6D)
        self.decshape = nn.Linear(1024, 10)
        self.deccam = nn.Linear(1024, 3)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        self.register_buffer("init_pose", init_pose.reshape(1, NPOSE_6D).float())
        self.register_buffer("init_shape", init_shape.reshape(1, 10).float())
        self.register_buffer("init_cam", init_cam.reshape(1, 3).float())
        self.n_iter = n_iter

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ImageNet-normalised (B,3,224,224) crops -> rotmats (B,24,3,3), betas (B,10), cam (B,3), SPIN frame."""
        b = x.shape[0]
        xf = self.features(x)
        pose, shape, cam = (self.init_pose.expand(b, -1), self.init_shape.expand(b, -1),
                            self.init_cam.expand(b, -1))
        for _ in range(self.n_iter):
            xc = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([xf, pose, shape, cam], 1)))))
            pose = self.decpose(xc) + pose
            shape = self.decshape(xc) + shape
            cam = self.deccam(xc) + cam
        return rot6d_to_rotmat(pose).reshape(b, NUM_JOINTS, 3, 3), shape, cam


def load_smpl_mean_params(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read SPIN's ``smpl_mean_params.npz`` (pose (144,), shape (10,), cam (3,)) with checked shapes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"SMPL mean parameters not found: {path}", WHERE_TO_GET)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable .npz file: {exc}", WHERE_TO_GET) from exc
    expected = {"pose": NPOSE_6D, "shape": 10, "cam": 3}
    out: dict[str, torch.Tensor] = {}
    for key, size in expected.items():
        if key not in data:
            raise CheckpointError(f"{path} has no key {key!r} (found {sorted(data)})",
                                  "use SPIN's smpl_mean_params.npz: " + WHERE_TO_GET)
        if data[key].size != size:
            raise CheckpointError(f"{path} key {key!r} has {data[key].size} values, expected {size}",
                                  "use SPIN's smpl_mean_params.npz (6D pose, 144 values)")
        out[key] = torch.from_numpy(data[key].astype(np.float32).reshape(-1))
    return out


def describe_key_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable list of missing / unexpected / mis-shaped keys (empty when all match).

    ``num_batches_tracked`` counters are not reported: checkpoints from torch < 0.4.1 lack
    them and they do not affect inference.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    lines: list[str] = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:12]) + (f", ... ({len(items) - 12} more)" if len(items) > 12 else "")
            lines.append(f"{len(items)} {title} key(s): {shown}")
    return lines


def load_hmr_state(model: HMR, checkpoint: str | os.PathLike) -> None:
    """Load a SPIN-format checkpoint strictly; a ``module.`` (DataParallel) prefix is accepted."""
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"HMR checkpoint not found: {path}", WHERE_TO_GET)
    blob = load_weights_only(path, "HMR checkpoint", "get SPIN's model_checkpoint.pt again (a torch.save'd dict "
                             "of tensors); " + WHERE_TO_GET)
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds {type(blob).__name__}, expected a dict with key 'model'",
                              WHERE_TO_GET)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    problems = describe_key_mismatch(model, state)
    if problems:
        raise CheckpointError(f"HMR checkpoint {path} does not match SPIN's hmr layout:\n    "
                              + "\n    ".join(problems),
                              "use SPIN's model_checkpoint.pt (or a checkpoint of the same architecture)")
    own = model.state_dict()
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    model.load_state_dict(state, strict=True)


def build_hmr(checkpoint: str | os.PathLike | None, mean_params: str | os.PathLike | None) -> HMR:
    """An HMR in eval mode: mean parameters from the file (zeros-and-identity when None, for tests),
    weights from the checkpoint (random when None)."""
    if mean_params is None:
        eye6 = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(NUM_JOINTS)
        init = {"pose": eye6, "shape": torch.zeros(10), "cam": torch.tensor([0.9, 0.0, 0.0])}
    else:
        init = load_smpl_mean_params(mean_params)
    model = HMR(init["pose"], init["shape"], init["cam"])
    if checkpoint is not None:
        load_hmr_state(model, checkpoint)
    return model.eval()
