"""Stage 2 end to end: load the frozen encoder, build (E_str, G, D) from the config sections, train,
write ``generator.pt`` and the views sheet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.gan import PretrainConfig
from genreid.config.sections.model import GeneratorWidths
from genreid.engine.batches import image_dataset
from genreid.engine.hooks import default_hooks
from genreid.engine.schedule import StepSchedule
from genreid.engine.setup import start_run
from genreid.engine.trainer import Hook, Trainer
from genreid.gan.nets import GanNets
from genreid.gan.renders import open_renders
from genreid.gan.sheet import sheet_rows
from genreid.models.generator import build_generator
from genreid.models.id_encoder import load_encoder
from genreid.pretrain.step import PretrainStep


def pretrain_generator(train_df: pd.DataFrame, render_dir: str | Path, encoder_path: str | Path,
                       cfg: PretrainConfig, widths: GeneratorWidths, runtime: RuntimeConfig, *, seed: int,
                       height: int, width: int, model_dir: str | Path, results_dir: str | Path,
                       device: torch.device | str = "cpu", stop_after_iters: int | None = None,
                extra_hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train E_str, G, D; write ``model_dir/generator.pt``, ``results_dir/views.png`` and, next to the
    dvclive log, ``results_dir/train/summary.json`` and the per-epoch sheets.

    Under ``torchrun`` each rank trains on its share of every batch; rank 0 writes the files.
    """
    info, amp = start_run(device, runtime, seed, stage="pretrain")
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    id_enc, _ = load_encoder(encoder_path, map_location=info.device)
    id_enc = amp.module(id_enc).eval().requires_grad_(False)
    store = open_renders(str(render_dir), "train", train_df, cfg.angles)
    e_str, dec, dis = build_generator(widths, id_enc.channels, id_enc.stripes,
                                      adain_scale_offset=cfg.adain_scale_offset, code_norm=cfg.code_norm)
    nets = GanNets(id_enc, amp.module(e_str), amp.module(dec), amp.module(dis))
    dataset = image_dataset(train_df, height, width)
    step = PretrainStep(cfg, seed=seed, nets=nets, dataset=dataset, store=store,
                        sheet_rows=sheet_rows(dataset.pids, cfg.sheet_rows), info=info, amp=amp, model_dir=model_dir,
                        results_dir=results_dir, num_workers=runtime.num_workers)
    schedule = StepSchedule({"g": cfg.optim.lr_g, "d": cfg.optim.lr_d}, warm_iters=cfg.recon_warmup_iters,
                            warm_lr=cfg.recon_warmup_lr, warm=("g",))
    hooks = default_hooks(schedule, checkpoint_every_iters=cfg.checkpoint_every_iters, log_every=runtime.log_every,
                          validation=None) + list(extra_hooks)
    trainer = Trainer(step, info=info, epochs=cfg.epochs, ckpt_dir=model_dir / "ckpt",
                      results_dir=results_dir / "train", hooks=hooks, stop_after_iters=stop_after_iters)
    return trainer.train()
