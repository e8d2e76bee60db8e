"""DVC stage ``evaluate@<ds>-<method>``: a method's identity encoder on the query/gallery split.

Reads data/prepared/<ds>/ (query and gallery manifests) and, except for ``untrained`` (a fresh
encoder built from ``model`` with ``seed``), models/<ds>/<method>/encoder.pt (``baseline`` is
the warm-up output; ``source`` the UDA source pre-training on its own test split) or ``--encoder``
(``direct``: the source encoder on the target's test split, "direct transfer"); writes
results/<ds>/<method>/metrics.json (numbers only), provenance.json (seed, protocol, training
record, commit, versions), cmc.csv, ranked_lists.png and config.resolved.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.errors import ConfigError
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.manifest import load_prepared
    from genreid.evaluation.evaluator import RerankParams
    from genreid.evaluation.stage import EvaluateSettings, evaluate_method, load_method_encoder
    from genreid.registry import evaluated_names
    from genreid.utils.device import resolve_device
    from genreid.utils.seeding import seed_everything

    ds, method, e = args.dataset, args.method, cfg.eval
    if method not in evaluated_names():
        raise ConfigError(f"--method {method!r} is not an evaluated method",
                          f"use one of {', '.join(evaluated_names())}")
    seed_everything(cfg.seed, cfg.runtime.deterministic)
    device = resolve_device(cfg.runtime.device)
    m = cfg.model
    encoder_args = {"backbone": m.backbone, "pretrained": m.pretrained, "pooling": m.pooling,
                    "embedding_dim": m.embedding_dim, "last_stride": m.last_stride, "stripes": m.stripes}
    if method == "direct" and not args.encoder:
        raise ConfigError("--method direct evaluates the source encoder on the target: it needs --encoder",
                          "pass --encoder models/<source>/source/encoder.pt (dvc.yaml stage evaluate_direct)")
    files = layout(cfg.data.root, ds)
    encoder_path = Path(args.encoder) if args.encoder else files.encoder(method)
    model, training = load_method_encoder(method, encoder_path, encoder_args, cfg.seed, device)
    settings = EvaluateSettings(
        height=cfg.data.height, width=cfg.data.width, batch_size=e.batch_size, flip=e.flip, metric=e.metric,
        protocol=e.protocol, max_rank=e.max_rank, camera_filter=e.camera_filter,
        rerank=RerankParams(e.rerank.k1, e.rerank.k2, e.rerank.lambda_value) if e.rerank.enabled else None,
        ranked_list_queries=e.ranked_list_queries, num_workers=cfg.runtime.num_workers, seed=cfg.seed)
    frames = load_prepared(files.prepared, splits=("query", "gallery"))
    out_dir = files.results_dir(method)
    evaluate_method(frames, model, out_dir, dataset=ds, method=method, settings=settings, device=device,
                    training=training)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0], per_method=True)
    parser.add_argument("--encoder", default=None, help="encoder file (default models/<ds>/<method>/encoder.pt); "
                                                       "direct: the source's models/<src>/source/encoder.pt")
    return run_stage(body, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
