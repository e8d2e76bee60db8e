"""Stop on a non-finite loss, naming the term, on every rank together (no rank left waiting); refuse
to write a checkpoint or an output file from non-finite weights (the gradient guard is in
:meth:`genreid.engine.amp.AmpContext.step`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from genreid.engine.dist import DistInfo, any_rank
from genreid.errors import TrainingDiverged


def host_values(parts: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
    """``parts`` as Python floats, in order, with one host transfer for all tensor values.

    Loss functions return their parts as detached 0-dim tensors; ``float()`` on each would wait for
    the device once per part (a dozen synchronisations per stage-3 step on a GPU). The values are
    exactly those ``float()`` gives (fp32 and lower precisions widen exactly)."""
    keys = [k for k, v in parts.items() if isinstance(v, torch.Tensor)]
    read = dict(zip(keys, torch.stack([parts[k].detach().float().reshape(()) for k in keys]).cpu().tolist())
                ) if keys else {}
    return {k: read[k] if k in read else float(v) for k, v in parts.items()}


def first_non_finite(values: dict[str, float | torch.Tensor]) -> tuple[str, float] | None:
    for name, value in values.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            return name, v
    return None


def assert_finite(values: dict[str, float | torch.Tensor], where: str, fix: str, info: DistInfo = DistInfo()) -> None:
    """Raise TrainingDiverged naming the first non-finite term (the last good checkpoint stays)."""
    bad = first_non_finite(values)
    if any_rank(bad is not None, info) and bad is None:
        bad = ("loss on another rank", float("nan"))
    if bad is not None:
        raise TrainingDiverged(f"{bad[0]} became {bad[1]} at {where}; training stopped, the last good "
                               "checkpoint is kept", fix)


PARAMETER_FIX = ("the weights became NaN/inf outside the guarded optimiser steps (fp16 scaler, a manual update); "
                 "lower the stage's learning rates and rerun to resume from the last good checkpoint")


def non_finite_parameters(modules: Mapping[str, nn.Module]) -> list[str]:
    """Names (``module.parameter``) of parameters holding NaN/inf; one host transfer for all of them."""
    named = [(f"{m}.{n}", p) for m, module in modules.items() for n, p in module.named_parameters()]
    if not named:
        return []
    ok = torch.stack([p.detach().isfinite().all() for _, p in named]).cpu()
    if bool(ok.all()):
        return []
    return [name for (name, _), good in zip(named, ok.tolist()) if not good]


def assert_finite_parameters(modules: Mapping[str, nn.Module], where: str) -> None:
    """Refuse to write ``where`` (a checkpoint, an output file) from weights holding NaN/inf."""
    bad = non_finite_parameters(modules)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise TrainingDiverged(f"non-finite weights in {shown}; {where} was not written", PARAMETER_FIX)
