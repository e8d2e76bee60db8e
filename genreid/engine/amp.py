"""Mixed precision and memory format: one object every step uses, so the choice is made once.

AMP runs on CUDA only: bf16 autocast, or fp16 autocast with a gradient scaler. On CPU (and with
``mode='off'``) every method is a plain fp32 pass-through. One scaler serves all optimiser steps of
an iteration; :meth:`update` is called once at its end. Its state is checkpointed with the rest.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class AmpContext:
    def __init__(self, device: torch.device | str, mode: str = "off", channels_last: bool = False):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if mode != "off" and not cuda:
            log.warning("runtime.amp=%s ignored on %s (mixed precision is CUDA only)", mode, self.device)
        self.enabled = mode != "off" and cuda
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode, torch.float32)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and mode == "fp16")
        self.channels_last = channels_last

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def module(self, m: nn.Module) -> nn.Module:
        """``m`` on the device, channels-last when ``runtime.channels_last`` is on."""
        m = m.to(self.device)
        return m.to(memory_format=torch.channels_last) if self.channels_last else m

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch on the device, in the networks' memory format."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def scale_value(self) -> float:
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward() if self.scaler.is_enabled() else loss.backward()

    def step(self, opt: torch.optim.Optimizer) -> None:
        self.scaler.step(opt) if self.scaler.is_enabled() else opt.step()

    def update(self) -> None:
        if self.scaler.is_enabled():
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
