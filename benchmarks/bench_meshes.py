"""Meshes stage throughput: structure renders per second (all 8 angles of a chunk in one call)
and HMR estimation images per second, on every device present (CPU always, CUDA when there).

``extra_info`` records renders/s (or images/s) so `make bench` reports the rate per device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genreid.body import load_body_model
from genreid.meshes.estimators import HmrEstimator, SmplParams
from genreid.meshes.hmr import build_hmr
from genreid.meshes.views import posed_vertices, render_views

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]


def _params(batch: int, body) -> SmplParams:
    rng = np.random.default_rng(0)
    betas = rng.normal(size=(batch, 10)).astype(np.float32)
    pose = (rng.normal(size=(batch, 72)) * 0.15).astype(np.float32)
    from genreid.render.camera import framing_cam

    vertices, _ = posed_vertices(body, SmplParams(betas, pose, np.zeros((batch, 3), np.float32)))
    return SmplParams(betas, pose, framing_cam(vertices).numpy())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [(64, 32), (256, 128)])
def test_render_views(benchmark, device, size):
    torch.set_num_threads(2)
    batch = 32 if device == "cpu" else 256
    body = load_body_model("procedural").to(device)
    params = _params(batch, body)
    h, w = size

    def run():
        out = render_views(body, params, ANGLES, h, w, device)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out[0].shape == (batch, h, w) and (out[0] > 0).any()
    benchmark.extra_info["renders_per_s"] = round(batch * len(ANGLES) / benchmark.stats.stats.mean, 1)
    benchmark.extra_info["device"] = device


@pytest.mark.parametrize("device", DEVICES)
def test_hmr_estimate(benchmark, device):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    batch = 8 if device == "cpu" else 64
    est = HmrEstimator(build_hmr(None, None), device)
    images = torch.rand(batch, 3, 256, 128, device=device)
    out = benchmark.pedantic(est.estimate_tensor, args=(images,), rounds=3, warmup_rounds=1)
    assert out.pose.shape == (batch, 72)
    benchmark.extra_info["images_per_s"] = round(batch / benchmark.stats.stats.mean, 1)
    benchmark.extra_info["device"] = device
