"""Two settings groups of the seed archive compared method by method, paired by seed.

The report averages only the runs of the current settings; an ablation that changes one key (the
meshes GCL reads, for instance) files its seeds in a group of its own. This module puts such a group
beside another one: for each method both ran, the mean of each and the paired difference with its 95 %
interval over the seeds both ran (both runs of a seed share the warm-up encoder, so pairing removes
the warm-up's share of the seed-to-seed spread). Usable without the pipeline::

    python -m genreid.report.groups --archive results/seeds --dataset synthetic \\
        --a <fingerprint> --b <fingerprint> --methods gcl gcl_plus --out comparison.md
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from genreid.errors import GenreidError
from genreid.report import claims
from genreid.report.seeds import collect_runs, settings_groups
from genreid.report.tables import Gain, ResultRow, build_row, paired_gains
from genreid.utils.atomic import write_text

METRICS = ("mAP", "R1", "mINP")


@dataclass(frozen=True)
class GroupPair:
    """Method ``method`` under settings ``a`` and ``b`` (fingerprints) with ``b - a`` paired by seed."""
    method: str
    a: ResultRow
    b: ResultRow
    gains: dict[str, Gain]


def compare_groups(archive: str | os.PathLike, dataset: str, methods: list[str], a: str, b: str) -> list[GroupPair]:
    """``b`` minus ``a`` for every method of ``methods`` that both groups ran with at least one common seed."""
    pairs = []
    for method in methods:
        known = settings_groups(archive, dataset, method)
        for fp in (a, b):
            if fp not in known:
                raise GenreidError(f"{Path(archive) / dataset / method}: no settings group {fp}",
                                   f"groups found: {', '.join(sorted(known)) or 'none'}")
        rows = [build_row(dataset, method, fp, collect_runs(archive, dataset, method, fp)[0], {}, 1.0)
                for fp in (a, b)]
        gains = paired_gains(rows[1], rows[0], METRICS)
        if gains:
            pairs.append(GroupPair(method, rows[0], rows[1], gains))
    return pairs


def render_markdown(pairs: list[GroupPair], label_a: str, label_b: str) -> list[str]:
    """A table: per method, each group's mean ± std (its seeds) and the paired difference with its interval."""
    lines = [f"| method | metric | {label_a} | {label_b} | {label_b} - {label_a}, paired 95 % CI | seeds "
             f"{label_b} ahead | verdict |", "|---|---|---|---|---|---|---|"]
    for p in pairs:
        for m, g in p.gains.items():
            lines.append(f"| {p.method} | {m} | {p.a.stats[m].format()} (seeds {_seeds(p.a)}) | "
                         f"{p.b.stats[m].format()} (seeds {_seeds(p.b)}) | {g.format()} | {g.wins} of "
                         f"{g.stat.n} | {g.verdict} |")
    return lines


def paired_recipe_section(archive: str | os.PathLike, dataset: str, methods: list[str], current: str,
                          recipes: list[str]) -> list[str]:
    """Markdown for results/README.md: each archived group of the listed recipes that shares at least two
    seeds with the current settings, paired with them (group minus current)."""
    lines: list[str] = []
    known = {m: settings_groups(archive, dataset, m) for m in methods} if recipes else {}
    for recipe in recipes:
        groups = {fp for by_fp in known.values() for fp, g in by_fp.items() if g["recipe"] == recipe and fp != current}
        for fp in sorted(groups):
            ran = [m for m in methods if fp in known[m]]
            pairs = [p for p in compare_groups(archive, dataset, ran, current, fp) if p.gains["mAP"].stat.n >= 2]
            if pairs:
                lines += [f"### {dataset}: recipe `{recipe}` (settings `{fp}`) against these settings", "",
                          *render_markdown(pairs, "these settings", recipe), "", *own_claims(archive, dataset, ran,
                                                                                             fp, recipe)]
    if lines:
        lines = ["## Other recipes, paired by seed", "",
                 "Archived settings groups named in `report.paired_recipes`, method by method against the "
                 "current settings over the seeds both ran (each seed's runs share their warm-up encoder where "
                 "the recipe does not change it).", "", *lines]
    return lines


def own_claims(archive: str | os.PathLike, dataset: str, methods: list[str], fingerprint: str,
               recipe: str) -> list[str]:
    """The claims judged on a group's own seeds (its methods paired with each other), so that its verdicts
    stand beside the current settings' ones."""
    rows = [build_row(dataset, m, "unsupervised", collect_runs(archive, dataset, m, fingerprint)[0], {}, 1.0)
            for m in methods]
    found = claims.comparisons([r for r in rows if r.seeds])
    lines = claims.claim_lines(found) + claims.realised_share(found)
    return [f"Claims on the seeds of `{recipe}` alone:", "", *lines, ""] if lines else []


def _seeds(row: ResultRow) -> str:
    return ", ".join(map(str, row.seeds))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default="results/seeds", help="the seed archive folder")
    p.add_argument("--dataset", required=True, help="dataset name, a folder of the archive")
    p.add_argument("--a", required=True, help="fingerprint of the reference settings group")
    p.add_argument("--b", required=True, help="fingerprint of the compared settings group")
    p.add_argument("--label-a", default=None, help="column title of group a (default: its fingerprint)")
    p.add_argument("--label-b", default=None, help="column title of group b (default: its fingerprint)")
    p.add_argument("--methods", nargs="+", required=True, help="methods to compare")
    p.add_argument("--out", default=None, help="write the markdown table here (default: print it)")
    args = p.parse_args(argv)
    try:
        pairs = compare_groups(args.archive, args.dataset, args.methods, args.a, args.b)
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return 2
    text = "\n".join(render_markdown(pairs, args.label_a or args.a, args.label_b or args.b)) + "\n"
    if args.out:
        write_text(args.out, text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
