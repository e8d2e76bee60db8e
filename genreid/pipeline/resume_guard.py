"""Keep a training stage's persisted checkpoints only while its inputs are unchanged.

DVC keeps ``persist: true`` folders (checkpoints, dvclive logs) between runs so that a killed
stage resumes. The trainers resume from whatever checkpoint they find, so after a change of
seed, params, code or upstream files they would silently continue the old run. dvc.yaml
therefore runs ``python -m genreid.pipeline.resume_guard <folders> --inputs <files>`` before
each trainer: it stores a signature of (params.yaml without runtime/report/eval, every .py file
of genreid/ and stages/, the listed input files) in the first folder and empties the folders
when the signature differs. A rerun after a kill has the same signature and resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

import ruamel.yaml as ruamel_yaml

from genreid.config.loader import read_yaml
from genreid.errors import GenreidError
from genreid.utils.atomic import write_json

SIGNATURE_FILE = "resume_signature.json"
# Params that never change what a trainer computes (so a kill + rerun after editing them resumes).
IGNORED_SECTIONS: tuple[str, ...] = ("runtime", "report", "eval")
CODE_ROOTS: tuple[str, ...] = ("genreid", "stages")
log = logging.getLogger(__name__)


def _sha(h: hashlib._Hash, path: Path) -> None:
    h.update(path.as_posix().encode() + b"\0")
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def signature(params_path: Path, inputs: Iterable[Path], code_roots: Iterable[Path]) -> dict[str, str]:
    """Hashes of the params that matter, the code, and each input file (folders: every file inside)."""
    try:
        params = read_yaml(params_path.read_text()) or {}
    except (OSError, ruamel_yaml.YAMLError) as exc:
        raise GenreidError(f"cannot read {params_path} ({exc})", "run the stage from the repository root") from exc
    for section in IGNORED_SECTIONS:
        params.pop(section, None)
    out = {"params": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()}
    code = hashlib.sha256()
    for root in code_roots:
        for path in sorted(Path(root).rglob("*.py")):
            _sha(code, path)
    out["code"] = code.hexdigest()
    for item in inputs:
        h = hashlib.sha256()
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for path in files:
            if not path.is_file():
                raise GenreidError(f"input {path} of this stage is missing", "run the upstream stage first")
            _sha(h, path)
        out[f"input:{item.as_posix()}"] = h.hexdigest()
    return out


def _empty(folder: Path) -> int:
    removed = 0
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        removed += 1
    return removed


def guard(folders: list[Path], inputs: list[Path], params_path: Path = Path("params.yaml"),
          code_roots: Iterable[Path] = tuple(Path(r) for r in CODE_ROOTS)) -> bool:
    """Empty ``folders`` unless they were written under the same signature; True when they were kept."""
    current = signature(params_path, inputs, code_roots)
    marker = folders[0] / SIGNATURE_FILE
    try:
        kept = json.loads(marker.read_text()) == current
    except (OSError, ValueError):
        kept = False
    if not kept:
        for folder in folders:
            if folder.is_dir() and _empty(folder):
                log.info("resume guard: inputs changed, starting %s afresh", folder)
        write_json(marker, current)
    return kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="persisted folders; the signature lives in the first")
    p.add_argument("--inputs", nargs="*", type=Path, default=[], help="upstream files the stage reads")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    try:
        kept = guard(args.folders, args.inputs, args.params)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return 2
    print(f"resume guard: {'resuming from' if kept else 'fresh start in'} {args.folders[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
