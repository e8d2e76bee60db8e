"""genreid.engine.setup: the start every training stage shares."""

from __future__ import annotations

import random

import pytest
import torch

from genreid.config.schema import RuntimeConfig
from genreid.engine.setup import check_pk_split, start_run
from genreid.errors import ConfigError


def test_pk_split_names_the_section_and_the_keys():
    check_pk_split("warmup", 32, 4, 2)  # 2 processes x 4 groups of 4
    with pytest.raises(ConfigError, match=r"source\.batch_size 30 must split into 1 process\(es\) x groups of "
                                          r"source\.num_instances 4"):
        check_pk_split("source", 30, 4, 1)
    with pytest.raises(ConfigError, match="warmup.batch_size 32 must split into 3"):
        check_pk_split("warmup", 32, 4, 3)


def test_start_run_seeds_every_rng_and_builds_the_amp_context():
    draws = []
    for _ in range(2):
        info, amp = start_run("cpu", RuntimeConfig(device="cpu", amp="bf16"), 7, stage="warmup",
                              pk_split=("warmup", 16, 4))
        draws.append((random.random(), torch.rand(3).tolist()))
    assert draws[0] == draws[1]
    assert info.world_size == 1 and info.device.type == "cpu"
    assert amp.dtype == torch.bfloat16


def test_start_run_refuses_a_bad_split_before_seeding():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    with pytest.raises(ConfigError, match="warmup.batch_size 18"):
        start_run("cpu", RuntimeConfig(device="cpu"), 7, stage="warmup", pk_split=("warmup", 18, 4))
    assert torch.equal(torch.rand(1), expected)
