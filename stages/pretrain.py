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
from genreid.layout import BASELINE_RUN, layout
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.registry import PRETRAIN_RUN
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.pretrain.run import pretrain_generator
    from genreid.utils.device import resolve_device

    files = layout(cfg.data.root, args.dataset)
    confirm_kept_for(files.checkpoints(PRETRAIN_RUN), cfg.model_dump(mode="json"))
    train_df = load_prepared(files.prepared, splits=("train",))["train"]
    ctx = RunContext(seed=cfg.seed, height=cfg.data.height, width=cfg.data.width,
                     model_dir=files.model_dir(PRETRAIN_RUN), results_dir=files.results_dir(PRETRAIN_RUN),
                     runtime=cfg.runtime, device=resolve_device(cfg.runtime.device))
    pretrain_generator(train_df, files.meshes, files.encoder(BASELINE_RUN), cfg.pretrain, cfg.model.generator, ctx)
    return files.train_log(PRETRAIN_RUN)


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
