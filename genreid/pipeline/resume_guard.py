"""Keep a training stage's persisted checkpoints only while what it computes from is unchanged.

DVC keeps ``persist: true`` folders (checkpoints, dvclive logs) between runs so that a killed
stage resumes. The trainers resume from whatever checkpoint they find, so after a change of
seed, params, code or upstream files they would silently continue the old run. dvc.yaml
therefore runs ``python -m genreid.pipeline.resume_guard <folders> --inputs <paths>`` before
each trainer. The guard

1. validates params.yaml first and touches nothing when it is invalid (a typo never wipes a run), then
   checks that every input exists and every model file among them loads intact (its content hash);
2. fingerprints exactly what DVC tracks for the stage: the param keys its dvc.yaml entry lists
   (``runtime`` excepted: threads or workers never change what is computed; an instruction-set cap
   does, so a cap other than ``off`` counts), the files of its
   code dependencies, and the ``--inputs`` (folders by the content of every file in them);
3. empties the folders only when that fingerprint differs from the one stored in the first.

A rerun after a kill, or after an edit to a param the stage does not read (``train.epochs`` for
the warm-up), has the same fingerprint and resumes. The stage is found in dvc.yaml from the
guard's own command line (or given with ``--stage warmup@synthetic``).
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
from typing import Any

from genreid.errors import GenreidError
from genreid.pipeline.dvc_stages import StageSpec, load_stages, stage_for_folder
from genreid.utils.atomic import write_json
from genreid.utils.console import configure_logging
from genreid.utils.isa import computing_runtime

SIGNATURE_FILE = "resume_signature.json"
MODULE = "genreid.pipeline.resume_guard"
# Params that never change what a trainer computes (so a kill + rerun after editing them resumes).
IGNORED_SECTIONS: tuple[str, ...] = ("runtime",)
# Without a dvc.yaml stage to read (``code_roots``): every section but these counts.
UNREAD_BY_TRAINERS: tuple[str, ...] = ("runtime", "report", "eval")
CODE_ROOTS: tuple[str, ...] = ("genreid", "stages")
HASH_CACHE = Path(".dvc") / "tmp" / "genreid-resume-guard-hashes.json"
log = logging.getLogger(__name__)


def _file_digest(path: Path, cache: dict[str, Any]) -> str:
    """sha256 of a file; unchanged files (same size, mtime, inode) reuse the cached digest, as DVC's
    own state database does, so a multi-GB render folder is read once, not at every rerun."""
    st = path.stat()
    key, stamp = str(path.absolute()), [st.st_size, st.st_mtime_ns, st.st_ino]
    hit = cache.get(key)
    if hit and hit[:3] == stamp:
        return hit[3]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    cache[key] = [*stamp, h.hexdigest()]
    return h.hexdigest()


def _tree_digest(item: Path, cache: dict[str, Any], code: bool = False) -> str:
    """One digest of a file, or of a folder's relative file names and contents (DVC's .dir idea)."""
    if item.is_dir():
        files = sorted(p for p in item.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        if code:
            files = [p for p in files if p.suffix not in (".pyc", ".pyo")]
    elif item.is_file():
        files = [item]
    else:
        raise GenreidError(f"input {item} of this stage is missing", "run the upstream stage first")
    h = hashlib.sha256()
    for path in files:
        rel = path.relative_to(item).as_posix() if item.is_dir() else path.name
        h.update(rel.encode() + b"\0" + _file_digest(path, cache).encode() + b"\n")
    return h.hexdigest()


def param_values(cfg_tree: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The values of the stage's param keys (dotted), ``runtime`` left out."""
    out: dict[str, Any] = {}
    for key in keys:
        if key.split(".")[0] in IGNORED_SECTIONS:
            continue
        node: Any = cfg_tree
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise GenreidError(f"dvc.yaml lists param {key!r}, which params.yaml does not define",
                                   "fix the stage's params list in dvc.yaml")
            node = node[part]
        out[key] = node
    return out


def params_digest(stage: StageSpec, cfg_tree: dict[str, Any]) -> str:
    """sha256 of the stage's param values (:func:`param_values`) and, when it lists ``runtime``, the
    runtime keys that change what is computed (the instruction-set cap); the guard stores it and the
    stage checks it again at its start (:func:`confirm_kept_for`)."""
    params = param_values(cfg_tree, stage.params)
    if any(key.split(".")[0] == "runtime" for key in stage.params):
        params.update({f"runtime.{k}": v for k, v in computing_runtime(cfg_tree.get("runtime")).items()})
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def code_deps(stage: StageSpec) -> list[str]:
    """The stage's dependencies that are code (under genreid/ or stages/); data deps are --inputs."""
    return sorted(d for d in stage.deps if Path(d).parts[:1] and Path(d).parts[0] in CODE_ROOTS)


def signature(stage: StageSpec, cfg_tree: dict[str, Any], inputs: Iterable[Path], cache: dict[str, Any],
              code: Iterable[str] | None = None) -> dict[str, str]:
    """Hashes of the stage's params, its code dependencies and each input (file or folder)."""
    out = {"stage": stage.name, "params": params_digest(stage, cfg_tree)}
    code_hash = hashlib.sha256()
    for dep in sorted(code_deps(stage) if code is None else code):
        path = Path(dep)
        code_hash.update(dep.encode() + b"\0" + (_tree_digest(path, cache, code=True) if path.exists()
                                                 else "missing").encode())
    out["code"] = code_hash.hexdigest()
    for item in inputs:
        out[f"input:{item.as_posix()}"] = _tree_digest(item, cache)
    return out


