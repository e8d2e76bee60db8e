"""ImageDataset (resize + normalisation), PK and shuffle samplers, repeatable worker seeding."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from genreid.data.loader import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, denormalize
from genreid.data.samplers import RandomIdentitySampler
from genreid.engine.batches import batch_loader
from genreid.errors import ConfigError


def test_image_dataset_resizes_bicubic_and_normalises(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 2, 3), 255, np.uint8)).save(tmp_path / "b.png")
    df = pd.DataFrame({"path": [str(tmp_path / "a.png"), str(tmp_path / "b.png")], "pid": [3, 4], "camid": [1, 0]})
    ds = ImageDataset(df, height=8, width=4)
    item = ds[0]
    assert item["image"].shape == (3, 8, 4) and item["image"].dtype == torch.float32
    assert (item["pid"], item["camid"], item["index"]) == (3, 1, 0)
    ref = np.asarray(Image.fromarray(pixels).resize((4, 8), Image.BICUBIC), dtype=np.float32) / 255.0
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = torch.from_numpy(((ref - mean) / std).transpose(2, 0, 1)).float()
    assert torch.allclose(item["image"], expected, atol=1e-5)
    white = ds[1]["image"]  # upsampled from 4x2: still pure white -> (1 - mean) / std per channel
    assert torch.allclose(white[:, 0, 0], torch.tensor((1 - mean) / std, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(denormalize(white), torch.ones_like(white), atol=1e-5)
    cached = ImageDataset(df, height=8, width=4, cache=True)
    first = cached[0]["image"]
    (tmp_path / "a.png").unlink()  # served from memory from now on
    assert torch.equal(cached[0]["image"], first) and torch.equal(first, item["image"])


def _pk_data():
    pids, cams = [], []
    for pid in range(10):
        n_cams = 1 + pid % 4
        for j in range(2 + pid % 5):
            pids.append(pid)
            cams.append(j % n_cams)
    pids += [-1] * 7
    cams += [0] * 7
    return pids, cams


def test_pk_sampler_batches_outliers_and_camera_diversity():
    pids, cams = _pk_data()
    sampler = RandomIdentitySampler(pids, cams, batch_size=8, num_instances=4, seed=1)
    indices = list(sampler)
    assert len(indices) == len(RandomIdentitySampler(pids, cams, batch_size=8, num_instances=4, seed=1))
    assert indices and len(indices) % 8 == 0
    assert all(pids[i] >= 0 for i in indices)  # outliers never sampled
    for b in range(0, len(indices), 8):
        batch = indices[b:b + 8]
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 2 and set(counts.values()) == {4}  # P=2 ids x K=4
        for g in range(0, 8, 4):
            group = batch[g:g + 4]
            pid = pids[group[0]]
            own_cams = {cams[i] for i, p in enumerate(pids) if p == pid}
            assert len({cams[i] for i in group}) == min(4, len(own_cams))  # as many cameras as it has


def test_pk_sampler_is_seeded_and_advances_per_epoch():
    pids, cams = _pk_data()
    a = RandomIdentitySampler(pids, cams, 8, 4, seed=1)
    b = RandomIdentitySampler(pids, cams, 8, 4, seed=1)
    first_a, second_a = list(a), list(a)
    assert first_a == list(b) and second_a == list(b)
    assert first_a != second_a
    c = RandomIdentitySampler(pids, cams, 8, 4, seed=1)
    c.set_epoch(1)  # resume at epoch 1
    assert list(c) == second_a
    assert len(RandomIdentitySampler(pids, cams, 8, 4, seed=1)) == len(first_a)


def test_pk_sampler_rejects_bad_sizes_and_all_outliers():
    with pytest.raises(ConfigError, match="multiple of num_instances"):
        RandomIdentitySampler([0, 1], [0, 1], batch_size=6, num_instances=4, seed=0)
    with pytest.raises(ConfigError, match="every pid is -1"):
        RandomIdentitySampler([-1, -1], [0, 1], batch_size=4, num_instances=2, seed=0)


def test_pk_sampler_keeps_full_batches_with_fewer_identities_than_p():
    """One giant cluster plus two small ones for P=4: batches repeat identities but keep their size
    (a shorter batch is dropped by the loader and an epoch would yield nothing, hanging the warm-up)."""
    pids = [0] * 40 + [1] * 4 + [2] * 5
    sampler = RandomIdentitySampler(pids, [i % 3 for i in range(len(pids))], batch_size=16, num_instances=4, seed=0)
    indices = list(sampler)
    assert len(indices) >= 16 and len(indices) % 16 == 0
    for b in range(0, len(indices), 4):
        assert len({pids[i] for i in indices[b:b + 4]}) == 1  # groups of K from one identity


class _Noise(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.tensor([np.random.rand(), random.random()])


def test_worker_seeding_repeats_runs():
    def run(seed):
        loader = batch_loader(_Noise(), [[0, 1, 2, 3], [4, 5, 6, 7]], seed=seed, num_workers=2)
        return torch.cat([b for b in loader])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a[:, 0].tolist())) == 8  # workers do not share numpy streams
