"""Difficulty report: histogram features, learning-free metrics, contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genreid.synth import SynthConfig, generate_synthreid
from genreid.synth.difficulty import colour_histograms, write_difficulty_report


def test_colour_histograms_compare_colours_not_positions():
    rng = np.random.default_rng(0)
    red = np.zeros((1, 64, 32, 3), np.uint8)
    red[..., 0] = 200
    stacked = np.concatenate([red, 255 - red], 1)
    shuffled = stacked.reshape(1, -1, 3)[:, rng.permutation(128 * 32)].reshape(1, 128, 32, 3)
    f = colour_histograms(np.concatenate([stacked, shuffled, np.full_like(stacked, 90)]))
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    assert f[0] @ f[1] == pytest.approx(1.0, abs=1e-6)  # same colours, other layout: global is identical
    assert f[0] @ f[2] < 0.1
    s = colour_histograms(np.concatenate([stacked, shuffled]), stripes=6)
    assert s.shape == (2, 6 * 128) and s[0] @ s[1] < 0.9  # stripes see the layout


def test_difficulty_report_and_contact_sheet(tmp_path: Path):
    data = tmp_path / "images"
    generate_synthreid(data, SynthConfig(seed=3, num_train_ids=2, num_test_ids=8, num_cameras=3, cameras_per_id=2,
                                         images_per_camera=2, num_distractors=2, height=64), progress=False)
    out = tmp_path / "report"
    report = write_difficulty_report(data, out, 32, 16, seed=0, provenance={"seed": 0})
    assert report["query_images"] == 16 and report["gallery_images"] == 18
    assert len(report["metrics"]) == 3
    for m in report["metrics"].values():
        assert 0.0 < m["mAP"] <= 100.0 and m["R1"] <= m["R5"] <= m["R10"] <= 100.0
    assert report["headroom_ok"] == (report["histogram_best_mAP"] < 50.0)
    assert json.loads((out / "difficulty.json").read_text())["metrics"] == report["metrics"]
    md = (out / "difficulty.md").read_text()
    assert "| colour histogram (RGB 8x8x8, global) |" in md and "contact_sheet.png" in md
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == (8 * 32 + 44, 8 * (64 + 12))
        # each row holds that person's 4 images (2 cameras x 2), the rest of the row stays white
        px = np.asarray(sheet.convert("RGB"))
        assert px[12:76, 44:44 + 4 * 32].std() > 10 and (px[12:76, 44 + 4 * 32:] == 255).all()
