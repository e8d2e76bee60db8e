"""``train.detach_appearance_for_generator``: the generator's losses move G exactly as in the joint step
but never E_id, while E_id's contrastive terms (view-invariant, GCL+'s prototype) still reach it."""

from __future__ import annotations

import copy

import pytest
import torch

from genreid.config.sections.gan import TrainConfig
from genreid.gan.nets import GanNets, fake_sets, forward_views, generator_loss
from genreid.joint.iteration import JointBatch, Optimisers
from genreid.losses.view_invariant import ViewInvariantSettings, view_invariant_loss
from genreid.models.generator import build_generator
from genreid.models.id_encoder import build_encoder

WEIGHTS = TrainConfig().weights.model_dump()


def _nets(tiny_widths) -> GanNets:
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4)
    return GanNets(enc, *build_generator(tiny_widths, 512, 4))


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return (torch.randn(4, 3, 32, 16, generator=g), torch.randn(4, 1, 32, 16, generator=g),
            torch.randn(4, 1, 32, 16, generator=g))


def _grad_norm(params) -> float:
    return float(sum(p.grad.abs().sum() for p in params if p.grad is not None))


def _generator_grads(nets: GanNets) -> list[torch.Tensor]:
    return [p.grad.clone() for p in nets.generator_parameters()]


def _generator_loss_backward(nets: GanNets, detach: bool, extra_fakes=()):
    x, m0, mt = _inputs()
    views = forward_views(nets, x, m0, mt, detach_appearance=detach)
    loss, parts = generator_loss(nets, views, x, WEIGHTS, fake_sets(views, extra_fakes))
    loss.backward(retain_graph=True)
    return views, parts


def test_generator_losses_reach_e_id_only_without_the_key_and_move_g_the_same(tiny_widths):
    joint, detached = _nets(tiny_widths), _nets(tiny_widths)
    views_on, parts_on = _generator_loss_backward(detached, detach=True)
    views_off, parts_off = _generator_loss_backward(joint, detach=False)
    # the same forward values and losses: the key changes gradients only
    for key in ("rec", "cyc", "code", "cyc_code", "g_adv"):
        assert parts_on[key] == pytest.approx(float(parts_off[key]), rel=1e-6), key
    assert torch.allclose(views_on.a_nv, views_off.a_nv, atol=1e-6)
    assert torch.equal(views_on.a_gen, views_on.a) and not views_on.a_gen.requires_grad
    # BatchNorm statistics moved exactly as in the joint step (the extra pass for a_nv ran on copies)
    for (name, b_on), b_off in zip(detached.id_encoder.named_buffers(), joint.id_encoder.buffers()):
        assert torch.equal(b_on, b_off), name
    assert _grad_norm(joint.id_encoder.parameters()) > 1e-3  # the authors' step: E_id moves with every term
    assert all(p.grad is None or not p.grad.any() for p in detached.id_encoder.parameters())
    for g_on, g_off in zip(_generator_grads(detached), _generator_grads(joint)):
        assert torch.allclose(g_on, g_off, rtol=1e-4, atol=1e-7)
    assert _grad_norm(detached.generator_parameters()) > 1e-3
    # the view-invariant loss still trains E_id, also through f_nv (the generated view's terms) alone
    memory = _memory(8)
    idx = torch.tensor([0, 1, 3, 6])
    settings = ViewInvariantSettings(num_negatives=4, temperature=0.04, term3_negatives="f",
                                     positive_includes_self=False)
    vi_nv, _ = view_invariant_loss(views_on.f.detach(), views_on.f_nv, idx, memory, settings)
    vi_nv.backward(retain_graph=True)
    assert _grad_norm(detached.id_encoder.parameters()) > 1e-3
    detached.id_encoder.zero_grad(set_to_none=True)
    vi, _ = view_invariant_loss(views_on.f, views_on.f_nv, idx, memory, settings)
    vi.backward()
    assert _grad_norm(detached.id_encoder.parameters()) > 1e-3


