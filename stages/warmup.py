"""DVC stage ``warmup@<ds>``: stage 1, Cluster-Contrast warm-up of the identity encoder ("baseline").

Reads data/prepared/<ds>/ (train and val manifests); writes models/<ds>/baseline/encoder.pt (the
epoch selected on validation mAP; ``extra`` holds the selected and last epoch, the val mAP
history and the resumed flag), checkpoints under models/<ds>/baseline/ckpt (persist) and, under
results/<ds>/baseline/train/, the dvclive log (loss, clusters, outlier ratio, NMI, ARI, val mAP
per epoch), summary.json and config.resolved.yaml. The test split is evaluated once, later, by
the evaluate stage. With ``warmup.source_dataset`` (UDA, stage ``warmup_uda``) the encoder starts from
models/<src>/source/encoder.pt (strict load). With ``warmup.import_encoder`` (stage ``warmup_import``)
the imported encoder, checked against the recipe's model, is written as encoder.pt instead. Runs under
torchrun for several GPUs (docs/usage.md#several-gpus-or-nodes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.errors import ConfigError
from genreid.layout import BASELINE_RUN, layout
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.registry import SOURCE_RUN
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.utils.device import resolve_device
    from genreid.warmup.imported import use_imported_encoder
    from genreid.warmup.run import train_warmup

    files, src = layout(cfg.data.root, args.dataset), cfg.warmup.source_dataset
    if cfg.warmup.import_encoder:  # stage warmup_import: the imported file is checked before anything is written
        use_imported_encoder(cfg.warmup.import_encoder, cfg.model, seed=cfg.seed,
                             model_dir=files.model_dir(BASELINE_RUN), results_dir=files.results_dir(BASELINE_RUN))
        return files.train_log(BASELINE_RUN)
    # UDA: start from the source-trained encoder (stage `source`); the target's warm-up is otherwise unchanged
    init = layout(cfg.data.root, src).encoder(SOURCE_RUN) if src is not None else None
    if init is not None and not init.is_file():
        raise ConfigError(f"warmup.source_dataset is {src!r} but {init} does not exist",
                          f"run the source pre-training first: `dvc repro source@{src}`")
    confirm_kept_for(files.checkpoints(BASELINE_RUN), cfg.model_dump(mode="json"))
    tables = load_prepared(files.prepared, splits=("train", "val"))
    ctx = RunContext(seed=cfg.seed, height=cfg.data.height, width=cfg.data.width,
                     model_dir=files.model_dir(BASELINE_RUN), results_dir=files.results_dir(BASELINE_RUN),
                     runtime=cfg.runtime, device=resolve_device(cfg.runtime.device))
    train_warmup(tables["train"], tables["val"], cfg.warmup, cfg.model, ctx, init_encoder=init)
    return files.train_log(BASELINE_RUN)


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
