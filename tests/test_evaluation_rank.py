"""Golden values of evaluate_rank on tiny problems worked out by hand, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genreid.errors import GenreidError
from genreid.evaluation import evaluate_rank, rank_counts
from genreid.evaluation.reference import evaluate_rank_reference

# One query (pid 1, camera 0). Gallery: index -> (pid, camera, distance).
#   g0 (1, 0, 0.1) same pid same camera: removed by the camera filter
#   g1 (2, 1, 0.2) negative, g2 (1, 1, 0.3) match, g3 (3, 0, 0.4) negative, g4 (1, 2, 0.5) match
# Kept list: neg, MATCH, neg, MATCH -> matches at ranks 2 and 4.
BASIC = dict(distmat=np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32), q_pids=[1], g_pids=[1, 2, 1, 3, 1],
             q_camids=[0], g_camids=[0, 1, 1, 0, 2])


def test_basic_rank_protocol_by_hand():
    r = evaluate_rank(**BASIC)
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r.mINP == pytest.approx(2 / 4)
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1])  # max_rank 50 reduced to the 5 gallery items
    assert (r.num_valid_queries, r.num_skipped_queries, r.num_ties, r.protocol) == (1, 0, 0, "rank")
    assert r.first_hit_rank.tolist() == [2]


def test_basic_interpolated_protocol_by_hand():
    # Market-1501 trapezoid: match 1 at rank 2: (0/1 + 1/2)/2; match 2 at rank 4: (1/3 + 2/4)/2.
    r = evaluate_rank(**BASIC, protocol="interpolated")
    assert r.mAP == pytest.approx(((0 + 1 / 2) / 2 + (1 / 3 + 2 / 4) / 2) / 2)
    assert r.mAP == pytest.approx(1 / 3)


def test_without_camera_filter_same_camera_match_counts():
    # g0 is now a match at rank 1: matches at ranks 1, 3, 5.
    r = evaluate_rank(**BASIC, camera_filter=False)
    assert r.mAP == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)
    assert r.mINP == pytest.approx(3 / 5)
    assert r.rank(1) == 1.0


def test_ties_are_ordered_by_gallery_index_and_counted():
    # g0 match and g1 negative tie at 0.2; g2 match at 0.9. Stable order: match (rank 1), neg, match (rank 3).
    dist = np.array([[0.2, 0.2, 0.9]])
    args = dict(q_pids=[1], g_pids=[1, 2, 1], q_camids=[0], g_camids=[1, 1, 2])
    r = evaluate_rank(dist, **args)
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert r.rank(1) == 1.0
    assert r.num_ties == 1
    # sklearn groups the tie: precision 1/2 at recall 1/2, then 2/3 at recall 1.
    s = evaluate_rank(dist, **args, protocol="sklearn")
    assert s.mAP == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    i = evaluate_rank(dist, **args, protocol="interpolated")
    assert i.mAP == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)
    # Swapping the two tied items puts the negative first: rank AP changes, sklearn AP does not.
    swapped = evaluate_rank(dist, q_pids=[1], g_pids=[2, 1, 1], q_camids=[0], g_camids=[1, 1, 2])
    assert swapped.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert swapped.rank(1) == 0.0
    assert evaluate_rank(dist, q_pids=[1], g_pids=[2, 1, 1], q_camids=[0], g_camids=[1, 1, 2],
                         protocol="sklearn").mAP == pytest.approx(s.mAP)


def test_unmatched_queries_are_skipped_and_distractors_stay_negatives():
    # q0 (pid 1, cam 0) has two matches; q1 (pid 7) none; q2 (pid 1, cam 1) loses g1 to the camera filter.
    # Gallery: g0 distractor pid 0 (closest to everything), g1 (1, cam 1), g2 (1, cam 2).
    dist = np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    r = evaluate_rank(dist, [1, 7, 1], [0, 1, 1], [0, 0, 1], [3, 1, 2])
    # q0: distractor, match(rank 2), match(rank 3) -> (1/2 + 2/3)/2; q2: g1 removed -> distractor, match (rank 2)
    assert (r.num_valid_queries, r.num_skipped_queries) == (2, 1)
    assert r.mAP == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)
    assert np.isnan(r.ap_per_query[1]) and r.first_hit_rank.tolist() == [2, 0, 2]
    np.testing.assert_allclose(r.cmc, [0, 1, 1])


def test_camera_less_data_needs_the_filter_off():
    dist = np.array([[0.3, 0.1], [0.2, 0.4]])
    cams = [0, 0]
    with pytest.raises(GenreidError, match="camera_filter=False"):
        evaluate_rank(dist, [1, 2], [1, 2], cams, cams)
    r = evaluate_rank(dist, [1, 2], [1, 2], None, None, camera_filter=False)
    assert r.mAP == pytest.approx(1 / 2)  # each query: the other identity first, its match second
    assert r.rank(1) == 0.0 and r.rank(2) == 1.0
    with pytest.raises(GenreidError, match="no camera ids"):
        evaluate_rank(dist, [1, 2], [1, 2])


def test_inputs_numpy_torch_dtypes_and_layouts_agree():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 20, size=(30, 17)).astype(np.float64) / 20  # many ties
    qp, gp = rng.integers(0, 5, 30), rng.integers(0, 5, 17)
    qc, gc = rng.integers(0, 3, 30), rng.integers(0, 3, 17)
    ref = evaluate_rank(d, qp, gp, qc, gc)
    variants = [d.astype(np.float32), torch.from_numpy(d), torch.from_numpy(d).half(),
                np.asfortranarray(d), d.T.copy().T, torch.from_numpy(d.T.copy()).T, d.tolist()]
    for v in variants:
        r = evaluate_rank(v, torch.from_numpy(qp), list(gp), qc.astype(np.int32), torch.from_numpy(gc))
        assert r.mAP == pytest.approx(ref.mAP, abs=1e-12)
        assert r.num_ties == ref.num_ties
        np.testing.assert_allclose(r.cmc, ref.cmc)


@pytest.mark.parametrize("numpy_on_cpu", [True, False])  # False: the torch code that runs on CUDA
def test_chunking_and_many_equal_distances_match_the_reference(monkeypatch, numpy_on_cpu):
    monkeypatch.setattr(rank_counts, "MAX_PAIRS", 50)  # exact comparisons split into many small pieces
    monkeypatch.setattr(rank_counts, "NUMPY_ON_CPU", numpy_on_cpu)
    rng = np.random.default_rng(1)
    d = np.full((12, 40), 0.5)
    d[::3] = rng.integers(0, 3, size=(4, 40)) / 3
    qp, gp = rng.integers(0, 4, 12), rng.integers(0, 4, 40)
    qc, gc = rng.integers(0, 2, 12), rng.integers(0, 2, 40)
    for protocol in ("rank", "sklearn", "interpolated"):
        ref = evaluate_rank_reference(d, qp, gp, qc, gc, protocol=protocol)
        for chunk in (1, 41, 10_000):
            r = evaluate_rank(d, qp, gp, qc, gc, protocol=protocol, chunk_elements=chunk)
            assert r.mAP == pytest.approx(ref["mAP"], abs=1e-12)
            assert r.mINP == pytest.approx(ref["mINP"], abs=1e-12)
            assert r.num_ties == ref["num_ties"] > 0


def test_bad_inputs_name_the_problem():
    d = np.array([[0.1, 0.2]])
    with pytest.raises(GenreidError, match="g_pids has 3 entries"):
        evaluate_rank(d, [1], [1, 2, 3], [0], [1, 1])
    with pytest.raises(GenreidError, match="unknown evaluation protocol"):
        evaluate_rank(d, [1], [1, 2], [0], [1, 1], protocol="map")
    with pytest.raises(GenreidError, match="query row 1"):
        evaluate_rank(np.array([[0.1, 0.2], [np.nan, 0.3]]), [1, 2], [1, 2], [0, 0], [1, 1])
    with pytest.raises(GenreidError, match="query row 0"):
        evaluate_rank(np.array([[np.inf, 0.2]]), [1], [1, 2], [0], [1, 1])
    with pytest.raises(GenreidError, match="2-D"):
        evaluate_rank(np.zeros(3), [1], [1, 2, 3], [0], [1, 1, 1])
    with pytest.raises(GenreidError, match="integer ids"):
        evaluate_rank(d, [1.5], [1, 2], [0], [1, 1])


def test_summary_is_percent_and_cmc_csv_lists_every_rank():
    from genreid.evaluation.rank import cmc_csv

    r = evaluate_rank(**BASIC)
    s = r.summary()
    assert (s["units"], s["mAP"], s["R1"], s["R5"], s["mINP"]) == ("percent", 50.0, 0.0, 100.0, 50.0)
    assert s["counts"] == {"num_valid_queries": 1, "num_skipped_queries": 0, "num_ties": 0}
    assert cmc_csv(r).splitlines() == ["rank,cmc", "1,0.000000", "2,100.000000", "3,100.000000", "4,100.000000",
                                       "5,100.000000"]
