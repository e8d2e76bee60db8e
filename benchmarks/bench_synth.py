"""SynthReID generation throughput on CPU (images per second), at the stored default size.

Run with ``make bench``; the default dataset (1556 images at 128x64) must generate in under
2 minutes on 2 cores, i.e. about 13 images/s or more.
"""

from __future__ import annotations

import shutil

from genreid.body import load_body_model
from genreid.synth import SynthConfig, generate_synthreid


def test_generation_throughput(benchmark, tmp_path):
    load_body_model("procedural")  # the model is cached per process; time the images only
    settings = SynthConfig(seed=0, num_train_ids=8, num_test_ids=8, num_cameras=6, cameras_per_id=4,
                           images_per_camera=3, num_distractors=0, height=128)
    images = 16 * 4 * 3

    def run() -> None:
        out = tmp_path / "images"
        shutil.rmtree(out, ignore_errors=True)
        generate_synthreid(out, settings, batch_size=32, progress=False)

    benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info["images"] = images
    benchmark.extra_info["images_per_s"] = images / benchmark.stats.stats.mean
    assert benchmark.extra_info["images_per_s"] > 5
