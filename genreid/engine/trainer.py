"""The training loop every stage runs; a stage supplies only its :class:`TrainStep`.

One loop, in this order (identical for the warm-up, generator pre-training and joint training)::

    restore the newest checkpoint, or step.before_train()          (fresh run only)
    for each epoch:
        step.begin_epoch(epoch, fresh)       fresh=False when resuming inside the epoch
        for each remaining global batch (this rank's slice):
            hooks.before_step                the LR schedule
            step.run_step(batch)
            hooks.after_step                 progress log, periodic checkpoint, fault point
        record = step.end_epoch(epoch) + mean losses
        hooks.after_epoch(record)            validation + best-model selection, dvclive
        checkpoint (always at the end of an epoch)
    step.finish(selection)                   the stage's outputs, written by rank 0

Resume is by iteration: a checkpoint holds the engine's counters, every registered object's state
(:meth:`TrainStep.state`) and the RNG streams, so a run killed anywhere continues with the same
batches, draws and weights as an uninterrupted one. Timings never enter the checkpoint (a DVC
output); they go to ``<results>/timing.json`` next to the dvclive log.

Non-finite weights are never written: every registered module's parameters are checked before
each checkpoint and before ``step.finish`` writes the stage's outputs (on every rank, so all stop
together); the registered :class:`AmpContext` is told the optimisers' names, so its gradient guard
names the stage and optimiser that diverged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.checkpoint import Checkpointer, set_rng_state
from genreid.engine.dist import DistInfo
from genreid.engine.guards import assert_finite_parameters
from genreid.engine.selection import BestModel, Selection
from genreid.errors import CheckpointError, Interrupted
from genreid.models.state import load_state_strict
from genreid.utils.atomic import write_json

log = logging.getLogger(__name__)


class TrainStep:
    """What a stage supplies. Override what differs; the defaults do nothing."""

    name = "step"  # log prefix
    stage = ""  # the DVC stage, for the fault point ``<stage>.iter``; empty = ``name``

    def state(self) -> dict[str, Any]:
        """Objects with ``state_dict``/``load_state_dict`` saved in every checkpoint (registered once)."""
        return {}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def buffered_modules(self) -> list[nn.Module]:
        """Modules whose buffers (BatchNorm statistics) are made identical across ranks before saving."""
        return []

    def before_train(self, trainer: Trainer) -> None:
        """A fresh run's setup that depends on nothing saved (e.g. memory initialisation)."""

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        """Per-epoch setup; ``fresh`` is False when resuming inside the epoch (its state was restored)."""

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        """The epoch's global batches (deterministic from the seed and the epoch's restored state)."""
        raise NotImplementedError

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int) -> Iterable[Any]:
        raise NotImplementedError

    def run_step(self, trainer: Trainer, batch: Any) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return {}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        """Write the stage's outputs (rank 0 only); returns its summary."""
        return {}


class Hook:
    def before_train(self, trainer: Trainer) -> None: ...

    def before_step(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer, parts: dict[str, float]) -> None: ...

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...


