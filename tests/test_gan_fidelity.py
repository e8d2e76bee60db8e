"""View-fidelity metrics: values checked against hand computations on constructed images."""

import numpy as np
import pytest

from genreid.gan.fidelity import (
    SILHOUETTE_THRESHOLD,
    identity_preservation,
    image_quality,
    person_silhouette,
    silhouette_iou,
    summarise_angle,
)


def _images(n=3, h=32, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_identical_views_are_perfect():
    x = _images()
    mask = np.ones(x.shape[:3], bool)
    q = image_quality(x, x.copy(), mask)
    np.testing.assert_array_equal(q.masked_l1, 0.0)
    assert np.all(np.isinf(q.psnr))
    np.testing.assert_allclose(q.ssim, 1.0)


def test_psnr_and_masked_l1_match_hand_computation():
    true = np.full((2, 32, 16, 3), 100, np.uint8)
    gen = true.copy()
    gen[0, :8] = 110  # a 10-level error on a quarter of image 0, inside its mask
    gen[1, :, :4] = 140  # a 40-level error on a quarter of image 1, outside its mask
    mask = np.zeros((2, 32, 16), bool)
    mask[0, :16] = True
    mask[1, :, 8:] = True
    q = image_quality(gen, true, mask)
    assert q.masked_l1[0] == pytest.approx(10 * 8 / 16)  # half the masked rows differ by 10
    assert q.masked_l1[1] == 0.0  # the error lies outside the person
    mse = np.array([100 / 4, 1600 / 4])
    np.testing.assert_allclose(q.psnr, 10 * np.log10(255 ** 2 / mse))
    assert np.all(q.ssim < 1.0)


def test_empty_mask_gives_nan_l1_and_summary_ignores_it():
    x = _images(2)
    mask = np.zeros(x.shape[:3], bool)
    mask[1, 4:8, 4:8] = True
    y = x.copy()
    y[1] = 255 - y[1]
    q = image_quality(y, x, mask)
    assert np.isnan(q.masked_l1[0]) and q.masked_l1[1] > 0
    s = summarise_angle(30, q, np.array([1.0, 0.5]), 50.0, 40.0)
    assert s.masked_l1 == pytest.approx(q.masked_l1[1])
    assert s.psnr == pytest.approx(q.psnr[1])  # image 0 is identical (inf) and left out of the mean
    assert s.silhouette_iou == 0.75 and s.images == 2 and s.as_dict()["angle"] == 30


def test_shape_and_dtype_are_checked():
    x = _images()
    with pytest.raises(ValueError, match="uint8"):
        image_quality(x.astype(np.float32), x.astype(np.float32), np.ones(x.shape[:3], bool))
    with pytest.raises(ValueError, match="shape|both"):
        image_quality(x[:2], x, np.ones(x.shape[:3], bool))


def test_silhouette_rule_recovers_a_person_drawn_on_the_background():
    bg = np.full((1, 32, 16, 3), 90, np.uint8)
    img = bg.copy()
    person = np.zeros((1, 32, 16), bool)
    person[0, 5:30, 4:12] = True
    img[person] = (200, 60, 60)  # mean abs difference (110+30+30)/3/255 = 0.22 > threshold
    img[0, 0, 0] = 90 + int(255 * SILHOUETTE_THRESHOLD * 0.5)  # a faint change stays background
    found = person_silhouette(img, bg)
    np.testing.assert_array_equal(found, person)
    assert silhouette_iou(found, person)[0] == 1.0


def test_silhouette_iou_values():
    a = np.zeros((3, 4, 4), bool)
    b = np.zeros((3, 4, 4), bool)
    a[0, :2] = True
    b[0, 1:3] = True  # overlap one row of 4, union 3 rows
    a[1, :] = True  # b[1] empty: IoU 0
    np.testing.assert_allclose(silhouette_iou(a, b), [1 / 3, 0.0, 1.0])


def test_identity_preservation_perfect_and_confused():
    rng = np.random.default_rng(1)
    pids = np.array([0, 0, 1, 1, 2, 2])
    centres = rng.normal(size=(3, 8)) * 10
    true = centres[pids] + rng.normal(size=(6, 8)) * 0.1
    r1, m = identity_preservation(true + 0.01, true, pids)
    assert r1 == 100.0 and m == pytest.approx(100.0)
    swapped = true[[2, 3, 4, 5, 0, 1]]  # every generated view looks like the next identity
    r1, m = identity_preservation(swapped, true, pids)
    assert r1 == 0.0 and m < 50.0
