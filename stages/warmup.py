"""DVC stage ``warmup@<ds>``: stage 1, Cluster-Contrast warm-up of the identity encoder ("baseline").

Reads data/prepared/<ds>/ (train and val manifests); writes models/<ds>/baseline/encoder.pt (the
epoch selected on validation mAP; ``extra`` holds the selected and last epoch, the val mAP
history and the resumed flag), checkpoints under models/<ds>/baseline/ckpt (persist) and, under
results/<ds>/baseline/train/, the dvclive log (loss, clusters, outlier ratio, NMI, ARI, val mAP
per epoch), summary.json and config.resolved.yaml. The test split is evaluated once, later, by
the evaluate stage. Runs under torchrun for several GPUs (README "Several GPUs or nodes").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.config.loader import write_resolved_config
from genreid.errors import ConfigError
from genreid.stage import run_stage, stage_parser


def encoder_args(cfg: GenreidConfig) -> dict:
    """The identity encoder's build arguments: ``model`` with ``warmup.pooling`` (if set) on top."""
    m = cfg.model
    return {"backbone": m.backbone, "pretrained": m.pretrained, "pooling": cfg.warmup.pooling or m.pooling,
            "embedding_dim": m.embedding_dim, "last_stride": m.last_stride, "stripes": m.stripes}


def warmup_settings(cfg: GenreidConfig):
    from genreid.training.warmup import WarmupSettings

    w = cfg.warmup
    return WarmupSettings(
        epochs=w.epochs, iters_per_epoch=w.iters_per_epoch, batch_size=w.batch_size, num_instances=w.num_instances,
        lr=w.lr, weight_decay=w.weight_decay, step_size=w.step_size, gamma=w.lr_gamma, temperature=w.temperature,
        momentum=w.momentum, bn_group_size=w.bn_group_size, eps=w.cluster.eps, rho=w.cluster.rho, k1=w.cluster.k1,
        k2=w.cluster.k2, min_samples=w.cluster.min_samples, camera_norm=w.cluster.camera_norm, augment=w.augment,
        eval_every=w.eval_every, checkpoint_every=w.checkpoint_every, extract_batch_size=w.extract_batch_size,
        seed=cfg.seed, deterministic=cfg.runtime.deterministic, amp=cfg.runtime.amp,
        num_workers=cfg.runtime.num_workers)


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.training.warmup import train_warmup
    from genreid.utils.device import resolve_device

    ds = args.dataset
    if cfg.warmup.source_dataset is not None:
        raise ConfigError(f"warmup.source_dataset is {cfg.warmup.source_dataset!r}: supervised source pre-training "
                          "(UDA) is not implemented yet", "set warmup.source_dataset: null for fully unsupervised runs")
    tables = load_prepared(Path(cfg.data.root) / "prepared" / ds, splits=("train", "val"))
    results = Path("results") / ds / "baseline"
    summary = train_warmup(tables["train"], tables["val"], encoder_args(cfg), cfg.data.height, cfg.data.width,
                           Path("models") / ds / "baseline", results, warmup_settings(cfg),
                           device=resolve_device(cfg.runtime.device))
    if summary:  # the main process (all of them without torchrun)
        write_resolved_config(cfg, results / "train")


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
