"""What a training stage is given and what it hands its step, as two frozen records.

:class:`RunContext` holds what every trainer needs besides its own config section and inputs (seed,
network input size, device, the ``runtime`` keys, output folders, the test hooks); the stage script
builds it once from the config. :class:`StepEnv` is what a started run gives its
:class:`~genreid.engine.trainer.TrainStep`: the process info and mixed-precision context that
:func:`genreid.engine.setup.start_run` made, with the seed, folders and loader workers. Grouping them
keeps the runners' and steps' signatures to the stage-specific arguments (detectron2's
``from_config`` and FastReID's default trainer follow the same split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from genreid.engine.amp import AmpContext
from genreid.engine.dist import DistInfo
from genreid.engine.trainer import Hook


class RuntimeFlags(Protocol):
    """The ``runtime`` keys a training stage reads (``RuntimeConfig`` has them; the engine does not
    import the config layer)."""

    deterministic: bool
    amp: str
    channels_last: bool
    activation_checkpointing: bool
    num_workers: int
    log_every: int


@dataclass(frozen=True)
class RunContext:
    """Everything a trainer takes that is not its own config section or its inputs.

    ``stop_after_iters`` checkpoints and returns after that many iterations of this call, exactly what a
    kill right after a checkpoint leaves (tests use it); ``extra_hooks`` run after the default hooks."""

    seed: int
    height: int
    width: int
    model_dir: Path
    results_dir: Path
    runtime: RuntimeFlags
    device: torch.device | str = "cpu"
    stop_after_iters: int | None = None
    extra_hooks: Sequence[Hook] = field(default=())

    def __post_init__(self) -> None:
        # folders may be given as strings (tests, scripts); the runners join paths onto them
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        object.__setattr__(self, "results_dir", Path(self.results_dir))
        object.__setattr__(self, "extra_hooks", tuple(self.extra_hooks))


@dataclass(frozen=True)
class StepEnv:
    """What a step reads from its started run: process info, mixed precision, the seed its RNG streams
    derive from, the output folders and the data-loader workers."""

    info: DistInfo
    amp: AmpContext
    seed: int
    model_dir: Path
    results_dir: Path
    num_workers: int = 0
