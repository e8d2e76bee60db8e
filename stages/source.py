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
from genreid.errors import ConfigError
from genreid.layout import layout
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.registry import SOURCE_RUN
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.source.run import train_source
    from genreid.utils.device import resolve_device
    from genreid.warmup.run import encoder_kwargs

    ds = args.dataset
    if ds != cfg.warmup.source_dataset:
        raise ConfigError(f"--dataset {ds!r} is not the source (warmup.source_dataset is "
                          f"{cfg.warmup.source_dataset!r})", "run the source stage of warmup.source_dataset")
    files = layout(cfg.data.root, ds)
    confirm_kept_for(files.checkpoints(SOURCE_RUN), cfg.model_dump(mode="json"))
    tables = load_prepared(files.prepared, splits=("train", "val"))
    # the warm-up's pooling, so that its strict load of this encoder finds the same modules
    ctx = RunContext(seed=cfg.seed, height=cfg.data.height, width=cfg.data.width,
                     model_dir=files.model_dir(SOURCE_RUN), results_dir=files.results_dir(SOURCE_RUN),
                     runtime=cfg.runtime, device=resolve_device(cfg.runtime.device))
    train_source(tables["train"], tables["val"], cfg.source, encoder_kwargs(cfg.model, cfg.warmup.pooling), ctx)
    return files.train_log(SOURCE_RUN)


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
