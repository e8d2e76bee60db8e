"""Stage 3 end to end: load the warm-up encoder and (GCL, GCL+) the pre-trained generator, build the
method and the step from ``train``, train, and write the encoder selected on the validation split.
The control arms never touch the generator, its optimisers or the renders; everything else
(seeding, memory, clustering, batches, E_id's optimiser and schedule, validation, checkpoints) is shared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genreid.config.sections.gan import TrainConfig
from genreid.engine.context import RunContext
from genreid.engine.schedule import StepSchedule
from genreid.engine.selection import BestModel
from genreid.engine.setup import begin_training
from genreid.errors import CheckpointError
from genreid.gan.nets import GanNets
from genreid.gan.renders import open_renders
from genreid.joint.iteration import DIVERGED_FIX, EncoderNets, build_optimisers
from genreid.models.generator import load_generator, load_generator_optimisers
from genreid.models.id_encoder import load_encoder
from genreid.registry import method_spec


@dataclass(frozen=True)
class JointInputs:
    """The files stage 3 starts from. Arms without a generator never open ``generator`` or ``renders``."""

    encoder: str | Path  # the warm-up encoder (models/<ds>/baseline/encoder.pt)
    generator: str | Path  # the pre-trained generator (models/<ds>/pretrain/generator.pt)
    renders: str | Path  # the mesh renders (data/meshes/<ds>)
    true_views: str | Path | None = None  # SynthReID's true novel views (data/true_views/<ds>; oracle_views)


def train_joint(train_df: pd.DataFrame, val_df: pd.DataFrame | None, inputs: JointInputs, cfg: TrainConfig,
                method_name: str, ctx: RunContext) -> dict[str, Any]:
    """Train E_id jointly with the pre-trained generator (control arms: alone); write
    ``ctx.model_dir/encoder.pt`` (val-selected).

    Under ``torchrun`` each rank trains on its share of every batch (gradients averaged, memory
    updated with every rank's features, clustering broadcast from rank 0); rank 0 writes the files.
    """
    method = method_spec(method_name)
    run = begin_training(ctx, train_df, val_df, stage="train")
    info, amp = run.env.info, run.env.amp
    id_enc, _ = load_encoder(inputs.encoder, map_location=info.device)
    if cfg.pooling != "warmup":
        id_enc.set_pooling(cfg.pooling)
    if method.needs_generator:
        e_str, dec, dis, _ = load_generator(inputs.generator, map_location=info.device)
        if dec.stripe_dim != id_enc.channels or dec.stripes != id_enc.stripes:
            raise CheckpointError(f"{inputs.generator} was trained for {dec.stripes} x {dec.stripe_dim} appearance "
                                  f"codes but {inputs.encoder} gives {id_enc.stripes} x {id_enc.channels}",
                                  "rerun the pretrain stage with this encoder")
        nets: GanNets | EncoderNets = GanNets(*(amp.module(m).train() for m in (id_enc, e_str, dec, dis)))
    else:
        nets = EncoderNets(amp.module(id_enc).train())
    o = cfg.optim
    opts = build_optimisers(nets, cfg)
    if method.needs_generator and cfg.gan_optimizer == "resume":  # the authors' stage 3 continues stage 2's Adam
        stage2 = load_generator_optimisers(inputs.generator, map_location=info.device)
        for opt, name in ((opts.g, "g"), (opts.d, "d")):
            opt.load_state_dict(stage2[name])
            for group in opt.param_groups:  # moments from stage 2, hyper-parameters from train.optim
                group.update(weight_decay=o.weight_decay, betas=(o.beta1, o.beta2))
    store = open_renders(str(inputs.renders), "train", train_df, cfg.angles) if method.needs_generator else None
    validation = run.validation(nets.id_encoder, cfg, DIVERGED_FIX)
    step = method.cls.from_config(cfg, run, nets, opts, store=store, validation=validation,
                                  true_views_dir=inputs.true_views)
    rates = {"g": cfg.stage3_lr_g, "d": cfg.stage3_lr_g, "id": o.lr_id}
    schedule = StepSchedule({k: rates[k] for k in opts.named()}, cfg.lr_gamma,
                            [cfg.step_epoch], decays=None if cfg.gd_lr_step else ("id",))
    best = BestModel(nets.id_encoder, use_validation=cfg.selection == "val_map" and run.val_set is not None)
    return run.fit(step, cfg, schedule, best=best, validation=validation)
