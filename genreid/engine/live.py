"""dvclive for the generator and joint trainers: per-epoch metrics and image sheets.

dvclive is told not to touch ``dvc.yaml`` (the pipeline file declares the plots) and not to
create DVC experiments: the stages run under ``dvc repro`` and their outputs are the record.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dvclive import Live


def open_live(folder: str | Path, resume: bool) -> Live:
    """A Live logger in ``folder``; ``resume`` continues the step count of a resumed run."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    logging.getLogger("dvclive").setLevel(logging.WARNING)
    return Live(dir=str(folder), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
