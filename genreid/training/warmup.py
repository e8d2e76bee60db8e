"""Stage 1: identity-encoder warm-up with Cluster-Contrast (METHOD.md section 7), the "baseline" row.

Each epoch: features of all training images (eval mode) -> k-reciprocal Jaccard -> DBSCAN
pseudo-labels (outliers dropped; quality logged, true ids never used) -> cluster memory from
the centroids -> ``iters_per_epoch`` PK batches, loss ``CE(f C^T / tau)``, Adam, memory update
after each step. BN statistics come from groups of ``bn_group_size`` images (ghost BN), so one
device reproduces the published 4 GPUs x 64 recipe. Model selection on the validation split.

Every epoch draws its randomness from ``(seed, epoch, rank)`` and ends with an atomic checkpoint
(weights, optimiser, scheduler, history, best weights), so a run killed anywhere resumes at the
start of the unfinished epoch and ends with the same weights as an uninterrupted run on CPU.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from torch.utils.data import Subset

from genreid.cluster import cluster_features
from genreid.data.loader import ImageDataset, make_loader
from genreid.data.samplers import RandomIdentitySampler
from genreid.errors import ConfigError, GenreidError
from genreid.evaluation.extract import extract_features
from genreid.memory.cluster_memory import ClusterMemory
from genreid.models.id_encoder import build_encoder, save_encoder
from genreid.models.layers import set_bn_group_size
from genreid.training import ddp
from genreid.training.checkpoint import CheckpointManager, assert_finite, load_state_strict
from genreid.training.gan_batch import AmpContext
from genreid.training.live import open_live
from genreid.training.validation import validate
from genreid.utils.atomic import write_json
from genreid.utils.faults import fault_point
from genreid.utils.provenance import run_record
from genreid.utils.seeding import seed_everything

log = logging.getLogger(__name__)
CACHE_LIMIT_BYTES = 1 << 30  # keep decoded images in memory when the split fits in 1 GB


@dataclass
class WarmupSettings:
    epochs: int = 50
    iters_per_epoch: int = 200
    batch_size: int = 256
    num_instances: int = 16
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    step_size: int = 20
    gamma: float = 0.1
    temperature: float = 0.05
    momentum: float = 0.1
    bn_group_size: int = 64
    eps: float | None = 0.6
    rho: float = 0.002
    k1: int = 30
    k2: int = 6
    min_samples: int = 4
    camera_norm: bool = False
    augment: bool = False
    eval_every: int = 5
    checkpoint_every: int = 1
    extract_batch_size: int = 128
    seed: int = 1
    deterministic: bool = True
    amp: str = "off"
    num_workers: int = 0
    log_every: int = 50


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed python/numpy/torch from (seed, epoch, rank): a resumed epoch repeats exactly."""
    s = epoch_seed(seed, epoch, rank)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s


def make_dataset(df: pd.DataFrame, height: int, width: int) -> ImageDataset:
    return ImageDataset(df, height, width, cache=len(df) * 3 * height * width * 4 <= CACHE_LIMIT_BYTES)


def pseudo_labels(model: torch.nn.Module, dataset: ImageDataset, s: WarmupSettings, info: ddp.DistInfo,
                  true_ids: np.ndarray | None, camids: np.ndarray | None = None
                  ) -> tuple[torch.Tensor, np.ndarray, dict[str, Any]]:
    """Normalised features (CPU) of the whole split, DBSCAN labels and their quality."""
    mine = ddp.shard(len(dataset), info)
    feats = extract_features(ddp.unwrap(model), Subset(dataset, mine.tolist()) if info.enabled else dataset,
                             batch_size=s.extract_batch_size, device=info.device, num_workers=s.num_workers)
    features = ddp.gather_sharded(feats.features.to(info.device), len(dataset), info).cpu()
    labels, quality = cluster_features(features, eps=s.eps, rho=None if s.eps is not None else s.rho,
                                       min_samples=s.min_samples, k1=s.k1, k2=s.k2, true_ids=true_ids,
                                       camids=camids if s.camera_norm else None)
    return features, ddp.broadcast_array(labels, info), quality


