"""Fitting the body model (SMPL or the procedural stand-in) to body landmarks, batched.

What is fitted per image: global orientation, the 23 joint rotations, the 10 shape coefficients
and the weak-perspective camera (s, tx, ty) of genreid/render/camera.py. The data are 2D
landmarks in pixels with a confidence each and, optionally, 3D landmarks in the body frame
(hip-centred, camera-aligned, metres: MediaPipe's "world" landmarks), which carry the depth a
single 2D view lacks (which way a side-on person faces, an arm in front of or behind the body).

How, in the spirit of SMPLify (Bogo et al. 2016) without its learned priors (licensed with SMPL):

- body points are computed by forward kinematics of the joints only (posed joints do not depend
  on the pose blend shapes, so they equal the skinned model's joints exactly), plus "anchor"
  vertices rigidly attached to one joint for landmarks that are not joints (nose, ears, heels, toes);
- for the current body the camera is solved in closed form (weighted least squares), so the
  optimiser (Adam, float64) moves only the body;
- priors: a quadratic pull of every joint rotation towards a standing pose (arms down) with
  per-axis stiffness (twists about a bone are invisible in points, so they are stiff; knees and
  elbows bend about one axis, and bending backwards is penalised), and ``|betas|^2``: shape
  directions that the landmarks cannot see (girth, belly) stay at the mean;
- a robust (Geman-McClure) 2D loss, so one landmark on the wrong leg does not bend the body;
- several starting yaws per image (from the 3D landmarks, plus turns of ``yaw_starts``); the fit
  with the lowest loss wins.

The fit takes and returns torch tensors; :class:`genreid.meshes.estimators.LandmarkEstimator`
feeds it MediaPipe landmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

NUM_JOINTS = 24
NUM_BETAS = 10
# SMPL joint ids (genreid.body.procedural.JOINT_NAMES)
PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 0, 1, 2, 4, 5, 7, 8
L_FOOT, R_FOOT, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 10, 11, 15, 16, 17, 18, 19, 20, 21
ARM_DOWN = 1.25  # radians the shoulders turn the T-pose arms down (a relaxed standing person)


@dataclass(frozen=True)
class FitSettings:
    """Weights of the fit, in units of the 2D data term (squared residuals divided by
    ``landmark_sigma ** 2``: a fit as good as the landmarks' noise scores about 1 per landmark).

    The defaults were chosen on 150 SynthReID training crops against their true bodies (PA-MPJPE,
    mean/median mm; the standing body scores 61/60): pose_weight 1 gave 97/79 (the fit follows
    the landmarks' noise into odd poses), 20 gave 82/70, 50 without the 3D term 60/52, with the
    robust loss 56/50. MediaPipe's 3D landmarks of such small people made every fit worse (82/70
    against 65/54 at pose_weight 20), so by default they only give the starting yaw; with exact
    3D points (``world_weight`` 0.5) the fit recovers a known body to about 12 mm."""

    iterations: int = 150
    learning_rate: float = 0.04
    landmark_sigma: float = 0.05  # 2D landmark noise in half image heights (about 3 px at 128 px height)
    robust_scale: float = 2.0  # Geman-McClure scale of the 2D residuals in landmark_sigma units (0: squared)
    world_weight: float = 0.0  # 3D term relative to the 2D term (world residuals in units of world_sigma)
    world_sigma: float = 0.05  # metres
    pose_weight: float = 50.0
    shape_weight: float = 0.5
    bend_weight: float = 20.0  # knees and elbows bending the wrong way
    yaw_starts: tuple[float, ...] = (0.0, 60.0, -60.0)  # degrees added to the starting yaw


def standing_pose(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(72,) axis-angle pose of a person standing upright, facing the camera, arms hanging down."""
    pose = torch.zeros(NUM_JOINTS, 3, dtype=dtype)
    pose[L_SHOULDER, 2] = -ARM_DOWN  # the left arm points along +x in the T-pose: turn it down about z
    pose[R_SHOULDER, 2] = ARM_DOWN
    return pose.reshape(-1)


def _stiffness() -> torch.Tensor:
    """(24, 3) prior weight per joint and axis (axes of the joint's parent frame at the T-pose)."""
    w = torch.full((NUM_JOINTS, 3), 5.0, dtype=torch.float64)  # joints no landmark sees: hands, collars, feet
    per_axis = {
        (3, 6, 9): (3.0, 3.0, 3.0),  # spine: the landmarks see the torso only through shoulders and hips
        (12, HEAD): (2.0, 2.0, 2.0),
        (L_HIP, R_HIP): (0.05, 0.5, 0.05),  # the leg points along -y: y is its twist
        (L_KNEE, R_KNEE): (0.02, 2.0, 2.0),  # a hinge about x
        (L_ANKLE, R_ANKLE): (0.2, 2.0, 1.0),
        (L_SHOULDER, R_SHOULDER): (0.5, 0.05, 0.05),  # the arm points along x: x is its twist
        (L_ELBOW, R_ELBOW): (2.0, 0.02, 2.0),  # a hinge about y
        (PELVIS,): (0.0, 0.0, 0.0),  # global orientation: free
    }
    for joints, axes in per_axis.items():
        w[list(joints)] = torch.tensor(axes, dtype=torch.float64)
    return w


class Skeleton(torch.nn.Module):
    """Joints and anchor vertices of a body model as linear functions of the shape, posed by
    forward kinematics: ``points(betas, pose) -> (B, P, 3)`` for the named body points."""

    def __init__(self, body_model, dtype: torch.dtype = torch.float64):
        super().__init__()
        smpl = body_model.smpl
        v_template = smpl.v_template.detach().to(dtype)
        shapedirs = smpl.shapedirs.detach().to(dtype)[..., :NUM_BETAS]
        regressor = smpl.J_regressor.detach().to(dtype)
        weights = smpl.lbs_weights.detach().to(dtype)
        self.parents = [int(p) for p in smpl.parents.tolist()]
        self.register_buffer("joint_template", regressor @ v_template)
        self.register_buffer("joint_dirs", torch.einsum("jv,vck->jck", regressor, shapedirs))
        anchors = _anchor_vertices(v_template, weights)
        self.anchor_names = list(anchors)
        ids = torch.tensor([anchors[n][0] for n in self.anchor_names], dtype=torch.long)
        self.anchor_joints = [anchors[n][1] for n in self.anchor_names]
        self.register_buffer("anchor_template", v_template[ids])
        self.register_buffer("anchor_dirs", shapedirs[ids])

    def point_index(self, name: str) -> int:
        """Column of a body point in :meth:`points`: ``joint:<id>`` or an anchor name."""
        if name.startswith("joint:"):
            return int(name.split(":")[1])
        return NUM_JOINTS + self.anchor_names.index(name)

    def points(self, betas: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """(B, 24 + anchors, 3) posed joints then anchors in the body frame (root at its rest place)."""
        from pytorch3d.transforms import axis_angle_to_matrix

        b = betas.shape[0]
        rot = axis_angle_to_matrix(pose.reshape(b, NUM_JOINTS, 3))
        rest = self.joint_template + torch.einsum("jck,bk->bjc", self.joint_dirs, betas)
        g_rot: list[torch.Tensor] = [rot[:, 0]]
        g_pos: list[torch.Tensor] = [rest[:, 0]]
        for k in range(1, NUM_JOINTS):
            p = self.parents[k]
            g_rot.append(g_rot[p] @ rot[:, k])
            g_pos.append(g_pos[p] + (g_rot[p] @ (rest[:, k] - rest[:, p]).unsqueeze(-1)).squeeze(-1))
        joints = torch.stack(g_pos, 1)
        anchors = self.anchor_template + torch.einsum("ack,bk->bac", self.anchor_dirs, betas)
        posed = [g_pos[j] + (g_rot[j] @ (anchors[:, a] - rest[:, j]).unsqueeze(-1)).squeeze(-1)
                 for a, j in enumerate(self.anchor_joints)]
        return torch.cat([joints, torch.stack(posed, 1)], 1) if posed else joints


def _anchor_vertices(v: torch.Tensor, weights: torch.Tensor) -> dict[str, tuple[int, int]]:
    """name -> (vertex id, joint it moves with), picked on the T-pose template by geometry, so the
    same rule finds the nose or a heel on SMPL and on the procedural body."""
    owner = weights.argmax(1)
    out: dict[str, tuple[int, int]] = {}

    def pick(name: str, joints: Sequence[int], score: torch.Tensor) -> None:
        mask = torch.isin(owner, torch.tensor(list(joints)))
        if mask.any():
            i = int(torch.where(mask, score, torch.full_like(score, -math.inf)).argmax())
            out[name] = (i, int(owner[i]))

    head_y = v[:, 1]
    pick("nose", [HEAD], v[:, 2] - 0.2 * (head_y - head_y[owner == HEAD].mean()).abs())
    pick("left_ear", [HEAD], v[:, 0] - 0.5 * v[:, 2].abs())
    pick("right_ear", [HEAD], -v[:, 0] - 0.5 * v[:, 2].abs())
    for side, ankle, foot in (("left", L_ANKLE, L_FOOT), ("right", R_ANKLE, R_FOOT)):
        low = v[:, 1] - v[:, 1].min()
        pick(f"{side}_heel", [ankle, foot], -v[:, 2] - 2.0 * low)
        pick(f"{side}_toe", [ankle, foot], v[:, 2] - 0.5 * low)
    return out


def solve_camera(points: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                 min_scale: float = 1e-3) -> torch.Tensor:
    """(B, 3) cameras (s, tx, ty) minimising sum_i w_i |s (X_i + t) - n_i|^2 in closed form.

    ``points`` (B, P, 3) body points, ``targets`` (B, P, 2) normalised image coordinates
    (x right, y up, in half image heights about the centre), ``weights`` (B, P)."""
    w = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    xy = points[..., :2]
    mean_x, mean_n = (w[..., None] * xy).sum(1), (w[..., None] * targets).sum(1)
    dx, dn = xy - mean_x[:, None], targets - mean_n[:, None]
    scale = (w[..., None] * dx * dn).sum((1, 2)) / (w[..., None] * dx * dx).sum((1, 2)).clamp_min(1e-12)
    scale = scale.clamp_min(min_scale)
    shift = mean_n / scale[:, None] - mean_x
    return torch.cat([scale[:, None], shift], 1)


def pixels_to_normalised(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel (u, v) -> the camera convention's (x, y): ``u = W/2 + (H/2) x``, ``v = H/2 - (H/2) y``."""
    return torch.stack([(pixels[..., 0] - width / 2) / (height / 2), (height / 2 - pixels[..., 1]) / (height / 2)], -1)


def yaw_from_world(world: torch.Tensor, weights: torch.Tensor, left: Sequence[int], right: Sequence[int]
                   ) -> torch.Tensor:
    """(B,) yaw in radians (0 = facing the camera, 90 degrees = facing the image right) from the
    left-minus-right vectors of paired 3D points (shoulders, hips) in the body frame."""
    left_t, right_t = list(left), list(right)
    w = (weights[:, left_t] * weights[:, right_t])[..., None]
    d = (w * (world[:, left_t] - world[:, right_t])).sum(1)
    return torch.atan2(-d[:, 2], d[:, 0])  # the body's +x axis turned by yaw about y is (cos, 0, -sin)


@dataclass
class FitResult:
    betas: torch.Tensor  # (B, 10)
    pose: torch.Tensor  # (B, 72)
    cam: torch.Tensor  # (B, 3)
    loss: torch.Tensor  # (B,) final objective of the chosen start
    data_rms: torch.Tensor  # (B,) weighted RMS 2D residual in half image heights


def fit_body(skeleton: Skeleton, columns: Sequence[int], targets: torch.Tensor, weights: torch.Tensor,
             world: torch.Tensor | None = None, world_weights: torch.Tensor | None = None,
             initial_yaw: torch.Tensor | None = None, settings: FitSettings = FitSettings()) -> FitResult:
    """Fit shape, pose and camera to landmarks.

    ``columns`` picks the body points (:meth:`Skeleton.point_index`) that the landmarks observe;
    ``targets`` (B, P, 2) are their normalised image coordinates (:func:`pixels_to_normalised`),
    ``weights`` (B, P) their confidences; ``world`` (B, P, 3) optional hip-centred 3D landmarks in
    the body frame with ``world_weights``; ``initial_yaw`` (B,) radians (default 0: facing the camera).
    Every start of ``settings.yaw_starts`` is fitted in one batch; the lowest loss wins per image."""
    dtype = torch.float64
    device = targets.device
    b, k = targets.shape[0], len(settings.yaw_starts)
    cols = torch.as_tensor(list(columns), dtype=torch.long, device=device)
    rep = lambda t: t.to(dtype).repeat(k, *([1] * (t.ndim - 1)))  # start-major: row s*b + i
    tgt, wts = rep(targets), rep(weights)
    wsum = wts.sum(1).clamp_min(1e-9)
    use_world = world is not None and settings.world_weight > 0
    if use_world:
        wld = rep(world)
        wwt = rep(world_weights if world_weights is not None else weights)
        wwsum = wwt.sum(1).clamp_min(1e-9)
    yaw0 = initial_yaw.to(dtype) if initial_yaw is not None else torch.zeros(b, dtype=dtype, device=device)
    offsets = torch.tensor([math.radians(a) for a in settings.yaw_starts], dtype=dtype, device=device)
    yaw = (offsets[:, None] + yaw0[None]).reshape(-1)
    mean_pose = standing_pose(dtype).to(device)
    stiffness = _stiffness().to(device)
    root = torch.zeros(b * k, 3, dtype=dtype, device=device)
    root[:, 1] = yaw
    root = root.requires_grad_(True)
    body = mean_pose[3:].repeat(b * k, 1).clone().requires_grad_(True)
    betas = torch.zeros(b * k, NUM_BETAS, dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.Adam([root, body, betas], lr=settings.learning_rate)
    hips = [skeleton.point_index(f"joint:{L_HIP}"), skeleton.point_index(f"joint:{R_HIP}")]

    def objective() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pose = torch.cat([root, body], 1)
        pts = skeleton.points(betas, pose)
        seen = pts[:, cols]
        cam = solve_camera(seen, tgt, wts)
        proj = cam[:, None, :1] * (seen[..., :2] + cam[:, None, 1:])
        sq = ((proj - tgt) ** 2).sum(-1)
        data = (wts * sq).sum(1) / wsum
        scaled = sq / settings.landmark_sigma ** 2
        if settings.robust_scale > 0:
            c2 = settings.robust_scale ** 2
            scaled = c2 * scaled / (scaled + c2)
        loss = (wts * scaled).sum(1) / wsum
        if use_world:
            centred = seen - pts[:, hips].mean(1, keepdim=True)
            loss = loss + settings.world_weight * (wwt * ((centred - wld) ** 2).sum(-1)).sum(1) / wwsum \
                / settings.world_sigma ** 2
        dev = (pose - mean_pose).reshape(-1, NUM_JOINTS, 3)
        loss = loss + settings.pose_weight * (stiffness * dev ** 2).sum((1, 2))
        bend = (torch.relu(-pose.reshape(-1, NUM_JOINTS, 3)[:, [L_KNEE, R_KNEE], 0]) ** 2).sum(1)
        bend = bend + torch.relu(pose.reshape(-1, NUM_JOINTS, 3)[:, L_ELBOW, 1]) ** 2 \
            + torch.relu(-pose.reshape(-1, NUM_JOINTS, 3)[:, R_ELBOW, 1]) ** 2
        loss = loss + settings.bend_weight * bend + settings.shape_weight * (betas ** 2).sum(1)
        return loss, cam, data

    for _ in range(settings.iterations):
        opt.zero_grad(set_to_none=True)
        loss, _, _ = objective()
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        loss, cam, data = objective()
        best = loss.reshape(k, b).argmin(0)
        pick = best * b + torch.arange(b, device=device)
        pose = torch.cat([root, body], 1)[pick]
        return FitResult(betas=betas[pick].detach(), pose=pose.detach(), cam=cam[pick], loss=loss[pick],
                         data_rms=data[pick].sqrt())
