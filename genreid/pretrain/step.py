"""Stage 2's step (docs/method.md#stage-2-generator-warm-up): E_str, G and D train; E_id is frozen.

E_id stays in eval mode and is never stepped (its parameters take no gradients), but gradients
flow through it into G via the code-reconstruction terms. Optionally (``recon_warmup_iters``, not
in the papers) the first iterations train only the image reconstruction, without D and without
E_id's graph: six times cheaper, a short CPU schedule reaches a generator that follows the mesh.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from genreid.config.sections.gan import PretrainConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.batches import batch_loader, cap_batches, epoch_batches
from genreid.engine.context import StepEnv
from genreid.engine.guards import assert_finite, host_values
from genreid.engine.selection import Selection
from genreid.engine.setup import TrainingRun
from genreid.engine.trainer import Trainer, TrainStep
from genreid.gan.codes import appearance_codes
from genreid.gan.nets import GanNets, discriminator_step, fake_sets, forward_views, generator_loss
from genreid.gan.renders import view_inputs
from genreid.gan.sheet import column_labels, generate_sheet_tiles, save_png, sheet_rows, tiles_to_image
from genreid.meshes.store import RenderStore
from genreid.models.generator import save_generator
from genreid.utils.atomic import write_json
from genreid.utils.provenance import run_record
from genreid.utils.seeding import seed_global_rngs, stream_seed

DIVERGED_FIX = "lower pretrain.optim.lr_g / lr_d, then rerun to resume from the last checkpoint"


class ViewBatch(NamedTuple):
    """This rank's share of a batch: images, their 0-degree renders and their renders at the drawn angle."""

    x: torch.Tensor
    m0: torch.Tensor
    mt: torch.Tensor


class GanOptimisers(NamedTuple):
    """Stage 2's two Adams: E_str + G, and D."""

    g: torch.optim.Optimizer
    d: torch.optim.Optimizer


def pretrain_iteration(nets: GanNets, opts: GanOptimisers, amp: AmpContext, batch: ViewBatch,
                       weights: dict[str, float], info: dist.DistInfo, where: str,
                       recon_only: bool = False) -> dict[str, float]:
    """One stage-2 iteration (E_id frozen). ``recon_only``: only ``rec * L1(G(E_str(m0), a), x)``."""
    (opt_g, opt_d), (x, m0, mt) = opts, batch
    if recon_only:
        opt_g.zero_grad(set_to_none=True)
        with torch.no_grad():
            a, _ = nets.id_encoder(x)
        with amp.autocast():
            rec = (nets.decoder(nets.str_encoder(m0), a).float() - x.float()).abs().mean()
            loss = weights["rec"] * rec
        parts = {"rec": rec.detach(), "g_total": loss.detach()}
    else:
        with amp.autocast():
            views = forward_views(nets, x, m0, mt)
        fakes = fake_sets(views)
        parts = discriminator_step(nets, opt_d, fakes, x, weights, amp, info)
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            loss, g_parts = generator_loss(nets, views, x, weights, fakes)
        parts.update(g_parts, g_total=loss.detach())
    parts = host_values(parts)  # one host read of every loss part
    assert_finite(parts, where, DIVERGED_FIX, info)
    amp.backward(loss)
    dist.average_gradients(nets.generator_parameters(), info)
    amp.step(opt_g)
    amp.update()
    return parts


