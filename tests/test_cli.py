"""The ``genreid`` command: its version, and a help text for every argument of every command."""

from __future__ import annotations

import argparse

import pytest

from genreid import __version__
from genreid.cli import build_parser, main


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"genreid {__version__}"


def _parsers(parser: argparse.ArgumentParser, name: str = "genreid"):
    yield name, parser
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk of subparsers
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_argument_has_help():
    missing = [f"{name}: {action.dest}" for name, parser in _parsers(build_parser())
               for action in parser._actions  # noqa: SLF001
               if not isinstance(action, argparse._HelpAction) and not action.help]  # noqa: SLF001
    assert not missing, "arguments without a help text: " + ", ".join(missing)


def test_every_command_is_in_the_usage_guide():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    commands = [name for name, parser in _parsers(build_parser())
                if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]  # noqa: SLF001
    assert len(commands) == 6
    assert all(f"`{name}" in guide for name in commands), commands
