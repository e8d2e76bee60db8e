"""Market-1501 (v15.09.15): 6 cameras, junk pid -1 dropped, distractor pid 0 kept as negatives."""

from __future__ import annotations

import re

from genreid.data.base import FileNameDataset, SplitCounts
from genreid.data.registry import register_dataset


@register_dataset
class Market1501(FileNameDataset):
    name = "market1501"
    dataset_dir = "Market-1501-v15.09.15"
    archive_name = "Market-1501-v15.09.15.zip"
    split_dirs = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    # PPPP_cCsS_FFFFFF_BB.jpg, junk images have pid -1
    pattern = re.compile(r"(?P<pid>-1|\d+)_c(?P<cam>\d)s\d+_\d+_\d+\.jpg")
    num_cameras = 6
    max_pid = 1501
    junk_pids = frozenset({-1})
    canonical_counts = {
        "train": SplitCounts(ids=751, images=12936, cameras=6),
        "query": SplitCounts(ids=750, images=3368, cameras=6),
        "gallery": SplitCounts(ids=751, images=15913, cameras=6),
    }