def augment_batch(images: torch.Tensor) -> torch.Tensor:
    """Cluster-Contrast's training augmentation, drawn per image: horizontal flip, pad (10 px at
    256x128, scaled) + random crop, random erasing (p 0.5). Off by default: GCL's only views are
    the generated ones (METHOD.md section 2)."""
    h, w = images.shape[-2:]
    pad = max(1, round(10 * h / 256))
    t = T.Compose([T.RandomHorizontalFlip(), T.Pad(pad), T.RandomCrop((h, w)), T.RandomErasing(p=0.5, value=0)])
    return torch.stack([t(img) for img in images])


def train_step(model: torch.nn.Module, memory: ClusterMemory, optimizer: torch.optim.Optimizer,
               images: torch.Tensor, targets: torch.Tensor, info: ddp.DistInfo, amp: AmpContext) -> float:
    """One Cluster-Contrast iteration; the memory is updated with every rank's batch, in rank order."""
    with amp.autocast():
        _, f = model(images)
    f = F.normalize(f.float(), dim=1)
    loss = memory(f, targets)
    assert_finite({"loss": loss}, "warm-up iteration")
    optimizer.zero_grad(set_to_none=True)
    amp.backward(loss)
    amp.step(optimizer)
    amp.update()
    memory.update(ddp.all_gather_cat(f.detach(), info), ddp.all_gather_cat(targets, info))
    return float(loss.detach())


def _forever(loader) -> Iterator[dict]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:  # e.g. every sampled batch shorter than the loader's: never loop forever
            raise GenreidError("the warm-up loader produced no full batch this epoch",
                               "lower warmup.batch_size or warmup.num_instances, or check the clustering")


