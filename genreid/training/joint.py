"""Stage 3: joint generative-contrastive training, GCL and GCL+ (METHOD.md sections 3-6).

Per epoch: pseudo-labels from the instance memory (Jaccard + DBSCAN; GCL's rho rule or GCL+'s
fixed eps), outliers leave the loader but stay in memory as negatives; GCL+ prototypes are the
cluster means of the memory; then one pass of :func:`joint_iteration` over a seeded shuffle of the
clustered images. LRs drop by ``lr_gamma`` from ``step_epoch`` on. The encoder kept is the best
on the validation split (query = gallery, camera filter) or the last one; the test split is never
touched here. Checkpoints every N iterations and at each epoch end hold everything an exact
resume needs (nets, optimisers, memory, this epoch's labels, RNG, history, best weights).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.cluster.pseudo_labels import cluster_features
from genreid.errors import TrainingDiverged
from genreid.evaluation.extract import extract_features
from genreid.losses.prototype import cluster_prototypes
from genreid.memory.instance_memory import InstanceMemory
from genreid.models.generator import load_generator
from genreid.models.id_encoder import load_encoder, save_encoder
from genreid.training.checkpoint import CheckpointManager, load_state_strict
from genreid.training.ddp import barrier, broadcast_array, init_distributed
from genreid.training.gan_batch import AmpContext, GanNets
from genreid.training.gan_dist import broadcast_buffers, broadcast_tensor, rank_share, rank_slice, release
from genreid.training.joint_step import JointLossSettings, Optimisers, joint_iteration
from genreid.training.live import open_live
from genreid.training.mesh_views import (
    batch_loader,
    draw_angles,
    epoch_batches,
    image_dataset,
    open_renders,
    renders_to_tensor,
)
from genreid.training.validation import validate
from genreid.utils.atomic import write_json
from genreid.utils.faults import fault_point
from genreid.utils.provenance import run_record
from genreid.utils.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class JointSettings:
    losses: JointLossSettings
    epochs: int = 20
    iters_per_epoch: int | None = None
    batch_size: int = 16
    step_epoch: int = 10
    lr_gamma: float = 0.1
    angles: Sequence[int] = (45, 90, 135, 180, 225, 270, 315)
    lr_g: float = 1e-4
    lr_id: float = 3.5e-4
    sgd_momentum: float = 0.9
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.0, 0.999)
    memory_init: str = "encoder"
    k1: int = 30
    k2: int = 6
    min_samples: int = 4
    eps: float | None = None
    rho: float | None = 0.002
    camera_norm: bool = False
    checkpoint_every_iters: int = 500
    eval_every: int = 1
    selection: str = "val_map"
    eval_batch_size: int = 128
    log_every: int = 10
    seed: int = 1
    deterministic: bool = True
    amp: str = "off"
    num_workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _set_lr(opts: Optimisers, s: JointSettings, epoch: int) -> float:
    factor = s.lr_gamma if epoch >= s.step_epoch else 1.0
    for opt, base in ((opts.g, s.lr_g), (opts.d, s.lr_g), (opts.id, s.lr_id)):
        for group in opt.param_groups:
            group["lr"] = base * factor
    return factor


def _pseudo_labels(memory: InstanceMemory, s: JointSettings, true_ids: np.ndarray, epoch: int,
                   camids: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    labels, quality = cluster_features(memory.features.cpu(), eps=s.eps, rho=s.rho, min_samples=s.min_samples,
                                       k1=s.k1, k2=s.k2, true_ids=true_ids,
                                       camids=camids if s.camera_norm else None)
    if int((labels >= 0).sum()) < s.batch_size:
        raise TrainingDiverged(
            f"epoch {epoch}: clustering left {int((labels >= 0).sum())} clustered images of {len(labels)} "
            f"(eps {quality.get('eps')}), fewer than one batch of {s.batch_size}",
            "the encoder features collapsed or eps is too small: check the warm-up encoder, raise "
            "train.gcl_plus_eps / train.gcl_rho, or lower train.min_samples")
    if len(np.unique(labels[labels >= 0])) < 2 and not (labels < 0).any():
        raise TrainingDiverged(f"epoch {epoch}: every image fell into one cluster; no negatives exist",
                               "lower train.gcl_plus_eps / train.gcl_rho (the features may have collapsed)")
    return labels, quality


def train_joint(train_df: pd.DataFrame, val_df: pd.DataFrame, render_dir: str | Path, encoder_path: str | Path,
                generator_path: str | Path, height: int, width: int, model_dir: str | Path, results_dir: str | Path,
                settings: JointSettings, device: torch.device | str = "cpu",
                stop_after_iters: int | None = None) -> dict[str, Any]:
    """Train E_id jointly with the pre-trained generator; write ``model_dir/encoder.pt`` (val-selected).

    Under ``torchrun`` each rank trains on its share of every batch (gradients averaged, memory
    updated with every rank's features, clustering broadcast from rank 0); rank 0 writes the files.
    """
    s, ls = settings, settings.losses
    owns_group = not torch.distributed.is_initialized()  # a caller's process group is left open
    info = init_distributed(torch.device(device))
    device, main = info.device, info.is_main
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    seed_everything(s.seed, s.deterministic)
    id_enc, _ = load_encoder(encoder_path, map_location=device)
    e_str, dec, dis, _ = load_generator(generator_path, map_location=device)
    if dec.stripe_dim != id_enc.channels or dec.stripes != id_enc.stripes:
        raise TrainingDiverged(f"{generator_path} was trained for {dec.stripes} x {dec.stripe_dim} appearance codes "
                               f"but {encoder_path} gives {id_enc.stripes} x {id_enc.channels}",
                               "rerun the pretrain stage with this encoder")
    nets = GanNets(id_enc, e_str, dec, dis)
    for m in (id_enc, e_str, dec, dis):
        m.train()
    opts = Optimisers(
        g=torch.optim.Adam(nets.generator_parameters(), lr=s.lr_g, betas=s.betas, weight_decay=s.weight_decay),
        d=torch.optim.Adam(dis.parameters(), lr=s.lr_g, betas=s.betas, weight_decay=s.weight_decay),
        id=torch.optim.SGD(id_enc.parameters(), lr=s.lr_id, momentum=s.sgd_momentum, nesterov=True,
                           weight_decay=s.weight_decay))
    amp = AmpContext(device, s.amp)
    store = open_renders(str(render_dir), "train", train_df, s.angles)
    dataset = image_dataset(train_df, height, width)
    val_set = image_dataset(val_df, height, width)
    true_ids = train_df["pid"].to_numpy()
    memory = InstanceMemory(len(dataset), id_enc.embedding_dim).to(device)
    modules = {"id_encoder": id_enc, "str_encoder": e_str, "decoder": dec, "discriminator": dis}

    ckpt = CheckpointManager(model_dir / "ckpt")
    state = ckpt.latest(map_location=device)
    resumed = state is not None
    epoch, batch_in_epoch, it, busy, sums = 0, 0, 0, 0.0, {}
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "mAP": -1.0, "state": None}
    labels = quality = protos = None
    if resumed:
        for k, m in modules.items():
            load_state_strict(m, state["modules"][k], f"{ckpt.folder} [{k}]")
        opts.load_state_dict(state["opts"])
        amp.load_state_dict(state.get("scaler", {}))
        memory.load_state_dict(state["memory"])
        epoch, batch_in_epoch, it = state["epoch"], state["batch_in_epoch"], state["step"]
        history, best, busy, sums = state["history"], state["best"], state["busy_s"], state["sums"]
        labels, quality, protos = state["labels"], state["quality"], state["protos"]
        ckpt.restore_rng(state)
        log.info("resuming %s from %s: epoch %d, batch %d", ls.method, ckpt.folder, epoch, batch_in_epoch)
    else:
        if s.memory_init == "encoder":
            if main:
                memory.initialise(extract_features(id_enc, dataset, batch_size=s.eval_batch_size,
                                                   device=device).features.to(device))
            broadcast_tensor(memory.features, info)
        if main:
            start = validate(id_enc, val_set, s.eval_batch_size, device)
            history.append({"epoch": -1, **{f"val_{k}": v for k, v in start.items()}})
            log.info("%s start: val mAP %.4f R1 %.4f", ls.method, start["mAP"], start["R1"])

    def save(ep: int, b: int) -> None:
        broadcast_buffers(id_enc, info)
        if main:
            ckpt.save(it, {"modules": {k: m.state_dict() for k, m in modules.items()}, "opts": opts.state_dict(),
                           "scaler": amp.state_dict(), "memory": memory.state_dict(), "epoch": ep,
                           "batch_in_epoch": b, "history": history, "best": best, "busy_s": busy, "sums": sums,
                           "labels": labels, "quality": quality, "protos": protos})
        barrier(info)

    live = open_live(results_dir / "train", resume=resumed) if main else None
    done_this_call = 0
    while epoch < s.epochs:
        if labels is None:  # a new epoch (a resumed one keeps the labels and prototypes it started with)
            labels, quality = _pseudo_labels(memory, s, true_ids, epoch, train_df["camid"].to_numpy())
            labels = broadcast_array(labels, info)  # identical memories, but one decision for all ranks
            protos = None
        memory.set_labels(torch.from_numpy(labels))
        if ls.method == "gcl_plus" and protos is None:
            protos = cluster_prototypes(memory.features, memory.labels)
        factor = _set_lr(opts, s, epoch)
        batches = epoch_batches(np.flatnonzero(labels >= 0), s.batch_size, s.seed, epoch)
        if s.iters_per_epoch:
            batches = batches[:s.iters_per_epoch]
        label_t = torch.from_numpy(labels).to(device)
        mine = rank_share(batches[batch_in_epoch:], info)
        for bi, batch in enumerate(batch_loader(dataset, mine, s.seed + epoch, s.num_workers), start=batch_in_epoch):
            t0 = time.perf_counter()
            x = batch["image"].to(device, non_blocking=True)
            idx_np = batch["index"].numpy()
            idx = torch.from_numpy(idx_np).to(device)
            m0 = renders_to_tensor(store, idx_np, 0, height, width, device)
            angles = rank_slice(draw_angles(s.batch_size, s.angles), info)  # drawn per global batch
            mt = renders_to_tensor(store, idx_np, angles, height, width, device)
            broadcast_buffers(id_enc, info)
            parts = joint_iteration(nets, opts, amp, memory, protos, x, m0, mt, idx, label_t[idx], ls,
                                    f"{ls.method} epoch {epoch} iteration {it}", info)
            busy += time.perf_counter() - t0
            it += 1
            done_this_call += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if main and it % s.log_every == 0:
                log.info("%s ep %d it %d  " + "  ".join(f"{k} {v:.3f}" for k, v in parts.items()), ls.method, epoch, it)
            if it % s.checkpoint_every_iters == 0:
                save(epoch, bi + 1)
            fault_point("train.iter")  # SIGKILL here in the reliability suite (after the checkpoint, if any)
            if stop_after_iters is not None and done_this_call >= stop_after_iters:
                save(epoch, bi + 1)
                release(info, owns_group)
                return {"stopped_early": True, "iterations": it}
        record: dict[str, Any] = {"epoch": epoch, "iterations": it, "lr_factor": factor,
                                  **{k: v / max(1, len(batches)) for k, v in sums.items()},
                                  **{f"pseudo_{k}": v for k, v in (quality or {}).items()
                                     if isinstance(v, (int, float)) and not isinstance(v, bool)}}
        broadcast_buffers(id_enc, info)
        if main and ((epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs):
            val = validate(id_enc, val_set, s.eval_batch_size, device)
            record.update({f"val_{k}": v for k, v in val.items()})
            if val["mAP"] > best["mAP"]:
                best = {"epoch": epoch, "mAP": val["mAP"],
                        "state": {k: v.detach().cpu().clone() for k, v in id_enc.state_dict().items()}}
        history.append(record)
        if main:
            for k, v in record.items():
                if k not in ("epoch", "iterations"):
                    live.log_metric(_live_name(k), float(v))
            live.next_step()
        log.info("%s epoch %d done: %s", ls.method, epoch,
                 ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k.startswith(("val_", "pseudo_n"))))
        epoch, batch_in_epoch, sums, labels, quality, protos = epoch + 1, 0, {}, None, None, None
        save(epoch, 0)

    if main:
        summary = _finish(id_enc, best, history, s, ls, it, busy, resumed, model_dir, results_dir, live, device)
    else:
        summary = {"rank": info.rank, "iterations": it}
    barrier(info)
    release(info, owns_group)
    return summary


def _live_name(key: str) -> str:
    if key.startswith("val_"):
        return f"val/{key[4:]}"
    if key.startswith("pseudo_"):
        return f"pseudo/{key[7:]}"
    if key == "lr_factor":
        return "lr_factor"
    return f"loss/{key}"


def _finish(id_enc, best, history, s: JointSettings, ls: JointLossSettings, it: int, busy: float, resumed: bool,
            model_dir: Path, results_dir: Path, live, device) -> dict[str, Any]:
    last_epoch = s.epochs - 1
    if s.selection == "val_map" and best["state"] is not None:
        selected = best["epoch"]
        final = copy.deepcopy(id_enc)
        final.load_state_dict(best["state"])
    else:
        selected, final = last_epoch, id_enc
    extra = {"method": ls.method, "selected_epoch": selected, "last_epoch": last_epoch,
             "selected_on": s.selection, "history": history, "resumed": resumed, "iterations": it}
    save_encoder(final, model_dir / "encoder.pt", extra)
    live.end()
    images = it * s.batch_size
    summary = {**extra, "busy_seconds": round(busy, 3),
               "iterations_per_s": round(it / busy, 4) if busy else None,
               "images_per_s": round(images / busy, 3) if busy else None,
               "settings": _jsonable({**asdict(replace(s, losses=None)), "losses": asdict(ls)}),
               "provenance": run_record(s.seed, device)}
    write_json(results_dir / "train" / "summary.json", summary)
    return summary


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
