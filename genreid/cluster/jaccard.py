"""k-reciprocal Jaccard distance (Zhong et al. 2017) as used for pseudo-labels by SpCL,
Cluster-Contrast and GCL, computed with sparse neighbour sets.

The numbers are those of the authors' faiss implementation (``compute_jaccard_distance``),
including its details: the kNN search returns ``k1`` neighbours (self included), so the
k1-reciprocal sets use ``k1`` columns and the half sets ``round(k1/2) + 1``; query expansion
averages the rows of the first ``k2`` neighbours; distances below 0 are clipped to 0.
Unlike that code, nothing of size N x N is built except the returned matrix: neighbour sets
and encodings are sparse, and the min-sum is accumulated in row blocks, so Market-size inputs
(12,936 images) need about the output's 0.7 GB plus a few hundred MB.
"""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import scipy.sparse as sp
import torch

from genreid.errors import GenreidError


def _as_tensor(features) -> torch.Tensor:
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    if x.dim() != 2:
        raise ValueError(f"features must be 2-D (N x D), got shape {tuple(x.shape)}")
    return x.detach().float().contiguous()


def knn_search(features: torch.Tensor, k: int, backend: str = "auto") -> np.ndarray:
    """Indices (N x k, int64) of each row's k nearest rows by squared L2, self included.

    ``faiss``: exact ``IndexFlatL2`` as in the authors' code (on the GPU when the features
    live there and faiss has GPU support). ``torch``: blocked matrix products + top-k, for CUDA
    tensors without faiss-gpu. ``auto``: faiss, except CUDA features without faiss-gpu.
    """
    n, d = features.shape
    faiss_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if backend == "auto":
        backend = "torch" if features.is_cuda and not faiss_gpu else "faiss"
    if backend == "torch":
        sq = (features * features).sum(1)
        rank = torch.empty((n, k), dtype=torch.int64)
        step = max(1, (1 << 26) // max(n, 1))
        for s in range(0, n, step):
            dist = sq[s:s + step, None] + sq[None, :] - 2 * features[s:s + step] @ features.T
            rank[s:s + step] = dist.topk(k, dim=1, largest=False, sorted=True).indices.cpu()
        return rank.numpy()
    if backend != "faiss":
        raise ValueError(f"knn backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    host = features.cpu().numpy()
    if features.is_cuda and faiss_gpu:
        cfg = faiss.GpuIndexFlatConfig()
        cfg.device = features.device.index or 0
        index = faiss.GpuIndexFlatL2(faiss.StandardGpuResources(), d, cfg)
    else:
        index = faiss.IndexFlatL2(d)
    index.add(host)
    _, rank = index.search(host, k)
    return rank.astype(np.int64)


def _reciprocal_sets(rank: np.ndarray, k: int) -> sp.csr_matrix:
    """Boolean N x N: (i, j) set when j is among i's first k neighbours and i among j's."""
    n = rank.shape[0]
    cols = rank[:, :k]
    rows = np.repeat(np.arange(n), cols.shape[1])
    fwd = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, n))
    fwd.data[:] = 1.0  # a repeated neighbour (degenerate input) counts once
    return fwd.multiply(fwd.T).tocsr()


def _expanded_sets(full: sp.csr_matrix, half: sp.csr_matrix) -> sp.csr_matrix:
    """R(i) plus every half set R*(c), c in R(i), sharing more than 2/3 of its members with R(i)."""
    half_size = np.asarray(half.sum(axis=1)).ravel()
    overlap = (full @ half.T).multiply(full).tocsr()  # (i, c) -> |R(i) & R*(c)| for c in R(i)
    overlap.sort_indices()
    col = overlap.indices
    keep = overlap.data > (2.0 / 3.0) * half_size[col]
    rows = np.repeat(np.arange(full.shape[0]), np.diff(overlap.indptr))
    accept = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], col[keep])), shape=full.shape)
    expanded = (full + accept @ half).tocsr()
    expanded.data[:] = 1.0
    expanded.sort_indices()
    return expanded


