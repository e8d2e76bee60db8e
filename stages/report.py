"""DVC stage ``report``: results/collected/*.json -> results/README.md, results/summary.csv, results/plots/.

Usage: python stages/report.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import sys

from genreid.config import GenreidConfig
from genreid.layout import RESULTS
from genreid.pipeline.recorded_params import check_recorded_params
from genreid.report.regime import regime_lines
from genreid.report.targets import load_targets
from genreid.stage import require_params_unchanged, run_stage, stage_parser


def main(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.report.report import build_report  # numpy: only after run_stage applied the CPU cap

    check_recorded_params(under=f"{RESULTS.as_posix()}/")  # no run of mixed settings is reported
    require_params_unchanged(args)
    out = build_report(RESULTS, list(cfg.datasets), load_targets(cfg.report.targets), cfg.report.tolerance,
                       cfg.report.targets, regime_lines(cfg), cfg.report.paired_recipes)
    for row in out.rows:
        stats = ", ".join(f"{m} {s.format()}" for m, s in row.stats.items())
        print(f"{row.dataset:>10} {row.method:>12} seeds={len(row.seeds)} {stats} [{row.status}]")
    print(f"wrote {out.readme} and {out.summary_csv}")


if __name__ == "__main__":
    sys.exit(run_stage(main, stage_parser(__doc__.splitlines()[0], per_dataset=False)))
