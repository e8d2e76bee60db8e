"""One stage-2 and one stage-3 (GCL) training iteration, genreid against the authors' code, side by side.

Both codes start from identical float64 weights, optimiser states, inputs, memory contents,
pseudo-labels, sampled positives and negatives and novel-view renders; each runs one iteration of
its own training code; the script prints every loss term, the gradient norm and largest element
difference per parameter group (E_id, E_str, G, D), the parameter step per group, E_id's BatchNorm
statistics and the memory update, with the absolute and relative difference, and exits 1 when any
relative difference exceeds ``--rtol``.

How the two sides are made equal:

- weights: the authors' ``DGNet_Trainer`` (``configs/latest.yaml`` widths, their ``ft_net``
  ResNet-50) is built in a child process, every bias and BatchNorm affine drawn away from its
  initial constant (so a swapped or dropped tensor shows), E_id's BatchNorm statistics calibrated
  on the batch, and exported as their snapshot files; ``genreid import-authors`` converts them and
  genreid's side loads what it wrote (the import is part of what is checked);
- optimiser states: non-fresh (a fresh Adam's first step is ``lr * sign(grad)``, which turns
  rounding noise into full steps): step count 10, equal ``exp_avg``/``exp_avg_sq`` per parameter,
  ``exp_avg_sq`` at the tensor's squared-gradient scale measured by a probe run of genreid's
  iteration (Adam's step is then close to linear in the gradient), and an equal SGD momentum
  buffer for E_id; drawn per genreid parameter name and renamed to the authors' names with the
  import's own renaming rules. Tensors whose gradient is zero in exact arithmetic (biases in front
  of a normalisation) are listed after the table: both codes give them rounding noise;
- the recipe: ``params/ablations/authors_code.yaml`` (``--recipe``): the keys that restore the
  authors' behaviour (term-3 negatives scored with f_nv, the anchor allowed as its own positive,
  stage-3 G/D learning rate; the imported networks carry the channel split, the authors' layer
  norm, no ASPP activation, raw AdaIN scales and codes); the authors' stage 3 gets the same G/D
  learning rate (their resume sets it);
- draws: the authors' memory draws positives and negatives with ``torch.randperm``, genreid's with
  its samplers; both are replaced for the one iteration by the same scripted slots (including an
  anchor drawn as its own positive, which the authors' rule allows; under
  ``train.positive_includes_self: false`` that draw is reported as one genreid never makes);
- float64: ``torch.set_default_dtype(torch.float64)`` on both sides. genreid's losses call
  ``.float()`` to lift AMP's bf16/fp16 tensors to float32; in a float64 run that would round to
  float32, so for the comparison ``Tensor.float`` leaves float64 tensors as they are
  (``--float32-casts``, stage 2 only, turns this off to show the size of that rounding).

Tolerance (``--rtol``, 1e-7): a loss relative to the authors' value; a parameter group by its norm
and by its largest element difference over its largest element.

The authors' code runs on CPU behind ``genreid.perf.authors_code.AUTHORS_CPU_PRELUDE`` (``Tensor.cuda`` a no-op,
``cv2`` stubbed, torchvision's removed ``pretrained=`` flag mapped, Adam's integer ``beta1``
made a float); it is never copied into this project::

    git --git-dir=<mirror of github.com/chenhao2345/GCL> archive HEAD | tar -x -C /tmp/authors_gcl
    .venv/bin/python benchmarks/iteration_vs_authors.py --authors /tmp/authors_gcl --json out.json

``--self-check`` compares genreid with itself (small networks, no authors' code; ``--perturb
G/up.4.conv.weight=1e-3`` moves one weight of the compared side): the machinery's own test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from genreid.config.loader import load_config  # noqa: E402
from genreid.config.schema import GenreidConfig  # noqa: E402
from genreid.config.sections.model import GeneratorWidths  # noqa: E402
from genreid.engine.amp import AmpContext  # noqa: E402
from genreid.engine.dist import DistInfo  # noqa: E402
from genreid.gan.nets import GanNets  # noqa: E402
from genreid.joint.contrastive import StepInputs  # noqa: E402
from genreid.joint.iteration import JointBatch, build_optimisers  # noqa: E402
from genreid.models.authors_import import rename_discriminator, rename_generator, rename_id_encoder  # noqa: E402
from genreid.models.generator import build_generator, load_generator, save_generator  # noqa: E402
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder  # noqa: E402
from genreid.perf.authors_code import AUTHORS_CPU_PRELUDE  # noqa: E402
from genreid.pretrain.step import GanOptimisers, ViewBatch, pretrain_iteration  # noqa: E402
from genreid.registry import method_spec  # noqa: E402

GROUPS = ("E_id", "E_str", "G", "D")
STAGES = ("pretrain", "gcl")
ADAM_STEPS = 10  # the optimiser states' step count: any non-zero count avoids a fresh Adam's sign step
# loss parts under genreid's names, as both sides report them
LOSS_LABELS = {
    "d_total": "D loss (total)",
    "d_gan": "D LSGAN fake + real, 3 sets",
    "d_r1": "D R1 penalty, one set, unweighted",
    "rec": "L1(x_rec, x)",
    "cyc": "L1(x_cyc, x)",
    "code": "L1(a_rec, sg(a))",
    "cyc_code": "L1(a_cyc, sg(a))",
    "g_adv": "G adversarial, 3 sets",
    "vi_self": "VI term 1: f_nv vs M[i]",
    "vi_nv_cluster": "VI term 2: f_nv vs M[p]",
    "vi_orig_cluster": "VI term 3: f vs M[p']",
    "vi": "VI loss (sum)",
    "total": "G (+E_id) loss (total)",
}
# --self-check's generator widths (the authors' switches come from the recipe)
TINY_WIDTHS = {"str_channels": [4, 8, 8, 8], "str_out": 8, "dec_channels": [8, 8], "mlp_dim": 16,
               "dis_channels": [8, 8], "dis_scales": 2, "res_blocks": 1}


# -- the shared inputs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shapes:
    """What one iteration works on; the authors' ASPP (dilation 9, reflection padding) needs images of at
    least 128 x 64, their ft_net's 4 stripes at least 64 rows."""

    batch: int = 4
    height: int = 128
    width: int = 64
    slots: int = 128  # instance-memory slots (training images)
    clusters: int = 8
    outliers: int = 16  # slots labelled -1: negatives of every anchor, never anchors
    negatives: int = 32  # K
    embedding_dim: int = 512


