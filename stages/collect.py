"""DVC stage ``collect@<ds>``: one dataset's evaluations -> results/collected/<ds>.json and its seed archive.

Usage: python stages/collect.py --dataset <ds> [--params params.yaml]
"""

from __future__ import annotations

import argparse
import sys

from genreid.config import GenreidConfig
from genreid.layout import RESULTS
from genreid.pipeline.recorded_params import check_recorded_params
from genreid.registry import REFERENCE_RUNS
from genreid.report.seeds import config_fingerprint, recipe_name
from genreid.report.targets import setting_name
from genreid.stage import require_params_unchanged, run_stage, stage_parser


def reported_methods(cfg: GenreidConfig) -> list[str]:
    """eval.methods that the pipeline produces: untrained, baseline, direct (UDA: the params check that a
    source is set), and the trained train.methods."""
    return [m for m in cfg.eval.methods if m in REFERENCE_RUNS or m in cfg.train.methods]


def procedural_body(cfg: GenreidConfig, dataset: str) -> bool:
    """A real dataset rendered with the procedural stand-in body (allowed only by mesh.allow_procedural_body)."""
    return dataset != "synthetic" and cfg.mesh.body_model == "procedural" and cfg.mesh.allow_procedural_body


def main(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.report.collect import collect_dataset  # numpy: only after run_stage applied the CPU cap

    check_recorded_params(under=f"{RESULTS.as_posix()}/{args.dataset}/")  # no run of mixed settings is archived
    require_params_unchanged(args)
    collected = collect_dataset(RESULTS, args.dataset, reported_methods(cfg), setting_name(cfg.warmup.source_dataset),
                                cfg.seed, config_fingerprint(cfg.model_dump(mode="json")),
                                procedural_body=procedural_body(cfg, args.dataset), recipe=recipe_name(args.params))
    print(f"{args.dataset}: settings {collected.fingerprint} ({recipe_name(args.params)})")
    for m in collected.methods:
        print(f"{args.dataset}: {m.method}: {len(m.runs)} seed(s) of these settings {[r.seed for r in m.runs]}"
              + (f"; other settings archived: {len(m.other_settings)} group(s)" if m.other_settings else ""))


if __name__ == "__main__":
    sys.exit(run_stage(main, stage_parser(__doc__.splitlines()[0])))
