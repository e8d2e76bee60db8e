"""DVC stage ``source@<src>``: UDA source pre-training, the identity encoder trained with labels.

Reads data/prepared/<src>/ (train and val manifests of the labelled source, ``warmup.source_dataset``);
writes models/<src>/source/encoder.pt (the epoch selected on source validation mAP, the warm-up's
architecture so the target's warm-up loads it strictly), checkpoints under models/<src>/source/ckpt
(persist) and, under results/<src>/source/train/, the dvclive log, summary.json and config.resolved.yaml.
The source test split is evaluated by ``evaluate_source``, the target's by ``evaluate_direct``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.config.loader import write_resolved_config
from genreid.errors import ConfigError
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.source.run import train_source
    from genreid.utils.device import resolve_device
    from genreid.warmup.run import encoder_kwargs

    ds = args.dataset
    if ds != cfg.warmup.source_dataset:
        raise ConfigError(f"--dataset {ds!r} is not the source (warmup.source_dataset is "
                          f"{cfg.warmup.source_dataset!r})", "run the source stage of warmup.source_dataset")
    confirm_kept_for(Path("models") / ds / "source" / "ckpt", cfg.model_dump(mode="json"))
    tables = load_prepared(Path(cfg.data.root) / "prepared" / ds, splits=("train", "val"))
    results = Path("results") / ds / "source"
    # the warm-up's pooling, so that its strict load of this encoder finds the same modules
    summary = train_source(tables["train"], tables["val"], cfg.source, encoder_kwargs(cfg.model, cfg.warmup.pooling),
                           cfg.runtime, seed=cfg.seed, height=cfg.data.height, width=cfg.data.width,
                           model_dir=Path("models") / ds / "source", results_dir=results,
                           device=resolve_device(cfg.runtime.device))
    if summary.get("selected_on"):  # rank 0 wrote the outputs
        write_resolved_config(cfg, results / "train")


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
