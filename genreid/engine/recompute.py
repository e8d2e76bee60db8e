"""Activation checkpointing (``runtime.activation_checkpointing``): keep only each block's input in
the forward pass and recompute the block's inside during backward. Same values and gradients (the
recomputation runs the same kernels on the same inputs), less memory, about one more forward in time.

Which blocks: walking down from the network, every non-leaf child of a ``Sequential``/``ModuleList``
that holds a convolution (ResNet bottlenecks, the GAN's conv and residual blocks) is checkpointed,
and nothing inside it again. Leaf layers, pooling, upsampling and the MLPs stay as they are.

The block's ``forward`` is replaced on the instance, so parameter names, state dicts and checkpoints
do not change. BatchNorm running statistics would move twice (forward and recomputation): the
recomputation restores them, so training-mode blocks (E_id in stage 3) keep the one-pass statistics.
Non-reentrant checkpointing also carries second-order gradients (D's R1 penalty) and autocast.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

_FLAG = "_genreid_checkpointed"


class _RestoringBnBuffers:
    """Recomputation context: BatchNorm running buffers of ``block`` come back as they were. Reusable
    (a double backward, D's R1 penalty, recomputes a block more than once)."""

    def __init__(self, block: nn.Module):
        self.buffers = [b for m in block.modules() if isinstance(m, _BatchNorm)
                        for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
        self.saved: list[list[torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved.append([b.clone() for b in self.buffers])

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for b, s in zip(self.buffers, self.saved.pop()):
                b.copy_(s)


def _wrap(block: nn.Module) -> None:
    inner = block.forward  # the bound class forward

    def forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return inner(*args, **kwargs)
        return checkpoint(inner, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _RestoringBnBuffers(block)), **kwargs)

    block.forward = forward
    setattr(block, _FLAG, True)


def _has_conv(m: nn.Module) -> bool:
    return any(isinstance(c, nn.modules.conv._ConvNd) for c in m.modules())


def checkpoint_blocks(model: nn.Module) -> nn.Module:
    """Checkpoint ``model``'s conv blocks in place (idempotent); returns ``model``."""
    for parent in model.modules():
        if getattr(parent, _FLAG, False) or not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            continue
        if any(getattr(p, _FLAG, False) for p in _ancestors(model, parent)):
            continue
        for child in parent.children():
            if (not getattr(child, _FLAG, False) and not isinstance(child, (nn.Sequential, nn.ModuleList))
                    and next(child.children(), None) is not None and _has_conv(child)):
                _wrap(child)
    return model


def _ancestors(root: nn.Module, target: nn.Module) -> list[nn.Module]:
    """Modules on the path from ``root`` down to ``target`` (exclusive)."""
    path: list[nn.Module] = []

    def walk(m: nn.Module) -> bool:
        for c in m.children():
            if c is target:
                return True
            path.append(c)
            if walk(c):
                return True
            path.pop()
        return False

    walk(root)
    return [root, *path]


def checkpointed_blocks(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if getattr(m, _FLAG, False))
