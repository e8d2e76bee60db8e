"""ReID ranking metrics: CMC, mAP and mINP under a named protocol (docs/data_and_evaluation.md#evaluation-protocol).

Definitions, shared by every protocol:
- For each query, gallery items with the same pid AND the same camid are removed (only when
  ``camera_filter``); nothing else is removed. A query left without a true match is skipped and
  counted in ``num_skipped_queries``; no valid query at all is an error.
- The ranked list is ascending distance with ties broken by ascending gallery index (a stable,
  documented order; public code uses an unstable argsort, so its tie order is arbitrary).
- CMC is first-hit, cumulative, up to ``max_rank`` (reduced to the gallery size), averaged over
  valid queries. mINP (FastReID) = (number of true matches) / (rank of the hardest match).
- ``num_ties``: (query, true match) pairs whose distance equals that of a gallery item of another
  identity, among the query's kept items (these are the pairs whose rank an unstable sort changes).

AP depends on the protocol:
- ``rank`` (torchreid / FastReID): mean over true matches of (hits so far / rank), stable order.
- ``sklearn`` (open-reid, SpCL, Cluster-Contrast): ``sklearn.metrics.average_precision_score``
  on the kept items; tied distances form one threshold, so precision is taken after the whole
  tied group.
- ``interpolated`` (official Market-1501 code): trapezoid between the precision just before and
  at each true match, precision 1 before the first item.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from genreid.errors import GenreidError
from genreid.evaluation.rank_counts import chunk_threads, count_in_chunks

Protocol = Literal["rank", "sklearn", "interpolated"]
PROTOCOLS: tuple[str, ...] = ("rank", "sklearn", "interpolated")


@dataclass(frozen=True)
class RankResult:
    """Metrics of one evaluation; fractions in [0, 1]."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    num_ties: int
    protocol: str
    camera_filter: bool = True
    ap_per_query: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # NaN = skipped
    first_hit_rank: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based), the last value when k exceeds the computed length."""
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self, percent: bool = True) -> dict[str, Any]:
        """The numbers a metrics file records (percent by default, as papers report them)."""
        scale = 100.0 if percent else 1.0
        val = lambda x: round(scale * float(x), 6)
        return {"units": "percent" if percent else "fraction", "mAP": val(self.mAP), "R1": val(self.rank(1)),
                "R5": val(self.rank(5)), "R10": val(self.rank(10)), "mINP": val(self.mINP),
                "protocol": self.protocol, "camera_filter": self.camera_filter, "max_rank": len(self.cmc),
                "counts": {"num_valid_queries": self.num_valid_queries,
                           "num_skipped_queries": self.num_skipped_queries, "num_ties": self.num_ties}}


def cmc_csv(result: RankResult, percent: bool = True) -> str:
    """The CMC curve as CSV text with columns rank, cmc (a DVC plot)."""
    scale = 100.0 if percent else 1.0
    return "rank,cmc\n" + "".join(f"{k},{scale * v:.6f}\n" for k, v in enumerate(result.cmc, start=1))


def _as_tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype == object:
            raise GenreidError(f"{name} must be numeric, got an object array", "pass integer ids")
        if arr.ndim and any(s < 0 for s in arr.strides):
            arr = np.ascontiguousarray(arr)
        with warnings.catch_warnings():  # read-only arrays (memory maps) are never written here
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(arr)
    return t.to(device) if device is not None else t


def _ids(x: Any, name: str, length: int, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x, name, device).reshape(-1).contiguous()
    if t.numel() != length:
        raise GenreidError(f"{name} has {t.numel()} entries but the distance matrix needs {length}",
                           "pass one id per distance-matrix row (query) or column (gallery)")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise GenreidError(f"{name} must hold integer ids", "pass pids/camids as integers")
    return t.long()


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any = None, g_camids: Any = None, *,
                  max_rank: int = 50, protocol: Protocol = "rank", camera_filter: bool = True,
                  chunk_elements: int | None = None) -> RankResult:
    """CMC, mAP and mINP of a Q x G distance matrix (numpy or torch, CPU or CUDA).

    Work is chunked over queries (``chunk_elements`` distances at a time, spread over torch's CPU
    threads), so memory above the matrix stays bounded; no row is fully sorted (see ``rank_counts``).

    Nine parameters, a documented exception to the project's limit of eight: the first six are
    torchreid's and FastReID's ``evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)``,
    which ReID users call positionally as written, and the three keyword-only ones (``protocol``,
    ``camera_filter``, ``chunk_elements``) stand where those take their own flags; grouping any of them
    would break that call.
    """
    if protocol not in PROTOCOLS:
        raise GenreidError(f"unknown evaluation protocol {protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
    if max_rank < 1:
        raise GenreidError(f"max_rank must be >= 1, got {max_rank}")
    dist = _as_tensor(distmat, "distmat")
    if dist.ndim != 2 or dist.shape[0] == 0 or dist.shape[1] == 0:
        raise GenreidError(f"the distance matrix must be 2-D query x gallery and non-empty, got shape "
                           f"{tuple(dist.shape)}")
    if not dist.is_floating_point():
        dist = dist.double()
    with chunk_threads(dist.device) as workers:
        flat = _count(dist, q_pids, g_pids, q_camids, g_camids, camera_filter, chunk_elements, workers)
    return _metrics(flat, dist.shape[0], min(max_rank, dist.shape[1]), protocol, camera_filter)


def _count(dist: torch.Tensor, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, camera_filter: bool,
           chunk_elements: int | None, workers: int) -> dict[str, np.ndarray]:
    """Same-identity items of every query, then their counts (``rank_counts``)."""
    num_q, num_g = dist.shape
    dev = dist.device
    qp, gp = _ids(q_pids, "q_pids", num_q, dev), _ids(g_pids, "g_pids", num_g, dev)
    if camera_filter:
        if q_camids is None or g_camids is None:
            raise GenreidError("camera_filter is on but no camera ids were given",
                               "pass q_camids and g_camids, or camera_filter=False for camera-less data")
        qc, gc = _ids(q_camids, "q_camids", num_q, dev), _ids(g_camids, "g_camids", num_g, dev)

    # Same-identity gallery items of every query, in query order then gallery index order.
    g_order = torch.argsort(gp, stable=True)
    g_sorted = gp[g_order]
    first = torch.searchsorted(g_sorted, qp)
    count = torch.searchsorted(g_sorted, qp, right=True) - first
    rows = torch.repeat_interleave(torch.arange(num_q, device=dev), count)
    offsets = torch.cumsum(count, 0) - count
    cols = g_order[first[rows] + torch.arange(rows.numel(), device=dev) - offsets[rows]]
    junk = (gc[cols] == qc[rows]) if camera_filter else torch.zeros_like(rows, dtype=torch.bool)
    num_pos = torch.bincount(rows[~junk], minlength=num_q)
    keep = num_pos[rows] > 0  # skipped queries need no counting at all
    rows, cols, junk = rows[keep], cols[keep], junk[keep]
    num_valid = int((num_pos > 0).sum())
    if num_valid == 0:
        raise GenreidError(
            f"no query of {num_q} has a true match in the gallery of {num_g} after removing same-pid "
            f"same-camera items", "check the query/gallery pids and camids; for camera-less data pass "
            "camera_filter=False (eval.camera_filter: false)")

    return count_in_chunks(dist, rows, cols, junk, qp, gp, chunk_elements=chunk_elements, workers=workers)


def _metrics(t: dict[str, np.ndarray], num_q: int, max_rank: int, protocol: str,
             camera_filter: bool) -> RankResult:
    """Turn per-item counts (grouped by query, in ranked order) into the protocol's metrics."""
    row, junk, pos = t["row"], t["junk"], ~t["junk"]
    n = row.size
    row_start = np.searchsorted(row, row)  # index of the first item of each item's query
    junk_incl = np.cumsum(junk)
    junk_excl = junk_incl - junk
    pos_incl = np.cumsum(pos)
    pos_excl = pos_incl - pos
    hits = pos_incl - pos_excl[row_start]  # true matches up to and including this one
    rank = 1 + t["less"] - (junk_excl - junk_excl[row_start])  # 1-based rank among kept items
    # last item of each (query, distance) group: everything with distance <= this one
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (row[1:] != row[:-1]) | (t["distance"][1:] != t["distance"][:-1])
    group_last = np.r_[np.flatnonzero(new_group)[1:], n] - 1
    group_last = group_last[np.cumsum(new_group) - 1]

    pr, ph, prank = row[pos], hits[pos].astype(np.float64), rank[pos].astype(np.float64)
    if protocol == "rank":
        ap_terms = ph / prank
    elif protocol == "interpolated":
        before = np.where(prank > 1, (ph - 1) / np.maximum(prank - 1, 1), 1.0)
        ap_terms = (before + ph / prank) / 2
    else:
        hits_le = (pos_incl[group_last] - pos_excl[row_start])[pos]
        kept_le = (t["less_equal"] - (junk_incl[group_last] - junk_excl[row_start]))[pos]
        ap_terms = hits_le / kept_le
    num_pos = np.bincount(pr, minlength=num_q)
    valid = num_pos > 0
    ap = np.full(num_q, np.nan)
    ap[valid] = np.bincount(pr, weights=ap_terms, minlength=num_q)[valid] / num_pos[valid]
    starts = np.flatnonzero(np.r_[True, pr[1:] != pr[:-1]])
    ends = np.r_[starts[1:], pr.size] - 1
    first_hit = np.zeros(num_q, dtype=np.int64)
    first_hit[pr[starts]] = prank[starts]
    inp = num_pos[pr[ends]] / prank[ends]
    num_valid = int(valid.sum())
    hit_hist = np.bincount(np.minimum(first_hit[valid], max_rank + 1) - 1, minlength=max_rank + 1)
    cmc = np.cumsum(hit_hist[:max_rank]) / num_valid
    return RankResult(cmc=cmc.astype(np.float64), mAP=float(ap[valid].mean()), mINP=float(inp.mean()),
                      num_valid_queries=num_valid, num_skipped_queries=num_q - num_valid,
                      num_ties=int((t["ties"] & pos).sum()), protocol=protocol, camera_filter=camera_filter,
                      ap_per_query=ap, first_hit_rank=first_hit)
