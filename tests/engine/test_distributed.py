"""torchrun-style training on 2 gloo processes (CPU, one spawn): sharded gradients average to the
whole-batch gradient; sharded extraction reassembles in dataset order; the warm-up, generator
pre-training and joint training run to the end, and after every epoch both ranks hold identical
BatchNorm buffers and report identical validation metrics (each rank computes its own)."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.gan import PretrainConfig, TrainConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.data.manifest import load_prepared
from genreid.engine import dist
from genreid.engine.batches import image_dataset
from genreid.engine.context import RunContext
from genreid.engine.evaluate import extract_all
from genreid.engine.trainer import Hook
from genreid.gan.nets import GanNets, fake_sets, forward_views, generator_loss
from genreid.joint.run import JointInputs, train_joint
from genreid.models.generator import build_generator, load_generator
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.pretrain.run import pretrain_generator
from genreid.warmup.run import train_warmup

W = {"rec": 5.0, "cyc": 5.0, "code": 5.0, "cyc_code": 5.0, "adv": 1.0, "r1": 0.01}
CPU = RuntimeConfig(device="cpu")
CLUSTER = {"k1": 6, "k2": 2, "min_samples": 2}


class RecordRanks(Hook):
    """After each epoch's validation: this rank's BN buffers and validation metrics."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def after_epoch(self, trainer, record) -> None:
        buffers = [b.detach().float().flatten() for m in trainer.step.buffered_modules() for b in m.buffers()]
        self.rows.append({"epoch": record["epoch"], "buffers": torch.cat(buffers).clone(),
                          "val": (record.get("val_mAP"), record.get("val_R1"))})


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


def _worker(rank: int, port: int, toy: dict, prepared: str, widths, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = dist.init_distributed("cpu")
    assert info.enabled and info.is_main == (rank == 0)
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4).eval()
    nets = GanNets(enc, *build_generator(widths, 512, 4))
    x, m0, mt = torch.randn(4, 3, 32, 16), torch.randn(4, 1, 32, 16), torch.randn(4, 1, 32, 16)
    whole = _generator_grads(nets, x, m0, mt)
    share = dist.shard_batch(range(4), info)
    _generator_grads(nets, x[share], m0[share], mt[share])
    dist.average_gradients(nets.generator_parameters(), info)
    for g_whole, p in zip(whole, nets.generator_parameters()):
        assert torch.allclose(g_whole, p.grad, rtol=1e-4, atol=1e-6), "averaged shard gradients differ"
    feats = extract_all(enc, image_dataset(toy["df"], 32, 16), info, batch_size=5)

    tables = load_prepared(prepared, splits=("train", "val"))
    warm, joint = RecordRanks(), RecordRanks()
    model = ModelConfig(backbone="resnet18", pretrained="none", pooling="avg", embedding_dim=16, stripes=4)
    wcfg = WarmupConfig(epochs=2, iters_per_epoch=2, batch_size=16, num_instances=4, bn_group_size=0, eval_every=1,
                        extract_batch_size=16, cluster={"k1": 10, "k2": 3})
    def ctx(name: str, hooks=()) -> RunContext:
        return RunContext(seed=1, height=32, width=16, model_dir=out / name / "models",
                          results_dir=out / name / "results", runtime=CPU, extra_hooks=hooks)

    train_warmup(tables["train"], tables["val"], wcfg, model, ctx("warm", [warm]))
    pretrain_generator(toy["df"], toy["render_dir"], toy["encoder"], PretrainConfig(epochs=1, batch_size=4,
                       iters_per_epoch=2), widths, ctx("pre"))
    tcfg = TrainConfig(epochs=2, batch_size=4, iters_per_epoch=3, num_negatives=8, extract_batch_size=16,
                       gcl_plus={"cluster": {**CLUSTER, "eps_rule": "fixed", "eps": 0.7}})
    inputs = JointInputs(encoder=toy["encoder"], generator=toy["generator"], renders=toy["render_dir"])
    train_joint(toy["df"], toy["val_df"], inputs, tcfg, "gcl_plus", ctx("joint", [joint]))
    torch.save({"features": feats.features, "warmup": warm.rows, "joint": joint.rows}, out / f"rank{rank}.pt")


def test_two_ranks_agree_on_buffers_and_validation_and_every_trainer_finishes(tmp_path, gan_toy, make_prepared,
                                                                              tiny_widths):
    prepared = make_prepared(tmp_path / "prepared")
    mp.spawn(_worker, args=(_free_port(), gan_toy, str(prepared), tiny_widths, tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    torch.manual_seed(0)
    single = extract_all(build_encoder("resnet18", "none", "avg", 8, 1, 4).eval(),
                         image_dataset(gan_toy["df"], 32, 16), dist.DistInfo(), batch_size=5)
    for r in (r0, r1):  # sharded extraction, reassembled in dataset order
        torch.testing.assert_close(r["features"], single.features)
    for stage in ("warmup", "joint"):
        assert [row["epoch"] for row in r0[stage]] == [0, 1] == [row["epoch"] for row in r1[stage]]
        for a, b in zip(r0[stage], r1[stage]):
            assert torch.equal(a["buffers"], b["buffers"]), f"{stage} epoch {a['epoch']}: BN buffers differ"
            assert a["val"] == b["val"] and a["val"][0] is not None, f"{stage} epoch {a['epoch']}: validation differs"
    assert load_generator(tmp_path / "pre" / "models" / "generator.pt")[3]["iterations"] == 2
    _, extra = load_encoder(tmp_path / "joint" / "models" / "encoder.pt")
    assert extra["method"] == "gcl_plus" and extra["iterations"] == 6
    _, warm_extra = load_encoder(tmp_path / "warm" / "models" / "encoder.pt")
    assert warm_extra["selected_on"] == "val_map" and warm_extra["iterations"] == 4
