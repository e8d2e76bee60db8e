"""Generator pre-training and joint-training throughput on CPU at the default small profile
(params/synthetic_cpu.yaml: 64x32 images, ResNet-18, narrow generator, batch 16).

One benchmark round = one full iteration (forward, D step, G/E_id step, memory update in stage 3)
on random inputs; iterations/s and images/s (real images per second) go to ``extra_info``.
Run with ``make bench`` (or ``pytest benchmarks/bench_gan.py --benchmark-enable``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genreid.config import load_config
from genreid.engine.amp import AmpContext
from genreid.engine.dist import DistInfo
from genreid.gan.nets import GanNets
from genreid.joint.contrastive import StepInputs
from genreid.joint.iteration import JointBatch, Optimisers
from genreid.models.generator import build_generator
from genreid.models.id_encoder import build_encoder
from genreid.pretrain.step import GanOptimisers, ViewBatch, pretrain_iteration
from genreid.registry import method_spec

PARAMS = Path(__file__).resolve().parents[1] / "params" / "synthetic_cpu.yaml"
N_MEMORY = 700  # about the SynthReID training split


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(PARAMS)
    g = cfg.model.generator
    torch.manual_seed(0)
    torch.set_num_threads(cfg.runtime.num_threads or torch.get_num_threads())
    enc = build_encoder(cfg.model.backbone, "none", "avg", cfg.model.embedding_dim, cfg.model.last_stride,
                        cfg.model.stripes)
    nets = GanNets(enc, *build_generator(g, enc.channels, enc.stripes))
    b, h, w = cfg.train.batch_size, cfg.data.height, cfg.data.width
    batch = (torch.randn(b, 3, h, w), torch.randn(b, 1, h, w), torch.randn(b, 1, h, w))
    return cfg, nets, batch


def _report(benchmark, batch_size: int) -> None:
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"iterations_per_s": round(1 / mean, 3), "images_per_s": round(batch_size / mean, 2),
                                 "threads": torch.get_num_threads()})


@pytest.mark.parametrize("recon_only", [False, True], ids=["full", "recon_warmup"])
def test_pretrain_iteration(benchmark, setup, recon_only):
    cfg, nets, (x, m0, mt) = setup
    nets.id_encoder.eval().requires_grad_(False)
    weights = cfg.pretrain.weights.model_dump()
    opt_g = torch.optim.Adam(nets.generator_parameters(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(nets.discriminator.parameters(), lr=1e-4, betas=(0.0, 0.999))
    amp = AmpContext(torch.device("cpu"))

    def step():
        pretrain_iteration(nets, GanOptimisers(opt_g, opt_d), amp, ViewBatch(x, m0, mt), weights, DistInfo(), "bench",
                           recon_only)

    benchmark.pedantic(step, rounds=8 if recon_only else 5, iterations=1, warmup_rounds=1)
    _report(benchmark, x.shape[0])
    nets.id_encoder.requires_grad_(True)


@pytest.mark.parametrize("method", ["gcl", "gcl_plus"])
def test_joint_iteration(benchmark, setup, method):
    cfg, nets, (x, m0, mt) = setup
    enc = nets.id_encoder.train()
    t = cfg.train
    opts = Optimisers(torch.optim.Adam(nets.generator_parameters(), lr=1e-4, betas=(0.0, 0.999)),
                      torch.optim.Adam(nets.discriminator.parameters(), lr=1e-4, betas=(0.0, 0.999)),
                      torch.optim.SGD(enc.parameters(), lr=3.5e-4, momentum=0.9, nesterov=True))
    chosen = method_spec(method).cls(t, StepInputs(nets=nets, opts=opts, dataset=range(N_MEMORY), info=DistInfo(),
                                                   amp=AmpContext("cpu"), seed=0))
    chosen.memory.initialise(torch.randn(N_MEMORY, enc.embedding_dim))
    labels = torch.arange(N_MEMORY) // 12
    chosen.memory.set_labels(labels)
    chosen.prepare()
    idx = torch.randperm(N_MEMORY)[:x.shape[0]]
    batch = JointBatch(x, m0, mt, idx, labels[idx])

    def step():
        chosen.joint_iteration(batch, "bench")

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    _report(benchmark, x.shape[0])
