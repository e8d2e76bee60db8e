"""Stage 2: generator warm-up with the identity encoder frozen (METHOD.md sections 1 and 3).

E_id stays in eval mode and is never stepped (its parameters do not even take gradients), but
gradients flow through it into G via the code-reconstruction terms. E_str + G and D train with
Adam (betas 0, 0.999), constant LR. Checkpoints every ``checkpoint_every_iters`` iterations and at
each epoch end (atomic, exact resume: same batches, angles and weights as an uninterrupted run);
a non-finite loss stops with :class:`TrainingDiverged` and keeps the last good checkpoint.
Optionally (``recon_warmup_iters``, not in the papers) the first iterations train only the image
reconstruction, without D and without E_id's graph: six times cheaper, it gets a short CPU schedule
to a generator that follows the mesh before the full objective starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.models.generator import GeneratorWidths, build_generator, save_generator
from genreid.models.id_encoder import load_encoder
from genreid.training.checkpoint import CheckpointManager, load_state_strict
from genreid.training.ddp import barrier, init_distributed
from genreid.training.gan_batch import AmpContext, GanNets, pretrain_iteration
from genreid.training.gan_dist import rank_share, rank_slice, release
from genreid.training.live import open_live
from genreid.training.mesh_views import (
    batch_loader,
    draw_angles,
    epoch_batches,
    image_dataset,
    open_renders,
    renders_to_tensor,
)
from genreid.training.views_sheet import generate_sheet_tiles, save_png, tiles_to_image
from genreid.utils.atomic import write_json
from genreid.utils.faults import fault_point
from genreid.utils.provenance import run_record
from genreid.utils.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class PretrainSettings:
    epochs: int = 40
    batch_size: int = 16
    iters_per_epoch: int | None = None
    angles: Sequence[int] = (45, 90, 135, 180, 225, 270, 315)
    weights: dict[str, float] = field(default_factory=lambda: {
        "rec": 5.0, "cyc": 5.0, "code": 5.0, "cyc_code": 5.0, "adv": 1.0, "r1": 0.01})
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.0, 0.999)
    recon_warmup_iters: int = 0
    recon_warmup_lr: float | None = None
    checkpoint_every_iters: int = 500
    sheet_every: int = 1
    sheet_rows: int = 4
    log_every: int = 10
    seed: int = 1
    deterministic: bool = True
    amp: str = "off"
    num_workers: int = 0


def sheet_rows(pids: Sequence[int], n: int) -> list[int]:
    """Manifest rows of ``n`` different identities, spread over the id range (a fixed choice)."""
    first: dict[int, int] = {}
    for row, pid in enumerate(pids):
        first.setdefault(int(pid), row)
    ids = sorted(first)
    pick = np.linspace(0, len(ids) - 1, num=min(n, len(ids))).round().astype(int)
    return [first[ids[i]] for i in pick]


@torch.no_grad()
def appearance_codes(id_enc: torch.nn.Module, dataset: torch.utils.data.Dataset, device: torch.device | str,
                     max_images: int = 4096, batch_size: int = 128) -> torch.Tensor:
    """E_id's appearance codes of up to ``max_images`` training images, evenly spread (a fixed choice)."""
    rows = np.unique(np.linspace(0, len(dataset) - 1, num=min(max_images, len(dataset))).round().astype(int))
    codes = []
    for start in range(0, len(rows), batch_size):
        x = torch.stack([dataset[int(r)]["image"] for r in rows[start:start + batch_size]]).to(device)
        codes.append(id_enc(x)[0].float().cpu())
    return torch.cat(codes)


