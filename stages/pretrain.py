"""DVC stage ``pretrain@<ds>``: stage 2, generator warm-up with the warm-up encoder frozen.

Reads data/prepared/<ds>/ (train manifest), data/meshes/<ds>/ (train renders) and
models/<ds>/baseline/encoder.pt; writes models/<ds>/pretrain/generator.pt (checkpoints under
models/<ds>/pretrain/ckpt, persist), results/<ds>/pretrain/views.png and, under
results/<ds>/pretrain/train/, the dvclive log (per-epoch losses and generator sheets),
summary.json (history, throughput) and config.resolved.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.config.loader import write_resolved_config
from genreid.stage import run_stage, stage_parser


def generator_widths(cfg: GenreidConfig):
    """The generator's build arguments: ``model.generator`` widths and switches + the decoder's two pretrain
    switches."""
    from genreid.models.generator import GeneratorWidths

    g, p = cfg.model.generator, cfg.pretrain
    return GeneratorWidths(str_channels=tuple(g.str_channels), str_out=g.str_out, dec_channels=tuple(g.dec_channels),
                           mlp_dim=g.mlp_dim, dis_channels=tuple(g.dis_channels), dis_scales=g.dis_scales,
                           res_blocks=g.res_blocks, adain_scale_offset=p.adain_scale_offset, code_norm=p.code_norm,
                           code_split=g.code_split, aspp_activation=g.aspp_activation, decoder_norm=g.decoder_norm)


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.training.pretrain import PretrainSettings, pretrain_generator
    from genreid.utils.device import resolve_device

    ds, p = args.dataset, cfg.pretrain
    train_df = load_prepared(Path(cfg.data.root) / "prepared" / ds, splits=("train",))["train"]
    settings = PretrainSettings(
        epochs=p.epochs, batch_size=p.batch_size, iters_per_epoch=p.iters_per_epoch, angles=list(p.angles),
        weights=p.weights.model_dump(), lr_g=p.optim.lr_g, lr_d=p.optim.lr_d, weight_decay=p.optim.weight_decay,
        betas=(p.optim.beta1, p.optim.beta2), recon_warmup_iters=p.recon_warmup_iters,
        recon_warmup_lr=p.recon_warmup_lr, checkpoint_every_iters=p.checkpoint_every_iters,
        sheet_every=p.sheet_every, sheet_rows=p.sheet_rows, seed=cfg.seed, deterministic=cfg.runtime.deterministic,
        amp=cfg.runtime.amp, num_workers=cfg.runtime.num_workers)
    model_dir = Path("models") / ds / "pretrain"
    pretrain_generator(train_df, Path(cfg.data.root) / "meshes" / ds, Path("models") / ds / "baseline" / "encoder.pt",
                       generator_widths(cfg), cfg.data.height, cfg.data.width, model_dir,
                       Path("results") / ds / "pretrain", settings, device=resolve_device(cfg.runtime.device))
    write_resolved_config(cfg, Path("results") / ds / "pretrain" / "train")


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
