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
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.pretrain.run import pretrain_generator
    from genreid.utils.device import resolve_device

    ds = args.dataset
    confirm_kept_for(Path("models") / ds / "pretrain" / "ckpt", cfg.model_dump(mode="json"))
    train_df = load_prepared(Path(cfg.data.root) / "prepared" / ds, splits=("train",))["train"]
    pretrain_generator(train_df, Path(cfg.data.root) / "meshes" / ds, Path("models") / ds / "baseline" / "encoder.pt",
                       cfg.pretrain, cfg.model.generator, cfg.runtime, seed=cfg.seed,
                       height=cfg.data.height, width=cfg.data.width, model_dir=Path("models") / ds / "pretrain",
                       results_dir=Path("results") / ds / "pretrain", device=resolve_device(cfg.runtime.device))
    write_resolved_config(cfg, Path("results") / ds / "pretrain" / "train")


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
