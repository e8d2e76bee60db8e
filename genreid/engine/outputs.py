"""The final write of a stage that trains the identity encoder (stages 1 and 3): the selected
weights into ``encoder.pt`` with the :class:`Selection` record, and ``train/summary.json``. Weights holding
NaN/inf (also a selected earlier snapshot) are refused before anything is written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from genreid.engine.context import StepEnv
from genreid.engine.guards import assert_finite_parameters
from genreid.engine.selection import Selection
from genreid.engine.trainer import Trainer
from genreid.models.id_encoder import save_encoder
from genreid.utils.atomic import write_json
from genreid.utils.provenance import run_record


def write_selected_encoder(trainer: Trainer, selection: Selection, encoder: nn.Module, env: StepEnv, *, method: str,
                           batch_size: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``env.model_dir/encoder.pt`` (the selected weights, recorded as ``method`` with ``extra``) and
    ``env.results_dir/train/summary.json`` (throughput at ``batch_size`` images per iteration)."""
    seed, model_dir, results_dir = env.seed, env.model_dir, env.results_dir
    selected = copy.deepcopy(encoder).cpu()
    if trainer.best is not None and trainer.best.selected_weights() is not None:
        selected.load_state_dict(trainer.best.selected_weights())
    assert_finite_parameters({"encoder": selected}, str(Path(model_dir) / "encoder.pt"))  # the selected snapshot
    record = {"method": method, **selection.as_dict(), "iterations": trainer.iteration, "epochs": trainer.epochs,
              "seed": seed, **(extra or {})}
    save_encoder(selected, Path(model_dir) / "encoder.pt", record)  # same weights, same bytes: no run facts
    summary = {**record, "resumed": trainer.resumed, "history": trainer.history, **trainer.throughput(batch_size),
               "world_size": trainer.info.world_size, "provenance": run_record(seed, trainer.info.device)}
    write_json(Path(results_dir) / "train" / "summary.json", summary)
    trainer.written += [Path(model_dir) / "encoder.pt", Path(results_dir) / "train" / "summary.json"]
    return summary
