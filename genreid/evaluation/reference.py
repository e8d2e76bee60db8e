"""Straightforward per-query reference loops, written from the protocol definitions.

They mirror well-known public code line by line (torchreid/FastReID ``eval_market1501`` for
``rank`` and mINP, layumi's port of the official Market-1501 ``compute_AP`` for
``interpolated``, open-reid's ``mean_ap`` with scikit-learn for ``sklearn``), with one change:
a stable argsort, so ties are ordered by gallery index as in :func:`evaluate_rank`. They are the
independent check of the fast engine in tests and the "per-query argsort loop" of the benchmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_rank_reference(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                            q_camids: np.ndarray | None = None, g_camids: np.ndarray | None = None, *,
                            max_rank: int = 50, protocol: str = "rank", camera_filter: bool = True,
                            queries: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics as a dict (fractions). ``queries`` restricts the loop to some rows (benchmark timing).

    Nine parameters, a documented exception to the project's limit of eight: it takes
    :func:`genreid.evaluation.rank.evaluate_rank`'s torchreid-style signature (the tests call both with
    one set of arguments) plus ``queries``."""
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    all_cmc, all_ap, all_inp = [], [], []
    num_ties = 0
    for q in range(num_q) if queries is None else queries:
        order = np.argsort(distmat[q], kind="stable")
        if camera_filter:
            remove = (g_pids[order] == q_pids[q]) & (np.asarray(g_camids)[order] == q_camids[q])
            order = order[~remove]
        raw_cmc = (g_pids[order] == q_pids[q]).astype(np.int32)
        if not np.any(raw_cmc):
            continue
        dist_kept = distmat[q][order]
        cmc = raw_cmc.cumsum()
        pos_max_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        cmc = cmc[:max_rank]
        all_cmc.append(np.pad(cmc, (0, max_rank - cmc.size), mode="edge"))
        num_rel = raw_cmc.sum()
        if protocol == "rank":
            tmp_cmc = raw_cmc.cumsum() / (np.arange(raw_cmc.size) + 1.0) * raw_cmc
            all_ap.append(tmp_cmc.sum() / num_rel)
        elif protocol == "interpolated":
            rows_good = np.flatnonzero(raw_cmc)
            ap = 0.0
            for i in range(num_rel):
                precision = (i + 1) / (rows_good[i] + 1)
                old_precision = i / rows_good[i] if rows_good[i] != 0 else 1.0
                ap += (1.0 / num_rel) * (old_precision + precision) / 2
            all_ap.append(ap)
        elif protocol == "sklearn":
            from sklearn.metrics import average_precision_score

            all_ap.append(average_precision_score(raw_cmc, -dist_kept))
        else:
            raise ValueError(f"unknown protocol {protocol!r}")
        negatives = dist_kept[raw_cmc == 0]
        num_ties += int(np.isin(dist_kept[raw_cmc == 1], negatives).sum())
    n = len(all_ap)
    if n == 0:
        raise ValueError("no query has a true match in the gallery")
    return {"cmc": np.mean(np.asarray(all_cmc, dtype=np.float64), axis=0), "mAP": float(np.mean(all_ap)),
            "mINP": float(np.mean(all_inp)), "num_valid_queries": n,
            "num_skipped_queries": (num_q if queries is None else len(queries)) - n, "num_ties": num_ties,
            "ap_per_query": np.asarray(all_ap)}


def rerank_reference(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, k1: int = 20,
                     k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """The widely used distance-matrix version of Zhong et al.'s re-ranking (float32, squares its
    inputs), loop for loop; only the argsort is made stable."""
    original_dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                                    np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    v = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    query_num = q_g_dist.shape[0]
    all_num = gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            half = int(np.around(k1 / 2.0)) + 1
            candidate_forward_k_neigh_index = initial_rank[candidate, :half]
            candidate_backward_k_neigh_index = initial_rank[candidate_forward_k_neigh_index, :half]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2.0 / 3 * len(
                    candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        v[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        v_qe = np.zeros_like(v, dtype=np.float32)
        for i in range(all_num):
            v_qe[i, :] = np.mean(v[initial_rank[i, :k2], :], axis=0)
        v = v_qe
    inv_index = [np.where(v[:, i] != 0)[0] for i in range(gallery_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        ind_non_zero = np.where(v[i, :] != 0)[0]
        ind_images = [inv_index[ind] for ind in ind_non_zero]
        for j in range(len(ind_non_zero)):
            temp_min[0, ind_images[j]] = temp_min[0, ind_images[j]] + np.minimum(v[i, ind_non_zero[j]],
                                                                                v[ind_images[j], ind_non_zero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]
