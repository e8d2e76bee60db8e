"""``genreid evaluate``: metrics from saved features or a saved distance matrix.

The input is one ``.npz`` (numpy) or ``.pt`` (torch, a dict) file holding either ``distmat``
(Q x G) or ``query_features`` and ``gallery_features`` (N x D), plus ``query_pids`` and
``gallery_pids`` and, unless ``--no-camera-filter``, ``query_camids`` and ``gallery_camids``.
Metrics are printed as JSON (percent) or written with ``--out``; ``--cmc-csv`` writes the curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from genreid.errors import GenreidError

KEYS = ("distmat", "query_features", "gallery_features", "query_pids", "gallery_pids", "query_camids",
        "gallery_camids")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help=".npz or .pt file with distmat or query/gallery features, pids, camids")
    parser.add_argument("--protocol", choices=("rank", "sklearn", "interpolated"), default="rank",
                        help="AP definition (default: rank, the torchreid/FastReID one)")
    parser.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                        help="distance for features (default: squared Euclidean on L2-normalised features)")
    parser.add_argument("--max-rank", type=int, default=50)
    parser.add_argument("--no-camera-filter", dest="camera_filter", action="store_false",
                        help="keep same-camera true matches (camera-less data)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (features input only)")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda-value", type=float, default=0.3)
    parser.add_argument("--device", default=None, help="torch device for distances and ranking (default: cpu)")
    parser.add_argument("--out", default=None, help="write the metrics JSON here instead of stdout")
    parser.add_argument("--cmc-csv", default=None, help="also write the CMC curve (rank,cmc) here")


def load_arrays(path: str | Path) -> dict[str, Any]:
    """The known keys of an .npz/.pt input file (others are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise GenreidError(f"evaluation input {path} does not exist", "pass an .npz or .pt file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        elif path.suffix in (".pt", ".pth"):
            import torch

            raw = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise GenreidError(f"evaluation input {path} has an unknown suffix {path.suffix!r}", "use .npz or .pt")
    except GenreidError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file: one fix for all
        raise GenreidError(f"cannot read evaluation input {path}: {exc}",
                           "write it with numpy.savez or torch.save") from exc
    if not isinstance(raw, dict):
        raise GenreidError(f"{path} must hold a mapping of arrays, found {type(raw).__name__}")
    return {k: raw[k] for k in KEYS if k in raw}


def _require(arrays: dict[str, Any], path: str, *keys: str) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise GenreidError(f"{path} lacks {', '.join(missing)} (found: {', '.join(sorted(arrays)) or 'none'})",
                           f"save it with the keys {', '.join(keys)}")


def run_evaluate_cli(args: argparse.Namespace) -> int:
    from genreid.evaluation.evaluator import RerankParams, evaluate_features
    from genreid.evaluation.rank import cmc_csv, evaluate_rank
    from genreid.utils.atomic import write_json, write_text

    a = load_arrays(args.input)
    cams = ("query_camids", "gallery_camids") if args.camera_filter else ()
    _require(a, args.input, "query_pids", "gallery_pids", *cams)
    qc, gc = a.get("query_camids"), a.get("gallery_camids")
    if "distmat" in a:
        if args.rerank:
            raise GenreidError("--rerank needs features (query-query and gallery-gallery distances)",
                               f"save query_features and gallery_features in {args.input}")
        import torch

        dist = torch.as_tensor(a["distmat"])
        if args.device:
            dist = dist.to(args.device)
        result = evaluate_rank(dist, a["query_pids"], a["gallery_pids"], qc, gc, max_rank=args.max_rank,
                               protocol=args.protocol, camera_filter=args.camera_filter)
        source = "distmat"
    else:
        _require(a, args.input, "query_features", "gallery_features")
        rerank = RerankParams(args.k1, args.k2, args.lambda_value) if args.rerank else None
        result = evaluate_features(a["query_features"], a["gallery_features"], a["query_pids"], a["gallery_pids"],
                                   qc, gc, metric=args.metric, protocol=args.protocol, max_rank=args.max_rank,
                                   camera_filter=args.camera_filter, rerank=rerank, device=args.device).result
        source = "features"
    record = result.summary(percent=True)
    record.update({"input": str(args.input), "source": source,
                   "metric": args.metric if source == "features" else "given",
                   "rerank": vars(rerank) if source == "features" and rerank is not None else None})
    if args.out:
        write_json(args.out, record)
    else:
        print(json.dumps(record, indent=2, sort_keys=True))
    if args.cmc_csv:
        write_text(args.cmc_csv, cmc_csv(result))
    return 0
