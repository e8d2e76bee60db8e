"""Deterministic fault injection for the reliability suite.

Long loops call ``fault_point("warmup.iter")``. When the environment variable
``GENREID_KILL_AT`` is ``"<name>:<n>"``, the n-th call of that point sends SIGKILL to the
process itself: the same abrupt death as an OOM kill or a pulled plug, at a reproducible place.
Unset (always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_counts: Counter[str] = Counter()
ENV = "GENREID_KILL_AT"


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    _counts[name] += 1
    target, _, nth = spec.rpartition(":")
    if target == name and nth.isdigit() and _counts[name] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    _counts.clear()
