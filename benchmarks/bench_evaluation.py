"""ReID ranking metrics (``evaluate_rank``) at Market-1501 scale (3,368 x 15,913) and MSMT17
scale (11,659 x 82,161; the float32 distance matrix alone is 3.8 GB).

Distances are uniform random float32, the worst case for the engine (every true match is deep
in its list, so nothing can be pruned); identities and cameras are drawn as in the datasets
(751 / 3,060 identities, 6 / 15 cameras). Each benchmark records in ``extra_info``:
- ``peak_rss_above_matrix_mb``: the process's peak resident memory during evaluation minus its
  resident memory just before (the matrix already in memory); read from VmHWM, reset first;
- ``reference_loop_s``: the straightforward per-query stable-argsort loop
  (``genreid.evaluation.reference``, torchreid's algorithm) on the same problem in the same run;
  on MSMT17 it runs on ``REFERENCE_SAMPLE`` queries and is scaled up (``reference_extrapolated``);
- ``speedup``: reference_loop_s / the engine's mean time;
- ``engine_cpu_s`` and ``reference_loop_cpu_s``: CPU seconds (all threads) of one engine run and of
  the loop, and ``load_average``: the machine's 1-minute load when the benchmark ran. On a shared
  machine wall times swing with the load; CPU seconds much less.

Baseline: ``benchmarks/baseline/`` (pytest-benchmark storage). Compare a change against it with
  .venv/bin/python -m pytest benchmarks/bench_evaluation.py --benchmark-enable --benchmark-only \\
      --benchmark-storage=file://benchmarks/baseline --benchmark-compare --benchmark-compare-fail=mean:30%
and refresh it (on a quiet machine) by adding ``--benchmark-save=evaluation``.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest
import torch

from genreid.evaluation import evaluate_rank
from genreid.evaluation.reference import evaluate_rank_reference

SCALES = {  # queries, gallery, identities, cameras
    "market1501": (3368, 15913, 751, 6),
    "msmt17": (11659, 82161, 3060, 15),
}
REFERENCE_SAMPLE = {"market1501": None, "msmt17": 400}  # None: every query


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # "5": reset the peak resident set size (Linux >= 4.0)
        fh.write("5")


def _problem(num_q: int, num_g: int, ids: int, cams: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g_pids, q_pids = rng.integers(0, ids, num_g), rng.integers(0, ids, num_q)
    g_cams, q_cams = rng.integers(0, cams, num_g), rng.integers(0, cams, num_q)
    dist = torch.rand(num_q, num_g, generator=torch.Generator().manual_seed(seed)).numpy()
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("scale", list(SCALES))
def test_evaluate_rank(benchmark, scale):
    dist, qp, gp, qcam, gcam = _problem(*SCALES[scale])
    gc.collect()
    before = _rss_mb("VmRSS")
    _reset_peak()
    result = benchmark.pedantic(evaluate_rank, args=(dist, qp, gp, qcam, gcam), rounds=3, iterations=1, warmup_rounds=1)
    peak_mb = _rss_mb("VmHWM") - before
    c0 = time.process_time()
    evaluate_rank(dist, qp, gp, qcam, gcam)
    engine_cpu = time.process_time() - c0
    sample = REFERENCE_SAMPLE[scale]
    queries = None if sample is None else np.random.default_rng(1).choice(len(qp), sample, replace=False)
    factor = 1 if sample is None else len(qp) / sample
    t0, c0 = time.perf_counter(), time.process_time()
    ref = evaluate_rank_reference(dist, qp, gp, qcam, gcam, queries=queries)
    loop_s, loop_cpu = (time.perf_counter() - t0) * factor, (time.process_time() - c0) * factor
    mean_s = benchmark.stats.stats.mean
    benchmark.extra_info.update({
        "queries": len(qp), "gallery": len(gp), "matrix_mb": round(dist.nbytes / 2**20, 1),
        "peak_rss_above_matrix_mb": round(peak_mb, 1), "reference_loop_s": round(loop_s, 2),
        "reference_extrapolated": sample is not None, "speedup": round(loop_s / mean_s, 1),
        "torch_threads": torch.get_num_threads(), "engine_cpu_s": round(engine_cpu, 3),
        "reference_loop_cpu_s": round(loop_cpu, 2), "load_average": round(os.getloadavg()[0], 2)})
    print(f"\n{scale}: {mean_s:.3f} s, peak +{peak_mb:.0f} MB above the {dist.nbytes / 2**20:.0f} MB matrix; "
          f"per-query argsort loop {loop_s:.1f} s{' (extrapolated)' if sample else ''} -> x{loop_s / mean_s:.0f}; "
          f"CPU s: engine {engine_cpu:.2f}, loop {loop_cpu:.1f}; load {os.getloadavg()[0]:.1f}")
    assert peak_mb < 4096  # the acceptance bound: under 4 GB above the matrix
    if sample is None:
        assert result.mAP == pytest.approx(ref["mAP"], abs=1e-9)
        np.testing.assert_allclose(result.cmc, ref["cmc"], atol=1e-12)
    else:  # the sampled queries' APs agree with the engine's per-query APs
        valid = ~np.isnan(result.ap_per_query[queries])
        np.testing.assert_allclose(result.ap_per_query[queries][valid], ref["ap_per_query"], atol=1e-9)
