"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) at test time; off by default (the papers
report without it). Paper values: k1 = 20, k2 = 6, lambda = 0.3.

Same result as the widely used ``re_ranking(q_g_dist, q_q_dist, g_g_dist)`` (the version that
takes distance matrices and squares them, float32; see ``reference.rerank_reference``) but
without its (Q+G)^2 dense matrices and per-row Python loops: neighbours come from ``topk``
over row blocks, the encoding V is a scipy sparse matrix, query expansion is a sparse product
and the Jaccard term is accumulated from V's columns. Memory is O((Q+G) * k) beyond the inputs and
the Q x G output (the inputs include the G x G distances, so MSMT17-size galleries stay out of reach).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from genreid.errors import GenreidError


class _Rows:
    """Rows of the reference's matrix: D = [[qq, qg], [qg^T, gg]] squared, each column divided by its
    maximum, then transposed (row i is column i of D; identical to row i when D is symmetric)."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_q = q_g.shape[0]
        self.n = self.num_q + q_g.shape[1]

        def max_sq(m: np.ndarray, axis: int) -> np.ndarray:
            return np.maximum(np.square(m.max(axis)), np.square(m.min(axis)))

        top = np.maximum(max_sq(q_q, 0), max_sq(q_g, 1))
        bottom = np.maximum(max_sq(q_g, 0), max_sq(g_g, 0))
        self.col_max_sq = np.concatenate([top, bottom]).astype(np.float32)

    def block(self, s0: int, s1: int) -> np.ndarray:
        nq = self.num_q
        parts = []
        if s0 < nq:
            e = min(s1, nq)
            parts.append(np.concatenate([self.q_q[:, s0:e].T, self.q_g[s0:e]], axis=1))
        if s1 > nq:
            b, e = max(s0, nq) - nq, s1 - nq
            parts.append(np.concatenate([self.q_g[:, b:e].T, self.g_g[:, b:e].T], axis=1))
        out = np.square(np.concatenate(parts).astype(np.float32))
        return out / self.col_max_sq[s0:s1, None]

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Single elements (row, col) of the same matrix."""
        nq = self.num_q
        out = np.empty(rows.size, dtype=np.float32)
        rq, cq = rows < nq, cols < nq
        for m, pick in ((rq & cq, lambda r, c: self.q_q[c, r]),
                        (rq & ~cq, lambda r, c: self.q_g[r, c - nq]),
                        (~rq & cq, lambda r, c: self.q_g[c, r - nq]),
                        (~rq & ~cq, lambda r, c: self.g_g[c - nq, r - nq])):
            out[m] = pick(rows[m], cols[m])
        return np.square(out) / self.col_max_sq[rows]


def _neighbours(rows: _Rows, k: int, block: int = 1024) -> np.ndarray:
    """Indices of the k nearest items of every row (itself first), ascending distance."""
    out = np.empty((rows.n, k), dtype=np.int64)
    for s0 in range(0, rows.n, block):
        s1 = min(rows.n, s0 + block)
        d = torch.from_numpy(rows.block(s0, s1))
        vals, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out[s0:s1] = idx.numpy()
    return out


def _reciprocal(ranks: np.ndarray, k: int) -> list[np.ndarray]:
    """k-reciprocal neighbours: j in the first k+1 of i and i in the first k+1 of j (forward order)."""
    fwd = ranks[:, :k + 1]
    back = ranks[fwd, :k + 1]
    mask = (back == np.arange(ranks.shape[0])[:, None, None]).any(-1)
    return [fwd[i][mask[i]] for i in range(ranks.shape[0])]


def k_reciprocal_rerank(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked Q x G distances: (1 - lambda) * Jaccard(k-reciprocal sets) + lambda * original."""
    q_g = np.asarray(q_g_dist, dtype=np.float32)
    q_q = np.asarray(q_q_dist, dtype=np.float32)
    g_g = np.asarray(g_g_dist, dtype=np.float32)
    nq, ng = q_g.shape
    if q_q.shape != (nq, nq) or g_g.shape != (ng, ng):
        raise GenreidError(f"re-ranking needs q_g {nq}x{ng}, q_q {nq}x{nq} and g_g {ng}x{ng} distances, got "
                           f"{q_g.shape}, {q_q.shape}, {g_g.shape}")
    rows = _Rows(q_g, q_q, g_g)
    n = rows.n
    k_half = int(np.around(k1 / 2.0))
    if k1 + 1 > n or k2 > n:
        raise GenreidError(f"re-ranking k1={k1}, k2={k2} needs more than {n} query + gallery items",
                           "lower eval.rerank.k1/k2 or turn eval.rerank.enabled off")
    ranks = _neighbours(rows, max(k1 + 1, k2))
    recip = _reciprocal(ranks, k1)
    recip_half = _reciprocal(ranks, k_half)

    indptr, indices = [0], []
    for i in range(n):
        base = recip[i]
        expansion = [base]
        base_set = set(base.tolist())
        for cand in base:
            cand_set = recip_half[cand]
            if sum(1 for x in cand_set.tolist() if x in base_set) > 2.0 / 3 * len(cand_set):
                expansion.append(cand_set)
        cols = np.unique(np.concatenate(expansion))
        indices.append(cols)
        indptr.append(indptr[-1] + cols.size)
    col_idx = np.concatenate(indices)
    row_idx = np.repeat(np.arange(n), np.diff(indptr))
    weight = np.exp(-rows.entries(row_idx, col_idx))
    weight /= np.bincount(row_idx, weights=weight, minlength=n)[row_idx].astype(np.float32)
    v = sp.csr_matrix((weight.astype(np.float32), col_idx, np.asarray(indptr)), shape=(n, n))
    if k2 != 1:
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2, dtype=np.float32), ranks[:, :k2].ravel(),
                            np.arange(0, n * k2 + 1, k2)), shape=(n, n))
        v = (qe @ v).tocsr()
    v.eliminate_zeros()
    v_csc = v.tocsc()

    final = np.empty((nq, ng), dtype=np.float32)  # only query x gallery is ever stored
    for i in range(nq):
        cols = v.indices[v.indptr[i]:v.indptr[i + 1]]
        vals = v.data[v.indptr[i]:v.indptr[i + 1]]
        starts, ends = v_csc.indptr[cols], v_csc.indptr[cols + 1]
        lengths = ends - starts
        pos = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        other_rows = v_csc.indices[pos]
        mins = np.minimum(np.repeat(vals, lengths), v_csc.data[pos])
        temp_min = np.bincount(other_rows, weights=mins, minlength=n)[nq:].astype(np.float32)
        jaccard = 1 - temp_min / (2.0 - temp_min)
        original = np.square(q_g[i]) / rows.col_max_sq[i]
        final[i] = jaccard * (1 - lambda_value) + original * lambda_value
    return final
