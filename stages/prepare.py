"""DVC stage ``prepare@<ds>``: dataset archive (or SynthReID generator) -> data/prepared/<ds>/.

Writes images/, manifest_{train,val,query,gallery}.csv, summary.json/.txt and config.resolved.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.data.prepare import PrepareOptions, prepare_dataset

    ds = args.dataset
    source = getattr(cfg.data, ds).model_dump()
    out_dir = layout(cfg.data.root, ds).prepared
    options = PrepareOptions(val_fraction=cfg.data.val_fraction, val_seed=cfg.data.val_seed, verify=cfg.data.verify,
                             expected_counts=cfg.data.expected_counts, max_bad_images=cfg.data.max_bad_images)
    prepare_dataset(ds, source, out_dir, options)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
