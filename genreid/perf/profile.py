"""One training iteration of each stage at a chosen profile, on random inputs and random weights.

The iterations are the stages' own functions (:func:`genreid.warmup.step.warmup_iteration`,
:func:`genreid.pretrain.step.pretrain_iteration`, and the joint iteration of every registered
generative method, :meth:`genreid.joint.generative.GenerativeMethod.joint_iteration`), built from
the config sections' paper defaults, so a measurement follows the code the pipeline runs. Used by
``scripts/gpu_check.sh`` (:mod:`genreid.perf.gpu_check`) and ``benchmarks/paper_shapes.py``.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from genreid.config.sections.gan import PretrainConfig, TrainConfig
from genreid.config.sections.model import GeneratorWidths, ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.engine.amp import AmpContext
from genreid.engine.dist import DistInfo
from genreid.gan.nets import GanNets
from genreid.joint.contrastive import StepInputs
from genreid.joint.iteration import JointBatch, build_optimisers
from genreid.memory.cluster_memory import ClusterMemory
from genreid.models.generator import build_generator
from genreid.models.id_encoder import build_encoder
from genreid.models.layers import set_bn_group_size
from genreid.pretrain.step import GanOptimisers, ViewBatch, pretrain_iteration
from genreid.registry import method_spec, stage3_methods
from genreid.utils.seeding import request_deterministic_algorithms
from genreid.warmup.iteration import WarmupBatch, micro_batch_size, warmup_iteration

STAGES = ("warmup", "pretrain") + tuple(m.name for m in stage3_methods() if m.needs_generator)


@dataclass(frozen=True)
class Profile:
    name: str
    height: int
    width: int
    backbone: str
    warmup_batch: int  # stage 1 (paper: 256 in BN groups of 64)
    bn_group: int
    stage_batch: int  # stages 2 and 3 (paper: 16)
    memory_slots: int  # stage-3 instance memory (Market-1501 training images)
    clusters: int
    num_negatives: int
    generator: GeneratorWidths = field(default_factory=GeneratorWidths)


PAPER = Profile("paper", 256, 128, "resnet50", 256, 64, 16, 12936, 751, 8192)
# the CPU comparison with the authors' code (BENCHMARKS.md): paper widths at 128x64
PAPER_128 = Profile("paper_128x64", 128, 64, "resnet50", 256, 64, 16, 12936, 751, 8192)
# 64x32, not 32x16: torch 2.12.1's oneDNN bf16 3x3 stride-2 convolution returns garbage for a 4x2 input
# (ResNet layer3 at 32x16), see BENCHMARKS.md#cpu-bf16-caveat
DRY = Profile("dry", 64, 32, "resnet18", 16, 8, 4, 256, 32, 64,
              GeneratorWidths(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 8], mlp_dim=16,
                              dis_channels=[8, 8], dis_scales=2, res_blocks=1))
PROFILES = {p.name: p for p in (PAPER, PAPER_128, DRY)}


def set_determinism(deterministic: bool) -> None:
    """``True``: what ``runtime.deterministic`` asks (deterministic algorithms, no cuDNN autotuning);
    ``False``: the fast mode (cuDNN benchmark on, no deterministic algorithms, no NaN-filling)."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    request_deterministic_algorithms(deterministic, warn_only=True)


# Built from the config sections here rather than through ``genreid.*.run`` (whose hooks import
# dvclive, absent from a bare GPU image): the same arguments those modules pass.
def _encoder(profile: Profile, pooling: str | None, amp: AmpContext) -> torch.nn.Module:
    m = ModelConfig(backbone=profile.backbone, pretrained="none")
    return amp.module(build_encoder(m.backbone, m.pretrained, pooling or m.pooling, m.embedding_dim, m.last_stride,
                                    m.stripes))


def _images(profile: Profile, n: int, channels: int, amp: AmpContext) -> torch.Tensor:
    return amp.input(torch.randn(n, channels, profile.height, profile.width))


