"""Data throughput: image verification + hashing at prepare (bounds prepare time on MSMT17's
126k images) and ImageDataset item loading (bounds trainer input speed on CPU)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from genreid.data.loader import ImageDataset
from genreid.data.testing import TreeShape, make_market_tree
from genreid.data.verify import check_images


@pytest.fixture(scope="module")
def market_images(tmp_path_factory):
    shape = TreeShape(train_ids=20, test_ids=0, cams_per_id=5, per_cam=4, size=(128, 64))
    tree = make_market_tree(tmp_path_factory.mktemp("bench"), shape, junk=0, distractors=0)
    return sorted(str(p) for p in (tree.root / "bounding_box_train").glob("*.jpg"))


def test_check_images_header(benchmark, market_images):
    result = benchmark(check_images, market_images, "header", False)
    assert len(result.sha1) == len(market_images) and not result.bad


def test_check_images_full(benchmark, market_images):
    result = benchmark(check_images, market_images, "full", False)
    assert not result.bad


def test_image_dataset_items(benchmark, market_images):
    torch.set_num_threads(1)
    ds = ImageDataset(pd.DataFrame({"path": market_images, "pid": 0, "camid": 0}), 64, 32)

    def load_all():
        return [ds[i]["image"] for i in range(len(ds))]

    images = benchmark(load_all)
    assert images[0].shape == (3, 64, 32)