def _memory(dim: int):
    from genreid.memory.instance_memory import InstanceMemory

    torch.manual_seed(1)
    memory = InstanceMemory(12, dim)
    memory.initialise(torch.randn(12, dim))
    memory.set_labels(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1]))
    return memory


def test_gcl_plus_mixed_view_keeps_its_adversarial_term_out_of_e_id_and_its_prototype_loss_in(
        joint_cfg, tiny_widths, labelled_method):
    nets = _nets(tiny_widths)
    opts = Optimisers(None, None, torch.optim.SGD(nets.id_encoder.parameters(), lr=0.1))
    method = labelled_method("gcl_plus", joint_cfg(num_negatives=4, detach_appearance_for_generator=True), nets, opts)
    x, m0, mt = _inputs()
    labels = method.memory.labels[torch.tensor([0, 1, 3, 6])]
    views = forward_views(nets, x, m0, mt, detach_appearance=True)
    mixed = method.mixed_view(views, x, labels)
    assert len(mixed.fakes) == 1  # x_mix enters the adversarial term (D-Mixup)
    loss, _ = generator_loss(nets, views, x, WEIGHTS, fake_sets(views, mixed.fakes))
    loss.backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in nets.id_encoder.parameters())
    proto, _ = method.extra_loss(views, labels, mixed)
    proto.backward()
    assert _grad_norm(nets.id_encoder.parameters()) > 1e-3


@pytest.mark.parametrize("name", ["gcl", "gcl_plus"])
def test_one_joint_iteration_moves_g_alike_and_e_id_differently(joint_cfg, tiny_widths, labelled_method, name):
    """G's gradient is the same with the key on and off (same start), E_id's is not: after one step G's
    weights agree, E_id's differ, and both moved."""
    after = {}
    for detach in (False, True):
        nets = _nets(tiny_widths)
        start = copy.deepcopy(nets)
        # SGD for G: Adam's first step is lr * sign(grad), which turns float noise on a gradient that is zero
        # in exact arithmetic (conv biases before instance norm) into +-lr
        opts = Optimisers(torch.optim.SGD(nets.generator_parameters(), lr=1e-3),
                          torch.optim.Adam(nets.discriminator.parameters()),
                          torch.optim.SGD(nets.id_encoder.parameters(), lr=0.1))
        cfg = joint_cfg(num_negatives=4, detach_appearance_for_generator=detach)
        method = labelled_method(name, cfg, nets, opts)
        idx = torch.tensor([0, 1, 3, 6])
        x, m0, mt = _inputs()
        torch.manual_seed(5)
        method.joint_iteration(JointBatch(x, m0, mt, idx, method.memory.labels[idx]), "t")
        assert not torch.equal(nets.id_encoder.fc.weight, start.id_encoder.fc.weight), detach  # E_id stepped
        assert any(not torch.equal(p, q) for p, q in zip(nets.generator_parameters(), start.generator_parameters()))
        after[detach] = nets
    for p_on, p_off in zip(after[True].generator_parameters(), after[False].generator_parameters()):
        assert torch.allclose(p_on, p_off, rtol=1e-4, atol=1e-6)
    e_on = dict(after[True].id_encoder.named_parameters())
    e_off = dict(after[False].id_encoder.named_parameters())
    assert max(float((e_on[k] - e_off[k]).detach().abs().max()) for k in e_on) > 1.0  # the GAN's share of E_id's step


def test_the_key_defaults_to_the_authors_joint_step():
    assert TrainConfig().detach_appearance_for_generator is False


def test_the_key_at_its_default_leaves_archived_fingerprints_alone():
    from genreid.report.seeds import config_fingerprint

    before = {"seed": 1, "train": {"epochs": 4}}  # a params tree archived before the key existed
    assert config_fingerprint({"seed": 1, "train": {"epochs": 4, "detach_appearance_for_generator": False}}) == \
        config_fingerprint(before)
    assert config_fingerprint({"seed": 1, "train": {"epochs": 4, "detach_appearance_for_generator": True}}) != \
        config_fingerprint(before)
