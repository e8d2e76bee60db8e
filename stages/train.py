"""DVC stage ``train@<ds>-<method>``: stage 3, joint generative-contrastive training (GCL or GCL+), or a
control arm without a generator (control_aug, control_none: generator.pt and the renders are not read).

Reads data/prepared/<ds>/ (train and val manifests), data/meshes/<ds>/ (train renders),
models/<ds>/baseline/encoder.pt and models/<ds>/pretrain/generator.pt (oracle_views instead reads the
training split's true views in data/true_views/<ds>/, SynthReID only); writes
models/<ds>/<method>/encoder.pt (selected on the validation split; ``extra`` holds the selected and
last epoch, the history and the resumed flag), checkpoints under models/<ds>/<method>/ckpt
(persist) and, under results/<ds>/<method>/train/, the dvclive log, summary.json and
config.resolved.yaml. The test split is evaluated once, later, by the evaluate stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import BASELINE_RUN, layout
from genreid.pipeline.resume_guard import confirm_kept_for
from genreid.registry import method_names
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.joint.run import JointInputs, train_joint
    from genreid.utils.device import resolve_device

    files, method = layout(cfg.data.root, args.dataset), args.method
    confirm_kept_for(files.checkpoints(method), cfg.model_dump(mode="json"))
    tables = load_prepared(files.prepared, splits=("train", "val"))
    ctx = RunContext(seed=cfg.seed, height=cfg.data.height, width=cfg.data.width,
                     model_dir=files.model_dir(method), results_dir=files.results_dir(method),
                     runtime=cfg.runtime, device=resolve_device(cfg.runtime.device))
    inputs = JointInputs(encoder=files.encoder(BASELINE_RUN), generator=files.generator, renders=files.meshes,
                         true_views=files.true_views)
    train_joint(tables["train"], tables["val"], inputs, cfg.train, method, ctx)
    return files.train_log(method)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0], per_method=True, method_choices=method_names())
    return run_stage(body, parser, argv, trainer=True)


if __name__ == "__main__":
    sys.exit(main())