def check_inputs(inputs: Iterable[Path]) -> None:
    """Every input exists, and every model file among them loads and matches its stored content hash, before
    anything is removed: a missing or damaged upstream file must not cost the checkpoints of a run."""
    from genreid.utils.integrity import verify_sealed
    from genreid.utils.safe_load import load_weights_only

    for item in inputs:
        if not item.exists():
            raise GenreidError(f"input {item} of this stage is missing",
                               "run the upstream stage first (`dvc repro` runs it), or `dvc checkout` it")
        if item.is_file() and item.suffix == ".pt":
            fix = "rerun the stage that writes it (`dvc repro --force <stage>`)"
            verify_sealed(load_weights_only(item, "input", fix), item, "input")


def _empty(folder: Path) -> int:
    removed = 0
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        removed += 1
    return removed


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def guard(folders: list[Path], inputs: list[Path], params_path: Path = Path("params.yaml"),
          code_roots: Iterable[Path] | None = None, *, stage: str | None = None, dvc_yaml: Path = Path("dvc.yaml"),
          hash_cache: Path | None = HASH_CACHE) -> bool:
    """Empty ``folders`` unless they were written under the same signature; True when they were kept.

    Params are validated before anything is read or removed: an invalid file raises ConfigError
    and leaves every checkpoint where it is. ``code_roots`` (no dvc.yaml: a trainer run by hand)
    fingerprints all params but ``runtime``, ``report`` and ``eval``, and every file under those folders,
    instead of the stage's own keys and code dependencies."""
    from genreid.config import load_config
    from genreid.config.loader import read_yaml

    cfg = load_config(params_path)  # raises before any folder is touched
    check_inputs(inputs)  # so does a missing or damaged input
    tree = cfg.model_dump(mode="json")
    code: list[str] | None = None
    if code_roots is not None and stage is None:
        # runtime listed so that its result-changing keys (the cap) count, as for a dvc.yaml trainer
        spec = StageSpec("<all params>", (), (*(k for k in tree if k not in UNREAD_BY_TRAINERS), "runtime"), ())
        code = [str(r) for r in code_roots]
    else:
        stages = load_stages(dvc_yaml, read_yaml(Path(params_path).read_text()))
        if stage is not None and stage not in stages:
            raise GenreidError(f"stage {stage!r} is not in {dvc_yaml} (stages: {', '.join(stages)})",
                               "pass --stage as `dvc status` spells it, e.g. warmup@synthetic")
        spec = stages[stage] if stage else stage_for_folder(stages, folders[0], MODULE)
    cache = _load_cache(hash_cache) if hash_cache else {}
    current = signature(spec, tree, inputs, cache, code)
    if hash_cache and hash_cache.parent.is_dir():
        write_json(hash_cache, cache)
    marker = folders[0] / SIGNATURE_FILE
    earlier = marker.is_file()
    try:
        kept = json.loads(marker.read_text()) == current
    except (OSError, ValueError):
        kept = False
    if not kept:
        why = (f"{spec.name}'s params, code or inputs changed since the earlier run" if earlier
               else f"no earlier run of {spec.name} recorded in {folders[0]}")
        for folder in folders:
            if folder.is_dir() and _empty(folder):
                log.info("resume guard: %s: emptied %s", why, folder)
        write_json(marker, current)
    return kept


def outcome(kept: bool, had_earlier_run: bool, folder: Path) -> str:
    """The guard's one console line: resuming, a fresh workspace, or a changed stage."""
    if kept:
        return f"resume guard: resuming from {folder}"
    if had_earlier_run:
        return f"resume guard: params, code or inputs changed since the earlier run: fresh start in {folder}"
    return f"resume guard: no earlier run: fresh start in {folder}"


def confirm_kept_for(folder: Path, cfg_tree: dict[str, Any], dvc_yaml: Path = Path("dvc.yaml")) -> None:
    """Refuse to resume when the params the stage read differ from those the guard kept ``folder`` for.

    The guard and the stage are two commands; an edit of params.yaml between them would resume
    checkpoints of one setting under another. Nothing to check without a signature or a dvc.yaml
    (a trainer run by hand)."""
    marker = Path(folder) / SIGNATURE_FILE
    if not marker.is_file() or not Path(dvc_yaml).is_file():
        return
    try:
        stored = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    spec = load_stages(dvc_yaml, cfg_tree).get(str(stored.get("stage")))
    if spec is None or "params" not in stored:
        return
    if params_digest(spec, cfg_tree) != stored["params"]:
        raise GenreidError(f"params.yaml changed between the resume guard and {spec.name}: the checkpoints in "
                           f"{folder} were kept for other settings than this stage read; nothing was trained",
                           "put back the settings you meant, or rerun `dvc repro` (the guard then starts afresh "
                           "for the new settings); run experiments beside a running repro with `dvc exp run "
                           "--temp` or `dvc queue`")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="persisted folders; the signature lives in the first")
    p.add_argument("--inputs", nargs="*", type=Path, default=[], help="upstream files or folders the stage reads")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--stage", default=None, help="dvc.yaml stage (e.g. warmup@synthetic); default: the stage "
                                                 "whose command runs this guard on the first folder")
    p.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    args = p.parse_args(argv)
    configure_logging(timestamps=False)
    had_earlier_run = (args.folders[0] / SIGNATURE_FILE).is_file()
    try:
        kept = guard(args.folders, args.inputs, args.params, stage=args.stage, dvc_yaml=args.dvc_yaml)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        print(f"resume guard: nothing was removed from {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    print(outcome(kept, had_earlier_run, args.folders[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