def make_stage(stage: str, profile: Profile, device: torch.device | str, amp_mode: str = "off",
               channels_last: bool = False, micro_batch: int = 0, seed: int = 0,
               checkpointing: bool = False) -> tuple[Callable[[], dict], int]:
    """``(one_iteration, images_per_iteration)`` for ``stage`` in :data:`STAGES`."""
    torch.manual_seed(seed)
    device = torch.device(device)
    amp = AmpContext(device, amp_mode, channels_last, checkpointing)
    if stage == "warmup":
        w = WarmupConfig()
        enc = set_bn_group_size(_encoder(profile, w.pooling, amp), profile.bn_group).train()
        opt = torch.optim.Adam(enc.parameters(), lr=w.lr, weight_decay=w.weight_decay)
        memory = ClusterMemory(enc.embedding_dim, w.momentum).to(device)
        labels = torch.arange(profile.memory_slots) % profile.clusters
        memory.reset(F.normalize(torch.randn(profile.memory_slots, enc.embedding_dim), dim=1).to(device), labels)
        x = torch.randn(profile.warmup_batch, 3, profile.height, profile.width)
        targets = torch.randint(0, profile.clusters, (profile.warmup_batch,), device=device)
        micro = micro_batch_size(micro_batch, profile.bn_group)
        batch = WarmupBatch(x, targets, micro)
        return (lambda: warmup_iteration(enc, opt, memory, amp, batch, w.temperature, stage)), x.shape[0]
    enc = _encoder(profile, None, amp)
    b = profile.stage_batch
    x, m0, mt = _images(profile, b, 3, amp), _images(profile, b, 1, amp), _images(profile, b, 1, amp)
    p = PretrainConfig()
    e_str, dec, dis = build_generator(profile.generator, enc.channels, enc.stripes,
                                      adain_scale_offset=p.adain_scale_offset, code_norm=p.code_norm)
    nets = GanNets(enc, amp.module(e_str), amp.module(dec), amp.module(dis))
    if stage == "pretrain":
        enc.eval().requires_grad_(False)
        o = p.optim
        opt_g = torch.optim.Adam(nets.generator_parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2),
                                 weight_decay=o.weight_decay)
        opt_d = torch.optim.Adam(dis.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        weights = p.weights.model_dump()
        return (lambda: pretrain_iteration(nets, GanOptimisers(opt_g, opt_d), amp, ViewBatch(x, m0, mt), weights,
                                           DistInfo(device=device), stage)), b
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    cfg = TrainConfig(num_negatives=profile.num_negatives)
    for m in (enc, e_str, dec, dis):
        m.train()
    opts = build_optimisers(nets, cfg)  # the stage's own builder (genreid.joint.iteration), not a copy
    method = method_spec(stage).cls(cfg, StepInputs(nets=nets, opts=opts, dataset=range(profile.memory_slots),
                                                    info=DistInfo(device=device), amp=amp, seed=seed))
    method.memory.initialise(torch.randn(profile.memory_slots, enc.embedding_dim, device=device))
    labels = torch.arange(profile.memory_slots) % profile.clusters
    method.memory.set_labels(labels)
    method.prepare()
    idx = torch.randperm(profile.memory_slots)[:b].to(device)
    batch = JointBatch(x, m0, mt, idx, labels.to(device)[idx])
    return (lambda: method.joint_iteration(batch, stage)), b


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux ru_maxrss is in KiB, macOS in bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], dict], images: int, device: torch.device | str, warmup: int = 2,
            iters: int = 3) -> dict:
    """Seconds per iteration (median of ``iters`` after ``warmup`` untimed ones), images/s, peak memory
    (CUDA: ``max_memory_allocated`` over the timed iterations, optimiser state included; CPU: the
    process's peak RSS so far) and the last iteration's loss parts (all finite?)."""
    device = torch.device(device)
    parts: dict = {}
    for _ in range(warmup):
        parts = fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        parts = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    out = {"seconds_per_iter": round(median, 4), "min_seconds": round(times[0], 4),
           "images_per_s": round(images / median, 2), "iters": iters, "warmup_iters": warmup,
           "finite": all(torch.isfinite(torch.tensor(float(v))) for v in parts.values())}
    if device.type == "cuda":
        out["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out["peak_reserved_mib"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    else:
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out
