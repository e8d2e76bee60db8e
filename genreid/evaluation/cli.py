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


def _at_least_one(text: str) -> int:
    """An integer >= 1 (argparse turns the ValueError into a one-line usage error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1 (a neighbourhood holds at least one item)")
    return value


def _unit_interval(text: str) -> float:
    """A float in [0, 1]: the weight of the original distance against the Jaccard distance."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1] (it weighs the original distance against "
                                         "the Jaccard distance)")
    return value


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help=".npz or .pt file with distmat or query/gallery features, pids, camids")
    parser.add_argument("--protocol", choices=("rank", "sklearn", "interpolated"), default="rank",
                        help="AP definition (default: rank, the torchreid/FastReID one)")
    parser.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                        help="distance for features (default: squared Euclidean on L2-normalised features)")
    parser.add_argument("--max-rank", type=int, default=50,
                        help="CMC length, reduced to the gallery size (default: 50)")
    parser.add_argument("--no-camera-filter", dest="camera_filter", action="store_false",
                        help="keep same-camera true matches (camera-less data)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (features input only)")
    parser.add_argument("--k1", type=_at_least_one, default=20,
                        help="re-ranking: k-reciprocal neighbourhood size, >= 1 (default: 20)")
    parser.add_argument("--k2", type=_at_least_one, default=6,
                        help="re-ranking: query-expansion neighbours, >= 1 (default: 6)")
    parser.add_argument("--lambda-value", type=_unit_interval, default=0.3,
                        help="re-ranking: weight of the original distance, in [0, 1] (default: 0.3)")
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
            from genreid.utils.safe_load import load_weights_only

            raw = load_weights_only(path, "evaluation input", "write it with numpy.savez or torch.save (tensors only)")
        else:
            raise GenreidError(f"evaluation input {path} has an unknown suffix {path.suffix!r}", "use .npz or .pt")
    except GenreidError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file: one fix for all
        from genreid.utils.safe_load import safe_reason

        raise GenreidError(f"cannot read evaluation input {path}: {safe_reason(exc)}",
                           "write it with numpy.savez (plain arrays) or torch.save (tensors only)") from None
    if not isinstance(raw, dict):
        raise GenreidError(f"{path} must hold a mapping of arrays, found {type(raw).__name__}")
    out = {k: raw[k] for k in KEYS if k in raw}
    for key in ("query_pids", "gallery_pids", "query_camids", "gallery_camids"):
        if key in out:
            out[key] = _integer_ids(out[key], key, path)
    return out


def _integer_ids(value: Any, key: str, path: Path) -> np.ndarray:
    """Identity and camera labels must be integers: ranking compares them with ``==`` on tensors."""
    arr = np.asarray(value.cpu().numpy() if hasattr(value, "cpu") else value)
    if arr.ndim != 1:
        raise GenreidError(f"{path}: {key} must be a 1-D array, found shape {arr.shape}",
                           f"save {key} as one integer per query/gallery item")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)
    if arr.dtype.kind in "US":
        try:
            return np.array([int(v) for v in arr], dtype=np.int64)
        except ValueError:
            pass
    bad = next((v for v in arr.tolist() if not _is_int(v)), arr.tolist()[:1])
    raise GenreidError(f"{path}: {key} must hold integers, found {arr.dtype} values such as {bad!r}",
                       f"map each identity/camera to an integer (e.g. numpy.unique(..., return_inverse=True)) "
                       f"and save {key} as int64")


def _is_int(v: Any) -> bool:
    try:
        return float(v) == int(v)
    except (TypeError, ValueError):
        return False


def cli_device(name: str | None) -> Any:
    """``--device``: a torch device that exists here, or a message saying what to pass instead."""
    import torch

    if name is None:
        return None
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise GenreidError(f"--device {name!r} is not a torch device", "use --device cpu or --device cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenreidError(f"--device {name} asked for a GPU but CUDA is not available on this machine",
                           "use --device cpu (or leave --device out)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GenreidError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible",
                           "use --device cuda:0 or another index that exists")
    if dev.type not in ("cpu", "cuda"):
        raise GenreidError(f"--device {name}: only cpu and cuda are supported", "use --device cpu or --device cuda")
    return dev


def _require(arrays: dict[str, Any], path: str, *keys: str) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise GenreidError(f"{path} lacks {', '.join(missing)} (found: {', '.join(sorted(arrays)) or 'none'})",
                           f"save it with the keys {', '.join(keys)}")


def run_evaluate_cli(args: argparse.Namespace) -> int:
    try:
        return _evaluate(args)
    except MemoryError:
        raise GenreidError(f"evaluating {args.input} ran out of memory" + (" in re-ranking, which needs the "
                           "gallery x gallery distances" if args.rerank else ""),
                           "free memory or evaluate on a larger machine" + (", or leave out --rerank"
                           if args.rerank else "") + "; a distance matrix larger than the memory is kept in "
                           "TMPDIR, so point TMPDIR at a disk with room") from None


def _evaluate(args: argparse.Namespace) -> int:
    from genreid.evaluation.evaluator import EvalOptions, RerankParams, evaluate_features
    from genreid.evaluation.rank import cmc_csv, evaluate_rank
    from genreid.utils.atomic import write_json, write_text

    device = cli_device(args.device)
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
        if device is not None:
            dist = dist.to(device)
        result = evaluate_rank(dist, a["query_pids"], a["gallery_pids"], qc, gc, max_rank=args.max_rank,
                               protocol=args.protocol, camera_filter=args.camera_filter)
        source = "distmat"
    else:
        _require(a, args.input, "query_features", "gallery_features")
        rerank = RerankParams(args.k1, args.k2, args.lambda_value) if args.rerank else None
        options = EvalOptions(metric=args.metric, protocol=args.protocol, max_rank=args.max_rank,
                              camera_filter=args.camera_filter, rerank=rerank, device=device)
        result = evaluate_features(a["query_features"], a["gallery_features"], a["query_pids"], a["gallery_pids"],
                                   qc, gc, options).result
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
