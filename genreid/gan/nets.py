"""The GAN half of an iteration, shared by stage 2 (pretrain) and stage 3 (joint)
(docs/method.md#one-training-iteration).

    s0 = E_str(m0), s_t = E_str(m_t); (a, f) = E_id(x)
    x_rec = G(s0, a); x_nv = G(s_t, a); (a_rec, f_rec) = E_id(x_rec); (a_nv, f_nv) = E_id(x_nv)
    x_cyc = G(s0, a_nv); (a_cyc, f_cyc) = E_id(x_cyc)

then a D step on the detached fakes, then one G (+E_id) step. E_str, G and D hold no batch
statistics, so their calls on the two renders / two codes are batched into one forward; E_id is
called once per image set as in the authors' code (its BatchNorm statistics differ per set in
training mode; in eval mode, stage 2, the sets are batched because that is exactly equivalent).

With ``detach_appearance`` (stage 3's ``train.detach_appearance_for_generator``) the same values are
computed, but E_id's weights get no gradient from the generator's losses: G reads sg(a), and E_id's
scores of the generated images that feed those losses (a_rec, a_nv, a_cyc) treat its weights as
constants, so the losses still reach G through its outputs exactly as in the joint step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from genreid.engine.amp import AmpContext
from genreid.engine.dist import DistInfo, average_gradients
from genreid.losses.gan import discriminator_loss, lsgan_generator
from genreid.losses.reconstruction import reconstruction_terms, weighted_sum

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
    """Every tensor of one forward; names follow docs/method.md#one-training-iteration."""

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
    a_gen: torch.Tensor  # the code G reads: a, or sg(a) when E_id is kept out of the generator's losses


def forward_views(nets: GanNets, x: torch.Tensor, m0: torch.Tensor, mt: torch.Tensor,
                  detach_appearance: bool = False) -> Views:
    """One GAN forward (the module docstring); ``detach_appearance`` keeps E_id's weights out of the
    generator's losses while f and f_nv keep their gradients."""
    if detach_appearance:
        return _forward_views_fixed_identity(nets, x, m0, mt)
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
                 a_cyc=a_cyc, s0=s0, a_gen=a)


def _forward_views_fixed_identity(nets: GanNets, x: torch.Tensor, m0: torch.Tensor, mt: torch.Tensor) -> Views:
    """:func:`forward_views` with E_id a fixed function for the generator's terms. E_id is called on the
    same image sets in the same order (its BatchNorm statistics move as in the joint step); a_nv, which G
    reads for the cycle, comes from one more call on x_nv with constant weights and copied buffers
    (training-mode BatchNorm normalises with the batch's statistics, so the values equal the first call's)."""
    b = x.shape[0]
    enc = nets.id_encoder
    s = nets.str_encoder(torch.cat([m0, mt]))
    s0 = s[:b]
    a, f = enc(x)
    a_gen = a.detach()
    gen = nets.decoder(s, torch.cat([a_gen, a_gen]))
    x_rec, x_nv = gen[:b], gen[b:]
    with frozen(enc):
        a_rec, _ = enc(x_rec)
    _, f_nv = enc(x_nv)  # the view-invariant loss trains E_id through f_nv
    a_nv, _ = _call_with_constant_weights(enc, x_nv)
    x_cyc = nets.decoder(s0, a_nv)
    with frozen(enc):
        a_cyc, _ = enc(x_cyc)
    return Views(a=a, f=f, x_rec=x_rec, x_nv=x_nv, x_cyc=x_cyc, a_rec=a_rec, a_nv=a_nv, f_nv=f_nv,
                 a_cyc=a_cyc, s0=s0, a_gen=a_gen)


def _call_with_constant_weights(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``module(x)`` whose gradient reaches ``x`` only: detached weights, buffers copied so that a second
    pass over an image set leaves the running statistics as one pass does."""
    state = {name: p.detach() for name, p in module.named_parameters()}
    state.update({name: buf.clone() for name, buf in module.named_buffers()})
    return torch.func.functional_call(module, state, (x,))


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
                   fakes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted reconstruction terms + adversarial term over ``fakes`` (each set weighted 1 x adv)."""
    terms = reconstruction_terms(x, views.x_rec, views.x_cyc, views.a, views.a_rec, views.a_cyc)
    loss = weighted_sum(terms, {k: weights[k] for k in RECON_KEYS})
    with frozen(nets.discriminator):
        # sets have equal size and D has no batch statistics: sum_sets G-loss = n * G-loss(all)
        adv = len(fakes) * lsgan_generator(nets.discriminator(torch.cat(list(fakes))))
    loss = loss + weights["adv"] * adv
    parts = {k: v.detach() for k, v in terms.items()}
    parts["g_adv"] = adv.detach()
    return loss, parts


def discriminator_step(nets: GanNets, opt_d: torch.optim.Optimizer, fakes: Sequence[torch.Tensor],
                       real: torch.Tensor, weights: dict[str, float], amp: AmpContext,
                       info: DistInfo | None = None) -> dict[str, torch.Tensor]:
    """One D update on detached fakes; returns the loss parts as detached tensors (read and checked for
    NaN by the caller, with the G side's, in one host transfer)."""
    opt_d.zero_grad(set_to_none=True)
    with amp.autocast():
        loss, parts = discriminator_loss(nets.discriminator, [f.detach() for f in fakes], real,
                                         r1_weight=weights["r1"], grad_scale=amp.scale_value())
        loss = weights["adv"] * loss
    parts["d_total"] = loss.detach()
    amp.backward(loss)
    if info is not None:
        average_gradients(nets.discriminator.parameters(), info)
    amp.step(opt_d)
    return parts
