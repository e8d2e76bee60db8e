"""One generator iteration, shared by stage 2 (pretrain) and stage 3 (joint) (METHOD.md section 3).

    s0 = E_str(m0), s_t = E_str(m_t); (a, f) = E_id(x)
    x_rec = G(s0, a); x_nv = G(s_t, a); (a_rec, f_rec) = E_id(x_rec); (a_nv, f_nv) = E_id(x_nv)
    x_cyc = G(s0, a_nv); (a_cyc, f_cyc) = E_id(x_cyc)

then a D step on the detached fakes, then one G (+E_id) step. E_str, G and D hold no batch
statistics, so their calls on the two renders / two codes are batched into one forward; E_id is
called once per image set as in the authors' code (its BatchNorm statistics differ per set in
training mode; in eval mode, stage 2, the sets are batched because that is exactly equivalent).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from genreid.losses.gan import discriminator_loss, lsgan_generator
from genreid.losses.reconstruction import reconstruction_terms, weighted_sum
from genreid.training.ddp import DistInfo
from genreid.training.gan_dist import assert_finite_everywhere, average_gradients

log = logging.getLogger(__name__)
RECON_KEYS = ("rec", "cyc", "code", "cyc_code")


@dataclass
class GanNets:
    id_encoder: nn.Module
    str_encoder: nn.Module
    decoder: nn.Module
    discriminator: nn.Module

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.str_encoder.parameters(), *self.decoder.parameters()]


@dataclass
class Views:
    """Every tensor of one forward; names follow METHOD.md section 3."""

    a: torch.Tensor
    f: torch.Tensor
    x_rec: torch.Tensor
    x_nv: torch.Tensor
    x_cyc: torch.Tensor
    a_rec: torch.Tensor
    a_nv: torch.Tensor
    f_nv: torch.Tensor
    a_cyc: torch.Tensor
    s0: torch.Tensor


def forward_views(nets: GanNets, x: torch.Tensor, m0: torch.Tensor, mt: torch.Tensor) -> Views:
    b = x.shape[0]
    s = nets.str_encoder(torch.cat([m0, mt]))
    s0 = s[:b]
    a, f = nets.id_encoder(x)
    gen = nets.decoder(s, torch.cat([a, a]))
    x_rec, x_nv = gen[:b], gen[b:]
    if nets.id_encoder.training:
        a_rec, _ = nets.id_encoder(x_rec)
        a_nv, f_nv = nets.id_encoder(x_nv)
    else:
        a_both, f_both = nets.id_encoder(gen)
        a_rec, a_nv, f_nv = a_both[:b], a_both[b:], f_both[b:]
    x_cyc = nets.decoder(s0, a_nv)
    a_cyc, _ = nets.id_encoder(x_cyc)
    return Views(a=a, f=f, x_rec=x_rec, x_nv=x_nv, x_cyc=x_cyc, a_rec=a_rec, a_nv=a_nv, f_nv=f_nv,
                 a_cyc=a_cyc, s0=s0)


def fake_sets(views: Views, extra: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
    """The generated image sets both GAN sides see: x_rec, x_nv, x_cyc (+ x_mix in GCL+)."""
    return [views.x_rec, views.x_nv, views.x_cyc, *extra]


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters without gradients for the duration (D while the generator's loss runs)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def generator_loss(nets: GanNets, views: Views, x: torch.Tensor, weights: dict[str, float],
                   fakes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted reconstruction terms + adversarial term over ``fakes`` (each set weighted 1 x adv)."""
    terms = reconstruction_terms(x, views.x_rec, views.x_cyc, views.a, views.a_rec, views.a_cyc)
    loss = weighted_sum(terms, {k: weights[k] for k in RECON_KEYS})
    with frozen(nets.discriminator):
        # sets have equal size and D has no batch statistics: sum_sets G-loss = n * G-loss(all)
        adv = len(fakes) * lsgan_generator(nets.discriminator(torch.cat(list(fakes))))
    loss = loss + weights["adv"] * adv
    parts = {k: float(v.detach()) for k, v in terms.items()}
    parts["g_adv"] = float(adv.detach())
    return loss, parts


def discriminator_step(nets: GanNets, opt_d: torch.optim.Optimizer, fakes: Sequence[torch.Tensor],
                       real: torch.Tensor, weights: dict[str, float], amp: AmpContext,
                       info: DistInfo | None = None) -> dict[str, float]:
    """One D update on detached fakes; returns the loss parts (checked for NaN by the caller)."""
    opt_d.zero_grad(set_to_none=True)
    with amp.autocast():
        loss, parts = discriminator_loss(nets.discriminator, [f.detach() for f in fakes], real,
                                         r1_weight=weights["r1"], grad_scale=amp.scale_value())
        loss = weights["adv"] * loss
    parts["d_total"] = float(loss.detach())
    amp.backward(loss)
    if info is not None:
        average_gradients(nets.discriminator.parameters(), info)
    amp.step(opt_d)
    return parts


def pretrain_iteration(nets: GanNets, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, amp: AmpContext,
                       x: torch.Tensor, m0: torch.Tensor, mt: torch.Tensor, weights: dict[str, float],
                       info: DistInfo, where: str, recon_only: bool = False) -> dict[str, float]:
    """One stage-2 iteration (E_id frozen). ``recon_only``: only ``rec * L1(G(E_str(m0), a), x)``,
    no D and no pass through E_id's graph (the small profile's cheap reconstruction warm start)."""
    if recon_only:
        opt_g.zero_grad(set_to_none=True)
        with torch.no_grad():
            a, _ = nets.id_encoder(x)
        with amp.autocast():
            rec = (nets.decoder(nets.str_encoder(m0), a).float() - x.float()).abs().mean()
            loss = weights["rec"] * rec
        parts = {"rec": float(rec.detach()), "g_total": float(loss.detach())}
    else:
        with amp.autocast():
            views = forward_views(nets, x, m0, mt)
        fakes = fake_sets(views)
        parts = discriminator_step(nets, opt_d, fakes, x, weights, amp, info)
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            loss, g_parts = generator_loss(nets, views, x, weights, fakes)
        parts.update(g_parts, g_total=float(loss.detach()))
    assert_finite_everywhere(parts, where, info)
    amp.backward(loss)
    average_gradients(nets.generator_parameters(), info)
    amp.step(opt_g)
    amp.update()
    return parts


class AmpContext:
    """Mixed precision on CUDA only: bf16 autocast, or fp16 autocast with a gradient scaler.

    On CPU (and with ``mode='off'``) every method is a plain fp32 pass-through. One scaler serves
    the D and the G step of an iteration; :meth:`update` is called once at its end.
    """

    def __init__(self, device: torch.device, mode: str = "off"):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if mode != "off" and not cuda:
            log.warning("runtime.amp=%s ignored on %s (mixed precision is CUDA only)", mode, self.device)
        self.enabled = mode != "off" and cuda
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode, torch.float32)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and mode == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def scale_value(self) -> float:
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward() if self.scaler.is_enabled() else loss.backward()

    def step(self, opt: torch.optim.Optimizer) -> None:
        self.scaler.step(opt) if self.scaler.is_enabled() else opt.step()

    def update(self) -> None:
        if self.scaler.is_enabled():
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