def pretrain_generator(train_df: pd.DataFrame, render_dir: str | Path, encoder_path: str | Path,
                       widths: GeneratorWidths, height: int, width: int, model_dir: str | Path,
                       results_dir: str | Path, settings: PretrainSettings,
                       device: torch.device | str = "cpu", stop_after_iters: int | None = None) -> dict[str, Any]:
    """Train E_str, G, D; write ``model_dir/generator.pt``, ``results_dir/views.png`` and, next to the
    dvclive log, ``results_dir/train/summary.json`` (history, throughput, provenance).

    ``stop_after_iters`` ends the run early after that many iterations this call (tests use it to
    simulate a kill; the checkpoint written at that point is what a rerun resumes from).
    Under ``torchrun`` each rank trains on its share of every batch; rank 0 writes the files.
    """
    s = settings
    owns_group = not torch.distributed.is_initialized()  # a caller's process group is left open
    info = init_distributed(torch.device(device))
    device, main = info.device, info.is_main
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    seed_everything(s.seed, s.deterministic)
    id_enc, _ = load_encoder(encoder_path, map_location=device)
    id_enc.eval().requires_grad_(False)
    store = open_renders(str(render_dir), "train", train_df, s.angles)
    e_str, dec, dis = build_generator(widths, id_enc.channels, id_enc.stripes)
    nets = GanNets(id_enc, e_str.to(device), dec.to(device), dis.to(device))
    opt_g = torch.optim.Adam(nets.generator_parameters(), lr=s.lr_g, betas=s.betas, weight_decay=s.weight_decay)
    opt_d = torch.optim.Adam(dis.parameters(), lr=s.lr_d, betas=s.betas, weight_decay=s.weight_decay)
    amp = AmpContext(device, s.amp)
    modules = {"str_encoder": e_str, "decoder": dec, "discriminator": dis}

    ckpt = CheckpointManager(model_dir / "ckpt")
    state = ckpt.latest(map_location=device)
    epoch, batch_in_epoch, it, history, busy, sums = 0, 0, 0, [], 0.0, {}
    resumed = state is not None
    if resumed:
        for k, m in modules.items():
            load_state_strict(m, state["modules"][k], f"{ckpt.folder} [{k}]")
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        amp.load_state_dict(state.get("scaler", {}))
        epoch, batch_in_epoch, it = state["epoch"], state["batch_in_epoch"], state["step"]
        history, busy, sums = state["history"], state["busy_s"], state["sums"]
        ckpt.restore_rng(state)
        log.info("resuming pretrain from %s: epoch %d, batch %d, iteration %d", ckpt.folder, epoch, batch_in_epoch, it)
    elif dec.code_norm:  # fixed before the first step; a resumed run has them in the checkpoint
        dec.set_code_statistics(appearance_codes(id_enc, image_dataset(train_df, height, width), device))

    def save(ep: int, b: int) -> None:
        if main:
            ckpt.save(it, {"modules": {k: m.state_dict() for k, m in modules.items()},
                           "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "scaler": amp.state_dict(),
                           "epoch": ep, "batch_in_epoch": b, "history": history, "busy_s": busy, "sums": sums})
        barrier(info)

    dataset = image_dataset(train_df, height, width)
    rows = sheet_rows(dataset.pids, s.sheet_rows)
    sheet_images = torch.stack([dataset[r]["image"] for r in rows]).to(device)
    live = open_live(results_dir / "train", resume=resumed) if main else None
    done_this_call = 0
    while epoch < s.epochs:
        batches = epoch_batches(range(len(dataset)), s.batch_size, s.seed, epoch)
        if s.iters_per_epoch:
            batches = batches[:s.iters_per_epoch]
        mine = rank_share(batches[batch_in_epoch:], info)
        for bi, batch in enumerate(batch_loader(dataset, mine, s.seed + epoch, s.num_workers), start=batch_in_epoch):
            t0 = time.perf_counter()
            x = batch["image"].to(device, non_blocking=True)
            idx = batch["index"].numpy()
            m0 = renders_to_tensor(store, idx, 0, height, width, device)
            angles = rank_slice(draw_angles(s.batch_size, s.angles), info)  # drawn per global batch
            mt = renders_to_tensor(store, idx, angles, height, width, device)
            warm = it < s.recon_warmup_iters
            for group in opt_g.param_groups:
                group["lr"] = s.recon_warmup_lr if warm and s.recon_warmup_lr else s.lr_g
            parts = pretrain_iteration(nets, opt_g, opt_d, amp, x, m0, mt, s.weights, info,
                                       f"pretrain epoch {epoch} iteration {it}", warm)
            busy += time.perf_counter() - t0
            it += 1
            done_this_call += 1
            for k, v in parts.items():
                total, count = sums.get(k, (0.0, 0))
                sums[k] = (total + v, count + 1)
            if main and it % s.log_every == 0:
                log.info("pretrain ep %d it %d  " + "  ".join(f"{k} {v:.3f}" for k, v in parts.items()), epoch, it)
            if it % s.checkpoint_every_iters == 0:
                save(epoch, bi + 1)
            fault_point("pretrain.iter")  # SIGKILL here in the reliability suite (after the checkpoint, if any)
            if stop_after_iters is not None and done_this_call >= stop_after_iters:
                save(epoch, bi + 1)
                release(info, owns_group)
                return {"stopped_early": True, "iterations": it}
        means = {k: total / count for k, (total, count) in sums.items()}
        history.append({"epoch": epoch, "iterations": it, **means})
        if main:
            for k, v in means.items():
                live.log_metric(f"loss/{k}", v)
            if (epoch + 1) % s.sheet_every == 0 or epoch + 1 == s.epochs:
                top, bottom = generate_sheet_tiles(nets, sheet_images, store, rows, s.angles)
                live.log_image(f"views_epoch_{epoch + 1:03d}.png", tiles_to_image(top, bottom))
            live.next_step()
        epoch, batch_in_epoch, sums = epoch + 1, 0, {}
        save(epoch, 0)

    if not main:
        release(info, owns_group)
        return {"rank": info.rank, "iterations": it}
    top, bottom = generate_sheet_tiles(nets, sheet_images, store, rows, s.angles)
    save_png(tiles_to_image(top, bottom, scale=3), results_dir / "views.png")
    images = it * s.batch_size
    summary = {
        "epochs": s.epochs, "iterations": it, "resumed": resumed, "busy_seconds": round(busy, 3),
        "iterations_per_s": round(it / busy, 4) if busy else None,
        "images_per_s": round(images / busy, 3) if busy else None,
        "final": history[-1] if history else {}, "history": history, "settings": _jsonable(asdict(s)),
        "sheet_rows": rows, "provenance": run_record(s.seed, device),
    }
    save_generator(model_dir / "generator.pt", e_str, dec, dis,
                   extra={k: summary[k] for k in ("epochs", "iterations", "resumed", "final", "sheet_rows")})
    live.end()
    write_json(results_dir / "train" / "summary.json", summary)
    release(info, owns_group)
    return summary


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
