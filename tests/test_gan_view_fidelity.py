"""View fidelity of a generator end to end on the paired toy: alignment of rows, sizes and networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genreid.data.true_views import TrueViews, resize_masks
from genreid.engine.batches import image_dataset
from genreid.engine.checkpoint import Checkpointer
from genreid.errors import CheckpointError
from genreid.gan.renders import open_renders
from genreid.gan.view_fidelity import (
    stage2_generator,
    stage3_generator,
    to_normalised,
    to_uint8,
    view_fidelity,
)
from genreid.models.id_encoder import load_encoder

ANGLES = [0, 90, 180]


def _photos(df: pd.DataFrame, h: int, w: int) -> tuple[torch.Tensor, np.ndarray]:
    data = image_dataset(df, h, w)
    x = torch.stack([data[i]["image"] for i in range(len(data))])
    return x, to_uint8(x)


def test_uint8_round_trip_and_mask_resize():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(to_normalised(images)), images)
    masks = np.zeros((1, 8, 4), bool)
    masks[0, :4, :2] = True  # one 2x2 output pixel fully covered, the rest empty
    masks[0, 4, 2] = True  # a quarter of a pixel: below the 0.5 area rule
    np.testing.assert_array_equal(resize_masks(masks, 4, 2)[0], [[1, 0], [1, 0], [0, 0], [0, 0]])


def test_a_generator_that_copies_its_input_is_perfect_where_the_truth_is_the_input(gan_toy):
    """True views = the photos at every angle: the input-copy floor must score perfectly, which only
    holds if rows, sizes and colour conversions line up; the random generator must score worse."""
    df, h, w = gan_toy["df"], gan_toy["height"], gan_toy["width"]
    x, photos = _photos(df, h, w)
    n = len(df)
    masks = np.zeros((n, len(ANGLES), h, w), bool)
    masks[:, :, 4:28, 4:12] = True
    truth = TrueViews(paths=list(df["path"]), angles=ANGLES, images=np.repeat(photos[:, None], len(ANGLES), 1),
                      masks=masks, backgrounds=np.zeros_like(photos), jpeg_quality=np.full(n, 90))
    store = open_renders(str(gan_toy["render_dir"]), "train", df, ANGLES)
    gen = stage2_generator(gan_toy["generator"], gan_toy["encoder"])
    reference, _ = load_encoder(gan_toy["encoder"])
    out = view_fidelity(gen, reference, x, store, truth, df["pid"].tolist(), ANGLES)
    floor = out["input_copy"]["mean"]
    assert floor["masked_l1"] == 0.0 and floor["ssim"] == pytest.approx(1.0) and floor["rank1"] == 100.0
    assert [r["angle"] for r in out["per_angle"]] == ANGLES and out["images"] == n
    assert all(r["psnr"] < 40 and r["ssim"] < 0.9 and r["masked_l1"] > 1 for r in out["per_angle"])
    assert set(out["silhouette_rule_ceiling"]) == {"0", "90", "180"}
    assert "baseline" in out["reference_encoder"] and out["networks"]["generator_sha1"]


def test_stage3_generator_takes_the_last_checkpoint_weights(gan_toy, tmp_path):
    from genreid.models.generator import load_generator

    e_str, dec, _, _ = load_generator(gan_toy["generator"])
    e_id, _ = load_encoder(gan_toy["encoder"])
    with torch.no_grad():
        for p in [*e_str.parameters(), *dec.parameters(), *e_id.parameters()]:
            p.add_(0.5)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(7, 2, 0, {"id_encoder": e_id.state_dict(), "str_encoder": e_str.state_dict(),
                        "decoder": dec.state_dict()})
    gen = stage3_generator(tmp_path / "ckpt", gan_toy["encoder"], gan_toy["generator"])
    for mine, stored in ((gen.decoder, dec), (gen.str_encoder, e_str), (gen.id_encoder, e_id)):
        for a, b in zip(mine.state_dict().values(), stored.state_dict().values()):
            torch.testing.assert_close(a, b)
    assert gen.source["step"] == 7 and gen.source["epochs_done"] == 2
    Checkpointer(tmp_path / "enc_only").save(3, 1, 0, {"id_encoder": e_id.state_dict()})
    with pytest.raises(CheckpointError, match="str_encoder"):
        stage3_generator(tmp_path / "enc_only", gan_toy["encoder"], gan_toy["generator"])
