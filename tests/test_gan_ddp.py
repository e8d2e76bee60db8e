"""torchrun-style multi-process training (gloo on CPU, 2 ranks, one spawn): sharded gradients
averaged over ranks equal the whole-batch gradient of one process, and both trainers run to the
end on 2 ranks with rank 0 writing the outputs."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from gan_toy import make_toy
from test_joint import W
from test_joint import _settings as joint_settings
from test_pretrain import TINY
from test_pretrain import _settings as pretrain_settings

from genreid.models.generator import build_generator, load_generator, save_generator
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.training.ddp import init_distributed
from genreid.training.gan_batch import GanNets, fake_sets, forward_views, generator_loss
from genreid.training.gan_dist import average_gradients, rank_slice


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _generator_grads(nets: GanNets, x, m0, mt) -> list[torch.Tensor]:
    for p in nets.generator_parameters():
        p.grad = None
    views = forward_views(nets, x, m0, mt)
    loss, _ = generator_loss(nets, views, x, W, fake_sets(views))
    loss.backward()
    return [p.grad.clone() for p in nets.generator_parameters()]


def _worker(rank: int, port: int, toy: dict, out) -> None:
    from genreid.training.joint import train_joint
    from genreid.training.pretrain import pretrain_generator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed(torch.device("cpu"))
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4).eval()
    nets = GanNets(enc, *build_generator(TINY, 512, 4))
    x, m0, mt = torch.randn(4, 3, 32, 16), torch.randn(4, 1, 32, 16), torch.randn(4, 1, 32, 16)
    whole = _generator_grads(nets, x, m0, mt)
    share = rank_slice(range(4), info)
    _generator_grads(nets, x[share], m0[share], mt[share])
    average_gradients(nets.generator_parameters(), info)
    for g_whole, p in zip(whole, nets.generator_parameters()):
        assert torch.allclose(g_whole, p.grad, rtol=1e-4, atol=1e-6), "averaged shard gradients differ"
    pretrain_generator(toy["df"], toy["render_dir"], toy["encoder"], TINY, toy["height"], toy["width"],
                       out / "pre" / "models", out / "pre" / "results", pretrain_settings(epochs=1, iters_per_epoch=2))
    train_joint(toy["df"], toy["val_df"], toy["render_dir"], toy["encoder"], toy["generator"], toy["height"],
                toy["width"], out / "joint" / "models", out / "joint" / "results", joint_settings(epochs=1))


def test_two_ranks_average_to_the_whole_batch_and_both_trainers_finish(tmp_path):
    toy = make_toy(tmp_path / "toy")
    torch.manual_seed(0)
    save_generator(tmp_path / "generator.pt", *build_generator(TINY, 512, 4))
    toy["generator"] = tmp_path / "generator.pt"
    mp.spawn(_worker, args=(_free_port(), toy, tmp_path), nprocs=2, join=True)
    assert load_generator(tmp_path / "pre" / "models" / "generator.pt")[3]["iterations"] == 2
    _, extra = load_encoder(tmp_path / "joint" / "models" / "encoder.pt")
    assert extra["method"] == "gcl_plus" and extra["iterations"] == 3 and len(extra["history"]) == 2
