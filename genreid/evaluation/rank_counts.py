"""Where each query's same-identity gallery items land in its ranked list, without sorting the list.

A ReID metric only needs the rank of every true match (and of the same-camera items that are
removed). With ``n`` such items per query, sorting all ``G`` distances (O(G log G)) or a binary
search per gallery item (O(G log n)) does far more than needed. Here each row is bucketed into
about G/4 equal-width cells of its own [min, max] range with a few elementwise passes, one
histogram gives "items in lower cells" for every threshold at once, and only the few items that
share a cell with a threshold are compared exactly. The cell map ``floor((d - lo) * scale)`` is
monotone (IEEE subtraction and multiplication are), so a lower cell always means a smaller
distance; thresholds read their cell from the same array as the items, so the two agree bit for
bit. Order is ascending distance, ties broken by ascending gallery index (stable, documented).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from genreid.errors import GenreidError

MAX_PAIRS = 1 << 22  # exact comparisons done at once; bounds memory when many distances coincide
CHUNK_ELEMENTS_CPU = 1 << 20  # distances per chunk: the working set of one thread stays near its cache
CHUNK_ELEMENTS_CUDA = 1 << 26
TRIM_EVERY = 16  # chunks between heap trims (see _trim_heap)
NUMPY_ON_CPU = True  # numpy for the elementwise passes on CPU; False runs the torch code CUDA uses


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _load_malloc_trim()


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS. Each chunk frees megabytes of temporaries while a few
    small result arrays stay alive between them; glibc then keeps the holes, and resident memory
    creeps up by ~0.3 MB per chunk (+400 MB on MSMT17). Trimming now and then keeps it flat."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass
class PrecedingCounts:
    """Per threshold (same-identity item of a query), counts over the query's whole row."""

    less: torch.Tensor  # items strictly before it in the stable order (distance, gallery index)
    less_equal: torch.Tensor  # items with distance <= its distance (itself included)
    ties_other_identity: torch.Tensor  # True when an item of another identity has the same distance
    distance: torch.Tensor  # its distance, in the row's dtype


class Workspace:
    """Buffers reused across chunks: a fresh multi-megabyte tensor per step costs more in page
    faults than the arithmetic done on it."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype or buf.device != device:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[name] = buf
        return buf[:numel]


def _cells(work: torch.Tensor, ws: Workspace, row_offset: int) -> tuple[torch.Tensor, int]:
    """Flat cell id of every distance: row * width + floor((d - row_min) * row_scale)."""
    num_rows, num_cols = work.shape
    num_cells = max(16, num_cols // 4)
    width = num_cells + 1  # (d - lo) * scale can round up to exactly num_cells at the row maximum
    cpu = work.device.type == "cpu" and NUMPY_ON_CPU
    if cpu:  # numpy's elementwise kernels are faster than torch's here; same IEEE results
        w = work.numpy()
        lo, hi = torch.from_numpy(w.min(1)), torch.from_numpy(w.max(1))
    else:
        lo, hi = torch.amin(work, dim=1), torch.amax(work, dim=1)
    span = (hi - lo).double()
    bad = ~torch.isfinite(span)  # NaN/inf anywhere in a row makes its min, max or span non-finite
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0]) + row_offset
        raise GenreidError(f"the distance matrix has NaN, infinite or overflowing values in query row {row}",
                           "check the features for NaN/inf (a diverged model) before evaluating")
    scale = torch.where(span > 0, num_cells / span.clamp_min(1e-300), torch.zeros_like(span)).to(work.dtype)
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    scaled = ws.get("scaled", work.numel(), work.dtype, work.device).view(num_rows, num_cols)
    cell = ws.get("cell", work.numel(), torch.int32, work.device).view(num_rows, num_cols)
    offsets = torch.arange(num_rows, device=work.device, dtype=torch.int32) * width
    if cpu:
        s, c = scaled.numpy(), cell.numpy()
        np.subtract(w, lo.numpy()[:, None], out=s)
        np.multiply(s, scale.numpy()[:, None], out=s)
        np.copyto(c, s, casting="unsafe")  # truncation = floor, values are >= 0
        np.add(c, offsets.numpy()[:, None], out=c)
    else:
        torch.sub(work, lo[:, None], out=scaled)
        scaled.mul_(scale[:, None])
        cell.copy_(scaled)
        cell.add_(offsets[:, None])
    return cell, width


def _below(upto: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Items in cells strictly below ``cells`` from an inclusive running count (0 below cell 0)."""
    prev = upto.index_select(0, (cells - 1).clamp_min(0))
    return torch.where(cells > 0, prev, torch.zeros_like(prev))


