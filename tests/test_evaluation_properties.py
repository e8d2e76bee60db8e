"""evaluate_rank against the per-query reference loops and scikit-learn on random problems."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from genreid.errors import GenreidError
from genreid.evaluation import evaluate_rank, rank_counts
from genreid.evaluation.reference import evaluate_rank_reference


@st.composite
def problems(draw):
    num_q = draw(st.integers(1, 8))
    num_g = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([2, 5, 50, 0]))  # few levels: many ties; 0: continuous
    if levels:
        dist = rng.integers(0, levels, size=(num_q, num_g)).astype(np.float32) / levels
    else:
        dist = rng.random((num_q, num_g)).astype(np.float32)
    num_ids, num_cams = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    return dict(distmat=dist, q_pids=rng.integers(0, num_ids, num_q), g_pids=rng.integers(0, num_ids, num_g),
                q_camids=rng.integers(0, num_cams, num_q), g_camids=rng.integers(0, num_cams, num_g),
                camera_filter=draw(st.booleans()), max_rank=draw(st.integers(1, 12)))


@settings(max_examples=150, deadline=None)
@given(problem=problems(), protocol=st.sampled_from(["rank", "sklearn", "interpolated"]),
       chunk=st.sampled_from([None, 1, 17]))
def test_matches_the_reference_loop(problem, protocol, chunk):
    try:
        ref = evaluate_rank_reference(**problem, protocol=protocol)
    except ValueError:  # no valid query: the engine must refuse too
        with pytest.raises(GenreidError, match="no query"):
            evaluate_rank(**problem, protocol=protocol, chunk_elements=chunk)
        return
    r = evaluate_rank(**problem, protocol=protocol, chunk_elements=chunk)
    assert r.mAP == pytest.approx(ref["mAP"], abs=1e-9)
    assert r.mINP == pytest.approx(ref["mINP"], abs=1e-9)
    np.testing.assert_allclose(r.cmc, ref["cmc"], atol=1e-12)
    assert (r.num_valid_queries, r.num_skipped_queries, r.num_ties) == (
        ref["num_valid_queries"], ref["num_skipped_queries"], ref["num_ties"])
    np.testing.assert_allclose(r.ap_per_query[~np.isnan(r.ap_per_query)], ref["ap_per_query"], atol=1e-9)
    assert 0 < r.mINP <= 1 and 0 < r.mAP <= 1 and np.all(np.diff(r.cmc) >= 0)


@settings(max_examples=60, deadline=None)
@given(problem=problems())
def test_sklearn_protocol_is_average_precision_score(problem):
    d, qp, gp = problem["distmat"], problem["q_pids"], problem["g_pids"]
    qc, gc = problem["q_camids"], problem["g_camids"]
    expected = []
    for q in range(d.shape[0]):
        keep = ~((gp == qp[q]) & (gc == qc[q])) if problem["camera_filter"] else np.ones(d.shape[1], bool)
        y = gp[keep] == qp[q]
        if y.any():
            expected.append(average_precision_score(y, -d[q, keep]))
    if not expected:
        return
    r = evaluate_rank(**problem, protocol="sklearn")
    assert r.mAP == pytest.approx(np.mean(expected), abs=1e-9)


def test_protocols_agree_without_ties_and_differ_with_them():
    rng = np.random.default_rng(3)
    d = rng.random((40, 300))
    qp, gp = rng.integers(0, 10, 40), rng.integers(0, 10, 300)
    qc, gc = rng.integers(0, 4, 40), rng.integers(0, 4, 300)
    rank, skl = (evaluate_rank(d, qp, gp, qc, gc, protocol=p).mAP for p in ("rank", "sklearn"))
    assert rank == pytest.approx(skl, abs=1e-12)
    coarse = np.round(d * 4) / 4
    rank, skl = (evaluate_rank(coarse, qp, gp, qc, gc, protocol=p).mAP for p in ("rank", "sklearn"))
    assert abs(rank - skl) > 1e-4
    interp = evaluate_rank(d, qp, gp, qc, gc, protocol="interpolated").mAP
    assert interp != pytest.approx(evaluate_rank(d, qp, gp, qc, gc).mAP, abs=1e-6)


def test_larger_problem_with_ties_and_threads_matches_the_reference(monkeypatch):
    rng = np.random.default_rng(4)
    q, g = 150, 2500
    d = (np.round(rng.random((q, g)) * 2000) / 2000).astype(np.float32)  # about one tie per row and item
    qp, gp = rng.integers(0, 120, q), rng.integers(0, 120, g)
    qc, gc = rng.integers(0, 6, q), rng.integers(0, 6, g)
    gp[:30] = 10_000  # distractor-like identity nobody queries
    for protocol in ("rank", "sklearn", "interpolated"):
        ref = evaluate_rank_reference(d, qp, gp, qc, gc, protocol=protocol)
        r = evaluate_rank(d, qp, gp, qc, gc, protocol=protocol, chunk_elements=20_000)
        assert r.mAP == pytest.approx(ref["mAP"], abs=1e-9)
        assert r.mINP == pytest.approx(ref["mINP"], abs=1e-9)
        np.testing.assert_allclose(r.cmc, ref["cmc"], atol=1e-12)
        assert r.num_ties == ref["num_ties"] > 0
    torch.set_num_threads(1)  # one chunk worker instead of two: identical numbers, not just close ones
    single = evaluate_rank(d, qp, gp, qc, gc, protocol="interpolated", chunk_elements=20_000)
    np.testing.assert_array_equal(single.ap_per_query, r.ap_per_query)
    assert torch.get_num_threads() == 1  # restored after the evaluation
    monkeypatch.setattr(rank_counts, "NUMPY_ON_CPU", False)  # the torch code that runs on CUDA
    np.testing.assert_array_equal(evaluate_rank(d, qp, gp, qc, gc, protocol="interpolated").ap_per_query,
                                  r.ap_per_query)
