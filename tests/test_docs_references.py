"""Every page and section the repository points a reader at exists, and no text a user reads cites
an internal issue number.

Checked: Markdown links (``[text](path#section)``) in every ``*.md`` file, and every bare
``name.md`` / ``path/name.md#section`` mention in Markdown, code, recipes, CI scripts and the
``genreid`` help texts. A section must match a heading of the target page under GitHub's anchor
rule (lower case, punctuation dropped, spaces to hyphens, ``-1`` for repeats).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from genreid.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".cfg", ".txt"}
EXTRA_FILES = {".ci/run", "Makefile"}
# Verbatim copies of a run's generated report, kept as the record of that run: their links point
# into the run's own workspace, which is not part of the copy.
ARCHIVED_REPORTS = ("results/uda/synthetic_to_synthetic_b/",)

MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
BARE_MD = re.compile(r"(?<![\w/.<>*-])((?:[\w.-]+/)*[\w.-]+\.md)(?!\w)(#[\w-]+)?")
ISSUE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)


def _files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    paths = []
    for rel in out:
        path = ROOT / rel
        if rel and path.is_file() and (path.suffix in TEXT_SUFFIXES or rel in EXTRA_FILES):
            if rel.startswith(ARCHIVED_REPORTS) or path == THIS:
                continue
            if not rel.startswith(("results/", "sources/")) or rel.endswith(".md"):
                paths.append(path)
    return sorted(set(paths))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).lower()  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def is_reference(name: str) -> bool:
    """A bare ``*.md`` mention meant for the reader: a page under a top-level folder of the repository
    or a root-level page in capitals (README.md, BENCHMARKS.md; also names of pages that do not exist).
    Lower-case names without such a folder are files a stage writes (``difficulty.md``)."""
    first = name.split("/")[0]
    return first in {"docs", "params", "results", "genreid", "benchmarks", "tests", "..", "."} or \
        (first == name and first[:-3].isupper())


def _check(target: str, anchor: str | None, bases: list[Path]) -> str | None:
    """None when ``target`` (relative to one of ``bases``) exists and has ``anchor``; else why not."""
    for base in bases:
        path = (base / target).resolve() if target else None
        if path is not None and path.exists():
            if anchor and path.suffix == ".md" and anchor not in anchors(path):
                return f"{target}#{anchor}: no such section (sections: {sorted(anchors(path))})"
            return None
    return f"{target}: no such file"


def _help_texts() -> dict[str, str]:
    """Description and argument help of ``genreid`` and every subcommand, as written (unwrapped)."""
    texts: dict[str, str] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        parts = [parser.description or "", parser.epilog or ""]
        for action in parser._actions:  # noqa: SLF001 - argparse has no public walk of its arguments
            parts.append(action.help or "")
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                parts += [choice.help or "" for choice in action._choices_actions]  # noqa: SLF001
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
        texts[name] = "\n".join(parts)

    walk(build_parser(), "genreid")
    return texts


def _problems() -> list[str]:
    problems = []
    for path in _files():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        bases = [path.parent, ROOT] if path.suffix == ".md" else [ROOT, path.parent]
        if path.suffix == ".md":
            for raw in MD_LINK.findall(text):
                if re.match(r"[a-z]+:", raw):  # http(s), mailto
                    continue
                target, _, anchor = raw.partition("#")
                why = (_check(target, anchor or None, [path.parent]) if target
                       else None if anchor in anchors(path) else f"#{anchor}: no such section in this page")
                if why:
                    problems.append(f"{rel}: link {raw}: {why}")
        for name, anchor in BARE_MD.findall(text):
            if not is_reference(name):
                continue
            why = _check(name, anchor[1:] or None, bases)
            if why:
                problems.append(f"{rel}: mention {name}{anchor}: {why}")
        for m in ISSUE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: cites {m.group(0)!r}, an internal issue number")
    for name, text in _help_texts().items():
        for target, anchor in BARE_MD.findall(text):
            why = _check(target, anchor[1:] or None, [ROOT])
            if why:
                problems.append(f"`{name} --help`: mention {target}{anchor}: {why}")
        if ISSUE.search(text):
            problems.append(f"`{name} --help` cites an issue number")
    return problems


def test_every_reference_resolves_and_no_issue_numbers():
    problems = _problems()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("heading, expected", [
    ("Stage-1 baseline: Cluster Contrast", "stage-1-baseline-cluster-contrast"),
    ("GCL+ additions", "gcl-additions"),
    ("Identity encoder (E_id)", "identity-encoder-e_id"),
    ("`runtime`", "runtime"),
    ("Deviations from the authors' code", "deviations-from-the-authors-code"),
])
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_checker_catches_a_broken_reference(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n")
    assert _check("page.md", "a-section", [tmp_path]) is None
    assert "no such section" in _check("page.md", "missing", [tmp_path])
    assert "no such file" in _check("other.md", None, [tmp_path])
    assert ISSUE.search("as issue 18 asked") and not ISSUE.search("the tissue 18 cells")
    assert is_reference("METHOD.md") and is_reference("docs/usage.md") and not is_reference("difficulty.md")
    assert BARE_MD.findall("hashlib.md5(x) and docs/usage.md#library-use") == [("docs/usage.md", "#library-use")]


def test_help_texts_are_read():
    texts = _help_texts()
    assert {"genreid", "genreid import-authors", "genreid recipe apply", "genreid evaluate"} <= set(texts)
    assert "docs/method.md#the-authors-checkpoint-files" in texts["genreid import-authors"]
