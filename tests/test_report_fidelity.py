"""The report's view-fidelity table and figure, from view_fidelity.json files."""

from __future__ import annotations

import json

from genreid.report.fidelity import plot_view_fidelity, read_view_fidelity, render_section

ANGLES = [0, 90, 180]


def _rows(scale: float) -> list[dict]:
    return [{"angle": a, "images": 4, "masked_l1": 10.0 * scale + a / 90, "psnr": 20.0 / scale, "ssim": 0.5 / scale,
             "silhouette_iou": 0.6 / scale, "rank1": 50.0, "mAP": 40.0} for a in ANGLES]


def _file(scale: float) -> dict:
    return {"dataset": "synthetic", "available": True, "images": 4, "angles": ANGLES, "image_size": [64, 32],
            "per_angle": _rows(scale), "mean": {}, "input_copy": {"per_angle": _rows(0.5), "mean": {}},
            "silhouette_rule_ceiling": {"0": 0.87, "90": 0.86, "180": 0.88},
            "reference_encoder": "the stage-1 encoder", "silhouette_rule": "difference from the background"}


def test_table_has_a_row_per_generator_and_angle(tmp_path):
    for run, scale in (("pretrain", 2.0), ("gcl", 1.5)):
        (tmp_path / "synthetic" / run).mkdir(parents=True)
        (tmp_path / "synthetic" / run / "view_fidelity.json").write_text(json.dumps(_file(scale)))
    (tmp_path / "synthetic" / "gcl_plus").mkdir(parents=True)  # a run without the file is left out
    found = read_view_fidelity(tmp_path, "synthetic")
    assert list(found) == ["pretrain", "gcl"]
    lines = render_section("synthetic", found, "plots/view_fidelity.png")
    body = [line for line in lines if line.startswith("| ") and not line.startswith("| generator")]
    assert len(body) == 3 * len(ANGLES)  # input copy, stage 2, GCL
    assert "| stage 2 | 90 | 21.0 | 10.0 | 0.250 | 0.300 | 0.860 | 50.0 | 40.0 |" in lines
    assert body[0].startswith("| input copy (floor) | 0 |")
    assert "![view fidelity, synthetic](plots/view_fidelity.png)" in lines
    png = plot_view_fidelity("synthetic", found, tmp_path / "plots" / "view_fidelity.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_real_data_says_why_there_is_no_table(tmp_path):
    absent = {"pretrain": {"available": False, "reason": "true novel views exist only for SynthReID"}}
    lines = render_section("market1501", absent)
    assert lines[0] == "## View fidelity: market1501" and "only for SynthReID" in lines[2]
    assert not any(line.startswith("| generator") for line in lines)
    assert plot_view_fidelity("market1501", absent, tmp_path / "v.png").is_file()
    assert render_section("market1501", {}) == []