def make_inputs(shapes: Shapes, seed: int) -> dict[str, torch.Tensor]:
    """Images, renders, memory bank, pseudo-labels, batch rows and every memory draw, in float64.

    Anchor 0 draws itself as its term-2 positive (the authors' rule allows it; genreid's
    ``train.positive_includes_self`` says whether its own sampler would)."""
    g = torch.Generator().manual_seed(seed)
    b, n = shapes.batch, shapes.slots
    dt = torch.float64
    labels = torch.arange(n) % shapes.clusters
    labels[torch.randperm(n, generator=g)[:shapes.outliers]] = -1
    clustered = torch.nonzero(labels >= 0).flatten()
    idx = clustered[torch.randperm(clustered.numel(), generator=g)[:b]]
    term2, term3, negatives = [], [], []
    for i in range(b):
        same = torch.nonzero(labels == labels[idx[i]]).flatten()
        other = torch.nonzero(labels != labels[idx[i]]).flatten()
        if other.numel() < shapes.negatives:
            raise ValueError(f"--negatives {shapes.negatives} exceeds the {other.numel()} other-label slots of "
                             f"anchor {i}; lower --negatives or raise --slots / --clusters")
        term2.append(idx[i] if i == 0 else same[torch.randint(same.numel(), (1,), generator=g)][0])
        term3.append(same[torch.randint(same.numel(), (1,), generator=g)][0])
        negatives.append(other[torch.randperm(other.numel(), generator=g)[:shapes.negatives]])
    return {
        "x": torch.randn(b, 3, shapes.height, shapes.width, generator=g, dtype=dt),
        "m0": torch.rand(b, 1, shapes.height, shapes.width, generator=g, dtype=dt) * 2 - 1,
        "mt": torch.rand(b, 1, shapes.height, shapes.width, generator=g, dtype=dt) * 2 - 1,
        "bank": F.normalize(torch.randn(n, shapes.embedding_dim, generator=g, dtype=dt), dim=1),
        "labels": labels, "idx": idx,
        "term2_positive": torch.stack(term2), "term3_positive": torch.stack(term3),
        "negatives": torch.stack(negatives),
    }


def optimiser_states(params: dict[str, dict[str, torch.Tensor]], seed: int,
                     mean_sq_grads: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, dict]]:
    """Non-fresh optimiser states per group and genreid parameter name: Adam (E_str, G, D) and E_id's SGD
    momentum, each drawn from its own name so the order of parameters never matters.

    ``exp_avg_sq`` is drawn around the tensor's mean squared gradient of the compared iteration
    (``mean_sq_grads``, from a probe run), floored at 1e-6 of the group's largest: Adam's step is then
    close to linear in the gradient. Far below it (a fresh state is the limit) the step saturates to
    ``lr * sign(grad)`` and rounding noise becomes a full step; the floor keeps the tensors whose
    gradient is zero in exact arithmetic (:func:`rounding_level_gradients`) from that."""
    out: dict[str, dict[str, dict]] = {}
    for group, named in params.items():
        out[group] = {}
        measured = (mean_sq_grads or {}).get(group, {})
        floor = 1e-6 * max(measured.values(), default=1.0)
        for name, p in named.items():
            g = torch.Generator().manual_seed(seed + zlib.crc32(f"{group}/{name}".encode()))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if group == "E_id":
                out[group][name] = {"momentum_buffer": 1e-3 * noise}
                continue
            scale = max(measured.get(name, 1e-6), floor, 1e-30)
            out[group][name] = {"step": torch.tensor(float(ADAM_STEPS), dtype=torch.float64),
                                "exp_avg": 1e-3 * noise,
                                "exp_avg_sq": scale * (0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))}
    return out


def rounding_level_gradients(rec: dict[str, Any], ratio: float = 1e-9) -> dict[str, list[str]]:
    """Per group, the parameters whose gradient RMS is below ``ratio`` x the group's largest: biases in front
    of an instance, layer or batch norm, whose gradient is zero in exact arithmetic and rounding noise in
    both codes (with a real Adam state both would turn that noise into steps of about ``lr``; the
    normalisation removes whatever such a bias does)."""
    out = {}
    for g, named in rec["params"].items():
        rms = {n: float(v["grad"].double().pow(2).mean().sqrt()) for n, v in named.items()
               if v["grad"] is not None and v["grad"].numel()}
        top = max(rms.values(), default=0.0)
        small = sorted(n for n, r in rms.items() if r < ratio * top)
        if small:
            out[g] = small
    return out


