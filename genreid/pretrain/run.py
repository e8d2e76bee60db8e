"""Stage 2 end to end: load the frozen encoder, build (E_str, G, D) from the config sections, train,
write ``generator.pt`` and the views sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from genreid.config.sections.gan import PretrainConfig
from genreid.config.sections.model import GeneratorWidths
from genreid.engine.context import RunContext
from genreid.engine.schedule import StepSchedule
from genreid.engine.setup import begin_training
from genreid.gan.nets import GanNets
from genreid.gan.renders import open_renders
from genreid.models.generator import build_generator
from genreid.models.id_encoder import load_encoder
from genreid.pretrain.step import PretrainStep


def pretrain_generator(train_df: pd.DataFrame, render_dir: str | Path, encoder_path: str | Path,
                       cfg: PretrainConfig, widths: GeneratorWidths, ctx: RunContext) -> dict[str, Any]:
    """Train E_str, G, D; write ``ctx.model_dir/generator.pt``, ``ctx.results_dir/views.png`` and, next to
    the dvclive log, ``ctx.results_dir/train/summary.json`` and the per-epoch sheets.

    Under ``torchrun`` each rank trains on its share of every batch; rank 0 writes the files.
    """
    run = begin_training(ctx, train_df, None, stage="pretrain")
    info, amp = run.env.info, run.env.amp
    id_enc, _ = load_encoder(encoder_path, map_location=info.device)
    id_enc = amp.module(id_enc).eval().requires_grad_(False)
    store = open_renders(str(render_dir), "train", train_df, cfg.angles)
    e_str, dec, dis = build_generator(widths, id_enc.channels, id_enc.stripes,
                                      adain_scale_offset=cfg.adain_scale_offset, code_norm=cfg.code_norm)
    nets = GanNets(id_enc, amp.module(e_str), amp.module(dec), amp.module(dis))
    step = PretrainStep.from_config(cfg, run, nets, store)
    schedule = StepSchedule({"g": cfg.optim.lr_g, "d": cfg.optim.lr_d}, warm_iters=cfg.recon_warmup_iters,
                            warm_lr=cfg.recon_warmup_lr, warm=("g",))
    return run.fit(step, cfg, schedule)
