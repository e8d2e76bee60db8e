"""runtime.amp on CPU: bf16 autocast runs one iteration of every stage with finite losses; fp16 on
CPU falls back to fp32; ``off`` is a pass-through."""

from __future__ import annotations

import pytest
import torch

from genreid.engine.amp import AmpContext
from genreid.perf.profile import DRY, STAGES, make_stage


@pytest.mark.parametrize("stage", STAGES)
def test_one_iteration_under_cpu_bf16(stage):
    fn, _ = make_stage(stage, DRY, "cpu", "bf16", channels_last=stage == "gcl_plus")
    for _ in range(2):
        parts = fn()
    assert parts and all(torch.isfinite(torch.tensor(v)) for v in parts.values()), parts


def test_cpu_bf16_autocasts_convolutions():
    amp = AmpContext("cpu", "bf16")
    conv = amp.module(torch.nn.Conv2d(3, 4, 3))
    with amp.autocast():
        y = conv(amp.input(torch.randn(2, 3, 8, 8)))
    assert amp.enabled and y.dtype == torch.bfloat16 and not amp.scaler.is_enabled()


def test_cpu_fp16_falls_back_to_fp32_and_off_is_plain():
    for mode in ("fp16", "off"):
        amp = AmpContext("cpu", mode)
        conv = torch.nn.Conv2d(3, 4, 3)
        with amp.autocast():
            y = conv(torch.randn(2, 3, 8, 8))
        assert not amp.enabled and y.dtype == torch.float32 and amp.scale_value() == 1.0
    with pytest.raises(ValueError, match="runtime.amp"):
        AmpContext("cpu", "fp8")