class _Counters:
    """The engine's own registered state: position, history and this epoch's loss sums."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.sums: dict[str, list[float]] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "sums": self.sums}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.sums = {k: list(v) for k, v in state["sums"].items()}


class Trainer:
    def __init__(self, step: TrainStep, *, info: DistInfo, epochs: int, ckpt_dir: str | Path,
                 results_dir: str | Path, best: BestModel | None = None, hooks: Iterable[Hook] = (),
                 stop_after_iters: int | None = None):
        self.step, self.info, self.epochs = step, info, epochs
        self.results_dir = Path(results_dir)
        self.checkpointer = Checkpointer(ckpt_dir)
        self.best = best
        self.hooks = list(hooks)
        self.stop_after_iters = stop_after_iters
        self.epoch = self.iter_in_epoch = self.iteration = 0
        self.resumed = False
        self.counters = _Counters()
        self.busy_seconds = 0.0
        self.calls_iterations = 0
        self.written: list[Path] = []  # the files step.finish wrote, for the stage's summary line
        self._registry: dict[str, Any] = {}

    # --- state ---------------------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, Any]]:
        return self.counters.history

    def registry(self) -> dict[str, Any]:
        if not self._registry:
            self._registry = {**self.step.state(), "engine": self.counters}
            if self.best is not None:
                self._registry["best"] = self.best
        return self._registry

    def modules(self) -> dict[str, nn.Module]:
        """The registered networks (checked for non-finite weights before anything is written)."""
        return {k: v for k, v in self.registry().items() if isinstance(v, nn.Module)}

    def _name_optimisers(self) -> None:
        for obj in self.registry().values():
            if isinstance(obj, AmpContext):
                obj.name_optimisers(self.step.stage or self.step.name, self.step.optimisers())

    def save_checkpoint(self) -> None:
        dist.sync_buffers(self.step.buffered_modules(), self.info)
        assert_finite_parameters(self.modules(), f"the {self.step.name} checkpoint at iteration {self.iteration}")
        if self.info.is_main:
            self.checkpointer.save(self.iteration, self.epoch, self.iter_in_epoch,
                                   {k: v.state_dict() for k, v in self.registry().items()})
            write_json(self.results_dir / "timing.json", {"busy_seconds": round(self.busy_seconds, 3)})
        dist.barrier(self.info)

    def _restore(self) -> bool:
        blob = self.checkpointer.latest(map_location=self.info.device)
        if blob is None:
            return False
        registry = self.registry()
        missing = sorted(set(registry) - set(blob["state"]))
        if missing:
            raise CheckpointError(f"checkpoint in {self.checkpointer.folder} lacks {missing}",
                                  f"delete the files in {self.checkpointer.folder} to start this stage afresh")
        fix = f"delete the files in {self.checkpointer.folder} to start this stage afresh"
        for name, obj in registry.items():
            entry = blob["state"][name]
            if not isinstance(entry, Mapping):
                raise CheckpointError(f"checkpoint in {self.checkpointer.folder}: entry state.{name} is "
                                      f"{type(entry).__name__}, expected a mapping (damaged or foreign file)", fix)
            if isinstance(obj, nn.Module) and type(obj).load_state_dict is nn.Module.load_state_dict:
                load_state_strict(obj, entry, f"{self.checkpointer.folder} [{name}]")
                continue
            try:
                obj.load_state_dict(entry)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise CheckpointError(f"checkpoint in {self.checkpointer.folder}: entry state.{name} does not fit "
                                      f"this stage ({type(exc).__name__}: {exc})", fix) from None
        self.epoch, self.iter_in_epoch, self.iteration = blob["epoch"], blob["iter_in_epoch"], blob["step"]
        try:
            set_rng_state(blob["rng"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint in {self.checkpointer.folder}: entry rng is damaged "
                                  f"({type(exc).__name__}: {exc})", fix) from None
        timing = self.results_dir / "timing.json"
        if timing.is_file():
            self.busy_seconds = float(json.loads(timing.read_text()).get("busy_seconds", 0.0))
        log.info("%s: resuming from %s at epoch %d, iteration %d", self.step.name, self.checkpointer.folder,
                 self.epoch, self.iteration)
        return True

    # --- loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        try:
            return self._train()
        except KeyboardInterrupt:
            saved = self.checkpointer.paths()
            where = (f"rerunning the stage resumes from {saved[-1]}" if saved
                     else f"no checkpoint in {self.checkpointer.folder} yet, so rerunning the stage starts it afresh")
            raise Interrupted(f"{self.step.name} stopped at iteration {self.iteration}; {where}") from None

    def _train(self) -> dict[str, Any]:
        started = time.perf_counter()
        self._name_optimisers()
        self.resumed = self._restore()
        if not self.resumed:
            self.step.before_train(self)
        for h in self.hooks:
            h.before_train(self)
        while self.epoch < self.epochs:
            self.step.begin_epoch(self, self.epoch, fresh=self.iter_in_epoch == 0)
            batches = self.step.batches(self, self.epoch)
            self.epoch_length = len(batches)
            mine = [dist.shard_batch(b, self.info) for b in batches[self.iter_in_epoch:]]
            for batch in self.step.loader(self, mine, self.epoch):
                for h in self.hooks:
                    h.before_step(self)
                t0 = time.perf_counter()
                parts = self.step.run_step(self, batch)
                self.busy_seconds += time.perf_counter() - t0
                self.iteration += 1
                self.iter_in_epoch += 1
                self.calls_iterations += 1
                for k, v in parts.items():
                    total, count = self.counters.sums.get(k, (0.0, 0))
                    self.counters.sums[k] = [total + v, count + 1]
                for h in self.hooks:
                    h.after_step(self, parts)
                if self.stop_after_iters is not None and self.calls_iterations >= self.stop_after_iters:
                    self.save_checkpoint()  # exactly what a kill right after a checkpoint leaves
                    dist.release(self.info)
                    return {"stopped_early": True, "iterations": self.iteration}
            record: dict[str, Any] = {"epoch": self.epoch, "iterations": self.iteration,
                                      **{k: t / c for k, (t, c) in self.counters.sums.items()},
                                      **self.step.end_epoch(self, self.epoch)}
            for h in self.hooks:
                h.after_epoch(self, record)
            self.counters.history.append(record)
            self.epoch, self.iter_in_epoch, self.counters.sums = self.epoch + 1, 0, {}
            self.save_checkpoint()
        for h in self.hooks:
            h.after_train(self)
        summary: dict[str, Any] = {"rank": self.info.rank, "iterations": self.iteration}
        assert_finite_parameters(self.modules(), f"the {self.step.name} stage's output")
        if self.info.is_main:
            last = self.epochs - 1
            selection = self.best.selection(last) if self.best is not None else Selection("last_epoch", last, last)
            summary = self.step.finish(self, selection)
            log.info("%s", stage_line(self.step.name, time.perf_counter() - started, selection, self.epochs,
                                      self.written))
        dist.barrier(self.info)
        dist.release(self.info)
        return summary

    def throughput(self, batch_size: int) -> dict[str, Any]:
        """Busy seconds and rates of the whole run (for summary.json; never in a DVC-cached output)."""
        busy = self.busy_seconds
        return {"busy_seconds": round(busy, 3),
                "iterations_per_s": round(self.iteration / busy, 4) if busy else None,
                "images_per_s": round(self.iteration * batch_size / busy, 3) if busy else None}


def stage_line(name: str, seconds: float, selection: Selection, epochs: int, written: list[Path]) -> str:
    """The stage's closing line: ``warmup finished in 3.2 min | selected epoch 5/50 (val mAP 61.2%) |
    wrote models/x/encoder.pt, ...``; epochs are counted from 1 as in the progress lines."""
    took = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    parts = [f"{name} finished in {took}"]
    if selection.selected_epoch is not None:
        why = f" (val mAP {100 * selection.val_map:.1f}%)" if selection.val_map is not None else " (the last)"
        parts.append(f"selected epoch {selection.selected_epoch + 1}/{epochs}{why}")
    if written:
        parts.append("wrote " + ", ".join(p.as_posix() for p in written))
    return " | ".join(parts)
