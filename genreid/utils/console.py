"""What a stage prints: genreid's own progress and summaries, other libraries' warnings only.

Libraries log chatty INFO lines (faiss announces every optional CPU build it fails to load, with
a ``ModuleNotFoundError`` that reads like a failure). The root logger therefore stays at WARNING
and only the ``genreid`` loggers speak at INFO; ``--verbose`` on a stage, or ``GENREID_VERBOSE=1``
in the environment (``GENREID_VERBOSE=1 dvc repro``), lets every library's INFO lines through.
``GENREID_LOG`` sets genreid's own level (DEBUG, INFO, WARNING).
"""

from __future__ import annotations

import logging
import os
import sys

VERBOSE_ENV = "GENREID_VERBOSE"
LEVEL_ENV = "GENREID_LOG"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def verbose_from_env() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in TRUE_WORDS


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not to the stream current when the
    handler was made: a stage run in-process (tests, notebooks) may have replaced and closed that one."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - logging.StreamHandler's attribute, resolved at each use
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def configure_logging(verbose: bool = False, *, timestamps: bool = True) -> None:
    """Root logger at WARNING (INFO when verbose), ``genreid`` at ``GENREID_LOG`` (default INFO).

    Replaces any handler set earlier, so calling it twice (a stage, then its resume guard in the
    same process) never prints a line twice."""
    verbose = verbose or verbose_from_env()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=fmt, datefmt="%H:%M:%S",
                        force=True, handlers=[CurrentStderrHandler()])
    logging.getLogger("genreid").setLevel(os.environ.get(LEVEL_ENV, "INFO").upper())
