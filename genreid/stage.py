"""What every DVC stage entry point shares: config loading, clean errors, exit codes.

``stages/*.py`` stay thin: they parse arguments and call :func:`run_stage` with a function
from the library that takes plain arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from genreid.config import GenreidConfig, load_config
from genreid.config.loader import write_resolved_config
from genreid.errors import GenreidError, Interrupted
from genreid.utils.console import configure_logging
from genreid.utils.isa import apply_cpu_isa_cap, requested_cap
from genreid.utils.launch import LaunchPlan, launch, needs_launch

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXPERIMENTS_BESIDE_A_REPRO = ("run experiments beside a running `dvc repro` with `dvc exp run --temp` or `dvc queue` "
                              "(docs/usage.md#experiments-while-a-repro-runs)")


def params_digest(path: str | os.PathLike) -> str:
    """sha256 of the params file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def require_params_unchanged(args: argparse.Namespace) -> None:
    """Refuse to go on when params.yaml is no longer what this stage read at its start: DVC records the file
    as it is when the stage ends, so the outputs would be filed under settings they were not computed with."""
    started = getattr(args, "params_sha256", None)
    if started is None or params_digest(args.params) == started:
        return
    raise GenreidError(f"{args.params} changed while this stage ran: its outputs were computed with the values read "
                       "at the start, but DVC would record the new ones in dvc.lock, so the stage stops here and DVC "
                       "records nothing",
                       f"put back the settings you meant to run (`git diff {args.params}`) and rerun `dvc repro`; "
                       + EXPERIMENTS_BESIDE_A_REPRO)


def stage_parser(description: str, *, per_dataset: bool = True, per_method: bool = False,
                 method_choices: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The arguments every stage takes; ``method_choices`` restricts ``--method`` (None: checked later)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--verbose", action="store_true",
                   help="also print other libraries' INFO lines (faiss, dvclive); same as GENREID_VERBOSE=1")
    if per_dataset:
        p.add_argument("--dataset", required=True, help="dataset name from params 'datasets'")
    if per_method:
        p.add_argument("--method", required=True, choices=method_choices, help="method name")
    return p


def apply_runtime(cfg: GenreidConfig) -> None:
    import torch

    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)


def is_main_process() -> bool:
    """Rank 0 under ``torchrun`` (which sets ``RANK``), or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def launch_plan(cfg: GenreidConfig) -> LaunchPlan:
    r = cfg.runtime
    return LaunchPlan(r.nproc_per_node, r.nnodes, r.node_rank, r.master_addr, r.master_port)


def run_stage(body: Callable[[GenreidConfig, argparse.Namespace], Path | None], parser: argparse.ArgumentParser,
              argv: list[str] | None = None, *, trainer: bool = False) -> int:
    """Validate params first (fail within seconds), then run ``body``; user errors exit 2, Ctrl-C exits 130 with
    one line saying where a rerun continues, and a params file edited while the stage ran is an error.

    ``body`` returns the folder of its outputs' resolved config (None: it writes none); the runner writes
    ``config.resolved.yaml`` there once, on rank 0, after the body finished and only when params.yaml is
    still what the stage read (a config written from changed params would describe outputs wrongly).

    A ``trainer`` asked for several processes (``runtime.nproc_per_node`` or ``runtime.nnodes``
    above 1) runs its own script again under torchrun instead (:mod:`genreid.utils.launch`)."""
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    args.params_sha256 = params_digest(args.params)  # what this stage read; compared again before it ends
    try:
        # The cap first, before the stage imports anything: OpenBLAS and faiss read the cap's variables
        # when they load, torch's libraries when they first run a kernel (genreid.utils.isa).
        early_cap = requested_cap(args.params)
        apply_cpu_isa_cap(early_cap)
        cfg = load_config(args.params)
        ds = getattr(args, "dataset", None)
        if ds is not None and ds not in cfg.datasets and ds != cfg.warmup.source_dataset:
            raise GenreidError(f"dataset {ds!r} is not listed in {args.params} 'datasets' {cfg.datasets} "
                               "(nor is it warmup.source_dataset)",
                               "add it to 'datasets' or run a stage of a listed dataset")
        if trainer and needs_launch(launch_plan(cfg)):
            return launch(launch_plan(cfg), inspect.getfile(body), sys.argv[1:] if argv is None else list(argv))
        if cfg.runtime.cpu_isa_cap != early_cap:  # inherited from a _base_ recipe: only known now
            apply_cpu_isa_cap(cfg.runtime.cpu_isa_cap)  # before torch runs any kernel; warns about the rest
        apply_runtime(cfg)
        resolved = body(cfg, args)
        require_params_unchanged(args)
        if resolved is not None and is_main_process():
            write_resolved_config(cfg, resolved)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        resume = exc.resume if isinstance(exc, Interrupted) else "rerun it (`dvc repro`) to run it again"
        print(f"genreid: interrupted: {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
