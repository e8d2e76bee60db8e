"""Stage-3 test settings shared by the GCL/GCL+ and control-arm tests."""

import pytest

from genreid.config.sections.gan import TrainConfig

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
