"""What every training stage does first, in one place: join the process group, check the P x K batch
split, seed, build the mixed-precision context. The order is part of the result (the RNG streams
start at the seed), so stages call :func:`start_run` rather than repeating its lines."""

from __future__ import annotations

from typing import Protocol

import torch

from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.errors import ConfigError
from genreid.utils.seeding import seed_everything, stream_seed


class RuntimeFlags(Protocol):
    """The ``runtime`` keys a stage's start reads (``RuntimeConfig`` has them; the engine does not
    import the config layer)."""

    deterministic: bool
    amp: str
    channels_last: bool
    activation_checkpointing: bool


def check_pk_split(section: str, batch_size: int, num_instances: int, world_size: int) -> None:
    """A P x K batch must split into whole groups of ``num_instances`` on every process."""
    if batch_size % (world_size * num_instances):
        raise ConfigError(f"{section}.batch_size {batch_size} must split into {world_size} process(es) x "
                          f"groups of {section}.num_instances {num_instances}", "change batch_size or num_instances")


def start_run(device: torch.device | str, runtime: RuntimeFlags, seed: int, *, stage: str,
              pk_split: tuple[str, int, int] | None = None) -> tuple[dist.DistInfo, AmpContext]:
    """Initialise distributed training (one process when not under ``torchrun``), check the P x K split
    ``pk_split = (section, batch_size, num_instances)`` if given, seed every RNG with the stage's
    ``init`` stream, and return the process info with the ``runtime.amp`` / ``channels_last`` /
    activation-checkpointing context."""
    info = dist.init_distributed(device)
    if pk_split is not None:
        check_pk_split(*pk_split, info.world_size)
    seed_everything(stream_seed(seed, stage, 0, "init"), runtime.deterministic)
    amp = AmpContext(info.device, runtime.amp, runtime.channels_last, runtime.activation_checkpointing)
    return info, amp
