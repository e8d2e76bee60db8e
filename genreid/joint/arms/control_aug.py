"""control_aug (not in the papers): GCL with the positive view from traditional ReID augmentation of
the same image (``train.control_aug``) instead of G(s_t, a); it asks whether generated views beat
traditional augmentation. It clusters with GCL's ``train.gcl.cluster``, so that its only difference
from GCL is the view."""

from __future__ import annotations

import torch

from genreid.joint.augment import augmented_view
from genreid.joint.contrastive import ContrastiveMethod
from genreid.registry import register_method


@register_method("control_aug", label="control_aug", order=20, needs_generator=False, config_key="control_aug")
class ControlAug(ContrastiveMethod):
    def positive_view(self, x: torch.Tensor) -> torch.Tensor | None:
        return augmented_view(x, self.cfg.control_aug, self.info)