def train_warmup(train_df: pd.DataFrame, val_df: pd.DataFrame | None, encoder_args: dict[str, Any],
                 height: int, width: int, model_dir: str | Path, results_dir: str | Path, settings: WarmupSettings,
                 device: torch.device | str = "cpu", stop_after_iters: int | None = None) -> dict[str, Any]:
    """Train, select on validation mAP, write ``model_dir/encoder.pt`` and ``results_dir/train/``.

    ``stop_after_iters`` returns after that many iterations of this call without checkpointing
    the unfinished epoch, exactly like a kill (tests use it).
    """
    s = settings
    info = ddp.init_distributed(torch.device(device))
    if s.batch_size % (info.world_size * s.num_instances):
        raise ConfigError(f"warmup.batch_size {s.batch_size} must split into {info.world_size} process(es) x "
                          f"groups of warmup.num_instances {s.num_instances}", "change batch_size or num_instances")
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    seed_everything(s.seed, s.deterministic)
    encoder = set_bn_group_size(build_encoder(**encoder_args), s.bn_group_size).to(info.device)
    model = ddp.wrap(encoder, info)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    memory = ClusterMemory(encoder.embedding_dim, s.temperature, s.momentum).to(info.device)
    amp = AmpContext(info.device, s.amp)

    ckpt = CheckpointManager(model_dir / "ckpt")
    state = ckpt.latest(map_location=info.device)
    start, history, best, busy = 0, [], None, 0.0
    resumed = state is not None
    if resumed:
        load_state_strict(encoder, state["model"], f"{ckpt.folder} [encoder]")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, best, busy = state["epoch"], state["history"], state["best"], state["busy_s"]
        log.info("resuming warm-up from %s at epoch %d", ckpt.folder, start)

    train_set = make_dataset(train_df, height, width)
    val_set = make_dataset(val_df, height, width) if val_df is not None and len(val_df) else None
    true_ids = train_df["pid"].to_numpy(dtype=np.int64)
    camids = train_df["camid"].to_numpy(dtype=np.int64)
    live = open_live(results_dir / "train", resume=False) if info.is_main else None
    for row in history:  # the log always mirrors the checkpoint, even after a kill between the two
        _log_epoch(live, row)
    done = 0
    for epoch in range(start, s.epochs):
        t0 = time.perf_counter()
        seed = seed_epoch(s.seed, epoch, info.rank)
        features, labels, quality = pseudo_labels(model, train_set, s, info, true_ids, camids)
        if quality["num_clusters"] == 0:
            raise GenreidError(
                f"warm-up epoch {epoch}: DBSCAN found no cluster among {len(labels)} training images "
                f"(eps {quality['eps']:.3f}, min_samples {s.min_samples}); training cannot continue",
                "raise warmup.cluster.eps (or set it to null for the rho rule) or lower warmup.cluster.min_samples")
        if quality["largest_cluster"] > 0.5 * len(labels):
            log.warning("epoch %d: one cluster holds %d of %d images (eps too large or features collapsed)",
                        epoch, quality["largest_cluster"], len(labels))
        memory.reset(features.to(info.device), torch.from_numpy(labels))
        sampler = RandomIdentitySampler(labels, camids, s.batch_size // info.world_size, s.num_instances, seed)
        loader = make_loader(train_set, batch_size=s.batch_size // info.world_size, seed=seed, sampler=sampler,
                             num_workers=s.num_workers, drop_last=True)
        model.train()
        losses = []
        for it, batch in zip(range(s.iters_per_epoch), _forever(loader)):
            fault_point("warmup.iter")
            targets = torch.from_numpy(labels[batch["index"].numpy()]).to(info.device)
            images = augment_batch(batch["image"]) if s.augment else batch["image"]
            losses.append(train_step(model, memory, optimizer, images.to(info.device), targets, info, amp))
            if (it + 1) % s.log_every == 0:
                log.info("warm-up epoch %d iter %d/%d loss %.4f", epoch, it + 1, s.iters_per_epoch, losses[-1])
            done += 1
            if stop_after_iters is not None and done >= stop_after_iters:
                return {"stopped_early": True, "epoch": epoch, "iterations_this_call": done}
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"],
               "clusters": quality["num_clusters"], "outlier_ratio": quality["outlier_ratio"],
               "largest_cluster": quality["largest_cluster"], "eps": quality["eps"],
               "nmi": quality["nmi"], "ari": quality["ari"]}
        scheduler.step()
        if val_set is not None and ((epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs):
            val = validate(ddp.unwrap(model), val_set, s.extract_batch_size, info.device)
            row.update(val_mAP=val["mAP"], val_R1=val["R1"])
            if best is None or val["mAP"] > best["val_mAP"]:
                best = {"epoch": epoch, "val_mAP": val["mAP"], "state_dict": _cpu_state(encoder)}
        busy += time.perf_counter() - t0
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        _log_epoch(live, row)
        log.info("warm-up epoch %d: loss %.4f, %d clusters, outliers %.3f, NMI %s, val mAP %s", epoch, row["loss"],
                 row["clusters"], row["outlier_ratio"], _fmt(row["nmi"]), _fmt(row.get("val_mAP")))
        if info.is_main and ((epoch + 1) % s.checkpoint_every == 0 or epoch + 1 == s.epochs):
            ckpt.save(epoch + 1, {"model": _cpu_state(encoder), "optimizer": optimizer.state_dict(),
                                  "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                                  "best": best, "busy_s": busy}, with_rng=False)
        ddp.barrier(info)
    summary = _finish(encoder, history, best, resumed, busy, s, model_dir, results_dir, info) if info.is_main else {}
    if live is not None:
        live.end()
    ddp.barrier(info)
    return summary


def _finish(encoder, history, best, resumed, busy, s: WarmupSettings, model_dir: Path, results_dir: Path,
            info: ddp.DistInfo) -> dict[str, Any]:
    """Write the selected encoder (best validation mAP; the last epoch without a validation split)."""
    selected = copy.deepcopy(encoder).cpu()
    if best is not None:
        selected.load_state_dict(best["state_dict"])
    last = history[-1]["epoch"] if history else None
    val_history = [{"epoch": h["epoch"], "val_mAP": h["val_mAP"]} for h in history if "val_mAP" in h]
    extra = {"method": "cluster_contrast_warmup", "selected_epoch": best["epoch"] if best else last,
             "selected_on": "val_mAP" if best else "last_epoch", "last_epoch": last,
             "val_mAP": best["val_mAP"] if best else None, "val_mAP_history": val_history, "resumed": resumed,
             "epochs": s.epochs, "seed": s.seed}
    save_encoder(selected, model_dir / "encoder.pt", extra)
    summary = {**extra, "history": history, "busy_seconds": round(busy, 3), "settings": asdict(s),
               "world_size": info.world_size, "provenance": run_record(s.seed, info.device)}
    write_json(results_dir / "train" / "summary.json", summary)
    return summary


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _log_epoch(live, row: dict[str, Any]) -> None:
    if live is None:
        return
    for key in ("loss", "lr", "clusters", "outlier_ratio", "nmi", "ari", "eps", "val_mAP", "val_R1"):
        if row.get(key) is not None:
            live.log_metric(key, row[key])
    live.next_step()


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
