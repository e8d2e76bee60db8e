"""What every DVC stage entry point shares: config loading, clean errors, exit codes.

``stages/*.py`` stay thin: they parse arguments and call :func:`run_stage` with a function
from the library that takes plain arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from genreid.config import GenreidConfig, load_config
from genreid.errors import GenreidError
from genreid.utils.isa import apply_cpu_isa_cap

EXIT_USER_ERROR = 2


def stage_parser(description: str, *, per_dataset: bool = True, per_method: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if per_dataset:
        p.add_argument("--dataset", required=True, help="dataset name from params 'datasets'")
    if per_method:
        p.add_argument("--method", required=True, help="method name")
    return p


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("GENREID_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def apply_runtime(cfg: GenreidConfig) -> None:
    import torch

    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)


def run_stage(body: Callable[[GenreidConfig, argparse.Namespace], Any], parser: argparse.ArgumentParser,
              argv: list[str] | None = None) -> int:
    """Validate params first (fail within seconds), then run ``body``; user errors exit 2."""
    configure_logging()
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.params)
        ds = getattr(args, "dataset", None)
        if ds is not None and ds not in cfg.datasets and ds != cfg.warmup.source_dataset:
            raise GenreidError(f"dataset {ds!r} is not listed in {args.params} 'datasets' {cfg.datasets} "
                               "(nor is it warmup.source_dataset)",
                               "add it to 'datasets' or run a stage of a listed dataset")
        apply_cpu_isa_cap(cfg.runtime.cpu_isa_cap)  # before torch runs any kernel (genreid.utils.isa)
        apply_runtime(cfg)
        body(cfg, args)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
