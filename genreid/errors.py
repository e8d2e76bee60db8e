"""One exception type for problems a user can fix.

Every message names the file, key or value at fault and says what to do; stages catch
:class:`GenreidError`, print it without a traceback and exit with code 2.
"""

from __future__ import annotations


class GenreidError(Exception):
    """A problem with the user's input, environment or configuration (not a bug)."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class ConfigError(GenreidError):
    """Invalid params: unknown key, wrong type or out-of-range value."""


class DataError(GenreidError):
    """A dataset is missing, incomplete or corrupt."""


class CheckpointError(GenreidError):
    """A checkpoint is missing, corrupt or does not match the model."""


class TrainingDiverged(GenreidError):
    """A loss or parameter became NaN/Inf; the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a stage, with the one line that says where a rerun continues from."""

    def __init__(self, resume: str):
        self.resume = resume
        super().__init__(resume)