def _encode(features: torch.Tensor, support: sp.csr_matrix) -> sp.csr_matrix:
    """V(i, j) = softmax_j(-(2 - 2 x_i.x_j)) over j in the expanded set of i, zero elsewhere.

    The dot products are a sampled dense-dense product (only the pairs in ``support``).
    """
    n = support.shape[0]
    crow = torch.from_numpy(support.indptr.astype(np.int64))
    cols = torch.from_numpy(support.indices.astype(np.int64))
    x = features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        pattern = torch.sparse_csr_tensor(crow.to(x.device), cols.to(x.device),
                                          torch.zeros(cols.numel(), device=x.device), size=(n, n),
                                          check_invariants=False)
        dots = torch.sparse.sampled_addmm(pattern, x, x.T, beta=0.0).values().cpu()
    rows = torch.from_numpy(np.repeat(np.arange(n), np.diff(support.indptr)))
    neg = -(2 - 2 * dots)
    row_max = torch.full((n,), -float("inf")).scatter_reduce(0, rows, neg, reduce="amax")
    e = torch.exp(neg - row_max[rows])
    total = torch.zeros(n).index_add_(0, rows, e)
    values = (e / total[rows]).numpy().astype(np.float32)
    return sp.csr_matrix((values, support.indices, support.indptr), shape=support.shape)


def _query_expand(v: sp.csr_matrix, rank: np.ndarray, k2: int) -> sp.csr_matrix:
    """Row i becomes the mean of the rows of i's first k2 neighbours."""
    n = v.shape[0]
    cols = rank[:, :k2]
    rows = np.repeat(np.arange(n), cols.shape[1])
    avg = sp.csr_matrix((np.full(rows.size, 1.0 / cols.shape[1]), (rows, cols.ravel())), shape=(n, n))
    out = (avg @ v.astype(np.float64)).astype(np.float32).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return offsets + np.arange(total, dtype=np.int64)


def _jaccard_from_encoding(v: sp.csr_matrix, out: np.ndarray, pair_budget: int = 1 << 22) -> None:
    """out[i, j] = 1 - m / (2 - m), m = sum_k min(V(i,k), V(j,k)), accumulated in place in row blocks.

    For each stored V(i, k), the partners j are the stored entries of column k (inverted index).
    """
    n = v.shape[0]
    by_col = v.tocsc()
    by_col.sort_indices()
    col_count = np.diff(by_col.indptr)
    row_entries = np.diff(v.indptr)
    entry_rows = np.repeat(np.arange(n), row_entries)
    cumulative = np.cumsum(np.bincount(entry_rows, weights=col_count[v.indices], minlength=n))
    start = 0
    while start < n:
        base = cumulative[start - 1] if start else 0
        stop = min(max(int(np.searchsorted(cumulative, base + pair_budget, side="right")), start + 1), n)
        lo, hi = v.indptr[start], v.indptr[stop]
        entry_col = v.indices[lo:hi]
        counts = col_count[entry_col]
        partner = _ranges(by_col.indptr[entry_col], counts)
        mins = np.minimum(np.repeat(v.data[lo:hi], counts), by_col.data[partner])
        flat = np.repeat(entry_rows[lo:hi] - start, counts) * n + by_col.indices[partner]
        block = torch.from_numpy(out[start:stop])  # shares memory with the output
        block.zero_()
        block.view(-1).index_add_(0, torch.from_numpy(flat), torch.from_numpy(mins))
        block.div_(block.neg().add_(2.0)).neg_().add_(1.0).clamp_(min=0.0)
        start = stop


def jaccard_distance(features, k1: int = 30, k2: int = 6, knn: str = "auto") -> np.ndarray:
    """k-reciprocal Jaccard distance between all rows of ``features`` (N x D, numpy or torch,
    CPU or CUDA; pass L2-normalised features as the authors do). Returns N x N float32.

    With N <= k1 the neighbourhood is clamped to N (the authors' code indexes out of range).
    ``knn`` picks the neighbour search (see :func:`knn_search`).
    """
    x = _as_tensor(features)
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:10].tolist()
        raise GenreidError(f"{int((~finite).sum())} of {n} feature rows hold NaN/inf (rows {bad}...), so no "
                           "neighbours can be ranked", "the encoder diverged: rerun from the last good checkpoint "
                           "with a lower learning rate")
    k1 = min(k1, n)
    rank = knn_search(x, k1, knn)
    full = _reciprocal_sets(rank, k1)
    half = _reciprocal_sets(rank, min(int(np.around(k1 / 2)) + 1, k1))
    v = _encode(x, _expanded_sets(full, half))
    if k2 != 1:
        v = _query_expand(v, rank, min(k2, k1))
    out = np.empty((n, n), dtype=np.float32)
    _jaccard_from_encoding(v, out)
    return out