def mean_sq_grads(rec: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each parameter's mean squared gradient in a record (the probe run's)."""
    return {g: {n: float(v["grad"].double().pow(2).mean()) for n, v in named.items() if v["grad"] is not None}
            for g, named in rec["params"].items()}


# -- genreid's side ------------------------------------------------------------------------------------

@contextlib.contextmanager
def float64_run(keep_float64: bool = True) -> Iterator[None]:
    """float64 as the default dtype and, with ``keep_float64``, ``Tensor.float`` leaving float64 tensors
    unchanged (genreid's ``.float()`` exists to lift AMP halves); both restored afterwards."""
    previous, original_float = torch.get_default_dtype(), torch.Tensor.float

    def float_keeping_float64(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self if self.dtype == torch.float64 else original_float(self, *args, **kwargs)

    torch.set_default_dtype(torch.float64)
    if keep_float64:
        torch.Tensor.float = float_keeping_float64
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
        torch.Tensor.float = original_float


def _networks(nets: GanNets) -> dict[str, nn.Module]:
    return {"E_id": nets.id_encoder, "E_str": nets.str_encoder, "G": nets.decoder, "D": nets.discriminator}


def apply_states(opt: torch.optim.Optimizer, named: dict[str, nn.Parameter], states: dict[str, dict]) -> None:
    """Give every parameter of ``opt`` its state from ``states`` (by name); a parameter without one is an error."""
    by_id = {id(p): n for n, p in named.items()}
    for group in opt.param_groups:
        for p in group["params"]:
            name = by_id.get(id(p))
            if name is None or name not in states:
                raise KeyError(f"no optimiser state for parameter {name or '<unnamed>'}")
            opt.state[p] = {k: v.clone() for k, v in states[name].items()}


def perturb(nets: dict[str, nn.Module], spec: str) -> None:
    """``GROUP/NAME=DELTA``: add DELTA to the first element of that parameter."""
    m = re.fullmatch(r"(E_id|E_str|G|D)/([\w.]+)=([-+0-9.eE]+)", spec)
    if m is None:
        raise ValueError(f"--perturb {spec!r}: expected GROUP/NAME=DELTA with GROUP one of {GROUPS}, "
                         "e.g. G/up.4.conv.weight=1e-3")
    params = dict(nets[m.group(1)].named_parameters())
    if m.group(2) not in params:
        raise ValueError(f"--perturb: {m.group(1)} has no parameter {m.group(2)!r}; some are {sorted(params)[:4]}")
    with torch.no_grad():
        params[m.group(2)].view(-1)[0] += float(m.group(3))


def scripted_draws(memory: nn.Module, inputs: dict[str, torch.Tensor], include_self: bool) -> list[str]:
    """Replace the memory's samplers, for one loss, by the scripted slots: term 2's positive, then term 3's
    (the order :func:`genreid.losses.view_invariant.view_invariant_loss` draws them), then the negatives.

    Returns the scripted draws genreid's own sampler could never make under ``include_self``
    (``train.positive_includes_self``): an anchor as its own positive while its cluster has others."""
    positives = [inputs["term2_positive"], inputs["term3_positive"]]

    def sample_positives(indices: torch.Tensor, generator: Any = None, include_self: bool = False) -> torch.Tensor:
        assert torch.equal(indices.cpu(), inputs["idx"]), "positives drawn for other anchors than the batch's"
        return positives.pop(0).to(indices.device)

    def sample_negatives(indices: torch.Tensor, k: int, generator: Any = None) -> torch.Tensor:
        assert k == inputs["negatives"].shape[1], f"the loss asked for {k} negatives"
        return inputs["negatives"].to(indices.device)

    memory.sample_positives = sample_positives
    memory.sample_negatives = sample_negatives
    if include_self:
        return []
    labels, idx = inputs["labels"], inputs["idx"]
    breaks = []
    for term in ("term2_positive", "term3_positive"):
        for i, (anchor, drawn) in enumerate(zip(idx.tolist(), inputs[term].tolist())):
            if anchor == drawn and int((labels == labels[anchor]).sum()) > 1:
                breaks.append(f"anchor {i} is its own {term.replace('_', ' ')}, which "
                              "train.positive_includes_self: false never draws")
    return breaks


def snapshot(nets: dict[str, nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    return {g: {n: p.detach().clone() for n, p in m.named_parameters()} for g, m in nets.items()}


def record(nets: dict[str, nn.Module], before: dict, losses: dict[str, float], lrs: dict[str, float],
           memory: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, Any]:
    """What one side reports: loss parts, learning rates, per-parameter before / after / gradient, E_id's
    buffers after, the memory bank before and after (stage 3)."""
    params = {}
    for g, m in nets.items():
        params[g] = {n: {"before": before[g][n], "after": p.detach().clone(),
                         "grad": None if p.grad is None else p.grad.detach().clone()}
                     for n, p in m.named_parameters()}
    return {"losses": losses, "lrs": lrs, "params": params,
            "buffers": {"E_id": {n: b.detach().clone() for n, b in nets["E_id"].named_buffers()}},
            "memory": None if memory is None else {"before": memory[0], "after": memory[1]}}


@dataclass
class GenreidRun:
    """genreid's side of one comparison: where its weights are, what it trains on, under which recipe."""

    weights: Path  # encoder.pt and generator.pt
    inputs: dict[str, torch.Tensor]
    states: dict[str, dict[str, dict]]
    cfg: GenreidConfig
    perturbation: str | None = None
    keep_float64: bool = True


def run_genreid(run: GenreidRun, stage: str) -> dict[str, Any]:
    """One iteration of genreid's own code (:func:`pretrain_iteration` or GCL's ``joint_iteration``)."""
    with float64_run(run.keep_float64):
        enc, _ = load_encoder(run.weights / "encoder.pt")
        e_str, dec, dis, _ = load_generator(run.weights / "generator.pt")
        nets = GanNets(enc, e_str, dec, dis)
        named = _networks(nets)
        if run.perturbation:
            perturb(named, run.perturbation)
        check_recipe_switches(nets, run.cfg)
        amp, info, x = AmpContext("cpu"), DistInfo(), run.inputs["x"]
        before = snapshot(named)
        params = {g: dict(m.named_parameters()) for g, m in named.items()}
        if stage == "pretrain":
            p = run.cfg.pretrain
            enc.eval().requires_grad_(False)
            o = p.optim
            opt_g = torch.optim.Adam(nets.generator_parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2),
                                     weight_decay=o.weight_decay)
            opt_d = torch.optim.Adam(dis.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
            apply_states(opt_g, {**_prefixed(params, "E_str"), **_prefixed(params, "G")},
                         {**_prefixed(run.states, "E_str"), **_prefixed(run.states, "G")})
            apply_states(opt_d, params["D"], run.states["D"])
            parts = pretrain_iteration(nets, GanOptimisers(opt_g, opt_d), amp,
                                       ViewBatch(x, run.inputs["m0"], run.inputs["mt"]), p.weights.model_dump(), info,
                                       "side-by-side pretrain", recon_only=p.recon_warmup_iters > 0)
            losses = {**parts, "d_gan": parts["d_fake"] + parts["d_real"], "total": parts["g_total"]}
            lrs = {"G": opt_g.param_groups[0]["lr"], "D": opt_d.param_groups[0]["lr"]}
            return record(named, before, _known(losses), lrs, None)
        t = run.cfg.train
        if t.pooling != "warmup":
            enc.set_pooling(t.pooling)
        for m in named.values():
            m.train()
        opts = build_optimisers(nets, t)
        apply_states(opts.g, {**_prefixed(params, "E_str"), **_prefixed(params, "G")},
                     {**_prefixed(run.states, "E_str"), **_prefixed(run.states, "G")})
        apply_states(opts.d, params["D"], run.states["D"])
        apply_states(opts.id, params["E_id"], run.states["E_id"])
        labels = run.inputs["labels"]
        method = method_spec("gcl").cls(t, StepInputs(nets=nets, opts=opts, dataset=range(labels.numel()), info=info,
                                                      amp=amp, seed=0))
        method.memory.initialise(run.inputs["bank"])
        method.memory.set_labels(labels)
        method.prepare()
        bank_before = method.memory.features.clone()
        breaks = scripted_draws(method.memory, run.inputs, t.positive_includes_self)
        idx = run.inputs["idx"]
        parts = method.joint_iteration(JointBatch(x, run.inputs["m0"], run.inputs["mt"], idx, labels[idx]),
                                       "side-by-side gcl")
        losses = {**parts, "d_gan": parts["d_fake"] + parts["d_real"]}
        lrs = {"G": opts.g.param_groups[0]["lr"], "D": opts.d.param_groups[0]["lr"],
               "E_id": opts.id.param_groups[0]["lr"]}
        rec = record(named, before, _known(losses), lrs, (bank_before, method.memory.features.clone()))
        return {**rec, "draws_outside_rules": breaks}


def _prefixed(tree: dict[str, dict], group: str) -> dict[str, Any]:
    """One group's entries with the group in the name (E_str and G share one Adam)."""
    return {f"{group}/{k}": v for k, v in tree[group].items()}


def _known(losses: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in losses.items() if k in LOSS_LABELS}


def check_recipe_switches(nets: GanNets, cfg: GenreidConfig) -> None:
    """The loaded networks compute what the recipe's ``model.generator`` / ``pretrain`` keys ask for."""
    dec, e_str, widths = nets.decoder, nets.str_encoder, cfg.model.generator
    wanted = {"decoder.code_split": (dec.arch["code_split"], widths.code_split),
              "decoder.norm": (dec.arch["norm"], widths.decoder_norm),
              "str_encoder.aspp_activation": (e_str.arch["aspp_activation"], widths.aspp_activation),
              "decoder.scale_offset": (dec.arch["scale_offset"], cfg.pretrain.adain_scale_offset),
              "decoder.code_norm": (dec.arch["code_norm"], cfg.pretrain.code_norm)}
    wrong = [f"{k}: networks {have!r}, recipe {want!r}" for k, (have, want) in wanted.items() if have != want]
    if wrong:
        raise ValueError("the compared networks and the recipe disagree: " + "; ".join(wrong))


# -- the authors' side -----------------------------------------------------------------------------------

AUTHORS = AUTHORS_CPU_PRELUDE + r"""
torch.set_default_dtype(torch.float64)

config["K"] = a["negatives"]
stage3 = a["stage"] == "gcl"
if stage3:
    config["lr_g"] = config["lr_d"] = a["stage3_lr_g"]   # what their resume leaves (docs/method.md#optimisation)
torch.manual_seed(a["seed"])
trainer = DGNet_Trainer(config, ft_net(), idnet_freeze=not stage3).double()
nets = {"id": trainer.id_net, "gen": trainer.gen, "dis": trainer.dis}
inputs = torch.load(a["inputs"])
x, m0, mt = inputs["x"], inputs["m0"], inputs["mt"]

if a["phase"] == "export":
    g = torch.Generator().manual_seed(a["seed"])
    bns = [m for m in trainer.id_net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for net in nets.values():                      # no tensor keeps its constant initial value
            for name, p in net.named_parameters():
                if name.endswith("bias") or name.endswith("beta"):
                    p.add_(0.01 * torch.randn(p.shape, generator=g))
        for m in bns:
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.reset_running_stats()
            m.momentum = None                          # running statistics = this batch's
        trainer.id_net.train()(x)
        for m in bns:
            m.momentum = 0.1
    for key, net in nets.items():
        torch.save({key: net.state_dict()}, f"{a['out']}/{key}.pt")
    sys.exit(0)

for key, net in nets.items():
    net.load_state_dict(torch.load(f"{a['out']}/{key}.pt")[key], strict=True)
states = torch.load(a["states"])
groups = {"E_id": dict(trainer.id_net.named_parameters()),
          "E_str": {n: p for n, p in trainer.gen.named_parameters() if n.startswith("enc_content.")},
          "G": {n: p for n, p in trainer.gen.named_parameters() if not n.startswith("enc_content.")},
          "D": dict(trainer.dis.named_parameters())}
for group, opt in (("E_str", trainer.gen_opt), ("G", trainer.gen_opt), ("D", trainer.dis_opt),
                   ("E_id", trainer.id_opt)):
    if group == "E_id" and not stage3:
        continue
    for name, p in groups[group].items():
        opt.state[p] = {k: v.clone() for k, v in states[group][name].items()}
for opt in (trainer.gen_opt, trainer.dis_opt) + ((trainer.id_opt,) if stage3 else ()):
    missing = [p for pg in opt.param_groups for p in pg["params"] if p not in opt.state]
    assert not missing, f"{len(missing)} parameters without optimiser state"

dis_calls = []                                         # (loss, reg) of every calc_dis_loss call
calc_dis_loss = trainer.dis.calc_dis_loss
def recording_calc_dis_loss(model, fake, real):
    loss, reg = calc_dis_loss(model, fake, real)
    dis_calls.append((float(loss), float(reg)))
    return loss, reg
trainer.dis.calc_dis_loss = recording_calc_dis_loss

vi_terms = []                                          # the memory's three cross-entropies, in call order
class RecordingCrossEntropy(torch.nn.CrossEntropyLoss):
    def forward(self, logits, target):
        out = super().forward(logits, target)
        vi_terms.append(float(out))
        return out

labels, idx = inputs["labels"], inputs["idx"]
perms = []                                             # their loop: term-3 positive, term-2 positive, negatives
def perm_choosing(members, chosen):
    pos = torch.searchsorted(members, chosen)
    assert torch.equal(members[pos], chosen), "a scripted slot is not among the allowed ones"
    rest = torch.ones(members.numel(), dtype=torch.bool)
    rest[pos] = False
    return torch.cat([pos, torch.nonzero(rest).flatten()])
for i in range(idx.numel()):
    same = torch.nonzero(labels == labels[idx[i]]).flatten()
    other = torch.nonzero(labels != labels[idx[i]]).flatten()
    perms += [perm_choosing(same, inputs["term3_positive"][i:i + 1]),
              perm_choosing(same, inputs["term2_positive"][i:i + 1]),
              perm_choosing(other, inputs["negatives"][i])]
randperm = torch.randperm
def scripted_randperm(n, *args, **kwargs):
    perm = perms.pop(0)
    assert perm.numel() == n, f"randperm({n}) where the script has {perm.numel()}"
    return perm.clone()

bank_before = None
if stage3:
    trainer.memory.features = inputs["bank"].clone()
    trainer.memory.labels = labels.clone()
    trainer.memory.criterion = RecordingCrossEntropy()
    bank_before = trainer.memory.features.clone()
before = {g: {n: p.detach().clone() for n, p in named.items()} for g, named in groups.items()}

out = trainer.forward(x, m0, mt)
x_recon, x_nv, x_nv2recon = out[:3]
trainer.dis_update(x, x_recon, x_nv, x_nv2recon, config)
d_grads = {n: p.grad.detach().clone() for n, p in groups["D"].items()}   # before gen_update adds its own
torch.randperm = scripted_randperm if stage3 else randperm
try:
    trainer.gen_update(x, *out, torch.zeros(idx.numel(), dtype=torch.long), idx, config, 1)
finally:
    torch.randperm = randperm
assert not perms or not stage3, f"{len(perms)} scripted draws left unused"

lam = config["dis"]["LAMBDA"]
losses = {"d_total": float(trainer.loss_dis_total), "d_gan": sum(l - r for l, r in dis_calls),
          "d_r1": sum(r for _, r in dis_calls) / (lam * len(dis_calls)),
          "rec": float(trainer.loss_gen_recon_x), "cyc": float(trainer.loss_gen_cycrecon_x),
          "code": float(trainer.loss_gen_recon_f), "cyc_code": float(trainer.loss_gen_nv2recon_f),
          "g_adv": float(trainer.loss_gen_adv_recon + trainer.loss_gen_adv_nv + trainer.loss_gen_adv_nv2recon),
          "total": float(trainer.loss_gen_total)}
lrs = {"G": trainer.gen_opt.param_groups[0]["lr"], "D": trainer.dis_opt.param_groups[0]["lr"]}
if stage3:
    losses.update(vi=float(trainer.memory_loss_id), vi_self=vi_terms[0], vi_nv_cluster=vi_terms[1],
                  vi_orig_cluster=vi_terms[2])
    lrs["E_id"] = trainer.id_opt.param_groups[0]["lr"]
params = {}
for g, named in groups.items():
    params[g] = {}
    for n, p in named.items():
        grad = d_grads[n] if g == "D" else (p.grad.detach().clone() if g != "E_id" or stage3 else None)
        params[g][n] = {"before": before[g][n], "after": p.detach().clone(), "grad": grad}
torch.save({"losses": losses, "lrs": lrs, "params": params,
            "buffers": {"E_id": {n: b.detach().clone() for n, b in trainer.id_net.named_buffers()}},
            "memory": None if not stage3 else {"before": bank_before, "after": trainer.memory.features.clone()}},
           a["record"])
"""


def authors_child(args: dict[str, Any]) -> None:
    """Run :data:`AUTHORS` in a child process (the authors' package never enters this one)."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, "-c", AUTHORS, json.dumps(args)], cwd=args["out"], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"the authors' code failed ({args['phase']}, {args.get('stage')}):\n{tail}")


def authors_name_map(id_state: dict, gen_state: dict, dis_state: dict) -> dict[str, dict[str, str]]:
    """authors' key -> genreid key per group, by the import's own renaming rules (every parameter and
    buffer; AdaIN's dummy buffers are dropped, as the import drops them)."""
    e_str, dec = rename_generator(gen_state)
    convs = {"E_id": rename_id_encoder(id_state), "E_str": e_str, "G": dec, "D": rename_discriminator(dis_state)}
    unmapped = [k for c in convs.values() for k in c.unmapped]
    if unmapped:
        raise ValueError(f"authors' keys the import does not map: {unmapped[:5]}")
    return {g: dict(c.mapped) for g, c in convs.items()}


def to_genreid_names(rec: dict[str, Any], names: dict[str, dict[str, str]]) -> dict[str, Any]:
    """An authors' record with every parameter and buffer under genreid's name."""
    out = dict(rec)
    out["params"] = {g: {names[g][k]: v for k, v in rec["params"][g].items()} for g in rec["params"]}
    out["buffers"] = {"E_id": {names["E_id"][k]: v for k, v in rec["buffers"]["E_id"].items()}}
    return out


def to_authors_names(states: dict[str, dict[str, dict]], names: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Optimiser states keyed by genreid names -> by the authors' names (E_str and G both live in AdaINGen)."""
    out: dict[str, dict] = {}
    for g, by_genreid in states.items():
        inverse = {v: k for k, v in names[g].items()}
        out[g] = {inverse[k]: v for k, v in by_genreid.items()}
    return out


# -- the comparison ---------------------------------------------------------------------------------------

@dataclass
class Row:
    """One compared quantity. For a tensor group ``ref``/``other`` are norms and ``max_elem`` the largest
    element difference, ``rel_elem`` that over the largest reference element, ``worst`` its parameter."""

    stage: str
    quantity: str
    ref: float
    other: float
    abs_diff: float
    rel_diff: float
    max_elem: float | None = None
    rel_elem: float | None = None
    worst: str = ""
    note: str = ""
    ok: bool = True


def _rel(diff: float, scale: float) -> float:
    if diff == 0.0:
        return 0.0
    return diff / scale if scale > 0 else math.inf


def scalar_row(stage: str, quantity: str, ref: float | None, other: float | None, rtol: float) -> Row:
    if ref is None or other is None:
        missing = "reference" if ref is None else "compared side"
        return Row(stage, quantity, math.nan, math.nan, math.nan, math.inf, note=f"absent on the {missing}", ok=False)
    diff = abs(ref - other)
    rel = _rel(diff, abs(ref))
    return Row(stage, quantity, ref, other, diff, rel, ok=rel <= rtol)


def tensor_row(stage: str, quantity: str, ref: dict[str, torch.Tensor | None],
               other: dict[str, torch.Tensor | None], rtol: float) -> Row:
    """Norms of the whole group, the largest element difference and where it is."""
    names = sorted(set(ref) | set(other))
    absent = [n for n in names if (ref.get(n) is None) != (other.get(n) is None)]
    shapes = [n for n in names if n not in absent and ref.get(n) is not None
              and tuple(ref[n].shape) != tuple(other[n].shape)]
    if absent or shapes:
        bad = absent or shapes
        what = "present on one side only" if absent else "shapes differ"
        return Row(stage, quantity, math.nan, math.nan, math.nan, math.inf, worst=bad[0],
                   note=f"{len(bad)} tensor(s) {what}", ok=False)
    present = [n for n in names if ref[n] is not None]
    if not present:
        return Row(stage, quantity, 0.0, 0.0, 0.0, 0.0, note="none on either side")
    sq_ref = sum(float(ref[n].double().pow(2).sum()) for n in present)
    sq_other = sum(float(other[n].double().pow(2).sum()) for n in present)
    worst, max_elem, max_ref = "", 0.0, 0.0
    for n in (n for n in present if ref[n].numel()):
        d = float((ref[n].double() - other[n].double()).abs().max())
        max_ref = max(max_ref, float(ref[n].double().abs().max()))
        if d > max_elem:
            worst, max_elem = n, d
    n_ref, n_other = math.sqrt(sq_ref), math.sqrt(sq_other)
    diff = abs(n_ref - n_other)
    rel, rel_elem = _rel(diff, n_ref), _rel(max_elem, max_ref)
    return Row(stage, quantity, n_ref, n_other, diff, rel, max_elem, rel_elem, worst,
               ok=rel <= rtol and rel_elem <= rtol)


def compare(stage: str, ref: dict[str, Any], other: dict[str, Any], rtol: float) -> list[Row]:
    """Every quantity of two records of the same stage, in table order."""
    rows = []
    for key, label in LOSS_LABELS.items():
        if key in ref["losses"] or key in other["losses"]:
            rows.append(scalar_row(stage, label, ref["losses"].get(key), other["losses"].get(key), rtol))
    for g in sorted(set(ref["lrs"]) | set(other["lrs"]), key=GROUPS.index):
        rows.append(scalar_row(stage, f"learning rate {g}", ref["lrs"].get(g), other["lrs"].get(g), rtol))
    for what, label in (("before", "weights before"), ("grad", "gradient"), ("step", "step")):
        for g in GROUPS:
            rp, op = ref["params"].get(g, {}), other["params"].get(g, {})
            rows.append(tensor_row(stage, f"{label} {g}", _pick(rp, what), _pick(op, what), rtol))
    rows.append(tensor_row(stage, "E_id BatchNorm statistics after", ref["buffers"]["E_id"],
                           other["buffers"]["E_id"], rtol))
    breaks = ref.get("draws_outside_rules", []) + other.get("draws_outside_rules", [])
    if "draws_outside_rules" in ref or "draws_outside_rules" in other:
        rows.append(Row(stage, "scripted draws the sampler's rule allows", 0.0, float(len(breaks)), float(len(breaks)),
                        math.inf if breaks else 0.0, note=breaks[0] if breaks else "", ok=not breaks))
    if ref["memory"] is not None or other["memory"] is not None:
        rm, om = ref["memory"] or {}, other["memory"] or {}
        rows.append(tensor_row(stage, "memory bank after", {"bank": rm.get("after")}, {"bank": om.get("after")}, rtol))
        rows.append(tensor_row(stage, "memory update (after - before)", {"bank": _delta(rm)}, {"bank": _delta(om)},
                               rtol))
    return rows


def _pick(params: dict[str, dict], what: str) -> dict[str, torch.Tensor | None]:
    if what == "step":
        return {n: v["after"] - v["before"] for n, v in params.items()}
    return {n: v[what] for n, v in params.items()}


def _delta(mem: dict[str, torch.Tensor]) -> torch.Tensor | None:
    return None if not mem else mem["after"] - mem["before"]


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    if math.isnan(v):
        return "-"
    return f"{v:.6g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"


def table(rows: list[Row], ref_name: str, other_name: str) -> str:
    head = (f"| stage | quantity | {ref_name} | {other_name} | abs diff | rel diff | max elem diff | rel elem diff "
            "| largest at | ok |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        where = r.worst + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.stage} | {r.quantity} | {_fmt(r.ref)} | {_fmt(r.other)} | {_fmt(r.abs_diff)} | "
                     f"{_fmt(r.rel_diff)} | {_fmt(r.max_elem)} | {_fmt(r.rel_elem)} | {where} | "
                     f"{'yes' if r.ok else 'NO'} |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> dict[str, float]:
    """The largest relative differences, by kind of quantity."""
    kinds = {"losses": lambda r: r.quantity in LOSS_LABELS.values(), "gradients": lambda r: "gradient" in r.quantity,
             "steps": lambda r: r.quantity.startswith("step"), "weights before": lambda r: "weights" in r.quantity,
             "memory": lambda r: "memory" in r.quantity, "BatchNorm statistics": lambda r: "BatchNorm" in r.quantity,
             "learning rates": lambda r: "learning rate" in r.quantity}
    out = {}
    for kind, test in kinds.items():
        chosen = [max(r.rel_diff, r.rel_elem or 0.0) for r in rows if test(r)]
        if chosen:
            out[kind] = max(chosen)
    return out


# -- the command ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def self_check_weights(out: Path, shapes: Shapes, cfg: GenreidConfig, seed: int) -> None:
    """Small genreid networks (ResNet-18, narrow generator) with the recipe's switches, for ``--self-check``."""
    with float64_run():
        torch.manual_seed(seed)
        enc = build_encoder("resnet18", "none", "avg", shapes.embedding_dim, 1, 4)
        widths = GeneratorWidths(**{**cfg.model.generator.model_dump(), **TINY_WIDTHS})
        e_str, dec, dis = build_generator(widths, enc.channels, enc.stripes,
                                          adain_scale_offset=cfg.pretrain.adain_scale_offset,
                                          code_norm=cfg.pretrain.code_norm)
        with torch.no_grad():
            for m in (enc, e_str, dec, dis):
                for name, p in m.named_parameters():
                    if name.endswith(("bias", "beta")):
                        p.add_(0.01 * torch.randn(p.shape))
        save_encoder(enc, out / "encoder.pt")
        save_generator(out / "generator.pt", e_str, dec, dis)


def genreid_params(weights: Path) -> dict[str, dict[str, torch.Tensor]]:
    with float64_run():
        enc, _ = load_encoder(weights / "encoder.pt")
        e_str, dec, dis, _ = load_generator(weights / "generator.pt")
    return {g: dict(m.named_parameters()) for g, m in _networks(GanNets(enc, e_str, dec, dis)).items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", type=Path, help="an export of github.com/chenhao2345/GCL (git archive HEAD)")
    ap.add_argument("--self-check", action="store_true", help="compare genreid with genreid (small networks)")
    ap.add_argument("--perturb", help="GROUP/NAME=DELTA: move one weight of genreid's side before the iteration")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--recipe", type=Path, default=ROOT / "params" / "ablations" / "authors_code.yaml")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--slots", type=int, default=128, help="memory slots")
    ap.add_argument("--negatives", type=int, default=32, help="K")
    ap.add_argument("--rtol", type=float, default=1e-7, help="largest relative difference accepted")
    ap.add_argument("--float32-casts", action="store_true", help="let genreid's .float() round float64 to float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the rows and the largest differences here")
    ap.add_argument("--keep", type=Path, help="keep the exported and imported weights in this folder")
    a = ap.parse_args(argv)
    if (a.authors is None) == (not a.self_check):
        ap.error("pass --authors PATH (an export of their repository) or --self-check, not both")
    if a.float32_casts and "gcl" in a.stages:
        ap.error("--float32-casts runs stage 2 only (--stages pretrain): with float32 features the stage-3 loss "
                 "meets the float64 memory bank and stops")
    return a


@dataclass
class Sides:
    """Where the compared weights are and how the reference side runs: the authors' child process
    (``authors`` holds its fixed arguments, ``names`` the authors' -> genreid names) or genreid itself."""

    weights: Path
    authors: dict[str, Any] | None = None
    names: dict[str, dict[str, str]] | None = None


def prepare_authors(a: argparse.Namespace, work: Path, cfg: GenreidConfig) -> Sides:
    """Export the authors' networks, convert them with ``genreid import-authors``, read the name mapping."""
    from genreid.cli import main as genreid_cli

    exported, weights = work / "authors", work / "genreid"
    exported.mkdir(exist_ok=True)
    fixed = {"authors": str(a.authors.resolve()), "threads": a.threads, "seed": a.seed, "out": str(exported),
             "inputs": str(work / "inputs.pt"), "negatives": a.negatives, "stage3_lr_g": cfg.train.stage3_lr_g}
    authors_child({**fixed, "phase": "export", "stage": "pretrain"})
    with float64_run():  # the imported networks are built in float64, so the weights are copied exactly
        rc = genreid_cli(["import-authors", "--id", str(exported / "id.pt"), "--gen", str(exported / "gen.pt"),
                          "--dis", str(exported / "dis.pt"), "--out", str(weights), "--force"])
    if rc != 0:
        raise RuntimeError("genreid import-authors refused the authors' export (its message is above)")
    loaded = {k: torch.load(exported / f"{k}.pt", weights_only=True)[k] for k in ("id", "gen", "dis")}
    return Sides(weights, fixed, authors_name_map(loaded["id"], loaded["gen"], loaded["dis"]))


def compare_stage(a: argparse.Namespace, sides: Sides, work: Path, cfg: GenreidConfig,
                  stage: str) -> tuple[list[Row], dict[str, list[str]]]:
    """Probe for the gradient scale, run both sides from the same states, compare; also returns the
    tensors whose gradient is rounding noise."""
    inputs = torch.load(work / "inputs.pt", weights_only=True)
    params = genreid_params(sides.weights)
    probe = run_genreid(GenreidRun(sides.weights, inputs, optimiser_states(params, a.seed), cfg), stage)
    states = optimiser_states(params, a.seed, mean_sq_grads(probe))
    noise_only = rounding_level_gradients(probe)
    del probe, params
    keep64 = not a.float32_casts
    if sides.authors is None:
        ref = run_genreid(GenreidRun(sides.weights, inputs, states, cfg, None, keep64), stage)
    else:
        path, state_path = work / f"record_authors_{stage}.pt", work / f"states_authors_{stage}.pt"
        torch.save(to_authors_names(states, sides.names), state_path)
        authors_child({**sides.authors, "phase": "run", "stage": stage, "states": str(state_path),
                       "record": str(path)})
        ref = to_genreid_names(torch.load(path, weights_only=True), sides.names)
    other = run_genreid(GenreidRun(sides.weights, inputs, states, cfg, a.perturb, keep64), stage)
    return compare(stage, ref, other, a.rtol), noise_only


def report(a: argparse.Namespace, rows: list[Row], noise_only: dict[str, dict[str, list[str]]],
           names: tuple[str, str], argv: list[str]) -> int:
    """Print the table and the verdict, write ``--json``; 1 when any quantity is beyond ``--rtol``."""
    print(table(rows, *names))
    worst = summary(rows)
    failed = [r for r in rows if not r.ok]
    print(f"\nlargest relative differences: {json.dumps({k: float(f'{v:.3g}') for k, v in worst.items()})}")
    print(f"{len(failed)} of {len(rows)} quantities differ by more than rtol {a.rtol:g}"
          + (": " + "; ".join(f"{r.stage} {r.quantity}" for r in failed) if failed else ""))
    for stage, groups in noise_only.items():
        for g, tensors in groups.items():
            print(f"{stage} {g}: {len(tensors)} tensor(s) whose gradient is rounding noise on both sides (zero in "
                  f"exact arithmetic: biases in front of a normalisation, e.g. {tensors[0]})"
                  + ("" if g == "E_id" else "; Adam state floored at the group's scale, so the noise stays small"))
    if a.json:
        meta = {"command": "python benchmarks/iteration_vs_authors.py " + " ".join(shlex.quote(x) for x in argv),
                "cpu": cpu_model(), "torch": torch.__version__, "rtol": a.rtol, "float32_casts": a.float32_casts,
                "shapes": {k: getattr(a, k) for k in ("batch", "height", "width", "slots", "negatives")},
                "recipe": _shown(a.recipe), "compared": list(names)}
        a.json.write_text(json.dumps({"meta": meta, "max_relative_differences": worst,
                                      "rounding_level_gradients": noise_only,
                                      "rows": [_json_row(r) for r in rows]}, indent=1) + "\n")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.recipe, {"train.num_negatives": a.negatives})
    shapes = Shapes(batch=a.batch, height=a.height, width=a.width, slots=a.slots, negatives=a.negatives,
                    embedding_dim=32 if a.self_check else 512)
    with contextlib.ExitStack() as stack:
        work = a.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iteration-vs-authors-")))
        work.mkdir(parents=True, exist_ok=True)
        torch.save(make_inputs(shapes, a.seed), work / "inputs.pt")
        if a.self_check:
            sides = Sides(work / "genreid")
            sides.weights.mkdir(exist_ok=True)
            self_check_weights(sides.weights, shapes, cfg, a.seed)
            names = ("genreid", "genreid (perturbed)" if a.perturb else "genreid")
        else:
            sides, names = prepare_authors(a, work, cfg), ("authors", "genreid")
        rows: list[Row] = []
        noise_only: dict[str, dict[str, list[str]]] = {}
        try:
            for stage in a.stages:
                stage_rows, noise_only[stage] = compare_stage(a, sides, work, cfg, stage)
                rows += stage_rows
        finally:
            torch.set_num_threads(threads)
    return report(a, rows, noise_only, names, argv)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _json_row(r: Row) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}


if __name__ == "__main__":
    sys.exit(main())
