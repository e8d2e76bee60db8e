"""k-reciprocal Jaccard distance at Market-1501 training size (12,936 x 2,048, k1=30, k2=6):
wall time and peak resident memory above the input (recorded in ``extra_info``).

Features are clustered (751 identities, ~17 images each, as Market) and L2-normalised, so the
reciprocal sets and query expansion are as large as on real features. Run with ``make bench``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from genreid.cluster import jaccard_distance


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


class PeakRss:
    """Samples the process's resident memory every 10 ms (torch/faiss bypass tracemalloc)."""

    def __enter__(self) -> "PeakRss":
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _market_like(n: int, d: int, ids: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, d)).astype(np.float32)
    x = centres[rng.integers(0, ids, n)] + 0.9 * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n,d,ids,knn", [(2000, 2048, 120, "faiss"), (12936, 2048, 751, "faiss"),
                                         (12936, 2048, 751, "torch")])
def test_jaccard_market_size(benchmark, n, d, ids, knn):
    x = torch.from_numpy(_market_like(n, d, ids))
    meter = PeakRss()

    def run() -> np.ndarray:
        with meter:
            return jaccard_distance(x, k1=30, k2=6, knn=knn)

    dist = benchmark.pedantic(run, rounds=1, iterations=1)
    peak_mb = (meter.peak - meter.base) / 2**20
    benchmark.extra_info.update({"n": n, "d": d, "knn": knn, "peak_rss_above_input_mb": round(peak_mb, 1),
                                 "output_mb": round(dist.nbytes / 2**20, 1)})
    print(f"\njaccard n={n} d={d} knn={knn}: peak RSS +{peak_mb:.0f} MB (output {dist.nbytes / 2**20:.0f} MB)")
    assert dist.shape == (n, n) and dist.dtype == np.float32
    assert peak_mb < 3 * dist.nbytes / 2**20 + 512  # no dense N x N intermediates beyond the output
    assert float(np.abs(np.diag(dist)).max()) < 1e-5
