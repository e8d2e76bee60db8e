"""The evaluate stage: one method's encoder on a prepared dataset's query/gallery split.

Writes into ``out_dir`` (``results/<ds>/<method>/``):
- ``metrics.json``: numbers only, what ``dvc metrics diff`` compares: mAP, R1, R5, R10, mINP in
  percent and the query/gallery counts;
- ``provenance.json``: what produced them: the protocol and distance, the seed, the training run's
  own record from the checkpoint (selected epoch, resumed, ...) and the run record (git commit,
  versions, device, finish time), kept out of the metrics so that comparing experiments lists
  numbers, not commit hashes and timestamps;
- ``cmc.csv``: columns rank, cmc (percent), declared as a DVC plot;
- ``ranked_lists.png``: the best and worst queries with their top-10.
The whole evaluation takes well under a minute on the embedded dataset, so it simply reruns
after a kill; every file is written atomically.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genreid.errors import GenreidError
from genreid.evaluation.evaluator import EvalOptions, RerankParams, evaluate_features
from genreid.evaluation.extract import extract_features
from genreid.evaluation.rank import RankResult, cmc_csv
from genreid.evaluation.ranked_lists import draw_ranked_lists, pick_queries, ranked_gallery
from genreid.registry import evaluated_names
from genreid.utils.atomic import write_json, write_text
from genreid.utils.faults import fault_point
from genreid.utils.provenance import run_record, timestamp

log = logging.getLogger(__name__)
TOP_K = 10


@dataclass(frozen=True)
class EvaluateSettings:
    height: int
    width: int
    batch_size: int = 128
    flip: bool = False
    metric: str = "euclidean"
    protocol: str = "rank"
    max_rank: int = 50
    camera_filter: bool = True
    rerank: RerankParams | None = None
    ranked_list_queries: int = 3
    num_workers: int = 0
    seed: int = 1


def load_method_encoder(method: str, encoder_path: str | os.PathLike | None, encoder_args: dict[str, Any],
                        seed: int, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``untrained``: a fresh encoder from the params, drawn from the warm-up's ``init`` stream (the
    weights stage 1 starts from); others: the stage's checkpoint, strictly."""
    from genreid.models.id_encoder import build_encoder, load_encoder
    from genreid.utils.seeding import stream_seed

    if method == "untrained":
        torch.manual_seed(stream_seed(seed, "warmup", 0, "init"))
        return build_encoder(**encoder_args).to(device), {"initialisation": encoder_args.get("pretrained")}
    if encoder_path is None:
        raise GenreidError(f"method {method!r} needs an encoder checkpoint",
                           f"use one of {', '.join(evaluated_names())}")
    return load_encoder(encoder_path, device)


def metrics_record(result: RankResult, *, dataset: str, method: str, settings: EvaluateSettings, num_query: int,
                   num_gallery: int, training: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The metrics file: headline numbers in percent first, then everything needed to trust them."""
    record: dict[str, Any] = {"dataset": dataset, "method": method}
    record.update(result.summary(percent=True))
    record.update({"metric": settings.metric, "flip": settings.flip,
                   "rerank": None if settings.rerank is None else vars(settings.rerank)})
    record["counts"].update({"num_query": num_query, "num_gallery": num_gallery})
    record.update({
        "seed": settings.seed,
        "training": training,
        "provenance": run_record(settings.seed, device, finished_at=timestamp()),
    })
    return record


METRIC_KEYS: tuple[str, ...] = ("mAP", "R1", "R5", "R10", "mINP", "counts")


def split_record(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``metrics.json`` (the numbers) and ``provenance.json`` (everything else) of one evaluation."""
    metrics = {k: record[k] for k in METRIC_KEYS if k in record}
    return metrics, {k: v for k, v in record.items() if k not in metrics}


def evaluate_method(frames: dict[str, pd.DataFrame], model: torch.nn.Module, out_dir: str | os.PathLike, *,
                    dataset: str, method: str, settings: EvaluateSettings, device: torch.device,
                    training: dict[str, Any] | None = None) -> dict[str, Any]:
    """Extract query/gallery features, evaluate, and write metrics.json, provenance.json, cmc.csv and
    ranked_lists.png; returns the whole record (both files' entries)."""
    from genreid.data.loader import ImageDataset

    s = settings
    feats = {}
    for split in ("query", "gallery"):
        ds = ImageDataset(frames[split], s.height, s.width)
        feats[split] = extract_features(model, ds, batch_size=s.batch_size, device=device, flip=s.flip,
                                        num_workers=s.num_workers)
        log.info("%s %s: %d %s features", dataset, method, len(feats[split]), split)
    q, g = feats["query"], feats["gallery"]
    options = EvalOptions(metric=s.metric, protocol=s.protocol, max_rank=s.max_rank, camera_filter=s.camera_filter,
                          rerank=s.rerank)
    ev = evaluate_features(q.features, g.features, q.pids, g.pids, q.camids, g.camids, options)
    out_dir = Path(out_dir)
    record = metrics_record(ev.result, dataset=dataset, method=method, settings=s, num_query=len(q),
                            num_gallery=len(g), training=training or {}, device=device)
    fault_point("evaluate.write")
    metrics, provenance = split_record(record)
    write_json(out_dir / "provenance.json", provenance)
    write_json(out_dir / "metrics.json", metrics)
    write_text(out_dir / "cmc.csv", cmc_csv(ev.result))
    best, worst = pick_queries(ev.result.ap_per_query, s.ranked_list_queries)
    rows = []
    for label, queries in (("best", best), ("worst", worst)):
        for qi in queries:
            top = ranked_gallery(ev.distmat[qi], int(q.pids[qi]), int(q.camids[qi]), g.pids, g.camids, TOP_K,
                                 s.camera_filter)
            rows.append((f"{label} AP {100 * ev.result.ap_per_query[qi]:.1f}", qi, top.tolist()))
    draw_ranked_lists(out_dir / "ranked_lists.png", rows, list(frames["query"]["path"]),
                      list(frames["gallery"]["path"]), lambda qi, gi: bool(q.pids[qi] == g.pids[gi]))
    log.info("%s %s: mAP %.2f R1 %.2f (%s protocol, %d valid queries)", dataset, method, record["mAP"],
             record["R1"], s.protocol, ev.result.num_valid_queries)
    return record