class PretrainStep(TrainStep):
    name = "pretrain"

    def __init__(self, cfg: PretrainConfig, env: StepEnv, nets: GanNets, dataset: Any, store: RenderStore,
                 sheet_rows: list[int]):
        """``sheet_rows``: the training rows the per-epoch views sheet shows."""
        self.cfg, self.env, self.seed, self.nets, self.dataset, self.store = cfg, env, env.seed, nets, dataset, store
        self.info, self.amp = env.info, env.amp
        o = cfg.optim
        self.opt_g = torch.optim.Adam(nets.generator_parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2),
                                      weight_decay=o.weight_decay)
        self.opt_d = torch.optim.Adam(nets.discriminator.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2),
                                      weight_decay=o.weight_decay)
        self.sheet_rows = sheet_rows
        self.sheet_images = env.amp.input(torch.stack([dataset[r]["image"] for r in sheet_rows]))

    @classmethod
    def from_config(cls, cfg: PretrainConfig, run: TrainingRun, nets: GanNets, store: RenderStore) -> PretrainStep:
        """The step on ``run``'s training images, the sheet showing ``pretrain.sheet_rows`` identities."""
        dataset = run.train_set
        return cls(cfg, run.env, nets, dataset, store, sheet_rows(dataset.pids, cfg.sheet_rows))

    def state(self) -> dict[str, Any]:
        n = self.nets
        return {"str_encoder": n.str_encoder, "decoder": n.decoder, "discriminator": n.discriminator,
                "opt_g": self.opt_g, "opt_d": self.opt_d, "scaler": self.amp}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def before_train(self, trainer: Trainer) -> None:
        """``code_norm``: the code statistics are fixed before the first step (a resume restores them)."""
        if self.nets.decoder.code_norm:
            self.nets.decoder.set_code_statistics(appearance_codes(self.nets.id_encoder, self.dataset,
                                                                   self.info.device))

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:  # the epoch's draws (novel-view angles); a resumed epoch restores them from the checkpoint
            seed_global_rngs(stream_seed(self.seed, self.name, epoch, "draws"))

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        batches = epoch_batches(range(len(self.dataset)), self.cfg.batch_size,
                                stream_seed(self.seed, self.name, epoch, "batches"))
        return cap_batches(batches, self.cfg.iters_per_epoch, "pretrain.iters_per_epoch", "training images")

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.dataset, batches, stream_seed(self.seed, self.name, epoch, "loader"),
                            self.env.num_workers, pin_memory=self.info.device.type == "cuda")

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        x, _, m0, mt = view_inputs(self.store, batch, self.cfg.angles, self.cfg.batch_size, self.amp, self.info)
        return pretrain_iteration(self.nets, GanOptimisers(self.opt_g, self.opt_d), self.amp, ViewBatch(x, m0, mt),
                                  self.cfg.weights.model_dump(), self.info,
                                  f"pretrain epoch {trainer.epoch} iteration {trainer.iteration}",
                                  recon_only=trainer.iteration < self.cfg.recon_warmup_iters)

    def _sheet(self, scale: int = 2):
        top, bottom = generate_sheet_tiles(self.nets, self.sheet_images, self.store, self.sheet_rows, self.cfg.angles)
        return tiles_to_image(top, bottom, scale=scale, labels=column_labels(self.cfg.angles))

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        if self.info.is_main and ((epoch + 1) % self.cfg.sheet_every == 0 or epoch + 1 == self.cfg.epochs):
            save_png(self._sheet(), self.env.results_dir / "train" / "sheets" / f"views_epoch_{epoch + 1:03d}.png")
        return {}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        save_png(self._sheet(scale=3), self.env.results_dir / "views.png")
        final = trainer.history[-1] if trainer.history else {}
        extra = {"epochs": self.cfg.epochs, "iterations": trainer.iteration, "final": final,
                 "sheet_rows": self.sheet_rows}  # no run facts (resumed, timings): same weights, same bytes
        n = self.nets
        save_generator(self.env.model_dir / "generator.pt", n.str_encoder, n.decoder, n.discriminator, extra=extra,
                       optimisers={"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()})
        summary = {**extra, "resumed": trainer.resumed, **trainer.throughput(self.cfg.batch_size),
                   "world_size": trainer.info.world_size,
                   "history": trainer.history,
                   "provenance": run_record(self.seed, self.info.device)}
        write_json(self.env.results_dir / "train" / "summary.json", summary)
        trainer.written += [self.env.model_dir / "generator.pt", self.env.results_dir / "views.png",
                            self.env.results_dir / "train" / "summary.json"]
        return summary
