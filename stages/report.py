"""DVC stages ``collect@<ds>`` and ``report``: evaluations -> results/README.md, summary.csv, plots.

python stages/report.py --dataset <ds>   collect one dataset (results/collected/<ds>.json, seed archive)
python stages/report.py                  write results/README.md, results/summary.csv, results/plots/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.report.collect import collect_dataset
from genreid.report.report import build_report
from genreid.report.seeds import config_fingerprint
from genreid.report.targets import load_targets, setting_name
from genreid.stage import run_stage, stage_parser

RESULTS = Path("results")


def reported_methods(cfg: GenreidConfig) -> list[str]:
    """eval.methods that the pipeline produces: untrained, baseline, and the trained train.methods."""
    return [m for m in cfg.eval.methods if m in ("untrained", "baseline") or m in cfg.train.methods]


def main(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    if args.dataset is not None:
        collected = collect_dataset(RESULTS, args.dataset, reported_methods(cfg),
                                    setting_name(cfg.warmup.source_dataset), cfg.seed,
                                    config_fingerprint(cfg.model_dump(mode="json")))
        for m in collected.methods:
            print(f"{args.dataset}: {m.method}: seeds {[r.seed for r in m.runs]}")
        return
    out = build_report(RESULTS, list(cfg.datasets), load_targets(cfg.report.targets), cfg.report.tolerance,
                       cfg.report.targets)
    for row in out.rows:
        stats = ", ".join(f"{m} {s.format()}" for m, s in row.stats.items())
        print(f"{row.dataset:>10} {row.method:>9} seeds={len(row.seeds)} {stats} [{row.status}]")
    print(f"wrote {out.readme} and {out.summary_csv}")


def parser() -> argparse.ArgumentParser:
    p = stage_parser(__doc__.splitlines()[0], per_dataset=False)
    p.add_argument("--dataset", default=None, help="collect this dataset (stage collect@<ds>); omit for the report")
    return p


if __name__ == "__main__":
    sys.exit(run_stage(main, parser()))
