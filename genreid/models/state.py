"""Strict weight loading (unlike the authors' ``strict=False``, docs/method.md#known-traps-in-the-authors-code): a mismatch
raises :class:`CheckpointError` listing every missing, unexpected and mis-shaped key, and nothing
is loaded partially."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from genreid.errors import CheckpointError


def describe_key_mismatch(missing: list[str], unexpected: list[str], limit: int = 12) -> str:
    def block(title: str, keys: list[str]) -> str:
        if not keys:
            return ""
        shown = "\n".join(f"      {k}" for k in keys[:limit])
        more = f"\n      ... and {len(keys) - limit} more" if len(keys) > limit else ""
        return f"\n    {title} ({len(keys)}):\n{shown}{more}"

    return block("missing keys (in the model, not in the file)", missing) + \
        block("unexpected keys (in the file, not in the model)", unexpected)


def load_state_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights strictly; a mismatch raises CheckpointError listing every differing key and shape."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"checkpoint {source}: the weights entry is a {type(state_dict).__name__}, "
                              "not a mapping of parameter names to tensors",
                              "the file is not a genreid checkpoint of this network; rerun the stage that writes it")
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape_errors = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in sorted(set(own) & set(state_dict))
                    if hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape_errors:
        detail = describe_key_mismatch(missing, unexpected)
        if shape_errors:
            detail += "\n    shape mismatches:\n" + "\n".join(f"      {s}" for s in shape_errors[:12])
        raise CheckpointError(
            f"checkpoint {source} does not match the {type(module).__name__} architecture:{detail}",
            "check that the params (backbone, widths, embedding size) match those the checkpoint was "
            "trained with, or retrain; weights are never loaded partially")
    module.load_state_dict(state_dict, strict=True)
