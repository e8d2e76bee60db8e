"""DVC stage ``true_views@<ds>``: SynthReID's ground-truth novel views of the true_views.splits at every mesh angle.

Writes data/true_views/<ds>/ (<split>_views.npy, <split>_masks.npy, <split>_backgrounds.npy,
<split>_index.csv, <split>_views.json; genreid/synth/novel_views.py) and results/<ds>/true_views/summary.json
(render times). A real dataset has no true views: the folder then holds absent.json saying why, and the
stages that read it (view fidelity, the oracle_views arm) repeat that reason.
"""

from __future__ import annotations

import argparse
import sys

from genreid.config import GenreidConfig
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.data.manifest import load_prepared
    from genreid.synth.novel_views import render_splits
    from genreid.utils.atomic import write_json
    from genreid.utils.provenance import run_record, timestamp

    ds, v = args.dataset, cfg.true_views
    files = layout(cfg.data.root, ds)
    tables = load_prepared(files.prepared, splits=tuple(v.splits))
    report = render_splits(files.prepared, files.true_views, tables, cfg.mesh.angles, batch_size=v.batch_size)
    write_json(files.results_dir("true_views") / "summary.json",
               {"dataset": ds, **report, "provenance": run_record(cfg.seed, "cpu", finished_at=timestamp())})


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
