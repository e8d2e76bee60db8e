"""The engine never steps on a non-finite gradient and never writes non-finite weights.

A toy stage runs through the real :class:`Trainer` and :class:`AmpContext`; a NaN injected into one
gradient (finite loss, as with the blank-render NaN) must stop training with TrainingDiverged
naming the stage and optimiser, before any checkpoint or output file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from genreid.engine.amp import AmpContext, gradients_finite
from genreid.engine.dist import DistInfo
from genreid.engine.guards import host_values, non_finite_parameters
from genreid.engine.selection import Selection
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import TrainingDiverged


class ToyStep(TrainStep):
    name = "toy"
    stage = "toystage"

    def __init__(self, out: Path, nan_grad_at: int | None = None, nan_weight_at: int | None = None):
        torch.manual_seed(0)
        self.net = nn.Linear(4, 2)
        self.amp = AmpContext("cpu")
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.out, self.nan_grad_at, self.nan_weight_at = out, nan_grad_at, nan_weight_at

    def state(self) -> dict[str, Any]:
        return {"net": self.net, "opt": self.opt, "scaler": self.amp}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"enc": self.opt}

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        return [[0, 1], [2, 3], [4, 5]]

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batches

    def run_step(self, trainer: Trainer, batch: Any) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        loss = self.net(torch.randn(len(batch), 4)).square().mean()
        self.amp.backward(loss)
        if trainer.iteration == self.nan_grad_at:
            self.net.weight.grad[0, 0] = float("nan")
        self.amp.step(self.opt)
        if trainer.iteration == self.nan_weight_at:  # an update outside the guarded step
            with torch.no_grad():
                self.net.bias[1] = float("inf")
        return {"loss": float(loss)}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        self.out.write_text("written")
        return {"done": True}


def _trainer(step: ToyStep, tmp_path: Path, epochs: int = 2) -> Trainer:
    return Trainer(step, info=DistInfo(), epochs=epochs, ckpt_dir=tmp_path / "ckpt", results_dir=tmp_path / "res")


def test_clean_run_trains_checkpoints_and_writes(tmp_path):
    step = ToyStep(tmp_path / "out.txt")
    assert _trainer(step, tmp_path).train() == {"done": True}
    assert (tmp_path / "out.txt").is_file() and list((tmp_path / "ckpt").glob("ckpt_*.pt"))


def test_nan_gradient_stops_before_the_step_and_any_file(tmp_path):
    step = ToyStep(tmp_path / "out.txt", nan_grad_at=1)
    before = {k: v.clone() for k, v in step.net.state_dict().items()}
    with pytest.raises(TrainingDiverged) as err:
        _trainer(step, tmp_path).train()
    msg = str(err.value)
    assert "'enc'" in msg and "toystage" in msg and "fix:" in msg
    assert not list((tmp_path / "ckpt").glob("ckpt_*.pt")) and not (tmp_path / "out.txt").exists()
    assert all(step.net.state_dict()[k].isfinite().all() for k in before)  # the NaN step was not taken


def test_non_finite_weights_are_never_checkpointed_or_written(tmp_path):
    step = ToyStep(tmp_path / "out.txt", nan_weight_at=2)  # last iteration of epoch 0, before its checkpoint
    with pytest.raises(TrainingDiverged, match=r"net\.bias.*checkpoint at iteration 3 was not written"):
        _trainer(step, tmp_path).train()
    assert not list((tmp_path / "ckpt").glob("ckpt_*.pt")) and not (tmp_path / "out.txt").exists()


def test_gradient_check_helpers():
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    assert gradients_finite(opt)  # no gradients yet
    net(torch.randn(2, 3)).sum().backward()
    assert gradients_finite(opt)
    net.bias.grad.fill_(float("inf"))
    assert not gradients_finite(opt)
    with torch.no_grad():
        net.weight[0, 1] = float("nan")
    assert non_finite_parameters({"m": net}) == ["m.weight"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), None])
def test_gradients_finite_agrees_with_isfinite(dtype, bad):
    """The min/max test is exact: the same verdict as ``isfinite`` for NaN, +-inf, huge finite values and
    an empty gradient."""
    params = [nn.Parameter(torch.zeros(4, 5, dtype=dtype)), nn.Parameter(torch.zeros(0, dtype=dtype)),
              nn.Parameter(torch.zeros(7, dtype=dtype))]
    params[0].grad = ((torch.rand(4, 5) * 2 - 1) * torch.finfo(dtype).max / 2).to(dtype)  # huge, finite
    params[1].grad = torch.zeros(0, dtype=dtype)
    params[2].grad = torch.randn(7).to(dtype)
    if bad is not None:
        params[2].grad[3] = bad
    opt = torch.optim.SGD(params, lr=0.1)
    assert gradients_finite(opt) == all(bool(p.grad.isfinite().all()) for p in params) == (bad is None)


def test_host_values_reads_every_part_once_with_the_values_float_gives(monkeypatch):
    """Loss parts come back from the losses as 0-dim tensors; the step reads them in one transfer. The
    floats are exactly float()'s (bf16/fp16 widen exactly), in the given order, Python floats passed
    through; no per-part float() (each would wait for a GPU)."""
    parts = {"d_total": torch.tensor(0.1234567, dtype=torch.float32), "g_adv": torch.tensor(3.5, dtype=torch.bfloat16),
             "lr": 0.01, "rec": torch.tensor(float("nan")), "code": torch.tensor([2.0e-8], dtype=torch.float16)}
    expected = {k: float(v) for k, v in parts.items()}

    def no_float(self):
        raise AssertionError("float() on a tensor: one host read per part")

    monkeypatch.setattr(torch.Tensor, "__float__", no_float)
    got = host_values(parts)
    assert list(got) == list(parts) and all(type(v) is float for v in got.values())
    assert {k: v for k, v in got.items() if k != "rec"} == {k: v for k, v in expected.items() if k != "rec"}
    assert got["rec"] != got["rec"]  # NaN passes through for assert_finite to name it
    assert host_values({}) == {}
