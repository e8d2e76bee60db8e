"""Stage-3 test settings shared by the GCL/GCL+ and control-arm tests."""

import pytest
import torch

from genreid.config.sections.gan import TrainConfig
from genreid.engine.amp import AmpContext
from genreid.engine.dist import DistInfo
from genreid.joint.contrastive import ContrastiveMethod, StepInputs
from genreid.joint.iteration import Optimisers
from genreid.registry import method_spec

CLUSTER = {"k1": 6, "k2": 2, "min_samples": 2}


@pytest.fixture
def joint_cfg():
    """A factory of small ``train`` sections for the toy data: 2 epochs of 3 batches of 4, clustering
    loose enough for the toy's few images; keyword arguments override."""

    def make(**kw) -> TrainConfig:
        base = dict(epochs=2, batch_size=4, iters_per_epoch=3, step_epoch=1, num_negatives=8,
                    checkpoint_every_iters=2, extract_batch_size=16,
                    gcl={"cluster": {**CLUSTER, "eps_rule": "rho", "rho": 0.3}},
                    gcl_plus={"cluster": {**CLUSTER, "eps_rule": "fixed", "eps": 0.7}})
        base.update(kw)
        return TrainConfig(**base)

    return make


def _labelled_method(name: str, cfg: TrainConfig, nets, opts: Optimisers) -> ContrastiveMethod:
    torch.manual_seed(0)
    method = method_spec(name).cls(cfg, StepInputs(nets=nets, opts=opts, dataset=range(12), info=DistInfo(),
                                                   amp=AmpContext("cpu"), seed=1))
    method.memory.initialise(torch.randn(12, nets.id_encoder.embedding_dim))
    method.memory.set_labels(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1]))
    method.prepare()
    return method


@pytest.fixture
def labelled_method():
    """A factory of the registered method ``name`` over a 12-slot memory of random features in three
    clusters and three outliers, its epoch state prepared: ready for one iteration."""
    return _labelled_method
