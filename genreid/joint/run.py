"""Stage 3 end to end: load the warm-up encoder and (GCL, GCL+) the pre-trained generator, build the
method and the step from ``train``, train, and write the encoder selected on the validation split.
The control arms never touch the generator, its optimisers or the renders; everything else
(seeding, memory, clustering, batches, E_id's optimiser and schedule, validation, checkpoints) is shared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.gan import TrainConfig
from genreid.engine.batches import image_dataset
from genreid.engine.hooks import Validation, default_hooks
from genreid.engine.schedule import StepSchedule
from genreid.engine.selection import BestModel
from genreid.engine.setup import start_run
from genreid.engine.trainer import Hook, Trainer
from genreid.errors import CheckpointError
from genreid.gan.nets import GanNets
from genreid.gan.renders import open_renders
from genreid.joint.contrastive import StepInputs
from genreid.joint.iteration import DIVERGED_FIX, EncoderNets, build_optimisers
from genreid.models.generator import load_generator, load_generator_optimisers
from genreid.models.id_encoder import load_encoder
from genreid.registry import method_spec


def train_joint(train_df: pd.DataFrame, val_df: pd.DataFrame | None, render_dir: str | Path,
                encoder_path: str | Path, generator_path: str | Path, cfg: TrainConfig, method_name: str,
                runtime: RuntimeConfig, *, seed: int, height: int, width: int, model_dir: str | Path,
                results_dir: str | Path, device: torch.device | str = "cpu",
                stop_after_iters: int | None = None, extra_hooks: Sequence[Hook] = (),
                true_views_dir: str | Path | None = None) -> dict[str, Any]:
    """Train E_id jointly with the pre-trained generator (control arms: alone; ``generator_path`` and
    ``render_dir`` are then never opened); write ``model_dir/encoder.pt`` (val-selected).

    Under ``torchrun`` each rank trains on its share of every batch (gradients averaged, memory
    updated with every rank's features, clustering broadcast from rank 0); rank 0 writes the files.
    """
    method = method_spec(method_name)
    info, amp = start_run(device, runtime, seed, stage="train")
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    id_enc, _ = load_encoder(encoder_path, map_location=info.device)
    if cfg.pooling != "warmup":
        id_enc.set_pooling(cfg.pooling)
    if method.needs_generator:
        e_str, dec, dis, _ = load_generator(generator_path, map_location=info.device)
        if dec.stripe_dim != id_enc.channels or dec.stripes != id_enc.stripes:
            raise CheckpointError(f"{generator_path} was trained for {dec.stripes} x {dec.stripe_dim} appearance "
                                  f"codes but {encoder_path} gives {id_enc.stripes} x {id_enc.channels}",
                                  "rerun the pretrain stage with this encoder")
        nets: GanNets | EncoderNets = GanNets(*(amp.module(m).train() for m in (id_enc, e_str, dec, dis)))
    else:
        nets = EncoderNets(amp.module(id_enc).train())
    o = cfg.optim
    opts = build_optimisers(nets, cfg)
    if method.needs_generator and cfg.gan_optimizer == "resume":  # the authors' stage 3 continues stage 2's Adam
        stage2 = load_generator_optimisers(generator_path, map_location=info.device)
        for opt, name in ((opts.g, "g"), (opts.d, "d")):
            opt.load_state_dict(stage2[name])
            for group in opt.param_groups:  # moments from stage 2, hyper-parameters from train.optim
                group.update(weight_decay=o.weight_decay, betas=(o.beta1, o.beta2))
    store = open_renders(str(render_dir), "train", train_df, cfg.angles) if method.needs_generator else None
    dataset = image_dataset(train_df, height, width)
    val_set = image_dataset(val_df, height, width) if val_df is not None and len(val_df) else None
    validation = Validation(nets.id_encoder, val_set, cfg.eval_every, cfg.extract_batch_size, runtime.num_workers,
                            DIVERGED_FIX) if val_set is not None else None
    step = method.cls(cfg, StepInputs(nets=nets, opts=opts, dataset=dataset, info=info, amp=amp, seed=seed,
                                      store=store, camids=train_df["camid"].to_numpy(),
                                      true_ids=train_df["pid"].to_numpy(), validation=validation,
                                      model_dir=model_dir, results_dir=results_dir, num_workers=runtime.num_workers,
                                      true_views_dir=Path(true_views_dir) if true_views_dir else None))
    rates = {"g": cfg.stage3_lr_g, "d": cfg.stage3_lr_g, "id": o.lr_id}
    schedule = StepSchedule({k: rates[k] for k in opts.named()}, cfg.lr_gamma,
                            [cfg.step_epoch], decays=None if cfg.gd_lr_step else ("id",))
    best = BestModel(nets.id_encoder, use_validation=cfg.selection == "val_map" and val_set is not None)
    hooks = default_hooks(schedule, checkpoint_every_iters=cfg.checkpoint_every_iters, log_every=runtime.log_every,
                          validation=validation) + list(extra_hooks)
    trainer = Trainer(step, info=info, epochs=cfg.epochs, ckpt_dir=model_dir / "ckpt",
                      results_dir=results_dir / "train", best=best, hooks=hooks, stop_after_iters=stop_after_iters)
    return trainer.train()
