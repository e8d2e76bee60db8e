"""What every DVC stage entry point shares: config loading, clean errors, exit codes.

``stages/*.py`` stay thin: they parse arguments and call :func:`run_stage` with a function
from the library that takes plain arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from genreid.config import GenreidConfig, load_config
from genreid.config.loader import write_resolved_config
from genreid.errors import GenreidError

EXIT_USER_ERROR = 2


def stage_parser(description: str, *, per_dataset: bool = True, per_method: bool = False,
                 method_choices: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The arguments every stage takes; ``method_choices`` restricts ``--method`` (None: checked later)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if per_dataset:
        p.add_argument("--dataset", required=True, help="dataset name from params 'datasets'")
    if per_method:
        p.add_argument("--method", required=True, choices=method_choices, help="method name")
    return p


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("GENREID_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def apply_runtime(cfg: GenreidConfig) -> None:
    import torch

    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)


def is_main_process() -> bool:
    """Rank 0 under ``torchrun`` (which sets ``RANK``), or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def run_stage(body: Callable[[GenreidConfig, argparse.Namespace], Path | None], parser: argparse.ArgumentParser,
              argv: list[str] | None = None) -> int:
    """Validate params first (fail within seconds), then run ``body``; user errors exit 2.

    ``body`` returns the folder of its outputs' resolved config (None: it writes none); the runner writes
    ``config.resolved.yaml`` there once, on rank 0, after the body finished."""
    configure_logging()
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.params)
        ds = getattr(args, "dataset", None)
        if ds is not None and ds not in cfg.datasets and ds != cfg.warmup.source_dataset:
            raise GenreidError(f"dataset {ds!r} is not listed in {args.params} 'datasets' {cfg.datasets} "
                               "(nor is it warmup.source_dataset)",
                               "add it to 'datasets' or run a stage of a listed dataset")
        apply_runtime(cfg)
        resolved = body(cfg, args)
        if resolved is not None and is_main_process():
            write_resolved_config(cfg, resolved)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
