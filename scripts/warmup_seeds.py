"""Warm-up versus the untrained encoder over several seeds, on a prepared dataset's test split.

    .venv/bin/python scripts/warmup_seeds.py --params params.yaml --dataset synthetic --seeds 1 2 3 \
        --work /tmp/warmup_seeds

For each seed: the untrained encoder (same seed, same arch as the warm-up's) and a full warm-up
run (the stage's code path, outputs under ``--work``), both evaluated on query/gallery with the
evaluation engine. Prints a table and writes ``<work>/warmup_seeds.json`` (per seed, mean, std,
wall time). An ad-hoc check of the warm-up recipe; the pipeline's own numbers come from ``dvc repro``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_metrics(model: torch.nn.Module, frames: dict, height: int, width: int, device) -> dict[str, float]:
    from genreid.data.loader import ImageDataset
    from genreid.evaluation import evaluate_features
    from genreid.evaluation.extract import extract_features

    q = extract_features(model, ImageDataset(frames["query"], height, width), batch_size=256, device=device)
    g = extract_features(model, ImageDataset(frames["gallery"], height, width), batch_size=256, device=device)
    res = evaluate_features(q.features, g.features, q.pids, g.pids, q.camids, g.camids).result
    return {"mAP": 100 * float(res.mAP), "R1": 100 * float(res.rank(1))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--work", default="/tmp/warmup_seeds")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    from genreid.config import load_config
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.models.id_encoder import build_encoder, load_encoder
    from genreid.stage import apply_runtime
    from genreid.utils.device import resolve_device
    from genreid.utils.seeding import seed_everything
    from genreid.warmup.run import encoder_kwargs, train_warmup

    cfg = load_config(args.params)
    apply_runtime(cfg)
    device = resolve_device(cfg.runtime.device)
    frames = load_prepared(Path(cfg.data.root) / "prepared" / args.dataset)
    h, w = cfg.data.height, cfg.data.width
    rows = []
    for seed in args.seeds:
        cfg.seed = seed
        out = Path(args.work) / f"seed{seed}"
        seed_everything(seed)
        untrained = build_encoder(**encoder_kwargs(cfg.model, cfg.warmup.pooling)).to(device)
        before = test_metrics(untrained, frames, h, w, device)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        ctx = RunContext(seed=seed, height=h, width=w, model_dir=out / "models", results_dir=out / "results",
                         runtime=cfg.runtime, device=device)
        summary = train_warmup(frames["train"], frames["val"], cfg.warmup, cfg.model, ctx)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        model, extra = load_encoder(out / "models" / "encoder.pt", map_location=device)
        after = test_metrics(model, frames, h, w, device)
        last = summary["history"][-1]
        rows.append({"seed": seed, "untrained": before, "warmup": after, "warmup_wall_s": round(wall, 1),
                     "warmup_cpu_s": round(cpu, 1),
                     "selected_epoch": extra["selected_epoch"], "val_map": extra["val_map"],
                     "last_clusters": last["pseudo_num_clusters"], "last_nmi": last["pseudo_nmi"],
                     "last_outlier_ratio": last["pseudo_outlier_ratio"]})
        print(json.dumps(rows[-1]), flush=True)
    table = {"rows": rows}
    for key in ("untrained", "warmup"):
        for metric in ("mAP", "R1"):
            values = np.array([r[key][metric] for r in rows])
            table[f"{key}_{metric}"] = {"mean": float(values.mean()), "std": float(values.std(ddof=0))}
    table["warmup_wall_s_mean"] = float(np.mean([r["warmup_wall_s"] for r in rows]))
    table["warmup_cpu_s_mean"] = float(np.mean([r["warmup_cpu_s"] for r in rows]))
    Path(args.work).mkdir(parents=True, exist_ok=True)
    (Path(args.work) / "warmup_seeds.json").write_text(json.dumps(table, indent=2))
    for key in ("untrained", "warmup"):
        print(f"{key:10s} mAP {table[f'{key}_mAP']['mean']:.1f} +- {table[f'{key}_mAP']['std']:.1f}   "
              f"R1 {table[f'{key}_R1']['mean']:.1f} +- {table[f'{key}_R1']['std']:.1f}")
    print(f"warm-up per seed: wall {table['warmup_wall_s_mean']:.0f} s, CPU {table['warmup_cpu_s_mean']:.0f} s "
          "(all threads; on an otherwise idle machine wall is about CPU / threads)")


if __name__ == "__main__":
    main()
