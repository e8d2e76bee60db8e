"""What a training stage prints: running-mean progress lines every ``runtime.log_every`` iterations,
one summary line per epoch and one per stage, other libraries' INFO lines hidden unless verbose,
and a resume guard that tells a fresh workspace from a changed stage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from torch import nn

from genreid.config import resolve_recipe
from genreid.config.schema import RuntimeConfig
from genreid.engine.dist import DistInfo
from genreid.engine.hooks import EpochSummary, ProgressLog, epoch_line
from genreid.engine.selection import BestModel, Selection
from genreid.engine.trainer import Hook, Trainer, TrainStep, stage_line
from genreid.pipeline import resume_guard
from genreid.utils.console import configure_logging

ROOT = Path(__file__).resolve().parents[2]
LOSSES = [4.0, 2.0, 6.0, 1.0]  # iteration losses of one epoch: running means 4, 3, 4, 3.25


class ScriptedStep(TrainStep):
    """Four iterations per epoch with scripted losses; finish writes one file."""

    name = "toy"

    def __init__(self, out: Path):
        self.net = nn.Linear(2, 1)
        self.out = out

    def state(self) -> dict[str, Any]:
        return {"net": self.net}

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        return [[i] for i in range(len(LOSSES))]

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batches

    def run_step(self, trainer: Trainer, batch: Any) -> dict[str, float]:
        return {"loss": LOSSES[batch[0]] + trainer.epoch}

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return {"pseudo_num_clusters": 12.0 - epoch, "pseudo_num_outliers": 3.0, "pseudo_outlier_ratio": 0.25}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        self.out.write_text("weights")
        trainer.written.append(self.out)
        return {"selected_epoch": selection.selected_epoch}


class FixedValidation(Hook):
    """Validation mAP per epoch (fractions, as the evaluator returns them) offered to the tracker."""

    maps = [0.5, 0.75, 0.625]

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        record.update(val_mAP=self.maps[trainer.epoch], val_R1=self.maps[trainer.epoch] + 0.125)
        trainer.best.offer(trainer.epoch, self.maps[trainer.epoch])


def _messages(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


def test_progress_epoch_and_stage_lines(tmp_path, caplog):
    step = ScriptedStep(tmp_path / "encoder.pt")
    hooks = [ProgressLog(2), FixedValidation(), EpochSummary()]
    trainer = Trainer(step, info=DistInfo(), epochs=3, ckpt_dir=tmp_path / "ckpt", results_dir=tmp_path / "res",
                      best=BestModel(step.net, use_validation=True), hooks=hooks)
    with caplog.at_level(logging.INFO, logger="genreid"):
        assert trainer.train() == {"selected_epoch": 1}
    progress = _messages(caplog, "genreid.engine.hooks")
    iteration_lines = [m for m in progress if " it " in m]
    assert len(iteration_lines) == 6  # every 2nd of 4 iterations, 3 epochs
    # running means over the epoch so far, not the last iteration's value (2.0 and 1.0)
    assert iteration_lines[0].startswith("toy epoch 1/3 it 2/4") and iteration_lines[0].endswith("loss 3.000")
    assert iteration_lines[1].startswith("toy epoch 1/3 it 4/4") and iteration_lines[1].endswith("loss 3.250")
    assert iteration_lines[3].endswith("loss 4.250")  # epoch 2: every loss + 1
    epochs = [m for m in progress if " it " not in m]
    assert epochs == [
        "toy epoch 1/3: loss 3.250 | 12 clusters, 3 outliers (25.0%) | "
        "val mAP 50.0% R1 62.5% | best mAP 50.0% (epoch 1)",
        "toy epoch 2/3: loss 4.250 | 11 clusters, 3 outliers (25.0%) | "
        "val mAP 75.0% R1 87.5% | best mAP 75.0% (epoch 2)",
        "toy epoch 3/3: loss 5.250 | 10 clusters, 3 outliers (25.0%) | "
        "val mAP 62.5% R1 75.0% | best mAP 75.0% (epoch 2)",
    ]
    (closing,) = _messages(caplog, "genreid.engine.trainer")
    assert closing.startswith("toy finished in ")
    assert closing.endswith(f" | selected epoch 2/3 (val mAP 75.0%) | wrote {(tmp_path / 'encoder.pt').as_posix()}")


def test_lines_leave_out_what_a_stage_does_not_have():
    assert epoch_line("pretrain", 0, 2, {"epoch": 0, "iterations": 5, "g": 1.5, "d": 0.25, "lr": 1e-4}, None) == \
        "pretrain epoch 1/2: g 1.500  d 0.250"
    last = Selection("last_epoch", 1, 1)
    assert stage_line("pretrain", 125.0, last, 2, []) == "pretrain finished in 2.1 min | selected epoch 2/2 (the last)"


def test_the_progress_interval_is_a_runtime_key():
    assert RuntimeConfig().log_every == 50
    assert RuntimeConfig(log_every=7).log_every == 7
    with pytest.raises(ValueError):
        RuntimeConfig(log_every=0)


def test_third_party_info_is_hidden_unless_verbose(monkeypatch, capsys):
    monkeypatch.delenv("GENREID_VERBOSE", raising=False)
    monkeypatch.delenv("GENREID_LOG", raising=False)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("genreid").level)
    try:
        for verbose_env, flag, faiss_shown in (("", False, False), ("", True, True), ("1", False, True)):
            monkeypatch.setenv("GENREID_VERBOSE", verbose_env)
            configure_logging(flag)
            logging.getLogger("faiss.loader").info("Could not load library with AVX2 support")
            logging.getLogger("genreid.engine.hooks").info("warmup epoch 1/2: loss 1.000")
            logging.getLogger("faiss.loader").warning("a real faiss warning")
            err = capsys.readouterr().err
            assert ("Could not load library" in err) is faiss_shown, (verbose_env, flag)
            assert "warmup epoch 1/2" in err and "a real faiss warning" in err
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        logging.getLogger("genreid").setLevel(saved[2])


def test_resume_guard_says_no_earlier_run_on_a_fresh_workspace(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(resolve_recipe(ROOT / "params" / "tiny.yaml"), sort_keys=False))
    folder = tmp_path / "ckpt"
    monkeypatch.chdir(tmp_path)  # the guard's hash cache lives under ./.dvc/tmp: none here
    argv = [str(folder), "--params", str(params), "--stage", "warmup@synthetic", "--dvc-yaml", str(ROOT / "dvc.yaml")]

    def run() -> str:
        assert resume_guard.main(argv) == 0
        return capsys.readouterr().out.strip()

    assert run() == f"resume guard: no earlier run: fresh start in {folder}"
    assert run() == f"resume guard: resuming from {folder}"
    tree = yaml.safe_load(params.read_text())
    tree["warmup"]["lr"] = tree["warmup"]["lr"] * 2
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    assert run() == f"resume guard: params, code or inputs changed since the earlier run: fresh start in {folder}"
