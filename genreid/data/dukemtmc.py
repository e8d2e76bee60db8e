"""DukeMTMC-reID: 8 cameras. Withdrawn by its owners, so it is only ever imported from a user's copy."""

from __future__ import annotations

import re

from genreid.data.base import FileNameDataset, SplitCounts
from genreid.data.registry import register_dataset


@register_dataset
class DukeMTMCreID(FileNameDataset):
    name = "dukemtmc"
    dataset_dir = "DukeMTMC-reID"
    archive_name = "DukeMTMC-reID.zip"
    no_download_reason = ("DukeMTMC-reID was withdrawn by its owners (Duke University, 2019) and has no "
                          "public download")
    split_dirs = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    # PPPP_cC_fFFFFFFF.jpg
    pattern = re.compile(r"(?P<pid>\d+)_c(?P<cam>\d)_f\d+\.jpg")
    num_cameras = 8
    canonical_counts = {
        "train": SplitCounts(ids=702, images=16522, cameras=8),
        "query": SplitCounts(ids=702, images=2228, cameras=8),
        "gallery": SplitCounts(ids=1110, images=17661, cameras=8),
    }