def _nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of True entries (numpy's is several times faster than torch's on CPU)."""
    if mask.device.type == "cpu" and NUMPY_ON_CPU:
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.nonzero().view(-1)


def preceding_counts(dist: torch.Tensor, thr_row: torch.Tensor, thr_col: torch.Tensor,
                     q_pids: torch.Tensor, g_pids: torch.Tensor, row_offset: int = 0,
                     workspace: Workspace | None = None) -> PrecedingCounts:
    """Counts for thresholds ``(thr_row, thr_col)`` of the chunk ``dist`` (B x G).

    ``thr_row`` must be ascending and, within a row, thresholds ordered by (distance, column).
    ``q_pids`` holds the chunk's query identities, ``g_pids`` the gallery's.
    """
    ws = workspace or Workspace()
    work = dist if dist.dtype in (torch.float32, torch.float64) else dist.float()
    num_rows, num_cols = work.shape
    dev = work.device
    cell, width = _cells(work, ws, row_offset)
    flat_cell = cell.view(-1)
    hist = torch.bincount(flat_cell, minlength=num_rows * width)
    upto = hist.cumsum_(0)  # items in cells <= c, counted from the chunk start (hist is not needed again)

    thr_flat = thr_row * num_cols + thr_col
    thr_cell = flat_cell.index_select(0, thr_flat).long()
    in_lower_cells = _below(upto, thr_cell) - _below(upto, thr_row * width)
    thr_dist = work.view(-1).index_select(0, thr_flat)

    # thresholds are sorted by cell, so those sharing a cell are a run: where it starts and how long
    cells_used, per_cell = torch.unique_consecutive(thr_cell, return_counts=True)
    run_start = ws.get("run_start", num_rows * width, torch.int64, dev).zero_()
    run_start[cells_used] = per_cell.cumsum(0) - per_cell
    run_length = ws.get("run_length", num_rows * width, torch.int64, dev).zero_()
    run_length[cells_used] = per_cell
    flagged = ws.get("flagged", flat_cell.numel(), torch.bool, dev)
    torch.index_select(run_length > 0, 0, flat_cell, out=flagged)
    item = _nonzero(flagged).to(dev)
    item_row, item_col = item // num_cols, item % num_cols
    item_cell = flat_cell.index_select(0, item)
    first = run_start.index_select(0, item_cell)
    last = first + run_length.index_select(0, item_cell)

    num_thr = thr_row.numel()
    extra_less = torch.zeros(num_thr, dtype=torch.int64, device=dev)
    extra_le = torch.zeros_like(extra_less)
    ties = torch.zeros_like(extra_less)
    pairs_per_item = last - first
    ends = pairs_per_item.cumsum(0)
    start = 0
    while start < item.numel():
        base = int(ends[start - 1]) if start else 0
        stop = int(torch.searchsorted(ends, torch.tensor(base + MAX_PAIRS, device=dev), right=True))
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        reps = pairs_per_item[sl]
        pick = torch.repeat_interleave(torch.arange(start, stop, device=dev), reps)
        within = torch.arange(pick.numel(), device=dev) - torch.repeat_interleave(ends[sl] - reps - base, reps)
        thr = first[pick] + within
        row, col = item_row[pick], item_col[pick]
        d_item, d_thr = work.view(-1).index_select(0, item[pick]), thr_dist[thr]
        equal = d_item == d_thr
        less = (d_item < d_thr) | (equal & (col < thr_col[thr]))
        other = equal & (g_pids[col] != q_pids[row])
        extra_less.index_add_(0, thr, less.long())
        extra_le.index_add_(0, thr, (d_item <= d_thr).long())
        ties.index_add_(0, thr, other.long())
        start = stop
    return PrecedingCounts(less=in_lower_cells + extra_less, less_equal=in_lower_cells + extra_le,
                           ties_other_identity=ties > 0, distance=thr_dist)


@contextlib.contextmanager
def chunk_threads(device: torch.device) -> Iterator[int]:
    """Yield how many chunks to run at once: on CPU, torch's thread count, with torch itself set to
    one thread meanwhile. Each chunk is many small ops; an OpenMP region per op stalls badly when
    the cores are shared with other processes, whole chunks per Python thread do not."""
    if device.type != "cpu":
        yield 1
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def count_in_chunks(dist: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, junk: torch.Tensor,
                    q_pids: torch.Tensor, g_pids: torch.Tensor, *, chunk_elements: int | None = None,
                    workers: int = 1) -> dict[str, np.ndarray]:
    """Counts for every (query ``rows``, gallery ``cols``) same-identity item, in ranked order per query.

    ``rows`` must be ascending. ``workers`` Python threads take chunks in turn (see ``chunk_threads``).
    Returns numpy arrays: row, junk, less, less_equal, ties, distance.
    """
    num_q, num_g = dist.shape
    dev = dist.device
    default = CHUNK_ELEMENTS_CUDA if dev.type == "cuda" else CHUNK_ELEMENTS_CPU
    per_chunk = max(1, (chunk_elements or default) // num_g)
    starts = list(range(0, num_q, per_chunk))
    bounds = torch.searchsorted(rows, torch.tensor([*starts, num_q], device=dev)).tolist()
    jobs = [(s0, bounds[i], bounds[i + 1]) for i, s0 in enumerate(starts) if bounds[i] < bounds[i + 1]]
    local = threading.local()

    def run(job: tuple[int, int, int]) -> dict[str, np.ndarray]:
        s0, lo, hi = job
        if not hasattr(local, "workspace"):
            local.workspace = Workspace()
        chunk = dist[s0:s0 + per_chunk].contiguous()
        r, c, j = rows[lo:hi] - s0, cols[lo:hi], junk[lo:hi]
        order = torch.argsort(chunk[r, c], stable=True)
        order = order[torch.argsort(r[order], stable=True)]  # by row, then distance, then gallery index
        r, c, j = r[order], c[order], j[order]
        counts = preceding_counts(chunk, r, c, q_pids[s0:s0 + per_chunk], g_pids, row_offset=s0,
                                  workspace=local.workspace)
        if dev.type == "cpu" and (s0 // per_chunk) % TRIM_EVERY == TRIM_EVERY - 1:
            _trim_heap()
        return {"row": (r + s0).cpu().numpy(), "junk": j.cpu().numpy(), "less": counts.less.cpu().numpy(),
                "less_equal": counts.less_equal.cpu().numpy(), "ties": counts.ties_other_identity.cpu().numpy(),
                "distance": counts.distance.double().cpu().numpy()}

    workers = min(workers, len(jobs))
    if workers <= 1:
        parts = [run(job) for job in jobs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, jobs))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
