"""The ``genreid`` command: doctor, config, recipe, import-authors, evaluate.

Every subcommand is described in docs/usage.md#the-genreid-command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.errors import GenreidError


def _cmd_doctor(args: argparse.Namespace) -> int:
    from genreid.doctor import run_doctor

    return run_doctor(args.params)


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from genreid.config import load_config

    load_config(args.params)
    print(f"{args.params}: valid")
    return 0


def _cmd_recipe_apply(args: argparse.Namespace) -> int:
    from genreid.config.loader import dump_yaml, resolve_recipe
    from genreid.utils.atomic import write_text

    tree = resolve_recipe(args.recipe)
    header = f"# Resolved from {args.recipe} by `genreid recipe apply`; edit the recipe or use dvc exp run -S.\n"
    write_text(args.out, header + dump_yaml(tree))
    print(f"wrote {args.out} from {args.recipe}")
    return 0


def _cmd_recipe_deviations(args: argparse.Namespace) -> int:
    from genreid.config.deviations import DEVIATIONS, flatten, kept, matches
    from genreid.config.loader import resolve_recipe

    tree = resolve_recipe(args.recipe)
    flat, rows = flatten(tree), kept(tree)
    print(f"{args.recipe} keeps {len(rows)} of {sum(bool(d.authors) for d in DEVIATIONS)} switchable differences "
          "from the authors' code (params/README.md, 'Deviations'):")
    for d in rows:
        keys = ", ".join(f"{k}={flat.get(k)!r} (authors: {v})" for k, v in d.authors.items()
                         if not matches(v, flat.get(k)))
        print(f"  {d.topic} [{d.source}]: {keys}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from genreid.evaluation.cli import run_evaluate_cli

    return run_evaluate_cli(args)


def _pipeline_outputs() -> set[str]:
    """Paths the DVC pipeline in the working folder writes (none outside a genreid repository)."""
    from genreid.config.loader import read_yaml
    from genreid.pipeline.dvc_stages import pipeline_outputs

    if not (Path("dvc.yaml").is_file() and Path("params.yaml").is_file()):
        return set()
    try:
        return pipeline_outputs(Path("dvc.yaml"), read_yaml(Path("params.yaml").read_text()) or {})
    except (GenreidError, OSError, ValueError) as exc:
        raise GenreidError(f"cannot tell which files the pipeline writes ({exc})",
                           "fix params.yaml / dvc.yaml first (`genreid config validate params.yaml`), or run "
                           "import-authors outside the repository") from None


def _cmd_import_authors(args: argparse.Namespace) -> int:
    from genreid.models.authors_import import import_authors

    summary = import_authors(args.id, args.out, args.gen, args.dis, force=args.force, tracked=_pipeline_outputs())
    print(f"imported the {summary['source']}:")
    for net in summary["networks"]:
        print(f"  {net['network']}: {net['mapped']} tensors mapped")
        for verb in ("dropped", "filled"):
            for why, keys in net[verb].items():
                shown = ", ".join(keys[:2]) + (f", ... ({len(keys)} in all)" if len(keys) > 2 else "")
                print(f"    {verb} {shown}: {why}")
    for path in summary["written"]:
        print(f"wrote {path}")
    return 0


DESCRIPTION = ("Reproduction harness for GCL / GCL+ unsupervised person re-identification. The pipeline itself "
               "runs with `dvc repro`; these commands check, configure and evaluate. Guide: docs/usage.md.")


def _version() -> str:
    """The installed distribution's version, or the source tree's when run without installing."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("genreid")
    except PackageNotFoundError:
        from genreid import __version__

        return __version__


class _Formatter(argparse.HelpFormatter):
    """argparse's wrapping, without breaking at hyphens, so page#section references stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(self._whitespace_matcher.sub(" ", text).strip(), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genreid", description=DESCRIPTION, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="one of the commands below; `genreid COMMAND --help` lists its arguments")

    d = sub.add_parser("doctor", formatter_class=_Formatter, help="check the environment, datasets and model files")
    d.add_argument("--params", default="params.yaml", help="params file whose datasets and model files are checked "
                                                           "(default: params.yaml)")
    d.set_defaults(func=_cmd_doctor)

    c = sub.add_parser("config", formatter_class=_Formatter, help="params utilities")
    csub = c.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND",
                            help="the subcommand below")
    cv = csub.add_parser("validate", formatter_class=_Formatter, help="validate a params file")
    cv.add_argument("params", nargs="?", default="params.yaml",
                    help="params file to check against the schema (default: params.yaml)")
    cv.set_defaults(func=_cmd_config_validate)

    r = sub.add_parser("recipe", formatter_class=_Formatter, help="recipes under params/")
    rsub = r.add_subparsers(dest="recipe_command", required=True, metavar="SUBCOMMAND",
                            help="one of the subcommands below")
    ra = rsub.add_parser("apply", formatter_class=_Formatter, help="resolve a recipe into params.yaml")
    ra.add_argument("recipe", help="recipe file, e.g. params/market1501.yaml (listed in params/README.md)")
    ra.add_argument("--out", default="params.yaml", help="where the resolved tree is written (default: params.yaml)")
    ra.set_defaults(func=_cmd_recipe_apply)
    rd = rsub.add_parser("deviations", formatter_class=_Formatter,
                         help="list the differences from the authors' code a recipe keeps")
    rd.add_argument("recipe", nargs="?", default="params.yaml",
                    help="recipe or resolved params file (default: params.yaml)")
    rd.set_defaults(func=_cmd_recipe_deviations)

    ia = sub.add_parser("import-authors", formatter_class=_Formatter,
                        help="convert the authors' checkpoints into encoder.pt / generator.pt",
                        description="Convert the authors' checkpoints (docs/method.md#the-authors-checkpoint-files): a "
                                    "stage-1 ft_net (JVTC file) or id_*.pt into DIR/encoder.pt; with gen_*.pt and "
                                    "dis_*.pt also DIR/generator.pt. Every key is mapped or dropped for a stated "
                                    "reason; any other mismatch is listed and nothing is written.")
    ia.add_argument("--id", required=True, help="identity encoder: JVTC stage-1 .pth or the trainer's id_*.pt")
    ia.add_argument("--gen", help="the trainer's gen_*.pt (AdaINGen); needs --dis")
    ia.add_argument("--dis", help="the trainer's dis_*.pt (MsImageDis); needs --gen")
    ia.add_argument("--out", required=True, help="folder for encoder.pt (and generator.pt); never a pipeline "
                                                 "output such as models/<ds>/baseline/")
    ia.add_argument("--force", action="store_true", help="replace encoder.pt / generator.pt already in --out")
    ia.set_defaults(func=_cmd_import_authors)

    e = sub.add_parser("evaluate", formatter_class=_Formatter, help="metrics from features or a distance matrix")
    try:
        from genreid.evaluation.cli import add_evaluate_arguments

        add_evaluate_arguments(e)
    except ImportError:  # evaluation package not installed yet in a partial checkout
        pass
    e.set_defaults(func=_cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genreid: interrupted; nothing was written (files are replaced only when complete)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
