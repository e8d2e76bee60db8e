"""DVC stage ``train@<ds>-<method>``: stage 3, joint generative-contrastive training (GCL or GCL+).

Reads data/prepared/<ds>/ (train and val manifests), data/meshes/<ds>/ (train renders),
models/<ds>/baseline/encoder.pt and models/<ds>/pretrain/generator.pt; writes
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
from genreid.config.loader import write_resolved_config
from genreid.errors import ConfigError
from genreid.stage import run_stage, stage_parser

METHODS = ("gcl", "gcl_plus")


def joint_settings(cfg: GenreidConfig, method: str):
    """Plain training settings for ``method`` from the ``train`` section."""
    from genreid.training.joint import JointSettings
    from genreid.training.joint_step import JointLossSettings

    t, g = cfg.train, cfg.train.gcl_plus
    losses = JointLossSettings(
        method=method, weights=t.weights.model_dump(), vi_weight=t.vi_weight, memory_temperature=t.memory_temperature,
        memory_momentum=t.memory_momentum, num_negatives=t.num_negatives, term3_negatives=t.term3_negatives,
        positive_includes_self=t.positive_includes_self, mixup=g.mixup, beta_alpha=g.beta_alpha, mix_adv=g.mix_adv,
        id_w=g.id_w, proto_temperature=g.proto_temperature, proto_normalise=g.proto_normalise)
    return JointSettings(
        losses=losses, epochs=t.epochs, iters_per_epoch=t.iters_per_epoch, batch_size=t.batch_size,
        step_epoch=t.step_epoch, lr_gamma=t.lr_gamma, angles=list(t.angles), lr_g=t.stage3_lr_g,
        lr_id=t.optim.lr_id, sgd_momentum=t.optim.momentum, weight_decay=t.optim.weight_decay,
        betas=(t.optim.beta1, t.optim.beta2), memory_init=t.memory_init, k1=t.k1, k2=t.k2,
        min_samples=t.min_samples, eps=t.gcl_plus_eps if method == "gcl_plus" else None,
        rho=t.gcl_rho if method == "gcl" else None, camera_norm=t.camera_norm,
        checkpoint_every_iters=t.checkpoint_every_iters,
        eval_every=t.eval_every, selection=t.selection, eval_batch_size=t.extract_batch_size, seed=cfg.seed,
        deterministic=cfg.runtime.deterministic, amp=cfg.runtime.amp, num_workers=cfg.runtime.num_workers)


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.training.joint import train_joint
    from genreid.utils.device import resolve_device

    ds, method = args.dataset, args.method
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not a stage-3 method",
                          f"use one of {', '.join(METHODS)} (the baseline is the warm-up encoder, stage 1)")
    tables = load_prepared(Path(cfg.data.root) / "prepared" / ds, splits=("train", "val"))
    results = Path("results") / ds / method
    train_joint(tables["train"], tables["val"], Path(cfg.data.root) / "meshes" / ds,
                Path("models") / ds / "baseline" / "encoder.pt", Path("models") / ds / "pretrain" / "generator.pt",
                cfg.data.height, cfg.data.width, Path("models") / ds / method, results, joint_settings(cfg, method),
                device=resolve_device(cfg.runtime.device))
    write_resolved_config(cfg, results / "train")


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0], per_method=True), argv)


if __name__ == "__main__":
    sys.exit(main())
