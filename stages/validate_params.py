"""DVC stage ``validate_params``: params.yaml must validate, even when no stage reads the edited key.

DVC reruns a stage only when a param it lists changes, so a misspelt top-level key (``seeed: 2``)
or an emptied params.yaml would otherwise pass every ``dvc repro`` silently. This stage depends
on params.yaml as a file (any edit reruns it) and on the schema code; it fails with the message
naming the key and value, and on success writes a file whose bytes never change, so nothing
downstream (nothing depends on it) ever reruns because of it.

Usage: python stages/validate_params.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import sys

from genreid.config import GenreidConfig
from genreid.layout import RESULTS
from genreid.stage import run_stage, stage_parser
from genreid.utils.atomic import write_json

OUT = RESULTS / "params_check.json"


def main(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    """``run_stage`` has already validated the file (and exits 2 with the message when invalid)."""
    write_json(OUT, {"file": str(args.params), "valid": True})
    print(f"{args.params}: valid")


if __name__ == "__main__":
    sys.exit(run_stage(main, stage_parser(__doc__.splitlines()[0], per_dataset=False)))
