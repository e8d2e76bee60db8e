"""DVC stage ``prepare@<ds>``: dataset archive (or SynthReID generator) -> data/prepared/<ds>/.

Writes images/, manifest_{train,val,query,gallery}.csv, summary.json/.txt and config.resolved.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.config.loader import write_resolved_config
from genreid.stage import run_stage, stage_parser


def prepared_dir(cfg: GenreidConfig, dataset: str) -> Path:
    return Path(cfg.data.root) / "prepared" / dataset


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.prepare import prepare_dataset

    ds = args.dataset
    source = getattr(cfg.data, ds).model_dump()
    out_dir = prepared_dir(cfg, ds)
    prepare_dataset(ds, source, out_dir, val_fraction=cfg.data.val_fraction, val_seed=cfg.data.val_seed,
                    verify=cfg.data.verify, expected_counts=cfg.data.expected_counts,
                    max_bad_images=cfg.data.max_bad_images)
    write_resolved_config(cfg, out_dir)


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
